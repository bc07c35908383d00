// LR schedulers against their closed forms (written out here), OneCycleLR against the 1cycle
// formulas, ReduceLROnPlateau against a hand trace, chaining, state dicts; and gradient
// clipping against hand-computed norms.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numbers>

#include "tessera/tessera.h"

namespace tessera::optim {
namespace {

constexpr double kPi = std::numbers::pi;

template <class E, class F>
void expect_error(F&& f, const std::string& want) {
  try {
    f();
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << "message: " << e.what();
    return;
  }
  ADD_FAILURE() << "no exception; wanted one containing: " << want;
}

Tensor param() { return tensor<double>({1.0, 2.0}).requires_grad_(); }

// The lr of group g at epochs 0..epochs-1 (the value after construction is epoch 0).
template <class Sched>
std::vector<double> lr_sequence(Sched& s, Optimizer& opt, int epochs, size_t g = 0) {
  std::vector<double> out;
  for (int e = 0; e < epochs; ++e) {
    if (e > 0) s.step();
    out.push_back(opt.param_groups()[g].lr());
    EXPECT_EQ(s.get_last_lr()[g], out.back());
  }
  return out;
}

void expect_sequence(const std::vector<double>& got, const std::function<double(int)>& want,
                     double rel = 1e-13) {
  for (size_t e = 0; e < got.size(); ++e) {
    const double w = want(static_cast<int>(e));
    EXPECT_NEAR(got[e], w, rel * std::max(1.0, std::abs(w))) << "epoch " << e;
  }
}

TEST(OptimSched, StepLR) {
  SGD opt({param()}, {.lr = 0.5});
  StepLR s(opt, 3, 0.1);
  expect_sequence(lr_sequence(s, opt, 12), [](int e) { return 0.5 * std::pow(0.1, e / 3); });
}

TEST(OptimSched, MultiStepLRCountsRepeatedMilestones) {
  SGD opt({param()}, {.lr = 1.0});
  MultiStepLR s(opt, {5, 2, 5}, 0.5);
  expect_sequence(lr_sequence(s, opt, 8), [](int e) { return e < 2 ? 1.0 : e < 5 ? 0.5 : 0.125; });
}

TEST(OptimSched, ExponentialLR) {
  SGD opt({param()}, {.lr = 0.2});
  ExponentialLR s(opt, 0.9);
  expect_sequence(lr_sequence(s, opt, 20), [](int e) { return 0.2 * std::pow(0.9, e); });
}

TEST(OptimSched, CosineAnnealingFollowsTheClosedFormPastTMax) {
  SGD opt({param()}, {.lr = 0.1});
  CosineAnnealingLR s(opt, 10, 0.001);
  expect_sequence(
      lr_sequence(s, opt, 35),
      [](int e) { return 0.001 + (0.1 - 0.001) * (1 + std::cos(kPi * e / 10)) / 2; }, 1e-12);
}

TEST(OptimSched, LinearLRWarmup) {
  SGD opt({param()}, {.lr = 0.4});
  LinearLR s(opt, 0.25, 1.0, 4);
  expect_sequence(lr_sequence(s, opt, 8),
                  [](int e) { return 0.4 * (0.25 + 0.75 * std::min(e, 4) / 4.0); });
}

TEST(OptimSched, EachGroupScalesItsOwnLr) {
  Tensor a = param(), b = param();
  SGD opt({ParamGroup{{a}, {}}, ParamGroup{{b}, {{"lr", 3.0}}}}, {.lr = 1.0});
  ExponentialLR s(opt, 0.5);
  s.step();
  s.step();
  EXPECT_EQ(s.get_last_lr(), (std::vector<double>{0.25, 0.75}));
  EXPECT_EQ(opt.param_groups()[1].get("initial_lr"), 3.0);
}

// 1cycle reference: phases (end_step, start, end) annealed by cos or linearly.
double one_cycle_ref(int step, int total, double max_lr, double pct, bool cos, bool three) {
  const double initial = max_lr / 25, min_lr = initial / 1e4;
  auto anneal = [&](double a, double b, double p) {
    return cos ? b + (a - b) / 2 * (std::cos(kPi * p) + 1) : a + (b - a) * p;
  };
  const double up = pct * total - 1;
  if (step <= up) return anneal(initial, max_lr, step / up);
  if (!three) return anneal(max_lr, min_lr, (step - up) / (total - 1 - up));
  const double down = 2 * pct * total - 2;
  if (step <= down) return anneal(max_lr, initial, (step - up) / (down - up));
  return anneal(initial, min_lr, (step - down) / (total - 1 - down));
}

TEST(OptimSched, OneCycleLRAllVariants) {
  for (bool cos : {true, false})
    for (bool three : {false, true}) {
      SCOPED_TRACE(std::string(cos ? "cos" : "linear") + (three ? " three_phase" : ""));
      SGD opt({param()}, {.lr = 0.01, .momentum = 0.9});
      OneCycleLR s(opt, {.max_lr = {2.0},
                         .total_steps = 20,
                         .anneal_strategy = cos ? "cos" : "linear",
                         .three_phase = three});
      expect_sequence(lr_sequence(s, opt, 20),
                      [&](int e) { return one_cycle_ref(e, 20, 2.0, 0.3, cos, three); });
    }
}

TEST(OptimSched, OneCycleLRCyclesMomentumAndBeta1) {
  SGD sgd({param()}, {.lr = 0.01, .momentum = 0.9});
  OneCycleLR s(sgd, {.max_lr = {1.0}, .epochs = 2, .steps_per_epoch = 5});
  EXPECT_EQ(s.total_steps(), 10);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].get("momentum"), 0.95);  // max_momentum at the start
  for (int i = 0; i < 2; ++i) s.step();  // step 2 = the peak (0.3 * 10 - 1)
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].lr(), 1.0);
  EXPECT_DOUBLE_EQ(sgd.param_groups()[0].get("momentum"), 0.85);

  Adam adam({param()});
  OneCycleLR a(adam, {.max_lr = {1.0}, .total_steps = 10, .base_momentum = {0.8}});
  EXPECT_DOUBLE_EQ(adam.param_groups()[0].get("beta1"), 0.95);
  for (int i = 0; i < 2; ++i) a.step();
  EXPECT_DOUBLE_EQ(adam.param_groups()[0].get("beta1"), 0.8);
  EXPECT_DOUBLE_EQ(adam.param_groups()[0].get("beta2"), 0.999);

  for (int i = 0; i < 8; ++i) a.step();
  expect_error<ValueError>([&] { a.step(); },
                           "tried to step 11 times; the specified number of total steps is 10");
  SGD short_warmup({param()}, {.momentum = 0.9});  // warmup phase of zero length
  OneCycleLR z(short_warmup, {.max_lr = {1.0}, .total_steps = 10, .pct_start = 0.1});
  EXPECT_EQ(short_warmup.param_groups()[0].lr(), 1.0);
  z.step();
  EXPECT_DOUBLE_EQ(short_warmup.param_groups()[0].lr(),
                   one_cycle_ref(1, 10, 1.0, 0.1, true, false));

  Adagrad adagrad({param()});
  expect_error<ValueError>([&] { OneCycleLR(adagrad, {.max_lr = {1.0}, .total_steps = 10}); },
                           "must support momentum or beta1");
}

TEST(OptimSched, ReduceLROnPlateauHandTrace) {
  SGD opt({param()}, {.lr = 1.0});
  ReduceLROnPlateau s(opt, {.factor = 0.5, .patience = 1, .cooldown = 1, .min_lr = {0.2}});
  // Reductions at epochs 3 and 6 (two bad epochs; the one after each is cooldown), then at 9
  // only down to min_lr 0.2.
  const std::vector<double> metrics = {10, 9, 9.5, 9.2, 9.1, 9.3, 9.4, 8, 8.5, 8.6, 8.7, 8.8};
  const std::vector<double> want = {1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.2, 0.2, 0.2};
  for (size_t i = 0; i < metrics.size(); ++i) {
    s.step(metrics[i]);
    EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr(), want[i]) << "epoch " << i;
  }
  EXPECT_EQ(s.best(), 8.0);
  EXPECT_EQ(s.get_last_lr()[0], 0.2);
}

TEST(OptimSched, ReduceLROnPlateauMaxModeAndAbsThreshold) {
  SGD opt({param()}, {.lr = 1.0});
  ReduceLROnPlateau s(
      opt,
      {.mode = "max", .factor = 0.1, .patience = 0, .threshold = 0.5, .threshold_mode = "abs"});
  s.step(1.0);  // best 1
  s.step(1.4);  // not better by 0.5: reduce
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr(), 0.1);
  s.step(2.0);  // better
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr(), 0.1);
  EXPECT_EQ(s.num_bad_epochs(), 0);
}

TEST(OptimSched, ChainedSchedulerMultipliesTheFactors) {
  SGD opt({param()}, {.lr = 1.0});
  auto exp = std::make_shared<ExponentialLR>(opt, 0.9);
  auto step = std::make_shared<StepLR>(opt, 3, 0.5);
  ChainedScheduler s({exp, step});
  expect_sequence(lr_sequence(s, opt, 10),
                  [](int e) { return std::pow(0.9, e) * std::pow(0.5, e / 3); });
}

TEST(OptimSched, SequentialLRWarmupThenDecay) {
  SGD opt({param()}, {.lr = 0.5});
  auto warm = std::make_shared<LinearLR>(opt, 0.1, 1.0, 3);
  auto decay = std::make_shared<ExponentialLR>(opt, 0.9);
  SequentialLR s(opt, {warm, decay}, {3});
  expect_sequence(lr_sequence(s, opt, 10), [](int e) {
    return e < 3 ? 0.5 * (0.1 + 0.9 * e / 3.0) : 0.5 * std::pow(0.9, e - 3);
  });
}

TEST(OptimSched, SequentialLRCosineAfterConstantStart) {
  SGD opt({param()}, {.lr = 1.0});
  auto flat = std::make_shared<StepLR>(opt, 1000, 0.1);
  auto cosine = std::make_shared<CosineAnnealingLR>(opt, 6, 0.0);
  SequentialLR s(opt, {flat, cosine}, {2});
  expect_sequence(
      lr_sequence(s, opt, 9),
      [](int e) { return e < 2 ? 1.0 : (1 + std::cos(kPi * (e - 2) / 6)) / 2; }, 1e-12);
}

// Runs a scheduler 4 epochs, saves optimizer and scheduler, resumes both in fresh objects and
// checks the next 6 lrs equal (bitwise) those of an uninterrupted run.
void check_resume(const std::function<std::unique_ptr<LRScheduler>(Optimizer&)>& make) {
  SGD straight_opt({param()}, {.lr = 0.3, .momentum = 0.9});
  auto straight = make(straight_opt);
  const std::vector<double> want = lr_sequence(*straight, straight_opt, 10);

  SGD opt({param()}, {.lr = 0.3, .momentum = 0.9});
  auto s = make(opt);
  for (int e = 1; e < 4; ++e) s->step();
  const StateDict opt_state = opt.state_dict(), sched_state = s->state_dict();

  SGD opt2({param()}, {.lr = 0.3, .momentum = 0.9});
  auto s2 = make(opt2);
  opt2.load_state_dict(opt_state);
  s2->load_state_dict(sched_state);
  EXPECT_EQ(s2->last_epoch(), s->last_epoch());
  for (int e = 4; e < 10; ++e) {
    s2->step();
    EXPECT_EQ(opt2.param_groups()[0].lr(), want[e]) << "epoch " << e;
  }
}

TEST(OptimSched, StateDictResume) {
  check_resume([](Optimizer& o) { return std::make_unique<StepLR>(o, 3, 0.5); });
  check_resume([](Optimizer& o) { return std::make_unique<CosineAnnealingLR>(o, 7, 0.01); });
  check_resume([](Optimizer& o) { return std::make_unique<LinearLR>(o, 0.2, 1.0, 6); });
  check_resume([](Optimizer& o) {
    return std::make_unique<OneCycleLR>(o, OneCycleOptions{.max_lr = {1.0}, .total_steps = 10});
  });
  check_resume([](Optimizer& o) {
    auto a = std::make_shared<LinearLR>(o, 0.5, 1.0, 2);
    auto b = std::make_shared<ExponentialLR>(o, 0.8);
    return std::make_unique<SequentialLR>(o, std::vector<std::shared_ptr<LRScheduler>>{a, b},
                                          std::vector<int64_t>{3});
  });
  check_resume([](Optimizer& o) {
    auto a = std::make_shared<ExponentialLR>(o, 0.9);
    auto b = std::make_shared<MultiStepLR>(o, std::vector<int64_t>{2, 6}, 0.5);
    return std::make_unique<ChainedScheduler>(std::vector<std::shared_ptr<LRScheduler>>{a, b});
  });
}

TEST(OptimSched, PlateauStateDictResume) {
  SGD opt({param()}, {.lr = 1.0});
  ReduceLROnPlateau s(opt, {.patience = 0, .cooldown = 2});
  s.step(1.0);
  s.step(2.0);
  SGD opt2({param()}, {.lr = 1.0});
  ReduceLROnPlateau s2(opt2, {.patience = 0, .cooldown = 2});
  opt2.load_state_dict(opt.state_dict());
  s2.load_state_dict(s.state_dict());
  for (double m : {3.0, 4.0, 5.0, 0.5}) {
    s.step(m);
    s2.step(m);
    EXPECT_EQ(opt2.param_groups()[0].lr(), opt.param_groups()[0].lr());
  }
  EXPECT_EQ(s2.best(), 0.5);
}

TEST(OptimSched, BadInput) {
  SGD opt({param()}, {.lr = 0.1});
  expect_error<ValueError>([&] { StepLR(opt, 0); }, "step_size must be positive, got 0");
  expect_error<ValueError>([&] { LinearLR(opt, 0.0); }, "start_factor must be in (0, 1]");
  expect_error<ValueError>([&] { CosineAnnealingLR(opt, 0); }, "T_max must be positive");
  expect_error<ValueError>([&] { OneCycleLR(opt, {.max_lr = {1.0}}); },
                           "either total_steps or (epochs and steps_per_epoch)");
  expect_error<ValueError>(
      [&] {
        OneCycleLR(opt, {.max_lr = {1.0, 2.0}, .total_steps = 5});
      },
      "max_lr must have one value or one per parameter group (1), got 2");
  expect_error<ValueError>(
      [&] { OneCycleLR(opt, {.max_lr = {1.0}, .total_steps = 5, .anneal_strategy = "exp"}); },
      "anneal_strategy must be 'cos' or 'linear'");
  expect_error<ValueError>([&] { ReduceLROnPlateau(opt, {.factor = 1.0}); },
                           "factor should be < 1.0");
  expect_error<ValueError>([&] { ReduceLROnPlateau(opt, {.mode = "avg"}); },
                           "mode must be 'min' or 'max'");

  SGD fresh({param()});
  expect_error<ValueError>([&] { StepLR(fresh, 2, 0.1, 5); },
                           "param 'initial_lr' is not specified in param_groups[0]");

  SGD other({param()});
  auto a = std::make_shared<ExponentialLR>(opt, 0.9);
  auto b = std::make_shared<ExponentialLR>(other, 0.9);
  expect_error<ValueError>(
      [&] {
        ChainedScheduler({a, b});
      },
      "scheduler 1 (ExponentialLR) has another one");
  expect_error<ValueError>(
      [&] {
        SequentialLR(opt, {a, a}, {});
      },
      "got 2 schedulers and 0 milestones");

  SGD grow({param()});
  CosineAnnealingLR cs(grow, 5);
  grow.add_param_group({{param()}, {}});
  expect_error<ValueError>([&] { cs.step(); },
                           "the optimizer has 2 parameter groups but had 1 when the scheduler");

  StepLR s(opt, 2);
  StateDict sd = s.state_dict();
  sd.erase("base_lrs");
  expect_error<ValueError>([&] { s.load_state_dict(sd); }, "base_lrs is missing");
  sd = s.state_dict();
  sd["last_lr"] = zeros({3}, kFloat64);
  expect_error<ValueError>([&] { s.load_state_dict(sd); },
                           "last_lr has shape (3,) but the optimizer has 1 parameter groups");
  sd = s.state_dict();
  sd["gamma"] = scalar_tensor(0.5, kFloat64);
  expect_error<ValueError>([&] { s.load_state_dict(sd); }, "unexpected key 'gamma'");
}

// ---- gradient clipping ------------------------------------------------------------------

TEST(OptimClip, GradNormTwoScalesEveryGradient) {
  Tensor a = param(), b = tensor<double>({0.0}).requires_grad_(), c = param();
  a.set_grad(tensor<double>({3.0, 4.0}));
  b.set_grad(tensor<double>({12.0}));  // total norm sqrt(9 + 16 + 144) = 13; c has no grad
  const Tensor norm = clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_EQ(norm.dtype(), kFloat64);
  EXPECT_DOUBLE_EQ(norm.item<double>(), 13.0);
  const double coef = 6.5 / (13.0 + 1e-6);
  EXPECT_DOUBLE_EQ(a.grad().to_vector<double>()[0], 3.0 * coef);
  EXPECT_DOUBLE_EQ(a.grad().to_vector<double>()[1], 4.0 * coef);
  EXPECT_DOUBLE_EQ(b.grad().item<double>(), 12.0 * coef);
  EXPECT_FALSE(c.grad().defined());
}

TEST(OptimClip, OtherNormsAndNoClipBelowTheLimit) {
  Tensor a = param(), b = param();
  a.set_grad(tensor<double>({3.0, -4.0}));
  b.set_grad(tensor<double>({-5.0, 1.0}));
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 100.0, 1.0).item<double>(), 13.0);
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{3.0, -4.0}));  // unchanged
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_DOUBLE_EQ(clip_grad_norm_({a, b}, 2.5, inf).item<double>(), 5.0);
  EXPECT_NEAR(b.grad().to_vector<double>()[0], -2.5, 1e-6);
  a.set_grad(tensor<double>({1.0, 2.0}));
  b.set_grad(tensor<double>({2.0, 0.0}));
  EXPECT_NEAR(clip_grad_norm_({a, b}, 100.0, 3.0).item<double>(), std::cbrt(17.0), 1e-14);
  a.set_grad(tensor<float>({3.f, 4.f}));
  EXPECT_NEAR(clip_grad_norm_({a}, 1.0).item<double>(), 5.0, 1e-6);
  EXPECT_EQ(a.grad().dtype(), kFloat32);
  EXPECT_NEAR(a.grad().to_vector<double>()[1], 0.8, 1e-6);
  EXPECT_EQ(clip_grad_norm_({param()}, 1.0).item<double>(), 0.0);  // no gradients at all
}

TEST(OptimClip, NonFiniteNorm) {
  Tensor a = param();
  a.set_grad(tensor<double>({std::nan(""), 1.0}));
  expect_error<ValueError>([&] { clip_grad_norm_({a}, 1.0, 2.0, true); },
                           "[clip_grad_norm_] the total norm of order 2 of the gradients is nan");
  EXPECT_EQ(a.grad().to_vector<double>()[1], 1.0);  // left alone
  EXPECT_TRUE(std::isnan(clip_grad_norm_({a}, 1.0).item<double>()));
  expect_error<ValueError>([&] { clip_grad_norm_({a}, 1.0, 0.0); }, "norm_type must be positive");
  expect_error<ValueError>([&] { clip_grad_norm_({a}, -1.0); }, "max_norm must be >= 0");
}

TEST(OptimClip, GradValue) {
  Tensor a = param();
  a.set_grad(tensor<double>({-3.0, 0.25}));
  clip_grad_value_({a}, 0.5);
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{-0.5, 0.25}));
  expect_error<ValueError>([&] { clip_grad_value_({a}, -1.0); }, "clip_value must be >= 0");
}

}  // namespace
}  // namespace tessera::optim
