// Unary elementwise kernels of the ops from kAsin on (asin, acos, atan, sinh, cosh, sign,
// softplus): unary.cu's kernels (unary.cuh) over these functors, in a file of their own so
// neither nvcc compile grows large. The rules of sign and softplus are in functors.cuh, shared
// with the host test that checks them against the CPU.
#include "backends/cuda/functors.cuh"
#include "backends/cuda/unary.cuh"

namespace tessera::cuda::k {
namespace unary_detail {
namespace {

TS_UNARY(Asin, kAsin, return fn::f_asin(x))
TS_UNARY(Acos, kAcos, return fn::f_acos(x))
TS_UNARY(Atan, kAtan, return fn::f_atan(x))
TS_UNARY(Sinh, kSinh, return fn::f_sinh(x))
TS_UNARY(Cosh, kCosh, return fn::f_cosh(x))
TS_UNARY(Sign, kSign, return fn::sign_of(x))
TS_UNARY(Softplus, kSoftplus, return fn::softplus_of(x, p0.as<C>(), p1.as<C>()))

constexpr auto kTable = make_rows<kAsin, Asin, Acos, Atan, Sinh, Cosh, Sign, Softplus>();
static_assert(kTable.size() == kNumUnary - kAsin && complete(kTable),
              "every UnaryOp needs a functor");

}  // namespace

void unary_more(int op, int code, const void* in, void* out, const Geometry& g, const Params& p,
                cudaStream_t s) {
  kTable[static_cast<size_t>(op - kAsin)][static_cast<size_t>(code - kF16)](in, out, g, p, s);
}

}  // namespace unary_detail
}  // namespace tessera::cuda::k
