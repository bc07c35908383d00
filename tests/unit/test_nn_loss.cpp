// Losses against float64 references written from PyTorch's documented formulas with plain
// loops (and a few values worked by hand), every reduction, the weight / ignore_index /
// label_smoothing cases, gradients by central differences, and the error cases.
#include <cmath>

#include "test_nn_util.h"

namespace tessera {
namespace {
namespace F = nn::functional;
using nn::Reduction;
using nn_test::expect_close;
using nn_test::expect_error;
using nn_test::gradcheck;
using nn_test::vals;
using Vec = std::vector<double>;

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat64, &g);
}
Tensor ints(std::vector<int64_t> v, Shape s) { return tensor(v, s); }
double sum(const Vec& v) {
  double s = 0;
  for (double e : v) s += e;
  return s;
}

// log_softmax of row r of a (rows, C) matrix.
Vec log_softmax_row(const Vec& x, int64_t r, int64_t c) {
  double m = -1e300, z = 0;
  for (int64_t j = 0; j < c; ++j) m = std::max(m, x[r * c + j]);
  for (int64_t j = 0; j < c; ++j) z += std::exp(x[r * c + j] - m);
  Vec out;
  for (int64_t j = 0; j < c; ++j) out.push_back(x[r * c + j] - m - std::log(z));
  return out;
}

TEST(NNLoss, RegressionLossesAllReductions) {
  Tensor x = tensor(Vec{0.0, 1.0, -2.0, 3.5}, Shape{2, 2}).to(kFloat64);
  Tensor y = tensor(Vec{0.5, 1.0, 1.0, 0.25}, Shape{2, 2}).to(kFloat64);
  // d = x - y = (-0.5, 0, -3, 3.25)
  expect_close(F::mse_loss(x, y, Reduction::None), Vec{0.25, 0, 9, 10.5625}, 1e-15);
  expect_close(F::mse_loss(x, y), Vec{19.8125 / 4}, 1e-15);
  expect_close(F::mse_loss(x, y, Reduction::Sum), Vec{19.8125}, 1e-15);
  expect_close(F::l1_loss(x, y), Vec{6.75 / 4}, 1e-15);
  // smooth_l1 with beta 1: 0.5 d^2 below 1, |d| - 0.5 above.
  expect_close(F::smooth_l1_loss(x, y, Reduction::None), Vec{0.125, 0, 2.5, 2.75}, 1e-15);
  expect_close(F::smooth_l1_loss(x, y, Reduction::None, 4.0),
               Vec{0.25 / 8, 0, 9.0 / 8, 10.5625 / 8}, 1e-15);
  expect_close(F::smooth_l1_loss(x, y, Reduction::Sum, 0.0), Vec{6.75}, 1e-15);
  // huber with delta 2: 0.5 d^2 below 2, 2 (|d| - 1) above.
  expect_close(F::huber_loss(x, y, Reduction::None, 2.0), Vec{0.125, 0, 4, 4.5}, 1e-15);
  nn::HuberLoss huber(Reduction::Mean, 2.0);
  expect_close(huber(x, y), Vec{8.625 / 4}, 1e-15);
  nn::MSELoss mse;
  expect_close(mse(x, y), Vec{19.8125 / 4}, 1e-15);
  for (auto fn :
       {+[](const Tensor&a, const Tensor&b) { return F::mse_loss(a, b); },
        +[](const Tensor&a, const Tensor&b) { return F::l1_loss(a, b); },
        +[](const Tensor&a, const Tensor&b) {
          return F::smooth_l1_loss(a, b, Reduction::Sum, 0.7);
        },
        +[](const Tensor&a, const Tensor&b) { return F::huber_loss(a, b, Reduction::Sum, 0.7); }})
    gradcheck([&](const std::vector<Tensor>& a) { return fn(a[0], a[1]); },
              {rnd({3, 2}, 1), rnd({3, 2}, 2)});
  expect_error<ShapeError>([&] { F::mse_loss(x, zeros({4}, kFloat64)); },
                           {"[mse_loss]", "(2, 2) vs (4,)"});
  expect_error<ValueError>([&] { F::mse_loss(x, y, Reduction::BatchMean); },
                           {"[mse_loss]", "BatchMean"});
}

TEST(NNLoss, CrossEntropyByHand) {
  // Zero logits over 4 classes: every target costs log 4.
  Tensor z = zeros({3, 4}, kFloat64);
  Tensor t = ints({0, 3, 1}, {3});
  expect_close(F::cross_entropy(z, t), Vec{std::log(4.0)}, 1e-15);
  // Logits (0, log 3) for target 1: -log(3 / 4).
  Tensor x = tensor(Vec{0.0, std::log(3.0)}, Shape{1, 2});
  expect_close(F::cross_entropy(x.to(kFloat64), ints({1}, {1})), Vec{-std::log(0.75)}, 1e-15);
  // Unbatched (C) input with a 0-d target.
  expect_close(F::cross_entropy(x[0].to(kFloat64), ints({0}, {})), Vec{-std::log(0.25)}, 1e-15);
}

struct CECase {
  Tensor x, t, w;
  int64_t ignore;
  double eps;
};

// PyTorch's cross entropy for class-index targets on (N, C) logits, from its definition:
// l_i = (1 - eps) * w[t_i] * (-logp[t_i]) + eps / C * sum_c w_c * (-logp_c), ignored
// targets contribute 0, and Mean divides by the sum of w[t_i] over non-ignored i.
Vec ce_reference(const CECase& c, Reduction r) {
  const int64_t N = c.x.size(0), C = c.x.size(1);
  const Vec x = vals(c.x);
  const auto t = c.t.to_vector<int64_t>();
  const Vec w = c.w.defined() ? vals(c.w) : Vec(C, 1.0);
  Vec loss;
  double wsum = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (t[i] == c.ignore) {
      loss.push_back(0);
      continue;
    }
    const Vec lp = log_softmax_row(x, i, C);
    double smooth = 0;
    for (int64_t j = 0; j < C; ++j) smooth -= w[j] * lp[j];
    loss.push_back((1 - c.eps) * w[t[i]] * -lp[t[i]] + c.eps / C * smooth);
    wsum += w[t[i]];
  }
  if (r == Reduction::None) return loss;
  if (r == Reduction::Sum) return {sum(loss)};
  return {sum(loss) / wsum};
}

TEST(NNLoss, CrossEntropyWeightsIgnoreIndexLabelSmoothing) {
  const Tensor x = rnd({5, 4}, 3) * 2.0;
  const Tensor t = ints({2, 0, 3, 2, 1}, {5});
  const Tensor w = tensor(Vec{0.5, 2.0, 1.0, 3.0}).to(kFloat64);
  const std::vector<CECase> cases = {
      {x, t, {}, -100, 0.0}, {x, t, w, -100, 0.0}, {x, t, w, 2, 0.0}, {x, t, {}, 2, 0.0},
      {x, t, {}, -100, 0.2}, {x, t, w, 3, 0.3},    {x, t, {}, 0, 1.0}};
  for (size_t k = 0; k < cases.size(); ++k)
    for (Reduction r : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
      const auto& c = cases[k];
      const Tensor got = F::cross_entropy(
          c.x, c.t,
          {.weight = c.w, .ignore_index = c.ignore, .reduction = r, .label_smoothing = c.eps});
      expect_close(got, ce_reference(c, r), 1e-12,
                   "case " + std::to_string(k) + " reduction " + std::to_string(int(r)));
    }
  // The module form keeps the weight as a buffer.
  nn::CrossEntropyLoss crit({.weight = w, .ignore_index = 2, .label_smoothing = 0.1});
  expect_close(crit(x, t), ce_reference({x, t, w, 2, 0.1}, Reduction::Mean), 1e-12);
  EXPECT_EQ(crit.state_dict().count("weight"), 1u);
  gradcheck(
      [&](const std::vector<Tensor>& a) {
        return F::cross_entropy(a[0], t, {.weight = w, .ignore_index = 3, .label_smoothing = 0.2});
      },
      {x});
}

TEST(NNLoss, CrossEntropySpatialAndProbabilityTargets) {
  // (N, C, d) logits with (N, d) targets equal the flattened (N * d, C) case.
  const Tensor x = rnd({2, 3, 4}, 4);
  const Tensor t = ints({0, 2, 1, 1, 2, 2, 0, 1}, {2, 4});
  const Tensor flat = x.permute({0, 2, 1}).reshape({8, 3});
  const Tensor w = tensor(Vec{1.0, 0.5, 2.0}).to(kFloat64);
  const CECase c{flat, t.reshape({8}), w, 1, 0.1};
  expect_close(F::cross_entropy(x, t, {.weight = w, .ignore_index = 1, .label_smoothing = 0.1}),
               ce_reference(c, Reduction::Mean), 1e-12);
  Tensor none = F::cross_entropy(x, t, {.ignore_index = 1, .reduction = Reduction::None});
  EXPECT_EQ(none.shape(), (Shape{2, 4}));

  // Probability targets: -sum_c w_c p_c logp_c, Mean over the N * d positions.
  const Tensor p = softmax(rnd({2, 3, 4}, 5), 1);
  const Tensor pf = p.permute({0, 2, 1}).reshape({8, 3});
  const Vec fv = vals(flat.contiguous()), pv = vals(pf.contiguous()), wv = vals(w);
  for (double eps : {0.0, 0.25}) {
    Vec per;
    for (int64_t i = 0; i < 8; ++i) {
      const Vec lp = log_softmax_row(fv, i, 3);
      double s = 0;
      for (int j = 0; j < 3; ++j) s -= wv[j] * ((1 - eps) * pv[i * 3 + j] + eps / 3) * lp[j];
      per.push_back(s);
    }
    expect_close(F::cross_entropy(x, p, {.weight = w, .label_smoothing = eps}), Vec{sum(per) / 8},
                 1e-12);
    expect_close(
        F::cross_entropy(x, p, {.weight = w, .reduction = Reduction::Sum, .label_smoothing = eps}),
        Vec{sum(per)}, 1e-12);
  }
  gradcheck([&](const std::vector<Tensor>& a) { return F::cross_entropy(a[0], a[1]); }, {x, p});
  expect_error<ValueError>([&] { F::cross_entropy(x, p, {.ignore_index = 0}); },
                           {"[cross_entropy]", "ignore_index"});
}

TEST(NNLoss, CrossEntropyAndNllErrors) {
  const Tensor x = rnd({3, 4}, 6);
  expect_error<IndexError>(
      [&] {
        F::cross_entropy(x, ints({0, 4, 1}, {3}));
      },
      {"[cross_entropy]", "target 4", "4 classes"});
  expect_error<IndexError>(
      [&] {
        F::nll_loss(x, ints({0, -2, 1}, {3}));
      },
      {"[nll_loss]", "target -2", "4 classes"});
  // The ignored label may be anything, even out of range.
  EXPECT_NO_THROW(F::cross_entropy(x, ints({0, -100, 1}, {3})));
  expect_error<ShapeError>(
      [&] {
        F::cross_entropy(x, ints({0, 1}, {2}));
      },
      {"[cross_entropy]", "expected target of shape (3,)"});
  expect_error<ShapeError>(
      [&] {
        F::cross_entropy(x, ints({0, 1, 1}, {3}), {.weight = ones({3})});
      },
      {"[cross_entropy]", "weight must have shape (4,)"});
  expect_error<ValueError>(
      [&] {
        F::cross_entropy(x, ints({0, 1, 1}, {3}), {.label_smoothing = 2});
      },
      {"[cross_entropy]", "label_smoothing"});
}

TEST(NNLoss, NllLossWeightedMean) {
  const Tensor lp = log_softmax(rnd({4, 3}, 7), 1);
  const Tensor t = ints({1, 0, 2, 1}, {4});
  const Tensor w = tensor(Vec{0.2, 1.5, 3.0}).to(kFloat64);
  const Vec v = vals(lp), wv = vals(w);
  // Hand formula with target 0 ignored: rows 0, 2, 3 count.
  const double num = wv[1] * -v[0 * 3 + 1] + wv[2] * -v[2 * 3 + 2] + wv[1] * -v[3 * 3 + 1];
  const double den = wv[1] + wv[2] + wv[1];
  expect_close(F::nll_loss(lp, t, {.weight = w, .ignore_index = 0}), Vec{num / den}, 1e-14);
  expect_close(F::nll_loss(lp, t, {.weight = w, .ignore_index = 0, .reduction = Reduction::Sum}),
               Vec{num}, 1e-14);
  nn::NLLLoss crit({.reduction = Reduction::None});
  expect_close(crit(lp, t), Vec{-v[1], -v[3], -v[8], -v[10]}, 1e-14);
  // Every target ignored: 0 / 0 = NaN, like PyTorch.
  EXPECT_FALSE(std::isnan(F::nll_loss(lp, t, {.ignore_index = 1}).item<double>()));
  EXPECT_TRUE(
      std::isnan(F::nll_loss(lp, ints({1, 1, 1, 1}, {4}), {.ignore_index = 1}).item<double>()));
}

TEST(NNLoss, BinaryCrossEntropy) {
  const Tensor p = tensor(Vec{0.1, 0.9, 0.5, 0.0, 1.0, 0.3}, Shape{2, 3}).to(kFloat64);
  const Tensor y = tensor(Vec{0.0, 1.0, 1.0, 0.0, 0.0, 0.7}, Shape{2, 3}).to(kFloat64);
  // Each log is clamped to >= -100: p = 1 with y = 0 costs 100, not infinity.
  const Vec ref = {-std::log(0.9), -std::log(0.9),
                   std::log(2.0),  0.0,
                   100.0,          -(0.7 * std::log(0.3) + 0.3 * std::log(0.7))};
  expect_close(F::binary_cross_entropy(p, y, {}, Reduction::None), ref, 1e-14);
  const Tensor w = tensor(Vec{1.0, 2.0, 3.0}).to(kFloat64);  // broadcast over rows
  Vec wref;
  for (int i = 0; i < 6; ++i) wref.push_back(ref[i] * (i % 3 + 1));
  nn::BCELoss crit(w);
  expect_close(crit(p, y), Vec{sum(wref) / 6}, 1e-14);
  // The gradient at p = 0 (y = 0) is finite.
  Tensor pz = p.clone().requires_grad_();
  F::binary_cross_entropy(pz, y).backward();
  for (double g : vals(pz.grad())) EXPECT_TRUE(std::isfinite(g));
  gradcheck([&](const std::vector<Tensor>& a) { return F::binary_cross_entropy(a[0], y); },
            {tensor(Vec{0.2, 0.6, 0.5, 0.1, 0.95, 0.4}, Shape{2, 3}).to(kFloat64)});
  expect_error<ValueError>([&] { F::binary_cross_entropy(p * 2.0, y); },
                           {"[binary_cross_entropy]", "[0, 1]"});
}

TEST(NNLoss, BinaryCrossEntropyWithLogitsIsStable) {
  const Tensor x = tensor(Vec{-200.0, -3.0, 0.0, 2.5, 200.0, 40.0}, Shape{2, 3}).to(kFloat64);
  const Tensor y = tensor(Vec{1.0, 0.0, 1.0, 0.25, 0.0, 1.0}, Shape{2, 3}).to(kFloat64);
  const Tensor pw = tensor(Vec{2.0, 0.5, 3.0}).to(kFloat64);
  auto softplus = [](double v) { return std::max(v, 0.0) + std::log1p(std::exp(-std::abs(v))); };
  const Vec xv = vals(x), yv = vals(y), pwv = vals(pw);
  Vec ref, ref_pw;
  for (int i = 0; i < 6; ++i) {
    // -[pw y log s(x) + (1 - y) log(1 - s(x))] = pw y softplus(-x) + (1 - y) softplus(x)
    ref.push_back(yv[i] * softplus(-xv[i]) + (1 - yv[i]) * softplus(xv[i]));
    ref_pw.push_back(pwv[i % 3] * yv[i] * softplus(-xv[i]) + (1 - yv[i]) * softplus(xv[i]));
  }
  expect_close(F::binary_cross_entropy_with_logits(x, y, {.reduction = Reduction::None}), ref,
               1e-13);
  EXPECT_NEAR(ref[0], 200.0, 1e-9);  // no overflow to inf for large |x|
  nn::BCEWithLogitsLoss crit({.pos_weight = pw, .reduction = Reduction::Sum});
  expect_close(crit(x, y), Vec{sum(ref_pw)}, 1e-13);
  gradcheck(
      [&](const std::vector<Tensor>& a) {
        return F::binary_cross_entropy_with_logits(a[0], y, {.pos_weight = pw});
      },
      {tensor(Vec{-2.0, -0.3, 0.4, 1.5, 3.0, 0.7}, Shape{2, 3}).to(kFloat64)});
}

TEST(NNLoss, KlDiv) {
  const Tensor lp = log_softmax(rnd({2, 3}, 8), 1);
  const Tensor q = tensor(Vec{0.2, 0.0, 0.8, 0.5, 0.25, 0.25}, Shape{2, 3}).to(kFloat64);
  const Vec l = vals(lp), qv = vals(q);
  Vec ref;
  for (int i = 0; i < 6; ++i) ref.push_back(qv[i] > 0 ? qv[i] * (std::log(qv[i]) - l[i]) : 0.0);
  expect_close(F::kl_div(lp, q, Reduction::None), ref, 1e-14);
  expect_close(F::kl_div(lp, q, Reduction::BatchMean), Vec{sum(ref) / 2}, 1e-14);
  expect_close(F::kl_div(lp, q), Vec{sum(ref) / 6}, 1e-14);
  const Tensor lq = log_softmax(rnd({2, 3}, 9), 1);
  const Vec lqv = vals(lq);
  Vec ref_log;
  for (int i = 0; i < 6; ++i) ref_log.push_back(std::exp(lqv[i]) * (lqv[i] - l[i]));
  nn::KLDivLoss crit(Reduction::Sum, /*log_target=*/true);
  expect_close(crit(lp, lq), Vec{sum(ref_log)}, 1e-14);
  gradcheck([&](const std::vector<Tensor>& a) { return F::kl_div(a[0], q, Reduction::Sum); }, {lp});
}

TEST(NNLoss, CosineEmbeddingAndMarginRanking) {
  const Tensor a = tensor(Vec{1, 0, 0, 1, 1, 0, 3, 4, 0}, Shape{3, 3}).to(kFloat64);
  const Tensor b = tensor(Vec{1, 0, 0, 1, -1, 0, 4, 3, 0}, Shape{3, 3}).to(kFloat64);
  const Tensor y = tensor(Vec{1, -1, -1}).to(kFloat64);
  // cos = (1, 0, 24/25); y = 1: 1 - cos; y = -1: max(0, cos - 0.1).
  // (1 - cos is 1e-12 rather than 0 for the first pair: PyTorch's eps of 1e-12 in the norms.)
  expect_close(F::cosine_embedding_loss(a, b, y, 0.1, Reduction::None), Vec{0, 0, 0.86}, 1e-11);
  nn::CosineEmbeddingLoss crit(0.1);
  expect_close(crit(a, b, y), Vec{0.86 / 3}, 1e-11);
  gradcheck(
      [&](const std::vector<Tensor>& t) { return F::cosine_embedding_loss(t[0], t[1], y, -0.5); },
      {rnd({3, 3}, 10), rnd({3, 3}, 11)});

  const Tensor x1 = tensor(Vec{1.0, 2.0, 0.5}).to(kFloat64);
  const Tensor x2 = tensor(Vec{0.5, 3.0, 0.5}).to(kFloat64);
  const Tensor r = tensor(Vec{1.0, 1.0, -1.0}).to(kFloat64);
  // max(0, -y (x1 - x2) + 0.2) = (0, 1.2, 0.2)
  expect_close(F::margin_ranking_loss(x1, x2, r, 0.2, Reduction::None), Vec{0, 1.2, 0.2}, 1e-14);
  nn::MarginRankingLoss mr(0.2, Reduction::Sum);
  expect_close(mr(x1, x2, r), Vec{1.4}, 1e-14);
}

}  // namespace
}  // namespace tessera
