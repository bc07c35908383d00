// GradScaler: the scale sequence under injected inf/NaN gradients against hand-computed values
// (skips, backoff, growth after growth_interval), unscaled gradients, skipped steps that leave
// parameters and optimizer state alone, the stage errors (unscale_ twice, ...), several
// optimizers, state dicts and checkpoints, and the disabled pass-through.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>

#include "tessera/tessera.h"

namespace tessera::optim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class E, class F>
void expect_error(F&& f, const std::string& want) {
  try {
    f();
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << "message: " << e.what();
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "no exception";
}

std::vector<double> vals(const Tensor& t) { return t.detach().to_vector<double>(); }

// One training step with loss = sum(p * c): the scaled gradient is c * scale, so c with an
// inf or NaN injects a non-finite gradient. Returns whether the optimizer stepped.
bool train_step(GradScaler& s, Optimizer& opt, const Tensor& p, const std::vector<double>& c) {
  opt.zero_grad();
  s.scale((p * tensor(c)).sum()).backward();
  const bool stepped = s.step(opt);
  s.update();
  return stepped;
}

std::vector<double> coefs(int step, double bad) {
  std::vector<double> c{0.5, -1.25, 2.0, 0.75};
  if (bad != 0) c[static_cast<size_t>(step) % c.size()] = bad;
  return c;
}

TEST(GradScaler, Defaults) {
  GradScaler s;
  EXPECT_EQ(s.get_scale(), 65536.0);
  EXPECT_EQ(s.get_growth_factor(), 2.0);
  EXPECT_EQ(s.get_backoff_factor(), 0.5);
  EXPECT_EQ(s.get_growth_interval(), 2000);
  EXPECT_EQ(s.growth_tracker(), 0);
  EXPECT_TRUE(s.is_enabled());
}

// Hand-computed: interval 3, non-finite gradients at steps 1, 2 (inf), 6 (NaN), 10 (-inf).
TEST(GradScaler, ScaleSequenceUnderInjectedInfs) {
  const std::map<int, double> bad = {{1, kInf}, {2, kInf}, {6, kNaN}, {10, -kInf}};
  const std::vector<double> want_scale = {65536, 32768, 16384, 16384, 16384, 32768,
                                          16384, 16384, 16384, 32768, 16384, 16384};
  const std::vector<int64_t> want_tracker = {1, 0, 0, 1, 2, 0, 0, 1, 2, 0, 0, 1};
  Tensor p = tensor<float>({1, 2, 3, 4}).requires_grad_(true);
  SGD opt({p}, {.lr = 0.125});
  GradScaler s({.growth_interval = 3});
  for (int step = 0; step < 12; ++step) {
    SCOPED_TRACE(step);
    const auto it = bad.find(step);
    const std::vector<double> c = coefs(step, it == bad.end() ? 0.0 : it->second);
    const std::vector<double> before = vals(p);
    const bool stepped = train_step(s, opt, p, c);
    EXPECT_EQ(stepped, it == bad.end());
    const std::vector<double> after = vals(p);
    for (size_t i = 0; i < 4; ++i)  // exact: the scale is a power of two, lr = 1/8
      EXPECT_EQ(after[i], stepped ? before[i] - 0.125 * c[i] : before[i]);
    EXPECT_EQ(s.get_scale(), want_scale[static_cast<size_t>(step)]);
    EXPECT_EQ(s.growth_tracker(), want_tracker[static_cast<size_t>(step)]);
  }
}

TEST(GradScaler, GrowsAfterTheDefaultInterval) {
  Tensor p = tensor<float>({1, 2}).requires_grad_(true);
  SGD opt({p}, {.lr = 0.0});
  GradScaler s;
  for (int step = 1; step <= 2000; ++step) {
    opt.zero_grad();
    s.scale((p * 0.5).sum()).backward();
    s.step(opt);
    s.update();
    if (step == 1999) {
      EXPECT_EQ(s.get_scale(), 65536.0);
      EXPECT_EQ(s.growth_tracker(), 1999);
    }
  }
  EXPECT_EQ(s.get_scale(), 131072.0);
  EXPECT_EQ(s.growth_tracker(), 0);
}

TEST(GradScaler, UnscaleDividesTheGradientsOnce) {
  Tensor p = tensor<float>({1, 2, 3}).requires_grad_(true);
  SGD opt({p}, {.lr = 1.0});
  GradScaler s({.init_scale = 1024});
  const Tensor loss = (p * tensor<float>({0.5f, 3.0f, -2.0f})).sum();
  const Tensor scaled = s.scale(loss);
  EXPECT_EQ(scaled.item<double>(), loss.item<double>() * 1024);
  scaled.backward();
  EXPECT_EQ(vals(p.grad()), (std::vector<double>{512, 3072, -2048}));
  s.unscale_(opt);
  EXPECT_EQ(vals(p.grad()), (std::vector<double>{0.5, 3.0, -2.0}));
  clip_grad_norm_({p}, 1.0);  // what unscale_ is for: clipping the true gradients
  const std::vector<double> clipped = vals(p.grad());
  EXPECT_TRUE(s.step(opt));  // does not unscale again
  const std::vector<double> now = vals(p);
  for (size_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(now[i], static_cast<double>(i + 1) - clipped[i]);
  s.update();
  EXPECT_EQ(s.get_scale(), 1024);
}

TEST(GradScaler, ASkippedStepLeavesOptimizerStateAlone) {
  Tensor p = tensor<float>({1, -1}).requires_grad_(true);
  Adam opt({p}, {.lr = 0.1});
  GradScaler s;
  EXPECT_TRUE(train_step(s, opt, p, {1, 2}));
  const StateDict before = opt.state_dict();
  const std::vector<double> pb = vals(p);
  EXPECT_FALSE(train_step(s, opt, p, {kNaN, 2}));
  EXPECT_EQ(vals(p), pb);
  const StateDict after = opt.state_dict();
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [k, t] : before) EXPECT_EQ(vals(after.at(k)), vals(t)) << k;
  EXPECT_EQ(s.get_scale(), 32768);
}

TEST(GradScaler, StageErrors) {
  Tensor p = tensor<float>({1, 2}).requires_grad_(true);
  SGD opt({p}, {.lr = 0.1});
  GradScaler s;
  expect_error<Error>([&] { s.unscale_(opt); }, "not set yet");
  expect_error<Error>([&] { s.step(opt); }, "not set yet");
  s.scale(p.sum()).backward();
  expect_error<Error>([&] { s.update(); }, "no inf checks were recorded");
  s.unscale_(opt);
  expect_error<Error>([&] { s.unscale_(opt); },
                      "unscale_() has already been called on this optimizer since the last "
                      "update()");
  s.step(opt);
  expect_error<Error>([&] { s.step(opt); }, "step() has already been called");
  expect_error<Error>([&] { s.unscale_(opt); }, "unscale_() is being called after step()");
  s.update();
  s.unscale_(opt);  // a new iteration may unscale again
}

TEST(GradScaler, BadOptions) {
  expect_error<ValueError>([] { GradScaler({.growth_factor = 1.0}); }, "growth_factor");
  expect_error<ValueError>([] { GradScaler({.backoff_factor = 1.0}); }, "backoff_factor");
  expect_error<ValueError>([] { GradScaler({.growth_interval = 0}); }, "growth_interval");
  expect_error<ValueError>([] { GradScaler({.init_scale = -1}); }, "scale");
  GradScaler s;
  expect_error<ValueError>([&] { s.set_growth_factor(0.5); }, "growth_factor");
  expect_error<ValueError>([&] { s.set_backoff_factor(0.0); }, "backoff_factor");
  expect_error<ValueError>([&] { s.set_growth_interval(-3); }, "growth_interval");
}

TEST(GradScaler, Float64ParametersAndMissingOrEmptyGradients) {
  Tensor p = tensor<double>({1, 2}).requires_grad_(true);
  Tensor unused = tensor<float>({5}).requires_grad_(true);   // no gradient at all
  Tensor empty = zeros({0}, kFloat32).requires_grad_(true);  // a gradient of no elements
  SGD opt({p, unused, empty}, {.lr = 0.5});
  GradScaler s({.init_scale = 4});
  s.scale((p * 2.0).sum() + empty.sum()).backward();
  EXPECT_EQ(p.grad().dtype(), kFloat64);
  EXPECT_TRUE(s.step(opt));
  EXPECT_EQ(vals(p), (std::vector<double>{0, 1}));
  s.update();
  opt.zero_grad();
  s.scale((p * tensor({1.0, -kInf})).sum()).backward();
  EXPECT_FALSE(s.step(opt));  // a -inf in a float64 gradient
  s.update();
  EXPECT_EQ(s.get_scale(), 2.0);
}

TEST(GradScaler, SeveralOptimizersSkipOnTheirOwnAndBackOffTogether) {
  Tensor a = tensor<float>({1, 2}).requires_grad_(true);
  Tensor b = tensor<float>({3, 4}).requires_grad_(true);
  SGD oa({a}, {.lr = 1}), ob({b}, {.lr = 1});
  GradScaler s;
  s.scale((a * tensor({kInf, 1.0}).to(kFloat32)).sum() + (b * 2.0).sum()).backward();
  EXPECT_FALSE(s.step(oa));
  EXPECT_TRUE(s.step(ob));
  s.update();
  EXPECT_EQ(vals(a), (std::vector<double>{1, 2}));
  EXPECT_EQ(vals(b), (std::vector<double>{1, 2}));
  EXPECT_EQ(s.get_scale(), 32768);
}

TEST(GradScaler, UpdateWithANewScaleAndGrowthStopsAtFiniteScales) {
  Tensor p = tensor<float>({1}).requires_grad_(true);
  SGD opt({p}, {.lr = 0});
  GradScaler s({.init_scale = std::ldexp(1.0, 127), .growth_interval = 1});
  EXPECT_TRUE(train_step(s, opt, p, {1}));
  EXPECT_EQ(s.get_scale(), std::ldexp(1.0, 127));  // 2^128 is not a finite float32
  EXPECT_EQ(s.growth_tracker(), 0);
  s.update(3.3);
  EXPECT_EQ(s.get_scale(), static_cast<double>(3.3f));  // the scale is float32, as PyTorch's
  EXPECT_TRUE(train_step(s, opt, p, {1}));
  expect_error<ValueError>([&] { s.update(0.0); }, "finite and positive");
}

TEST(GradScaler, StateDictRoundTripContinuesTheSameSequence) {
  Tensor p = tensor<float>({1, 2, 3, 4}).requires_grad_(true);
  SGD opt({p}, {.lr = 0.0});
  GradScaler a(
      {.init_scale = 256, .growth_factor = 4, .backoff_factor = 0.25, .growth_interval = 2});
  for (int step = 0; step < 5; ++step) train_step(a, opt, p, coefs(step, step == 3 ? kInf : 0));
  const StateDict sd = a.state_dict();
  EXPECT_EQ(sd.size(), 5u);
  EXPECT_EQ(sd.at("scale").dtype(), kFloat64);
  EXPECT_EQ(sd.at("_growth_tracker").dtype(), kInt64);
  GradScaler b;
  b.load_state_dict(sd);
  EXPECT_EQ(b.get_scale(), a.get_scale());
  EXPECT_EQ(b.growth_tracker(), a.growth_tracker());
  EXPECT_EQ(b.get_growth_factor(), 4);
  EXPECT_EQ(b.get_backoff_factor(), 0.25);
  EXPECT_EQ(b.get_growth_interval(), 2);
  for (int step = 5; step < 12; ++step) {
    const auto c = coefs(step, step % 4 == 0 ? kNaN : 0);
    train_step(a, opt, p, c);
    train_step(b, opt, p, c);
    EXPECT_EQ(a.get_scale(), b.get_scale()) << step;
    EXPECT_EQ(a.growth_tracker(), b.growth_tracker()) << step;
  }
  expect_error<ValueError>([&] { b.load_state_dict({}); }, "empty");
  StateDict missing = sd;
  missing.erase("backoff_factor");
  expect_error<ValueError>([&] { b.load_state_dict(missing); }, "backoff_factor");
}

TEST(GradScaler, CheckpointHoldsTheScaler) {
  GradScaler a({.init_scale = 512, .growth_interval = 7});
  Tensor p = tensor<float>({1}).requires_grad_(true);
  SGD opt({p}, {.lr = 0});
  train_step(a, opt, p, {kInf});
  train_step(a, opt, p, {1});
  const auto path = std::filesystem::temp_directory_path() / "tessera_scaler_ck.safetensors";
  io::Checkpoint ck;
  ck.scaler = a.state_dict();
  ck.step = 2;
  io::save_checkpoint(path, ck);
  const io::Checkpoint back = io::load_checkpoint(path);
  GradScaler b;
  b.load_state_dict(back.scaler);
  EXPECT_EQ(b.get_scale(), 256);
  EXPECT_EQ(b.growth_tracker(), 1);
  EXPECT_EQ(b.get_growth_interval(), 7);
  // A checkpoint without a scaler loads with an empty one.
  io::save_checkpoint(path, io::Checkpoint{});
  EXPECT_TRUE(io::load_checkpoint(path).scaler.empty());
  std::filesystem::remove(path);
}

TEST(GradScaler, DisabledIsAPassThrough) {
  Tensor p = tensor<float>({1, 2}).requires_grad_(true);
  SGD opt({p}, {.lr = 0.5});
  GradScaler s({.enabled = false});
  const Tensor loss = (p * tensor({kInf, 1.0}).to(kFloat32)).sum();
  EXPECT_TRUE(s.scale(loss).is_same(loss));
  loss.backward();
  s.unscale_(opt);
  EXPECT_TRUE(s.step(opt));  // steps even with an inf gradient: nothing is checked
  s.update();
  EXPECT_EQ(s.get_scale(), 1.0);
  EXPECT_TRUE(s.state_dict().empty());
  s.load_state_dict({});  // no-op
  EXPECT_TRUE(std::isinf(vals(p)[0]));
}

}  // namespace
}  // namespace tessera::optim
