// MultiheadAttention and the transformer layers against an independent float64 reference
// written with per-element loops: layouts, masks (padding, additive, per-head, causal),
// bias_kv / zero_attn, pre- and post-norm; gradients by central differences; PyTorch's
// parameter names; shape errors.
#include <cmath>

#include "tessera/nn/transformer.h"
#include "test_nn_util.h"

namespace tessera {
namespace {
using nn_test::check_param_grads;
using nn_test::expect_close;
using nn_test::expect_error;
using nn_test::gradcheck;
using nn_test::vals;
using Vec = std::vector<double>;
using Seq = std::vector<Vec>;  // a sequence of token vectors
// An additive mask entry for (head, query i, key j) of one batch element.
using MaskFn = std::function<double(int64_t, int64_t, int64_t)>;

constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- the reference ----------------------------------------------------------------------------

Vec lin(const Vec& w, const Vec& b, const Vec& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  Vec y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    double acc = b.empty() ? 0.0 : b[r];
    for (size_t c = 0; c < cols; ++c) acc += w[r * cols + c] * x[c];
    y[r] = acc;
  }
  return y;
}

Vec slice(const Vec& v, size_t start, size_t n) {
  return Vec(v.begin() + start, v.begin() + start + n);
}

struct MHAWeights {
  Vec wq, wk, wv, bq, bk, bv, wo, bo, bias_k, bias_v;
  int64_t E = 0, H = 0;
  bool zero_attn = false;
};

// The weights of the attention module at `prefix`, read by name from the owner's parameters.
MHAWeights mha_weights(const nn::Module& owner, const std::string& prefix, int64_t H,
                       bool zero_attn = false) {
  MHAWeights w;
  w.H = H;
  w.zero_attn = zero_attn;
  const auto params = owner.named_parameters();
  auto get = [&](const std::string& n) {
    for (auto& [name, p] : params)
      if (name == prefix + n) return vals(p);
    return Vec{};
  };
  w.wo = get("out_proj.weight");
  w.bo = get("out_proj.bias");
  w.E = static_cast<int64_t>(w.bo.empty() ? std::sqrt(w.wo.size()) : w.bo.size());
  const auto E = static_cast<size_t>(w.E);
  if (Vec in = get("in_proj_weight"); !in.empty()) {
    w.wq = slice(in, 0, E * E), w.wk = slice(in, E * E, E * E), w.wv = slice(in, 2 * E * E, E * E);
  } else {
    w.wq = get("q_proj_weight"), w.wk = get("k_proj_weight"), w.wv = get("v_proj_weight");
  }
  if (Vec b = get("in_proj_bias"); !b.empty())
    w.bq = slice(b, 0, E), w.bk = slice(b, E, E), w.bv = slice(b, 2 * E, E);
  w.bias_k = get("bias_k");
  w.bias_v = get("bias_v");
  return w;
}

// Attention of one batch element. weights, when given, receives (H, L, S') probabilities.
Seq ref_attention(const MHAWeights& w, const Seq& q, const Seq& k, const Seq& v, const MaskFn& mask,
                  std::vector<std::vector<Vec>>* weights = nullptr) {
  const int64_t E = w.E, H = w.H, hd = E / H, S = static_cast<int64_t>(k.size());
  Seq Q, K, V;
  for (const Vec& t : q) Q.push_back(lin(w.wq, w.bq, t));
  for (const Vec& t : k) K.push_back(lin(w.wk, w.bk, t));
  for (const Vec& t : v) V.push_back(lin(w.wv, w.bv, t));
  if (!w.bias_k.empty()) K.push_back(w.bias_k), V.push_back(w.bias_v);
  if (w.zero_attn) K.emplace_back(E, 0.0), V.emplace_back(E, 0.0);
  const auto S2 = static_cast<int64_t>(K.size());
  if (weights) weights->assign(H, std::vector<Vec>(q.size()));
  Seq out;
  for (size_t i = 0; i < Q.size(); ++i) {
    Vec o(E, 0.0);
    for (int64_t h = 0; h < H; ++h) {
      Vec s(S2);
      double mx = -kInf;
      for (int64_t j = 0; j < S2; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < hd; ++d) dot += Q[i][h * hd + d] * K[j][h * hd + d];
        s[j] = dot / std::sqrt(static_cast<double>(hd)) + (j < S && mask ? mask(h, i, j) : 0.0);
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - mx));
      for (int64_t j = 0; j < S2; ++j) {
        s[j] /= z;
        for (int64_t d = 0; d < hd; ++d) o[h * hd + d] += s[j] * V[j][h * hd + d];
      }
      if (weights) (*weights)[h][i] = s;
    }
    out.push_back(lin(w.wo, w.bo, o));
  }
  return out;
}

Vec ref_layer_norm(const Vec& x, const Vec& g, const Vec& b, double eps) {
  double mean = 0, var = 0;
  for (double e : x) mean += e;
  mean /= static_cast<double>(x.size());
  for (double e : x) var += (e - mean) * (e - mean);
  var /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    y[i] = (x[i] - mean) / std::sqrt(var + eps) * (g.empty() ? 1.0 : g[i]) + (b.empty() ? 0 : b[i]);
  return y;
}

double ref_act(double x, const std::string& name) {
  return name == "relu" ? std::max(x, 0.0) : 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
}

Seq add(const Seq& a, const Seq& b) {
  Seq out = a;
  for (size_t i = 0; i < a.size(); ++i)
    for (size_t j = 0; j < a[i].size(); ++j) out[i][j] += b[i][j];
  return out;
}

// The named parameter as host values (empty when absent).
Vec param(const nn::Module& m, const std::string& name) {
  for (auto& [n, p] : m.named_parameters())
    if (n == name) return vals(p);
  return {};
}

Seq ref_norm(const nn::Module& m, const std::string& name, const Seq& x, double eps = 1e-5) {
  Seq out;
  for (const Vec& t : x)
    out.push_back(ref_layer_norm(t, param(m, name + ".weight"), param(m, name + ".bias"), eps));
  return out;
}

Seq ref_feed_forward(const nn::Module& m, const Seq& x, const std::string& act) {
  Seq out;
  for (const Vec& t : x) {
    Vec h = lin(param(m, "linear1.weight"), param(m, "linear1.bias"), t);
    for (double& e : h) e = ref_act(e, act);
    out.push_back(lin(param(m, "linear2.weight"), param(m, "linear2.bias"), h));
  }
  return out;
}

Seq ref_encoder_layer(const nn::TransformerEncoderLayer& m, const Seq& x, const MaskFn& mask) {
  const MHAWeights w = mha_weights(m, "self_attn.", m.nhead);
  auto sa = [&](const Seq& y) { return ref_attention(w, y, y, y, mask); };
  auto ff = [&](const Seq& y) { return ref_feed_forward(m, y, m.options.activation); };
  if (m.options.norm_first) {
    const Seq x1 = add(x, sa(ref_norm(m, "norm1", x)));
    return add(x1, ff(ref_norm(m, "norm2", x1)));
  }
  const Seq x1 = ref_norm(m, "norm1", add(x, sa(x)));
  return ref_norm(m, "norm2", add(x1, ff(x1)));
}

Seq ref_decoder_layer(const nn::TransformerDecoderLayer& m, const Seq& x, const Seq& mem,
                      const MaskFn& self_mask, const MaskFn& mem_mask) {
  const MHAWeights ws = mha_weights(m, "self_attn.", m.nhead);
  const MHAWeights wc = mha_weights(m, "multihead_attn.", m.nhead);
  auto sa = [&](const Seq& y) { return ref_attention(ws, y, y, y, self_mask); };
  auto ca = [&](const Seq& y) { return ref_attention(wc, y, mem, mem, mem_mask); };
  auto ff = [&](const Seq& y) { return ref_feed_forward(m, y, m.options.activation); };
  if (m.options.norm_first) {
    const Seq x1 = add(x, sa(ref_norm(m, "norm1", x)));
    const Seq x2 = add(x1, ca(ref_norm(m, "norm2", x1)));
    return add(x2, ff(ref_norm(m, "norm3", x2)));
  }
  const Seq x1 = ref_norm(m, "norm1", add(x, sa(x)));
  const Seq x2 = ref_norm(m, "norm2", add(x1, ca(x1)));
  return ref_norm(m, "norm3", add(x2, ff(x2)));
}

// ---- layout helpers ---------------------------------------------------------------------------

// Batch element n of a (L, N, E) tensor (or (N, L, E) when batch_first) as a sequence.
Seq seq_of(const Tensor& t, int64_t n, bool batch_first) {
  const Tensor s = batch_first ? t[n] : t.select(1, n);
  Seq out;
  for (int64_t i = 0; i < s.size(0); ++i) out.push_back(vals(s[i]));
  return out;
}

// Checks batch element n of t against a reference sequence.
void expect_seq(const Tensor& t, int64_t n, bool batch_first, const Seq& ref, double tol,
                const std::string& what) {
  const Seq got = seq_of(t, n, batch_first);
  ASSERT_EQ(got.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i)
    expect_close(tensor(got[i]), ref[i], tol, what + " token " + std::to_string(i));
}

// A bool tensor from 0/1 values.
Tensor mask_of(std::initializer_list<int> v, Shape s) {
  return ne(tensor(std::vector<int64_t>(v.begin(), v.end()), s), 0);
}

Tensor rand64(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat64, &g);
}

// Converts m to float64 and fills every parameter with N(0, 0.5) draws, so that zero-initialized
// biases are exercised too.
void randomize(nn::Module& m, uint64_t seed) {
  m.to(kFloat64);
  Generator g(seed);
  autograd::NoGradGuard no_grad;
  for (Tensor& p : m.parameters()) p.copy_(randn(p.shape(), kFloat64, &g) * 0.5);
}

std::vector<std::pair<std::string, Shape>> name_shapes(const nn::Module& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (auto& [n, p] : m.named_parameters()) out.emplace_back(n, p.shape());
  return out;
}

// ---- MultiheadAttention: parameters -----------------------------------------------------------

TEST(NNTransformer, MHAParameterNamesMatchPyTorch) {
  nn::MultiheadAttention a(4, 2);
  EXPECT_EQ(name_shapes(a), (std::vector<std::pair<std::string, Shape>>{{"in_proj_weight", {12, 4}},
                                                                        {"in_proj_bias", {12}},
                                                                        {"out_proj.weight", {4, 4}},
                                                                        {"out_proj.bias", {4}}}));
  nn::MultiheadAttention b(4, 2, {.bias = false, .add_bias_kv = true, .kdim = 3, .vdim = 5});
  EXPECT_EQ(name_shapes(b),
            (std::vector<std::pair<std::string, Shape>>{{"q_proj_weight", {4, 4}},
                                                        {"k_proj_weight", {4, 3}},
                                                        {"v_proj_weight", {4, 5}},
                                                        {"bias_k", {1, 1, 4}},
                                                        {"bias_v", {1, 1, 4}},
                                                        {"out_proj.weight", {4, 4}}}));
}

TEST(NNTransformer, MHAInitZeroesBiasesAndUsesXavier) {
  manual_seed(1);
  nn::MultiheadAttention a(16, 4);
  EXPECT_EQ(amax(abs(a.in_proj_bias)).item<double>(), 0.0);
  EXPECT_EQ(amax(abs(a.out_proj->bias)).item<double>(), 0.0);
  const double bound = std::sqrt(6.0 / (16 + 48));  // xavier over the whole (3E, E) matrix
  const double mx = amax(abs(a.in_proj_weight)).item<double>();
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.9 * bound);
  // out_proj keeps Linear's default, U(-1/sqrt(E), 1/sqrt(E)).
  EXPECT_LE(amax(abs(a.out_proj->weight)).item<double>(), 0.25);
}

// ---- MultiheadAttention: forward against the reference ----------------------------------------

TEST(NNTransformer, MHASelfAttentionMatchesReference) {
  nn::MultiheadAttention m(4, 2);
  randomize(m, 1);
  const int64_t L = 3, N = 2;
  const Tensor x = rand64({L, N, 4}, 2);
  auto [out, w] = m(x, x, x, {.average_attn_weights = false});
  ASSERT_EQ(out.shape(), (Shape{L, N, 4}));
  ASSERT_EQ(w.shape(), (Shape{N, 2, L, L}));
  const MHAWeights ref_w = mha_weights(m, "", 2);
  for (int64_t n = 0; n < N; ++n) {
    std::vector<std::vector<Vec>> rw;
    const Seq s = seq_of(x, n, false);
    expect_seq(out, n, false, ref_attention(ref_w, s, s, s, nullptr, &rw), 1e-12, "output");
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t i = 0; i < L; ++i) expect_close(w[n][h][i], rw[h][i], 1e-12, "weights");
  }
  // Averaged weights are the mean over heads.
  auto [out2, wa] = m(x, x, x);
  expect_close(wa, w.mean({1}), 1e-14);
  expect_close(out2, out, 0.0);
}

TEST(NNTransformer, MHACrossAttentionKdimVdimBatchFirstMatchesReference) {
  nn::MultiheadAttention m(6, 3, {.kdim = 2, .vdim = 5, .batch_first = true});
  randomize(m, 3);
  const int64_t N = 2, L = 3, S = 4;
  const Tensor q = rand64({N, L, 6}, 1), k = rand64({N, S, 2}, 2), v = rand64({N, S, 5}, 3);
  auto [out, w] = m(q, k, v);
  ASSERT_EQ(out.shape(), (Shape{N, L, 6}));
  ASSERT_EQ(w.shape(), (Shape{N, L, S}));
  const MHAWeights ref_w = mha_weights(m, "", 3);
  for (int64_t n = 0; n < N; ++n)
    expect_seq(
        out, n, true,
        ref_attention(ref_w, seq_of(q, n, true), seq_of(k, n, true), seq_of(v, n, true), nullptr),
        1e-12, "output");
}

TEST(NNTransformer, MHASharedEmbedDimCrossAttentionMatchesReference) {
  // Distinct query / key / value tensors with in_proj_weight: the three-matmul path.
  nn::MultiheadAttention m(4, 2);
  randomize(m, 4);
  const Tensor q = rand64({2, 2, 4}, 1), k = rand64({5, 2, 4}, 2), v = rand64({5, 2, 4}, 3);
  const Tensor out = m(q, k, v).first;
  const MHAWeights ref_w = mha_weights(m, "", 2);
  for (int64_t n = 0; n < 2; ++n)
    expect_seq(out, n, false,
               ref_attention(ref_w, seq_of(q, n, false), seq_of(k, n, false), seq_of(v, n, false),
                             nullptr),
               1e-12, "output");
}

TEST(NNTransformer, MHAMasksMatchReference) {
  nn::MultiheadAttention m(4, 2);
  randomize(m, 5);
  const int64_t L = 3, S = 4, N = 2, H = 2;
  const Tensor q = rand64({L, N, 4}, 1), kv = rand64({S, N, 4}, 2);
  // key_padding_mask: batch 0 ignores key 3, batch 1 ignores keys 0 and 2.
  const Tensor kpm = mask_of({0, 0, 0, 1, 1, 0, 1, 0}, {N, S});
  // A float attn_mask (L, S) and a bool per-head one (N * H, L, S).
  const Tensor fmask = rand64({L, S}, 3);
  Generator g(4);
  Tensor hmask = lt(rand({N * H, L, S}, kFloat64, &g), 0.3);
  hmask.index_put_({Slice(), Slice(), 1}, false);  // keep one key per row open
  const MHAWeights ref_w = mha_weights(m, "", H);
  const auto kpm_v = vals(kpm), f_v = vals(fmask), h_v = vals(hmask);
  for (int variant = 0; variant < 2; ++variant) {
    const Tensor am = variant == 0 ? fmask : hmask;
    auto [out, w] =
        m(q, kv, kv, {.key_padding_mask = kpm, .attn_mask = am, .average_attn_weights = false});
    auto [out_fused, none] =
        m(q, kv, kv, {.key_padding_mask = kpm, .need_weights = false, .attn_mask = am});
    EXPECT_FALSE(none.defined());
    expect_close(out_fused, out, 1e-12, "need_weights=false path");
    for (int64_t n = 0; n < N; ++n) {
      MaskFn mask = [&](int64_t h, int64_t i, int64_t j) {
        double a = kpm_v[n * S + j] != 0 ? -kInf : 0.0;
        if (variant == 0) return a + f_v[i * S + j];
        return a + (h_v[((n * H + h) * L + i) * S + j] != 0 ? -kInf : 0.0);
      };
      std::vector<std::vector<Vec>> rw;
      expect_seq(out, n, false,
                 ref_attention(ref_w, seq_of(q, n, false), seq_of(kv, n, false),
                               seq_of(kv, n, false), mask, &rw),
                 1e-12, "variant " + std::to_string(variant));
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < L; ++i) expect_close(w[n][h][i], rw[h][i], 1e-12, "weights");
    }
  }
}

TEST(NNTransformer, MHABoolAndAdditiveMasksAgree) {
  nn::MultiheadAttention m(4, 2);
  randomize(m, 6);
  const Tensor x = rand64({4, 2, 4}, 1);
  const Tensor bmask = mask_of({0, 1, 0, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0}, {4, 4});
  const Tensor fmask = where(bmask, Scalar(-kInf), Scalar(0.0)).to(kFloat64);
  expect_close(m(x, x, x, {.attn_mask = bmask}).first, m(x, x, x, {.attn_mask = fmask}).first,
               1e-14);
  const Tensor kb = mask_of({0, 1, 1, 0, 0, 0, 1, 0}, {2, 4});
  const Tensor kf = where(kb, Scalar(-kInf), Scalar(0.0)).to(kFloat64);
  expect_close(m(x, x, x, {.key_padding_mask = kb}).first,
               m(x, x, x, {.key_padding_mask = kf}).first, 1e-14);
}

TEST(NNTransformer, MHACausalMaskHidesTheFuture) {
  nn::MultiheadAttention m(4, 2, {.batch_first = true});
  randomize(m, 7);
  const int64_t L = 5;
  const Tensor x = rand64({2, L, 4}, 1);
  auto [y, w] = m(x, x, x, {.is_causal = true});
  // Same as the explicit mask (true above the diagonal = not allowed).
  const Tensor tri = gt(arange(L).unsqueeze(0), arange(L).unsqueeze(1));
  expect_close(y, m(x, x, x, {.attn_mask = tri}).first, 1e-14);
  expect_close(y, m(x, x, x, {.need_weights = false, .is_causal = true}).first, 1e-12);
  // Weights above the diagonal are zero.
  for (int64_t i = 0; i < L; ++i)
    for (int64_t j = i + 1; j < L; ++j) EXPECT_EQ(w[1][i][j].item<double>(), 0.0);
  // Perturbing step t changes no output before t, and changes output t.
  for (int64_t t = 0; t < L; ++t) {
    Tensor xp = x.clone();
    xp.index_put_({Slice(), t}, rand64({2, 4}, 10 + t));
    const Tensor yp = m(xp, xp, xp, {.is_causal = true}).first;
    if (t > 0) expect_close(yp.narrow(1, 0, t), y.narrow(1, 0, t), 1e-14, "before the change");
    EXPECT_GT(amax(abs(yp.select(1, t) - y.select(1, t))).item<double>(), 1e-6);
  }
}

TEST(NNTransformer, MHAKeyPaddingIgnoresPaddedKeys) {
  nn::MultiheadAttention m(4, 2);
  randomize(m, 8);
  const Tensor q = rand64({3, 2, 4}, 1), kv = rand64({4, 2, 4}, 2);
  const Tensor kpm = mask_of({0, 0, 1, 1, 0, 1, 0, 0}, {2, 4});
  auto [y, w] = m(q, kv, kv, {.key_padding_mask = kpm});
  Tensor kv2 = kv.clone();
  kv2.index_put_({Slice(2, 4), 0}, rand64({2, 4}, 3));  // batch 0's padded keys
  kv2.index_put_({1, 1}, rand64({4}, 4));               // batch 1's padded key
  expect_close(m(q, kv2, kv2, {.key_padding_mask = kpm}).first, y, 1e-14);
  EXPECT_EQ(w.index({0, Slice(), Slice(2, 4)}).abs().sum().item<double>(), 0.0);
  EXPECT_EQ(w.index({1, Slice(), 1}).abs().sum().item<double>(), 0.0);
}

TEST(NNTransformer, MHABiasKVAndZeroAttnMatchReference) {
  nn::MultiheadAttention m(4, 2, {.add_bias_kv = true, .add_zero_attn = true});
  randomize(m, 9);
  const int64_t L = 2, S = 3, N = 2;
  const Tensor q = rand64({L, N, 4}, 1), kv = rand64({S, N, 4}, 2);
  const Tensor kpm = mask_of({0, 1, 0, 0, 0, 1}, {N, S});
  auto [y, w] = m(q, kv, kv, {.key_padding_mask = kpm});
  ASSERT_EQ(w.shape(), (Shape{N, L, S + 2}));
  const MHAWeights ref_w = mha_weights(m, "", 2, true);
  const auto kpm_v = vals(kpm);
  for (int64_t n = 0; n < N; ++n) {
    MaskFn mask = [&](int64_t, int64_t, int64_t j) { return kpm_v[n * S + j] != 0 ? -kInf : 0.0; };
    expect_seq(
        y, n, false,
        ref_attention(ref_w, seq_of(q, n, false), seq_of(kv, n, false), seq_of(kv, n, false), mask),
        1e-12, "output");
  }
  expect_close(m(q, kv, kv, {.key_padding_mask = kpm, .need_weights = false}).first, y, 1e-12);
}

TEST(NNTransformer, MHAUnbatchedMatchesBatchOfOne) {
  nn::MultiheadAttention m(4, 2);
  randomize(m, 10);
  const Tensor q = rand64({3, 4}, 1), kv = rand64({5, 4}, 2);
  const Tensor kpm = mask_of({0, 1, 0, 0, 0}, {5});
  const Tensor am = rand64({2, 3, 5}, 3);  // (H, L, S) per head
  auto [y, w] = m(q, kv, kv, {.key_padding_mask = kpm, .attn_mask = am});
  auto [y1, w1] = m(q.unsqueeze(1), kv.unsqueeze(1), kv.unsqueeze(1),
                    {.key_padding_mask = kpm.unsqueeze(0), .attn_mask = am});
  ASSERT_EQ(y.shape(), (Shape{3, 4}));
  ASSERT_EQ(w.shape(), (Shape{3, 5}));
  expect_close(y, y1.squeeze(1), 1e-14);
  expect_close(w, w1.squeeze(0), 1e-14);
}

TEST(NNTransformer, MHADropoutOnlyWhileTraining) {
  nn::MultiheadAttention m(4, 2, {.dropout = 1.0});
  randomize(m, 11);
  const Tensor x = rand64({3, 2, 4}, 1);
  // p = 1 drops every weight: the output is out_proj's bias.
  const Tensor bias = m.out_proj->bias.detach().expand({3, 2, 4});
  expect_close(m(x, x, x).first, bias, 1e-14, "training, weights");
  expect_close(m(x, x, x, {.need_weights = false}).first, bias, 1e-14, "training, fused");
  m.eval();
  const MHAWeights ref_w = mha_weights(m, "", 2);
  const Seq s = seq_of(x, 0, false);
  expect_seq(m(x, x, x).first, 0, false, ref_attention(ref_w, s, s, s, nullptr), 1e-12, "eval");
}

TEST(NNTransformer, MHAGradientsMatchFiniteDifferences) {
  nn::MultiheadAttention m(4, 2, {.add_bias_kv = true});
  randomize(m, 12);
  const Tensor q = rand64({2, 2, 4}, 1), k = rand64({3, 2, 4}, 2), v = rand64({3, 2, 4}, 3);
  const Tensor kpm = mask_of({0, 1, 0, 0, 0, 0}, {2, 3});
  const Tensor am = rand64({2, 3}, 4);
  auto f = [&](const std::vector<Tensor>& in) {
    auto [y, w] = m(in[0], in[1], in[2], {.key_padding_mask = kpm, .attn_mask = am});
    return cat({y.reshape({-1}), w.reshape({-1})});
  };
  gradcheck(f, {q, k, v});
  const Tensor r = rand64({2 * 2 * 4 + 2 * 2 * 4}, 5);
  check_param_grads(m, [&] { return (f({q, k, v}) * r).sum(); });
  // The fused (need_weights = false) path, self-attention.
  gradcheck(
      [&](const std::vector<Tensor>& in) {
        return m(in[0], in[0], in[0], {.need_weights = false, .is_causal = true}).first;
      },
      {k});
}

TEST(NNTransformer, MHABadInputsRaise) {
  nn::MultiheadAttention m(4, 2, {.kdim = 3});
  const Tensor q = zeros({3, 2, 4}), k = zeros({5, 2, 3}), v = zeros({5, 2, 4});
  expect_error<ShapeError>(
      [&] {
        m(zeros({3, 2, 5}), k, v);
      },
      {"[MultiheadAttention]", "query", "(L, N, 4)", "(3, 2, 5)"});
  expect_error<ShapeError>(
      [&] {
        m(q, zeros({5, 2, 4}), v);
      },
      {"[MultiheadAttention]", "key", "(S, N, 3)", "(5, 2, 4)"});
  expect_error<ShapeError>(
      [&] {
        m(q, k, zeros({4, 2, 4}));
      },
      {"[MultiheadAttention]", "same sequence length", "(5, 2, 3)"});
  expect_error<ShapeError>(
      [&] {
        m(q, zeros({5, 3, 3}), zeros({5, 3, 4}));
      },
      {"[MultiheadAttention]", "batch size"});
  expect_error<ShapeError>(
      [&] {
        m(q, k, v, {.key_padding_mask = zeros({2, 4}, kBool)});
      },
      {"[MultiheadAttention]", "key_padding_mask", "(2, 5)", "(2, 4)"});
  expect_error<ShapeError>(
      [&] {
        m(q, k, v, {.attn_mask = zeros({3, 3})});
      },
      {"[MultiheadAttention]", "attn_mask", "(3, 5)", "(4, 3, 5)", "(3, 3)"});
  expect_error<DTypeError>(
      [&] {
        m(q, k, v, {.attn_mask = zeros({3, 5}, kInt64)});
      },
      {"[MultiheadAttention]", "attn_mask", "int64"});
  expect_error<ValueError>([] { nn::MultiheadAttention(6, 4); },
                           {"[MultiheadAttention]", "divisible"});
}

// ---- transformer layers -----------------------------------------------------------------------

std::vector<std::string> names(const nn::Module& m) {
  std::vector<std::string> out;
  for (auto& [n, p] : m.named_parameters()) out.push_back(n);
  return out;
}

TEST(NNTransformer, EncoderLayerStructureMatchesPyTorch) {
  nn::TransformerEncoderLayer layer(8, 2, {.dim_feedforward = 16});
  EXPECT_EQ(name_shapes(layer),
            (std::vector<std::pair<std::string, Shape>>{{"self_attn.in_proj_weight", {24, 8}},
                                                        {"self_attn.in_proj_bias", {24}},
                                                        {"self_attn.out_proj.weight", {8, 8}},
                                                        {"self_attn.out_proj.bias", {8}},
                                                        {"linear1.weight", {16, 8}},
                                                        {"linear1.bias", {16}},
                                                        {"linear2.weight", {8, 16}},
                                                        {"linear2.bias", {8}},
                                                        {"norm1.weight", {8}},
                                                        {"norm1.bias", {8}},
                                                        {"norm2.weight", {8}},
                                                        {"norm2.bias", {8}}}));
  std::vector<std::string> children;
  for (auto& [n, c] : layer.named_children()) children.push_back(n);
  EXPECT_EQ(children, (std::vector<std::string>{"self_attn", "linear1", "dropout", "linear2",
                                                "norm1", "norm2", "dropout1", "dropout2"}));
}

TEST(NNTransformer, DecoderLayerStructureMatchesPyTorch) {
  nn::TransformerDecoderLayer layer(4, 2, {.dim_feedforward = 6, .bias = false});
  EXPECT_EQ(names(layer),
            (std::vector<std::string>{
                "self_attn.in_proj_weight", "self_attn.out_proj.weight",
                "multihead_attn.in_proj_weight", "multihead_attn.out_proj.weight", "linear1.weight",
                "linear2.weight", "norm1.weight", "norm2.weight", "norm3.weight"}));
  std::vector<std::string> children;
  for (auto& [n, c] : layer.named_children()) children.push_back(n);
  EXPECT_EQ(children, (std::vector<std::string>{"self_attn", "multihead_attn", "linear1", "dropout",
                                                "linear2", "norm1", "norm2", "norm3", "dropout1",
                                                "dropout2", "dropout3"}));
}

// Compares layer(x) with the reference for every batch element (eval mode: no dropout).
void check_encoder_layer(nn::TransformerEncoderLayer& layer, const Tensor& x,
                         const nn::EncoderMasks& masks, const std::function<MaskFn(int64_t)>& mf) {
  layer.eval();
  const bool bf = layer.options.batch_first;
  const Tensor y = layer(x, masks);
  ASSERT_EQ(y.shape(), x.shape());
  for (int64_t n = 0; n < x.size(bf ? 0 : 1); ++n)
    expect_seq(y, n, bf, ref_encoder_layer(layer, seq_of(x, n, bf), mf(n)), 1e-11, "encoder");
}

TEST(NNTransformer, EncoderLayerPostNormReLUMatchesReference) {
  nn::TransformerEncoderLayer layer(4, 2, {.dim_feedforward = 6});
  randomize(layer, 1);
  const Tensor x = rand64({3, 2, 4}, 2);
  const Tensor kpm = mask_of({0, 0, 1, 0, 1, 0}, {2, 3});
  const auto kv = vals(kpm);
  check_encoder_layer(layer, x, {.src_key_padding_mask = kpm}, [&](int64_t n) -> MaskFn {
    return [&, n](int64_t, int64_t, int64_t j) { return kv[n * 3 + j] != 0 ? -kInf : 0.0; };
  });
}

TEST(NNTransformer, EncoderLayerPreNormGELUCausalBatchFirstMatchesReference) {
  nn::TransformerEncoderLayer layer(
      4, 2, {.dim_feedforward = 5, .activation = "gelu", .batch_first = true, .norm_first = true});
  randomize(layer, 3);
  const Tensor x = rand64({2, 4, 4}, 4);
  auto causal = [](int64_t) -> MaskFn {
    return [](int64_t, int64_t i, int64_t j) { return j > i ? -kInf : 0.0; };
  };
  check_encoder_layer(layer, x, {.is_causal = true}, causal);
  const Tensor fmask = rand64({4, 4}, 5);
  const auto fv = vals(fmask);
  check_encoder_layer(layer, x, {.src_mask = fmask}, [&](int64_t) -> MaskFn {
    return [&](int64_t, int64_t i, int64_t j) { return fv[i * 4 + j]; };
  });
}

TEST(NNTransformer, EncoderLayerDropoutWhileTraining) {
  // dropout = 1 zeroes both residual branches: post-norm leaves norm2(norm1(x)).
  nn::TransformerEncoderLayer layer(4, 2, {.dim_feedforward = 6, .dropout = 1.0});
  randomize(layer, 6);
  const Tensor x = rand64({3, 2, 4}, 7);
  const Tensor y = layer(x);
  for (int64_t n = 0; n < 2; ++n)
    expect_seq(y, n, false, ref_norm(layer, "norm2", ref_norm(layer, "norm1", seq_of(x, n, false))),
               1e-12, "training");
  layer.eval();
  EXPECT_GT(amax(abs(layer(x) - y)).item<double>(), 1e-3);
}

TEST(NNTransformer, DecoderLayerMatchesReference) {
  for (bool norm_first : {false, true}) {
    nn::TransformerDecoderLayer layer(4, 2, {.dim_feedforward = 6, .norm_first = norm_first});
    randomize(layer, 8);
    layer.eval();
    const int64_t T = 3, S = 4, N = 2;
    const Tensor tgt = rand64({T, N, 4}, 1), mem = rand64({S, N, 4}, 2);
    const Tensor mkpm = mask_of({0, 1, 0, 0, 0, 0, 0, 1}, {N, S});
    const Tensor y = layer(tgt, mem, {.memory_key_padding_mask = mkpm, .tgt_is_causal = true});
    const auto mv = vals(mkpm);
    for (int64_t n = 0; n < N; ++n) {
      MaskFn self_mask = [](int64_t, int64_t i, int64_t j) { return j > i ? -kInf : 0.0; };
      MaskFn mem_mask = [&](int64_t, int64_t, int64_t j) {
        return mv[n * S + j] != 0 ? -kInf : 0.0;
      };
      expect_seq(y, n, false,
                 ref_decoder_layer(layer, seq_of(tgt, n, false), seq_of(mem, n, false), self_mask,
                                   mem_mask),
                 1e-11, norm_first ? "pre-norm" : "post-norm");
    }
  }
}

TEST(NNTransformer, EncoderStackClonesTheLayer) {
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(
      4, 2, nn::TransformerLayerOptions{.dim_feedforward = 6});
  randomize(*layer, 9);
  auto final_norm = std::make_shared<nn::LayerNorm>(nn::Ints{4});
  randomize(*final_norm, 10);
  nn::TransformerEncoder enc(layer, 2, final_norm);
  const auto ns = names(enc);
  ASSERT_EQ(ns.size(), 26u);
  EXPECT_EQ(ns[0], "layers.0.self_attn.in_proj_weight");
  EXPECT_EQ(ns[12], "layers.1.self_attn.in_proj_weight");
  EXPECT_EQ(ns[24], "norm.weight");
  // Clones start equal to the layer but are separate tensors.
  const Tensor w0 = enc.get_parameter("layers.0.linear1.weight");
  const Tensor w1 = enc.get_parameter("layers.1.linear1.weight");
  expect_close(w0, layer->linear1->weight, 0.0);
  expect_close(w1, layer->linear1->weight, 0.0);
  EXPECT_FALSE(w0.is_same(layer->linear1->weight));
  EXPECT_NE(w0.data_ptr<double>(), w1.data_ptr<double>());
  // Forward: the layer twice, then the norm, with the mask passed to every layer.
  enc.eval();
  const Tensor x = rand64({4, 2, 4}, 11);
  const Tensor y = enc(x, {.is_causal = true});
  MaskFn causal = [](int64_t, int64_t i, int64_t j) { return j > i ? -kInf : 0.0; };
  for (int64_t n = 0; n < 2; ++n) {
    Seq s = seq_of(x, n, false);
    s = ref_encoder_layer(*layer, ref_encoder_layer(*layer, s, causal), causal);
    expect_seq(y, n, false, ref_norm(enc, "norm", s), 1e-11, "stack");
  }
  // Causality through the whole stack: changing the last step changes only the last output.
  Tensor xp = x.clone();
  xp.index_put_({3}, rand64({2, 4}, 12));
  const Tensor yp = enc(xp, {.is_causal = true});
  expect_close(yp.narrow(0, 0, 3), y.narrow(0, 0, 3), 1e-13);
  EXPECT_GT(amax(abs(yp[3] - y[3])).item<double>(), 1e-6);
}

TEST(NNTransformer, DecoderStackMatchesRepeatedLayer) {
  auto layer = std::make_shared<nn::TransformerDecoderLayer>(
      4, 2, nn::TransformerLayerOptions{.dim_feedforward = 6, .batch_first = true});
  randomize(*layer, 13);
  layer->eval();
  nn::TransformerDecoder dec(layer, 2);
  dec.eval();
  const Tensor tgt = rand64({2, 3, 4}, 1), mem = rand64({2, 5, 4}, 2);
  const Tensor y = dec(tgt, mem, {.tgt_is_causal = true});
  MaskFn causal = [](int64_t, int64_t i, int64_t j) { return j > i ? -kInf : 0.0; };
  for (int64_t n = 0; n < 2; ++n) {
    const Seq m = seq_of(mem, n, true);
    const Seq s1 = ref_decoder_layer(*layer, seq_of(tgt, n, true), m, causal, nullptr);
    expect_seq(y, n, true, ref_decoder_layer(*layer, s1, m, causal, nullptr), 1e-11, "stack");
  }
}

TEST(NNTransformer, EncoderLayerGradientsMatchFiniteDifferences) {
  nn::TransformerEncoderLayer layer(4, 2, {.dim_feedforward = 3, .activation = "gelu"});
  randomize(layer, 14);
  layer.eval();
  const Tensor x = rand64({3, 2, 4}, 1), r = rand64({3, 2, 4}, 2);
  const Tensor kpm = mask_of({0, 0, 1, 0, 0, 0}, {2, 3});
  auto f = [&](const std::vector<Tensor>& in) {
    return layer(in[0], {.src_key_padding_mask = kpm, .is_causal = true});
  };
  gradcheck(f, {x});
  check_param_grads(layer, [&] { return (f({x}) * r).sum(); });
}

TEST(NNTransformer, DecoderLayerGradientsMatchFiniteDifferences) {
  nn::TransformerDecoderLayer layer(4, 2, {.dim_feedforward = 3, .norm_first = true});
  randomize(layer, 15);
  layer.eval();
  const Tensor tgt = rand64({2, 2, 4}, 1), mem = rand64({3, 2, 4}, 2);
  gradcheck(
      [&](const std::vector<Tensor>& in) { return layer(in[0], in[1], {.tgt_is_causal = true}); },
      {tgt, mem});
}

TEST(NNTransformer, LayerBadInputsRaise) {
  expect_error<ValueError>([] { nn::TransformerEncoderLayer(4, 2, {.activation = "tanh"}); },
                           {"[TransformerEncoderLayer]", "tanh"});
  expect_error<ValueError>([] { nn::TransformerDecoderLayer(6, 4); },
                           {"[TransformerDecoderLayer]", "divisible"});
  nn::TransformerEncoderLayer enc(4, 2, {.dim_feedforward = 6});
  expect_error<ShapeError>(
      [&] {
        enc(zeros({3, 2, 5}));
      },
      {"[TransformerEncoderLayer]", "src", "(S, N, 4)", "(3, 2, 5)"});
  nn::TransformerDecoderLayer dec(4, 2, {.dim_feedforward = 6, .batch_first = true});
  expect_error<ShapeError>(
      [&] {
        dec(zeros({2, 3, 4}), zeros({2, 3, 3}));
      },
      {"[TransformerDecoderLayer]", "memory", "(N, S, 4)", "(2, 3, 3)"});
  expect_error<ShapeError>(
      [&] {
        dec(zeros({2, 3, 4}), zeros({3, 4}));
      },
      {"[TransformerDecoderLayer]", "both be batched"});
  expect_error<NotImplementedError>(
      [&] {
        dec.forward(zeros({2, 3, 4}));
      },
      {"TransformerDecoderLayer"});
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(4, 2);
  expect_error<ValueError>([&] { nn::TransformerEncoder(layer, 0); },
                           {"[TransformerEncoder]", "num_layers"});
}

TEST(NNTransformer, FloatForwardAndSequentialUse) {
  manual_seed(3);
  auto layer = std::make_shared<nn::TransformerEncoderLayer>(8, 4);
  nn::Sequential seq(std::static_pointer_cast<nn::Module>(layer));
  const Tensor y = seq.forward(randn({5, 2, 8}));
  EXPECT_EQ(y.shape(), (Shape{5, 2, 8}));
  EXPECT_EQ(y.dtype(), kFloat32);
  EXPECT_TRUE(isfinite(y).to(kInt64).sum().item<int64_t>() == y.numel());
}

}  // namespace
}  // namespace tessera
