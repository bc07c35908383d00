// floor_divide and remainder of floats with Python's sign rules (the rules are in
// functors.cuh, shared with the host test that checks them against the CPU): binary.cu's
// kernels (binary.cuh) over these functors, in a file of their own so neither nvcc compile
// grows large. fmod, floor, copysign and IEEE division are exact on the device, so the results
// are the CPU's bit for bit. Integer operands are integer.cu's.
#include "backends/cuda/binary.cuh"
#include "backends/cuda/functors.cuh"

namespace tessera::cuda::k {
namespace binary_detail {
namespace {

TS_BINARY(FloorDivide, kFloorDivide, return fn::floor_div_of(a, b))
TS_BINARY(Remainder, kRemainder, return fn::remainder_of(a, b))

constexpr auto kTable = make_rows<kFloorDivide, FloorDivide, Remainder>();
static_assert(kTable.size() == kNumBinary - kFloorDivide && complete(kTable),
              "every BinaryOp needs a functor");

}  // namespace

void division(int op, int code, const void* a, const void* b, void* out, const Geometry& g,
              cudaStream_t s) {
  kTable[static_cast<size_t>(op - kFloorDivide)][static_cast<size_t>(code - kF16)](a, b, out,
                                                                                   Param(), g, s);
}

}  // namespace binary_detail
}  // namespace tessera::cuda::k
