// Reduction kernels (sum/mean, amax, amin) over an [outer, reduced] view given by two strided
// geometries, through fold_tiles.cuh's kernel with the block shape k::plan_reduce chose: a
// block per row (a warp-shuffle tree), or tiles of adjacent outputs when the reduced dims lie
// outside the innermost kept one (coalesced loads). Long reductions with few outputs are split
// into a fixed number of parts written to a workspace and combined by a second launch, so the
// result depends only on the shape, never on timing. Accumulation is in float32 for the
// 16-bit floats and float32, float64 for float64.
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/fold_tiles.cuh"

namespace tessera::cuda::k {
namespace {

struct Sum {
  template <class A>
  __device__ __forceinline__ static A init() {
    return A(0);
  }
  template <class A>
  __device__ __forceinline__ static A add(A a, A b) {
    return a + b;
  }
  template <class A>
  __device__ __forceinline__ static A finish(A a, A scale) {
    return a * scale;
  }
};
// NaN-propagating like the CPU's amax/amin: a NaN, once seen, is the result.
template <bool kMax>
struct Extreme {
  template <class A>
  __device__ __forceinline__ static A init() {
    return kMax ? A(-INFINITY) : A(INFINITY);
  }
  template <class A>
  __device__ __forceinline__ static A add(A a, A b) {
    if (a != a) return a;
    if (b != b) return b;
    return (kMax ? b > a : b < a) ? b : a;
  }
  template <class A>
  __device__ __forceinline__ static A finish(A a, A) {
    return a;
  }
};

/// An op above in the shape of reduce_ops.cuh's, for the column kernel: the same add, so the
/// accumulation type and NaN propagation are the row path's.
template <class Op, class Acc>
struct AsFold {
  using V = Acc;
  using A = Acc;
  Acc scale;
  __device__ __forceinline__ A init(V) const { return Op::template init<A>(); }
  __device__ __forceinline__ A fold(A a, V x) const { return Op::add(a, x); }
  __device__ __forceinline__ A combine(A a, A b) const { return Op::add(a, b); }
  __device__ __forceinline__ A finish(A a) const { return Op::finish(a, scale); }
};

using Launch = void (*)(const void*, void*, const Geometry&, const Geometry&, int64_t, int64_t,
                        double, const ReducePlan&, void*, cudaStream_t);

template <class T, class Op>
void launch(const void* in, void* out, const Geometry& outer, const Geometry& inner, int64_t n_out,
            int64_t n_red, double scale, const ReducePlan& plan, void* work, cudaStream_t s) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  using F = AsFold<Op, A>;
  auto* y = static_cast<T*>(out);
  auto* w = static_cast<A*>(work);
  const int splits = plan.splits;
  // Pass 1: the results, or the parts unscaled into the workspace.
  fold_pass(F{static_cast<A>(splits > 1 ? 1.0 : scale)}, static_cast<const T*>(in), y, w, outer,
            inner, n_out, n_red, plan, s);
  if (splits == 1) return;
  // Pass 2: each output's parts (contiguous in the workspace, whichever path wrote them) as
  // a row.
  Geometry rows, parts;
  rows.ndim = parts.ndim = 1;
  rows.numel = rows.sizes[0] = n_out;
  rows.strides[0][0] = splits;
  parts.numel = parts.sizes[0] = splits;
  parts.strides[0][0] = 1;
  fold_pass(F{static_cast<A>(scale)}, w, y, static_cast<A*>(nullptr), rows, parts, n_out, splits,
            plan_reduce(rows, parts), s);
}

using Row = std::array<Launch, 4>;  // kF16, kBF16, kF32, kF64
template <class Op>
constexpr Row row() {
  return {&launch<__half, Op>, &launch<__nv_bfloat16, Op>, &launch<float, Op>, &launch<double, Op>};
}
// Indexed by ReduceOp.
constexpr std::array<Row, kNumReduce> kTable = {row<Sum>(), row<Extreme<true>>(),
                                                row<Extreme<false>>()};

}  // namespace

void reduce(int op, int code, const void* in, void* out, const Geometry& outer,
            const Geometry& inner, int64_t n_out, int64_t n_red, double scale,
            const ReducePlan& plan, void* work, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      in, out, outer, inner, n_out, n_red, scale, plan, work, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
