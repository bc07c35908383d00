#pragma once
// The reduction driver of reduce_int.cu, reduce_stats.cu and reduce_complex.cu, for any op of
// reduce_ops.cuh over an [outer, reduced] view (reduce.cu's layout): fold_tiles.cuh's kernel
// with the block shape k::plan_reduce chose (a block per row, or tiles of adjacent outputs when
// the reduced dims are outside the innermost kept one). Long reductions are cut into
// `splits` fixed parts folded into a workspace and combined by a second launch, so results
// depend on the shape only.
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/fold_tiles.cuh"
#include "backends/cuda/reduce_more.h"
#include "backends/cuda/reduce_ops.cuh"

namespace tessera::cuda::k {

// Row o's `splits` accumulators (contiguous in work) combined and finished into out[o].
template <class O, class Op>
__global__ void combine_parts(const typename Op::A* work, O* out, int64_t n_out, int splits,
                              Op op) {
  using A = typename Op::A;
  const A id = op.init(typename Op::V{});
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    A acc = id;
    for (int p = threadIdx.x; p < splits; p += blockDim.x)
      acc = op.combine(acc, work[o * splits + p]);
    acc = block_combine(op, acc, id);
    if (threadIdx.x == 0) out[o] = store_as<O>(op.finish(acc));
  }
}

inline unsigned fold_threads(int64_t n) { return n <= 32 ? 32 : n <= 128 ? 128 : kThreads; }
inline unsigned fold_grid(int64_t blocks) {
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

/// One reduction with op as planned: one launch, or two when split (work: plan.work
/// accumulators Op::A, laid out alike by both paths).
template <class T, class O, class Op>
void fold(const Op& op, const void* in, void* out, const Geometry& outer, const Geometry& inner,
          int64_t n_out, int64_t n_red, const ReducePlan& plan, void* work, cudaStream_t s) {
  using A = typename Op::A;
  static_assert(sizeof(A) <= kPartBytes);
  auto* y = static_cast<O*>(out);
  auto* w = static_cast<A*>(work);
  fold_pass(op, static_cast<const T*>(in), y, w, outer, inner, n_out, n_red, plan, s);
  if (plan.splits > 1)
    combine_parts<O, Op>
        <<<fold_grid(n_out), fold_threads(plan.splits), 0, s>>>(w, y, n_out, plan.splits, op);
}

}  // namespace tessera::cuda::k
