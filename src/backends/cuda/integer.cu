// Integer and bool elementwise kernels: wrapping arithmetic (computed unsigned, as the CPU
// does), Python's floor division and modulo, integer powers, extrema and bitwise ops, one
// functor per op (the rules live in functors.cuh) instantiated for bool and the five integer
// dtypes into a table indexed by op and dtype; a null entry is a dtype the CPU refuses too (the
// host never asks for it). Every operand walks the strided geometry (no 16-byte vector path:
// it would double the kernels, and the compile time, for dtypes mostly used as indices).
//
// Integer division by zero must not stop the device: the element is written as 0 and the
// first one is recorded in the device's IndexFault, which the host raises as the CPU's
// ValueError at the next synchronization.
#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/functors.cuh"

namespace tessera::cuda::k {
namespace {

// ---- functors: kId, whether bool is allowed, operator() on the element type ----
#define TS_INT_UNARY(Name, id, bools, expr)              \
  struct Name {                                          \
    static constexpr int kId = id;                       \
    static constexpr bool kBool = bools;                 \
    template <class C>                                   \
    __device__ __forceinline__ C operator()(C x) const { \
      return expr;                                       \
    }                                                    \
  };
TS_INT_UNARY(Neg, kINeg, false, fn::wrap_neg(x))
TS_INT_UNARY(Abs, kIAbs, false, fn::abs_of(x))
TS_INT_UNARY(Relu, kIRelu, false, fn::relu_of(x))
TS_INT_UNARY(Sign, kISign, true, fn::sign_of(x))
TS_INT_UNARY(Square, kISquare, false, fn::wrap_mul(x, x))
TS_INT_UNARY(BitNot, kIBitNot, true, fn::bit_not(x))
#undef TS_INT_UNARY

// alpha is add's (already the element type). kFault != 0: the op divides, and b == 0 is
// recorded as that ArithFault instead of computed.
template <int Id, bool Bools, int Fault = 0>
struct IntBinary {
  static constexpr int kId = Id;
  static constexpr bool kBool = Bools;
  static constexpr int kFault = Fault;
};
#define TS_INT_BINARY(Name, expr, ...)                                 \
  struct Name : IntBinary<__VA_ARGS__> {                               \
    template <class C>                                                 \
    __device__ __forceinline__ C operator()(C a, C b, C alpha) const { \
      (void)alpha;                                                     \
      return expr;                                                     \
    }                                                                  \
  };
TS_INT_BINARY(Add, fn::add_of(a, b, alpha), kIAdd, true)
TS_INT_BINARY(Sub, fn::wrap_sub(a, b), kISub, false)
TS_INT_BINARY(Mul, fn::mul_of(a, b), kIMul, true)
TS_INT_BINARY(Maximum, fn::max_of(a, b), kIMaximum, true)
TS_INT_BINARY(Minimum, fn::min_of(a, b), kIMinimum, true)
TS_INT_BINARY(Pow, fn::pow_of(a, b), kIPow, false)
TS_INT_BINARY(FloorDivide, fn::floor_div_of(a, b), kIFloorDivide, false, kFloorDivideByZero)
TS_INT_BINARY(Remainder, fn::remainder_of(a, b), kIRemainder, false, kRemainderByZero)
TS_INT_BINARY(BitAnd, fn::bit_and(a, b), kIBitAnd, true)
TS_INT_BINARY(BitOr, fn::bit_or(a, b), kIBitOr, true)
TS_INT_BINARY(BitXor, fn::bit_xor(a, b), kIBitXor, true)
#undef TS_INT_BINARY

// ---- kernels ----
template <class T, class Op>
__global__ void int_unary_strided(const T* in, T* out, Geometry g) {
  const Op op;
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    out[o[0]] = op(in[o[1]]);
  }
}

template <class T, class Op>
__global__ void int_binary_strided(const T* a, const T* b, T* out, Geometry g, T alpha,
                                   IndexFault* fault) {
  const Op op;
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const T x = a[o[1]], y = b[o[2]];
    if constexpr (Op::kFault != 0) {
      if (y == T(0)) {
        record_fault(fault, Op::kFault, static_cast<int64_t>(x), 0);
        out[o[0]] = T(0);
        continue;
      }
    }
    out[o[0]] = op(x, y, alpha);
  }
}

using UnaryLaunch = void (*)(const void*, void*, const Geometry&, cudaStream_t);
using BinaryLaunch = void (*)(const void*, const void*, void*, int64_t, const Geometry&,
                              IndexFault*, cudaStream_t);

template <class T, class Op>
void launch_unary(const void* in, void* out, const Geometry& g, cudaStream_t s) {
  int_unary_strided<T, Op>
      <<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const T*>(in), static_cast<T*>(out), g);
}
template <class T, class Op>
void launch_binary(const void* a, const void* b, void* out, int64_t alpha, const Geometry& g,
                   IndexFault* fault, cudaStream_t s) {
  // alpha as the CPU converts it (Scalar::to<T>: a static_cast; nonzero for bool).
  int_binary_strided<T, Op><<<blocks_for(g.numel), kThreads, 0, s>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), g,
      static_cast<T>(alpha), fault);
}

// Columns follow the codes kBool, kU8, kI8, kI16, kI32, kI64; bool only where Op allows it.
using UnaryRow = std::array<UnaryLaunch, 6>;
using BinaryRow = std::array<BinaryLaunch, 6>;
template <class Op>
constexpr UnaryRow unary_row() {
  UnaryRow r = {nullptr,
                &launch_unary<uint8_t, Op>,
                &launch_unary<int8_t, Op>,
                &launch_unary<int16_t, Op>,
                &launch_unary<int32_t, Op>,
                &launch_unary<int64_t, Op>};
  if constexpr (Op::kBool) r[0] = &launch_unary<bool, Op>;
  return r;
}
template <class Op>
constexpr BinaryRow binary_row() {
  BinaryRow r = {nullptr,
                 &launch_binary<uint8_t, Op>,
                 &launch_binary<int8_t, Op>,
                 &launch_binary<int16_t, Op>,
                 &launch_binary<int32_t, Op>,
                 &launch_binary<int64_t, Op>};
  if constexpr (Op::kBool) r[0] = &launch_binary<bool, Op>;
  return r;
}
template <class... Ops>
constexpr std::array<UnaryRow, kNumIntUnary> unary_table() {
  std::array<UnaryRow, kNumIntUnary> t{};
  ((t[Ops::kId] = unary_row<Ops>()), ...);
  return t;
}
template <class... Ops>
constexpr std::array<BinaryRow, kNumIntBinary> binary_table() {
  std::array<BinaryRow, kNumIntBinary> t{};
  ((t[Ops::kId] = binary_row<Ops>()), ...);
  return t;
}
// Every op has its uint8 column (the bool one is optional).
template <class Table>
constexpr bool complete(const Table& t) {
  for (const auto& r : t)
    if (!r[1]) return false;
  return true;
}

constexpr auto kUnary = unary_table<Neg, Abs, Relu, Sign, Square, BitNot>();
static_assert(complete(kUnary), "every IntUnaryOp needs a functor");
constexpr auto kBinary = binary_table<Add, Sub, Mul, Maximum, Minimum, Pow, FloorDivide, Remainder,
                                      BitAnd, BitOr, BitXor>();
static_assert(complete(kBinary), "every IntBinaryOp needs a functor");

}  // namespace

void int_unary(int op, int code, const void* in, void* out, const Geometry& g, void* stream) {
  kUnary[static_cast<size_t>(op)][static_cast<size_t>(code)](in, out, g,
                                                             static_cast<cudaStream_t>(stream));
}

void int_binary(int op, int code, const void* a, const void* b, void* out, int64_t alpha,
                const Geometry& g, IndexFault* fault, void* stream) {
  kBinary[static_cast<size_t>(op)][static_cast<size_t>(code)](a, b, out, alpha, g, fault,
                                                              static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
