// Binary elementwise kernels: one functor per op, instantiated for float16, bfloat16, float32
// and float64 into a table indexed by op and dtype. Contiguous aligned operands (or a broadcast
// scalar beside them) take 16-byte vector loads; anything else walks the strided geometry
// (binary.cuh). floor_divide and remainder are in division.cu.
#include <array>

#include "backends/cuda/binary.cuh"
#include "backends/cuda/functors.cuh"

namespace tessera::cuda::k {
namespace binary_detail {
namespace {

// alpha * b rounded before the add, as on the CPU (an FMA would round once).
TS_BINARY(Add, kAdd, return a + fn::mul_rn(alpha.as<C>(), b))
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

// The ops before kFloorDivide; division.cu has the rest.
constexpr auto kTable =
    make_rows<0, Add, Sub, Mul, Div, Maximum, Minimum, Pow, Atan2, ReluBackward>();
static_assert(kTable.size() == kFloorDivide && complete(kTable), "every BinaryOp needs a functor");

}  // namespace
}  // namespace binary_detail

void binary(int op, int code, const void* a, const void* b, void* out, double alpha,
            const Geometry& g, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (op >= kFloorDivide) return binary_detail::division(op, code, a, b, out, g, s);
  binary_detail::kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      a, b, out, Param(alpha), g, s);
}

}  // namespace tessera::cuda::k
