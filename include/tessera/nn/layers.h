#pragma once
// Layers: Linear, Bilinear, convolutions, pooling, normalization, dropout, embedding, shape
// helpers and activations. Each has PyTorch's constructor arguments (the optional ones in an
// options struct filled with designated initializers), PyTorch's default initialization, a
// forward that checks its input's shape (ShapeError "[Layer] expected ..., got ...") and a
// PyTorch-like printout.
//
//   auto conv = std::make_shared<nn::Conv2d>(3, 16, 3, nn::ConvOptions{.padding = "same"});
//   auto bn = std::make_shared<nn::BatchNorm2d>(16, nn::BatchNormOptions{.momentum = 0.01});
//   Tensor y = (*bn)((*conv)(x));
#include <optional>
#include <string>

#include "tessera/nn/functional.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

// ---- linear -----------------------------------------------------------------------------------

/// y = x W^T + b; W (out, in) and b (out) start U(-1/sqrt(in), 1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;

  int64_t in_features, out_features;
  Tensor weight, bias;
};

/// y_k = x1^T W_k x2 + b_k; W (out, in1, in2).
class Bilinear : public Module {
 public:
  Bilinear(int64_t in1_features, int64_t in2_features, int64_t out_features, bool bias = true);
  using Module::forward;
  Tensor forward(const Tensor& x1, const Tensor& x2);
  Tensor operator()(const Tensor& x1, const Tensor& x2) { return forward(x1, x2); }
  void reset_parameters() override;
  std::string extra_repr() const override;

  int64_t in1_features, in2_features, out_features;
  Tensor weight, bias;
};

// ---- convolution ------------------------------------------------------------------------------

struct ConvOptions {
  Ints stride = 1;
  ConvPadding padding = 0;  ///< sizes, "same" (stride 1) or "valid"
  Ints dilation = 1;
  int64_t groups = 1;
  bool bias = true;
  std::string padding_mode = "zeros";  ///< "zeros", "reflect" or "replicate"
};

/// The convolution with `nsp` spatial dims; Conv1d/2d/3d fix nsp.
class ConvNd : public Module {
 public:
  ConvNd(int nsp, int64_t in_channels, int64_t out_channels, Ints kernel_size, ConvOptions opt);
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels;
  std::vector<int64_t> kernel_size;
  ConvOptions options;
  Tensor weight, bias;  ///< weight (out, in / groups, *kernel)

 private:
  int nsp_;
};
class Conv1d : public ConvNd {
 public:
  Conv1d(int64_t in, int64_t out, Ints kernel, ConvOptions opt = {})
      : ConvNd(1, in, out, std::move(kernel), std::move(opt)) {}
};
class Conv2d : public ConvNd {
 public:
  Conv2d(int64_t in, int64_t out, Ints kernel, ConvOptions opt = {})
      : ConvNd(2, in, out, std::move(kernel), std::move(opt)) {}
};
class Conv3d : public ConvNd {
 public:
  Conv3d(int64_t in, int64_t out, Ints kernel, ConvOptions opt = {})
      : ConvNd(3, in, out, std::move(kernel), std::move(opt)) {}
};

struct ConvTransposeOptions {
  Ints stride = 1;
  Ints padding = 0;
  Ints output_padding = 0;
  int64_t groups = 1;
  bool bias = true;
  Ints dilation = 1;
};

/// Transposed convolution with `nsp` spatial dims; weight (in, out / groups, *kernel).
class ConvTransposeNd : public Module {
 public:
  ConvTransposeNd(int nsp, int64_t in_channels, int64_t out_channels, Ints kernel_size,
                  ConvTransposeOptions opt);
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;

  int64_t in_channels, out_channels;
  std::vector<int64_t> kernel_size;
  ConvTransposeOptions options;
  Tensor weight, bias;

 private:
  int nsp_;
};
class ConvTranspose1d : public ConvTransposeNd {
 public:
  ConvTranspose1d(int64_t in, int64_t out, Ints kernel, ConvTransposeOptions opt = {})
      : ConvTransposeNd(1, in, out, std::move(kernel), std::move(opt)) {}
};
class ConvTranspose2d : public ConvTransposeNd {
 public:
  ConvTranspose2d(int64_t in, int64_t out, Ints kernel, ConvTransposeOptions opt = {})
      : ConvTransposeNd(2, in, out, std::move(kernel), std::move(opt)) {}
};

// ---- pooling ----------------------------------------------------------------------------------

struct MaxPoolOptions {
  Ints stride = std::vector<int64_t>{};  ///< empty: the kernel size
  Ints padding = 0;
  Ints dilation = 1;
  bool ceil_mode = false;
};
struct AvgPoolOptions {
  Ints stride = std::vector<int64_t>{};  ///< empty: the kernel size
  Ints padding = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;
};

class MaxPool1d : public Module {
 public:
  explicit MaxPool1d(Ints kernel_size, MaxPoolOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Ints kernel_size;
  MaxPoolOptions options;
};
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Ints kernel_size, MaxPoolOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Ints kernel_size;
  MaxPoolOptions options;
};
class AvgPool1d : public Module {
 public:
  explicit AvgPool1d(Ints kernel_size, AvgPoolOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Ints kernel_size;
  AvgPoolOptions options;
};
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Ints kernel_size, AvgPoolOptions opt = {});
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Ints kernel_size;
  AvgPoolOptions options;
};
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Ints output_size);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  Ints output_size;
};

// ---- normalization ----------------------------------------------------------------------------

struct BatchNormOptions {
  double eps = 1e-5;
  /// Running-stat update factor; nullopt: a cumulative average (factor 1 / batches seen).
  std::optional<double> momentum = 0.1;
  bool affine = true;
  bool track_running_stats = true;
};

/// Batch norm over channel dim 1. Training normalizes with the batch statistics and updates
/// running_mean / running_var / num_batches_tracked; eval uses the running statistics (or the
/// batch's when !track_running_stats). BatchNorm1d/2d/3d fix the accepted input ranks.
class BatchNormNd : public Module {
 public:
  BatchNormNd(std::vector<int64_t> ranks, int64_t num_features, BatchNormOptions opt);
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  /// Running statistics back to mean 0, variance 1, no batches seen.
  void reset_running_stats();
  std::string extra_repr() const override;

  int64_t num_features;
  BatchNormOptions options;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  std::vector<int64_t> ranks_;
};
/// Input (N, C) or (N, C, L).
class BatchNorm1d : public BatchNormNd {
 public:
  explicit BatchNorm1d(int64_t num_features, BatchNormOptions opt = {})
      : BatchNormNd({2, 3}, num_features, opt) {}
};
/// Input (N, C, H, W).
class BatchNorm2d : public BatchNormNd {
 public:
  explicit BatchNorm2d(int64_t num_features, BatchNormOptions opt = {})
      : BatchNormNd({4}, num_features, opt) {}
};
/// Input (N, C, D, H, W).
class BatchNorm3d : public BatchNormNd {
 public:
  explicit BatchNorm3d(int64_t num_features, BatchNormOptions opt = {})
      : BatchNormNd({5}, num_features, opt) {}
};

struct LayerNormOptions {
  double eps = 1e-5;
  bool elementwise_affine = true;
  bool bias = true;
};
/// Normalizes over the trailing dims normalized_shape; weight ones, bias zeros.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Ints normalized_shape, LayerNormOptions opt = {});
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;
  Shape normalized_shape;
  LayerNormOptions options;
  Tensor weight, bias;
};

struct GroupNormOptions {
  double eps = 1e-5;
  bool affine = true;
};
class GroupNorm : public Module {
 public:
  GroupNorm(int64_t num_groups, int64_t num_channels, GroupNormOptions opt = {});
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;
  int64_t num_groups, num_channels;
  GroupNormOptions options;
  Tensor weight, bias;
};

struct RMSNormOptions {
  std::optional<double> eps;  ///< nullopt: the input dtype's machine epsilon
  bool elementwise_affine = true;
};
class RMSNorm : public Module {
 public:
  explicit RMSNorm(Ints normalized_shape, RMSNormOptions opt = {});
  Tensor forward(const Tensor& x) override;
  void reset_parameters() override;
  std::string extra_repr() const override;
  Shape normalized_shape;
  RMSNormOptions options;
  Tensor weight;
};

// ---- dropout, embedding, shape ----------------------------------------------------------------

/// Zeroes elements with probability p while training (global generator); identity in eval.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p;
};

struct EmbeddingOptions {
  std::optional<int64_t> padding_idx;  ///< this row starts at zero and gets no gradient
};
/// A lookup table (num_embeddings, embedding_dim) initialized N(0, 1).
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, EmbeddingOptions opt = {});
  Tensor forward(const Tensor& indices) override;
  void reset_parameters() override;
  std::string extra_repr() const override;
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;  ///< normalized to [0, num_embeddings)
  Tensor weight;
};

class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1)
      : start_dim(start_dim), end_dim(end_dim) {}
  Tensor forward(const Tensor& x) override { return x.flatten(start_dim, end_dim); }
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};

class Identity : public Module {
 public:
  Tensor forward(const Tensor& x) override { return x; }
};

// ---- activations ------------------------------------------------------------------------------

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : negative_slope(negative_slope) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double negative_slope;
};
class ELU : public Module {
 public:
  explicit ELU(double alpha = 1.0) : alpha(alpha) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double alpha;
};
class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none") : approximate(std::move(approximate)) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  std::string approximate;  ///< "none" or "tanh"
};
class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};
class Mish : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override;
};
class Softmax : public Module {
 public:
  explicit Softmax(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t dim;
};
class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(int64_t dim) : dim(dim) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t dim;
};

}  // namespace tessera::nn
