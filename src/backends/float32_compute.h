#pragma once
// 16-bit floats through float32 kernels. Some kernels compute only in float32 or float64 (BLAS
// sgemm, im2col + GEMM convolutions; cuDNN for a 16-bit convolution it has no algorithm for,
// e.g. bfloat16 before Ampere: cuDNN runs the others natively); they take float16/bfloat16
// calls by converting each 16-bit input to a float32 copy with the device's own cast kernel,
// computing in float32 and rounding once into the 16-bit outputs, which is what PyTorch's
// CPU kernels do too. The cast kernel is called directly, not through the funnel: the call
// already went through autocast, autograd, the profiler and the scheduler.
#include <vector>

#include "tessera/ops/primitive.h"

namespace tessera::backends {

inline bool is_half(DType t) { return t == kFloat16 || t == kBFloat16; }

/// dst = src converted to dst's dtype, by the cast kernel of dst's device type.
inline void convert_with_cast_kernel(const Tensor& src, const Tensor& dst, std::string_view op) {
  static const Primitive& cast = prim("cast");
  const Tensor args[1] = {src};
  Tensor outs[1] = {dst};
  const Attrs a{{"dtype", dst.dtype()}};
  const Kernel* k = cast.find_kernel(dst.device().type, Inputs(args), a);
  if (!k)
    fail<NotImplementedError>(op, "no {} kernel converting {} to {}", dst.device().str(),
                              dtype_name(src.dtype()), dtype_name(dst.dtype()));
  k->fn(Inputs(args), Outputs(outs), a);
}

/// Runs f32_kernel with every 16-bit input and output replaced by a float32 tensor.
inline void compute_in_float32(KernelFn f32_kernel, Inputs in, Outputs out, const Attrs& a,
                               std::string_view op) {
  std::vector<Tensor> wide_in(in.begin(), in.end()), wide_out(out.begin(), out.end());
  for (Tensor& t : wide_in)
    if (is_half(t.dtype())) {
      Tensor f = Tensor::empty(t.shape(), kFloat32, t.device());
      convert_with_cast_kernel(t, f, op);
      t = std::move(f);
    }
  for (Tensor& t : wide_out)
    if (is_half(t.dtype())) t = Tensor::empty(t.shape(), kFloat32, t.device());
  f32_kernel(wide_in, wide_out, a);
  for (size_t i = 0; i < out.size(); ++i)
    if (!wide_out[i].is_same(out[i])) convert_with_cast_kernel(wide_out[i], out[i], op);
}

}  // namespace tessera::backends
