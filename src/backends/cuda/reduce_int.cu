// sum, prod, amax, amin of bool and integer inputs (the ops of reduce_ops.cuh through the driver
// of fold_rows.cuh): sum and prod in wrapping 64-bit, written as int64; amax and amin compared
// as int64, written in the input's dtype. Bool reads as its byte (0 or 1).
#include <array>

#include "backends/cuda/fold_rows.cuh"
#include "backends/cuda/reduce_more.h"

namespace tessera::cuda::k {
namespace {

using Launch = void (*)(const void*, void*, const Geometry&, const Geometry&, int64_t, int64_t,
                        const ReducePlan&, void*, cudaStream_t);

template <class T, class Op>
void launch(const void* in, void* out, const Geometry& outer, const Geometry& inner, int64_t n_out,
            int64_t n_red, const ReducePlan& plan, void* work, cudaStream_t s) {
  // sum / prod write int64; max / min the input's dtype.
  using O = std::conditional_t<std::is_same_v<typename Op::A, long long>, T, int64_t>;
  fold<T, O>(Op{}, in, out, outer, inner, n_out, n_red, plan, work, s);
}

using Row = std::array<Launch, 6>;  // kBool, kU8, kI8, kI16, kI32, kI64
template <class Op>
constexpr Row row() {
  return {&launch<uint8_t, Op>, &launch<uint8_t, Op>, &launch<int8_t, Op>,
          &launch<int16_t, Op>, &launch<int32_t, Op>, &launch<int64_t, Op>};
}
// Indexed by IntReduceOp.
constexpr std::array<Row, kNumIntReduce> kTable = {row<ops::IntSum>(), row<ops::IntProd>(),
                                                   row<ops::IntExtreme<true>>(),
                                                   row<ops::IntExtreme<false>>()};

}  // namespace

void reduce_int(int op, int code, const void* in, void* out, const Geometry& outer,
                const Geometry& inner, int64_t n_out, int64_t n_red, const ReducePlan& plan,
                void* work, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kBool)](
      in, out, outer, inner, n_out, n_red, plan, work, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
