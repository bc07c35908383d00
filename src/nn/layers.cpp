// Layers: construction with PyTorch's default initialization, input checks, printouts.
#include "tessera/nn/layers.h"

#include <algorithm>
#include <cmath>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/nn.h"

namespace tessera::nn {
namespace F = functional;
namespace {

std::string tuple_str(const std::vector<int64_t>& v) {
  return v.size() == 1 ? fmt::format("({},)", v[0]) : fmt::format("({})", fmt::join(v, ", "));
}
std::string ints_str(const Ints& v) {
  return v.v.size() == 1 ? std::to_string(v.v[0]) : tuple_str(v.v);
}
const char* bool_str(bool b) { return b ? "true" : "false"; }

// PyTorch's default for Linear and convolutions: kaiming_uniform_(a = sqrt(5)) for the weight,
// which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the bias.
void default_init(const Tensor& weight, const Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (!bias.defined()) return;
  const int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  init::uniform_(bias, -bound, bound);
}

// Runs f on x with a batch dim added when x is unbatched (rank `batched` - 1), like PyTorch.
template <class Fn>
Tensor with_batch(const Tensor& x, int64_t batched, Fn&& f) {
  if (x.dim() == batched - 1) return f(x.unsqueeze(0)).squeeze(0);
  return f(x);
}

std::string spatial_names(int nsp) { return nsp == 1 ? "L" : nsp == 2 ? "H, W" : "D, H, W"; }

// Checks an (N, C, *spatial) input (or unbatched (C, *spatial)) against the channel count.
void check_channels(const Module& m, const Tensor& x, int nsp, int64_t channels) {
  const bool rank_ok = x.dim() == nsp + 2 || x.dim() == nsp + 1;
  const bool ok = rank_ok && x.size(x.dim() - nsp - 1) == channels;
  TS_CHECK(ok, ShapeError, m.type_name(), "expected input (N, {}, {}) or ({}, {}), got {}",
           channels, spatial_names(nsp), channels, spatial_names(nsp), shape_str(x.shape()));
}

// Checks an (N, C, *spatial) or (C, *spatial) pooling input.
void check_pool_rank(const Module& m, const Tensor& x, int nsp) {
  TS_CHECK(x.dim() == nsp + 1 || x.dim() == nsp + 2, ShapeError, m.type_name(),
           "expected a {}-d or {}-d input, got {}", nsp + 1, nsp + 2, shape_str(x.shape()));
}

}  // namespace

// ---- Linear, Bilinear -------------------------------------------------------------------------

Linear::Linear(int64_t in, int64_t out, bool with_bias) : in_features(in), out_features(out) {
  TS_CHECK(in >= 0 && out >= 0, ValueError, "Linear", "sizes must be >= 0, got in={}, out={}", in,
           out);
  weight = register_parameter("weight", empty({out, in}));
  if (with_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}
void Linear::reset_parameters() { default_init(weight, bias); }
Tensor Linear::forward(const Tensor& x) {
  TS_CHECK(x.dim() >= 1 && x.size(-1) == in_features, ShapeError, "Linear",
           "expected input with last dim {}, got {}", in_features, shape_str(x.shape()));
  return F::linear(x, weight, bias);
}
std::string Linear::extra_repr() const {
  return fmt::format("in_features={}, out_features={}, bias={}", in_features, out_features,
                     bool_str(bias.defined()));
}

Bilinear::Bilinear(int64_t in1, int64_t in2, int64_t out, bool with_bias)
    : in1_features(in1), in2_features(in2), out_features(out) {
  weight = register_parameter("weight", empty({out, in1, in2}));
  if (with_bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}
void Bilinear::reset_parameters() {
  const double bound = in1_features > 0 ? 1.0 / std::sqrt(static_cast<double>(in1_features)) : 0;
  init::uniform_(weight, -bound, bound);
  if (bias.defined()) init::uniform_(bias, -bound, bound);
}
Tensor Bilinear::forward(const Tensor& x1, const Tensor& x2) {
  TS_CHECK(x1.dim() >= 1 && x1.size(-1) == in1_features, ShapeError, "Bilinear",
           "expected input1 with last dim {}, got {}", in1_features, shape_str(x1.shape()));
  TS_CHECK(x2.dim() >= 1 && x2.size(-1) == in2_features, ShapeError, "Bilinear",
           "expected input2 with last dim {}, got {}", in2_features, shape_str(x2.shape()));
  return F::bilinear(x1, x2, weight, bias);
}
std::string Bilinear::extra_repr() const {
  return fmt::format("in1_features={}, in2_features={}, out_features={}, bias={}", in1_features,
                     in2_features, out_features, bool_str(bias.defined()));
}

// ---- convolution ------------------------------------------------------------------------------

namespace {

std::string conv_name(int nsp, bool transposed) {
  return fmt::format("{}{}d", transposed ? "ConvTranspose" : "Conv", nsp);
}

void check_groups(const std::string& name, int64_t in, int64_t out, int64_t groups) {
  TS_CHECK(groups > 0, ValueError, name, "groups must be positive, got {}", groups);
  TS_CHECK(in % groups == 0, ValueError, name, "in_channels {} must be divisible by groups {}", in,
           groups);
  TS_CHECK(out % groups == 0, ValueError, name, "out_channels {} must be divisible by groups {}",
           out, groups);
}

Shape weight_shape(int64_t a, int64_t b, const std::vector<int64_t>& k) {
  Shape s{a, b};
  s.insert(s.end(), k.begin(), k.end());
  return s;
}

}  // namespace

ConvNd::ConvNd(int nsp, int64_t in, int64_t out, Ints kernel, ConvOptions opt)
    : in_channels(in), out_channels(out), options(std::move(opt)), nsp_(nsp) {
  const std::string name = conv_name(nsp, false);
  kernel_size = kernel.expand(static_cast<size_t>(nsp), name, "kernel_size");
  check_groups(name, in, out, options.groups);
  const auto& mode = options.padding_mode;
  TS_CHECK(mode == "zeros" || mode == "reflect" || mode == "replicate", ValueError, name,
           "padding_mode must be \"zeros\", \"reflect\" or \"replicate\", got \"{}\"", mode);
  const auto& pm = options.padding.mode;
  TS_CHECK(pm.empty() || pm == "same" || pm == "valid", ValueError, name,
           "padding must be sizes, \"same\" or \"valid\", got \"{}\"", pm);
  if (pm == "same")
    for (int64_t s : options.stride.v)
      TS_CHECK(s == 1, ValueError, name, "padding=\"same\" needs stride 1, got {}",
               ints_str(options.stride));
  weight = register_parameter("weight", empty(weight_shape(out, in / options.groups, kernel_size)));
  if (options.bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}

void ConvNd::reset_parameters() { default_init(weight, bias); }

namespace {

// (left, right) padding per spatial dim in pad()'s order (last dim first) for a non-zero
// padding mode, which pads explicitly before a convolution without padding.
std::vector<int64_t> explicit_pads(const ConvNd& c, int nsp) {
  const auto n = static_cast<size_t>(nsp);
  const auto d = c.options.dilation.expand(n, "conv", "dilation");
  std::vector<int64_t> pads;
  for (size_t i = n; i-- > 0;) {
    int64_t left = 0, right = 0;
    if (c.options.padding.mode == "same") {
      const int64_t total = d[i] * (c.kernel_size[i] - 1);
      left = total / 2;
      right = total - left;
    } else if (c.options.padding.mode.empty()) {
      left = right = Ints(c.options.padding.v).expand(n, "conv", "padding")[i];
    }
    pads.insert(pads.end(), {left, right});
  }
  return pads;
}

}  // namespace

Tensor ConvNd::forward(const Tensor& x) {
  check_channels(*this, x, nsp_, in_channels);
  const auto& o = options;
  return with_batch(x, nsp_ + 2, [&](const Tensor& xb) {
    if (o.padding_mode == "zeros")
      return nsp_ == 1   ? F::conv1d(xb, weight, bias, o.stride, o.padding, o.dilation, o.groups)
             : nsp_ == 2 ? F::conv2d(xb, weight, bias, o.stride, o.padding, o.dilation, o.groups)
                         : F::conv3d(xb, weight, bias, o.stride, o.padding, o.dilation, o.groups);
    const Tensor padded = F::pad(xb, explicit_pads(*this, nsp_), o.padding_mode);
    return conv(padded, weight, bias, o.stride.v, {0}, o.dilation.v, o.groups);
  });
}

std::string ConvNd::extra_repr() const {
  const auto n = static_cast<size_t>(nsp_);
  const auto& o = options;
  std::string s = fmt::format("{}, {}, kernel_size={}, stride={}", in_channels, out_channels,
                              tuple_str(kernel_size), tuple_str(o.stride.expand(n, "", "")));
  if (!o.padding.mode.empty())
    s += fmt::format(", padding={}", o.padding.mode);
  else if (std::any_of(o.padding.v.begin(), o.padding.v.end(), [](int64_t p) { return p != 0; }))
    s += fmt::format(", padding={}", tuple_str(Ints(o.padding.v).expand(n, "", "")));
  const auto d = o.dilation.expand(n, "", "");
  if (std::any_of(d.begin(), d.end(), [](int64_t v) { return v != 1; }))
    s += fmt::format(", dilation={}", tuple_str(d));
  if (o.groups != 1) s += fmt::format(", groups={}", o.groups);
  if (!bias.defined()) s += ", bias=false";
  if (o.padding_mode != "zeros") s += fmt::format(", padding_mode={}", o.padding_mode);
  return s;
}

ConvTransposeNd::ConvTransposeNd(int nsp, int64_t in, int64_t out, Ints kernel,
                                 ConvTransposeOptions opt)
    : in_channels(in), out_channels(out), options(std::move(opt)), nsp_(nsp) {
  const std::string name = conv_name(nsp, true);
  kernel_size = kernel.expand(static_cast<size_t>(nsp), name, "kernel_size");
  check_groups(name, in, out, options.groups);
  weight = register_parameter("weight", empty(weight_shape(in, out / options.groups, kernel_size)));
  if (options.bias) bias = register_parameter("bias", empty({out}));
  reset_parameters();
}

void ConvTransposeNd::reset_parameters() { default_init(weight, bias); }

Tensor ConvTransposeNd::forward(const Tensor& x) {
  check_channels(*this, x, nsp_, in_channels);
  const auto& o = options;
  return with_batch(x, nsp_ + 2, [&](const Tensor& xb) {
    return conv_transpose(xb, weight, bias, o.stride.v, o.padding.v, o.output_padding.v, o.groups,
                          o.dilation.v);
  });
}

std::string ConvTransposeNd::extra_repr() const {
  const auto n = static_cast<size_t>(nsp_);
  const auto& o = options;
  std::string s = fmt::format("{}, {}, kernel_size={}, stride={}", in_channels, out_channels,
                              tuple_str(kernel_size), tuple_str(o.stride.expand(n, "", "")));
  auto nonzero = [](const std::vector<int64_t>& v) {
    return std::any_of(v.begin(), v.end(), [](int64_t p) { return p != 0; });
  };
  if (nonzero(o.padding.v))
    s += fmt::format(", padding={}", tuple_str(o.padding.expand(n, "", "")));
  if (nonzero(o.output_padding.v))
    s += fmt::format(", output_padding={}", tuple_str(o.output_padding.expand(n, "", "")));
  const auto d = o.dilation.expand(n, "", "");
  if (std::any_of(d.begin(), d.end(), [](int64_t v) { return v != 1; }))
    s += fmt::format(", dilation={}", tuple_str(d));
  if (o.groups != 1) s += fmt::format(", groups={}", o.groups);
  if (!bias.defined()) s += ", bias=false";
  return s;
}

// ---- pooling ----------------------------------------------------------------------------------

namespace {
std::string max_pool_repr(const Ints& k, const MaxPoolOptions& o) {
  return fmt::format("kernel_size={}, stride={}, padding={}, dilation={}, ceil_mode={}",
                     ints_str(k), ints_str(o.stride.v.empty() ? k : o.stride), ints_str(o.padding),
                     ints_str(o.dilation), bool_str(o.ceil_mode));
}
std::string avg_pool_repr(const Ints& k, const AvgPoolOptions& o) {
  return fmt::format("kernel_size={}, stride={}, padding={}, ceil_mode={}, count_include_pad={}",
                     ints_str(k), ints_str(o.stride.v.empty() ? k : o.stride), ints_str(o.padding),
                     bool_str(o.ceil_mode), bool_str(o.count_include_pad));
}
}  // namespace

MaxPool1d::MaxPool1d(Ints k, MaxPoolOptions opt)
    : kernel_size(std::move(k)), options(std::move(opt)) {}
Tensor MaxPool1d::forward(const Tensor& x) {
  check_pool_rank(*this, x, 1);
  const auto& o = options;
  return with_batch(x, 3, [&](const Tensor& xb) {
    return F::max_pool1d(xb, kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode);
  });
}
std::string MaxPool1d::extra_repr() const { return max_pool_repr(kernel_size, options); }

MaxPool2d::MaxPool2d(Ints k, MaxPoolOptions opt)
    : kernel_size(std::move(k)), options(std::move(opt)) {}
Tensor MaxPool2d::forward(const Tensor& x) {
  check_pool_rank(*this, x, 2);
  const auto& o = options;
  return with_batch(x, 4, [&](const Tensor& xb) {
    return F::max_pool2d(xb, kernel_size, o.stride, o.padding, o.dilation, o.ceil_mode);
  });
}
std::string MaxPool2d::extra_repr() const { return max_pool_repr(kernel_size, options); }

AvgPool1d::AvgPool1d(Ints k, AvgPoolOptions opt)
    : kernel_size(std::move(k)), options(std::move(opt)) {}
Tensor AvgPool1d::forward(const Tensor& x) {
  check_pool_rank(*this, x, 1);
  const auto& o = options;
  return with_batch(x, 3, [&](const Tensor& xb) {
    return F::avg_pool1d(xb, kernel_size, o.stride, o.padding, o.ceil_mode, o.count_include_pad);
  });
}
std::string AvgPool1d::extra_repr() const { return avg_pool_repr(kernel_size, options); }

AvgPool2d::AvgPool2d(Ints k, AvgPoolOptions opt)
    : kernel_size(std::move(k)), options(std::move(opt)) {}
Tensor AvgPool2d::forward(const Tensor& x) {
  check_pool_rank(*this, x, 2);
  const auto& o = options;
  return with_batch(x, 4, [&](const Tensor& xb) {
    return F::avg_pool2d(xb, kernel_size, o.stride, o.padding, o.ceil_mode, o.count_include_pad);
  });
}
std::string AvgPool2d::extra_repr() const { return avg_pool_repr(kernel_size, options); }

AdaptiveAvgPool2d::AdaptiveAvgPool2d(Ints out) : output_size(std::move(out)) {}
Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  check_pool_rank(*this, x, 2);
  return with_batch(x, 4,
                    [&](const Tensor& xb) { return F::adaptive_avg_pool2d(xb, output_size); });
}
std::string AdaptiveAvgPool2d::extra_repr() const { return "output_size=" + ints_str(output_size); }

// ---- normalization ----------------------------------------------------------------------------

BatchNormNd::BatchNormNd(std::vector<int64_t> ranks, int64_t n, BatchNormOptions opt)
    : num_features(n), options(opt), ranks_(std::move(ranks)) {
  TS_CHECK(n > 0, ValueError, "BatchNorm", "num_features must be positive, got {}", n);
  if (options.affine) {
    weight = register_parameter("weight", empty({n}));
    bias = register_parameter("bias", empty({n}));
  }
  if (options.track_running_stats) {
    running_mean = register_buffer("running_mean", zeros({n}));
    running_var = register_buffer("running_var", ones({n}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  }
  reset_parameters();
}

void BatchNormNd::reset_running_stats() {
  if (!options.track_running_stats) return;
  init::zeros_(running_mean);
  init::ones_(running_var);
  init::zeros_(num_batches_tracked);
}

void BatchNormNd::reset_parameters() {
  reset_running_stats();
  if (!options.affine) return;
  init::ones_(weight);
  init::zeros_(bias);
}

Tensor BatchNormNd::forward(const Tensor& x) {
  const bool rank_ok = std::find(ranks_.begin(), ranks_.end(), x.dim()) != ranks_.end();
  TS_CHECK(rank_ok && x.size(1) == num_features, ShapeError, type_name(),
           "expected a {}-d input with {} channels (dim 1), got {}", fmt::join(ranks_, "- or "),
           num_features, shape_str(x.shape()));
  double factor = options.momentum.value_or(0.0);
  if (is_training() && options.track_running_stats) {
    {
      autograd::NoGradGuard no_grad;
      num_batches_tracked.add_(1);
    }
    if (!options.momentum)  // cumulative moving average
      factor = 1.0 / static_cast<double>(num_batches_tracked.item<int64_t>());
  }
  const bool use_batch_stats = is_training() || !options.track_running_stats;
  return F::batch_norm(x, running_mean, running_var, weight, bias, use_batch_stats, factor,
                       options.eps);
}

std::string BatchNormNd::extra_repr() const {
  const std::string m = options.momentum ? fmt::format("{}", *options.momentum) : "None";
  return fmt::format("{}, eps={}, momentum={}, affine={}, track_running_stats={}", num_features,
                     options.eps, m, bool_str(options.affine),
                     bool_str(options.track_running_stats));
}

LayerNorm::LayerNorm(Ints shape, LayerNormOptions opt)
    : normalized_shape(std::move(shape.v)), options(opt) {
  if (options.elementwise_affine) {
    weight = register_parameter("weight", empty(normalized_shape));
    if (options.bias) bias = register_parameter("bias", empty(normalized_shape));
  }
  reset_parameters();
}
void LayerNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}
Tensor LayerNorm::forward(const Tensor& x) {
  const auto k = static_cast<int64_t>(normalized_shape.size());
  const bool ok = x.dim() >= k && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape;
  TS_CHECK(ok, ShapeError, "LayerNorm", "expected input with trailing dims {}, got {}",
           tuple_str(normalized_shape), shape_str(x.shape()));
  return F::layer_norm(x, normalized_shape, weight, bias, options.eps);
}
std::string LayerNorm::extra_repr() const {
  return fmt::format("{}, eps={}, elementwise_affine={}", tuple_str(normalized_shape), options.eps,
                     bool_str(options.elementwise_affine));
}

GroupNorm::GroupNorm(int64_t groups, int64_t channels, GroupNormOptions opt)
    : num_groups(groups), num_channels(channels), options(opt) {
  TS_CHECK(groups > 0 && channels % groups == 0, ValueError, "GroupNorm",
           "num_channels {} must be divisible by num_groups {}", channels, groups);
  if (options.affine) {
    weight = register_parameter("weight", empty({channels}));
    bias = register_parameter("bias", empty({channels}));
  }
  reset_parameters();
}
void GroupNorm::reset_parameters() {
  if (!options.affine) return;
  init::ones_(weight);
  init::zeros_(bias);
}
Tensor GroupNorm::forward(const Tensor& x) {
  TS_CHECK(x.dim() >= 2 && x.size(1) == num_channels, ShapeError, "GroupNorm",
           "expected input (N, {}, *), got {}", num_channels, shape_str(x.shape()));
  return F::group_norm(x, num_groups, weight, bias, options.eps);
}
std::string GroupNorm::extra_repr() const {
  return fmt::format("{}, {}, eps={}, affine={}", num_groups, num_channels, options.eps,
                     bool_str(options.affine));
}

RMSNorm::RMSNorm(Ints shape, RMSNormOptions opt)
    : normalized_shape(std::move(shape.v)), options(opt) {
  if (options.elementwise_affine) weight = register_parameter("weight", empty(normalized_shape));
  reset_parameters();
}
void RMSNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
}
Tensor RMSNorm::forward(const Tensor& x) {
  const auto k = static_cast<int64_t>(normalized_shape.size());
  const bool ok = x.dim() >= k && Shape(x.shape().end() - k, x.shape().end()) == normalized_shape;
  TS_CHECK(ok, ShapeError, "RMSNorm", "expected input with trailing dims {}, got {}",
           tuple_str(normalized_shape), shape_str(x.shape()));
  return F::rms_norm(x, normalized_shape, weight, options.eps);
}
std::string RMSNorm::extra_repr() const {
  const std::string e = options.eps ? fmt::format("{}", *options.eps) : "None";
  return fmt::format("{}, eps={}, elementwise_affine={}", tuple_str(normalized_shape), e,
                     bool_str(options.elementwise_affine));
}

// ---- dropout, embedding, shape ----------------------------------------------------------------

Dropout::Dropout(double prob) : p(prob) {
  TS_CHECK(p >= 0.0 && p <= 1.0, ValueError, "Dropout", "p must be in [0, 1], got {}", p);
}
Tensor Dropout::forward(const Tensor& x) { return F::dropout(x, p, is_training()); }
std::string Dropout::extra_repr() const { return fmt::format("p={}", p); }

Embedding::Embedding(int64_t num, int64_t dim, EmbeddingOptions opt)
    : num_embeddings(num), embedding_dim(dim) {
  if (opt.padding_idx) {
    const int64_t p = *opt.padding_idx;
    TS_CHECK(p >= -num && p < num, IndexError, "Embedding",
             "padding_idx {} is out of range for {} embeddings", p, num);
    padding_idx = p < 0 ? p + num : p;
  }
  weight = register_parameter("weight", empty({num, dim}));
  reset_parameters();
}
void Embedding::reset_parameters() {
  init::normal_(weight);
  if (!padding_idx) return;
  autograd::NoGradGuard no_grad;
  weight.select(0, *padding_idx).zero_();
}
Tensor Embedding::forward(const Tensor& indices) {
  return F::embedding(indices, weight, padding_idx);
}
std::string Embedding::extra_repr() const {
  std::string s = fmt::format("{}, {}", num_embeddings, embedding_dim);
  if (padding_idx) s += fmt::format(", padding_idx={}", *padding_idx);
  return s;
}

std::string Flatten::extra_repr() const {
  return fmt::format("start_dim={}, end_dim={}", start_dim, end_dim);
}

// ---- activations ------------------------------------------------------------------------------

Tensor ReLU::forward(const Tensor& x) { return F::relu(x); }
Tensor LeakyReLU::forward(const Tensor& x) { return F::leaky_relu(x, negative_slope); }
std::string LeakyReLU::extra_repr() const {
  return fmt::format("negative_slope={}", negative_slope);
}
Tensor ELU::forward(const Tensor& x) { return F::elu(x, alpha); }
std::string ELU::extra_repr() const { return fmt::format("alpha={}", alpha); }
Tensor GELU::forward(const Tensor& x) { return F::gelu(x, approximate); }
std::string GELU::extra_repr() const { return fmt::format("approximate='{}'", approximate); }
Tensor SiLU::forward(const Tensor& x) { return F::silu(x); }
Tensor Mish::forward(const Tensor& x) { return F::mish(x); }
Tensor Tanh::forward(const Tensor& x) { return F::tanh(x); }
Tensor Sigmoid::forward(const Tensor& x) { return F::sigmoid(x); }
Tensor Softmax::forward(const Tensor& x) { return F::softmax(x, dim); }
std::string Softmax::extra_repr() const { return fmt::format("dim={}", dim); }
Tensor LogSoftmax::forward(const Tensor& x) { return F::log_softmax(x, dim); }
std::string LogSoftmax::extra_repr() const { return fmt::format("dim={}", dim); }

}  // namespace tessera::nn
