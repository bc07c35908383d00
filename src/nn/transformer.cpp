// MultiheadAttention and the transformer layers, composed of Linear, LayerNorm, Dropout and
// nn::functional::scaled_dot_product_attention.
#include "tessera/nn/transformer.h"

#include <cmath>
#include <limits>
#include <tuple>

#include "tessera/core/error.h"
#include "tessera/nn/functional.h"
#include "tessera/nn/init.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn {
namespace F = functional;
namespace {

constexpr const char* kMHA = "MultiheadAttention";
constexpr double kInf = std::numeric_limits<double>::infinity();

// Query, key and value moved to (N, L, E) / (N, S, *), whatever the caller's layout.
struct BatchMajor {
  Tensor q, k, v;
  bool batched;
};

BatchMajor to_batch_major(const Tensor& q, const Tensor& k, const Tensor& v, bool batch_first) {
  if (q.dim() == 2) return {q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0), false};
  if (batch_first) return {q, k, v, true};
  return {q.transpose(0, 1), k.transpose(0, 1), v.transpose(0, 1), true};
}

// "(L, N, 4)", "(N, L, 4)" or "(L, 4)": the expected layout of an input, for messages.
std::string layout(const char* seq, int64_t features, bool batched, bool batch_first) {
  if (!batched) return fmt::format("({}, {})", seq, features);
  return batch_first ? fmt::format("(N, {}, {})", seq, features)
                     : fmt::format("({}, N, {})", seq, features);
}

void check_mha_inputs(const MultiheadAttention& m, const Tensor& q, const Tensor& k,
                      const Tensor& v) {
  for (auto [t, what] : {std::pair{&q, "query"}, {&k, "key"}, {&v, "value"}})
    TS_CHECK(t->defined(), ValueError, kMHA, "{} is undefined", what);
  const bool bf = m.options.batch_first;
  TS_CHECK((q.dim() == 2 || q.dim() == 3) && q.size(-1) == m.embed_dim, ShapeError, kMHA,
           "expected query {} or unbatched (L, {}), got {}", layout("L", m.embed_dim, true, bf),
           m.embed_dim, shape_str(q.shape()));
  const bool batched = q.dim() == 3;
  for (auto [t, what, n] : {std::tuple{&k, "key", m.kdim}, {&v, "value", m.vdim}})
    TS_CHECK(t->dim() == q.dim() && t->size(-1) == n, ShapeError, kMHA,
             "expected {} {} for query {}, got {}", what, layout("S", n, batched, bf),
             shape_str(q.shape()), shape_str(t->shape()));
  const Shape kl(k.shape().begin(), k.shape().end() - 1),
      vl(v.shape().begin(), v.shape().end() - 1);
  TS_CHECK(kl == vl, ShapeError, kMHA,
           "key and value must have the same sequence length and batch size, got {} and {}",
           shape_str(k.shape()), shape_str(v.shape()));
  const int64_t bd = bf ? 0 : 1;
  TS_CHECK(!batched || q.size(bd) == k.size(bd), ShapeError, kMHA,
           "query and key must have the same batch size, got {} and {}", shape_str(q.shape()),
           shape_str(k.shape()));
}

// The query, key and value projections. Self-attention (one tensor for all three) takes one
// matmul with in_proj_weight.
std::vector<Tensor> project(const MultiheadAttention& m, const BatchMajor& b, bool self) {
  const int64_t E = m.embed_dim;
  const Tensor& bias = m.in_proj_bias;
  auto bias_part = [&](int64_t i) { return bias.defined() ? bias.narrow(0, i * E, E) : Tensor(); };
  if (m.in_proj_weight.defined()) {
    if (self) return chunk(F::linear(b.q, m.in_proj_weight, bias), 3, -1);
    const auto w = chunk(m.in_proj_weight, 3, 0);
    return {F::linear(b.q, w[0], bias_part(0)), F::linear(b.k, w[1], bias_part(1)),
            F::linear(b.v, w[2], bias_part(2))};
  }
  return {F::linear(b.q, m.q_proj_weight, bias_part(0)),
          F::linear(b.k, m.k_proj_weight, bias_part(1)),
          F::linear(b.v, m.v_proj_weight, bias_part(2))};
}

// (N, S, E) -> (N, H, S, E / H).
Tensor split_heads(const Tensor& x, int64_t heads) {
  return x.reshape({x.size(0), x.size(1), heads, x.size(2) / heads}).transpose(1, 2);
}

// A bool mask (true = not allowed) as -inf / 0, a float mask as is, both in dtype.
Tensor additive(const Tensor& mask, DType dtype, const char* what) {
  if (mask.dtype() == kBool) return where(mask, Scalar(-kInf), Scalar(0.0)).to(dtype);
  TS_CHECK(is_floating(mask.dtype()), DTypeError, kMHA, "{} must be bool or floating point, got {}",
           what, dtype_name(mask.dtype()));
  return mask.to(dtype);
}

Tensor attn_mask_part(const MultiheadAttention& m, const AttentionArgs& a, int64_t N, int64_t L,
                      int64_t S, bool batched, DType dtype) {
  const int64_t H = m.num_heads;
  if (!a.attn_mask.defined()) {
    if (!a.is_causal) return {};
    return additive(gt(arange(S).unsqueeze(0), arange(L).unsqueeze(1)), dtype, "causal mask");
  }
  const Tensor& am = a.attn_mask;
  const Shape per_head = batched ? Shape{N * H, L, S} : Shape{H, L, S};
  TS_CHECK(am.shape() == Shape({L, S}) || am.shape() == per_head, ShapeError, kMHA,
           "expected attn_mask of shape {} or {}, got {}", shape_str({L, S}), shape_str(per_head),
           shape_str(am.shape()));
  const Tensor add = additive(am, dtype, "attn_mask");
  return add.dim() == 3 ? add.reshape({N, H, L, S}) : add;
}

// attn_mask (or the causal mask) and key_padding_mask merged into one additive mask that
// broadcasts against the scores (N, H, L, S + extra_keys).
Tensor merged_mask(const MultiheadAttention& m, const AttentionArgs& a, int64_t N, int64_t L,
                   int64_t S, int64_t extra_keys, bool batched, DType dtype) {
  Tensor mask = attn_mask_part(m, a, N, L, S, batched, dtype);
  if (a.key_padding_mask.defined()) {
    const Tensor& kpm = a.key_padding_mask;
    const Shape want = batched ? Shape{N, S} : Shape{S};
    TS_CHECK(kpm.shape() == want, ShapeError, kMHA, "expected key_padding_mask of shape {}, got {}",
             shape_str(want), shape_str(kpm.shape()));
    const Tensor pad_mask = additive(kpm, dtype, "key_padding_mask").reshape({N, 1, 1, S});
    mask = mask.defined() ? mask + pad_mask : pad_mask;
  }
  // The appended keys (bias_k, the zero key) may be attended by every query.
  if (mask.defined() && extra_keys > 0) mask = pad(mask, {0, extra_keys});
  return mask;
}

}  // namespace

// ---- MultiheadAttention -----------------------------------------------------------------------

MultiheadAttention::MultiheadAttention(int64_t e, int64_t h, MultiheadAttentionOptions opt)
    : embed_dim(e), num_heads(h), options(std::move(opt)) {
  TS_CHECK(e > 0 && h > 0, ValueError, kMHA,
           "embed_dim and num_heads must be positive, got {} and {}", e, h);
  TS_CHECK(e % h == 0, ValueError, kMHA, "embed_dim {} must be divisible by num_heads {}", e, h);
  TS_CHECK(options.dropout >= 0.0 && options.dropout <= 1.0, ValueError, kMHA,
           "dropout must be in [0, 1], got {}", options.dropout);
  head_dim = e / h;
  kdim = options.kdim.value_or(e);
  vdim = options.vdim.value_or(e);
  TS_CHECK(kdim > 0 && vdim > 0, ValueError, kMHA, "kdim and vdim must be positive, got {} and {}",
           kdim, vdim);
  if (kdim == e && vdim == e) {
    in_proj_weight = register_parameter("in_proj_weight", empty({3 * e, e}));
  } else {
    q_proj_weight = register_parameter("q_proj_weight", empty({e, e}));
    k_proj_weight = register_parameter("k_proj_weight", empty({e, kdim}));
    v_proj_weight = register_parameter("v_proj_weight", empty({e, vdim}));
  }
  if (options.bias) in_proj_bias = register_parameter("in_proj_bias", empty({3 * e}));
  if (options.add_bias_kv) {
    bias_k = register_parameter("bias_k", empty({1, 1, e}));
    bias_v = register_parameter("bias_v", empty({1, 1, e}));
  }
  out_proj = register_module("out_proj", std::make_shared<Linear>(e, e, options.bias));
  reset_parameters();
}

void MultiheadAttention::reset_parameters() {
  for (const Tensor& w : {in_proj_weight, q_proj_weight, k_proj_weight, v_proj_weight})
    if (w.defined()) init::xavier_uniform_(w);
  out_proj->reset_parameters();
  // Biases start at zero, like PyTorch's.
  if (in_proj_bias.defined()) init::zeros_(in_proj_bias);
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
  if (bias_k.defined()) init::xavier_normal_(bias_k);
  if (bias_v.defined()) init::xavier_normal_(bias_v);
}

std::string MultiheadAttention::extra_repr() const {
  std::string s = fmt::format("embed_dim={}, num_heads={}", embed_dim, num_heads);
  if (kdim != embed_dim || vdim != embed_dim) s += fmt::format(", kdim={}, vdim={}", kdim, vdim);
  if (options.dropout != 0.0) s += fmt::format(", dropout={}", options.dropout);
  if (options.add_bias_kv) s += ", add_bias_kv=true";
  if (options.add_zero_attn) s += ", add_zero_attn=true";
  if (options.batch_first) s += ", batch_first=true";
  return s;
}

Tensor MultiheadAttention::forward(const Tensor& x) {
  return forward(x, x, x, {.need_weights = false}).first;
}

std::pair<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                      const Tensor& value,
                                                      const AttentionArgs& args) {
  check_mha_inputs(*this, query, key, value);
  const BatchMajor b = to_batch_major(query, key, value, options.batch_first);
  const bool self = query.is_same(key) && key.is_same(value);
  const int64_t N = b.q.size(0), L = b.q.size(1), S = b.k.size(1), H = num_heads;
  auto qkv = project(*this, b, self);
  if (options.add_bias_kv) {
    qkv[1] = cat({qkv[1], bias_k.expand({N, 1, embed_dim})}, 1);
    qkv[2] = cat({qkv[2], bias_v.expand({N, 1, embed_dim})}, 1);
  }
  Tensor q = split_heads(qkv[0], H), k = split_heads(qkv[1], H), v = split_heads(qkv[2], H);
  if (options.add_zero_attn) {
    k = cat({k, zeros({N, H, 1, head_dim}, {k.dtype(), k.device()})}, 2);
    v = cat({v, zeros({N, H, 1, head_dim}, {v.dtype(), v.device()})}, 2);
  }
  const int64_t extra = k.size(2) - S;
  const Tensor mask = merged_mask(*this, args, N, L, S, extra, b.batched, q.dtype());
  const double p = is_training() ? options.dropout : 0.0;
  Tensor o, weights;
  if (args.need_weights) {
    // The weights are wanted too, so compute them here rather than in the fused function.
    Tensor scores = matmul(q, k.mT()) * (1.0 / std::sqrt(static_cast<double>(head_dim)));
    if (mask.defined()) scores = scores + mask;
    weights = F::dropout(softmax(scores, -1), p, p > 0.0);
    o = matmul(weights, v);
    if (args.average_attn_weights) weights = weights.mean({1});
    if (!b.batched) weights = weights.squeeze(0);
  } else {
    o = F::scaled_dot_product_attention(q, k, v, mask, p);
  }
  Tensor out = (*out_proj)(o.transpose(1, 2).reshape({N, L, embed_dim}));
  out = !b.batched ? out.squeeze(0) : options.batch_first ? out : out.transpose(0, 1);
  return {out, weights};
}

// ---- encoder and decoder layers ---------------------------------------------------------------

namespace {

using Activation = Tensor (*)(const Tensor&);

Activation activation_fn(const std::string& name, const char* layer) {
  static const std::pair<const char*, Activation> kTable[] = {
      {"relu", [](const Tensor& x) { return tessera::relu(x); }},
      {"gelu", [](const Tensor& x) { return tessera::gelu(x); }},
  };
  for (const auto& [n, f] : kTable)
    if (name == n) return f;
  fail<ValueError>(layer, "activation must be \"relu\" or \"gelu\", got \"{}\"", name);
}

void check_layer_options(int64_t d_model, int64_t nhead, const TransformerLayerOptions& o,
                         const char* layer) {
  TS_CHECK(d_model > 0 && nhead > 0 && o.dim_feedforward > 0, ValueError, layer,
           "d_model, nhead and dim_feedforward must be positive, got {}, {} and {}", d_model, nhead,
           o.dim_feedforward);
  TS_CHECK(d_model % nhead == 0, ValueError, layer, "d_model {} must be divisible by nhead {}",
           d_model, nhead);
  TS_CHECK(o.dropout >= 0.0 && o.dropout <= 1.0, ValueError, layer,
           "dropout must be in [0, 1], got {}", o.dropout);
}

MultiheadAttentionOptions attention_options(const TransformerLayerOptions& o) {
  return {.dropout = o.dropout, .bias = o.bias, .batch_first = o.batch_first};
}

std::shared_ptr<LayerNorm> layer_norm(int64_t d, const TransformerLayerOptions& o) {
  return std::make_shared<LayerNorm>(Ints{d},
                                     LayerNormOptions{.eps = o.layer_norm_eps, .bias = o.bias});
}

// Checks a sequence input (S, N, E) / (N, S, E) or unbatched (S, E).
void check_sequence(const Tensor& x, int64_t d_model, bool batch_first, const char* layer,
                    const char* what) {
  TS_CHECK(x.defined(), ValueError, layer, "{} is undefined", what);
  TS_CHECK((x.dim() == 2 || x.dim() == 3) && x.size(-1) == d_model, ShapeError, layer,
           "expected {} {} or unbatched (S, {}), got {}", what,
           layout("S", d_model, true, batch_first), d_model, shape_str(x.shape()));
}

// Copies the configuration, parameter values, dtype, device and mode of `from` into `to`.
template <class Layer>
std::shared_ptr<Layer> clone_layer(const Layer& from) {
  auto to = std::make_shared<Layer>(from.d_model, from.nhead, from.options);
  const Tensor& w = from.linear1->weight;
  to->to(w.dtype());
  to->to(w.device());
  to->load_state_dict(from.state_dict());
  to->train(from.is_training());
  return to;
}

std::string layer_repr(const TransformerLayerOptions& o) {
  std::string s = fmt::format("dim_feedforward={}, dropout={}, activation={}", o.dim_feedforward,
                              o.dropout, o.activation);
  if (o.batch_first) s += ", batch_first=true";
  if (o.norm_first) s += ", norm_first=true";
  return s;
}

}  // namespace

TransformerEncoderLayer::TransformerEncoderLayer(int64_t d, int64_t h, TransformerLayerOptions opt)
    : d_model(d), nhead(h), options(std::move(opt)) {
  constexpr const char* kName = "TransformerEncoderLayer";
  check_layer_options(d, h, options, kName);
  activation_ = activation_fn(options.activation, kName);
  const int64_t ff = options.dim_feedforward;
  self_attn = register_module(
      "self_attn", std::make_shared<MultiheadAttention>(d, h, attention_options(options)));
  linear1 = register_module("linear1", std::make_shared<Linear>(d, ff, options.bias));
  dropout = register_module("dropout", std::make_shared<Dropout>(options.dropout));
  linear2 = register_module("linear2", std::make_shared<Linear>(ff, d, options.bias));
  norm1 = register_module("norm1", layer_norm(d, options));
  norm2 = register_module("norm2", layer_norm(d, options));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(options.dropout));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(options.dropout));
}

Tensor TransformerEncoderLayer::self_attention_block(const Tensor& x, const EncoderMasks& m) {
  const AttentionArgs args{.key_padding_mask = m.src_key_padding_mask,
                           .need_weights = false,
                           .attn_mask = m.src_mask,
                           .is_causal = m.is_causal};
  return (*dropout1)((*self_attn)(x, x, x, args).first);
}

Tensor TransformerEncoderLayer::feed_forward_block(const Tensor& x) {
  return (*dropout2)((*linear2)((*dropout)(activation_((*linear1)(x)))));
}

Tensor TransformerEncoderLayer::forward(const Tensor& src, const EncoderMasks& masks) {
  check_sequence(src, d_model, options.batch_first, "TransformerEncoderLayer", "src");
  Tensor x = src;
  if (options.norm_first) {
    x = x + self_attention_block((*norm1)(x), masks);
    return x + feed_forward_block((*norm2)(x));
  }
  x = (*norm1)(x + self_attention_block(x, masks));
  return (*norm2)(x + feed_forward_block(x));
}

std::shared_ptr<TransformerEncoderLayer> TransformerEncoderLayer::clone() const {
  return clone_layer(*this);
}

std::string TransformerEncoderLayer::extra_repr() const { return layer_repr(options); }

TransformerDecoderLayer::TransformerDecoderLayer(int64_t d, int64_t h, TransformerLayerOptions opt)
    : d_model(d), nhead(h), options(std::move(opt)) {
  constexpr const char* kName = "TransformerDecoderLayer";
  check_layer_options(d, h, options, kName);
  activation_ = activation_fn(options.activation, kName);
  const int64_t ff = options.dim_feedforward;
  const auto attn = attention_options(options);
  self_attn = register_module("self_attn", std::make_shared<MultiheadAttention>(d, h, attn));
  multihead_attn =
      register_module("multihead_attn", std::make_shared<MultiheadAttention>(d, h, attn));
  linear1 = register_module("linear1", std::make_shared<Linear>(d, ff, options.bias));
  dropout = register_module("dropout", std::make_shared<Dropout>(options.dropout));
  linear2 = register_module("linear2", std::make_shared<Linear>(ff, d, options.bias));
  norm1 = register_module("norm1", layer_norm(d, options));
  norm2 = register_module("norm2", layer_norm(d, options));
  norm3 = register_module("norm3", layer_norm(d, options));
  dropout1 = register_module("dropout1", std::make_shared<Dropout>(options.dropout));
  dropout2 = register_module("dropout2", std::make_shared<Dropout>(options.dropout));
  dropout3 = register_module("dropout3", std::make_shared<Dropout>(options.dropout));
}

Tensor TransformerDecoderLayer::self_attention_block(const Tensor& x, const DecoderMasks& m) {
  const AttentionArgs args{.key_padding_mask = m.tgt_key_padding_mask,
                           .need_weights = false,
                           .attn_mask = m.tgt_mask,
                           .is_causal = m.tgt_is_causal};
  return (*dropout1)((*self_attn)(x, x, x, args).first);
}

Tensor TransformerDecoderLayer::cross_attention_block(const Tensor& x, const Tensor& mem,
                                                      const DecoderMasks& m) {
  const AttentionArgs args{.key_padding_mask = m.memory_key_padding_mask,
                           .need_weights = false,
                           .attn_mask = m.memory_mask,
                           .is_causal = m.memory_is_causal};
  return (*dropout2)((*multihead_attn)(x, mem, mem, args).first);
}

Tensor TransformerDecoderLayer::feed_forward_block(const Tensor& x) {
  return (*dropout3)((*linear2)((*dropout)(activation_((*linear1)(x)))));
}

Tensor TransformerDecoderLayer::forward(const Tensor& tgt, const Tensor& memory,
                                        const DecoderMasks& masks) {
  constexpr const char* kName = "TransformerDecoderLayer";
  check_sequence(tgt, d_model, options.batch_first, kName, "tgt");
  check_sequence(memory, d_model, options.batch_first, kName, "memory");
  TS_CHECK(tgt.dim() == memory.dim(), ShapeError, kName,
           "tgt and memory must both be batched or both unbatched, got {} and {}",
           shape_str(tgt.shape()), shape_str(memory.shape()));
  Tensor x = tgt;
  if (options.norm_first) {
    x = x + self_attention_block((*norm1)(x), masks);
    x = x + cross_attention_block((*norm2)(x), memory, masks);
    return x + feed_forward_block((*norm3)(x));
  }
  x = (*norm1)(x + self_attention_block(x, masks));
  x = (*norm2)(x + cross_attention_block(x, memory, masks));
  return (*norm3)(x + feed_forward_block(x));
}

std::shared_ptr<TransformerDecoderLayer> TransformerDecoderLayer::clone() const {
  return clone_layer(*this);
}

std::string TransformerDecoderLayer::extra_repr() const { return layer_repr(options); }

// ---- stacks -----------------------------------------------------------------------------------

namespace {
template <class Layer>
std::shared_ptr<ModuleList> clones(const std::shared_ptr<Layer>& layer, int64_t n,
                                   const char* name) {
  TS_CHECK(layer != nullptr, ValueError, name, "the layer to clone is null");
  TS_CHECK(n > 0, ValueError, name, "num_layers must be positive, got {}", n);
  auto list = std::make_shared<ModuleList>();
  for (int64_t i = 0; i < n; ++i) list->push_back(layer->clone());
  return list;
}
}  // namespace

TransformerEncoder::TransformerEncoder(const std::shared_ptr<TransformerEncoderLayer>& layer,
                                       int64_t n, ModulePtr final_norm)
    : num_layers(n), norm(std::move(final_norm)) {
  layers = register_module("layers", clones(layer, n, "TransformerEncoder"));
  if (norm) register_module("norm", norm);
}

Tensor TransformerEncoder::forward(const Tensor& src, const EncoderMasks& masks) {
  Tensor x = src;
  for (int64_t i = 0; i < num_layers; ++i)
    x = layers->at<TransformerEncoderLayer>(i)->forward(x, masks);
  return norm ? norm->forward(x) : x;
}

TransformerDecoder::TransformerDecoder(const std::shared_ptr<TransformerDecoderLayer>& layer,
                                       int64_t n, ModulePtr final_norm)
    : num_layers(n), norm(std::move(final_norm)) {
  layers = register_module("layers", clones(layer, n, "TransformerDecoder"));
  if (norm) register_module("norm", norm);
}

Tensor TransformerDecoder::forward(const Tensor& tgt, const Tensor& memory,
                                   const DecoderMasks& masks) {
  Tensor x = tgt;
  for (int64_t i = 0; i < num_layers; ++i)
    x = layers->at<TransformerDecoderLayer>(i)->forward(x, memory, masks);
  return norm ? norm->forward(x) : x;
}

}  // namespace tessera::nn
