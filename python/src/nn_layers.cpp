// tessera.nn layers: Linear, Bilinear, convolutions, pooling, normalization, dropout, embedding,
// shape helpers and activations, with PyTorch's constructor arguments. Their Tensor -> Tensor
// forward is Module.forward (a virtual call); parameters and buffers are also reachable through
// Module.__getattr__, and the properties bound here let an assignment replace them (tied
// weights: decoder.weight = encoder.weight).
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
using nn::Module;

void def_linear(nb::module_& nn) {
  auto lin = nb::class_<nn::Linear, Module>(
      nn, "Linear", "y = x W^T + b with W (out_features, in_features), PyTorch's initialization.");
  lin.def(
         "__init__",
         [](nn::Linear* self, int64_t in, int64_t out, bool bias, Dev device, DT dtype) {
           new (self) nn::Linear(in, out, bias);
           apply_factory_kwargs(*self, device, dtype);
         },
         "in_features"_a, "out_features"_a, "bias"_a = true, nb::kw_only(), "device"_a = nb::none(),
         "dtype"_a = nb::none())
      .def_ro("in_features", &nn::Linear::in_features)
      .def_ro("out_features", &nn::Linear::out_features);
  tensor_attr(lin, "weight", &nn::Linear::weight, true);
  tensor_attr(lin, "bias", &nn::Linear::bias, true);

  auto bil = nb::class_<nn::Bilinear, Module>(nn, "Bilinear",
                                              "y_k = x1^T W_k x2 + b_k with W (out, in1, in2).");
  bil.def(
         "__init__",
         [](nn::Bilinear* self, int64_t in1, int64_t in2, int64_t out, bool bias, Dev device,
            DT dtype) {
           new (self) nn::Bilinear(in1, in2, out, bias);
           apply_factory_kwargs(*self, device, dtype);
         },
         "in1_features"_a, "in2_features"_a, "out_features"_a, "bias"_a = true, nb::kw_only(),
         "device"_a = nb::none(), "dtype"_a = nb::none())
      .def(
          "forward",
          [](nn::Bilinear& self, const Tensor& a, const Tensor& b) {
            ReleaseGilIfLarge gil(a.numel() * self.out_features);
            return self.forward(a, b);
          },
          "input1"_a, "input2"_a, "The bilinear form of input1 (*, in1) and input2 (*, in2).")
      .def_ro("in1_features", &nn::Bilinear::in1_features)
      .def_ro("in2_features", &nn::Bilinear::in2_features)
      .def_ro("out_features", &nn::Bilinear::out_features);
  tensor_attr(bil, "weight", &nn::Bilinear::weight, true);
  tensor_attr(bil, "bias", &nn::Bilinear::bias, true);
}

nb::tuple tuple_of(const std::vector<int64_t>& v) { return nb::tuple(nb::cast(v)); }

template <class T>
void def_conv(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, nn::ConvNd>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, int64_t in, int64_t out, const IntsArg& kernel, const IntsArg& stride,
             const PaddingArg& padding, const IntsArg& dilation, int64_t groups, bool bias,
             const std::string& padding_mode, Dev device, DT dtype) {
            new (self) T(in, out, to_ints(kernel),
                         nn::ConvOptions{to_ints(stride), to_padding(padding), to_ints(dilation),
                                         groups, bias, padding_mode});
            apply_factory_kwargs(*self, device, dtype);
          },
          "in_channels"_a, "out_channels"_a, "kernel_size"_a, "stride"_a = 1, "padding"_a = 0,
          "dilation"_a = 1, "groups"_a = 1, "bias"_a = true, "padding_mode"_a = "zeros",
          nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none());
}

template <class T>
void def_conv_transpose(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, nn::ConvTransposeNd>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, int64_t in, int64_t out, const IntsArg& kernel, const IntsArg& stride,
             const IntsArg& padding, const IntsArg& output_padding, int64_t groups, bool bias,
             const IntsArg& dilation, Dev device, DT dtype) {
            new (self) T(
                in, out, to_ints(kernel),
                nn::ConvTransposeOptions{to_ints(stride), to_ints(padding), to_ints(output_padding),
                                         groups, bias, to_ints(dilation)});
            apply_factory_kwargs(*self, device, dtype);
          },
          "in_channels"_a, "out_channels"_a, "kernel_size"_a, "stride"_a = 1, "padding"_a = 0,
          "output_padding"_a = 0, "groups"_a = 1, "bias"_a = true, "dilation"_a = 1, nb::kw_only(),
          "device"_a = nb::none(), "dtype"_a = nb::none());
}

void def_convolutions(nb::module_& nn) {
  auto conv = nb::class_<nn::ConvNd, Module>(nn, "_ConvNd", "Base of Conv1d, Conv2d and Conv3d.");
  conv.def_ro("in_channels", &nn::ConvNd::in_channels)
      .def_ro("out_channels", &nn::ConvNd::out_channels)
      .def_prop_ro("kernel_size", [](const nn::ConvNd& c) { return tuple_of(c.kernel_size); })
      .def_prop_ro("groups", [](const nn::ConvNd& c) { return c.options.groups; })
      .def_prop_ro("padding_mode", [](const nn::ConvNd& c) { return c.options.padding_mode; });
  tensor_attr(conv, "weight", &nn::ConvNd::weight, true);
  tensor_attr(conv, "bias", &nn::ConvNd::bias, true);
  def_conv<nn::Conv1d>(nn, "Conv1d", "1-d convolution over (N, C_in, L) (or (C_in, L)).");
  def_conv<nn::Conv2d>(nn, "Conv2d", "2-d convolution over (N, C_in, H, W) (or (C_in, H, W)).");
  def_conv<nn::Conv3d>(nn, "Conv3d", "3-d convolution over (N, C_in, D, H, W).");

  auto convt = nb::class_<nn::ConvTransposeNd, Module>(nn, "_ConvTransposeNd",
                                                       "Base of the transposed convolutions.");
  convt.def_ro("in_channels", &nn::ConvTransposeNd::in_channels)
      .def_ro("out_channels", &nn::ConvTransposeNd::out_channels)
      .def_prop_ro("kernel_size",
                   [](const nn::ConvTransposeNd& c) { return tuple_of(c.kernel_size); });
  tensor_attr(convt, "weight", &nn::ConvTransposeNd::weight, true);
  tensor_attr(convt, "bias", &nn::ConvTransposeNd::bias, true);
  def_conv_transpose<nn::ConvTranspose1d>(
      nn, "ConvTranspose1d", "1-d transposed convolution (weight (in, out/groups, k)).");
  def_conv_transpose<nn::ConvTranspose2d>(
      nn, "ConvTranspose2d", "2-d transposed convolution (weight (in, out/groups, kH, kW)).");
}

template <class T>
void def_max_pool(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, Module>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, const IntsArg& kernel, const std::optional<IntsArg>& stride,
             const IntsArg& padding, const IntsArg& dilation, bool ceil_mode) {
            new (self)
                T(to_ints(kernel), nn::MaxPoolOptions{to_ints_or_empty(stride), to_ints(padding),
                                                      to_ints(dilation), ceil_mode});
          },
          "kernel_size"_a, "stride"_a = nb::none(), "padding"_a = 0, "dilation"_a = 1,
          nb::kw_only(), "ceil_mode"_a = false);
}

template <class T>
void def_avg_pool(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, Module>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, const IntsArg& kernel, const std::optional<IntsArg>& stride,
             const IntsArg& padding, bool ceil_mode, bool count_include_pad) {
            new (self)
                T(to_ints(kernel), nn::AvgPoolOptions{to_ints_or_empty(stride), to_ints(padding),
                                                      ceil_mode, count_include_pad});
          },
          "kernel_size"_a, "stride"_a = nb::none(), "padding"_a = 0, "ceil_mode"_a = false,
          "count_include_pad"_a = true);
}

void def_pooling(nb::module_& nn) {
  def_max_pool<nn::MaxPool1d>(nn, "MaxPool1d", "Max over sliding windows of (N, C, L).");
  def_max_pool<nn::MaxPool2d>(nn, "MaxPool2d", "Max over sliding windows of (N, C, H, W).");
  def_avg_pool<nn::AvgPool1d>(nn, "AvgPool1d", "Mean over sliding windows of (N, C, L).");
  def_avg_pool<nn::AvgPool2d>(nn, "AvgPool2d", "Mean over sliding windows of (N, C, H, W).");
  nb::class_<nn::AdaptiveAvgPool2d, Module>(nn, "AdaptiveAvgPool2d",
                                            "Mean pooling to a fixed output size (H_out, W_out).")
      .def(
          "__init__",
          [](nn::AdaptiveAvgPool2d* self, const IntsArg& output_size) {
            new (self) nn::AdaptiveAvgPool2d(to_ints(output_size));
          },
          "output_size"_a);
}

template <class T>
void def_batch_norm(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, nn::BatchNormNd>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, int64_t num_features, double eps, std::optional<double> momentum, bool affine,
             bool track_running_stats, Dev device, DT dtype) {
            new (self)
                T(num_features, nn::BatchNormOptions{eps, momentum, affine, track_running_stats});
            apply_factory_kwargs(*self, device, dtype);
          },
          "num_features"_a, "eps"_a = 1e-5, "momentum"_a.none() = 0.1, "affine"_a = true,
          "track_running_stats"_a = true, nb::kw_only(), "device"_a = nb::none(),
          "dtype"_a = nb::none());
}

void def_normalization(nb::module_& nn) {
  auto bn = nb::class_<nn::BatchNormNd, Module>(nn, "_BatchNorm", "Base of the batch norms.");
  bn.def_ro("num_features", &nn::BatchNormNd::num_features)
      .def_prop_ro("eps", [](const nn::BatchNormNd& b) { return b.options.eps; })
      .def_prop_ro("momentum", [](const nn::BatchNormNd& b) { return b.options.momentum; })
      .def_prop_ro("affine", [](const nn::BatchNormNd& b) { return b.options.affine; })
      .def_prop_ro("track_running_stats",
                   [](const nn::BatchNormNd& b) { return b.options.track_running_stats; })
      .def("reset_running_stats", &nn::BatchNormNd::reset_running_stats,
           "Running mean back to 0, variance to 1, no batches seen.");
  tensor_attr(bn, "weight", &nn::BatchNormNd::weight, true);
  tensor_attr(bn, "bias", &nn::BatchNormNd::bias, true);
  tensor_attr(bn, "running_mean", &nn::BatchNormNd::running_mean, false);
  tensor_attr(bn, "running_var", &nn::BatchNormNd::running_var, false);
  tensor_attr(bn, "num_batches_tracked", &nn::BatchNormNd::num_batches_tracked, false);
  def_batch_norm<nn::BatchNorm1d>(nn, "BatchNorm1d", "Batch norm over (N, C) or (N, C, L).");
  def_batch_norm<nn::BatchNorm2d>(nn, "BatchNorm2d", "Batch norm over (N, C, H, W).");
  def_batch_norm<nn::BatchNorm3d>(nn, "BatchNorm3d", "Batch norm over (N, C, D, H, W).");

  auto ln = nb::class_<nn::LayerNorm, Module>(
      nn, "LayerNorm", "Normalizes over the trailing normalized_shape dims.");
  ln.def(
        "__init__",
        [](nn::LayerNorm* self, const IntsArg& shape, double eps, bool affine, bool bias,
           Dev device, DT dtype) {
          new (self) nn::LayerNorm(to_ints(shape), nn::LayerNormOptions{eps, affine, bias});
          apply_factory_kwargs(*self, device, dtype);
        },
        "normalized_shape"_a, "eps"_a = 1e-5, "elementwise_affine"_a = true, "bias"_a = true,
        nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none())
      .def_prop_ro("normalized_shape",
                   [](const nn::LayerNorm& l) { return tuple_of(l.normalized_shape); })
      .def_prop_ro("eps", [](const nn::LayerNorm& l) { return l.options.eps; });
  tensor_attr(ln, "weight", &nn::LayerNorm::weight, true);
  tensor_attr(ln, "bias", &nn::LayerNorm::bias, true);

  auto gn = nb::class_<nn::GroupNorm, Module>(nn, "GroupNorm",
                                              "Normalizes (N, C, *) over groups of channels.");
  gn.def(
        "__init__",
        [](nn::GroupNorm* self, int64_t groups, int64_t channels, double eps, bool affine,
           Dev device, DT dtype) {
          new (self) nn::GroupNorm(groups, channels, nn::GroupNormOptions{eps, affine});
          apply_factory_kwargs(*self, device, dtype);
        },
        "num_groups"_a, "num_channels"_a, "eps"_a = 1e-5, "affine"_a = true, nb::kw_only(),
        "device"_a = nb::none(), "dtype"_a = nb::none())
      .def_ro("num_groups", &nn::GroupNorm::num_groups)
      .def_ro("num_channels", &nn::GroupNorm::num_channels);
  tensor_attr(gn, "weight", &nn::GroupNorm::weight, true);
  tensor_attr(gn, "bias", &nn::GroupNorm::bias, true);

  auto rms = nb::class_<nn::RMSNorm, Module>(
      nn, "RMSNorm", "x / sqrt(mean(x^2) + eps) * weight over the trailing dims.");
  rms.def(
         "__init__",
         [](nn::RMSNorm* self, const IntsArg& shape, std::optional<double> eps, bool affine,
            Dev device, DT dtype) {
           new (self) nn::RMSNorm(to_ints(shape), nn::RMSNormOptions{eps, affine});
           apply_factory_kwargs(*self, device, dtype);
         },
         "normalized_shape"_a, "eps"_a = nb::none(), "elementwise_affine"_a = true, nb::kw_only(),
         "device"_a = nb::none(), "dtype"_a = nb::none())
      .def_prop_ro("normalized_shape",
                   [](const nn::RMSNorm& l) { return tuple_of(l.normalized_shape); });
  tensor_attr(rms, "weight", &nn::RMSNorm::weight, true);
}

std::shared_ptr<nn::Embedding> embedding_from_pretrained(const Tensor& embeddings, bool freeze,
                                                         std::optional<int64_t> padding_idx) {
  TS_CHECK(embeddings.dim() == 2, ShapeError, "Embedding.from_pretrained",
           "embeddings must be 2-d (num_embeddings, embedding_dim), got {}",
           shape_str(embeddings.shape()));
  auto e = std::make_shared<nn::Embedding>(embeddings.size(0), embeddings.size(1),
                                           nn::EmbeddingOptions{padding_idx});
  e->to(embeddings.dtype());
  {
    autograd::NoGradGuard no_grad;
    e->weight.copy_(embeddings);
  }
  e->weight.requires_grad_(!freeze);
  return e;
}

void def_dropout_embedding_shape(nb::module_& nn) {
  nb::class_<nn::Dropout, Module>(
      nn, "Dropout", "Zeroes elements with probability p while training, scaling the rest.")
      .def(
          "__init__", [](nn::Dropout* self, double p, bool) { new (self) nn::Dropout(p); },
          "p"_a = 0.5, "inplace"_a = false)
      .def_rw("p", &nn::Dropout::p);

  auto emb = nb::class_<nn::Embedding, Module>(
      nn, "Embedding", "A lookup table (num_embeddings, embedding_dim) indexed by integers.");
  emb.def(
         "__init__",
         [](nn::Embedding* self, int64_t num, int64_t dim, std::optional<int64_t> padding_idx,
            Dev device, DT dtype) {
           new (self) nn::Embedding(num, dim, nn::EmbeddingOptions{padding_idx});
           apply_factory_kwargs(*self, device, dtype);
         },
         "num_embeddings"_a, "embedding_dim"_a, "padding_idx"_a = nb::none(), nb::kw_only(),
         "device"_a = nb::none(), "dtype"_a = nb::none())
      .def_static("from_pretrained", &embedding_from_pretrained, "embeddings"_a, "freeze"_a = true,
                  "padding_idx"_a = nb::none(),
                  "An Embedding holding a copy of embeddings (frozen unless freeze=False).")
      .def_ro("num_embeddings", &nn::Embedding::num_embeddings)
      .def_ro("embedding_dim", &nn::Embedding::embedding_dim)
      .def_ro("padding_idx", &nn::Embedding::padding_idx);
  tensor_attr(emb, "weight", &nn::Embedding::weight, true);

  nb::class_<nn::Flatten, Module>(nn, "Flatten", "Flattens dims start_dim..end_dim into one.")
      .def(nb::init<int64_t, int64_t>(), "start_dim"_a = 1, "end_dim"_a = -1)
      .def_ro("start_dim", &nn::Flatten::start_dim)
      .def_ro("end_dim", &nn::Flatten::end_dim);
  nb::class_<nn::Identity, Module>(nn, "Identity", "Returns its input (arguments are ignored).")
      .def("__init__", [](nn::Identity* self, nb::args, nb::kwargs) { new (self) nn::Identity(); });
}

// An activation whose constructor takes PyTorch's `inplace` flag (results are always new
// tensors, so it only exists for source compatibility).
template <class T>
void def_plain_activation(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, Module>(nn, name, doc)
      .def(
          "__init__", [](T* self, bool) { new (self) T(); }, "inplace"_a = false);
}

void def_activations(nb::module_& nn) {
  def_plain_activation<nn::ReLU>(nn, "ReLU", "max(x, 0).");
  def_plain_activation<nn::SiLU>(nn, "SiLU", "x * sigmoid(x).");
  def_plain_activation<nn::Mish>(nn, "Mish", "x * tanh(softplus(x)).");
  nb::class_<nn::Tanh, Module>(nn, "Tanh", "tanh(x).").def(nb::init<>());
  nb::class_<nn::Sigmoid, Module>(nn, "Sigmoid", "1 / (1 + exp(-x)).").def(nb::init<>());
  nb::class_<nn::LeakyReLU, Module>(nn, "LeakyReLU", "x for x > 0, negative_slope * x otherwise.")
      .def(
          "__init__",
          [](nn::LeakyReLU* self, double slope, bool) { new (self) nn::LeakyReLU(slope); },
          "negative_slope"_a = 0.01, "inplace"_a = false)
      .def_ro("negative_slope", &nn::LeakyReLU::negative_slope);
  nb::class_<nn::ELU, Module>(nn, "ELU", "x for x > 0, alpha * (exp(x) - 1) otherwise.")
      .def(
          "__init__", [](nn::ELU* self, double alpha, bool) { new (self) nn::ELU(alpha); },
          "alpha"_a = 1.0, "inplace"_a = false)
      .def_ro("alpha", &nn::ELU::alpha);
  nb::class_<nn::GELU, Module>(nn, "GELU", "x * Phi(x) (approximate='tanh': the tanh form).")
      .def(nb::init<std::string>(), "approximate"_a = "none")
      .def_ro("approximate", &nn::GELU::approximate);
  nb::class_<nn::Softmax, Module>(nn, "Softmax", "exp(x) / sum(exp(x)) along dim.")
      .def(nb::init<int64_t>(), "dim"_a)
      .def_ro("dim", &nn::Softmax::dim);
  nb::class_<nn::LogSoftmax, Module>(nn, "LogSoftmax",
                                     "log(softmax(x)) along dim, computed stably.")
      .def(nb::init<int64_t>(), "dim"_a)
      .def_ro("dim", &nn::LogSoftmax::dim);
}

}  // namespace

void init_nn_layers(nb::module_& nn) {
  def_linear(nn);
  def_convolutions(nn);
  def_pooling(nn);
  def_normalization(nn);
  def_dropout_embedding_shape(nn);
  def_activations(nn);
}

}  // namespace tessera::py
