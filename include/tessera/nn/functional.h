#pragma once
// nn::functional: layers as functions of their inputs and parameters (torch.nn.functional).
// Everything is composed of differentiable public ops, so autograd, jvp and vmap all work.
//
//   namespace F = tessera::nn::functional;
//   Tensor h = F::relu(F::linear(x, w, b));
//   Tensor y = F::conv2d(img, k, {}, /*stride=*/2, /*padding=*/"same");
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {

/// A list of sizes where one value means "the same for every dim": 2, {2, 3} or a vector.
struct Ints {
  std::vector<int64_t> v;
  Ints(int64_t x) : v{x} {}                          // NOLINT(google-explicit-constructor)
  Ints(int x) : v{x} {}                              // NOLINT(google-explicit-constructor)
  Ints(std::initializer_list<int64_t> l) : v(l) {}   // NOLINT(google-explicit-constructor)
  Ints(std::vector<int64_t> x) : v(std::move(x)) {}  // NOLINT(google-explicit-constructor)
  /// The value for each of n dims (ValueError naming op when the length is neither 1 nor n).
  std::vector<int64_t> expand(size_t n, std::string_view op, std::string_view what) const;
};

/// Convolution padding: sizes (like Ints) or "same" / "valid".
struct ConvPadding {
  std::vector<int64_t> v;
  std::string mode;                 ///< "" (explicit sizes), "same" or "valid"
  ConvPadding(int64_t x) : v{x} {}  // NOLINT
  ConvPadding(int x) : v{x} {}      // NOLINT
  ConvPadding(std::initializer_list<int64_t> l) : v(l) {}   // NOLINT
  ConvPadding(std::vector<int64_t> x) : v(std::move(x)) {}  // NOLINT
  ConvPadding(const char* m) : mode(m) {}                   // NOLINT
  ConvPadding(std::string m) : mode(std::move(m)) {}        // NOLINT
};

}  // namespace tessera::nn

namespace tessera::nn::functional {

using tessera::pad;  ///< pad(x, {left, right, top, bottom, ...}, mode, value)

// ---- linear -----------------------------------------------------------------------------------
/// x @ w^T + b; x (*, in), w (out, in), b (out) or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = {});
/// y_k = x1^T w_k x2 + b_k; x1 (*, in1), x2 (*, in2), w (out, in1, in2), b (out).
Tensor bilinear(const Tensor& x1, const Tensor& x2, const Tensor& w, const Tensor& b = {});

// ---- convolution and pooling (x batched: (N, C, *spatial)) -------------------------------------
/// padding "same" keeps the size (stride 1 only; odd totals pad one more on the right, like
/// PyTorch); "valid" is no padding.
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Ints stride = 1,
              ConvPadding padding = 0, Ints dilation = 1, int64_t groups = 1);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Ints stride = 1,
              ConvPadding padding = 0, Ints dilation = 1, int64_t groups = 1);
Tensor conv3d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Ints stride = 1,
              ConvPadding padding = 0, Ints dilation = 1, int64_t groups = 1);
/// w (C_in, C_out / groups, kH, kW).
Tensor conv_transpose1d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Ints stride = 1,
                        Ints padding = 0, Ints output_padding = 0, int64_t groups = 1,
                        Ints dilation = 1);
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = {}, Ints stride = 1,
                        Ints padding = 0, Ints output_padding = 0, int64_t groups = 1,
                        Ints dilation = 1);
/// stride empty ({}) = kernel size.
Tensor max_pool1d(const Tensor& x, Ints kernel, Ints stride = std::vector<int64_t>{},
                  Ints padding = 0, Ints dilation = 1, bool ceil_mode = false);
Tensor max_pool2d(const Tensor& x, Ints kernel, Ints stride = std::vector<int64_t>{},
                  Ints padding = 0, Ints dilation = 1, bool ceil_mode = false);
Tensor avg_pool1d(const Tensor& x, Ints kernel, Ints stride = std::vector<int64_t>{},
                  Ints padding = 0, bool ceil_mode = false, bool count_include_pad = true);
Tensor avg_pool2d(const Tensor& x, Ints kernel, Ints stride = std::vector<int64_t>{},
                  Ints padding = 0, bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool2d(const Tensor& x, Ints output_size);

// ---- normalization ----------------------------------------------------------------------------
/// Batch norm of x (N, C, *): in training, normalizes with the batch's statistics and (when
/// running stats are given) updates them in place: r = (1 - momentum) r + momentum * batch
/// (the unbiased variance for running_var); in eval, normalizes with the running statistics.
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight = {}, const Tensor& bias = {}, bool training = false,
                  double momentum = 0.1, double eps = 1e-5);
/// Normalizes over the trailing dims given by normalized_shape.
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
/// Normalizes x (N, C, *) over groups of C / num_groups channels; weight/bias (C).
Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);
/// x / sqrt(mean(x^2) + eps) * weight over the trailing dims; eps default: the dtype's epsilon.
Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                std::optional<double> eps = {});

// ---- dropout and embedding --------------------------------------------------------------------
/// Zeroes each element with probability p (global generator) and scales the rest by 1/(1-p);
/// identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p = 0.5, bool training = true);
/// Rows of weight (num, dim) at integer indices (any shape) -> (*indices.shape, dim). The
/// padding_idx row gets no gradient.
Tensor embedding(const Tensor& indices, const Tensor& weight,
                 std::optional<int64_t> padding_idx = {});

// ---- activations ------------------------------------------------------------------------------
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// x for x > 0, alpha (exp(x) - 1) otherwise.
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor gelu(const Tensor& x, std::string_view approximate = "none");
Tensor silu(const Tensor& x);
/// x tanh(softplus(x)).
Tensor mish(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);

// ---- attention --------------------------------------------------------------------------------
/// softmax(q k^T * scale + mask) v over q (*, L, E), k (*, S, E), v (*, S, Ev). attn_mask
/// (broadcastable to (*, L, S)): bool (true = may attend) or additive float. is_causal masks
/// key j > query i (top-left aligned, like PyTorch). scale default 1/sqrt(E). dropout_p
/// applies to the attention weights (global generator).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask = {}, double dropout_p = 0.0,
                                    bool is_causal = false, std::optional<double> scale = {});

}  // namespace tessera::nn::functional
