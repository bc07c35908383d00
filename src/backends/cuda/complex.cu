// complex64 elementwise kernels: unary.cu's and binary.cu's kernels (unary.cuh, binary.cuh:
// 16-byte vectors of two elements for contiguous aligned data, the strided geometry otherwise)
// over functors that apply complex_rules.cuh, the CPU's std::complex<float> results. abs, the
// predicates and eq / ne write another element type through the strided kernels.
#include <array>

#include "backends/cuda/binary.cuh"
#include "backends/cuda/complex_kernels.h"
#include "backends/cuda/complex_rules.cuh"
#include "backends/cuda/unary.cuh"

namespace tessera::cuda::k {
namespace complex_detail {
namespace {

using fn::Cf;

// Unary functor Name with its ComplexUnaryOp id and the element type it writes.
#define TS_CUNARY(Name, id, Out, expr)                                   \
  struct Name {                                                          \
    static constexpr int kId = id;                                       \
    using O = Out;                                                       \
    __device__ __forceinline__ O operator()(Cf z) const { return expr; } \
  };
TS_CUNARY(Neg, kCNeg, Cf, fn::c_neg(z))
TS_CUNARY(Abs, kCAbs, float, fn::c_abs(z))
TS_CUNARY(Exp, kCExp, Cf, fn::c_exp(z))
TS_CUNARY(Log, kCLog, Cf, fn::c_log(z))
TS_CUNARY(Sqrt, kCSqrt, Cf, fn::c_sqrt(z))
TS_CUNARY(Sin, kCSin, Cf, fn::c_sin(z))
TS_CUNARY(Cos, kCCos, Cf, fn::c_cos(z))
TS_CUNARY(Reciprocal, kCReciprocal, Cf, fn::c_reciprocal(z))
TS_CUNARY(Square, kCSquare, Cf, fn::c_square(z))
TS_CUNARY(IsNan, kCIsNan, bool, fn::c_isnan(z))
TS_CUNARY(IsInf, kCIsInf, bool, fn::c_isinf(z))
TS_CUNARY(IsFinite, kCIsFinite, bool, fn::c_isfinite(z))
#undef TS_CUNARY

// Binary functor Name: its ComplexBinaryOp id, the element type it writes and add's alpha.
#define TS_CBINARY(Name, id, Out, expr)                                        \
  struct Name {                                                                \
    static constexpr int kId = id;                                             \
    using O = Out;                                                             \
    Cf alpha;                                                                  \
    __device__ __forceinline__ O operator()(Cf a, Cf b) const { return expr; } \
  };
TS_CBINARY(Add, kCAdd, Cf, fn::c_add(a, b))
TS_CBINARY(AddAlpha, kCAddAlpha, Cf, fn::c_add(a, fn::c_mul(alpha, b)))
TS_CBINARY(Sub, kCSub, Cf, fn::c_sub(a, b))
TS_CBINARY(Mul, kCMul, Cf, fn::c_mul(a, b))
TS_CBINARY(Div, kCDiv, Cf, fn::c_div(a, b))
TS_CBINARY(Pow, kCPow, Cf, fn::c_pow(a, b))
TS_CBINARY(Eq, kCEq, bool, fn::c_eq(a, b))
TS_CBINARY(Ne, kCNe, bool, !fn::c_eq(a, b))
#undef TS_CBINARY

using UnaryLaunch = void (*)(const void*, void*, const Geometry&, cudaStream_t);
template <class Op>
void launch_unary(const void* in, void* out, const Geometry& g, cudaStream_t s) {
  unary_detail::run<Cf, Op, typename Op::O>(in, out, g, Op{}, s);
}

using BinaryLaunch = void (*)(const void*, const void*, void*, Cf, const Geometry&, cudaStream_t);
template <class Op>
void launch_binary(const void* a, const void* b, void* out, Cf alpha, const Geometry& g,
                   cudaStream_t s) {
  binary_detail::run<Cf, Op, typename Op::O>(a, b, out, g, Op{alpha}, s);
}

// Launch tables indexed by op id, each functor placed by its kId (no two share one).
template <class... Ops>
constexpr std::array<UnaryLaunch, sizeof...(Ops)> unary_table() {
  std::array<UnaryLaunch, sizeof...(Ops)> t{};
  ((t[Ops::kId] = &launch_unary<Ops>), ...);
  return t;
}
template <class... Ops>
constexpr std::array<BinaryLaunch, sizeof...(Ops)> binary_table() {
  std::array<BinaryLaunch, sizeof...(Ops)> t{};
  ((t[Ops::kId] = &launch_binary<Ops>), ...);
  return t;
}
template <class T, size_t N>
constexpr bool complete(const std::array<T, N>& t) {
  for (const T& f : t)
    if (!f) return false;
  return true;
}

constexpr auto kUnary =
    unary_table<Neg, Abs, Exp, Log, Sqrt, Sin, Cos, Reciprocal, Square, IsNan, IsInf, IsFinite>();
static_assert(kUnary.size() == kNumComplexUnary && complete(kUnary),
              "every ComplexUnaryOp needs a functor");
constexpr auto kBinary = binary_table<Add, AddAlpha, Sub, Mul, Div, Pow, Eq, Ne>();
static_assert(kBinary.size() == kNumComplexBinary && complete(kBinary),
              "every ComplexBinaryOp needs a functor");

}  // namespace
}  // namespace complex_detail

void complex_unary(int op, const void* in, void* out, const Geometry& g, void* stream) {
  complex_detail::kUnary[static_cast<size_t>(op)](in, out, g, static_cast<cudaStream_t>(stream));
}

void complex_binary(int op, const void* a, const void* b, void* out, float alpha_re, float alpha_im,
                    const Geometry& g, void* stream) {
  complex_detail::kBinary[static_cast<size_t>(op)](a, b, out, fn::Cf{alpha_re, alpha_im}, g,
                                                   static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
