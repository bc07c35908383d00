#pragma once
// Geometry of convolution and pooling calls, shared by the primitives (validation, output
// shapes), the CPU kernels and the autodiff rules. Internal, not installed.
#include <array>
#include <cstdint>
#include <string_view>

#include "tessera/core/tensor.h"
#include "tessera/ops/attrs.h"

namespace tessera::detail {

/// Spatial sizes right-aligned in 3 dims; unused leading dims are size 1 (kernel 1, stride 1,
/// padding 0, dilation 1), so every kernel loops over 3 spatial dims.
using Dim3 = std::array<int64_t, 3>;

inline int64_t prod3(const Dim3& v) { return v[0] * v[1] * v[2]; }

/// A convolution seen from its im2col side. `image` (n, c, *img) is the side windows are read
/// from, `grid` (n, o, *grid) the side with one value per window, and the weight is
/// (o, c / groups, *k). conv: image = x, grid = y. conv_transpose: grid = x, image = y (so its
/// weight (C_in, C_out / groups, *k) has o = C_in). conv_weight_grad: image = x, grid = dy.
struct ConvGeom {
  int nsp = 0;  ///< spatial dims of the call (1-3)
  int64_t n = 0, c = 0, o = 0, groups = 1;
  Dim3 img{1, 1, 1}, grid{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};

  int64_t cg() const { return c / groups; }
  int64_t og() const { return o / groups; }
  /// Rows of the column matrix of one group: c / groups * kernel elements.
  int64_t col_rows() const { return cg() * prod3(k); }
};

/// Output length of a convolution along one dim (the numerator must be >= 0).
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}
/// Output length of a transposed convolution along one dim.
inline int64_t conv_transpose_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d,
                                       int64_t op) {
  return (in - 1) * s - 2 * p + d * (k - 1) + 1 + op;
}

/// Validates conv(x, w[, bias]) under attrs stride/padding/dilation/groups (one value per
/// spatial dim), throwing a ShapeError/ValueError/DTypeError that names `op`.
ConvGeom conv_geometry(std::string_view op, const Tensor& x, const Tensor& w, const Tensor* bias,
                       const Attrs& a);
/// Same for conv_transpose(x, w[, bias]) (attrs add output_padding).
ConvGeom conv_transpose_geometry(std::string_view op, const Tensor& x, const Tensor& w,
                                 const Tensor* bias, const Attrs& a);
/// Same for conv_weight_grad(x, dy) (attrs add kernel). dy may cover a prefix of the output
/// positions of conv(x) (transposed convolutions with a large output_padding produce that).
ConvGeom conv_weight_grad_geometry(std::string_view op, const Tensor& x, const Tensor& dy,
                                   const Attrs& a);

/// A pooling call: planes = n * c independent (spatial) planes of size `in`, windows of `k`.
struct PoolGeom {
  int nsp = 0;
  int64_t n = 0, c = 0;
  Dim3 in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, p{0, 0, 0}, d{1, 1, 1};
  bool ceil_mode = false, count_include_pad = true;
};

/// Validates a max pool (is_max) or avg pool of x under its attrs (kernel, stride, padding,
/// dilation for max, ceil_mode, count_include_pad for avg).
PoolGeom pool_geometry(std::string_view op, const Tensor& x, const Attrs& a, bool is_max);
/// The geometry of a pooling backward: grad has the pool's output shape, the input's spatial
/// size is attr input_size.
PoolGeom pool_backward_geometry(std::string_view op, const Tensor& grad, const Attrs& a,
                                bool is_max);

}  // namespace tessera::detail
