#pragma once
// Attention and transformer layers with PyTorch's structure, parameter names and masks:
// MultiheadAttention, TransformerEncoderLayer / TransformerDecoderLayer, and the stacks
// TransformerEncoder / TransformerDecoder (clones of one layer plus an optional final norm).
//
//   nn::MultiheadAttention mha(64, 8, {.batch_first = true});
//   auto [y, w] = mha(x, x, x, {.key_padding_mask = pad, .is_causal = true});
//   auto layer = std::make_shared<nn::TransformerEncoderLayer>(
//       64, 8, nn::TransformerLayerOptions{.dim_feedforward = 256});
//   nn::TransformerEncoder enc(layer, 6);
//   Tensor h = enc(x, {.src_key_padding_mask = pad});
//
// Mask conventions are PyTorch's nn.MultiheadAttention ones: a bool mask is true where
// attention is NOT allowed, a float mask is added to the scores. (nn::functional::
// scaled_dot_product_attention's bool mask is the opposite: true = may attend.)
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "tessera/nn/containers.h"
#include "tessera/nn/layers.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

struct MultiheadAttentionOptions {
  double dropout = 0.0;               ///< on the attention weights, while training
  bool bias = true;                   ///< in_proj_bias and out_proj.bias
  bool add_bias_kv = false;           ///< learned bias_k / bias_v appended to the keys and values
  bool add_zero_attn = false;         ///< a zero key and value appended (after the heads are split)
  std::optional<int64_t> kdim, vdim;  ///< key / value feature sizes (default embed_dim)
  bool batch_first = false;           ///< (N, L, E) instead of (L, N, E)
};

/// MultiheadAttention::forward's optional arguments.
struct AttentionArgs {
  Tensor key_padding_mask;   ///< (N, S) or unbatched (S): bool true / float -inf ignores a key
  bool need_weights = true;  ///< also return the attention weights
  Tensor attn_mask;  ///< (L, S) or (N * num_heads, L, S): bool true = not allowed, float added
  bool average_attn_weights = true;  ///< weights (N, L, S) averaged over heads, else (N, H, L, S)
  /// Masks key j > query i. With attn_mask also given, attn_mask is used (it is taken to be
  /// the causal mask, PyTorch's "hint").
  bool is_causal = false;
};

/// Attention over num_heads heads of embed_dim / num_heads features. Parameters (PyTorch's
/// names): in_proj_weight (3E, E) when kdim = vdim = E, else q_proj_weight (E, E),
/// k_proj_weight (E, kdim), v_proj_weight (E, vdim); in_proj_bias (3E); bias_k, bias_v
/// (1, 1, E) with add_bias_kv; out_proj (a Linear E -> E).
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, MultiheadAttentionOptions opt = {});
  /// (output, weights): query (L, N, E), key (S, N, kdim), value (S, N, vdim) (batch first:
  /// (N, L, E), ...; unbatched: (L, E), ...) -> output like query; weights (N, L, S) (or
  /// (N, H, L, S) without averaging; undefined unless need_weights).
  std::pair<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                    const AttentionArgs& args = {});
  /// Self-attention output only (need_weights false).
  Tensor forward(const Tensor& x) override;
  std::pair<Tensor, Tensor> operator()(const Tensor& query, const Tensor& key, const Tensor& value,
                                       const AttentionArgs& args = {}) {
    return forward(query, key, value, args);
  }
  void reset_parameters() override;
  std::string extra_repr() const override;

  int64_t embed_dim, num_heads, head_dim, kdim, vdim;
  MultiheadAttentionOptions options;
  Tensor in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight, in_proj_bias;
  Tensor bias_k, bias_v;
  std::shared_ptr<Linear> out_proj;
};

struct TransformerLayerOptions {
  int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  std::string activation = "relu";  ///< "relu" or "gelu"
  double layer_norm_eps = 1e-5;
  bool batch_first = false;
  bool norm_first = false;  ///< pre-norm (x + f(norm(x))) instead of post-norm (norm(x + f(x)))
  bool bias = true;         ///< in the linear layers, the attention and the layer norms
};

/// TransformerEncoderLayer::forward's optional arguments.
struct EncoderMasks {
  Tensor src_mask;              ///< attn_mask of the self-attention
  Tensor src_key_padding_mask;  ///< (N, S) or (S)
  bool is_causal = false;
};

/// Self-attention and a feed-forward block, each with a residual connection and LayerNorm.
/// Submodules: self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2.
class TransformerEncoderLayer : public Module {
 public:
  TransformerEncoderLayer(int64_t d_model, int64_t nhead, TransformerLayerOptions opt = {});
  /// src (S, N, E), (N, S, E) batch first, or unbatched (S, E).
  Tensor forward(const Tensor& src, const EncoderMasks& masks);
  Tensor forward(const Tensor& src) override { return forward(src, EncoderMasks{}); }
  Tensor operator()(const Tensor& src, const EncoderMasks& masks = {}) {
    return forward(src, masks);
  }
  /// A new layer with the same configuration, training mode and (copied) parameter values.
  std::shared_ptr<TransformerEncoderLayer> clone() const;
  std::string extra_repr() const override;

  int64_t d_model, nhead;
  TransformerLayerOptions options;
  std::shared_ptr<MultiheadAttention> self_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2;
  std::shared_ptr<Dropout> dropout1, dropout2;

 private:
  Tensor self_attention_block(const Tensor& x, const EncoderMasks& m);
  Tensor feed_forward_block(const Tensor& x);
  Tensor (*activation_)(const Tensor&);
};

/// TransformerDecoderLayer::forward's optional arguments.
struct DecoderMasks {
  Tensor tgt_mask, memory_mask;
  Tensor tgt_key_padding_mask, memory_key_padding_mask;
  bool tgt_is_causal = false, memory_is_causal = false;
};

/// Self-attention, attention over the encoder's memory, and a feed-forward block.
/// Submodules: self_attn, multihead_attn, linear1, dropout, linear2, norm1..3, dropout1..3.
class TransformerDecoderLayer : public Module {
 public:
  TransformerDecoderLayer(int64_t d_model, int64_t nhead, TransformerLayerOptions opt = {});
  /// tgt (T, N, E), memory (S, N, E) (batch first: (N, T, E), (N, S, E); or unbatched).
  Tensor forward(const Tensor& tgt, const Tensor& memory, const DecoderMasks& masks = {});
  using Module::forward;  // the one-argument forward raises: a decoder needs memory
  Tensor operator()(const Tensor& tgt, const Tensor& memory, const DecoderMasks& masks = {}) {
    return forward(tgt, memory, masks);
  }
  std::shared_ptr<TransformerDecoderLayer> clone() const;
  std::string extra_repr() const override;

  int64_t d_model, nhead;
  TransformerLayerOptions options;
  std::shared_ptr<MultiheadAttention> self_attn, multihead_attn;
  std::shared_ptr<Linear> linear1;
  std::shared_ptr<Dropout> dropout;
  std::shared_ptr<Linear> linear2;
  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Dropout> dropout1, dropout2, dropout3;

 private:
  Tensor self_attention_block(const Tensor& x, const DecoderMasks& m);
  Tensor cross_attention_block(const Tensor& x, const Tensor& mem, const DecoderMasks& m);
  Tensor feed_forward_block(const Tensor& x);
  Tensor (*activation_)(const Tensor&);
};

/// num_layers clones of encoder_layer (registered as layers.0, layers.1, ...; the given layer
/// itself is not used, like PyTorch's deep copies), then the optional norm.
class TransformerEncoder : public Module {
 public:
  TransformerEncoder(const std::shared_ptr<TransformerEncoderLayer>& encoder_layer,
                     int64_t num_layers, ModulePtr norm = nullptr);
  Tensor forward(const Tensor& src, const EncoderMasks& masks);
  Tensor forward(const Tensor& src) override { return forward(src, EncoderMasks{}); }
  Tensor operator()(const Tensor& src, const EncoderMasks& masks = {}) {
    return forward(src, masks);
  }
  int64_t num_layers;
  std::shared_ptr<ModuleList> layers;
  ModulePtr norm;  ///< null when absent
};

/// num_layers clones of decoder_layer, then the optional norm.
class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const std::shared_ptr<TransformerDecoderLayer>& decoder_layer,
                     int64_t num_layers, ModulePtr norm = nullptr);
  Tensor forward(const Tensor& tgt, const Tensor& memory, const DecoderMasks& masks = {});
  using Module::forward;
  Tensor operator()(const Tensor& tgt, const Tensor& memory, const DecoderMasks& masks = {}) {
    return forward(tgt, memory, masks);
  }
  int64_t num_layers;
  std::shared_ptr<ModuleList> layers;
  ModulePtr norm;
};

}  // namespace tessera::nn
