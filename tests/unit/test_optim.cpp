// Optimizers: every update rule against an independent float64 reference loop (written from
// the algorithms in the torch.optim docs, not from the implementation's arrangement), for
// several steps with and without each option; groups, zero_grad, non-contiguous parameters,
// state dicts (bitwise resume, validation) and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "tessera/tessera.h"

namespace tessera::optim {
namespace {

template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<other exception> ") + e.what();
  }
  return "<no exception>";
}

// f must throw E with a message containing `want`.
template <class E, class F>
void expect_error(F&& f, const std::string& want) {
  const std::string msg = message_of<E>(f);
  EXPECT_NE(msg.find(want), std::string::npos) << "message: " << msg;
}

// A gradient that depends on the parameter (so errors compound) and on the step.
double grad_at(double p, int64_t i, int step) {
  return (1.0 + 0.5 * static_cast<double>(i % 3)) * (p - 0.1 * static_cast<double>(i % 7)) +
         0.1 * std::cos(step + 0.37 * static_cast<double>(i));
}

std::vector<double> initial_values(int64_t n) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = std::sin(1.3 * static_cast<double>(i) + 0.2);
  return v;
}

Tensor make_param(int64_t n, DType dt = kFloat64) {
  return tensor(initial_values(n)).to(dt).requires_grad_();
}

// Sets every parameter's gradient from grad_at for this step.
void set_grads(const std::vector<Tensor>& params, int step) {
  for (Tensor p : params) {
    const std::vector<double> v = p.to_vector<double>();
    std::vector<double> g(v.size());
    for (size_t i = 0; i < v.size(); ++i) g[i] = grad_at(v[i], static_cast<int64_t>(i), step);
    p.set_grad(tensor(g).to(p.dtype()).reshape(p.shape()));
  }
}

void run_steps(Optimizer& opt, const std::vector<Tensor>& params, int from, int to) {
  for (int k = from; k < to; ++k) {
    set_grads(params, k);
    opt.step();
  }
}

// A reference update: (parameter values, gradient, step number from 1) -> new values.
using RefStep = std::function<void(std::vector<double>&, std::vector<double>, int)>;

std::vector<double> run_reference(RefStep ref, std::vector<double> p, int steps) {
  for (int k = 0; k < steps; ++k) {
    std::vector<double> g(p.size());
    for (size_t i = 0; i < p.size(); ++i) g[i] = grad_at(p[i], static_cast<int64_t>(i), k);
    ref(p, g, k + 1);
  }
  return p;
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << "element " << i;
}

constexpr int kSteps = 7;

// ---- references (torch.optim docs' pseudo-code) -----------------------------------------

RefStep sgd_ref(SGDOptions o) {
  auto buf = std::make_shared<std::vector<double>>();
  return [=](std::vector<double>& p, std::vector<double> g, int t) {
    for (size_t i = 0; i < p.size(); ++i) {
      if (o.maximize) g[i] = -g[i];
      if (o.weight_decay != 0) g[i] += o.weight_decay * p[i];
    }
    if (o.momentum != 0) {
      if (t == 1) {
        *buf = g;
      } else {
        for (size_t i = 0; i < p.size(); ++i)
          (*buf)[i] = o.momentum * (*buf)[i] + (1 - o.dampening) * g[i];
      }
      for (size_t i = 0; i < p.size(); ++i)
        g[i] = o.nesterov ? g[i] + o.momentum * (*buf)[i] : (*buf)[i];
    }
    for (size_t i = 0; i < p.size(); ++i) p[i] -= o.lr * g[i];
  };
}

struct AdamRefOptions {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;
};

RefStep adam_ref(AdamRefOptions o) {
  struct S {
    std::vector<double> m, v, vmax;
  };
  auto s = std::make_shared<S>();
  return [=](std::vector<double>& p, std::vector<double> g, int t) {
    if (s->m.empty()) s->m = s->v = s->vmax = std::vector<double>(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      if (o.maximize) g[i] = -g[i];
      if (o.decoupled)
        p[i] -= o.lr * o.weight_decay * p[i];
      else
        g[i] += o.weight_decay * p[i];
      s->m[i] = o.beta1 * s->m[i] + (1 - o.beta1) * g[i];
      s->v[i] = o.beta2 * s->v[i] + (1 - o.beta2) * g[i] * g[i];
      const double mhat = s->m[i] / (1 - std::pow(o.beta1, t));
      s->vmax[i] = std::max(s->vmax[i], s->v[i]);
      const double vhat = (o.amsgrad ? s->vmax[i] : s->v[i]) / (1 - std::pow(o.beta2, t));
      p[i] -= o.lr * mhat / (std::sqrt(vhat) + o.eps);
    }
  };
}

RefStep rmsprop_ref(RMSpropOptions o) {
  struct S {
    std::vector<double> v, b, ga;
  };
  auto s = std::make_shared<S>();
  return [=](std::vector<double>& p, std::vector<double> g, int) {
    if (s->v.empty()) s->v = s->b = s->ga = std::vector<double>(p.size(), 0.0);
    for (size_t i = 0; i < p.size(); ++i) {
      if (o.maximize) g[i] = -g[i];
      g[i] += o.weight_decay * p[i];
      s->v[i] = o.alpha * s->v[i] + (1 - o.alpha) * g[i] * g[i];
      double vt = s->v[i];
      if (o.centered) {
        s->ga[i] = o.alpha * s->ga[i] + (1 - o.alpha) * g[i];
        vt -= s->ga[i] * s->ga[i];
      }
      if (o.momentum > 0) {
        s->b[i] = o.momentum * s->b[i] + g[i] / (std::sqrt(vt) + o.eps);
        p[i] -= o.lr * s->b[i];
      } else {
        p[i] -= o.lr * g[i] / (std::sqrt(vt) + o.eps);
      }
    }
  };
}

RefStep adagrad_ref(AdagradOptions o) {
  auto sum = std::make_shared<std::vector<double>>();
  return [=](std::vector<double>& p, std::vector<double> g, int t) {
    if (sum->empty()) *sum = std::vector<double>(p.size(), o.initial_accumulator_value);
    const double clr = o.lr / (1 + (t - 1) * o.lr_decay);
    for (size_t i = 0; i < p.size(); ++i) {
      if (o.maximize) g[i] = -g[i];
      g[i] += o.weight_decay * p[i];
      (*sum)[i] += g[i] * g[i];
      p[i] -= clr * g[i] / (std::sqrt((*sum)[i]) + o.eps);
    }
  };
}

// Runs an optimizer made by `make` on one parameter of n elements and compares with ref.
void check_against(const std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>& make,
                   RefStep ref, int64_t n = 11, DType dt = kFloat64, double tol = 1e-12) {
  Tensor p = make_param(n, dt);
  std::unique_ptr<Optimizer> opt = make({p});
  run_steps(*opt, {p}, 0, kSteps);
  expect_close(p.to_vector<double>(), run_reference(ref, initial_values(n), kSteps), tol);
}

template <class Opt, class Options>
std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)> maker(Options o) {
  return [o](std::vector<Tensor> ps) { return std::make_unique<Opt>(std::move(ps), o); };
}

// ---- update rules -----------------------------------------------------------------------

TEST(OptimSGD, MatchesReferenceForEveryOption) {
  const std::vector<SGDOptions> configs = {
      {.lr = 0.1},
      {.lr = 0.1, .momentum = 0.9},
      {.lr = 0.05, .momentum = 0.8, .dampening = 0.3},
      {.lr = 0.05, .momentum = 0.9, .nesterov = true},
      {.lr = 0.1, .momentum = 0.5, .weight_decay = 0.2},
      {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true, .maximize = true},
  };
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE("config " + std::to_string(c));
    check_against(maker<SGD>(configs[c]), sgd_ref(configs[c]));
  }
}

TEST(OptimSGD, FirstStepHandComputed) {
  // p = 1, g = 2, lr 0.5, momentum 0.9: buf = g (no dampening on the first step), p = 0.
  Tensor p = tensor<double>({1.0}).requires_grad_();
  SGD opt({p}, {.lr = 0.5, .momentum = 0.9, .dampening = 0.5});
  p.set_grad(tensor<double>({2.0}));
  opt.step();
  EXPECT_DOUBLE_EQ(p.item<double>(), 0.0);
  EXPECT_DOUBLE_EQ(opt.state(p).at("momentum_buffer").item<double>(), 2.0);
  // Second step: buf = 0.9 * 2 + 0.5 * 1 = 2.3, p = 0 - 0.5 * 2.3.
  p.set_grad(tensor<double>({1.0}));
  opt.step();
  EXPECT_DOUBLE_EQ(p.item<double>(), -1.15);
}

TEST(OptimAdam, MatchesReferenceForEveryOption) {
  const std::vector<AdamOptions> configs = {
      {},
      {.lr = 0.01, .amsgrad = true},
      {.lr = 0.01, .weight_decay = 0.1},
      {.lr = 0.05, .eps = 0.1},  // eps large enough that its place in the formula matters
      {.lr = 0.01, .beta1 = 0.3, .beta2 = 0.8, .maximize = true},  // lerp's other branch
      {.lr = 0.02, .beta1 = 0.5, .beta2 = 0.6, .eps = 1e-3, .weight_decay = 0.3, .amsgrad = true},
  };
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE("config " + std::to_string(c));
    const AdamOptions& o = configs[c];
    check_against(maker<Adam>(o), adam_ref({o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                            o.amsgrad, o.maximize, false}));
  }
}

TEST(OptimAdam, FirstStepIsSignTimesLr) {
  // After one step m_hat = g and v_hat = g^2, so the update is lr * g / (|g| + eps).
  Tensor p = tensor<double>({1.0, -2.0}).requires_grad_();
  Adam opt({p}, {.lr = 0.1, .eps = 0.0});
  p.set_grad(tensor<double>({3.0, -0.5}));
  opt.step();
  EXPECT_DOUBLE_EQ(p.to_vector<double>()[0], 0.9);
  EXPECT_DOUBLE_EQ(p.to_vector<double>()[1], -1.9);
  EXPECT_EQ(opt.state(p).at("step").item<int64_t>(), 1);
  EXPECT_EQ(opt.state(p).at("step").dtype(), kInt64);
}

TEST(OptimAdamW, MatchesReferenceForEveryOption) {
  const std::vector<AdamWOptions> configs = {
      {},
      {.lr = 0.01, .weight_decay = 0.5},
      {.lr = 0.01, .eps = 0.1, .weight_decay = 0.2, .amsgrad = true},
      {.lr = 0.03, .beta1 = 0.2, .weight_decay = 0.1, .maximize = true},
  };
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE("config " + std::to_string(c));
    const AdamWOptions& o = configs[c];
    check_against(maker<AdamW>(o), adam_ref({o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                             o.amsgrad, o.maximize, true}));
  }
}

TEST(OptimRMSprop, MatchesReferenceForEveryOption) {
  const std::vector<RMSpropOptions> configs = {
      {},
      {.lr = 0.01, .alpha = 0.9, .eps = 0.1},
      {.lr = 0.01, .centered = true},
      {.lr = 0.01, .momentum = 0.9},
      {.lr = 0.01, .alpha = 0.8, .weight_decay = 0.1, .momentum = 0.5, .centered = true},
      {.lr = 0.01, .alpha = 0.3, .centered = true, .maximize = true},  // lerp's other branch
  };
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE("config " + std::to_string(c));
    check_against(maker<RMSprop>(configs[c]), rmsprop_ref(configs[c]));
  }
}

TEST(OptimAdagrad, MatchesReferenceForEveryOption) {
  const std::vector<AdagradOptions> configs = {
      {},
      {.lr = 0.1, .lr_decay = 0.1},
      {.lr = 0.1, .initial_accumulator_value = 0.5},
      {.lr = 0.1, .weight_decay = 0.2, .eps = 0.1},
      {.lr = 0.05,
       .lr_decay = 0.3,
       .weight_decay = 0.1,
       .initial_accumulator_value = 0.2,
       .maximize = true},
  };
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE("config " + std::to_string(c));
    check_against(maker<Adagrad>(configs[c]), adagrad_ref(configs[c]));
  }
}

TEST(OptimFused, LargeParametersTakeTheParallelPath) {
  const int64_t n = 3 * kParallelGrain + 17;
  const AdamWOptions o{.lr = 0.01, .weight_decay = 0.1, .amsgrad = true};
  check_against(maker<AdamW>(o),
                adam_ref({o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, true, false, true}), n);
  const RMSpropOptions r{.lr = 0.01, .momentum = 0.9, .centered = true};
  check_against(maker<RMSprop>(r), rmsprop_ref(r), n);
}

TEST(OptimFused, Float32ParametersFollowTheFloat64Reference) {
  const AdamOptions o{.lr = 0.01, .weight_decay = 0.1};
  check_against(maker<Adam>(o), adam_ref({o.lr, 0.9, 0.999, 1e-8, 0.1, false, false, false}), 11,
                kFloat32, 2e-6);
  const SGDOptions s{.lr = 0.1, .momentum = 0.9, .nesterov = true};
  check_against(maker<SGD>(s), sgd_ref(s), 11, kFloat32, 2e-6);
  Tensor p = make_param(3, kFloat32);
  Adagrad opt({p});
  set_grads({p}, 0);
  opt.step();
  EXPECT_EQ(opt.state(p).at("sum").dtype(), kFloat32);
}

TEST(OptimFused, NonContiguousParameterIsWrittenThrough) {
  Tensor base = tensor(initial_values(12)).reshape({3, 4});
  Tensor p = base.t();  // a leaf view with strides (1, 4)
  ASSERT_FALSE(p.is_contiguous());
  const std::vector<double> before = p.contiguous().to_vector<double>();
  SGD opt({p}, {.lr = 0.5});
  p.set_grad(ones({4, 3}, kFloat64));
  opt.step();
  const std::vector<double> after = p.contiguous().to_vector<double>();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_DOUBLE_EQ(after[i], before[i] - 0.5);
  EXPECT_DOUBLE_EQ(base.to_vector<double>()[1], initial_values(12)[1] - 0.5);
}

TEST(OptimFused, StepBumpsTheVersionAndSkipsParamsWithoutGrad) {
  Tensor a = make_param(4), b = make_param(4);
  Adam opt({a, b});
  a.set_grad(ones({4}, kFloat64));
  const uint64_t va = a.version(), vb = b.version();
  opt.step();
  EXPECT_GT(a.version(), va);
  EXPECT_EQ(a.storage()->last_writer(), "Adam");
  EXPECT_EQ(b.version(), vb);
  EXPECT_TRUE(opt.state(b).empty());
  expect_close(b.to_vector<double>(), initial_values(4), 0);
}

// ---- groups, zero_grad, closures ----------------------------------------------------------

TEST(OptimGroups, EachGroupUsesItsOwnOptions) {
  Tensor a = make_param(5), b = make_param(5);
  SGD opt({ParamGroup{{a}, {}}, ParamGroup{{b}, {{"lr", 0.3}, {"momentum", 0.5}}}},
          {.lr = 0.1, .momentum = 0.9});
  run_steps(opt, {a, b}, 0, kSteps);
  expect_close(a.to_vector<double>(),
               run_reference(sgd_ref({.lr = 0.1, .momentum = 0.9}), initial_values(5), kSteps),
               1e-12);
  expect_close(b.to_vector<double>(),
               run_reference(sgd_ref({.lr = 0.3, .momentum = 0.5}), initial_values(5), kSteps),
               1e-12);
  EXPECT_EQ(opt.param_groups()[1].get("dampening"), 0.0);  // filled from the defaults
}

TEST(OptimGroups, AddParamGroupLater) {
  Tensor a = make_param(3), b = make_param(3);
  Adam opt({a}, {.lr = 0.01});
  opt.add_param_group({{b}, {{"lr", 0.05}}});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  run_steps(opt, {a, b}, 0, kSteps);
  expect_close(b.to_vector<double>(),
               run_reference(adam_ref({0.05, 0.9, 0.999, 1e-8, 0, false, false, false}),
                             initial_values(3), kSteps),
               1e-12);
}

TEST(OptimGroups, ZeroGrad) {
  Tensor a = make_param(3), b = make_param(3);
  SGD opt({a, b});
  set_grads({a, b}, 0);
  opt.zero_grad(false);
  expect_close(a.grad().to_vector<double>(), {0, 0, 0}, 0);
  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(OptimGroups, StepRunsTheClosureWithGradEnabled) {
  Tensor w = tensor<double>({1.0, 2.0}).requires_grad_();
  SGD opt({w}, {.lr = 0.25});
  autograd::NoGradGuard outside;  // the closure still records
  const Tensor loss = opt.step([&] {
    opt.zero_grad();
    Tensor l = square(w).sum();  // grad 2w
    l.backward();
    return l;
  });
  EXPECT_DOUBLE_EQ(loss.item<double>(), 5.0);
  expect_close(w.to_vector<double>(), {0.5, 1.0}, 0);
}

TEST(OptimGroups, TrainsALinearModel) {
  manual_seed(3);
  Tensor x = randn({64, 3}, kFloat64);
  Tensor y = matmul(x, tensor<double>({1.0, -2.0, 0.5}));
  Tensor w = zeros({3}, kFloat64).requires_grad_();
  AdamW opt({w}, {.lr = 0.1, .weight_decay = 0});
  for (int i = 0; i < 300; ++i) {
    opt.zero_grad();
    square(matmul(x, w) - y).mean().backward();
    opt.step();
  }
  expect_close(w.to_vector<double>(), {1.0, -2.0, 0.5}, 1e-3);
}

// ---- state dicts --------------------------------------------------------------------------

// Runs 2 * half steps straight, and half + save/load into a fresh optimizer + half; the
// parameters must match bitwise.
void check_resume(const std::function<std::unique_ptr<Optimizer>(std::vector<Tensor>)>& make,
                  int half = 4) {
  Tensor a1 = make_param(7), b1 = make_param(40);
  auto straight = make({a1, b1});
  run_steps(*straight, {a1, b1}, 0, 2 * half);

  Tensor a2 = make_param(7), b2 = make_param(40);
  auto first = make({a2, b2});
  run_steps(*first, {a2, b2}, 0, half);
  const StateDict saved = first->state_dict();
  Tensor a5 = a2.detach().clone().requires_grad_(), b5 = b2.detach().clone().requires_grad_();
  run_steps(*first, {a2, b2}, half, half + 2);  // later steps must not leak into `saved`

  auto resumed = make({a5, b5});
  resumed->load_state_dict(saved);
  run_steps(*resumed, {a5, b5}, half, 2 * half);
  EXPECT_EQ(a5.to_vector<double>(), a1.to_vector<double>());
  EXPECT_EQ(b5.to_vector<double>(), b1.to_vector<double>());
}

TEST(OptimStateDict, ResumeIsBitwiseIdentical) {
  check_resume(maker<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}));
  check_resume(maker<Adam>(AdamOptions{.lr = 0.01, .amsgrad = true}));
  check_resume(maker<AdamW>(AdamWOptions{.lr = 0.01}));
  check_resume(maker<RMSprop>(RMSpropOptions{.momentum = 0.5, .centered = true}));
  check_resume(maker<Adagrad>(AdagradOptions{.lr_decay = 0.1}));
}

TEST(OptimStateDict, KeysAndFormats) {
  Tensor a = make_param(3), b = make_param(2);
  Adam opt({ParamGroup{{a}, {}}, ParamGroup{{b}, {{"lr", 0.5}}}}, {.amsgrad = true});
  b.set_grad(ones({2}, kFloat64));
  opt.step();
  const StateDict sd = opt.state_dict();
  EXPECT_EQ(sd.at("param_groups.1.lr").item<double>(), 0.5);
  EXPECT_EQ(sd.at("param_groups.1.lr").dim(), 0);
  EXPECT_EQ(sd.at("param_groups.1.lr").dtype(), kFloat64);
  EXPECT_EQ(sd.at("param_groups.0.amsgrad").item<double>(), 1.0);
  EXPECT_EQ(sd.at("param_groups.0.params").to_vector<int64_t>(), std::vector<int64_t>{0});
  EXPECT_EQ(sd.at("param_groups.1.params").to_vector<int64_t>(), std::vector<int64_t>{1});
  EXPECT_EQ(sd.at("state.1.step").item<int64_t>(), 1);
  EXPECT_EQ(sd.at("state.1.exp_avg").shape(), Shape{2});
  EXPECT_TRUE(sd.count("state.1.max_exp_avg_sq"));
  EXPECT_FALSE(sd.count("state.0.step"));  // a had no gradient
  // A snapshot: changing it does not change the optimizer.
  Tensor(sd.at("state.1.exp_avg")).fill_(7.0);
  EXPECT_NE(opt.state(b).at("exp_avg").to_vector<double>()[0], 7.0);
}

StateDict trained_adam_state(std::vector<Tensor> params) {
  Adam opt(params);
  set_grads(params, 0);
  opt.step();
  return opt.state_dict();
}

TEST(OptimStateDict, MismatchesRaiseValueErrorNamingTheKey) {
  Tensor a = make_param(3), b = make_param(2);
  const StateDict good = trained_adam_state({a, b});
  Tensor c = make_param(3), d = make_param(2);
  Adam opt({c, d});

  StateDict bad_shape = good;
  bad_shape["state.1.exp_avg"] = zeros({3}, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(bad_shape); },
                           "state.1.exp_avg has shape (3,) but its parameter has shape (2,)");

  Tensor e = make_param(3);
  Adam fewer({e});
  expect_error<ValueError>(
      [&] { fewer.load_state_dict(good); },
      "param_groups.0.params lists 2 parameters but group 0 of the optimizer has 1");

  Adam two_groups(
      {ParamGroup{{make_param(3), make_param(2)}, {}}, ParamGroup{{make_param(2)}, {}}});
  expect_error<ValueError>([&] { two_groups.load_state_dict(good); },
                           "param_groups.1.params is missing");

  StateDict extra = good;
  extra["param_groups.3.lr"] = scalar_tensor(0.1, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(extra); }, "param_groups.3.lr");

  StateDict unknown = good;
  unknown["state.0.velocity"] = zeros({3}, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(unknown); },
                           "state.0.velocity: 'velocity' is not state of Adam");

  StateDict stray = good;
  stray["lr"] = scalar_tensor(0.1, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(stray); }, "unexpected key 'lr'");

  StateDict negative = good;
  negative["param_groups.0.lr"] = scalar_tensor(-1.0, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(negative); },
                           "param_groups.0: [Adam] invalid lr = -1");

  SGD sgd({make_param(3), make_param(2)});
  expect_error<ValueError>([&] { sgd.load_state_dict(good); },
                           "param_groups.0.dampening is missing (was the state saved by another "
                           "optimizer?)");

  // A failed load changes nothing.
  EXPECT_TRUE(opt.state(c).empty());
  EXPECT_EQ(opt.param_groups()[0].lr(), 1e-3);
}

TEST(OptimStateDict, LoadRestoresGroupOptions) {
  Tensor a = make_param(3);
  SGD src({a}, {.lr = 0.7, .momentum = 0.3});
  Tensor b = make_param(3);
  SGD dst({b});
  dst.load_state_dict(src.state_dict());
  EXPECT_EQ(dst.param_groups()[0].lr(), 0.7);
  EXPECT_EQ(dst.param_groups()[0].get("momentum"), 0.3);
}

// ---- bad input ----------------------------------------------------------------------------

TEST(OptimErrors, BadHyperParameters) {
  Tensor p = make_param(2);
  expect_error<ValueError>([&] { SGD({p}, {.lr = -0.1}); },
                           "[SGD] invalid lr = -0.1 (must be >= 0)");
  expect_error<ValueError>([&] { SGD({p}, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}); },
                           "nesterov momentum requires a momentum and zero dampening");
  expect_error<ValueError>([&] { Adam({p}, {.beta1 = 1.0}); },
                           "invalid beta1 = 1 (must be in [0, 1))");
  expect_error<ValueError>([&] { Adam({p}, {.eps = -1}); }, "invalid eps");
  expect_error<ValueError>([&] { RMSprop({p}, {.alpha = -0.5}); }, "invalid alpha");
  expect_error<ValueError>([&] { Adagrad({p}, {.lr_decay = -1}); }, "invalid lr_decay");
  Adam opt({p});
  expect_error<ValueError>(
      [&] {
        opt.add_param_group({{make_param(2)}, {{"lr", -2}}});
      },
      "invalid lr = -2");
  expect_error<ValueError>(
      [&] {
        opt.add_param_group({{make_param(2)}, {{"momentum", 0.9}}});
      },
      "unknown option 'momentum'");
}

TEST(OptimErrors, BadParameters) {
  Tensor leaf = make_param(3);
  Tensor derived = leaf * 2.0;
  expect_error<ValueError>([&] { SGD({derived}); },
                           "can't optimize a non-leaf tensor (parameter 0 of group 0 comes from "
                           "mul_backward)");
  expect_error<ValueError>(
      [&] {
        SGD({leaf, leaf});
      },
      "appear more than once (parameter 1 of group 0)");
  expect_error<ValueError>([&] { SGD(std::vector<Tensor>{}); }, "empty parameter list");
  expect_error<DTypeError>([&] { SGD({arange(3)}); }, "has dtype int64");
  expect_error<NotImplementedError>([&] { SGD({ones({2}, kFloat16)}); },
                                    "only float32 and float64");
  expect_error<ValueError>([&] { SGD({Tensor()}); }, "undefined tensor");
}

// Which optimizers take CUDA parameters (fused kernels: SGD, Adam, AdamW); the others refuse
// them when they are added (test_cuda_train.cpp checks the error on a GPU). Decided on the
// host, so it is checked here without a device.
TEST(OptimDevices, EveryOptimizerUpdatesCudaParameters) {
  const std::vector<Tensor> ps = {make_param(3)};
  const Device gpu = Device::cuda(0), cpu = Device::cpu();
  SGD sgd(ps);
  Adam adam(ps);
  AdamW adamw(ps);
  RMSprop rms(ps);
  Adagrad ada(ps);
  LBFGS lbfgs(ps);
  for (const Optimizer* o :
       std::initializer_list<const Optimizer*>{&sgd, &adam, &adamw, &rms, &ada, &lbfgs}) {
    EXPECT_TRUE(o->supports_device(gpu)) << o->name();
    EXPECT_TRUE(o->supports_device(Device::cuda(1))) << o->name();
    EXPECT_TRUE(o->supports_device(cpu)) << o->name();
    EXPECT_FALSE(o->supports_device(Device::auto_())) << o->name();
  }
}

// An optimizer that does not say otherwise updates CPU parameters only, and refuses others
// when they are added, naming the parameter and the device.
class CpuOnly final : public Optimizer {
 public:
  explicit CpuOnly(std::vector<Tensor> params) : Optimizer("CpuOnly", {{"lr", 0.1}}) {
    init_groups({ParamGroup{std::move(params), {}}});
  }

 protected:
  void check_options(const GroupOptions&) const override {}
  StateKind state_kind(std::string_view) const override { return StateKind::kUnknown; }
};

TEST(OptimDevices, TheDefaultIsTheCpuOnly) {
  CpuOnly opt({make_param(3)});
  EXPECT_TRUE(opt.supports_device(Device::cpu()));
  EXPECT_FALSE(opt.supports_device(Device::cuda(0)));
}

}  // namespace
}  // namespace tessera::optim
