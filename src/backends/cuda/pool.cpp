// CUDA kernels of the pooling primitives (max_pool, avg_pool and their backward primitives):
// host code that validates with the CPU's geometry (ops/nn_geometry.h) and calls pool.cu. Own
// kernels rather than cuDNN's pooling, which has no argmax output: max_pool must return the
// CPU's int64 indices (first maximum in window order, NaN wins) for max_pool_backward.
#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/pool_kernels.h"
#include "ops/nn_geometry.h"

namespace tessera::cuda {
namespace {

using detail::PoolGeom;

k::Pool pool_of(const PoolGeom& g) {
  k::Pool p;
  p.n = g.n, p.c = g.c;
  for (int i = 0; i < 3; ++i) {
    p.in[i] = g.in[i], p.out[i] = g.out[i], p.k[i] = g.k[i];
    p.s[i] = g.s[i], p.p[i] = g.p[i], p.d[i] = g.d[i];
  }
  p.count_include_pad = g.count_include_pad;
  return p;
}

// Strides of (n, c, *spatial) with the spatial ones right-aligned in 3 dims.
k::Strides5 strides_of(const Tensor& t) {
  k::Strides5 s;
  s.n = t.stride(0), s.c = t.stride(1);
  const auto nsp = static_cast<int>(t.dim() - 2);
  for (int i = 0; i < nsp; ++i) s.sp[3 - nsp + i] = t.stride(2 + i);
  return s;
}

bool floating(Inputs in, const Attrs&) { return k::float_code(dtype_code(in[0].dtype())); }

void max_pool_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_geometry("max_pool", in[0], a, true);
  if (out[0].numel() == 0) return;
  const int dev = out[0].device().index;
  DeviceGuard guard(dev);
  k::max_pool(dtype_code(in[0].dtype()), in[0].raw_data(), strides_of(in[0]), out[0].raw_data(),
              static_cast<int64_t*>(out[1].raw_data()), pool_of(g), current_stream(dev));
  launched(dev, "max_pool");
}

void avg_pool_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_geometry("avg_pool", in[0], a, false);
  if (out[0].numel() == 0) return;
  const int dev = out[0].device().index;
  DeviceGuard guard(dev);
  k::avg_pool(dtype_code(in[0].dtype()), in[0].raw_data(), strides_of(in[0]), out[0].raw_data(),
              pool_of(g), current_stream(dev));
  launched(dev, "avg_pool");
}

// Every input element is written (zero where no window picked it), so no fill is needed.
// Indices that do not name a tap of their own window are ignored, where the CPU would scatter
// them (or raise IndexError outside the plane): max_pool never produces such indices.
void max_pool_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_backward_geometry("max_pool_backward", in[0], a, true);
  if (out[0].numel() == 0) return;
  const int dev = out[0].device().index;
  DeviceGuard guard(dev);
  k::max_pool_backward(dtype_code(in[0].dtype()), in[0].raw_data(), strides_of(in[0]),
                       static_cast<const int64_t*>(in[1].raw_data()), strides_of(in[1]),
                       out[0].raw_data(), pool_of(g), current_stream(dev));
  launched(dev, "max_pool_backward");
}

void avg_pool_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_backward_geometry("avg_pool_backward", in[0], a, false);
  if (out[0].numel() == 0) return;
  const int dev = out[0].device().index;
  DeviceGuard guard(dev);
  k::avg_pool_backward(dtype_code(in[0].dtype()), in[0].raw_data(), strides_of(in[0]),
                       out[0].raw_data(), pool_of(g), current_stream(dev));
  launched(dev, "avg_pool_backward");
}

}  // namespace

void register_pool_kernels(Registry& r) {
  r.add_kernel("max_pool", {DeviceType::CUDA, "cuda", max_pool_kernel, floating});
  r.add_kernel("avg_pool", {DeviceType::CUDA, "cuda", avg_pool_kernel, floating});
  r.add_kernel("max_pool_backward", {DeviceType::CUDA, "cuda", max_pool_backward_kernel, floating});
  r.add_kernel("avg_pool_backward", {DeviceType::CUDA, "cuda", avg_pool_backward_kernel, floating});
}

}  // namespace tessera::cuda
