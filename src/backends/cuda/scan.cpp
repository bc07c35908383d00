// CUDA kernels of cumsum and cumprod along any dim (scan.cu); their gradients also run flip
// (shape.cpp: the reverse running sum is flip, cumsum, flip). Host code only: lanes along
// the dim as a geometry of their starts (as softmax's), the plan of k::scan_plan, and a
// workspace for the part totals of long lanes.
#include <array>
#include <cstdlib>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/reduce_host.h"
#include "backends/cuda/reduce_more.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

bool real_or_complex_input(Inputs in, const Attrs&) {
  return dtype_code(in[0].dtype()) >= 0 || in[0].dtype() == kComplex64;
}

// Bool and integers write int64, floats and complex64 their own dtype (the CPU's scan rule).
void run_scan(const char* name, bool prod, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const bool complex = x.dtype() == kComplex64;
  const int code = complex ? k::kC64 : dtype_code(x.dtype());
  const Tensor dst = staging(y, k::int_or_bool_code(code) ? kInt64 : x.dtype());
  const Lanes l = lanes_along(x, dst, a, name);
  const k::Geometry& lanes = l.starts;
  const int64_t n = l.n, si = l.in_stride, so = l.out_stride;
  const int in_dim = lanes.ndim - 1;
  const bool side_by_side =
      lanes.ndim > 0 && lanes.strides[0][in_dim] == 1 && lanes.strides[1][in_dim] == 1;
  const k::ScanPlan plan = k::scan_plan(lanes.numel, n, side_by_side);
  Tensor work;
  // Part totals: 8-byte accumulators, complex<double> (16 bytes) for complex64.
  if (plan.parts > 1)
    work = Tensor::empty({lanes.numel * plan.parts * (complex ? 2 : 1)}, kInt64, y.device());
  const int dev = y.device().index;
  {
    DeviceGuard guard(dev);
    k::scan(prod, code, x.raw_data(), dst.raw_data(), lanes, n, si, so, plan,
            work.defined() ? work.raw_data() : nullptr, current_stream(dev));
    launched(dev, name);
  }
  done_into(dst, y, name);
}

void cumsum_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_scan("cumsum", false, in, out, a);
}
void cumprod_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_scan("cumprod", true, in, out, a);
}

}  // namespace

void register_scan_kernels(Registry& r) {
  r.add_kernel("cumsum", {DeviceType::CUDA, "cuda", cumsum_kernel, real_or_complex_input});
  r.add_kernel("cumprod", {DeviceType::CUDA, "cuda", cumprod_kernel, real_or_complex_input});
}

}  // namespace tessera::cuda
