// Binary elementwise kernels: one functor per op, instantiated for float16, bfloat16, float32
// and float64 into a table indexed by op and dtype. Contiguous aligned operands (or a broadcast
// scalar beside them) take 16-byte vector loads; anything else walks the strided geometry.
#include <array>

#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

// alpha scales b in add (a + alpha * b); the other ops ignore it. Kept in both precisions so
// the kernel never converts it per element.
struct Alpha {
  float f;
  double d;
  template <class C>
  __device__ __forceinline__ C as() const {
    if constexpr (sizeof(C) == sizeof(float))
      return f;
    else
      return d;
  }
};

#define TS_BINARY(Name, id, ...)                              \
  struct Name {                                               \
    static constexpr int kId = id;                            \
    Alpha alpha;                                              \
    template <class C>                                        \
    __device__ __forceinline__ C operator()(C a, C b) const { \
      __VA_ARGS__;                                            \
    }                                                         \
  };
TS_BINARY(Add, kAdd, return a + alpha.as<C>() * b)
TS_BINARY(Sub, kSub, return a - b)
TS_BINARY(Mul, kMul, return a * b)
TS_BINARY(Div, kDiv, return a / b)
// NaN-propagating, as PyTorch's maximum/minimum and the CPU kernels.
TS_BINARY(Maximum, kMaximum, if (a != a || b != b) return a + b; return a > b ? a : b)
TS_BINARY(Minimum, kMinimum, if (a != a || b != b) return a + b; return a < b ? a : b)
TS_BINARY(Pow, kPow, return m_pow(a, b))
TS_BINARY(Atan2, kAtan2, return m_atan2(a, b))
// ReLU's backward: a NaN output b compares false and gives 0, like the CPU kernel.
TS_BINARY(ReluBackward, kReluBackward, return b > C(0) ? a : C(0))
#undef TS_BINARY

// sa / sb: whether a / b advance (1) or are one broadcast scalar (0).
template <class T, class Op>
__global__ void binary_vec(const T* a, const T* b, T* out, int64_t n, int sa, int sb, Op op) {
  using V = Vec<T>;
  using IO = Io<T>;
  const int64_t nv = n / V::kN, first = first_index(), stride = grid_stride();
  const T a0 = a[0], b0 = b[0];
  for (int64_t i = first; i < nv; i += stride) {
    V va, vb, r;
    if (sa) va = reinterpret_cast<const V*>(a)[i];
    if (sb) vb = reinterpret_cast<const V*>(b)[i];
#pragma unroll
    for (int j = 0; j < V::kN; ++j)
      r.v[j] = IO::down(op(IO::up(sa ? va.v[j] : a0), IO::up(sb ? vb.v[j] : b0)));
    reinterpret_cast<V*>(out)[i] = r;
  }
  for (int64_t i = nv * V::kN + first; i < n; i += stride)
    out[i] = IO::down(op(IO::up(sa ? a[i] : a0), IO::up(sb ? b[i] : b0)));
}

template <class T, class Op>
__global__ void binary_strided(const T* a, const T* b, T* out, Geometry g, Op op) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    out[o[0]] = Io<T>::down(op(Io<T>::up(a[o[1]]), Io<T>::up(b[o[2]])));
  }
}

using Launch = void (*)(const void*, const void*, void*, Alpha, const Geometry&, cudaStream_t);

template <class T, class Op>
void launch(const void* a, const void* b, void* out, Alpha alpha, const Geometry& g,
            cudaStream_t s) {
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  auto* z = static_cast<T*>(out);
  const Op op{alpha};
  if (g.contiguous && g.aligned && g.ndim == 1)
    binary_vec<T, Op><<<blocks_for(g.numel / Vec<T>::kN), kThreads, 0, s>>>(
        x, y, z, g.numel, g.strides[1][0] != 0, g.strides[2][0] != 0, op);
  else
    binary_strided<T, Op><<<blocks_for(g.numel), kThreads, 0, s>>>(x, y, z, g, op);
}

using Row = std::array<Launch, 4>;  // kF16, kBF16, kF32, kF64
template <class Op>
constexpr Row row() {
  return {&launch<__half, Op>, &launch<__nv_bfloat16, Op>, &launch<float, Op>, &launch<double, Op>};
}
template <class... Ops>
constexpr std::array<Row, kNumBinary> make_table() {
  std::array<Row, kNumBinary> t{};
  ((t[Ops::kId] = row<Ops>()), ...);
  return t;
}
constexpr bool complete(const std::array<Row, kNumBinary>& t) {
  for (const Row& r : t)
    if (!r[0]) return false;
  return true;
}

constexpr std::array<Row, kNumBinary> kTable =
    make_table<Add, Sub, Mul, Div, Maximum, Minimum, Pow, Atan2, ReluBackward>();
static_assert(complete(kTable), "every BinaryOp needs a functor");

}  // namespace

void binary(int op, int code, const void* a, const void* b, void* out, double alpha,
            const Geometry& g, void* stream) {
  const Alpha al{static_cast<float>(alpha), alpha};
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      a, b, out, al, g, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
