// The autocast cast cache: a parameter (or a view of one, as linear's w.t()) used several times
// in one region is cast once; values and gradients equal the uncached computation; the cache
// ends with the region, misses after an in-place update, and keeps nothing that could be
// stale (no_grad, activations, vmap, cache_enabled = false).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tessera/tessera.h"

namespace tessera {
namespace {

using amp::Autocast;

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat32, &g);
}

Tensor param(Shape s, uint64_t seed) { return rnd(std::move(s), seed).requires_grad_(); }

std::vector<double> values(const Tensor& t) { return t.detach().to_vector<double>(); }

// Two uses of w in one region: matmul of w, and linear (w.t()) twice.
struct TwoUses {
  Tensor y, loss;
};
TwoUses two_uses(const Tensor& x, const Tensor& w, bool cache) {
  Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16, .cache_enabled = cache});
  Tensor h = nn::functional::linear(x, w, {});
  Tensor y = nn::functional::linear(tanh(h.to(kFloat32)), w, {});
  Tensor z = matmul(y.to(kFloat32), w);
  return {y, sum(z * z)};
}

TEST(AutocastCache, AParameterUsedTwiceIsCastOnceWithTheSameValuesAndGradients) {
  const Tensor x = rnd({5, 8}, 1), w = param({8, 8}, 2);
  TwoUses cached, plain;
  Tensor g_cached, g_plain;
  {
    Autocast region({.device = DeviceType::CPU, .dtype = kBFloat16});
    cached = two_uses(x, w, true);
    // linear's view w.t() twice: one entry; matmul's w itself: another.
    EXPECT_EQ(amp::autocast_cache_size(), 2u);
    g_cached = autograd::grad({cached.loss}, {w})[0];
  }
  EXPECT_EQ(amp::autocast_cache_size(), 0u);  // the region ended
  {
    Autocast region({.device = DeviceType::CPU, .dtype = kBFloat16, .cache_enabled = false});
    plain = two_uses(x, w, false);
    EXPECT_EQ(amp::autocast_cache_size(), 0u);
    g_plain = autograd::grad({plain.loss}, {w})[0];
  }
  EXPECT_EQ(cached.y.dtype(), kBFloat16);
  EXPECT_EQ(values(cached.y), values(plain.y));
  EXPECT_EQ(values(cached.loss), values(plain.loss));
  // The gradients differ by one bfloat16 rounding: with the cache the two linear uses meet at
  // one cast node and are summed in bfloat16 before the cast back (PyTorch's cache does the
  // same); without it each is cast to float32 first.
  EXPECT_EQ(g_cached.dtype(), kFloat32);
  const auto gc = values(g_cached), gp = values(g_plain);
  double scale = 0;
  for (double v : gp) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < gp.size(); ++i) EXPECT_NEAR(gc[i], gp[i], scale * 0x1p-7) << i;
  EXPECT_NE(gc, gp);  // the rounding is there: the cache was used
}

TEST(AutocastCache, LivesUntilTheOutermostScopeEnds) {
  const Tensor x = rnd({2, 4}, 3), w = param({4, 4}, 4);
  {
    Autocast outer({.device = DeviceType::CPU});
    {
      Autocast inner({.device = DeviceType::CPU});
      (void)matmul(x, w);
      EXPECT_EQ(amp::autocast_cache_size(), 1u);
    }
    EXPECT_EQ(amp::autocast_cache_size(), 1u);
    {
      Autocast off({.device = DeviceType::CPU, .enabled = false});
      (void)matmul(x, w);  // autocast off: float32, no cast
      EXPECT_EQ(amp::autocast_cache_size(), 1u);
    }
  }
  EXPECT_EQ(amp::autocast_cache_size(), 0u);
  // Autocast switched on without a region keeps nothing.
  amp::set_autocast_state(DeviceType::CPU, {true, kBFloat16});
  (void)matmul(x, w);
  EXPECT_EQ(amp::autocast_cache_size(), 0u);
  amp::set_autocast_state(DeviceType::CPU, {false, kBFloat16});
}

TEST(AutocastCache, AnInPlaceUpdateInTheRegionMisses) {
  const Tensor x = rnd({3, 4}, 5);
  Tensor w = param({4, 2}, 6);
  Autocast region({.device = DeviceType::CPU});
  const Tensor before = matmul(x, w);
  {
    autograd::NoGradGuard no_grad;
    w.mul_(Scalar(2.0));  // an optimizer step inside the region
  }
  const Tensor after = matmul(x, w);
  const Tensor want = matmul(x.to(kBFloat16), w.detach().to(kBFloat16));
  EXPECT_EQ(values(after), values(want));
  EXPECT_NE(values(after), values(before));
  EXPECT_EQ(amp::autocast_cache_size(), 1u);  // the stale cast was replaced, not kept beside
}

TEST(AutocastCache, TrainingStepsInsideOneRegionReuseTheCastNode) {
  // Backward through a cached cast twice (one step per iteration, all in one region), as in a
  // loop written entirely under autocast: each step's gradient must be its own.
  const Tensor x = rnd({4, 6}, 7), w = param({6, 3}, 8);
  std::vector<std::vector<double>> grads;
  {
    Autocast region({.device = DeviceType::CPU});
    for (int step = 0; step < 2; ++step) {
      Tensor loss = sum(matmul(x * static_cast<double>(step + 1), w).to(kFloat32));
      grads.push_back(values(autograd::grad({loss}, {w})[0]));
    }
    EXPECT_EQ(amp::autocast_cache_size(), 1u);
  }
  // d/dw sum(c x w) = c * column sums of x, computed by the bfloat16 matmul backward (one
  // bfloat16 rounding: relative 2^-8); step 2's gradient is twice step 1's, not their sum.
  const Tensor xs = sum(x.to(kBFloat16).to(kFloat32), {0});
  for (int step = 0; step < 2; ++step) {
    const auto cs = values(xs);
    for (size_t i = 0; i < 6; ++i)
      for (size_t j = 0; j < 3; ++j)
        EXPECT_NEAR(grads[step][i * 3 + j], (step + 1) * cs[i],
                    (step + 1) * std::abs(cs[i]) * 0x1p-7)
            << step << " " << i;
  }
}

TEST(AutocastCache, CachesOnlyParametersWithGradModeOn) {
  const Tensor x = rnd({3, 4}, 9), frozen = rnd({4, 4}, 10), w = param({4, 4}, 11);
  Autocast region({.device = DeviceType::CPU});
  (void)matmul(x, frozen);   // does not require grad
  (void)matmul(x, w * 2.0);  // an activation computed from w
  {
    autograd::NoGradGuard no_grad;
    (void)matmul(x, w);  // no history to reuse later with grad on
  }
  EXPECT_EQ(amp::autocast_cache_size(), 0u);
  // Under vmap the per-example calls see batched tensors: nothing is kept either.
  const Tensor xs = rnd({2, 3, 4}, 12);
  TensorsFn f = [&](const std::vector<Tensor>& a) { return std::vector{matmul(a[0], w)}; };
  (void)vmap(f)({xs});
  EXPECT_EQ(amp::autocast_cache_size(), 0u);
  // With grad on, w is kept, and a later use with grad sees its history.
  const Tensor y = matmul(x, w);
  EXPECT_EQ(amp::autocast_cache_size(), 1u);
  EXPECT_TRUE(y.requires_grad());
}

}  // namespace
}  // namespace tessera
