#pragma once
// Convolution and pooling over batched inputs (N, C, *spatial) with 1, 2 or 3 spatial dims.
// Spatial-parameter vectors of length 1 apply to every spatial dim (PyTorch's semantics).
//
//   Tensor y = conv2d(x, w, b, {2}, {1});             // stride 2, padding 1
//   auto [v, idx] = max_pool2d_with_indices(y, {2});  // 2x2 windows, stride 2
#include <cstdint>
#include <tuple>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

/// x (N, C_in, *spatial), w (C_out, C_in / groups, *kernel), bias (C_out) or undefined.
Tensor conv(const Tensor& x, const Tensor& w, const Tensor& bias = {},
            std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
            std::vector<int64_t> dilation = {1}, int64_t groups = 1);
/// conv for x (N, C_in, L).
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
              std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
              std::vector<int64_t> dilation = {1}, int64_t groups = 1);
/// conv for x (N, C_in, H, W).
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
              std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
              std::vector<int64_t> dilation = {1}, int64_t groups = 1);
/// conv for x (N, C_in, D, H, W).
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
              std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
              std::vector<int64_t> dilation = {1}, int64_t groups = 1);

/// Transposed convolution (the gradient of conv with respect to its input) with 1-3 spatial
/// dims: x (N, C_in, *spatial), w (C_in, C_out / groups, *kernel), bias (C_out) or undefined.
/// Output size per dim: (in - 1) * stride - 2 * padding + dilation * (k - 1) + 1 + output_padding.
Tensor conv_transpose(const Tensor& x, const Tensor& w, const Tensor& bias = {},
                      std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
                      std::vector<int64_t> output_padding = {0}, int64_t groups = 1,
                      std::vector<int64_t> dilation = {1});
/// conv_transpose for x (N, C_in, L).
Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
                        std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
                        std::vector<int64_t> output_padding = {0}, int64_t groups = 1,
                        std::vector<int64_t> dilation = {1});
/// conv_transpose for x (N, C_in, H, W); w (C_in, C_out / groups, kH, kW).
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
                        std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
                        std::vector<int64_t> output_padding = {0}, int64_t groups = 1,
                        std::vector<int64_t> dilation = {1});
/// conv_transpose for x (N, C_in, D, H, W).
Tensor conv_transpose3d(const Tensor& x, const Tensor& w, const Tensor& bias = {},
                        std::vector<int64_t> stride = {1}, std::vector<int64_t> padding = {0},
                        std::vector<int64_t> output_padding = {0}, int64_t groups = 1,
                        std::vector<int64_t> dilation = {1});

/// Max pooling with 1-3 spatial dims (x.dim() - 2). stride empty = kernel size. Returns
/// (values, int64 indices into the flattened spatial plane of each (n, c), like PyTorch).
std::tuple<Tensor, Tensor> max_pool_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                 std::vector<int64_t> stride = {},
                                                 std::vector<int64_t> padding = {0},
                                                 std::vector<int64_t> dilation = {1},
                                                 bool ceil_mode = false);
/// max_pool_with_indices for x (N, C, H, W).
std::tuple<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, std::vector<int64_t> kernel,
                                                   std::vector<int64_t> stride = {},
                                                   std::vector<int64_t> padding = {0},
                                                   std::vector<int64_t> dilation = {1},
                                                   bool ceil_mode = false);
/// Max pooling values for x (N, C, L).
Tensor max_pool1d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, std::vector<int64_t> dilation = {1},
                  bool ceil_mode = false);
/// Max pooling values for x (N, C, H, W).
Tensor max_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, std::vector<int64_t> dilation = {1},
                  bool ceil_mode = false);
/// Max pooling values for x (N, C, D, H, W).
Tensor max_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, std::vector<int64_t> dilation = {1},
                  bool ceil_mode = false);

/// Average pooling with 1-3 spatial dims. count_include_pad: padded zeros count in the divisor.
Tensor avg_pool(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                std::vector<int64_t> padding = {0}, bool ceil_mode = false,
                bool count_include_pad = true);
/// avg_pool for x (N, C, L).
Tensor avg_pool1d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, bool ceil_mode = false,
                  bool count_include_pad = true);
/// avg_pool for x (N, C, H, W).
Tensor avg_pool2d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, bool ceil_mode = false,
                  bool count_include_pad = true);
/// avg_pool for x (N, C, D, H, W).
Tensor avg_pool3d(const Tensor& x, std::vector<int64_t> kernel, std::vector<int64_t> stride = {},
                  std::vector<int64_t> padding = {0}, bool ceil_mode = false,
                  bool count_include_pad = true);

/// Adaptive average pooling of x (N, C, H, W) to output_size (length 1 or 2): output cell i
/// averages input rows floor(i * H / out) to ceil((i + 1) * H / out), like PyTorch.
Tensor adaptive_avg_pool2d(const Tensor& x, std::vector<int64_t> output_size);

}  // namespace tessera
