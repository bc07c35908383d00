// Function transforms: grad, value_and_grad, vjp, jvp, vmap, jacrev, jacfwd, hessian, their
// compositions, and a table-driven pass over every op: jacfwd == jacrev (forward mode against
// reverse mode) and vmap == a loop over the examples.
#include <cmath>
#include <set>

#include "op_table.h"

namespace tessera::test {
namespace {

Tensor f64v(std::vector<double> v, Shape s = {}) {
  if (s.empty()) s = {static_cast<int64_t>(v.size())};
  return tensor(v, s);
}

void expect_close(const Tensor& got, const Tensor& want, double tol = 1e-9) {
  ASSERT_EQ(got.shape(), want.shape());
  std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(g[i]) && std::isnan(w[i])) continue;
    EXPECT_NEAR(g[i], w[i], tol) << "at " << i;
  }
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

TEST(Transforms, GradOfGradAndValueAndGrad) {
  TensorFn f = [](const Tensor& x) { return (x * x * x).sum(); };
  Tensor x = f64v({1, -2});
  expect_close(grad(f)(x), f64v({3, 12}));
  TensorFn g1 = [f](const Tensor& x) { return grad(f)(x).sum(); };
  expect_close(grad(g1)(x), f64v({6, -12}));
  auto vg = value_and_grad(
      [](const std::vector<Tensor>& a) { return std::vector<Tensor>{(a[0] * a[1]).sum()}; },
      {0, 1});
  auto [v, gs] = vg({x, f64v({3, 4})});
  EXPECT_DOUBLE_EQ(v.item<double>(), -5);
  expect_close(gs[0], f64v({3, 4}));
  expect_close(gs[1], x);
}

// The classic perturbation-confusion test: d/dx [x * d/dy (x + y)] = 1.
TEST(Transforms, NestedLevelsStayApart) {
  TensorFn outer = [](const Tensor& x) {
    TensorFn inner = [&x](const Tensor& y) { return (x + y).sum(); };
    return (x * grad(inner)(f64v({1.0}))).sum();
  };
  expect_close(grad(outer)(f64v({2.0})), f64v({1.0}));
  // d/dx [d/dy (x * y)] = 1 needs the inner gradient to stay differentiable in x
  TensorFn outer2 = [](const Tensor& x) {
    TensorFn inner = [&x](const Tensor& y) { return (x * y).sum(); };
    return grad(inner)(f64v({5.0})).sum();
  };
  expect_close(grad(outer2)(f64v({2.0})), f64v({1.0}));
  // the same with forward mode inside reverse mode
  TensorFn outer3 = [](const Tensor& x) {
    auto [v, t] = jvp([&x](const std::vector<Tensor>& y) { return std::vector<Tensor>{x + y[0]}; },
                      {f64v({1.0})}, {f64v({1.0})});
    return (x * t[0]).sum();
  };
  expect_close(grad(outer3)(f64v({2.0})), f64v({1.0}));
}

TEST(Transforms, JvpAndVjp) {
  Tensor x = f64v({0.3, -1.2, 2.0});
  auto [outs, tans] =
      jvp([](const std::vector<Tensor>& a) { return std::vector<Tensor>{sin(a[0]) * a[0]}; }, {x},
          {f64v({1, 0, 2})});
  std::vector<double> xv = x.to_vector<double>();
  std::vector<double> t = {1, 0, 2};
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(tans[0].to_vector<double>()[i], (std::cos(xv[i]) * xv[i] + std::sin(xv[i])) * t[i],
                1e-12);
  auto [ys, pull] =
      vjp([](const std::vector<Tensor>& a) { return std::vector<Tensor>{a[0] * a[1]}; },
          {x, f64v({1, 2, 3})});
  std::vector<Tensor> g = pull({f64v({1, 1, 1})});
  expect_close(g[0], f64v({1, 2, 3}));
  expect_close(g[1], x);
  expect_close(pull({f64v({2, 2, 2})})[1], x * 2.0);  // callable again
}

TEST(Transforms, HessianOfRosenbrockMatchesClosedForm) {
  TensorFn rosen = [](const Tensor& v) {
    Tensor x = v.slice(0, 0, 2), y = v.slice(0, 1, 3);
    return (square(y - square(x)) * 100.0 + square(1.0 - x)).sum();
  };
  Tensor p = f64v({0.5, -0.3, 1.2});
  Tensor h = hessian(rosen)(p);
  // closed form for n = 3
  const double x0 = 0.5, x1 = -0.3, x2 = 1.2;
  std::vector<double> want = {1200 * x0 * x0 - 400 * x1 + 2,
                              -400 * x0,
                              0,
                              -400 * x0,
                              200 + 1200 * x1 * x1 - 400 * x2 + 2,
                              -400 * x1,
                              0,
                              -400 * x1,
                              200};
  expect_close(h, f64v(want, {3, 3}), 1e-8);
  expect_close(jacrev(jacrev(rosen))(p), h, 1e-8);
  // forward over reverse through rules that read their outputs (exp, tanh)
  TensorFn g = [](const Tensor& v) { return (exp(v) * 0.5 + tanh(v)).sum(); };
  Tensor hg = hessian(g)(p);
  std::vector<double> pv = p.to_vector<double>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const double t = std::tanh(pv[i]);
      const double want = i != j ? 0 : 0.5 * std::exp(pv[i]) - 2 * t * (1 - t * t);
      EXPECT_NEAR(hg.to_vector<double>()[i * 3 + j], want, 1e-10);
    }
}

TEST(Transforms, PerExampleGradientsOfALinearModel) {
  Generator gen(3);
  Tensor w = randn({4}, kFloat64, &gen), xs = randn({6, 4}, kFloat64, &gen),
         ys = randn({6}, kFloat64, &gen);
  TensorsFn loss = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{square(dot(a[0], a[1]) - a[2])};
  };
  std::vector<Tensor> per = vmap(grad(loss, {0}), {std::nullopt, 0, 0})({w, xs, ys});
  ASSERT_EQ(per[0].shape(), (Shape{6, 4}));
  for (int64_t i = 0; i < 6; ++i)
    expect_close(per[0].select(0, i), grad(loss, {0})({w, xs.select(0, i), ys.select(0, i)})[0],
                 1e-12);
}

TEST(Transforms, VmapNestsAndMovesAxes) {
  Tensor a = randn({3, 4, 5}, kFloat64);
  TensorFn rowsum = [](const Tensor& r) { return (r * r).sum(); };
  Tensor got = vmap(vmap(rowsum))(a);
  expect_close(got, (a * a).sum({2}));
  Tensor t = vmap([](const Tensor& r) { return r * 2.0; }, 1, 1)(a);
  expect_close(t, a * 2.0);
  // an output that does not depend on the input is broadcast over the batch
  Tensor c = vmap([](const Tensor&) { return f64v({1, 2}); })(a);
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  // mismatched in_axes and sizes
  TensorsFn two = [](const std::vector<Tensor>& v) { return std::vector<Tensor>{v[0] + v[1]}; };
  EXPECT_NE(error_of([&] {
              vmap(two, {0})({a, a});
            }).find("[vmap] in_axes has 1 entries for 2 inputs"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              vmap(two, {0, 1})({a, a});
            }).find("[vmap] inputs have different sizes along in_axes: 3 and 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              vmap(two, {0, 3})({a, a});
            }).find("[vmap] in_axes[1] = 3 is out of range"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              vmap([](const Tensor& r) { return f64v({r.sum().item<double>()}); })(a);
            }).find("inside vmap"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              vmap([](const Tensor& r) { return zeros({4, 5}, kFloat64).copy_(r); })(a);
            }).find("[copy_] vmap: cannot write a batched value into an unbatched tensor in place"),
            std::string::npos);
  // writing into a batched tensor is fine
  Tensor w = vmap([](const Tensor& r) {
    Tensor c = r * 1.0;
    c.slice(0, 0, 1).copy_(r.slice(0, 1, 2));
    return c;
  })(a);
  expect_close(w.slice(1, 0, 1), a.slice(1, 1, 2));
}

TEST(Transforms, GradOfJvpReachesTheLeafPrimal) {
  // d/dx [jvp of sum(u^2) at x along ones] = d/dx sum(2x) = 2: the jvp's alias of the leaf x
  // must keep x's gradient accumulator alive.
  TensorFn outer = [](const Tensor& x) {
    auto [v, t] = jvp(
        [](const std::vector<Tensor>& u) { return std::vector<Tensor>{(u[0] * u[0]).sum()}; },
        {x}, {ones_like(x)});
    return t[0];
  };
  Tensor x = tensor(std::vector<double>{1.0, 2.0, 3.0});
  EXPECT_EQ(grad(outer)(x).to_vector<double>(), (std::vector<double>{2, 2, 2}));
}

TEST(Transforms, JacobiansAgreeAndComposeWithVmap) {
  TensorFn f = [](const Tensor& x) {
    return tanh(matmul(x.reshape({2, 2}), x.reshape({2, 2}))).flatten() * x;
  };
  Tensor x = f64v({0.1, 0.2, -0.3, 0.4});
  Tensor jr = jacrev(f)(x), jf = jacfwd(f)(x);
  EXPECT_EQ(jr.shape(), (Shape{4, 4}));
  expect_close(jr, jf, 1e-12);
  Tensor xs = randn({3, 4}, kFloat64);
  Tensor batched = vmap(jacrev(f))(xs);
  for (int64_t i = 0; i < 3; ++i)
    expect_close(batched.select(0, i), jacfwd(f)(xs.select(0, i)), 1e-12);
}

// ---- table-driven: every entry's float64 samples --------------------------------------------

bool has_f64(const OpEntry& e) {
  return std::find(e.dtypes.begin(), e.dtypes.end(), kFloat64) != e.dtypes.end();
}

bool small_float_inputs(const Sample& s) {
  for (const Tensor& t : s.inputs)
    if (t.numel() > 40) return false;
  return !s.inputs.empty();
}

// Forward-mode Jacobian columns against reverse-mode rows, on the first floating input.
TEST(Transforms, TableJvpMatchesVjpJacobian) {
  int checked = 0;
  for (const OpEntry& e : all_entries()) {
    if (!has_f64(e) || registry().get(e.prim).has(kNonDifferentiable)) continue;
    for (const Sample& s : e.samples(kFloat64)) {
      if (!small_float_inputs(s) || s.inputs[0].dtype() != kFloat64) continue;
      if (is_selection(e.prim) && has_ties_or_nan(s.inputs[0])) continue;
      Tensor out;
      try {
        out = e.op(s.inputs);
      } catch (const Error&) {
        continue;
      }
      if (out.dtype() != kFloat64 || out.numel() == 0 || s.inputs[0].numel() == 0) continue;
      TensorFn f = [&](const Tensor& x) {
        std::vector<Tensor> in = s.inputs;
        in[0] = x;
        return e.op(in);
      };
      SCOPED_TRACE(e.prim + " [" + s.label + "]");
      expect_close(jacfwd(f)(s.inputs[0]), jacrev(f)(s.inputs[0]), 1e-9);
      ++checked;
    }
  }
  EXPECT_GT(checked, 80);
}

// vmap over a batch of three examples against a loop, every input mapped along dim 0.
TEST(Transforms, TableVmapMatchesLoop) {
  int checked = 0;
  for (const OpEntry& e : all_entries()) {
    const Primitive& p = registry().get(e.prim);
    // In-place writes of a batched value into a fresh unbatched tensor are an error under
    // vmap (as in functorch); VmapNestsAndMovesAxes checks that error.
    if (!has_f64(e) || p.has(kDynamicShape) || p.has(kRandom) || p.has(kMutatesInput0)) continue;
    for (const Sample& s : e.samples(kFloat64)) {
      if (s.inputs.empty() || s.inputs[0].numel() > 1000) continue;
      try {
        e.op(s.inputs);
      } catch (const Error&) {
        continue;
      }
      // Data inputs are mapped; 0-d and integer inputs may be parameters read with item()
      // (dims, p, ...) and are shared by every example.
      std::vector<std::vector<Tensor>> examples(3);
      std::vector<Tensor> batched;
      std::vector<std::optional<int64_t>> axes;
      for (size_t i = 0; i < s.inputs.size(); ++i) {
        const Tensor& t = s.inputs[i];
        const bool mapped = i == 0 || (t.dtype() == kFloat64 && t.dim() > 0);
        std::vector<Tensor> ex;
        for (int b = 0; b < 3; ++b) {
          Tensor v = t.dtype() == kFloat64 && b > 0 && mapped ? t * (1.0 - 0.2 * b) : t;
          examples[b].push_back(v);
          ex.push_back(v);
        }
        batched.push_back(mapped ? stack(ex, 0) : t);
        axes.push_back(mapped ? std::optional<int64_t>(0) : std::nullopt);
      }
      SCOPED_TRACE(e.prim + " [" + s.label + "]");
      TensorsFn f = [&](const std::vector<Tensor>& in) { return std::vector<Tensor>{e.op(in)}; };
      Tensor got;
      try {
        got = vmap(f, axes)(batched)[0];
      } catch (const Error& err) {
        ADD_FAILURE() << err.what();
        continue;
      }
      std::vector<Tensor> loop;
      for (int b = 0; b < 3; ++b) loop.push_back(e.op(examples[b]));
      Tensor want = stack(loop, 0);
      EXPECT_TRUE(close(got, to_ref(want), default_tolerance(want.dtype())));
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
}

// Reverse mode through the engine (public ops, composites included) against differences.
TEST(Transforms, TableGradcheckThroughTheEngine) {
  int checked = 0;
  for (const OpEntry& e : all_entries()) {
    if (!has_f64(e) || registry().get(e.prim).has(kNonDifferentiable)) continue;
    for (const Sample& s : e.samples(kFloat64)) {
      if (!small_float_inputs(s) || (is_selection(e.prim) && has_ties_or_nan(s.inputs[0])))
        continue;
      std::vector<Tensor> in;
      std::vector<size_t> diff;
      for (size_t i = 0; i < s.inputs.size(); ++i) {
        in.push_back(s.inputs[i].detach());
        if (in[i].dtype() == kFloat64 && in[i].numel() > 0) {
          in[i].requires_grad_();
          diff.push_back(i);
        }
      }
      Tensor out;
      try {
        out = e.op(in);
      } catch (const Error&) {
        continue;
      }
      if (diff.empty() || !out.requires_grad() || out.numel() == 0) continue;
      SCOPED_TRACE(e.prim + " [" + s.label + "]");
      Tensor v = random_tensor(out.shape(), kFloat64, -1, 1, 5);
      std::vector<Tensor> wrt;
      for (size_t i : diff) wrt.push_back(in[i]);
      std::vector<Tensor> g = autograd::grad({out}, wrt, {v}, {false, false, true});
      autograd::NoGradGuard no_grad;
      for (size_t k = 0; k < diff.size(); ++k) {
        const Tensor& x = s.inputs[diff[k]];
        if (!g[k].defined()) continue;  // a parameter the op reads as a value (e.g. norm's p)
        std::vector<double> gv = g[k].to_vector<double>();
        for (int64_t j = 0; j < x.numel(); ++j) {
          auto eval = [&](double d) {
            std::vector<Tensor> args = s.inputs;
            Tensor c = x.contiguous().clone();
            c.data_ptr<double>()[j] += d;
            args[diff[k]] = c.reshape(x.shape());
            return (e.op(args) * v).sum().item<double>();
          };
          const double fd = (eval(1e-6) - eval(-1e-6)) / 2e-6;
          const double fd_fine = (eval(1e-7) - eval(-1e-7)) / 2e-7;
          // No reference where the differences do not converge (kinks, NaN outputs).
          if (std::isnan(fd) || std::abs(fd - fd_fine) > 1e-4 + 1e-3 * std::abs(fd)) continue;
          EXPECT_NEAR(gv[j], fd, 1e-5 + 1e-4 * std::abs(fd))
              << "input " << diff[k] << " element " << j;
        }
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 80);
}

// Second derivatives through the engine: d/dx <u, grad_x <v, op(x)>> (create_graph) against
// central differences of the first-order gradient, for every differentiable primitive.
TEST(Transforms, TableGradgradcheck) {
  int checked = 0;
  std::set<std::string> prims;
  for (const OpEntry& e : all_entries()) {
    if (!has_f64(e) || registry().get(e.prim).has(kNonDifferentiable)) continue;
    for (const Sample& s : e.samples(kFloat64)) {
      if (!small_float_inputs(s) || s.inputs[0].dtype() != kFloat64 || s.inputs[0].numel() == 0)
        continue;
      if (is_selection(e.prim) && has_ties_or_nan(s.inputs[0])) continue;
      // std of one element sits at sqrt's singularity (zero variance): no second derivative.
      if (e.prim == "std" && s.inputs[0].numel() == 1) continue;
      Tensor out0;
      try {
        out0 = e.op(s.inputs);
      } catch (const Error&) {
        continue;
      }
      if (out0.dtype() != kFloat64 || out0.numel() == 0) continue;
      const Tensor v = random_tensor(out0.shape(), kFloat64, -1, 1, 7);
      const Tensor u = random_tensor(s.inputs[0].shape(), kFloat64, -1, 1, 8);
      // s(x) = <u, grad_x <v, op(x)>>, and its gradient when create_graph is asked.
      auto first = [&](const Tensor& x, bool create) {
        std::vector<Tensor> in = s.inputs;
        in[0] = x.detach().requires_grad_();
        Tensor out = e.op(in);
        if (!out.requires_grad()) return std::pair<Tensor, Tensor>{};
        Tensor g = autograd::grad({out}, {in[0]}, {v}, {false, create, true})[0];
        return std::pair<Tensor, Tensor>{in[0], g};
      };
      auto [x, g] = first(s.inputs[0], true);
      if (!g.defined() || !g.requires_grad()) continue;  // linear in x: nothing second-order
      Tensor hu = autograd::grad({(g * u).sum()}, {x}, {}, {false, false, true})[0];
      if (!hu.defined()) continue;
      SCOPED_TRACE(e.prim + " [" + s.label + "]");
      std::vector<double> got = hu.to_vector<double>();
      const Tensor xc = s.inputs[0].contiguous();
      for (int64_t j = 0; j < xc.numel(); j += std::max<int64_t>(1, xc.numel() / 12)) {
        auto at = [&](double d) {
          Tensor c = xc.clone();
          c.data_ptr<double>()[j] += d;
          Tensor gj = first(c.reshape(xc.shape()), false).second;
          return (gj * u).sum().item<double>();
        };
        const double fd = (at(1e-6) - at(-1e-6)) / 2e-6, fine = (at(1e-7) - at(-1e-7)) / 2e-7;
        if (std::isnan(fd) || std::abs(fd - fine) > 1e-4 + 1e-3 * std::abs(fd)) continue;
        EXPECT_NEAR(got[j], fd, 1e-4 + 1e-3 * std::abs(fd)) << "element " << j;
      }
      prims.insert(e.prim);
      ++checked;
    }
  }
  std::printf("[gradgrad] %zu primitives checked in %d samples\n", prims.size(), checked);
  EXPECT_GE(prims.size(), 35u);  // the others are linear in their input: no second order
}

}  // namespace
}  // namespace tessera::test
