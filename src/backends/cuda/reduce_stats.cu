// prod, var / std, logsumexp and norm of float inputs (the ops of reduce_ops.cuh through the
// driver of fold_rows.cuh), accumulated in double as on the CPU and written in the input's
// dtype. logsumexp evaluates exp in float32 for the 16-bit floats and float32.
#include <array>

#include "backends/cuda/fold_rows.cuh"
#include "backends/cuda/reduce_more.h"

namespace tessera::cuda::k {
namespace {

using Launch = void (*)(const void*, void*, const Geometry&, const Geometry&, int64_t, int64_t,
                        double, const ReducePlan&, void*, cudaStream_t);

// The op of a StatOp with its parameter (the correction of var / std, the p of norm).
template <int kOp, class T>
auto make_op(double param) {
  if constexpr (kOp == kSProd)
    return ops::Prod{};
  else if constexpr (kOp == kSVar || kOp == kSStd)
    return ops::Var{param, kOp == kSStd};
  else if constexpr (kOp == kSLogSumExp)
    return ops::LogSumExp<typename Io<T>::C>{};
  else
    return ops::Norm{ops::norm_kind(param), param};
}

template <int kOp, class T>
void launch(const void* in, void* out, const Geometry& outer, const Geometry& inner, int64_t n_out,
            int64_t n_red, double param, const ReducePlan& plan, void* work, cudaStream_t s) {
  fold<T, T>(make_op<kOp, T>(param), in, out, outer, inner, n_out, n_red, plan, work, s);
}

using Row = std::array<Launch, 4>;  // kF16, kBF16, kF32, kF64
template <int kOp>
constexpr Row row() {
  return {&launch<kOp, __half>, &launch<kOp, __nv_bfloat16>, &launch<kOp, float>,
          &launch<kOp, double>};
}
// Indexed by StatOp.
constexpr std::array<Row, kNumStat> kTable = {row<kSProd>(), row<kSVar>(), row<kSStd>(),
                                              row<kSLogSumExp>(), row<kSNorm>()};

}  // namespace

void reduce_stat(int op, int code, const void* in, void* out, const Geometry& outer,
                 const Geometry& inner, int64_t n_out, int64_t n_red, double param,
                 const ReducePlan& plan, void* work, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      in, out, outer, inner, n_out, n_red, param, plan, work, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
