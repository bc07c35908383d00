// nn::functional attention and nn::init against independent references and statistics.
#include <cmath>

#include "test_nn_util.h"

namespace tessera {
namespace {
namespace F = nn::functional;
using nn_test::expect_close;
using nn_test::expect_error;
using nn_test::gradcheck;
using nn_test::vals;
using Vec = std::vector<double>;

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat64, &g);
}

// Attention per batch: softmax over j of (q_i . k_j * scale + bias_ij) (-inf bias = masked).
Vec attention_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                        const std::function<double(int64_t, int64_t, int64_t)>& bias,
                        double scale) {
  const int64_t B = q.size(0), L = q.size(1), S = k.size(1), E = q.size(2), Ev = v.size(2);
  const Vec qv = vals(q), kv = vals(k), vv = vals(v);
  Vec out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      Vec s(S);
      double m = -INFINITY;
      for (int64_t j = 0; j < S; ++j) {
        double d = 0;
        for (int64_t e = 0; e < E; ++e) d += qv[(b * L + i) * E + e] * kv[(b * S + j) * E + e];
        s[j] = d * scale + bias(b, i, j);
        m = std::max(m, s[j]);
      }
      double z = 0;
      for (double& e : s) z += (e = std::exp(e - m));
      for (int64_t e = 0; e < Ev; ++e) {
        double acc = 0;
        for (int64_t j = 0; j < S; ++j) acc += s[j] / z * vv[(b * S + j) * Ev + e];
        out.push_back(acc);
      }
    }
  return out;
}

TEST(NNFunctional, ScaledDotProductAttention) {
  const Tensor q = rnd({2, 3, 4}, 1), k = rnd({2, 5, 4}, 2), v = rnd({2, 5, 2}, 3);
  auto none = [](int64_t, int64_t, int64_t) { return 0.0; };
  expect_close(F::scaled_dot_product_attention(q, k, v), attention_reference(q, k, v, none, 0.5),
               1e-12);
  expect_close(F::scaled_dot_product_attention(q, k, v, {}, 0.0, false, 0.3),
               attention_reference(q, k, v, none, 0.3), 1e-12);
  // Causal: key j may be attended by query i when j <= i (top-left aligned).
  auto causal = [](int64_t, int64_t i, int64_t j) { return j <= i ? 0.0 : -INFINITY; };
  expect_close(F::scaled_dot_product_attention(q, k, v, {}, 0.0, true),
               attention_reference(q, k, v, causal, 0.5), 1e-12);
  // A bool mask (true = attend), broadcast over the batch.
  std::vector<uint8_t> allowed(15);
  for (int i = 0; i < 15; ++i) allowed[i] = (i * 7) % 3 != 0 || i % 5 == 0;
  Tensor mask = tensor(allowed, Shape{3, 5}).to(kBool);
  auto boolean = [&](int64_t, int64_t i, int64_t j) {
    return allowed[i * 5 + j] ? 0.0 : -INFINITY;
  };
  expect_close(F::scaled_dot_product_attention(q, k, v, mask),
               attention_reference(q, k, v, boolean, 0.5), 1e-12);
  // An additive float mask per batch.
  const Tensor add = rnd({2, 3, 5}, 4);
  const Vec av = vals(add);
  auto additive = [&](int64_t b, int64_t i, int64_t j) { return av[(b * 3 + i) * 5 + j]; };
  expect_close(F::scaled_dot_product_attention(q, k, v, add),
               attention_reference(q, k, v, additive, 0.5), 1e-12);
  gradcheck(
      [&](const std::vector<Tensor>& a) {
        return F::scaled_dot_product_attention(a[0], a[1], a[2], a[3], 0.0, false);
      },
      {rnd({1, 2, 3}, 5), rnd({1, 4, 3}, 6), rnd({1, 4, 2}, 7), rnd({2, 4}, 14)});
  gradcheck(
      [&](const std::vector<Tensor>& a) {
        return F::scaled_dot_product_attention(a[0], a[1], a[2], {}, 0.0, true);
      },
      {rnd({2, 3, 2}, 8), rnd({2, 3, 2}, 9), rnd({2, 3, 2}, 10)});
  expect_error<ValueError>([&] { F::scaled_dot_product_attention(q, k, v, mask, 0.0, true); },
                           {"[scaled_dot_product_attention]", "not both"});
  expect_error<ShapeError>(
      [&] {
        F::scaled_dot_product_attention(q, rnd({2, 5, 3}, 1), v);
      },
      {"[scaled_dot_product_attention]", "embedding size"});
  expect_error<DTypeError>(
      [&] {
        F::scaled_dot_product_attention(q, k, v, zeros({3, 5}, kInt64));
      },
      {"[scaled_dot_product_attention]", "bool or floating"});
}

TEST(NNFunctional, AttentionDropoutUsesTheGlobalGenerator) {
  const Tensor q = rnd({1, 4, 4}, 11), k = rnd({1, 6, 4}, 12), v = rnd({1, 6, 3}, 13);
  manual_seed(5);
  const Tensor a = F::scaled_dot_product_attention(q, k, v, {}, 0.5);
  manual_seed(5);
  expect_close(F::scaled_dot_product_attention(q, k, v, {}, 0.5), a, 0);
  // Rows of weights are dropped and rescaled, so the result differs from no dropout.
  const Tensor plain = F::scaled_dot_product_attention(q, k, v);
  EXPECT_GT((a - plain).abs().max().item<double>(), 1e-3);
}

TEST(NNFunctional, PerExampleGradientsThroughVmap) {
  // vmap(grad(loss)) over examples equals one autograd::grad per example.
  const Tensor w = rnd({3, 4}, 30), e = rnd({5, 4}, 31);
  const Tensor x = rnd({6, 4}, 32);
  const Tensor tok = tensor(std::vector<int64_t>{0, 4, 2, 2, 1, 3});
  const Tensor y = tensor(std::vector<int64_t>{2, 0, 1, 1, 2, 0});
  auto loss = [](const std::vector<Tensor>& a) {  // a = {w, emb, x, token, label}
    const Tensor h = a[2] + F::embedding(a[3], a[1]);
    return std::vector<Tensor>{
        F::cross_entropy(F::linear(h, a[0]), a[4], {.label_smoothing = 0.1})};
  };
  const auto per =
      vmap(grad(loss, {0, 1}), {std::nullopt, std::nullopt, 0, 0, 0})({w, e, x, tok, y});
  ASSERT_EQ(per[0].shape(), (Shape{6, 3, 4}));
  ASSERT_EQ(per[1].shape(), (Shape{6, 5, 4}));
  for (int64_t i = 0; i < 6; ++i) {
    const Tensor wi = w.clone().requires_grad_(), ei = e.clone().requires_grad_();
    const Tensor l = loss({wi, ei, x[i], tok[i], y[i]})[0];
    const auto g = autograd::grad({l}, {wi, ei});
    expect_close(per[0][i], g[0], 1e-12, "weight grad of example " + std::to_string(i));
    expect_close(per[1][i], g[1], 1e-12, "embedding grad of example " + std::to_string(i));
  }
}

TEST(NNInit, GainsAndFans) {
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("linear"), 1.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("conv2d"), 1.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("leaky_relu", 0.2), std::sqrt(2.0 / 1.04));
  EXPECT_DOUBLE_EQ(nn::init::calculate_gain("selu"), 0.75);
  expect_error<ValueError>([] { nn::init::calculate_gain("swish"); },
                           {"[calculate_gain]", "swish"});
  auto [in, out] = nn::init::calculate_fan_in_and_fan_out(zeros({16, 8, 3, 3}));
  EXPECT_EQ(in, 8 * 9);
  EXPECT_EQ(out, 16 * 9);
  expect_error<ShapeError>([] { nn::init::calculate_fan_in_and_fan_out(zeros({5})); },
                           {"[calculate_fan_in_and_fan_out]"});
}

// (mean, std, max |x|) of a tensor's values.
std::tuple<double, double, double> stats(const Tensor& t) {
  const Vec v = vals(t);
  double m = 0, s = 0, mx = 0;
  for (double e : v) m += e / static_cast<double>(v.size());
  for (double e : v) {
    s += (e - m) * (e - m) / static_cast<double>(v.size());
    mx = std::max(mx, std::abs(e));
  }
  return {m, std::sqrt(s), mx};
}

TEST(NNInit, DistributionsHaveTheRightScale) {
  manual_seed(21);
  Tensor w = empty({256, 128, 3});  // fan_in 384, fan_out 768
  const double fi = 384, fo = 768;
  auto check = [&](double want_std, double want_max, const char* what) {
    auto [m, s, mx] = stats(w);
    EXPECT_NEAR(m, 0.0, 0.02 * want_std + 1e-4) << what;
    EXPECT_NEAR(s, want_std, 0.01 * want_std) << what;
    if (want_max > 0) {
      EXPECT_LE(mx, want_max) << what;
      EXPECT_GT(mx, 0.99 * want_max) << what;
    }
  };
  nn::init::xavier_uniform_(w, 2.0);
  const double xa = 2.0 * std::sqrt(6.0 / (fi + fo));
  check(xa / std::sqrt(3.0), xa, "xavier_uniform_");
  nn::init::xavier_normal_(w);
  check(std::sqrt(2.0 / (fi + fo)), 0, "xavier_normal_");
  nn::init::kaiming_uniform_(w, 0.0, nn::init::FanMode::FanIn, "relu");
  check(std::sqrt(2.0 / fi), std::sqrt(6.0 / fi), "kaiming_uniform_");
  nn::init::kaiming_normal_(w, 0.0, nn::init::FanMode::FanOut, "relu");
  check(std::sqrt(2.0 / fo), 0, "kaiming_normal_");
  nn::init::uniform_(w, -3.0, 3.0);
  check(std::sqrt(3.0), 3.0, "uniform_");
  nn::init::normal_(w, 0.0, 0.5);
  check(0.5, 0, "normal_");
  nn::init::trunc_normal_(w, 0.0, 1.0, -0.5, 0.5);
  auto [m, s, mx] = stats(w);
  EXPECT_LE(mx, 0.5);
  // The std of N(0, 1) truncated to [-0.5, 0.5]: sqrt(1 - 2 a phi(a) / (2 Phi(a) - 1)), a = 0.5.
  const double a = 0.5, phi = std::exp(-a * a / 2) / std::sqrt(2 * M_PI);
  const double mass = std::erf(a / std::sqrt(2.0));
  EXPECT_NEAR(s, std::sqrt(1 - 2 * a * phi / mass), 0.005);
  nn::init::constant_(w, 0.25);
  EXPECT_EQ(std::get<2>(stats(w)), 0.25);
  nn::init::zeros_(w);
  EXPECT_EQ(std::get<2>(stats(w)), 0.0);
  // Same seed, same values.
  manual_seed(3);
  Tensor a1 = nn::init::kaiming_uniform_(empty({4, 5}));
  manual_seed(3);
  expect_close(nn::init::kaiming_uniform_(empty({4, 5})), a1, 0);
}

TEST(NNInit, WorksOnParametersWithoutRecording) {
  auto lin = std::make_shared<nn::Linear>(3, 2);
  nn::init::ones_(lin->weight);
  EXPECT_TRUE(lin->weight.is_leaf());
  EXPECT_TRUE(lin->weight.requires_grad());
  expect_close(lin->weight, Vec(6, 1.0), 0);
  expect_error<DTypeError>([] { nn::init::normal_(zeros({2}, kInt64)); }, {"[normal_]"});
}

TEST(NNInit, OrthogonalGivesOrthonormalRowsOrColumns) {
  manual_seed(4);
  for (Shape s : {Shape{6, 4}, Shape{3, 8}, Shape{4, 2, 3}}) {
    Tensor w = nn::init::orthogonal_(empty(s, kFloat64), 2.0);
    const Tensor m = w.reshape({s[0], -1});
    const bool tall = m.size(0) >= m.size(1);
    const Tensor g = tall ? matmul(m.t(), m) : matmul(m, m.t());
    const int64_t n = g.size(0);
    expect_close(g, eye(n, {}, kFloat64) * 4.0, 1e-12, shape_str(s));
  }
}

}  // namespace
}  // namespace tessera
