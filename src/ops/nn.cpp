// Convolution and pooling. Primitives: conv, conv_transpose and conv_weight_grad (the weight
// gradient of both, so every derivative of a convolution is again one of the three), max_pool
// and avg_pool with their backward primitives (scatter through the argmax, spread of the
// average), each linear in the gradient so that double backward needs no new primitive.
// adaptive_avg_pool2d is a composite (a mean, an avg_pool, or two averaging matmuls).
// Kernels: backends/cpu/nn.cpp (im2col + BLAS GEMM for convolutions, loops for pooling).
#include "tessera/ops/nn.h"

#include <algorithm>
#include <string>
#include <utility>

#include "ops/nn_geometry.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/primitive.h"
#include "tessera/ops/reduce.h"
#include "tessera/runtime/autocast.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace detail {
namespace {

using Ints = std::vector<int64_t>;

int spatial_rank(std::string_view op, const Tensor& x, std::string_view what) {
  if (x.dim() < 3 || x.dim() > 5)
    fail<ShapeError>(op, "expects {} of shape (N, C, *spatial) with 1 to 3 spatial dims, got {}",
                     what, shape_str(x.shape()));
  return static_cast<int>(x.dim() - 2);
}

// Attribute `key` (one value per spatial dim, each >= lo), right-aligned into a Dim3.
Dim3 dims3(std::string_view op, const Attrs& a, std::string_view key, int nsp, int64_t fill,
           int64_t lo) {
  const Ints& v = a.get<Ints>(key);
  if (static_cast<int>(v.size()) != nsp)
    fail<ValueError>(op, "{} needs {} value(s), one per spatial dim, got {}", key, nsp,
                     shape_str(v));
  Dim3 r{fill, fill, fill};
  for (int i = 0; i < nsp; ++i) {
    if (v[i] < lo)
      fail<ValueError>(op, "{} must be {}, got {}", key, lo == 0 ? "non-negative" : "positive",
                       shape_str(v));
    r[3 - nsp + i] = v[i];
  }
  return r;
}

// Spatial sizes of t (dims 2...), right-aligned into a Dim3.
Dim3 spatial3(const Tensor& t) {
  Dim3 r{1, 1, 1};
  const int nsp = static_cast<int>(t.dim() - 2);
  for (int i = 0; i < nsp; ++i) r[3 - nsp + i] = t.size(2 + i);
  return r;
}

Ints tail(const Dim3& v, int nsp) { return Ints(v.end() - nsp, v.end()); }

void check_float_dtypes(std::string_view op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    fail<DTypeError>(op, "input and weight dtypes differ: {} and {}", dtype_name(a.dtype()),
                     dtype_name(b.dtype()));
  if (!is_floating(a.dtype()))
    fail<DTypeError>(op, "expects floating point tensors, got {}", dtype_name(a.dtype()));
}

void check_bias(std::string_view op, const Tensor* bias, int64_t channels, DType dt) {
  if (!bias) return;
  if (bias->dim() != 1 || bias->size(0) != channels)
    fail<ShapeError>(op, "bias must have shape ({}), one value per output channel, got {}",
                     channels, shape_str(bias->shape()));
  if (bias->dtype() != dt)
    fail<DTypeError>(op, "bias dtype {} differs from the input's {}", dtype_name(bias->dtype()),
                     dtype_name(dt));
}

void read_conv_attrs(std::string_view op, const Attrs& a, ConvGeom& g) {
  g.s = dims3(op, a, "stride", g.nsp, 1, 1);
  g.p = dims3(op, a, "padding", g.nsp, 0, 0);
  g.d = dims3(op, a, "dilation", g.nsp, 1, 1);
  g.groups = a.get<int64_t>("groups");
  if (g.groups < 1) fail<ValueError>(op, "groups must be positive, got {}", g.groups);
}

// The kernel, dilated, must fit in the padded image along every dim.
void check_kernel_fits(std::string_view op, const ConvGeom& g, const Tensor& image) {
  for (int i = 3 - g.nsp; i < 3; ++i)
    if (g.d[i] * (g.k[i] - 1) + 1 > g.img[i] + 2 * g.p[i])
      fail<ShapeError>(op, "kernel {} (dilation {}) is larger than the input {} padded by {}",
                       shape_str(tail(g.k, g.nsp)), shape_str(tail(g.d, g.nsp)),
                       shape_str(image.shape()), shape_str(tail(g.p, g.nsp)));
}

void check_divisible(std::string_view op, std::string_view what, int64_t channels, int64_t groups) {
  if (channels % groups != 0)
    fail<ValueError>(op, "{} channels ({}) are not divisible by groups ({})", what, channels,
                     groups);
}

void check_positive_kernel(std::string_view op, const Tensor& w, int nsp) {
  for (int i = 0; i < nsp; ++i)
    if (w.size(2 + i) < 1)
      fail<ShapeError>(op, "weight {} has an empty kernel", shape_str(w.shape()));
}

}  // namespace

ConvGeom conv_geometry(std::string_view op, const Tensor& x, const Tensor& w, const Tensor* bias,
                       const Attrs& a) {
  ConvGeom g;
  g.nsp = spatial_rank(op, x, "input");
  if (w.dim() != x.dim())
    fail<ShapeError>(op,
                     "weight {} must have the rank of the input {}: (C_out, C_in / groups, "
                     "*kernel)",
                     shape_str(w.shape()), shape_str(x.shape()));
  check_float_dtypes(op, x, w);
  read_conv_attrs(op, a, g);
  g.n = x.size(0), g.c = x.size(1), g.o = w.size(0);
  check_divisible(op, "input", g.c, g.groups);
  check_divisible(op, "output", g.o, g.groups);
  if (w.size(1) * g.groups != g.c)
    fail<ShapeError>(op, "weight {} with groups={} expects {} input channels, input {} has {}",
                     shape_str(w.shape()), g.groups, w.size(1) * g.groups, shape_str(x.shape()),
                     g.c);
  check_positive_kernel(op, w, g.nsp);
  check_bias(op, bias, g.o, x.dtype());
  g.img = spatial3(x), g.k = spatial3(w);
  check_kernel_fits(op, g, x);
  for (int i = 0; i < 3; ++i) g.grid[i] = conv_out_size(g.img[i], g.k[i], g.s[i], g.p[i], g.d[i]);
  return g;
}

ConvGeom conv_transpose_geometry(std::string_view op, const Tensor& x, const Tensor& w,
                                 const Tensor* bias, const Attrs& a) {
  ConvGeom g;
  g.nsp = spatial_rank(op, x, "input");
  if (w.dim() != x.dim())
    fail<ShapeError>(op,
                     "weight {} must have the rank of the input {}: (C_in, C_out / groups, "
                     "*kernel)",
                     shape_str(w.shape()), shape_str(x.shape()));
  check_float_dtypes(op, x, w);
  read_conv_attrs(op, a, g);
  const Dim3 op_pad = dims3(op, a, "output_padding", g.nsp, 0, 0);
  g.n = x.size(0), g.o = x.size(1);
  if (w.size(0) != g.o)
    fail<ShapeError>(op, "weight {} expects {} input channels (its dim 0), input {} has {}",
                     shape_str(w.shape()), w.size(0), shape_str(x.shape()), g.o);
  check_divisible(op, "input", g.o, g.groups);
  g.c = w.size(1) * g.groups;
  check_positive_kernel(op, w, g.nsp);
  check_bias(op, bias, g.c, x.dtype());
  g.grid = spatial3(x), g.k = spatial3(w);
  for (int i = 0; i < 3; ++i) {
    g.img[i] = conv_transpose_out_size(g.grid[i], g.k[i], g.s[i], g.p[i], g.d[i], op_pad[i]);
    if (g.grid[i] < 1 || g.img[i] < 1)
      fail<ShapeError>(op, "input {} with kernel {}, stride {}, padding {} gives an empty output",
                       shape_str(x.shape()), shape_str(tail(g.k, g.nsp)),
                       shape_str(tail(g.s, g.nsp)), shape_str(tail(g.p, g.nsp)));
  }
  return g;
}

ConvGeom conv_weight_grad_geometry(std::string_view op, const Tensor& x, const Tensor& dy,
                                   const Attrs& a) {
  ConvGeom g;
  g.nsp = spatial_rank(op, x, "input");
  if (dy.dim() != x.dim() || dy.size(0) != x.size(0))
    fail<ShapeError>(op, "output gradient {} does not match the input {}", shape_str(dy.shape()),
                     shape_str(x.shape()));
  check_float_dtypes(op, x, dy);
  read_conv_attrs(op, a, g);
  g.k = dims3(op, a, "kernel", g.nsp, 1, 1);
  g.n = x.size(0), g.c = x.size(1), g.o = dy.size(1);
  check_divisible(op, "input", g.c, g.groups);
  check_divisible(op, "output", g.o, g.groups);
  g.img = spatial3(x), g.grid = spatial3(dy);
  check_kernel_fits(op, g, x);
  for (int i = 0; i < 3; ++i) {
    const int64_t full = conv_out_size(g.img[i], g.k[i], g.s[i], g.p[i], g.d[i]);
    if (g.grid[i] < 1 || g.grid[i] > full)
      fail<ShapeError>(op, "output gradient {} does not fit the convolution of input {}",
                       shape_str(dy.shape()), shape_str(x.shape()));
  }
  return g;
}

namespace {

int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  if (num < 0) return 0;
  int64_t out = num / s + 1;
  // PyTorch: the last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void check_pool_dtype(std::string_view op, const Tensor& x) {
  if (!is_floating(x.dtype()))
    fail<DTypeError>(op, "expects a floating tensor, got {}", dtype_name(x.dtype()));
}

// Kernel, stride, padding and dilation of a pool; padding at most half the (dilated) window.
void read_pool_attrs(std::string_view op, const Attrs& a, bool is_max, PoolGeom& g) {
  g.k = dims3(op, a, "kernel", g.nsp, 1, 1);
  g.s = dims3(op, a, "stride", g.nsp, 1, 1);
  g.p = dims3(op, a, "padding", g.nsp, 0, 0);
  if (is_max) g.d = dims3(op, a, "dilation", g.nsp, 1, 1);
  g.ceil_mode = a.get<bool>("ceil_mode");
  if (!is_max) g.count_include_pad = a.get<bool>("count_include_pad");
  for (int i = 3 - g.nsp; i < 3; ++i)
    if (2 * g.p[i] > g.d[i] * (g.k[i] - 1) + 1)
      fail<ValueError>(op, "padding {} must be at most half of the kernel {} (dilation {})",
                       shape_str(tail(g.p, g.nsp)), shape_str(tail(g.k, g.nsp)),
                       shape_str(tail(g.d, g.nsp)));
}

void compute_pool_out(std::string_view op, PoolGeom& g, const Shape& input) {
  for (int i = 0; i < 3; ++i) {
    g.out[i] = pool_out_size(g.in[i], g.k[i], g.s[i], g.p[i], g.d[i], g.ceil_mode);
    if (g.out[i] < 1)
      fail<ShapeError>(op, "input {} is too small for kernel {} (padding {}, dilation {})",
                       shape_str(input), shape_str(tail(g.k, g.nsp)), shape_str(tail(g.p, g.nsp)),
                       shape_str(tail(g.d, g.nsp)));
  }
}

}  // namespace

PoolGeom pool_geometry(std::string_view op, const Tensor& x, const Attrs& a, bool is_max) {
  PoolGeom g;
  g.nsp = spatial_rank(op, x, "input");
  check_pool_dtype(op, x);
  read_pool_attrs(op, a, is_max, g);
  g.n = x.size(0), g.c = x.size(1), g.in = spatial3(x);
  compute_pool_out(op, g, x.shape());
  return g;
}

PoolGeom pool_backward_geometry(std::string_view op, const Tensor& grad, const Attrs& a,
                                bool is_max) {
  PoolGeom g;
  g.nsp = spatial_rank(op, grad, "gradient");
  check_pool_dtype(op, grad);
  read_pool_attrs(op, a, is_max, g);
  g.n = grad.size(0), g.c = grad.size(1), g.in = dims3(op, a, "input_size", g.nsp, 1, 1);
  Shape input{g.n, g.c};
  for (int i = 3 - g.nsp; i < 3; ++i) input.push_back(g.in[i]);
  compute_pool_out(op, g, input);
  if (spatial3(grad) != g.out)
    fail<ShapeError>(op, "gradient {} does not match the pooled size {} of input {}",
                     shape_str(grad.shape()), shape_str(tail(g.out, g.nsp)), shape_str(input));
  return g;
}

}  // namespace detail

namespace {

using detail::ConvGeom;
using detail::Dim3;
using detail::PoolGeom;
using Ints = std::vector<int64_t>;

Shape nc_shape(int64_t n, int64_t c, const Dim3& sp, int nsp) {
  Shape s{n, c};
  for (int i = 3 - nsp; i < 3; ++i) s.push_back(sp[i]);
  return s;
}

const Tensor* bias_of(Inputs in) { return in.size() > 2 ? &in[2] : nullptr; }

void check_arity(std::string_view op, Inputs in, size_t lo, size_t hi) {
  if (in.size() < lo || in.size() > hi)
    fail<ValueError>(op, "takes {} to {} inputs, got {}", lo, hi, in.size());
}

std::vector<TensorMeta> conv_meta(Inputs in, const Attrs& a) {
  check_arity("conv", in, 2, 3);
  const ConvGeom g = detail::conv_geometry("conv", in[0], in[1], bias_of(in), a);
  return {{nc_shape(g.n, g.o, g.grid, g.nsp), in[0].dtype()}};
}
std::vector<TensorMeta> conv_transpose_meta(Inputs in, const Attrs& a) {
  check_arity("conv_transpose", in, 2, 3);
  const ConvGeom g =
      detail::conv_transpose_geometry("conv_transpose", in[0], in[1], bias_of(in), a);
  return {{nc_shape(g.n, g.c, g.img, g.nsp), in[0].dtype()}};
}
std::vector<TensorMeta> conv_weight_grad_meta(Inputs in, const Attrs& a) {
  check_arity("conv_weight_grad", in, 2, 2);
  const ConvGeom g = detail::conv_weight_grad_geometry("conv_weight_grad", in[0], in[1], a);
  return {{nc_shape(g.o, g.cg(), g.k, g.nsp), in[0].dtype()}};
}

// 2 * (grid positions * o) * (c / groups * kernel) flops: the same count for all three.
Cost conv_cost_of(const ConvGeom& g, Inputs in, std::span<const Tensor> out) {
  double bytes = static_cast<double>(out[0].nbytes());
  for (const Tensor& t : in) bytes += static_cast<double>(t.nbytes());
  const double macs = static_cast<double>(g.n) * static_cast<double>(g.o) *
                      static_cast<double>(detail::prod3(g.grid)) *
                      static_cast<double>(g.col_rows());
  return {2 * macs, bytes};
}

Cost conv_fwd_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  return conv_cost_of(detail::conv_geometry("conv", in[0], in[1], bias_of(in), a), in, out);
}
Cost conv_transpose_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  return conv_cost_of(
      detail::conv_transpose_geometry("conv_transpose", in[0], in[1], bias_of(in), a), in, out);
}
Cost conv_weight_grad_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  return conv_cost_of(detail::conv_weight_grad_geometry("conv_weight_grad", in[0], in[1], a), in,
                      out);
}

std::vector<TensorMeta> max_pool_meta(Inputs in, const Attrs& a) {
  check_arity("max_pool", in, 1, 1);
  const PoolGeom g = detail::pool_geometry("max_pool", in[0], a, true);
  const Shape s = nc_shape(g.n, g.c, g.out, g.nsp);
  return {{s, in[0].dtype()}, {s, kInt64}};
}
std::vector<TensorMeta> avg_pool_meta(Inputs in, const Attrs& a) {
  check_arity("avg_pool", in, 1, 1);
  const PoolGeom g = detail::pool_geometry("avg_pool", in[0], a, false);
  return {{nc_shape(g.n, g.c, g.out, g.nsp), in[0].dtype()}};
}
std::vector<TensorMeta> max_pool_backward_meta(Inputs in, const Attrs& a) {
  check_arity("max_pool_backward", in, 2, 2);
  const PoolGeom g = detail::pool_backward_geometry("max_pool_backward", in[0], a, true);
  if (in[1].dtype() != kInt64 || in[1].shape() != in[0].shape())
    fail<ShapeError>("max_pool_backward",
                     "indices must be int64 shaped like the gradient {}, got "
                     "{} {}",
                     shape_str(in[0].shape()), dtype_name(in[1].dtype()), shape_str(in[1].shape()));
  return {{nc_shape(g.n, g.c, g.in, g.nsp), in[0].dtype()}};
}
std::vector<TensorMeta> avg_pool_backward_meta(Inputs in, const Attrs& a) {
  check_arity("avg_pool_backward", in, 1, 1);
  const PoolGeom g = detail::pool_backward_geometry("avg_pool_backward", in[0], a, false);
  return {{nc_shape(g.n, g.c, g.in, g.nsp), in[0].dtype()}};
}

// Pooling reads each window element once per output.
Cost pool_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  const Dim3 k = [&] {
    Dim3 r{1, 1, 1};
    const Ints& v = a.get<Ints>("kernel");
    for (size_t i = 0; i < v.size() && i < 3; ++i) r[3 - v.size() + i] = v[i];
    return r;
  }();
  const Tensor& pooled = in[0].numel() < out[0].numel() ? in[0] : out[0];
  double bytes = static_cast<double>(out[0].nbytes());
  for (const Tensor& t : in) bytes += static_cast<double>(t.nbytes());
  return {static_cast<double>(pooled.numel()) * static_cast<double>(detail::prod3(k)), bytes};
}

}  // namespace

void register_nn_prims(Registry& r) {
  r.define({.name = "conv", .infer = conv_meta, .cost = conv_fwd_cost});
  r.define({.name = "conv_transpose", .infer = conv_transpose_meta, .cost = conv_transpose_cost});
  r.define(
      {.name = "conv_weight_grad", .infer = conv_weight_grad_meta, .cost = conv_weight_grad_cost});
  r.define({.name = "max_pool", .infer = max_pool_meta, .cost = pool_cost});
  r.define({.name = "max_pool_backward", .infer = max_pool_backward_meta, .cost = pool_cost});
  r.define({.name = "avg_pool", .infer = avg_pool_meta, .cost = pool_cost});
  r.define({.name = "avg_pool_backward", .infer = avg_pool_backward_meta, .cost = pool_cost});
}

// ---- public functions -------------------------------------------------------------------

namespace {

void check_rank(std::string_view op, const Tensor& x, int64_t rank) {
  if (x.dim() != rank)
    fail<ShapeError>(op, "expects a {}-d input (N, C, {} spatial dim{}), got {}", rank, rank - 2,
                     rank == 3 ? "" : "s", shape_str(x.shape()));
}

int nsp_of(std::string_view op, const Tensor& x) {
  if (x.dim() < 3 || x.dim() > 5)
    fail<ShapeError>(op, "expects input of shape (N, C, *spatial) with 1 to 3 spatial dims, got {}",
                     shape_str(x.shape()));
  return static_cast<int>(x.dim() - 2);
}

// A spatial parameter of 1 value (for every dim) or one value per spatial dim.
Ints per_dim(std::string_view op, std::string_view what, const Ints& v, int nsp) {
  if (v.size() == 1) return Ints(static_cast<size_t>(nsp), v[0]);
  if (static_cast<int>(v.size()) != nsp)
    fail<ValueError>(op, "{} needs 1 or {} values, got {}", what, nsp, shape_str(v));
  return v;
}

// Input, weight and bias share one floating dtype (PyTorch refuses mixed dtypes), except under
// autocast, which lowers them together in the funnel: a 16-bit activation and a float32 weight
// go on as they are. 16-bit floats reach the primitives as they are: their kernels compute in
// float32 and round once (backends/float32_compute.h).
void check_conv_dtypes(std::string_view op, const Primitive& p, const Tensor& x, const Tensor& w,
                       const Tensor& b) {
  if (!x.defined() || !w.defined()) fail<ValueError>(op, "input and weight must be defined");
  const DType dt = x.dtype();
  if ((w.dtype() != dt || (b.defined() && b.dtype() != dt)) && !amp::unifies(p, {x, w, b}))
    fail<DTypeError>(op, "input, weight and bias must share a dtype, got {}, {}{}", dtype_name(dt),
                     dtype_name(w.dtype()),
                     b.defined() ? std::string(", ") + std::string(dtype_name(b.dtype())) : "");
  if (!is_floating(dt)) fail<DTypeError>(op, "expects floating tensors, got {}", dtype_name(dt));
}

Tensor run_conv(const Primitive& p, const Tensor& x, const Tensor& w, const Tensor& b,
                const Attrs& a) {
  return b.defined() ? dispatch1(p, {x, w, b}, a) : dispatch1(p, {x, w}, a);
}

Tensor conv_impl(std::string_view op, const Tensor& x, const Tensor& w, const Tensor& bias,
                 const Ints& stride, const Ints& padding, const Ints& dilation, int64_t groups) {
  static const Primitive& p = prim("conv");
  const int nsp = nsp_of(op, x);
  const Attrs a{{"stride", per_dim(op, "stride", stride, nsp)},
                {"padding", per_dim(op, "padding", padding, nsp)},
                {"dilation", per_dim(op, "dilation", dilation, nsp)},
                {"groups", groups}};
  check_conv_dtypes(op, p, x, w, bias);
  if (x.dtype() == w.dtype() && (!bias.defined() || bias.dtype() == x.dtype()))
    detail::conv_geometry(op, x, w, bias.defined() ? &bias : nullptr, a);
  return run_conv(p, x, w, bias, a);
}

Tensor conv_transpose_impl(std::string_view op, const Tensor& x, const Tensor& w,
                           const Tensor& bias, const Ints& stride, const Ints& padding,
                           const Ints& output_padding, int64_t groups, const Ints& dilation) {
  static const Primitive& p = prim("conv_transpose");
  const int nsp = nsp_of(op, x);
  const Attrs a{{"stride", per_dim(op, "stride", stride, nsp)},
                {"padding", per_dim(op, "padding", padding, nsp)},
                {"output_padding", per_dim(op, "output_padding", output_padding, nsp)},
                {"dilation", per_dim(op, "dilation", dilation, nsp)},
                {"groups", groups}};
  const Ints& s = a.get<Ints>("stride");
  const Ints& d = a.get<Ints>("dilation");
  const Ints& opad = a.get<Ints>("output_padding");
  for (int i = 0; i < nsp; ++i)  // PyTorch's rule: the extra rows must still be reachable
    if (opad[i] >= std::max(s[i], d[i]))
      fail<ValueError>(op, "output_padding {} must be smaller than stride {} or dilation {}",
                       shape_str(opad), shape_str(s), shape_str(d));
  check_conv_dtypes(op, p, x, w, bias);
  if (x.dtype() == w.dtype() && (!bias.defined() || bias.dtype() == x.dtype()))
    detail::conv_transpose_geometry(op, x, w, bias.defined() ? &bias : nullptr, a);
  return run_conv(p, x, w, bias, a);
}

Attrs max_pool_attrs(std::string_view op, int nsp, const Ints& kernel, const Ints& stride,
                     const Ints& padding, const Ints& dilation, bool ceil_mode) {
  const Ints k = per_dim(op, "kernel", kernel, nsp);
  return {{"kernel", k},
          {"stride", stride.empty() ? k : per_dim(op, "stride", stride, nsp)},
          {"padding", per_dim(op, "padding", padding, nsp)},
          {"dilation", per_dim(op, "dilation", dilation, nsp)},
          {"ceil_mode", ceil_mode}};
}

std::tuple<Tensor, Tensor> max_pool_impl(std::string_view op, const Tensor& x, const Ints& kernel,
                                         const Ints& stride, const Ints& padding,
                                         const Ints& dilation, bool ceil_mode) {
  static const Primitive& p = prim("max_pool");
  const Attrs a = max_pool_attrs(op, nsp_of(op, x), kernel, stride, padding, dilation, ceil_mode);
  detail::pool_geometry(op, x, a, true);
  std::vector<Tensor> out = dispatch(p, {x}, a);
  return {out[0], out[1]};
}

Tensor avg_pool_impl(std::string_view op, const Tensor& x, const Ints& kernel, const Ints& stride,
                     const Ints& padding, bool ceil_mode, bool count_include_pad) {
  static const Primitive& p = prim("avg_pool");
  const int nsp = nsp_of(op, x);
  const Ints k = per_dim(op, "kernel", kernel, nsp);
  const Attrs a{{"kernel", k},
                {"stride", stride.empty() ? k : per_dim(op, "stride", stride, nsp)},
                {"padding", per_dim(op, "padding", padding, nsp)},
                {"ceil_mode", ceil_mode},
                {"count_include_pad", count_include_pad}};
  detail::pool_geometry(op, x, a, false);
  return dispatch1(p, {x}, a);
}

// (out, in) matrix averaging input rows floor(i*in/out) .. ceil((i+1)*in/out) into row i.
Tensor adaptive_matrix(int64_t in, int64_t out, const Tensor& like) {
  std::vector<double> m(static_cast<size_t>(in * out), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const int64_t lo = i * in / out, hi = ((i + 1) * in + out - 1) / out;
    for (int64_t j = lo; j < hi; ++j) m[i * in + j] = 1.0 / static_cast<double>(hi - lo);
  }
  return tensor(m, Shape{out, in}).to(like.dtype()).to(like.device());
}

}  // namespace

Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
            std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  return conv_impl("conv", x, w, bias, stride, padding, dilation, groups);
}
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  check_rank("conv1d", x, 3);
  return conv_impl("conv1d", x, w, bias, stride, padding, dilation, groups);
}
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  check_rank("conv2d", x, 4);
  return conv_impl("conv2d", x, w, bias, stride, padding, dilation, groups);
}
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias, std::vector<int64_t> stride,
              std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
  check_rank("conv3d", x, 5);
  return conv_impl("conv3d", x, w, bias, stride, padding, dilation, groups);
}

Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor& bias,
                      std::vector<int64_t> stride, std::vector<int64_t> padding,
                      std::vector<int64_t> output_padding, int64_t groups,
                      std::vector<int64_t> dilation) {
  return conv_transpose_impl("conv_transpose", x, w, bias, stride, padding, output_padding, groups,
                             dilation);
}
Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& bias,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  check_rank("conv_transpose1d", x, 3);
  return conv_transpose_impl("conv_transpose1d", x, w, bias, stride, padding, output_padding,
                             groups, dilation);
}
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  check_rank("conv_transpose2d", x, 4);
  return conv_transpose_impl("conv_transpose2d", x, w, bias, stride, padding, output_padding,
                             groups, dilation);
}
Tensor conv_transpose3d(const Tensor& x, const Tensor& w, const Tensor& bias,
                        std::vector<int64_t> stride, std::vector<int64_t> padding,
                        std::vector<int64_t> output_padding, int64_t groups,
                        std::vector<int64_t> dilation) {
  check_rank("conv_transpose3d", x, 5);
  return conv_transpose_impl("conv_transpose3d", x, w, bias, stride, padding, output_padding,
                             groups, dilation);
}

std::tuple<Tensor, Tensor> max_pool_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                 std::vector<int64_t> stride,
                                                 std::vector<int64_t> padding,
                                                 std::vector<int64_t> dilation, bool ceil_mode) {
  return max_pool_impl("max_pool", x, kernel, stride, padding, dilation, ceil_mode);
}
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride,
                                                   std::vector<int64_t> padding,
                                                   std::vector<int64_t> dilation, bool ceil_mode) {
  check_rank("max_pool2d", x, 4);
  return max_pool_impl("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode);
}
Tensor max_pool1d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode) {
  check_rank("max_pool1d", x, 3);
  return std::get<0>(max_pool_impl("max_pool1d", x, kernel, stride, padding, dilation, ceil_mode));
}
Tensor max_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode) {
  check_rank("max_pool2d", x, 4);
  return std::get<0>(max_pool_impl("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode));
}
Tensor max_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, std::vector<int64_t> dilation, bool ceil_mode) {
  check_rank("max_pool3d", x, 5);
  return std::get<0>(max_pool_impl("max_pool3d", x, kernel, stride, padding, dilation, ceil_mode));
}

Tensor avg_pool(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                std::vector<int64_t> padding, bool ceil_mode, bool count_include_pad) {
  return avg_pool_impl("avg_pool", x, kernel, stride, padding, ceil_mode, count_include_pad);
}
Tensor avg_pool1d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, bool ceil_mode, bool count_include_pad) {
  check_rank("avg_pool1d", x, 3);
  return avg_pool_impl("avg_pool1d", x, kernel, stride, padding, ceil_mode, count_include_pad);
}
Tensor avg_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, bool ceil_mode, bool count_include_pad) {
  check_rank("avg_pool2d", x, 4);
  return avg_pool_impl("avg_pool2d", x, kernel, stride, padding, ceil_mode, count_include_pad);
}
Tensor avg_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride,
                  std::vector<int64_t> padding, bool ceil_mode, bool count_include_pad) {
  check_rank("avg_pool3d", x, 5);
  return avg_pool_impl("avg_pool3d", x, kernel, stride, padding, ceil_mode, count_include_pad);
}

Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size) {
  constexpr std::string_view op = "adaptive_avg_pool2d";
  check_rank(op, x, 4);
  const Ints out = per_dim(op, "output_size", output_size, 2);
  if (out[0] < 1 || out[1] < 1)
    fail<ValueError>(op, "output_size must be positive, got {}", shape_str(out));
  if (!is_floating(x.dtype()))
    fail<DTypeError>(op, "expects a floating tensor, got {}", dtype_name(x.dtype()));
  const int64_t h = x.size(2), w = x.size(3);
  if (h < 1 || w < 1) fail<ShapeError>(op, "input {} has an empty plane", shape_str(x.shape()));
  if (out[0] == 1 && out[1] == 1) return mean(x, {2, 3}, true);
  // Equal windows are a plain average pool; otherwise average rows, then columns.
  if (h % out[0] == 0 && w % out[1] == 0) {
    const Ints k{h / out[0], w / out[1]};
    return avg_pool2d(x, k, k);
  }
  return matmul(matmul(adaptive_matrix(h, out[0], x), x), adaptive_matrix(w, out[1], x).t());
}

}  // namespace tessera
