// Eager autograd: gradients, accumulation, modes, hooks, custom functions, checkpointing,
// anomaly mode, in-place safety, views, and a million-op chain.
#include <gtest/gtest.h>

#include <cmath>

#include "tessera/tessera.h"

namespace tessera {
namespace {

using autograd::GradOptions;

Tensor f64(std::vector<double> v, Shape s = {}) {
  if (s.empty()) s = {static_cast<int64_t>(v.size())};
  return tensor(v, s);
}

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

void expect_near(const Tensor& t, const std::vector<double>& want, double tol = 1e-9) {
  std::vector<double> got = vals(t);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Autograd, SquareSumGradientAndAccumulation) {
  Tensor x = f64({1, -2, 3}).requires_grad_();
  EXPECT_TRUE(x.is_leaf());
  Tensor y = (x * x).sum();
  EXPECT_FALSE(y.is_leaf());
  EXPECT_EQ(autograd::grad_fn_name(y), "sum_backward");
  y.backward();
  expect_near(x.grad(), {2, -4, 6});
  (x * 3.0).sum().backward();  // accumulates
  expect_near(x.grad(), {5, -1, 9});
}

TEST(Autograd, BroadcastingIsUndone) {
  Tensor a = f64({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  Tensor b = f64({10, 20, 30}).requires_grad_();
  Tensor c = f64({2}, {1}).requires_grad_();
  ((a * b + c) * a).sum().backward();
  // d/da = 2ab + c, d/db = sum_rows a^2, d/dc = sum a
  expect_near(a.grad(), {22, 82, 182, 82, 202, 362});
  expect_near(b.grad(), {17, 29, 45});
  expect_near(c.grad(), {21});
}

TEST(Autograd, NonScalarNeedsGradient) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  EXPECT_NE(error_of([&] { y.backward(); })
                .find("[backward] a gradient can be created implicitly only for scalar outputs; "
                      "output 0 has shape (2,)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              y.backward(f64({1, 2, 3}));
            }).find("[backward] gradient of shape (3,)"),
            std::string::npos);
  y.backward(f64({1, 10}));
  expect_near(x.grad(), {2, 20});
}

TEST(Autograd, ErrorsNameTheCause) {
  Tensor x = f64({1, 2});
  EXPECT_NE(error_of([&] { x.sum().backward(); }).find("does not require grad and has no grad_fn"),
            std::string::npos);
  Tensor w = f64({1, 2}).requires_grad_();
  EXPECT_NE(error_of([&] {
              autograd::grad({(w * w).sum()}, {x});
            }).find("[autograd.grad] input 0 (shape (2,)) does not require grad"),
            std::string::npos);
  Tensor u = f64({3}).requires_grad_();
  EXPECT_NE(error_of([&] { autograd::grad({(w * w).sum()}, {u}); }).find("input 0 is not used"),
            std::string::npos);
  EXPECT_FALSE(autograd::grad({(w * w).sum()}, {u}, {}, {false, false, true})[0].defined());
  Tensor i = tensor(std::vector<int64_t>{1, 2});
  EXPECT_NE(
      error_of([&] {
        i.requires_grad_();
      }).find("[requires_grad_] only floating point tensors can require gradients, got int64"),
      std::string::npos);
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x.exp().sum();
  y.backward();
  EXPECT_NE(error_of([&] { y.backward(); }).find("backward through the graph a second time"),
            std::string::npos);
  Tensor z = x.exp().sum();
  z.backward({}, /*retain_graph=*/true);
  z.backward();
  expect_near(x.grad(), {3 * std::exp(1.0), 3 * std::exp(2.0)});
}

TEST(Autograd, HigherOrderWithCreateGraph) {
  Tensor x = f64({0.5, -1.5}).requires_grad_();
  Tensor y = (x * x * x).sum();
  Tensor g = autograd::grad({y}, {x}, {}, {false, true})[0];  // 3x^2
  expect_near(g, {0.75, 6.75});
  Tensor h = autograd::grad({g.sum()}, {x}, {}, {false, true})[0];  // 6x
  expect_near(h, {3, -9});
  Tensor t = autograd::grad({h.sum()}, {x})[0];  // 6
  expect_near(t, {6, 6});
  // sin to the 4th derivative is sin again
  Tensor s = f64({0.3}).requires_grad_();
  Tensor d = sin(s);
  for (int k = 0; k < 4; ++k) d = autograd::grad({d.sum()}, {s}, {}, {false, true})[0];
  expect_near(d, {std::sin(0.3)});
}

TEST(Autograd, GradModes) {
  Tensor x = f64({1, 2}).requires_grad_();
  {
    autograd::NoGradGuard no_grad;
    EXPECT_FALSE(autograd::is_grad_enabled());
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    {
      autograd::EnableGradGuard on;
      EXPECT_TRUE((x * 2.0).requires_grad());
    }
  }
  {
    autograd::InferenceMode inference;
    EXPECT_FALSE((x * 2.0).requires_grad());
    EXPECT_FALSE(layer_active(Layer::Autograd));  // the funnel skips the layer entirely
  }
  EXPECT_TRUE(autograd::is_grad_enabled());
  Tensor d = (x * 2.0).detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.storage() == (x * 2.0).storage() || d.numel() == 2);
}

TEST(Autograd, HooksAndRetainGrad) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x * 3.0;
  y.retain_grad();
  int calls = 0;
  y.register_hook([&](const Tensor& g) {
    ++calls;
    return g * 2.0;  // doubles what flows on
  });
  const int64_t id = x.register_hook([&](const Tensor&) {
    ++calls;
    return Tensor();
  });
  (y * y).sum().backward();
  EXPECT_EQ(calls, 2);
  expect_near(y.grad(), {12, 24});  // retain_grad keeps the gradient after the other hooks
  expect_near(x.grad(), {36, 72});
  x.remove_hook(id);
  x.set_grad(Tensor());
  (x * 1.0).sum().backward();
  EXPECT_EQ(calls, 2);
  expect_near(x.grad(), {1, 1});
}

struct Cube : autograd::Function<Cube> {
  static std::string name() { return "cube"; }
  static std::vector<Tensor> forward(autograd::FunctionCtx& ctx, const std::vector<Tensor>& in) {
    ctx.save_for_backward({in[0]});
    return {in[0] * in[0] * in[0]};
  }
  static std::vector<Tensor> backward(autograd::FunctionCtx& ctx, const std::vector<Tensor>& g) {
    Tensor x = ctx.saved()[0];
    return {g[0] * x * x * 3.0};
  }
};

// exp saving its own output: the saved output must carry history for second derivatives.
struct ExpSavingOutput : autograd::Function<ExpSavingOutput> {
  static std::string name() { return "exp_saving_output"; }
  static std::vector<Tensor> forward(autograd::FunctionCtx& ctx, const std::vector<Tensor>& in) {
    Tensor y = exp(in[0]);
    ctx.save_for_backward({y});
    return {y};
  }
  static std::vector<Tensor> backward(autograd::FunctionCtx& ctx, const std::vector<Tensor>& g) {
    return {g[0] * ctx.saved()[0]};
  }
};

TEST(Autograd, CustomFunctionSavingItsOutputHasSecondDerivatives) {
  Tensor x = f64({0.5, -1}).requires_grad_();
  Tensor y = ExpSavingOutput::apply({x})[0];
  Tensor g = autograd::grad({y.sum()}, {x}, {}, {.create_graph = true})[0];
  expect_near(g, {std::exp(0.5), std::exp(-1.0)});
  Tensor gg = autograd::grad({g.sum()}, {x})[0];  // d2/dx2 exp = exp
  expect_near(gg, {std::exp(0.5), std::exp(-1.0)});
}

TEST(Autograd, CustomFunctions) {
  Tensor x = f64({1, -2}).requires_grad_();
  Tensor y = Cube::apply({x})[0];
  EXPECT_EQ(autograd::grad_fn_name(y), "cube_backward");
  y.sum().backward();
  expect_near(x.grad(), {3, 12});
  // a lambda-defined function returning a wrong shape is caught
  auto bad = autograd::apply_function(
      "bad",
      [](autograd::FunctionCtx&, const std::vector<Tensor>& in) {
        return std::vector<Tensor>{in[0] * 2.0};
      },
      [](autograd::FunctionCtx&, const std::vector<Tensor>&) {
        return std::vector<Tensor>{f64({1, 2, 3})};
      },
      {x});
  EXPECT_NE(error_of([&] { bad[0].sum().backward(); })
                .find("[bad_backward] backward returned a gradient of shape (3,) for input 0 of "
                      "shape (2,)"),
            std::string::npos);
}

TEST(Autograd, CheckpointRecomputes) {
  auto block = [](const std::vector<Tensor>& in) {
    return std::vector<Tensor>{tanh(matmul(in[0], in[1])).sum({1})};
  };
  Tensor x = randn({4, 3}, kFloat64).requires_grad_();
  Tensor w = randn({3, 5}, kFloat64).requires_grad_();
  block({x, w})[0].sum().backward();
  Tensor gx = x.grad(), gw = w.grad();
  x.set_grad(Tensor());
  w.set_grad(Tensor());
  int runs = 0;
  auto counted = [&](const std::vector<Tensor>& in) {
    ++runs;
    return block(in);
  };
  autograd::checkpoint(counted, {x, w})[0].sum().backward();
  EXPECT_EQ(runs, 2);  // forward, then recomputation in backward
  expect_near(x.grad(), vals(gx), 1e-12);
  expect_near(w.grad(), vals(gw), 1e-12);
}

TEST(Autograd, AnomalyModeNamesTheOp) {
  Tensor x = f64({0, 1}).requires_grad_();
  autograd::AnomalyMode anomaly;
  Tensor y = sqrt(x).sum();
  EXPECT_NE(error_of([&] { y.backward(); })
                .find("[sqrt_backward] anomaly mode: the backward of 'sqrt' produced a NaN or Inf "
                      "gradient"),
            std::string::npos);
}

TEST(Autograd, InPlaceOnSavedTensorIsCaught) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x.exp();  // exp saves its output
  Tensor z = (y * 1.0).sum();
  y.add_(1.0);
  Tensor w = x.exp();
  EXPECT_NE(error_of([&] { (y.sum() + w.sum()).backward(); })
                .find("[exp_backward] a tensor of shape (2,) saved for its backward was modified "
                      "in place by copy_"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              x.add_(1.0);
            }).find("[copy_] a leaf tensor that requires grad is used in an in-place operation"),
            std::string::npos);
  {
    autograd::NoGradGuard no_grad;  // optimizers update leaves like this
    x.sub_(0.5);
  }
  expect_near(x.detach(), {0.5, 1.5});
}

TEST(Autograd, InPlaceRebasesHistory) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  y.mul_(x);  // y = 2x * x
  y.add_(1.0);
  y.sum().backward();
  expect_near(x.grad(), {4, 8});
}

TEST(Autograd, InPlaceThroughViewsReachesTheBase) {
  Tensor x = f64({1, 2}).requires_grad_();
  Tensor w = f64({1, 2, 3, 4});
  Tensor buf = zeros({4}, kFloat64);
  buf.slice(0, 1, 3).copy_(x * x);  // buf = [0, x0^2, x1^2, 0]
  EXPECT_TRUE(buf.requires_grad());
  (buf * w).sum().backward();
  expect_near(x.grad(), {2 * 1 * 2, 2 * 2 * 3});
  // a view modified in place, then used: its gradient reaches the base's inputs
  Tensor a = f64({1, 2, 3}).requires_grad_();
  Tensor b = a * 1.0;
  Tensor v = b.slice(0, 0, 2);
  v.mul_(10.0);
  (b * f64({1, 1, 1})).sum().backward();
  expect_near(a.grad(), {10, 10, 1});
  // a view made before another view of the same base was written in place sees the write
  Tensor e = f64({1, 2, 3}).requires_grad_();
  Tensor base = e * 1.0;
  Tensor v1 = base.slice(0, 0, 2), v2 = base.slice(0, 1, 3);
  v1.mul_(10.0);
  v2.sum().backward();
  expect_near(e.grad(), {0, 10, 1});
  // index_put_ through Python-style indexing
  Tensor c = f64({5, 6, 7}).requires_grad_();
  Tensor d = zeros({3}, kFloat64);
  d.index_put_({Slice(0, 2)}, c.slice(0, 1, 3) * 2.0);
  d.sum().backward();
  expect_near(c.grad(), {0, 2, 2});
}

TEST(Autograd, MillionOpChainNeitherRecursesNorOverflows) {
  Tensor x = f64({1.5}).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 1000000; ++i) y = -y;
  y.sum().backward();
  expect_near(x.grad(), {1});
  y = Tensor();  // frees a million nodes without recursion
  SUCCEED();
}

// A 3-layer MLP's gradients against central differences on every parameter.
TEST(Autograd, MlpMatchesFiniteDifferences) {
  Generator gen(7);
  Tensor x = randn({5, 4}, kFloat64, &gen);
  Tensor target = randn({5, 2}, kFloat64, &gen);
  std::vector<Tensor> params = {randn({4, 8}, kFloat64, &gen), randn({8}, kFloat64, &gen),
                                randn({8, 6}, kFloat64, &gen), randn({6}, kFloat64, &gen),
                                randn({6, 2}, kFloat64, &gen), randn({2}, kFloat64, &gen)};
  auto loss = [&](const std::vector<Tensor>& p) {
    Tensor h = tanh(matmul(x, p[0]) + p[1]);
    h = relu(matmul(h, p[2]) + p[3]);
    Tensor out = matmul(h, p[4]) + p[5];
    return square(out - target).mean();
  };
  for (Tensor& p : params) p.requires_grad_();
  loss(params).backward();
  autograd::NoGradGuard no_grad;
  for (size_t k = 0; k < params.size(); ++k) {
    std::vector<double> g = vals(params[k].grad());
    for (int64_t i = 0; i < params[k].numel(); ++i) {
      std::vector<Tensor> plus, minus;
      for (const Tensor& p : params) {
        plus.push_back(p.detach().clone());
        minus.push_back(p.detach().clone());
      }
      plus[k].data_ptr<double>()[i] += 1e-6;
      minus[k].data_ptr<double>()[i] -= 1e-6;
      const double fd = (loss(plus).item<double>() - loss(minus).item<double>()) / 2e-6;
      EXPECT_NEAR(g[i], fd, 1e-6) << "param " << k << " element " << i;
    }
  }
}

}  // namespace
}  // namespace tessera
