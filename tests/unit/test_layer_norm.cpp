// layer_norm and layer_norm_backward: the op table entries (float64 loop references over every
// float dtype, 1 and 2 normalized dims, non-contiguous and empty inputs, errors; the rule
// checker of test_rules.cpp takes its vjp / jvp / batch samples from here) and focused tests:
// gradients against loops and central differences, LayerNorm with and without affine, double
// backward, vmap and jvp through the public API, the statistics outputs, and the composite
// formula the fused primitive replaced.
#include <cmath>

#include "op_table.h"
#include "tessera/autograd/transforms.h"
#include "tessera/runtime/profiler.h"
#include "test_nn_util.h"

namespace tessera::test {
namespace {

namespace F = nn::functional;

// ---- float64 loop references ------------------------------------------------------------

struct RowsOf {
  int64_t rows = 1, n = 1;
};
RowsOf rows_of(const Shape& s, int64_t k) {
  RowsOf r;
  for (size_t d = 0; d < s.size(); ++d)
    (static_cast<int64_t>(d) < static_cast<int64_t>(s.size()) - k ? r.rows : r.n) *= s[d];
  return r;
}

struct Stats {
  std::vector<double> mean, rstd;
};
Stats ref_stats(const std::vector<double>& x, RowsOf g, double eps) {
  Stats s;
  for (int64_t r = 0; r < g.rows; ++r) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < g.n; ++i) m += x[r * g.n + i];
    m /= static_cast<double>(g.n);
    for (int64_t i = 0; i < g.n; ++i) v += (x[r * g.n + i] - m) * (x[r * g.n + i] - m);
    s.mean.push_back(m);
    s.rstd.push_back(1 / std::sqrt(v / static_cast<double>(g.n) + eps));
  }
  return s;
}

// y of rows; w and b empty when absent.
std::vector<double> ref_forward(const std::vector<double>& x, const std::vector<double>& w,
                                const std::vector<double>& b, RowsOf g, double eps) {
  const Stats s = ref_stats(x, g, eps);
  std::vector<double> y(x.size());
  for (int64_t r = 0; r < g.rows; ++r)
    for (int64_t i = 0; i < g.n; ++i) {
      double v = (x[r * g.n + i] - s.mean[r]) * s.rstd[r];
      if (!w.empty()) v *= w[i];
      if (!b.empty()) v += b[i];
      y[r * g.n + i] = v;
    }
  return y;
}

struct Grads {
  std::vector<double> dx, dw, db;
};
// The backward with the given (independent) mean and rstd.
Grads ref_backward(const std::vector<double>& dy, const std::vector<double>& x,
                   const std::vector<double>& mean, const std::vector<double>& rstd,
                   const std::vector<double>& w, RowsOf g) {
  Grads out{std::vector<double>(x.size()), std::vector<double>(static_cast<size_t>(g.n)),
            std::vector<double>(static_cast<size_t>(g.n))};
  for (int64_t r = 0; r < g.rows; ++r) {
    double sg = 0, sgx = 0;
    auto xhat = [&](int64_t i) { return (x[r * g.n + i] - mean[r]) * rstd[r]; };
    auto gi = [&](int64_t i) { return dy[r * g.n + i] * (w.empty() ? 1.0 : w[i]); };
    for (int64_t i = 0; i < g.n; ++i) {
      sg += gi(i);
      sgx += gi(i) * xhat(i);
      out.dw[i] += dy[r * g.n + i] * xhat(i);
      out.db[i] += dy[r * g.n + i];
    }
    const double n = static_cast<double>(g.n);
    for (int64_t i = 0; i < g.n; ++i)
      out.dx[r * g.n + i] = rstd[r] * (gi(i) - sg / n - xhat(i) * sgx / n);
  }
  return out;
}

// ---- op table entries ---------------------------------------------------------------------

// The last input of a sample says how to call: {ndim, affine (0 none, 1 weight, 2 both),
// large eps (0/1)} for layer_norm; {ndim, weight (0 none, 1 given, 2 with its gradients)} for
// layer_norm_backward.
Tensor cfg(std::vector<int64_t> v) {
  return tensor(std::vector<double>(v.begin(), v.end()), Shape{static_cast<int64_t>(v.size())})
      .to(kInt64);
}
std::vector<int64_t> cfg_of(const Tensor& t) {
  std::vector<int64_t> v;
  for (double d : t.to(kFloat64).to_vector<double>()) v.push_back(static_cast<int64_t>(d));
  return v;
}
double eps_of(int64_t large) { return large ? 0.5 : 1e-5; }

Shape row_of(const Shape& s, int64_t k) { return Shape(s.end() - k, s.end()); }

Sample ln_sample(std::string label, Tensor x, int64_t k, int64_t affine, DType dt, uint64_t seed,
                 int64_t large_eps = 0) {
  const Shape row = row_of(x.shape(), k);
  return {std::move(label),
          {std::move(x), random_tensor(row, dt, 0.5, 1.5, seed),
           random_tensor(row, dt, -1, 1, seed + 1), cfg({k, affine, large_eps})}};
}

std::vector<Sample> layer_norm_samples(DType dt) {
  Tensor constant = full({3, 5}, 0.75, dt);
  Tensor wide = noncontiguous({8, 6}, dt, -2, 2, 60).slice(1, 0, std::nullopt, 2);  // (8, 3)
  return {
      ln_sample("1-d", random_tensor({7}, dt, -2, 2, 41), 1, 2, dt, 42),
      ln_sample("rows", random_tensor({3, 5}, dt, -2, 2, 43), 1, 2, dt, 44),
      ln_sample("2 normalized dims", random_tensor({2, 3, 4}, dt, -2, 2, 45), 2, 2, dt, 46),
      ln_sample("all dims normalized", random_tensor({3, 4}, dt, -2, 2, 47), 2, 2, dt, 48),
      ln_sample("weight only", random_tensor({4, 6}, dt, -2, 2, 49), 1, 1, dt, 50),
      ln_sample("no affine", random_tensor({4, 6}, dt, -2, 2, 51), 1, 0, dt, 52),
      ln_sample("non-contiguous", noncontiguous({5, 6}, dt, -2, 2, 53), 1, 2, dt, 54),
      ln_sample("strided rows", wide, 1, 2, dt, 55),
      ln_sample("empty", random_tensor({0, 4}, dt, -2, 2, 56), 1, 2, dt, 57),
      ln_sample("long rows", random_tensor({3, 1100}, dt, 3, 5, 58), 1, 2, dt, 59),
      ln_sample("many rows", random_tensor({700, 64}, dt, -2, 2, 61), 1, 2, dt, 62),
      ln_sample("constant rows", constant, 1, 2, dt, 63),
      ln_sample("large eps", random_tensor({3, 4}, dt, -1, 1, 64), 1, 2, dt, 65, 1),
  };
}

Tensor run_layer_norm(const std::vector<Tensor>& in) {
  const auto c = cfg_of(in[3]);
  return std::get<0>(native_layer_norm(in[0], c[0], c[1] > 0 ? in[1] : Tensor(),
                                       c[1] > 1 ? in[2] : Tensor(), eps_of(c[2])));
}

std::vector<double> ref_or_empty(const Ref& r, bool used) {
  return used ? r.data : std::vector<double>{};
}

Tolerance norm_tolerance(DType dt) {
  // float32 rows are summed in float lanes: rounding of the mean shows in y relative to the
  // row's spread, not to each element.
  if (dt == kFloat32) return {1e-5, 1e-5};
  return default_tolerance(dt);
}

OpEntry layer_norm_entry() {
  OpEntry e;
  e.prim = "layer_norm";
  e.dtypes = kFloatDTypes;
  e.samples = layer_norm_samples;
  e.op = run_layer_norm;
  e.reference = [](const std::vector<Ref>& in, DType) {
    const std::vector<double> c(in[3].data.begin(), in[3].data.end());
    const auto k = static_cast<int64_t>(c[0]);
    const RowsOf g = rows_of(in[0].shape, k);
    Ref out{in[0].shape, {}, {}};
    out.data = ref_forward(in[0].data, ref_or_empty(in[1], c[1] > 0), ref_or_empty(in[2], c[1] > 1),
                           g, eps_of(static_cast<int64_t>(c[2])));
    return out;
  };
  e.tolerance = norm_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  const auto z = [](Shape s, DType dt = kFloat32) { return zeros(std::move(s), dt); };
  e.errors = {
      expect_error<DTypeError>("integer input", "layer_norm",
                               [z] {
                                 native_layer_norm(z({2, 3}, kInt64), 1);
                               }),
      expect_error<ShapeError>("no normalized dims", "layer_norm",
                               [z] {
                                 native_layer_norm(z({2, 3}), 0);
                               }),
      expect_error<ShapeError>("more dims than the input", "layer_norm",
                               [z] {
                                 native_layer_norm(z({2, 3}), 3);
                               }),
      expect_error<ShapeError>("weight of another shape", "layer_norm",
                               [z] {
                                 native_layer_norm(z({2, 3}), 1, z({2}));
                               }),
      expect_error<DTypeError>("weight of another dtype", "layer_norm",
                               [z] {
                                 native_layer_norm(z({2, 3}), 1, z({3}, kFloat64));
                               }),
      expect_error<ShapeError>("functional: trailing dims differ", "layer_norm",
                               [z] {
                                 F::layer_norm(z({2, 3}), {2});
                               }),
      expect_error<ShapeError>("functional: bias shape", "layer_norm",
                               [z] {
                                 F::layer_norm(z({2, 3}), {3}, {}, z({2}));
                               }),
  };
  return e;
}

// dy, x, mean, rstd (the statistics of x, in their dtype), weight, cfg.
Sample bw_sample(std::string label, Tensor x, int64_t k, int64_t weight, DType dt, uint64_t seed) {
  const Shape row = row_of(x.shape(), k);
  const RowsOf g = rows_of(x.shape(), k);
  const Stats s = ref_stats(x.to(kFloat64).contiguous().to_vector<double>(), g, 1e-5);
  Shape st = x.shape();
  std::fill(st.end() - k, st.end(), 1);
  const DType sd = dt == kFloat16 || dt == kBFloat16 ? kFloat32 : dt;
  Tensor dy = random_tensor(x.shape(), dt, -1, 1, seed);
  return {std::move(label),
          {dy, std::move(x), tensor(s.mean, st).to(sd), tensor(s.rstd, st).to(sd),
           random_tensor(row, dt, 0.5, 1.5, seed + 1), cfg({k, weight})}};
}

std::vector<Sample> backward_samples(DType dt) {
  return {
      bw_sample("rows with weight grads", random_tensor({3, 5}, dt, -2, 2, 71), 1, 2, dt, 72),
      bw_sample("2 normalized dims", random_tensor({2, 3, 4}, dt, -2, 2, 73), 2, 2, dt, 74),
      bw_sample("weight, no weight grads", random_tensor({4, 6}, dt, -2, 2, 75), 1, 1, dt, 76),
      bw_sample("no weight", random_tensor({4, 6}, dt, -2, 2, 77), 1, 0, dt, 78),
      bw_sample("non-contiguous", noncontiguous({5, 6}, dt, -2, 2, 79), 1, 2, dt, 80),
      bw_sample("empty", random_tensor({0, 4}, dt, -2, 2, 81), 1, 2, dt, 82),
      bw_sample("long rows", random_tensor({3, 1100}, dt, -2, 2, 83), 1, 2, dt, 84),
      bw_sample("many rows", random_tensor({700, 64}, dt, -2, 2, 85), 1, 2, dt, 86),
  };
}

std::vector<Tensor> run_backward_all(const std::vector<Tensor>& in) {
  static const Primitive& p = prim("layer_norm_backward");
  const auto c = cfg_of(in[5]);
  std::vector<Tensor> args{in[0], in[1], in[2], in[3]};
  if (c[1] > 0) args.push_back(in[4]);
  return dispatch(p, args, {{"ndim", c[0]}, {"weight_grads", c[1] > 1}});
}

OpEntry layer_norm_backward_entry() {
  OpEntry e;
  e.prim = "layer_norm_backward";
  e.dtypes = kFloatDTypes;
  e.samples = backward_samples;
  e.op = [](const std::vector<Tensor>& in) { return run_backward_all(in)[0]; };
  e.reference = [](const std::vector<Ref>& in, DType) {
    const auto k = static_cast<int64_t>(in[5].data[0]);
    const RowsOf g = rows_of(in[1].shape, k);
    Ref out{in[1].shape, {}, {}};
    out.data = ref_backward(in[0].data, in[1].data, in[2].data, in[3].data,
                            ref_or_empty(in[4], in[5].data[1] > 0), g)
                   .dx;
    return out;
  };
  e.tolerance = [](DType dt) {
    if (dt == kFloat32) return Tolerance{1e-5, 1e-5};
    if (dt == kFloat16) return Tolerance{4e-3, 4e-3};
    if (dt == kBFloat16) return Tolerance{3e-2, 3e-2};
    return default_tolerance(dt);
  };
  const auto z = [](Shape s, DType dt = kFloat32) { return zeros(std::move(s), dt); };
  auto bw = [](std::vector<Tensor> in, bool weight_grads) {
    dispatch(prim("layer_norm_backward"), in,
             {{"ndim", int64_t{1}}, {"weight_grads", weight_grads}});
  };
  e.errors = {
      expect_error<ShapeError>("dy of another shape", "layer_norm_backward",
                               [z, bw] {
                                 bw({z({2, 4}), z({2, 3}), z({2, 1}), z({2, 1})}, false);
                               }),
      expect_error<ShapeError>("mean of another shape", "layer_norm_backward",
                               [z, bw] {
                                 bw({z({2, 3}), z({2, 3}), z({2}), z({2, 1})}, false);
                               }),
      expect_error<DTypeError>("16-bit statistics", "layer_norm_backward",
                               [z, bw] {
                                 bw({z({2, 3}, kFloat16), z({2, 3}, kFloat16), z({2, 1}, kFloat16),
                                     z({2, 1}, kFloat16)},
                                    false);
                               }),
      expect_error<ValueError>("weight grads without a weight", "layer_norm_backward",
                               [z, bw] {
                                 bw({z({2, 3}), z({2, 3}), z({2, 1}), z({2, 1})}, true);
                               }),
  };
  return e;
}

bool registered = register_entries({layer_norm_entry(), layer_norm_backward_entry()});

}  // namespace

TEST(LayerNorm, Table) {
  for (const OpEntry& e : all_entries())
    if (e.prim == "layer_norm" || e.prim == "layer_norm_backward") check_entry(e);
}

// The weight and bias gradients of the backward primitive (the table checks its first output).
TEST(LayerNorm, BackwardWeightGradsMatchLoops) {
  for (DType dt : kFloatDTypes)
    for (const Sample& s : backward_samples(dt)) {
      if (cfg_of(s.inputs[5])[1] != 2) continue;
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + s.label);
      const std::vector<Tensor> out = run_backward_all(s.inputs);
      ASSERT_EQ(out.size(), 3u);
      std::vector<Ref> r;
      for (const Tensor& t : s.inputs) r.push_back(to_ref(t));
      const Grads want = ref_backward(r[0].data, r[1].data, r[2].data, r[3].data, r[4].data,
                                      rows_of(r[1].shape, cfg_of(s.inputs[5])[0]));
      // Sums over many rows: a 16-bit output rounds them.
      const Tolerance tol = dt == kFloat64   ? Tolerance{1e-12, 1e-12}
                            : dt == kFloat32 ? Tolerance{1e-5, 1e-4}
                                             : Tolerance{2e-2, 5e-2};
      EXPECT_TRUE(close(out[1], Ref{out[1].shape(), want.dw, {}}, tol)) << "dw";
      EXPECT_TRUE(close(out[2], Ref{out[2].shape(), want.db, {}}, tol)) << "db";
    }
}

// The statistics outputs: float32 for the 16-bit floats, shaped to broadcast against x.
TEST(LayerNorm, StatisticsOutputs) {
  const Tensor x = random_tensor({2, 3, 4}, kFloat64, -2, 2, 90);
  auto [y, mean, rstd] = native_layer_norm(x, 2);
  EXPECT_EQ(mean.shape(), (Shape{2, 1, 1}));
  const Stats s = ref_stats(x.to_vector<double>(), {2, 12}, 1e-5);
  nn_test::expect_close(mean, s.mean, 1e-14);
  nn_test::expect_close(rstd, s.rstd, 1e-14);
  for (DType dt : {kFloat16, kBFloat16}) {
    auto [yh, mh, rh] = native_layer_norm(x.to(dt), 1);
    EXPECT_EQ(mh.dtype(), kFloat32);
    EXPECT_EQ(rh.dtype(), kFloat32);
    EXPECT_EQ(yh.dtype(), dt);
  }
  // A zero-length row: NaN statistics, as mean and var of nothing give.
  auto [ye, me, re] = native_layer_norm(zeros({2, 0}), 1);
  EXPECT_EQ(ye.shape(), (Shape{2, 0}));
  EXPECT_TRUE(std::isnan(me.to_vector<float>()[0]));
  EXPECT_TRUE(std::isnan(re.to_vector<float>()[1]));
}

// ---- autograd through the public ops ----------------------------------------------------------

Tensor rnd(Shape s, uint64_t seed, double lo = -2, double hi = 2) {
  return random_tensor(std::move(s), kFloat64, lo, hi, seed);
}

// The formula nn::functional::layer_norm used before the fused primitive: an independent
// implementation with every rule of its ops.
Tensor composite(const Tensor& x, int64_t k, const Tensor& w, const Tensor& b, double eps) {
  Dims dims;
  for (int64_t d = -k; d < 0; ++d) dims.push_back(d);
  const Tensor mean = tessera::mean(x, dims, true), var = tessera::var(x, dims, 0, true);
  Tensor y = (x - mean) * rsqrt(var + eps);
  if (w.defined()) y = y * w;
  return b.defined() ? y + b : y;
}

struct Case {
  const char* label;
  Shape x;
  int64_t k;
  bool weight, bias;
};
const Case kCases[] = {
    {"1 dim, affine", {3, 5}, 1, true, true},          {"2 dims, affine", {2, 3, 4}, 2, true, true},
    {"weight only", {4, 3}, 1, true, false},           {"bias only", {4, 3}, 1, false, true},
    {"no affine, 2 dims", {2, 2, 3}, 2, false, false},
};

std::vector<Tensor> case_inputs(const Case& c, uint64_t seed) {
  const Shape row = row_of(c.x, c.k);
  return {rnd(c.x, seed), c.weight ? rnd(row, seed + 1, 0.5, 1.5) : Tensor(),
          c.bias ? rnd(row, seed + 2) : Tensor()};
}

std::vector<Tensor> defined(const std::vector<Tensor>& v) {
  std::vector<Tensor> out;
  for (const Tensor& t : v)
    if (t.defined()) out.push_back(t);
  return out;
}

// The function of the defined inputs (x, then weight and bias where the case has them).
std::function<Tensor(const std::vector<Tensor>&)> as_fn(const Case& c, bool fused) {
  return [c, fused](const std::vector<Tensor>& a) {
    const Tensor w = c.weight ? a[1] : Tensor(), b = c.bias ? a[c.weight ? 2 : 1] : Tensor();
    return fused ? F::layer_norm(a[0], row_of(c.x, c.k), w, b) : composite(a[0], c.k, w, b, 1e-5);
  };
}

TEST(LayerNorm, GradientsMatchCentralDifferencesAndLoops) {
  uint64_t seed = 100;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.label);
    const std::vector<Tensor> in = defined(case_inputs(c, seed += 10));
    nn_test::gradcheck(as_fn(c, true), in);
    // Against the loops: y and the gradients of sum(y * r).
    std::vector<Tensor> leaves;
    for (const Tensor& t : in) leaves.push_back(t.clone().requires_grad_());
    const Tensor y = as_fn(c, true)(leaves);
    const Tensor r = rnd(c.x, seed + 5);
    const auto g = autograd::grad({(y * r).sum()}, leaves);
    const RowsOf rows = rows_of(c.x, c.k);
    const std::vector<double> xv = in[0].to_vector<double>();
    const std::vector<double> wv = c.weight ? in[1].to_vector<double>() : std::vector<double>{};
    const std::vector<double> bv =
        c.bias ? in[c.weight ? 2 : 1].to_vector<double>() : std::vector<double>{};
    nn_test::expect_close(y, ref_forward(xv, wv, bv, rows, 1e-5), 1e-12);
    const Stats s = ref_stats(xv, rows, 1e-5);
    const Grads want = ref_backward(r.to_vector<double>(), xv, s.mean, s.rstd, wv, rows);
    nn_test::expect_close(g[0], want.dx, 1e-12, "dx");
    if (c.weight) nn_test::expect_close(g[1], want.dw, 1e-12, "dw");
    if (c.bias) nn_test::expect_close(g.back(), want.db, 1e-12, "db");
  }
}

// Second derivatives: the gradient of <grad, v> against central differences of the first
// gradient, and against the composite formula's second derivatives.
TEST(LayerNorm, DoubleBackward) {
  uint64_t seed = 200;
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.label);
    const std::vector<Tensor> in = defined(case_inputs(c, seed += 10));
    const Tensor r = rnd(c.x, seed + 5);
    std::vector<Tensor> vs;
    for (size_t i = 0; i < in.size(); ++i) vs.push_back(rnd(in[i].shape(), seed + 6 + i));
    // h(inputs) = sum_i <d sum(f * r) / d input_i, v_i>, differentiable through create_graph.
    auto h = [&](const std::vector<Tensor>& a, bool fused) {
      std::vector<Tensor> leaves;
      for (const Tensor& t : a)
        leaves.push_back(t.requires_grad() ? t : t.clone().requires_grad_());
      const auto g =
          autograd::grad({(as_fn(c, fused)(leaves) * r).sum()}, leaves, {}, {.create_graph = true});
      Tensor s = zeros({}, kFloat64);
      for (size_t i = 0; i < g.size(); ++i) s = s + (g[i] * vs[i]).sum();
      return std::pair{s, leaves};
    };
    // The bias enters the first gradient through nothing (d bias = sum(r)): unused there.
    auto [s, leaves] = h(in, true);
    auto hv = autograd::grad({s}, leaves, {}, {.allow_unused = true});
    auto [sc, leaves_c] = h(in, false);
    auto hv_c = autograd::grad({sc}, leaves_c, {}, {.allow_unused = true});
    for (size_t i = 0; i < in.size(); ++i) {
      if (!hv[i].defined()) hv[i] = zeros_like(in[i]);
      if (!hv_c[i].defined()) hv_c[i] = zeros_like(in[i]);
      nn_test::expect_close(hv[i], hv_c[i], 1e-10, "vs composite, input " + std::to_string(i));
      // Central differences of h along each element of input i.
      std::vector<double> base = in[i].to_vector<double>(), numeric(base.size());
      for (size_t j = 0; j < base.size(); ++j) {
        auto at = [&](double d) {
          std::vector<double> p = base;
          p[j] += d;
          std::vector<Tensor> a = in;
          a[i] = tensor(p, in[i].shape());
          return h(a, true).first.item<double>();
        };
        numeric[j] = (at(1e-6) - at(-1e-6)) / 2e-6;
      }
      nn_test::expect_close(hv[i], numeric, 1e-6, "differences, input " + std::to_string(i));
    }
  }
}

// A first backward is the one fused call: the unused statistics get no zero cotangents and
// so no terms (kAuxOutputs).
TEST(LayerNorm, BackwardIsOneFusedCall) {
  const Tensor x = random_tensor({8, 64}, kFloat32, -2, 2, 310).requires_grad_();
  const Tensor w = random_tensor({64}, kFloat32, 0.5, 1.5, 311).requires_grad_();
  const Tensor b = random_tensor({64}, kFloat32, -1, 1, 312).requires_grad_();
  const Tensor dy = random_tensor({8, 64}, kFloat32, -1, 1, 313);
  const Tensor y = F::layer_norm(x, {64}, w, b);
  profiler::Session session;
  autograd::grad({y}, {x, w, b}, {dy});
  session.stop();
  std::vector<std::string> names;
  for (const auto& op : session.ops()) names.push_back(op.name);
  EXPECT_EQ(names, std::vector<std::string>{"layer_norm_backward"});
}

// Gradients through the statistics outputs (differentiable, though the first backward leaves
// their cotangents undefined when nothing uses them).
TEST(LayerNorm, GradientThroughStatistics) {
  const Tensor x = rnd({3, 4}, 300).requires_grad_();
  auto [y, mean, rstd] = native_layer_norm(x, 1);
  const Tensor r = rnd({3, 4}, 301), rm = rnd({3, 1}, 302), rr = rnd({3, 1}, 303);
  const Tensor g = autograd::grad({(y * r).sum() + (mean * rm).sum() + (rstd * rr).sum()}, {x})[0];
  const Tensor xc = x.detach().clone().requires_grad_();
  const Tensor m = tessera::mean(xc, {1}, true);
  const Tensor rs = rsqrt(tessera::var(xc, {1}, 0, true) + 1e-5);
  const Tensor want = autograd::grad(
      {(composite(xc, 1, {}, {}, 1e-5) * r).sum() + (m * rm).sum() + (rs * rr).sum()}, {xc})[0];
  nn_test::expect_close(g, want, 1e-12);
}

TEST(LayerNorm, VmapAndJvp) {
  const Tensor xs = rnd({4, 3, 5}, 400), w = rnd({5}, 401, 0.5, 1.5), b = rnd({5}, 402);
  const Tensor ws = rnd({4, 5}, 403, 0.5, 1.5);
  auto f = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{F::layer_norm(a[0], {5}, a[1], a[2])};
  };
  // Batched x with shared weights, and batched weights (the affine step as tensor ops).
  for (bool batched_w : {false, true}) {
    SCOPED_TRACE(batched_w ? "batched weight" : "shared weight");
    const auto got = tessera::vmap(f, {0, batched_w ? std::optional<int64_t>(0) : std::nullopt,
                                       std::nullopt})({xs, batched_w ? ws : w, b})[0];
    std::vector<Tensor> loop;
    for (int64_t i = 0; i < 4; ++i) loop.push_back(f({xs[i], batched_w ? ws[i] : w, b})[0]);
    nn_test::expect_close(got, stack(loop, 0), 1e-12);
  }
  // vmap of the gradient (batched backward primitive with weight gradients).
  auto grad_w = tessera::grad(
      [](const std::vector<Tensor>& a) {
        return std::vector<Tensor>{(F::layer_norm(a[0], {5}, a[1], a[2]) * a[0]).sum()};
      },
      {0, 1, 2});
  const auto vg = tessera::vmap(grad_w, {0, std::nullopt, std::nullopt})({xs, w, b});
  for (int64_t i = 0; i < 4; ++i) {
    const auto gi = grad_w({xs[i], w, b});
    for (size_t k = 0; k < 3; ++k)
      nn_test::expect_close(vg[k][i], gi[k], 1e-12, "vmap(grad) output " + std::to_string(k));
  }
  // jvp against the composite formula's.
  const Tensor x = xs[0], tx = rnd({3, 5}, 404), tw = rnd({5}, 405), tb = rnd({5}, 406);
  const auto [out, tan] = tessera::jvp(f, {x, w, b}, {tx, tw, tb});
  const auto [out_c, tan_c] = tessera::jvp(
      [](const std::vector<Tensor>& a) {
        return std::vector<Tensor>{composite(a[0], 1, a[1], a[2], 1e-5)};
      },
      {x, w, b}, {tx, tw, tb});
  nn_test::expect_close(out[0], out_c[0], 1e-12);
  nn_test::expect_close(tan[0], tan_c[0], 1e-12);
}

TEST(LayerNorm, ModuleTrainsLikeComposite) {
  for (bool affine : {true, false}) {
    SCOPED_TRACE(affine ? "affine" : "no affine");
    auto ln = std::make_shared<nn::LayerNorm>(nn::Ints{3, 4},
                                              nn::LayerNormOptions{.elementwise_affine = affine});
    ln->to(kFloat64);
    if (affine) {
      autograd::NoGradGuard ng;
      ln->weight.copy_(rnd({3, 4}, 500, 0.5, 1.5));
      ln->bias.copy_(rnd({3, 4}, 501));
    }
    // A transposed (non-contiguous) input.
    const Tensor x = rnd({4, 3, 2}, 502).transpose(0, 2).requires_grad_();
    const Tensor r = rnd({2, 3, 4}, 503);
    const Tensor y = (*ln)(x);
    (y * r).sum().backward();
    const Tensor xc = x.detach().clone().requires_grad_();
    const Tensor w = affine ? ln->weight.detach().clone().requires_grad_() : Tensor();
    const Tensor b = affine ? ln->bias.detach().clone().requires_grad_() : Tensor();
    const Tensor yc = composite(xc, 2, w, b, 1e-5);
    (yc * r).sum().backward();
    nn_test::expect_close(y, yc, 1e-12);
    nn_test::expect_close(x.grad(), xc.grad(), 1e-12, "dx");
    if (affine) {
      nn_test::expect_close(ln->weight.grad(), w.grad(), 1e-12, "dw");
      nn_test::expect_close(ln->bias.grad(), b.grad(), 1e-12, "db");
    }
  }
}

// float32 and the 16-bit floats against float64 on the same (rounded) values.
TEST(LayerNorm, LowPrecisionMatchesFloat64) {
  const Tensor x0 = rnd({6, 300}, 600), w0 = rnd({300}, 601, 0.5, 1.5), b0 = rnd({300}, 602);
  const Tensor r0 = rnd({6, 300}, 603);
  for (DType dt : {kFloat32, kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    // Outputs round to dt; the weight and bias gradients are sums over the 6 rows.
    const double tol = dt == kFloat32 ? 1e-5 : dt == kFloat16 ? 2e-3 : 1.6e-2;
    std::vector<Tensor> want, got;
    for (DType t : {kFloat64, dt}) {
      auto leaf = [&](const Tensor& v) { return v.to(dt).to(t).requires_grad_(); };
      const Tensor x = leaf(x0), w = leaf(w0), b = leaf(b0);
      const Tensor y = F::layer_norm(x, {300}, w, b);
      const auto g = autograd::grad({(y * r0.to(dt).to(t)).sum()}, {x, w, b});
      (t == kFloat64 ? want : got) = {y, g[0], g[1], g[2]};
    }
    for (size_t i = 0; i < 4; ++i)
      nn_test::expect_close(got[i].to(kFloat64), want[i], i >= 2 ? tol * 4 : tol,
                            "output " + std::to_string(i));
  }
}

}  // namespace tessera::test
