// LBFGS: Rosenbrock's minimum with the strong-Wolfe search, a quadratic without it, the first
// two iterations against a hand-written two-loop recursion, bitwise resume, and bad input.
#include <gtest/gtest.h>

#include <cmath>

#include "tessera/tessera.h"

namespace tessera::optim {
namespace {

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

Tensor rosenbrock(const Tensor& x) {
  const Tensor a = x.select(0, 0), b = x.select(0, 1);
  return square(1.0 - a) + 100.0 * square(b - square(a));
}

// A closure that evaluates f at the parameters, runs backward and counts its calls.
Closure closure_for(Optimizer& opt, std::function<Tensor()> f, int* calls = nullptr) {
  return [&opt, f, calls] {
    if (calls) ++*calls;
    opt.zero_grad();
    Tensor loss = f();
    loss.backward();
    return loss;
  };
}

const std::vector<double> kA = {1.0, 2.0, 3.0, 0.5}, kB = {1.0, -1.0, 2.0, 0.3};
const std::vector<double> kX0 = {0.5, 0.2, -0.4, 1.0};

// f(x) = sum(0.5 * a * x^2 - b * x), minimized at x = b / a.
Tensor quadratic(const Tensor& x) { return (0.5 * tensor(kA) * x * x - tensor(kB) * x).sum(); }

TEST(OptimLBFGS, FindsTheRosenbrockMinimumWithStrongWolfe) {
  Tensor x = tensor<double>({-1.5, 2.0}).requires_grad_();
  // Tight tolerances: by default the search stops once the loss changes by less than 1e-9.
  LBFGS opt({x}, {.lr = 1,
                  .max_iter = 100,
                  .tolerance_grad = 1e-12,
                  .tolerance_change = 1e-20,
                  .line_search_fn = "strong_wolfe"});
  const Closure closure = closure_for(opt, [&] { return rosenbrock(x); });
  double loss = 0;
  for (int i = 0; i < 5; ++i) loss = opt.step(closure).item<double>();
  EXPECT_NEAR(x.to_vector<double>()[0], 1.0, 1e-6);
  EXPECT_NEAR(x.to_vector<double>()[1], 1.0, 1e-6);
  EXPECT_LT(rosenbrock(x.detach()).item<double>(), 1e-12);
  EXPECT_GE(loss, 0.0);
  EXPECT_GT(opt.state(x).at("func_evals").item<int64_t>(), 10);
}

TEST(OptimLBFGS, SolvesAQuadraticWithoutLineSearch) {
  Tensor x = tensor(kX0).requires_grad_();
  LBFGS opt({x}, {.lr = 1, .max_iter = 50, .tolerance_grad = 1e-12, .tolerance_change = 1e-20});
  opt.step(closure_for(opt, [&] { return quadratic(x); }));
  for (size_t i = 0; i < kA.size(); ++i) EXPECT_NEAR(x.to_vector<double>()[i], kB[i] / kA[i], 1e-9);
}

double dotv(const std::vector<double>& u, const std::vector<double>& v) {
  double s = 0;
  for (size_t i = 0; i < u.size(); ++i) s += u[i] * v[i];
  return s;
}

TEST(OptimLBFGS, FirstTwoIterationsMatchTheTwoLoopRecursion) {
  const double lr = 0.8;
  Tensor x = tensor(kX0).requires_grad_();
  LBFGS opt({x}, {.lr = lr, .max_iter = 2, .max_eval = 10});  // default max_eval 2 stops at 1
  int calls = 0;
  opt.step(closure_for(
      opt, [&] { return quadratic(x); }, &calls));

  const size_t n = kA.size();
  auto grad = [&](const std::vector<double>& v) {
    std::vector<double> g(n);
    for (size_t i = 0; i < n; ++i) g[i] = kA[i] * v[i] - kB[i];
    return g;
  };
  std::vector<double> x0 = kX0, g0 = grad(x0), x1(n), s(n), y(n);
  double l1 = 0;
  for (double v : g0) l1 += std::abs(v);
  const double t0 = std::min(1.0, 1.0 / l1) * lr;  // the first step is scaled by |g|_1
  for (size_t i = 0; i < n; ++i) x1[i] = x0[i] - t0 * g0[i];
  const std::vector<double> g1 = grad(x1);
  for (size_t i = 0; i < n; ++i) {
    s[i] = -t0 * g0[i];
    y[i] = g1[i] - g0[i];
  }
  const double ys = dotv(y, s), rho = 1.0 / ys, h_diag = ys / dotv(y, y);
  std::vector<double> q(n), r(n), x2(n);
  for (size_t i = 0; i < n; ++i) q[i] = -g1[i];
  const double alpha = dotv(s, q) * rho;
  for (size_t i = 0; i < n; ++i) r[i] = h_diag * (q[i] - alpha * y[i]);
  const double beta = dotv(y, r) * rho;
  for (size_t i = 0; i < n; ++i) x2[i] = x1[i] + lr * (r[i] + (alpha - beta) * s[i]);

  const std::vector<double> got = x.to_vector<double>();
  for (size_t i = 0; i < n; ++i) EXPECT_NEAR(got[i], x2[i], 1e-13) << i;
  EXPECT_EQ(calls, 2);  // the last iteration's loss is not evaluated
  EXPECT_EQ(opt.state(x).at("func_evals").item<int64_t>(), 2);
  EXPECT_EQ(opt.state(x).at("n_iter").item<int64_t>(), 2);
  EXPECT_NEAR(opt.state(x).at("ro.0").item<double>(), rho, 1e-12 * std::abs(rho));
}

TEST(OptimLBFGS, StopsAtOnceWhenTheGradientIsSmall) {
  Tensor x = tensor<double>({1.0, 1.0}).requires_grad_();  // the minimum
  LBFGS opt({x});
  int calls = 0;
  opt.step(closure_for(
      opt, [&] { return rosenbrock(x); }, &calls));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1.0, 1.0}));
  EXPECT_FALSE(opt.state(x).count("d"));
}

TEST(OptimLBFGS, ResumeIsBitwiseIdentical) {
  const LBFGSOptions o{.max_iter = 3, .history_size = 4, .line_search_fn = "strong_wolfe"};
  Tensor a = tensor<double>({-1.2, 1.0}).requires_grad_();
  LBFGS straight({a}, o);
  const Closure ca = closure_for(straight, [&] { return rosenbrock(a); });
  for (int i = 0; i < 4; ++i) straight.step(ca);

  Tensor b = tensor<double>({-1.2, 1.0}).requires_grad_();
  LBFGS first({b}, o);
  const Closure cb = closure_for(first, [&] { return rosenbrock(b); });
  for (int i = 0; i < 2; ++i) first.step(cb);
  const StateDict saved = first.state_dict();
  EXPECT_TRUE(saved.count("state.0.old_dirs.0"));
  EXPECT_EQ(saved.at("state.0.d").shape(), Shape{2});

  Tensor c = b.detach().clone().requires_grad_();
  LBFGS resumed({c}, o);
  resumed.load_state_dict(saved);
  const Closure cc = closure_for(resumed, [&] { return rosenbrock(c); });
  for (int i = 0; i < 2; ++i) resumed.step(cc);
  EXPECT_EQ(c.to_vector<double>(), a.to_vector<double>());
  EXPECT_EQ(resumed.state(c).at("func_evals").item<int64_t>(),
            straight.state(a).at("func_evals").item<int64_t>());
}

TEST(OptimLBFGS, WorksAcrossSeveralParameters) {
  Tensor u = tensor<double>({-1.5}).requires_grad_(), v = tensor<double>({2.0}).requires_grad_();
  LBFGS opt({u, v}, {.max_iter = 200,
                     .tolerance_grad = 1e-12,
                     .tolerance_change = 1e-20,
                     .line_search_fn = "strong_wolfe"});
  opt.step(closure_for(opt, [&] { return rosenbrock(cat({u, v})); }));
  EXPECT_NEAR(u.item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(v.item<double>(), 1.0, 1e-6);
}

TEST(OptimLBFGS, BadInput) {
  Tensor x = tensor<double>({1.0, 2.0}).requires_grad_();
  LBFGS opt({x});
  expect_error<ValueError>([&] { opt.step(); }, "[LBFGS.step] needs a closure");
  expect_error<ValueError>([&] { LBFGS({x}, {.line_search_fn = "armijo"}); },
                           "line_search_fn must be \"\" or \"strong_wolfe\", got \"armijo\"");
  expect_error<ValueError>([&] { LBFGS({x}, {.max_iter = 0}); }, "invalid max_iter = 0");
  expect_error<DTypeError>(
      [&] {
        LBFGS({x, tensor<float>({1.f}).requires_grad_()});
      },
      "all parameters must have one dtype");

  LBFGS grouped({tensor<double>({1.0}).requires_grad_()});
  grouped.add_param_group({{tensor<double>({2.0}).requires_grad_()}, {}});
  expect_error<ValueError>([&] { grouped.step([] { return Tensor(); }); },
                           "doesn't support parameter groups");

  Tensor y = tensor<double>({-1.2, 1.0}).requires_grad_();
  LBFGS trained({y}, {.max_iter = 3});
  trained.step(closure_for(trained, [&] { return rosenbrock(y); }));
  StateDict sd = trained.state_dict();
  ASSERT_TRUE(sd.count("state.0.ro.0"));
  sd.erase("state.0.ro.0");
  expect_error<ValueError>([&] { opt.load_state_dict(sd); }, "state.0.ro.0 is missing");
  sd = trained.state_dict();
  sd["state.0.d"] = zeros({3}, kFloat64);
  expect_error<ValueError>([&] { opt.load_state_dict(sd); },
                           "state.0.d has shape (3,) but the parameters have 2 elements in all");
}

}  // namespace
}  // namespace tessera::optim
