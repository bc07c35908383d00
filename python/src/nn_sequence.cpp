// tessera.nn recurrent and attention layers: RNN, LSTM, GRU (and their cells),
// MultiheadAttention and the transformer layers and stacks, with PyTorch's constructor and
// forward arguments and return values.
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
using nn::Module;

// Recurrent and attention layers run pure C++ (no Python children on their path), so the GIL can
// go whenever the work is large.
int64_t work(const Tensor& x, int64_t width) { return x.numel() * width; }

template <class T>
void def_rnn_ctor(nb::class_<T, nn::RNNBase>& c, bool with_nonlinearity, bool with_proj) {
  if (with_nonlinearity) {
    c.def(
        "__init__",
        [](T* self, int64_t in, int64_t hidden, int64_t layers, const std::string& nonlinearity,
           bool bias, bool batch_first, double dropout, bool bidirectional, Dev device, DT dtype) {
          new (self)
              T(in, hidden,
                nn::RNNOptions{layers, nonlinearity, bias, batch_first, dropout, bidirectional, 0});
          apply_factory_kwargs(*self, device, dtype);
        },
        "input_size"_a, "hidden_size"_a, "num_layers"_a = 1, "nonlinearity"_a = "tanh",
        "bias"_a = true, "batch_first"_a = false, "dropout"_a = 0.0, "bidirectional"_a = false,
        nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none());
    return;
  }
  c.def(
      "__init__",
      [with_proj](T* self, int64_t in, int64_t hidden, int64_t layers, bool bias, bool batch_first,
                  double dropout, bool bidirectional, int64_t proj_size, Dev device, DT dtype) {
        if (!with_proj && proj_size != 0)
          fail<ValueError>("GRU", "proj_size is supported by LSTM only, got {}", proj_size);
        new (self)
            T(in, hidden,
              nn::RNNOptions{layers, "tanh", bias, batch_first, dropout, bidirectional, proj_size});
        apply_factory_kwargs(*self, device, dtype);
      },
      "input_size"_a, "hidden_size"_a, "num_layers"_a = 1, "bias"_a = true, "batch_first"_a = false,
      "dropout"_a = 0.0, "bidirectional"_a = false, "proj_size"_a = 0, nb::kw_only(),
      "device"_a = nb::none(), "dtype"_a = nb::none());
}

void def_recurrent(nb::module_& nn) {
  nb::class_<nn::RNNBase, Module>(nn, "RNNBase", "What RNN, LSTM and GRU share.")
      .def_ro("input_size", &nn::RNNBase::input_size)
      .def_ro("hidden_size", &nn::RNNBase::hidden_size)
      .def_prop_ro("num_layers", [](const nn::RNNBase& r) { return r.options.num_layers; })
      .def_prop_ro("bias", [](const nn::RNNBase& r) { return r.options.bias; })
      .def_prop_ro("batch_first", [](const nn::RNNBase& r) { return r.options.batch_first; })
      .def_prop_ro("dropout", [](const nn::RNNBase& r) { return r.options.dropout; })
      .def_prop_ro("bidirectional", [](const nn::RNNBase& r) { return r.options.bidirectional; })
      .def_prop_ro("proj_size", [](const nn::RNNBase& r) { return r.options.proj_size; })
      .def_prop_ro("all_weights", &nn::RNNBase::all_weights,
                   "The parameters per (layer, direction): w_ih, w_hh, [b_ih, b_hh], [w_hr].")
      .def(
          "flatten_parameters", [](nn::RNNBase&) {},
          "Does nothing (PyTorch compacts cuDNN weights here; Tessera has nothing to compact).");

  auto rnn = nb::class_<nn::RNN, nn::RNNBase>(
      nn, "RNN", "Elman RNN: h' = tanh(W_ih x + b_ih + W_hh h + b_hh) (or relu), multi-layer.");
  def_rnn_ctor(rnn, true, false);
  rnn.def(
      "forward",
      [](nn::RNN& self, const Tensor& x, const std::optional<Tensor>& hx) {
        ReleaseGilIfLarge gil(work(x, self.hidden_size));
        return self.forward(x, opt(hx));
      },
      "input"_a, "hx"_a = nb::none(),
      "(output, h_n): input (L, N, H_in) ((N, L, H_in) batch_first, or (L, H_in)); hx "
      "(num_layers * directions, N, H_out) or None for zeros.");

  auto lstm = nb::class_<nn::LSTM, nn::RNNBase>(
      nn, "LSTM", "LSTM with PyTorch's gate order (i, f, g, o) and optional projection.");
  def_rnn_ctor(lstm, false, true);
  lstm.def(
      "forward",
      [](nn::LSTM& self, const Tensor& x, const std::optional<std::pair<Tensor, Tensor>>& hx) {
        ReleaseGilIfLarge gil(work(x, 4 * self.hidden_size));
        auto [out, state] =
            self.forward(x, hx ? nn::LSTMState{hx->first, hx->second} : nn::LSTMState{});
        return std::make_pair(out, std::make_pair(state.h, state.c));
      },
      "input"_a, "hx"_a = nb::none(), "(output, (h_n, c_n)); hx is (h_0, c_0) or None for zeros.");

  auto gru = nb::class_<nn::GRU, nn::RNNBase>(
      nn, "GRU", "GRU with PyTorch's gate order (r, z, n), multi-layer.");
  def_rnn_ctor(gru, false, false);
  gru.def(
      "forward",
      [](nn::GRU& self, const Tensor& x, const std::optional<Tensor>& hx) {
        ReleaseGilIfLarge gil(work(x, 3 * self.hidden_size));
        return self.forward(x, opt(hx));
      },
      "input"_a, "hx"_a = nb::none(), "(output, h_n); hx or None for zeros.");
}

void def_cells(nb::module_& nn) {
  auto base = nb::class_<nn::RNNCellBase, Module>(nn, "RNNCellBase", "What the cells share.");
  base.def_ro("input_size", &nn::RNNCellBase::input_size)
      .def_ro("hidden_size", &nn::RNNCellBase::hidden_size);
  tensor_attr(base, "weight_ih", &nn::RNNCellBase::weight_ih, true);
  tensor_attr(base, "weight_hh", &nn::RNNCellBase::weight_hh, true);
  tensor_attr(base, "bias_ih", &nn::RNNCellBase::bias_ih, true);
  tensor_attr(base, "bias_hh", &nn::RNNCellBase::bias_hh, true);

  nb::class_<nn::RNNCell, nn::RNNCellBase>(nn, "RNNCell", "One step of an Elman RNN.")
      .def(
          "__init__",
          [](nn::RNNCell* self, int64_t in, int64_t hidden, bool bias,
             const std::string& nonlinearity, Dev device, DT dtype) {
            new (self) nn::RNNCell(in, hidden, bias, nonlinearity);
            apply_factory_kwargs(*self, device, dtype);
          },
          "input_size"_a, "hidden_size"_a, "bias"_a = true, "nonlinearity"_a = "tanh",
          nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none())
      .def(
          "forward",
          [](nn::RNNCell& self, const Tensor& x, const std::optional<Tensor>& hx) {
            return self.forward(x, opt(hx));
          },
          "input"_a, "hx"_a = nb::none(), "h': input (N, H_in) or (H_in), hx or None for zeros.");
  nb::class_<nn::LSTMCell, nn::RNNCellBase>(nn, "LSTMCell", "One LSTM step.")
      .def(
          "__init__",
          [](nn::LSTMCell* self, int64_t in, int64_t hidden, bool bias, Dev device, DT dtype) {
            new (self) nn::LSTMCell(in, hidden, bias);
            apply_factory_kwargs(*self, device, dtype);
          },
          "input_size"_a, "hidden_size"_a, "bias"_a = true, nb::kw_only(), "device"_a = nb::none(),
          "dtype"_a = nb::none())
      .def(
          "forward",
          [](nn::LSTMCell& self, const Tensor& x,
             const std::optional<std::pair<Tensor, Tensor>>& hx) {
            nn::LSTMState s =
                self.forward(x, hx ? nn::LSTMState{hx->first, hx->second} : nn::LSTMState{});
            return std::make_pair(s.h, s.c);
          },
          "input"_a, "hx"_a = nb::none(), "(h', c'); hx is (h, c) or None for zeros.");
  nb::class_<nn::GRUCell, nn::RNNCellBase>(nn, "GRUCell", "One GRU step.")
      .def(
          "__init__",
          [](nn::GRUCell* self, int64_t in, int64_t hidden, bool bias, Dev device, DT dtype) {
            new (self) nn::GRUCell(in, hidden, bias);
            apply_factory_kwargs(*self, device, dtype);
          },
          "input_size"_a, "hidden_size"_a, "bias"_a = true, nb::kw_only(), "device"_a = nb::none(),
          "dtype"_a = nb::none())
      .def(
          "forward",
          [](nn::GRUCell& self, const Tensor& x, const std::optional<Tensor>& hx) {
            return self.forward(x, opt(hx));
          },
          "input"_a, "hx"_a = nb::none(), "h'; hx or None for zeros.");
}

void def_attention(nb::module_& nn) {
  auto mha = nb::class_<nn::MultiheadAttention, Module>(
      nn, "MultiheadAttention",
      "Attention over num_heads heads (PyTorch's parameters, masks and return values).");
  mha.def(
         "__init__",
         [](nn::MultiheadAttention* self, int64_t embed_dim, int64_t num_heads, double dropout,
            bool bias, bool add_bias_kv, bool add_zero_attn, std::optional<int64_t> kdim,
            std::optional<int64_t> vdim, bool batch_first, Dev device, DT dtype) {
           new (self) nn::MultiheadAttention(
               embed_dim, num_heads,
               nn::MultiheadAttentionOptions{dropout, bias, add_bias_kv, add_zero_attn, kdim, vdim,
                                             batch_first});
           apply_factory_kwargs(*self, device, dtype);
         },
         "embed_dim"_a, "num_heads"_a, "dropout"_a = 0.0, "bias"_a = true, "add_bias_kv"_a = false,
         "add_zero_attn"_a = false, "kdim"_a = nb::none(), "vdim"_a = nb::none(),
         "batch_first"_a = false, nb::kw_only(), "device"_a = nb::none(), "dtype"_a = nb::none())
      .def(
          "forward",
          [](nn::MultiheadAttention& self, const Tensor& q, const Tensor& k, const Tensor& v,
             const std::optional<Tensor>& key_padding_mask, bool need_weights,
             const std::optional<Tensor>& attn_mask, bool average_attn_weights, bool is_causal) {
            ReleaseGilIfLarge gil(work(q, k.numel() / std::max<int64_t>(1, self.embed_dim)));
            auto [out, w] =
                self.forward(q, k, v,
                             nn::AttentionArgs{opt(key_padding_mask), need_weights, opt(attn_mask),
                                               average_attn_weights, is_causal});
            return std::make_pair(out, none_if_undefined(w));
          },
          "query"_a, "key"_a, "value"_a, "key_padding_mask"_a = nb::none(), "need_weights"_a = true,
          "attn_mask"_a = nb::none(), "average_attn_weights"_a = true, "is_causal"_a = false,
          "(output, weights): weights is None unless need_weights. Bool masks are True where "
          "attention is not allowed; float masks are added to the scores.")
      .def_ro("embed_dim", &nn::MultiheadAttention::embed_dim)
      .def_ro("num_heads", &nn::MultiheadAttention::num_heads)
      .def_ro("head_dim", &nn::MultiheadAttention::head_dim)
      .def_ro("kdim", &nn::MultiheadAttention::kdim)
      .def_ro("vdim", &nn::MultiheadAttention::vdim)
      .def_prop_ro("batch_first",
                   [](const nn::MultiheadAttention& m) { return m.options.batch_first; })
      .def_prop_ro("dropout", [](const nn::MultiheadAttention& m) { return m.options.dropout; });
  for (auto [name, member] : {std::pair{"in_proj_weight", &nn::MultiheadAttention::in_proj_weight},
                              std::pair{"q_proj_weight", &nn::MultiheadAttention::q_proj_weight},
                              std::pair{"k_proj_weight", &nn::MultiheadAttention::k_proj_weight},
                              std::pair{"v_proj_weight", &nn::MultiheadAttention::v_proj_weight},
                              std::pair{"in_proj_bias", &nn::MultiheadAttention::in_proj_bias},
                              std::pair{"bias_k", &nn::MultiheadAttention::bias_k},
                              std::pair{"bias_v", &nn::MultiheadAttention::bias_v}})
    tensor_attr(mha, name, member, true);
}

nn::TransformerLayerOptions layer_options(int64_t dim_feedforward, double dropout,
                                          const std::string& activation, double eps,
                                          bool batch_first, bool norm_first, bool bias) {
  return {dim_feedforward, dropout, activation, eps, batch_first, norm_first, bias};
}

template <class T>
void def_transformer_layer_ctor(nb::class_<T, Module>& c) {
  c.def(
       "__init__",
       [](T* self, int64_t d_model, int64_t nhead, int64_t dim_feedforward, double dropout,
          const std::string& activation, double eps, bool batch_first, bool norm_first, bool bias,
          Dev device, DT dtype) {
         new (self) T(d_model, nhead,
                      layer_options(dim_feedforward, dropout, activation, eps, batch_first,
                                    norm_first, bias));
         apply_factory_kwargs(*self, device, dtype);
       },
       "d_model"_a, "nhead"_a, "dim_feedforward"_a = 2048, "dropout"_a = 0.1,
       "activation"_a = "relu", "layer_norm_eps"_a = 1e-5, "batch_first"_a = false,
       "norm_first"_a = false, "bias"_a = true, nb::kw_only(), "device"_a = nb::none(),
       "dtype"_a = nb::none())
      .def_ro("d_model", &T::d_model)
      .def_ro("nhead", &T::nhead);
}

nn::DecoderMasks decoder_masks(const std::optional<Tensor>& tgt_mask,
                               const std::optional<Tensor>& memory_mask,
                               const std::optional<Tensor>& tgt_kpm,
                               const std::optional<Tensor>& memory_kpm, bool tgt_is_causal,
                               bool memory_is_causal) {
  return {opt(tgt_mask),   opt(memory_mask), opt(tgt_kpm),
          opt(memory_kpm), tgt_is_causal,    memory_is_causal};
}

void def_transformer_layers(nb::module_& nn) {
  auto enc = nb::class_<nn::TransformerEncoderLayer, Module>(
      nn, "TransformerEncoderLayer",
      "Self-attention and a feed-forward block, each with a residual and a LayerNorm.");
  def_transformer_layer_ctor(enc);
  enc.def(
      "forward",
      [](nn::TransformerEncoderLayer& self, const Tensor& src,
         const std::optional<Tensor>& src_mask, const std::optional<Tensor>& src_key_padding_mask,
         bool is_causal) {
        ReleaseGilIfLarge gil(work(src, self.options.dim_feedforward));
        return self.forward(src,
                            nn::EncoderMasks{opt(src_mask), opt(src_key_padding_mask), is_causal});
      },
      "src"_a, "src_mask"_a = nb::none(), "src_key_padding_mask"_a = nb::none(),
      "is_causal"_a = false, "The layer's output, shaped like src.");

  auto dec = nb::class_<nn::TransformerDecoderLayer, Module>(
      nn, "TransformerDecoderLayer",
      "Self-attention, attention over the encoder's memory and a feed-forward block.");
  def_transformer_layer_ctor(dec);
  dec.def(
      "forward",
      [](nn::TransformerDecoderLayer& self, const Tensor& tgt, const Tensor& memory,
         const std::optional<Tensor>& tgt_mask, const std::optional<Tensor>& memory_mask,
         const std::optional<Tensor>& tgt_kpm, const std::optional<Tensor>& memory_kpm,
         bool tgt_is_causal, bool memory_is_causal) {
        ReleaseGilIfLarge gil(work(tgt, self.options.dim_feedforward));
        return self.forward(tgt, memory,
                            decoder_masks(tgt_mask, memory_mask, tgt_kpm, memory_kpm, tgt_is_causal,
                                          memory_is_causal));
      },
      "tgt"_a, "memory"_a, "tgt_mask"_a = nb::none(), "memory_mask"_a = nb::none(),
      "tgt_key_padding_mask"_a = nb::none(), "memory_key_padding_mask"_a = nb::none(),
      "tgt_is_causal"_a = false, "memory_is_causal"_a = false,
      "The layer's output, shaped like tgt.");
}

void def_transformer_stacks(nb::module_& nn) {
  nb::class_<nn::TransformerEncoder, Module>(
      nn, "TransformerEncoder",
      "num_layers copies of encoder_layer (layers.0, layers.1, ...) and an optional final norm.")
      .def(
          "__init__",
          [](nn::TransformerEncoder* self,
             const std::shared_ptr<nn::TransformerEncoderLayer>& layer, int64_t num_layers,
             const std::optional<nn::ModulePtr>& norm, bool, bool) {
            new (self) nn::TransformerEncoder(layer, num_layers, norm.value_or(nullptr));
          },
          "encoder_layer"_a, "num_layers"_a, "norm"_a = nb::none(), "enable_nested_tensor"_a = true,
          "mask_check"_a = true)
      .def(
          "forward",
          [](nn::TransformerEncoder& self, const Tensor& src, const std::optional<Tensor>& mask,
             const std::optional<Tensor>& src_key_padding_mask, std::optional<bool> is_causal) {
            ReleaseGilIfLarge gil(work(src, 4 * src.size(-1) * self.num_layers));
            return self.forward(src, nn::EncoderMasks{opt(mask), opt(src_key_padding_mask),
                                                      is_causal.value_or(false)});
          },
          "src"_a, "mask"_a = nb::none(), "src_key_padding_mask"_a = nb::none(),
          "is_causal"_a = nb::none(), "The stack's output, shaped like src.")
      .def_ro("num_layers", &nn::TransformerEncoder::num_layers);

  nb::class_<nn::TransformerDecoder, Module>(
      nn, "TransformerDecoder", "num_layers copies of decoder_layer and an optional final norm.")
      .def(
          "__init__",
          [](nn::TransformerDecoder* self,
             const std::shared_ptr<nn::TransformerDecoderLayer>& layer, int64_t num_layers,
             const std::optional<nn::ModulePtr>& norm) {
            new (self) nn::TransformerDecoder(layer, num_layers, norm.value_or(nullptr));
          },
          "decoder_layer"_a, "num_layers"_a, "norm"_a = nb::none())
      .def(
          "forward",
          [](nn::TransformerDecoder& self, const Tensor& tgt, const Tensor& memory,
             const std::optional<Tensor>& tgt_mask, const std::optional<Tensor>& memory_mask,
             const std::optional<Tensor>& tgt_kpm, const std::optional<Tensor>& memory_kpm,
             std::optional<bool> tgt_is_causal, bool memory_is_causal) {
            ReleaseGilIfLarge gil(work(tgt, 4 * tgt.size(-1) * self.num_layers));
            return self.forward(tgt, memory,
                                decoder_masks(tgt_mask, memory_mask, tgt_kpm, memory_kpm,
                                              tgt_is_causal.value_or(false), memory_is_causal));
          },
          "tgt"_a, "memory"_a, "tgt_mask"_a = nb::none(), "memory_mask"_a = nb::none(),
          "tgt_key_padding_mask"_a = nb::none(), "memory_key_padding_mask"_a = nb::none(),
          "tgt_is_causal"_a = nb::none(), "memory_is_causal"_a = false,
          "The stack's output, shaped like tgt.")
      .def_ro("num_layers", &nn::TransformerDecoder::num_layers);
}

}  // namespace

void init_nn_sequence_layers(nb::module_& nn) {
  def_recurrent(nn);
  def_cells(nn);
  def_attention(nn);
  def_transformer_layers(nn);
  def_transformer_stacks(nn);
}

}  // namespace tessera::py
