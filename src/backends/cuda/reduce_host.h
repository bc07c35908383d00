#pragma once
// Private to the host code of the CUDA reductions and scans (reduce.cpp, reduce_more.cpp,
// scan.cpp): how a reduction's dims become the kernels' geometries, and the registrars.
#include <cstdint>
#include <utility>

#include "backends/cuda/kernels.h"
#include "backends/cuda/reduce_plan.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {

/// The kept (outer) and reduced (inner) dims of x under attr "dims" (empty = all).
std::pair<k::Geometry, k::Geometry> split_dims(const Tensor& x, const Attrs& a, const char* name);

/// Lanes of x along attr "dim" written into out: the geometry of the lane starts (operand 0:
/// out, 1: x), the lane length, and each side's element stride along the dim (softmax, scans).
struct Lanes {
  k::Geometry starts;
  int64_t n = 1, in_stride = 0, out_stride = 0;
};
Lanes lanes_along(const Tensor& x, const Tensor& out, const Attrs& a, const char* name);

/// The workspace of a reduction planned as p (reduce_plan.h): p.work accumulators of `bytes`
/// each; undefined when the reduction is not split.
Tensor reduce_workspace(const k::ReducePlan& p, int64_t bytes, Device dev);
/// Its data pointer, or null.
inline void* work_ptr(const Tensor& work) { return work.defined() ? work.raw_data() : nullptr; }

/// y itself when the kernels can write it directly (contiguous, of dtype dt), else a contiguous
/// temporary of dtype dt to convert into y afterwards (done_into).
Tensor staging(const Tensor& y, DType dt);
/// After the kernel wrote dst (from staging(y, ...)): dst converted into y, when it is not y.
void done_into(const Tensor& dst, const Tensor& y, const char* name);

void register_reduce_more_kernels(Registry& r);     // reduce_more.cpp
void register_scan_kernels(Registry& r);            // scan.cpp
void register_reduce_complex_kernels(Registry& r);  // reduce_complex.cpp

}  // namespace tessera::cuda
