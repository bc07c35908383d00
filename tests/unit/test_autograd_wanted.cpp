// Backward skips the gradients nobody uses: a matmul or convolution whose input is a data batch
// (no grad) computes only the weight's gradient, and a linear layer's weight gradient arrives
// in the weight's own (contiguous) layout, so the optimizer copies nothing.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace F = nn::functional;

// How many kernels called `op` ran inside the backward pass of f.
int backward_calls(const std::function<void()>& f, const std::string& op) {
  profiler::Session session;
  f();
  session.stop();
  int n = 0;
  for (const profiler::OpRecord& r : session.ops()) n += r.name == op && !r.backward_of.empty();
  return n;
}

// d/dw sum(c * (x @ w^T)) = c^T @ x, in float64 loops.
std::vector<double> linear_weight_grad(const Tensor& x, const Tensor& c) {
  const auto xv = x.to_vector<double>(), cv = c.to_vector<double>();
  const int64_t n = x.size(0), in = x.size(1), out = c.size(1);
  std::vector<double> g(static_cast<size_t>(out * in), 0.0);
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      for (int64_t k = 0; k < n; ++k)
        g[static_cast<size_t>(o * in + i)] +=
            cv[static_cast<size_t>(k * out + o)] * xv[static_cast<size_t>(k * in + i)];
  return g;
}

TEST(AutogradWanted, LinearOnDataComputesOnlyTheWeightGradient) {
  manual_seed(1);
  Tensor x = randn({5, 4}, kFloat64), c = randn({5, 3}, kFloat64);
  Tensor w = randn({3, 4}, kFloat64).requires_grad_();
  const int calls = backward_calls([&] { sum(F::linear(x, w) * c).backward(); }, "matmul");
  EXPECT_EQ(calls, 1);  // dW only; dx would be a second matmul
  EXPECT_FALSE(x.grad().defined());
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(w.grad().is_contiguous());  // (out, in) like w, not a transposed view
  const auto got = w.grad().to_vector<double>(), want = linear_weight_grad(x, c);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < got.size(); ++k) EXPECT_NEAR(got[k], want[k], 1e-12) << k;
}

TEST(AutogradWanted, InputThatRequiresGradStillGetsItsGradient) {
  manual_seed(2);
  Tensor x = randn({5, 4}, kFloat64).requires_grad_(), c = randn({5, 3}, kFloat64);
  Tensor w = randn({3, 4}, kFloat64).requires_grad_();
  EXPECT_EQ(backward_calls([&] { sum(F::linear(x, w) * c).backward(); }, "matmul"), 2);
  // dx = c @ w.
  const auto got = x.grad().to_vector<double>(), wv = w.to_vector<double>(),
             cv = c.to_vector<double>();
  for (int64_t k = 0; k < 5; ++k)
    for (int64_t i = 0; i < 4; ++i) {
      double want = 0;
      for (int64_t o = 0; o < 3; ++o) want += cv[k * 3 + o] * wv[o * 4 + i];
      EXPECT_NEAR(got[static_cast<size_t>(k * 4 + i)], want, 1e-12);
    }
}

TEST(AutogradWanted, ConvOnDataSkipsTheInputGradient) {
  manual_seed(3);
  Tensor x = randn({2, 3, 6, 6}, kFloat64), w = randn({4, 3, 3, 3}, kFloat64);
  auto weight_grad = [&](bool x_grad) {
    Tensor xi = x.detach().requires_grad_(x_grad), wi = w.detach().requires_grad_();
    int transposes = backward_calls(
        [&] { sum(F::conv2d(xi, wi, {}, 1, 1) * F::conv2d(x, w, {}, 1, 1)).backward(); },
        "conv_transpose");
    return std::pair{transposes, wi.grad().to_vector<double>()};
  };
  const auto [skipped, g_data] = weight_grad(false);
  const auto [computed, g_full] = weight_grad(true);
  EXPECT_EQ(skipped, 0);
  EXPECT_EQ(computed, 1);
  ASSERT_EQ(g_data.size(), g_full.size());
  for (size_t k = 0; k < g_data.size(); ++k) EXPECT_NEAR(g_data[k], g_full[k], 1e-12) << k;
}

}  // namespace
}  // namespace tessera
