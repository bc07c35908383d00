// nn::functional convolution and pooling: argument forms (Ints, "same"/"valid") over the
// primitives of ops/nn.h.
#include "tessera/core/error.h"
#include "tessera/nn/functional.h"
#include "tessera/ops/nn.h"

namespace tessera::nn::functional {
namespace {

// Explicit padding sizes for a convolution, padding x first when "same" needs an odd total
// (the extra element goes on the right, like PyTorch).
std::vector<int64_t> resolve_padding(std::string_view op, Tensor& x, const Tensor& w,
                                     const ConvPadding& padding, const std::vector<int64_t>& stride,
                                     const std::vector<int64_t>& dilation) {
  const size_t nsp = static_cast<size_t>(w.dim()) - 2;
  if (padding.mode.empty()) return Ints(padding.v).expand(nsp, op, "padding");
  if (padding.mode == "valid") return std::vector<int64_t>(nsp, 0);
  TS_CHECK(padding.mode == "same", ValueError, op,
           "padding must be sizes, \"same\" or \"valid\", got \"{}\"", padding.mode);
  for (int64_t s : stride)
    TS_CHECK(s == 1, ValueError, op, "padding=\"same\" needs stride 1, got stride {}",
             fmt::join(stride, ", "));
  std::vector<int64_t> sym(nsp), extra;  // extra: pad() order, last spatial dim first
  bool odd = false;
  for (size_t i = nsp; i-- > 0;) {
    const int64_t total = dilation[i] * (w.size(static_cast<int64_t>(i) + 2) - 1);
    sym[i] = total / 2;
    odd = odd || total % 2 != 0;
    extra.insert(extra.end(), {0, total % 2});
  }
  if (odd) x = pad(x, extra);
  return sym;
}

Tensor conv_nd(std::string_view op, int64_t nsp, const Tensor& x, const Tensor& w, const Tensor& b,
               const Ints& stride, const ConvPadding& padding, const Ints& dilation,
               int64_t groups) {
  TS_CHECK(x.defined() && w.defined(), ValueError, op, "input and weight must be defined");
  TS_CHECK(x.dim() == nsp + 2, ShapeError, op, "expected a {}-d input (N, C, {}), got {}", nsp + 2,
           nsp == 1   ? "L"
           : nsp == 2 ? "H, W"
                      : "D, H, W",
           shape_str(x.shape()));
  TS_CHECK(w.dim() == nsp + 2, ShapeError, op, "expected a {}-d weight, got {}", nsp + 2,
           shape_str(w.shape()));
  const auto n = static_cast<size_t>(nsp);
  const auto s = stride.expand(n, op, "stride"), d = dilation.expand(n, op, "dilation");
  Tensor xp = x;
  const auto p = resolve_padding(op, xp, w, padding, s, d);
  return conv(xp, w, b, s, p, d, groups);
}

}  // namespace

Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, Ints stride, ConvPadding padding,
              Ints dilation, int64_t groups) {
  return conv_nd("conv1d", 1, x, w, b, stride, padding, dilation, groups);
}
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, Ints stride, ConvPadding padding,
              Ints dilation, int64_t groups) {
  return conv_nd("conv2d", 2, x, w, b, stride, padding, dilation, groups);
}
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& b, Ints stride, ConvPadding padding,
              Ints dilation, int64_t groups) {
  return conv_nd("conv3d", 3, x, w, b, stride, padding, dilation, groups);
}

Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& b, Ints stride,
                        Ints padding, Ints output_padding, int64_t groups, Ints dilation) {
  return tessera::conv_transpose1d(x, w, b, stride.v, padding.v, output_padding.v, groups,
                                   dilation.v);
}
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, Ints stride,
                        Ints padding, Ints output_padding, int64_t groups, Ints dilation) {
  return tessera::conv_transpose2d(x, w, b, stride.v, padding.v, output_padding.v, groups,
                                   dilation.v);
}

Tensor max_pool1d(const Tensor& x, Ints kernel, Ints stride, Ints padding, Ints dilation,
                  bool ceil_mode) {
  return tessera::max_pool1d(x, kernel.v, stride.v, padding.v, dilation.v, ceil_mode);
}
Tensor max_pool2d(const Tensor& x, Ints kernel, Ints stride, Ints padding, Ints dilation,
                  bool ceil_mode) {
  return tessera::max_pool2d(x, kernel.v, stride.v, padding.v, dilation.v, ceil_mode);
}
Tensor avg_pool1d(const Tensor& x, Ints kernel, Ints stride, Ints padding, bool ceil_mode,
                  bool count_include_pad) {
  return tessera::avg_pool1d(x, kernel.v, stride.v, padding.v, ceil_mode, count_include_pad);
}
Tensor avg_pool2d(const Tensor& x, Ints kernel, Ints stride, Ints padding, bool ceil_mode,
                  bool count_include_pad) {
  return tessera::avg_pool2d(x, kernel.v, stride.v, padding.v, ceil_mode, count_include_pad);
}
Tensor adaptive_avg_pool2d(const Tensor& x, Ints output_size) {
  return tessera::adaptive_avg_pool2d(x, output_size.v);
}

}  // namespace tessera::nn::functional
