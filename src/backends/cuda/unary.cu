// Unary elementwise kernels: one functor per op (computing in float for the 16-bit floats, as
// the CPU does), instantiated for float16, bfloat16, float32 and float64 into a table indexed
// by op and dtype. Contiguous aligned data takes 16-byte vector loads; anything else walks the
// strided geometry (unary.cuh). The ops from kAsin on are in unary_more.cu.
#include <array>

#include "backends/cuda/unary.cuh"

namespace tessera::cuda::k {
namespace unary_detail {
namespace {

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

// The ops before kAsin; unary_more.cu has the rest.
constexpr auto kTable = make_rows<0, Neg, Abs, Exp, Exp2, Expm1, Log, Log2, Log1p, Sqrt, Rsqrt, Sin,
                                  Cos, Tan, Tanh, Sigmoid, Relu, Silu, Gelu, GeluTanh, Erf,
                                  Reciprocal, Square, Floor, Ceil, Round, Trunc>();
static_assert(kTable.size() == kAsin && complete(kTable), "every UnaryOp needs a functor");

}  // namespace
}  // namespace unary_detail

void unary(int op, int code, const void* in, void* out, const Geometry& g, double p0, double p1,
           void* stream) {
  const unary_detail::Params p{Param(p0), Param(p1)};
  const auto s = static_cast<cudaStream_t>(stream);
  if (op >= kAsin) return unary_detail::unary_more(op, code, in, out, g, p, s);
  unary_detail::kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](in, out, g, p, s);
}

}  // namespace tessera::cuda::k
