// Unary elementwise kernels: one functor per op (computing in float for the 16-bit floats, as
// the CPU does), instantiated for float16, bfloat16, float32 and float64 into a table indexed
// by op and dtype. Contiguous aligned data takes 16-byte vector loads; anything else walks the
// strided geometry.
#include <array>

#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

// Each functor: kId (its UnaryOp) and operator() on the compute type C (float or double).
#define TS_UNARY(Name, id, ...)                          \
  struct Name {                                          \
    static constexpr int kId = id;                       \
    template <class C>                                   \
    __device__ __forceinline__ C operator()(C x) const { \
      __VA_ARGS__;                                       \
    }                                                    \
  };
TS_UNARY(Neg, kNeg, return -x)
TS_UNARY(Abs, kAbs, return m_abs(x))
TS_UNARY(Exp, kExp, return m_exp(x))
TS_UNARY(Exp2, kExp2, return m_exp2(x))
TS_UNARY(Expm1, kExpm1, return m_expm1(x))
TS_UNARY(Log, kLog, return m_log(x))
TS_UNARY(Log2, kLog2, return m_log2(x))
TS_UNARY(Log1p, kLog1p, return m_log1p(x))
TS_UNARY(Sqrt, kSqrt, return m_sqrt(x))
TS_UNARY(Rsqrt, kRsqrt, return C(1) / m_sqrt(x))
TS_UNARY(Sin, kSin, return m_sin(x))
TS_UNARY(Cos, kCos, return m_cos(x))
TS_UNARY(Tan, kTan, return m_tan(x))
TS_UNARY(Tanh, kTanh, return m_tanh(x))
// exp of a non-positive number only: never overflows (the CPU's formula).
TS_UNARY(Sigmoid, kSigmoid, const C e = m_exp(-m_abs(x));
         return x >= C(0) ? C(1) / (C(1) + e) : e / (C(1) + e))
TS_UNARY(Relu, kRelu, return x < C(0) ? C(0) : x)  // NaN stays NaN
TS_UNARY(Silu, kSilu, return x / (C(1) + m_exp(-x)))
TS_UNARY(Gelu, kGelu, return C(0.5) * x * (C(1) + m_erf(x * C(0.7071067811865476))))
TS_UNARY(GeluTanh, kGeluTanh, const C k = C(0.7978845608028654); const C c = C(0.044715);
         return C(0.5) * x * (C(1) + m_tanh(k * (x + c * x * x * x))))
TS_UNARY(Erf, kErf, return m_erf(x))
TS_UNARY(Reciprocal, kReciprocal, return C(1) / x)
TS_UNARY(Square, kSquare, return x * x)
TS_UNARY(Floor, kFloor, return m_floor(x))
TS_UNARY(Ceil, kCeil, return m_ceil(x))
TS_UNARY(Round, kRound, return m_rint(x))  // half to even, as numpy and PyTorch
TS_UNARY(Trunc, kTrunc, return m_trunc(x))
#undef TS_UNARY

template <class T, class Op>
__global__ void unary_vec(const T* in, T* out, int64_t n, Op op) {
  using V = Vec<T>;
  const int64_t nv = n / V::kN, first = first_index(), stride = grid_stride();
  for (int64_t i = first; i < nv; i += stride) {
    const V a = reinterpret_cast<const V*>(in)[i];
    V r;
#pragma unroll
    for (int j = 0; j < V::kN; ++j) r.v[j] = Io<T>::down(op(Io<T>::up(a.v[j])));
    reinterpret_cast<V*>(out)[i] = r;
  }
  for (int64_t i = nv * V::kN + first; i < n; i += stride)
    out[i] = Io<T>::down(op(Io<T>::up(in[i])));
}

template <class T, class Op>
__global__ void unary_strided(const T* in, T* out, Geometry g, Op op) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    out[o[0]] = Io<T>::down(op(Io<T>::up(in[o[1]])));
  }
}

using Launch = void (*)(const void*, void*, const Geometry&, cudaStream_t);

template <class T, class Op>
void launch(const void* in, void* out, const Geometry& g, cudaStream_t s) {
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<T*>(out);
  if (g.contiguous && g.aligned && g.ndim == 1 && g.strides[1][0] == 1)
    unary_vec<T, Op><<<blocks_for(g.numel / Vec<T>::kN), kThreads, 0, s>>>(x, y, g.numel, Op{});
  else
    unary_strided<T, Op><<<blocks_for(g.numel), kThreads, 0, s>>>(x, y, g, Op{});
}

// Columns follow the codes kF16, kBF16, kF32, kF64.
using Row = std::array<Launch, 4>;
template <class Op>
constexpr Row row() {
  return {&launch<__half, Op>, &launch<__nv_bfloat16, Op>, &launch<float, Op>, &launch<double, Op>};
}
template <class... Ops>
constexpr std::array<Row, kNumUnary> make_table() {
  std::array<Row, kNumUnary> t{};
  ((t[Ops::kId] = row<Ops>()), ...);
  return t;
}
constexpr bool complete(const std::array<Row, kNumUnary>& t) {
  for (const Row& r : t)
    if (!r[0]) return false;
  return true;
}

constexpr std::array<Row, kNumUnary> kTable =
    make_table<Neg, Abs, Exp, Exp2, Expm1, Log, Log2, Log1p, Sqrt, Rsqrt, Sin, Cos, Tan, Tanh,
               Sigmoid, Relu, Silu, Gelu, GeluTanh, Erf, Reciprocal, Square, Floor, Ceil, Round,
               Trunc>();
static_assert(complete(kTable), "every UnaryOp needs a functor");

}  // namespace

void unary(int op, int code, const void* in, void* out, const Geometry& g, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      in, out, g, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
