// sum, mean, prod and norm of complex64 inputs: the ops of complex_reduce_ops.cuh through the
// driver of fold_rows.cuh (a block per row, split long rows), accumulated in complex<double>
// (norm: double) as on the CPU.
#include <array>

#include "backends/cuda/complex_reduce_ops.cuh"
#include "backends/cuda/fold_rows.cuh"
#include "backends/cuda/reduce_more.h"

namespace tessera::cuda::k {
namespace {

using Launch = void (*)(const void*, void*, const Geometry&, const Geometry&, int64_t, int64_t,
                        double, const ReducePlan&, void*, cudaStream_t);

template <int kOp>
void launch(const void* in, void* out, const Geometry& outer, const Geometry& inner, int64_t n_out,
            int64_t n_red, double param, const ReducePlan& plan, void* work, cudaStream_t s) {
  using fn::Cf;
  if constexpr (kOp == kZSum || kOp == kZMean)
    fold<Cf, Cf>(ops::ZSum{kOp == kZMean, static_cast<double>(n_red)}, in, out, outer, inner, n_out,
                 n_red, plan, work, s);
  else if constexpr (kOp == kZProd)
    fold<Cf, Cf>(ops::ZProd{}, in, out, outer, inner, n_out, n_red, plan, work, s);
  else
    fold<Cf, float>(ops::ZNorm{ops::Norm{ops::norm_kind(param), param}}, in, out, outer, inner,
                    n_out, n_red, plan, work, s);
}

// Indexed by ComplexReduceOp.
constexpr std::array<Launch, kNumComplexReduce> kTable = {&launch<kZSum>, &launch<kZMean>,
                                                          &launch<kZProd>, &launch<kZNorm>};

}  // namespace

void reduce_complex(int op, const void* in, void* out, const Geometry& outer, const Geometry& inner,
                    int64_t n_out, int64_t n_red, double param, const ReducePlan& plan, void* work,
                    void* stream) {
  kTable[static_cast<size_t>(op)](in, out, outer, inner, n_out, n_red, param, plan, work,
                                  static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
