// tessera.nn.functional (layers as functions: linear, conv2d, softmax, losses, attention, ...) and
// tessera.nn.init (in-place initializers returning the tensor they were given).
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
namespace F = nn::functional;

// The numel of the larger operand decides whether the GIL is worth releasing.
int64_t size_of(const Tensor& a, const Tensor& b = {}) {
  return std::max(a.numel(), b.defined() ? b.numel() : 0);
}

void def_linear_conv(nb::module_& f) {
  f.def(
       "linear",
       [](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) {
         ReleaseGilIfLarge gil(size_of(x, w) * 4);
         return F::linear(x, w, opt(b));
       },
       "input"_a, "weight"_a, "bias"_a = nb::none(), "input @ weight^T + bias.")
      .def(
          "bilinear",
          [](const Tensor& a, const Tensor& b, const Tensor& w, const std::optional<Tensor>& bias) {
            ReleaseGilIfLarge gil(size_of(a, w) * 4);
            return F::bilinear(a, b, w, opt(bias));
          },
          "input1"_a, "input2"_a, "weight"_a, "bias"_a = nb::none(),
          "y_k = input1^T weight_k input2 + bias_k.");
  using Conv = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, nn::Ints, nn::ConvPadding,
                          nn::Ints, int64_t);
  const std::tuple<const char*, Conv, const char*> convs[] = {
      {"conv1d", &F::conv1d,
       "1-d convolution of (N, C_in, L) with weight (C_out, C_in/groups, k)."},
      {"conv2d", &F::conv2d,
       "2-d convolution of (N, C_in, H, W) with weight (C_out, C_in/groups, kH, kW); padding "
       "sizes, 'same' or 'valid'."},
      {"conv3d", &F::conv3d, "3-d convolution of (N, C_in, D, H, W)."}};
  for (const auto& [name, fn, doc] : convs)
    f.def(
        name,
        [fn = fn](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
                  const IntsArg& stride, const PaddingArg& padding, const IntsArg& dilation,
                  int64_t groups) {
          ReleaseGilIfLarge gil(size_of(x, w) * 8);
          return fn(x, w, opt(b), to_ints(stride), to_padding(padding), to_ints(dilation), groups);
        },
        "input"_a, "weight"_a, "bias"_a = nb::none(), "stride"_a = 1, "padding"_a = 0,
        "dilation"_a = 1, "groups"_a = 1, doc);
  using ConvT = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, nn::Ints, nn::Ints,
                           nn::Ints, int64_t, nn::Ints);
  const std::tuple<const char*, ConvT, const char*> convts[] = {
      {"conv_transpose1d", &F::conv_transpose1d,
       "1-d transposed convolution; weight (C_in, C_out/groups, k)."},
      {"conv_transpose2d", &F::conv_transpose2d,
       "2-d transposed convolution; weight (C_in, C_out/groups, kH, kW)."}};
  for (const auto& [name, fn, doc] : convts)
    f.def(
        name,
        [fn = fn](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
                  const IntsArg& stride, const IntsArg& padding, const IntsArg& output_padding,
                  int64_t groups, const IntsArg& dilation) {
          ReleaseGilIfLarge gil(size_of(x, w) * 8);
          return fn(x, w, opt(b), to_ints(stride), to_ints(padding), to_ints(output_padding),
                    groups, to_ints(dilation));
        },
        "input"_a, "weight"_a, "bias"_a = nb::none(), "stride"_a = 1, "padding"_a = 0,
        "output_padding"_a = 0, "groups"_a = 1, "dilation"_a = 1, doc);
}

void def_pooling(nb::module_& f) {
  using MaxPool = Tensor (*)(const Tensor&, nn::Ints, nn::Ints, nn::Ints, nn::Ints, bool);
  for (auto [name, fn] : {std::pair<const char*, MaxPool>{"max_pool1d", &F::max_pool1d},
                          std::pair<const char*, MaxPool>{"max_pool2d", &F::max_pool2d}})
    f.def(
        name,
        [fn = fn](const Tensor& x, const IntsArg& kernel, const std::optional<IntsArg>& stride,
                  const IntsArg& padding, const IntsArg& dilation, bool ceil_mode) {
          ReleaseGilIfLarge gil(x.numel());
          return fn(x, to_ints(kernel), to_ints_or_empty(stride), to_ints(padding),
                    to_ints(dilation), ceil_mode);
        },
        "input"_a, "kernel_size"_a, "stride"_a = nb::none(), "padding"_a = 0, "dilation"_a = 1,
        nb::kw_only(), "ceil_mode"_a = false,
        "Max over sliding windows (stride None: the kernel size).");
  using AvgPool = Tensor (*)(const Tensor&, nn::Ints, nn::Ints, nn::Ints, bool, bool);
  for (auto [name, fn] : {std::pair<const char*, AvgPool>{"avg_pool1d", &F::avg_pool1d},
                          std::pair<const char*, AvgPool>{"avg_pool2d", &F::avg_pool2d}})
    f.def(
        name,
        [fn = fn](const Tensor& x, const IntsArg& kernel, const std::optional<IntsArg>& stride,
                  const IntsArg& padding, bool ceil_mode, bool count_include_pad) {
          ReleaseGilIfLarge gil(x.numel());
          return fn(x, to_ints(kernel), to_ints_or_empty(stride), to_ints(padding), ceil_mode,
                    count_include_pad);
        },
        "input"_a, "kernel_size"_a, "stride"_a = nb::none(), "padding"_a = 0, "ceil_mode"_a = false,
        "count_include_pad"_a = true, "Mean over sliding windows (stride None: the kernel size).");
  f.def(
      "adaptive_avg_pool2d",
      [](const Tensor& x, const IntsArg& output_size) {
        ReleaseGilIfLarge gil(x.numel());
        return F::adaptive_avg_pool2d(x, to_ints(output_size));
      },
      "input"_a, "output_size"_a, "Mean pooling of (N, C, H, W) to output_size.");
}

void def_normalization(nb::module_& f) {
  f.def(
       "batch_norm",
       [](const Tensor& x, const std::optional<Tensor>& running_mean,
          const std::optional<Tensor>& running_var, const std::optional<Tensor>& weight,
          const std::optional<Tensor>& bias, bool training, double momentum, double eps) {
         ReleaseGilIfLarge gil(x.numel());
         return F::batch_norm(x, opt(running_mean), opt(running_var), opt(weight), opt(bias),
                              training, momentum, eps);
       },
       "input"_a, "running_mean"_a.none(), "running_var"_a.none(), "weight"_a = nb::none(),
       "bias"_a = nb::none(), "training"_a = false, "momentum"_a = 0.1, "eps"_a = 1e-5,
       "Batch norm over channel dim 1; in training, running stats (when given) are updated in "
       "place.")
      .def(
          "layer_norm",
          [](const Tensor& x, const IntsArg& shape, const std::optional<Tensor>& weight,
             const std::optional<Tensor>& bias, double eps) {
            ReleaseGilIfLarge gil(x.numel());
            return F::layer_norm(x, to_ints(shape).v, opt(weight), opt(bias), eps);
          },
          "input"_a, "normalized_shape"_a, "weight"_a = nb::none(), "bias"_a = nb::none(),
          "eps"_a = 1e-5, "Normalizes over the trailing normalized_shape dims.")
      .def(
          "group_norm",
          [](const Tensor& x, int64_t groups, const std::optional<Tensor>& weight,
             const std::optional<Tensor>& bias, double eps) {
            ReleaseGilIfLarge gil(x.numel());
            return F::group_norm(x, groups, opt(weight), opt(bias), eps);
          },
          "input"_a, "num_groups"_a, "weight"_a = nb::none(), "bias"_a = nb::none(), "eps"_a = 1e-5,
          "Normalizes (N, C, *) over num_groups groups of channels.")
      .def(
          "rms_norm",
          [](const Tensor& x, const IntsArg& shape, const std::optional<Tensor>& weight,
             std::optional<double> eps) {
            ReleaseGilIfLarge gil(x.numel());
            return F::rms_norm(x, to_ints(shape).v, opt(weight), eps);
          },
          "input"_a, "normalized_shape"_a, "weight"_a = nb::none(), "eps"_a = nb::none(),
          "x / sqrt(mean(x^2) + eps) * weight over the trailing dims (eps None: the dtype's "
          "epsilon).");
}

void def_activations(nb::module_& f) {
  using Unary = Tensor (*)(const Tensor&);
  // Those that take PyTorch's `inplace` flag (accepted; the result is always a new tensor).
  const std::tuple<const char*, Unary, const char*> with_inplace[] = {
      {"relu", &F::relu, "max(x, 0)."},
      {"silu", &F::silu, "x * sigmoid(x)."},
      {"mish", &F::mish, "x * tanh(softplus(x))."}};
  for (const auto& [name, fn, doc] : with_inplace)
    f.def(
        name,
        [fn = fn](const Tensor& x, bool) {
          ReleaseGilIfLarge gil(x.numel());
          return fn(x);
        },
        "input"_a, "inplace"_a = false, doc);
  const std::tuple<const char*, Unary, const char*> plain[] = {
      {"tanh", &F::tanh, "tanh(x)."}, {"sigmoid", &F::sigmoid, "1 / (1 + exp(-x))."}};
  for (const auto& [name, fn, doc] : plain)
    f.def(
        name,
        [fn = fn](const Tensor& x) {
          ReleaseGilIfLarge gil(x.numel());
          return fn(x);
        },
        "input"_a, doc);
  f.def(
       "leaky_relu", [](const Tensor& x, double slope, bool) { return F::leaky_relu(x, slope); },
       "input"_a, "negative_slope"_a = 0.01, "inplace"_a = false,
       "x for x > 0, negative_slope * x otherwise.")
      .def(
          "elu", [](const Tensor& x, double alpha, bool) { return F::elu(x, alpha); }, "input"_a,
          "alpha"_a = 1.0, "inplace"_a = false, "x for x > 0, alpha * (exp(x) - 1) otherwise.")
      .def(
          "gelu",
          [](const Tensor& x, const std::string& approximate) { return F::gelu(x, approximate); },
          "input"_a, "approximate"_a = "none", "x * Phi(x) ('tanh': the tanh approximation).")
      .def("softplus", &F::softplus, "input"_a, "beta"_a = 1.0, "threshold"_a = 20.0,
           "log(1 + exp(beta x)) / beta (x itself where beta x > threshold).");
  for (auto [name, fn] :
       {std::pair<const char*, Tensor (*)(const Tensor&, int64_t)>{"softmax", &F::softmax},
        std::pair<const char*, Tensor (*)(const Tensor&, int64_t)>{"log_softmax", &F::log_softmax}})
    f.def(
        name,
        [fn = fn](const Tensor& x, int64_t dim, std::optional<DType> dtype) {
          ReleaseGilIfLarge gil(x.numel());
          return fn(dtype ? x.to(*dtype) : x, dim);
        },
        "input"_a, "dim"_a, nb::kw_only(), "dtype"_a = nb::none(),
        std::string(name) == "softmax" ? "exp(x) / sum(exp(x)) along dim (dtype: convert first)."
                                       : "log(softmax(x)) along dim, computed stably.");
}

void def_dropout_embedding_attention(nb::module_& f) {
  f.def(
       "dropout",
       [](const Tensor& x, double p, bool training, bool) {
         ReleaseGilIfLarge gil(x.numel());
         return F::dropout(x, p, training);
       },
       "input"_a, "p"_a = 0.5, "training"_a = true, "inplace"_a = false,
       "Zeroes elements with probability p and scales the rest by 1/(1-p) (identity unless "
       "training).")
      .def(
          "embedding",
          [](const Tensor& idx, const Tensor& weight, std::optional<int64_t> padding_idx) {
            return F::embedding(idx, weight, padding_idx);
          },
          "input"_a, "weight"_a, "padding_idx"_a = nb::none(),
          "Rows of weight at the integer indices in input (shape (*input.shape, dim)).")
      .def(
          "scaled_dot_product_attention",
          [](const Tensor& q, const Tensor& k, const Tensor& v,
             const std::optional<Tensor>& attn_mask, double dropout_p, bool is_causal,
             std::optional<double> scale) {
            ReleaseGilIfLarge gil(q.numel() * std::max<int64_t>(1, k.dim() >= 2 ? k.size(-2) : 1));
            return F::scaled_dot_product_attention(q, k, v, opt(attn_mask), dropout_p, is_causal,
                                                   scale);
          },
          "query"_a, "key"_a, "value"_a, "attn_mask"_a = nb::none(), "dropout_p"_a = 0.0,
          "is_causal"_a = false, nb::kw_only(), "scale"_a = nb::none(),
          "softmax(q k^T * scale + mask) v; a bool attn_mask is True where attention is "
          "allowed, a float one is added to the scores.")
      .def(
          "pad",
          [](const Tensor& x, const std::vector<int64_t>& pad, const std::string& mode,
             std::optional<double> value) { return tessera::pad(x, pad, mode, value.value_or(0)); },
          "input"_a, "pad"_a, "mode"_a = "constant", "value"_a = nb::none(),
          "Pads the last dims: pad = (left, right, top, bottom, ...); mode 'constant', "
          "'reflect' or 'replicate'.");
}

// ---- losses ----------------------------------------------------------------------------------

void def_losses(nb::module_& f) {
  using Pointwise = Tensor (*)(const Tensor&, const Tensor&, nn::Reduction);
  for (auto [name, fn, doc] :
       {std::tuple<const char*, Pointwise, const char*>{"mse_loss", &F::mse_loss,
                                                        "Mean (or sum) of (input - target)^2."},
        std::tuple<const char*, Pointwise, const char*>{"l1_loss", &F::l1_loss,
                                                        "Mean (or sum) of |input - target|."}})
    f.def(
        name,
        [fn = fn](const Tensor& x, const Tensor& y, const std::string& reduction) {
          return fn(x, y, to_reduction(reduction, "loss"));
        },
        "input"_a, "target"_a, nb::kw_only(), "reduction"_a = "mean", doc);
  f.def(
       "smooth_l1_loss",
       [](const Tensor& x, const Tensor& y, const std::string& reduction, double beta) {
         return F::smooth_l1_loss(x, y, to_reduction(reduction, "smooth_l1_loss"), beta);
       },
       "input"_a, "target"_a, nb::kw_only(), "reduction"_a = "mean", "beta"_a = 1.0,
       "0.5 d^2 / beta where d = |input - target| < beta, else d - 0.5 beta.")
      .def(
          "huber_loss",
          [](const Tensor& x, const Tensor& y, const std::string& reduction, double delta) {
            return F::huber_loss(x, y, to_reduction(reduction, "huber_loss"), delta);
          },
          "input"_a, "target"_a, nb::kw_only(), "reduction"_a = "mean", "delta"_a = 1.0,
          "0.5 d^2 where d < delta, else delta (d - 0.5 delta).")
      .def(
          "cross_entropy",
          [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& weight,
             int64_t ignore_index, const std::string& reduction, double label_smoothing) {
            ReleaseGilIfLarge gil(x.numel());
            return F::cross_entropy(x, y,
                                    {opt(weight), ignore_index,
                                     to_reduction(reduction, "cross_entropy"), label_smoothing});
          },
          "input"_a, "target"_a, "weight"_a = nb::none(), nb::kw_only(), "ignore_index"_a = -100,
          "reduction"_a = "mean", "label_smoothing"_a = 0.0,
          "Cross entropy of logits (N, C, *) against class indices or class probabilities.")
      .def(
          "nll_loss",
          [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& weight,
             int64_t ignore_index, const std::string& reduction) {
            return F::nll_loss(x, y,
                               {opt(weight), ignore_index, to_reduction(reduction, "nll_loss")});
          },
          "input"_a, "target"_a, "weight"_a = nb::none(), nb::kw_only(), "ignore_index"_a = -100,
          "reduction"_a = "mean", "-input[target] for log-probabilities input (N, C, *).")
      .def(
          "binary_cross_entropy",
          [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& weight,
             const std::string& reduction) {
            return F::binary_cross_entropy(x, y, opt(weight),
                                           to_reduction(reduction, "binary_cross_entropy"));
          },
          "input"_a, "target"_a, "weight"_a = nb::none(), nb::kw_only(), "reduction"_a = "mean",
          "-(y log p + (1 - y) log(1 - p)) for probabilities p.")
      .def(
          "binary_cross_entropy_with_logits",
          [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& weight,
             const std::string& reduction, const std::optional<Tensor>& pos_weight) {
            return F::binary_cross_entropy_with_logits(
                x, y,
                {opt(weight), opt(pos_weight),
                 to_reduction(reduction, "binary_cross_entropy_with_logits")});
          },
          "input"_a, "target"_a, "weight"_a = nb::none(), nb::kw_only(), "reduction"_a = "mean",
          "pos_weight"_a = nb::none(), "binary_cross_entropy(sigmoid(input), target), stably.")
      .def(
          "kl_div",
          [](const Tensor& x, const Tensor& y, const std::string& reduction, bool log_target) {
            return F::kl_div(x, y, to_reduction(reduction, "kl_div"), log_target);
          },
          "input"_a, "target"_a, nb::kw_only(), "reduction"_a = "mean", "log_target"_a = false,
          "target (log target - input) for log-probabilities input ('batchmean' is the true "
          "KL divergence).");
  using Pair = Tensor (*)(const Tensor&, const Tensor&, const Tensor&, double, nn::Reduction);
  for (auto [name, fn, doc] :
       {std::tuple<const char*, Pair, const char*>{
            "cosine_embedding_loss", &F::cosine_embedding_loss,
            "1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1."},
        std::tuple<const char*, Pair, const char*>{"margin_ranking_loss", &F::margin_ranking_loss,
                                                   "max(0, -target (x1 - x2) + margin)."}})
    f.def(
        name,
        [fn = fn](const Tensor& a, const Tensor& b, const Tensor& y, double margin,
                  const std::string& reduction) {
          return fn(a, b, y, margin, to_reduction(reduction, "loss"));
        },
        "input1"_a, "input2"_a, "target"_a, "margin"_a = 0.0, nb::kw_only(), "reduction"_a = "mean",
        doc);
}

// ---- init --------------------------------------------------------------------------------------

nn::init::FanMode fan_mode(const std::string& mode) {
  if (mode == "fan_in") return nn::init::FanMode::FanIn;
  if (mode == "fan_out") return nn::init::FanMode::FanOut;
  fail<ValueError>("init", "mode must be 'fan_in' or 'fan_out', got '{}'", mode);
}

// Each initializer fills the tensor in place and returns the same Python object.
void def_init(nb::module_& init) {
  namespace I = nn::init;
  init.def(
          "uniform_",
          [](nb::object t, double a, double b) {
            I::uniform_(nb::cast<Tensor>(t), a, b);
            return t;
          },
          "tensor"_a, "a"_a = 0.0, "b"_a = 1.0, "Fills with U(a, b); returns the tensor.")
      .def(
          "normal_",
          [](nb::object t, double mean, double std) {
            I::normal_(nb::cast<Tensor>(t), mean, std);
            return t;
          },
          "tensor"_a, "mean"_a = 0.0, "std"_a = 1.0, "Fills with N(mean, std^2).")
      .def(
          "trunc_normal_",
          [](nb::object t, double mean, double std, double a, double b) {
            I::trunc_normal_(nb::cast<Tensor>(t), mean, std, a, b);
            return t;
          },
          "tensor"_a, "mean"_a = 0.0, "std"_a = 1.0, "a"_a = -2.0, "b"_a = 2.0,
          "Fills with N(mean, std^2) redrawn until inside [a, b].")
      .def(
          "constant_",
          [](nb::object t, double val) {
            I::constant_(nb::cast<Tensor>(t), val);
            return t;
          },
          "tensor"_a, "val"_a, "Fills with val.")
      .def(
          "zeros_",
          [](nb::object t) {
            I::zeros_(nb::cast<Tensor>(t));
            return t;
          },
          "tensor"_a, "Fills with 0.")
      .def(
          "ones_",
          [](nb::object t) {
            I::ones_(nb::cast<Tensor>(t));
            return t;
          },
          "tensor"_a, "Fills with 1.")
      .def(
          "xavier_uniform_",
          [](nb::object t, double gain) {
            I::xavier_uniform_(nb::cast<Tensor>(t), gain);
            return t;
          },
          "tensor"_a, "gain"_a = 1.0, "U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).")
      .def(
          "xavier_normal_",
          [](nb::object t, double gain) {
            I::xavier_normal_(nb::cast<Tensor>(t), gain);
            return t;
          },
          "tensor"_a, "gain"_a = 1.0, "N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)).")
      .def(
          "kaiming_uniform_",
          [](nb::object t, double a, const std::string& mode, const std::string& nl) {
            I::kaiming_uniform_(nb::cast<Tensor>(t), a, fan_mode(mode), nl);
            return t;
          },
          "tensor"_a, "a"_a = 0.0, "mode"_a = "fan_in", "nonlinearity"_a = "leaky_relu",
          "U(-b, b), b = gain * sqrt(3 / fan) (He initialization).")
      .def(
          "kaiming_normal_",
          [](nb::object t, double a, const std::string& mode, const std::string& nl) {
            I::kaiming_normal_(nb::cast<Tensor>(t), a, fan_mode(mode), nl);
            return t;
          },
          "tensor"_a, "a"_a = 0.0, "mode"_a = "fan_in", "nonlinearity"_a = "leaky_relu",
          "N(0, std^2), std = gain / sqrt(fan) (He initialization).")
      .def(
          "orthogonal_",
          [](nb::object t, double gain) {
            I::orthogonal_(nb::cast<Tensor>(t), gain);
            return t;
          },
          "tensor"_a, "gain"_a = 1.0, "A (semi-)orthogonal matrix times gain.")
      .def(
          "calculate_gain",
          [](const std::string& nl, std::optional<double> param) {
            return I::calculate_gain(nl, param.value_or(0.01));
          },
          "nonlinearity"_a, "param"_a = nb::none(),
          "The recommended gain for a nonlinearity ('relu': sqrt(2), 'tanh': 5/3, ...).")
      .def("calculate_fan_in_and_fan_out", &I::calculate_fan_in_and_fan_out, "tensor"_a,
           "(fan_in, fan_out) of a weight (out, in, *kernel).");
}

}  // namespace

void init_nn_functional(nb::module_& nn) {
  nb::module_ f = nn.def_submodule("functional", "Layers as functions (torch.nn.functional).");
  def_linear_conv(f);
  def_pooling(f);
  def_normalization(f);
  def_activations(f);
  def_dropout_embedding_attention(f);
  def_losses(f);
  nb::module_ init = nn.def_submodule("init", "In-place parameter initializers (torch.nn.init).");
  def_init(init);
}

}  // namespace tessera::py
