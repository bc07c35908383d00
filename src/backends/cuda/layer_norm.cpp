// CUDA kernels of layer_norm and layer_norm_backward: host code that makes the operands
// contiguous (rows of n elements) and calls the launchers of layer_norm.cu on the current
// stream. Float dtypes only: others reach the scheduler's "no cuda:0 kernel" error.
#include "backends/cuda/common.h"
#include "backends/cuda/layer_norm_kernels.h"
#include "backends/cuda/ops.h"

namespace tessera::cuda {
namespace {

bool floating(Inputs in, const Attrs&) { return k::float_code(dtype_code(in[0].dtype())); }

// Elements per row: the last "ndim" dims (validated by the primitive's infer).
int64_t row_length(const Tensor& x, const Attrs& a) {
  int64_t n = 1;
  for (int64_t d = x.dim() - a.get<int64_t>("ndim"); d < x.dim(); ++d) n *= x.size(d);
  return n;
}

const void* data_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }
Tensor contiguous_at(Inputs in, size_t i) { return in.size() > i ? in[i].contiguous() : Tensor(); }

void layer_norm_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor x = in[0].contiguous(), w = contiguous_at(in, 1), b = contiguous_at(in, 2);
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  // One statistic per row, also for rows of no elements (their mean and rstd are NaN).
  k::layer_norm(dtype_code(x.dtype()), x.raw_data(), data_or_null(w), data_or_null(b),
                out[0].raw_data(), out[1].raw_data(), out[2].raw_data(), out[1].numel(),
                row_length(x, a), a.get<double>("eps"), current_stream(dev));
  launched(dev, "layer_norm");
}

void layer_norm_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor dy = in[0].contiguous(), x = in[1].contiguous(), mean = in[2].contiguous(),
               rstd = in[3].contiguous(), w = contiguous_at(in, 4);
  const int64_t rows = mean.numel(), n = row_length(x, a);
  const int code = dtype_code(x.dtype());
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  k::layer_norm_backward(code, dy.raw_data(), x.raw_data(), mean.raw_data(), rstd.raw_data(),
                         data_or_null(w), out[0].raw_data(), rows, n, current_stream(dev));
  launched(dev, "layer_norm_backward");
  if (out.size() == 1) return;
  const int parts = k::layer_norm_weight_grad_parts(rows, n);
  Tensor work;
  if (parts > 1)
    work = Tensor::empty({2 * parts * n}, code == k::kF64 ? kFloat64 : kFloat32, x.device());
  k::layer_norm_weight_grads(code, dy.raw_data(), x.raw_data(), mean.raw_data(), rstd.raw_data(),
                             out[1].raw_data(), out[2].raw_data(),
                             work.defined() ? work.raw_data() : nullptr, parts, rows, n,
                             current_stream(dev));
  launched(dev, "layer_norm_backward");
}

}  // namespace

void register_layer_norm_kernels(Registry& r) {
  r.add_kernel("layer_norm", {DeviceType::CUDA, "cuda", layer_norm_kernel, floating});
  r.add_kernel("layer_norm_backward",
               {DeviceType::CUDA, "cuda", layer_norm_backward_kernel, floating});
}

}  // namespace tessera::cuda
