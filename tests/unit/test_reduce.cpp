// Reduce family: table entries (one per primitive) and focused numerical tests.
// Sample inputs carry their configuration as extra tensors: [x, dims (int64 1-d, empty = all),
// keepdim (bool 0-d), param (0-d: correction or p)] for reductions, [x, dim (int64 0-d)] for
// scans and softmax. References are float64 loops over Ref.
#include <cmath>
#include <complex>
#include <limits>
#include <numeric>

#include "op_table.h"

namespace tessera::test {
namespace {

using cd = std::complex<double>;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float fInf = std::numeric_limits<float>::infinity();
constexpr float fNaN = std::numeric_limits<float>::quiet_NaN();

// ---- input builders (independent of the elementwise family) --------------------------------

// Values of dt: ints in [lo, hi], bools 0/1, floats uniform in [lo, hi), complex by hand.
Tensor make(Shape shape, DType dt, uint64_t seed, double lo = -2, double hi = 2) {
  Generator g(seed);
  if (dt == kBool) return randint(0, 2, shape, kInt64, &g).to(kBool);
  if (is_integral(dt)) {
    const auto l = static_cast<int64_t>(dt == kUInt8 ? std::max(0.0, lo) : lo);
    return randint(l, static_cast<int64_t>(hi) + 1, shape, kInt64, &g).to(dt);
  }
  Tensor re = uniform(lo, hi, shape, kFloat64, &g);
  if (dt != kComplex64) return re.to(dt);
  Tensor im = uniform(lo, hi, shape, kFloat64, &g);
  Tensor out = Tensor::empty(shape, kComplex64);
  auto r = re.to_vector<double>(), i = im.to_vector<double>();
  auto* p = out.data_ptr<Complex64>();
  for (size_t k = 0; k < r.size(); ++k)
    p[k] = Complex64(static_cast<float>(r[k]), static_cast<float>(i[k]));
  return out;
}

Tensor dims_t(Dims d) { return tensor<int64_t>(d, Shape{static_cast<int64_t>(d.size())}); }
Tensor flag_t(bool b) { return tensor<bool>({b}, Shape{}); }
Tensor int_t(int64_t v) { return tensor<int64_t>({v}, Shape{}); }
Tensor real_t(double v) { return tensor<double>({v}, Shape{}); }

Dims dims_of(const Tensor& t) { return t.to_vector<int64_t>(); }
bool keep_of(const Tensor& t) { return t.item<bool>(); }
Dims dims_of(const Ref& r) { return Dims(r.data.begin(), r.data.end()); }

// A reduction sample configuration: shape builder, dims, keepdim.
struct Config {
  std::string label;
  std::function<Tensor(DType, uint64_t)> x;
  Dims dims;
  bool keepdim;
  bool empty_slices = false;  // some output reduces over nothing
};

Tensor permuted(DType dt, uint64_t seed) { return make({6, 5, 4}, dt, seed).permute({2, 0, 1}); }
Tensor strided(DType dt, uint64_t seed) {
  return make({3, 10, 5}, dt, seed).slice(1, 1, std::nullopt, 3);
}

std::vector<Config> configs() {
  auto shaped = [](Shape s) { return [s](DType dt, uint64_t seed) { return make(s, dt, seed); }; };
  return {
      {"0-d all", shaped({}), {}, false},
      {"0-d dim 0 keepdim", shaped({}), {0}, true},
      {"empty all", shaped({0, 3}), {}, false, true},
      {"empty dim 0", shaped({0, 3}), {0}, false, true},
      {"empty dim 1", shaped({0, 3}), {1}, true},
      {"1-d all", shaped({7}), {}, false},
      {"1-d dim 0 keepdim", shaped({7}), {0}, true},
      {"3-d dim 1", shaped({3, 4, 5}), {1}, false},
      {"3-d dim -1 keepdim", shaped({3, 4, 5}), {-1}, true},
      {"3-d dim 0", shaped({3, 4, 5}), {0}, false},
      {"3-d dims 2,0 keepdim", shaped({3, 4, 5}), {2, 0}, true},
      {"3-d all keepdim", shaped({3, 4, 5}), {}, true},
      {"permuted dim 0", permuted, {0}, false},
      {"permuted dims 1,2", permuted, {1, 2}, false},
      {"permuted all", permuted, {}, false},
      {"strided dim 1", strided, {1}, true},
      {"columns dim 0", shaped({64, 300}), {0}, false},
      {"large rows dim 1", shaped({700, 100}), {1}, false},
      {"large columns dim 0", shaped({100, 700}), {0}, true},
      {"large all", shaped({70000}), {}, false},
      {"chunked all", shaped({300000}), {}, false},
      {"chunked dim 1", shaped({2, 150000}), {1}, false},
  };
}

// Samples [x, dims, keepdim(, param)] for a reduction.
std::vector<Sample> reduce_samples(DType dt, bool single_dim, bool allow_empty,
                                   std::optional<Tensor> param = {}) {
  std::vector<Sample> out;
  uint64_t seed = 100;
  for (const Config& c : configs()) {
    if (single_dim && c.dims.size() > 1) continue;
    if (!allow_empty && c.empty_slices) continue;
    std::vector<Tensor> in{c.x(dt, ++seed), dims_t(c.dims), flag_t(c.keepdim)};
    if (param) in.push_back(*param);
    out.push_back({c.label, in});
  }
  return out;
}

// ---- reference: reduce a Ref over dims with plain loops ------------------------------------

using Fold = std::function<cd(const std::vector<cd>&)>;

Ref ref_reduce(const Ref& x, Dims dims, bool keepdim, const Fold& f) {
  const auto nd = static_cast<int64_t>(x.shape.size());
  std::vector<bool> mask(x.shape.size(), dims.empty());
  for (int64_t d : dims)
    if (nd > 0) mask[(d + nd) % nd] = true;
  Ref out;
  Shape kept;
  for (size_t i = 0; i < x.shape.size(); ++i) {
    if (!mask[i]) kept.push_back(x.shape[i]);
    if (!mask[i] || keepdim) out.shape.push_back(mask[i] ? 1 : x.shape[i]);
  }
  const int64_t n_out = std::accumulate(kept.begin(), kept.end(), int64_t{1}, std::multiplies<>());
  std::vector<std::vector<cd>> buckets(static_cast<size_t>(n_out));
  for (int64_t i = 0; i < x.numel(); ++i) {  // row-major: each bucket in reduced-index order
    auto idx = unravel(i, x.shape);
    int64_t o = 0;
    for (size_t d = 0; d < idx.size(); ++d)
      if (!mask[d]) o = o * x.shape[d] + idx[d];
    buckets[o].push_back({x.data[i], x.imag.empty() ? 0.0 : x.imag[i]});
  }
  for (const auto& b : buckets) {
    cd v = f(b);
    out.data.push_back(v.real());
    if (!x.imag.empty()) out.imag.push_back(v.imag());
  }
  return out;
}

Ref reduce_ref(const std::vector<Ref>& r, const Fold& f) {
  return ref_reduce(r[0], dims_of(r[1]), r[2].data[0] != 0, f);
}
Ref real_part(Ref r) {
  r.imag.clear();
  return r;
}

cd ref_sum(const std::vector<cd>& v) { return std::accumulate(v.begin(), v.end(), cd{}); }
cd ref_prod(const std::vector<cd>& v) {
  return std::accumulate(v.begin(), v.end(), cd{1}, std::multiplies<>());
}
cd ref_mean(const std::vector<cd>& v) { return ref_sum(v) / static_cast<double>(v.size()); }
double ref_extreme(const std::vector<cd>& v, bool max, bool index) {
  size_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (max ? v[i].real() > v[best].real() : v[i].real() < v[best].real()) best = i;
  return index ? static_cast<double>(best) : v[best].real();
}
double ref_var(const std::vector<cd>& v, double correction) {
  double m = 0, s = 0;
  for (cd x : v) m += x.real();
  m /= static_cast<double>(v.size());
  for (cd x : v) s += (x.real() - m) * (x.real() - m);
  return s / std::max(0.0, static_cast<double>(v.size()) - correction);
}
double ref_lse(const std::vector<cd>& v) {
  double m = -kInf, s = 0;
  for (cd x : v) m = std::max(m, x.real());
  if (!std::isfinite(m)) return m;
  for (cd x : v) s += std::exp(x.real() - m);
  return m + std::log(s);
}
double ref_norm(const std::vector<cd>& v, double p) {
  double s = p == -kInf ? kInf : 0;
  for (cd x : v) {
    const double a = std::abs(x);
    if (p == kInf)
      s = std::max(s, a);
    else if (p == -kInf)
      s = std::min(s, a);
    else if (p == 0)
      s += a != 0;
    else
      s += std::pow(a, p);
  }
  return std::isinf(p) || p == 0 ? s : std::pow(s, 1 / p);
}
bool ref_all(const std::vector<cd>& v) {
  return std::all_of(v.begin(), v.end(), [](cd x) { return x != cd{}; });
}
bool ref_any(const std::vector<cd>& v) {
  return std::any_of(v.begin(), v.end(), [](cd x) { return x != cd{}; });
}

// Scans and softmax: each lane along dim of a Ref.
Ref ref_along(const Ref& x, int64_t dim,
              const std::function<std::vector<cd>(const std::vector<cd>&)>& f) {
  Ref out = x;
  if (x.numel() == 0) return out;
  const auto nd = static_cast<int64_t>(x.shape.size());
  const int64_t d = nd ? (dim + nd) % nd : 0;
  const int64_t n = nd ? x.shape[d] : 1;
  int64_t stride = 1;
  for (int64_t k = d + 1; k < nd; ++k) stride *= x.shape[k];
  for (int64_t i = 0; i < x.numel(); ++i) {
    if (nd && unravel(i, x.shape)[d] != 0) continue;  // i is a lane start
    std::vector<cd> lane;
    for (int64_t k = 0; k < n; ++k)
      lane.push_back({x.data[i + k * stride], x.imag.empty() ? 0.0 : x.imag[i + k * stride]});
    auto r = f(lane);
    for (int64_t k = 0; k < n; ++k) {
      out.data[i + k * stride] = r[k].real();
      if (!out.imag.empty()) out.imag[i + k * stride] = r[k].imag();
    }
  }
  return out;
}

std::vector<Sample> along_samples(DType dt, double lo = -2, double hi = 2) {
  auto m = [&](Shape s, uint64_t seed) { return make(s, dt, seed, lo, hi); };
  return {
      {"0-d", {m({}, 1), int_t(0)}},
      {"empty", {m({0, 3}, 2), int_t(1)}},
      {"1-d", {m({9}, 3), int_t(0)}},
      {"3-d dim 0", {m({3, 4, 5}, 4), int_t(0)}},
      {"3-d dim 1", {m({3, 4, 5}, 5), int_t(1)}},
      {"3-d dim -1", {m({3, 4, 5}, 6), int_t(-1)}},
      {"permuted dim 1", {m({6, 5, 4}, 7).permute({2, 0, 1}), int_t(1)}},
      {"strided dim 0", {m({10, 6}, 8).slice(0, 0, std::nullopt, 2), int_t(0)}},
      {"large dim 1", {m({700, 100}, 9), int_t(1)}},
      {"large dim 0", {m({100, 700}, 10), int_t(0)}},
  };
}

std::vector<cd> ref_cumsum(const std::vector<cd>& v) {
  std::vector<cd> r(v.size());
  std::partial_sum(v.begin(), v.end(), r.begin());
  return r;
}
std::vector<cd> ref_cumprod(const std::vector<cd>& v) {
  std::vector<cd> r(v.size());
  std::partial_sum(v.begin(), v.end(), r.begin(), std::multiplies<>());
  return r;
}
std::vector<cd> ref_softmax(const std::vector<cd>& v, bool log) {
  double m = -kInf, s = 0;
  for (cd x : v) m = std::max(m, x.real());
  for (cd x : v) s += std::exp(x.real() - m);
  std::vector<cd> r;
  for (cd x : v) r.push_back(log ? x.real() - m - std::log(s) : std::exp(x.real() - m) / s);
  return r;
}

std::vector<DType> without_complex() {
  return {kBool, kUInt8, kInt8, kInt16, kInt32, kInt64, kFloat16, kBFloat16, kFloat32, kFloat64};
}
std::vector<DType> float_and_complex() {
  return {kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};
}

DType long_for_ints(const std::vector<Tensor>& in) {
  return is_integral(in[0].dtype(), true) ? kInt64 : in[0].dtype();
}

Tensor x3() { return make({3, 4, 5}, kFloat32, 7); }
Tensor empty03() { return make({0, 3}, kFloat32, 8); }

// Looser float32 tolerance where a long float32-lane sum is compared with float64.
Tolerance sum_tol(DType dt) {
  if (dt == kFloat32 || dt == kComplex64) return {1e-5, 1e-4};
  return default_tolerance(dt == kBool || is_integral(dt) ? kInt64 : dt);
}
// Ops that compute in double and round once; the harness rounds the reference to the output
// dtype, so float16/bfloat16 still differ by one rounding of the inputs' representation.
Tolerance once_rounded(DType dt) {
  return default_tolerance(is_integral(dt, true) ? kFloat32 : dt);
}

OpEntry extreme_entry(std::string prim, bool max, bool index,
                      std::function<Tensor(const std::vector<Tensor>&)> op, bool single) {
  return {.prim = prim,
          .dtypes = without_complex(),
          .samples = [single](DType dt) { return reduce_samples(dt, single, false); },
          .op = op,
          .reference =
              [max, index](const std::vector<Ref>& r, DType) {
                return reduce_ref(
                    r, [=](const std::vector<cd>& v) { return cd{ref_extreme(v, max, index)}; });
              },
          .errors = {expect_error<ValueError>("empty all", prim,
                                              [op] {
                                                op({empty03(), dims_t({}), flag_t(false)});
                                              }),
                     expect_error<IndexError>("empty dim", prim,
                                              [op] {
                                                op({empty03(), dims_t({0}), flag_t(false)});
                                              }),
                     expect_error<IndexError>("bad dim", prim,
                                              [op] {
                                                op({x3(), dims_t({3}), flag_t(false)});
                                              }),
                     expect_error<DTypeError>(
                         "complex", prim,
                         [op] {
                           op({make({3}, kComplex64, 1), dims_t({0}), flag_t(false)});
                         })},
          .expected_dtype =
              [index](const std::vector<Tensor>& in) { return index ? kInt64 : in[0].dtype(); }};
}

std::vector<OpEntry> entries() {
  std::vector<OpEntry> e;
  e.push_back(
      {.prim = "sum",
       .dtypes = kAllDTypes,
       .samples = [](DType dt) { return reduce_samples(dt, false, true); },
       .op =
           [](const std::vector<Tensor>& in) { return sum(in[0], dims_of(in[1]), keep_of(in[2])); },
       .reference = [](const std::vector<Ref>& r, DType) { return reduce_ref(r, ref_sum); },
       .errors = {expect_error<IndexError>("dim out of range", "sum", [] { sum(x3(), {3}); }),
                  expect_error<IndexError>("negative dim", "sum", [] { sum(x3(), {-4}); }),
                  expect_error<ValueError>("repeated dim", "sum",
                                           [] {
                                             sum(x3(), {1, -2});
                                           })},
       .tolerance = sum_tol,
       .expected_dtype = long_for_ints});
  e.push_back(
      {.prim = "mean",
       .dtypes = float_and_complex(),
       .samples = [](DType dt) { return reduce_samples(dt, false, true); },
       .op =
           [](const std::vector<Tensor>& in) {
             return mean(in[0], dims_of(in[1]), keep_of(in[2]));
           },
       .reference = [](const std::vector<Ref>& r, DType) { return reduce_ref(r, ref_mean); },
       .errors = {expect_error<DTypeError>("int input", "mean", [] { mean(arange(5)); }),
                  expect_error<DTypeError>("bool input", "mean", [] { mean(arange(5).to(kBool)); }),
                  expect_error<ValueError>("repeated dim", "mean",
                                           [] {
                                             mean(x3(), {0, 0});
                                           })},
       .tolerance = sum_tol,
       .expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); }});
  e.push_back(
      {.prim = "prod",
       .dtypes = kAllDTypes,
       // Values near 1 (ints in {-1, 0, 1}) so products stay exact and in range.
       .samples =
           [](DType dt) {
             auto s = reduce_samples(dt, false, true);
             uint64_t seed = 500;
             for (auto& x : s)
               x.inputs[0] = make(x.inputs[0].shape(), dt, ++seed, is_integral(dt) ? -1 : 0.5,
                                  is_integral(dt) ? 1 : 1.5);
             // Long complex products overflow, with order-dependent inf/NaN parts.
             if (dt == kComplex64)
               std::erase_if(s, [](const Sample& x) { return x.inputs[0].numel() > 1000; });
             return s;
           },
       .op =
           [](const std::vector<Tensor>& in) {
             return prod(in[0], dims_of(in[1]), keep_of(in[2]));
           },
       .reference = [](const std::vector<Ref>& r, DType) { return reduce_ref(r, ref_prod); },
       .errors = {expect_error<IndexError>("bad dim", "prod", [] { prod(x3(), {5}); })},
       .tolerance =
           [](DType dt) {
             return dt == kFloat32 || dt == kComplex64 ? Tolerance{1e-5, 1e-5} : sum_tol(dt);
           },
       .expected_dtype = long_for_ints});
  auto amax_op = [](const std::vector<Tensor>& in) {
    return amax(in[0], dims_of(in[1]), keep_of(in[2]));
  };
  auto amin_op = [](const std::vector<Tensor>& in) {
    return amin(in[0], dims_of(in[1]), keep_of(in[2]));
  };
  auto max_dim_op = [](const std::vector<Tensor>& in) {
    auto d = dims_of(in[1]);
    return std::get<1>(max(in[0], d.empty() ? 0 : d[0], keep_of(in[2])));
  };
  auto min_dim_op = [](const std::vector<Tensor>& in) {
    auto d = dims_of(in[1]);
    return std::get<1>(min(in[0], d.empty() ? 0 : d[0], keep_of(in[2])));
  };
  auto argmax_op = [](const std::vector<Tensor>& in) {
    auto d = dims_of(in[1]);
    return argmax(in[0], d.empty() ? std::nullopt : std::optional<int64_t>(d[0]), keep_of(in[2]));
  };
  auto argmin_op = [](const std::vector<Tensor>& in) {
    auto d = dims_of(in[1]);
    return argmin(in[0], d.empty() ? std::nullopt : std::optional<int64_t>(d[0]), keep_of(in[2]));
  };
  e.push_back(extreme_entry("amax", true, false, amax_op, false));
  e.push_back(extreme_entry("amin", false, false, amin_op, false));
  e.push_back(extreme_entry("argmax", true, true, argmax_op, true));
  e.push_back(extreme_entry("argmin", false, true, argmin_op, true));
  // max/min along a dim: the table checks the indices; TEST(Reduce, MaxDimValues) the values.
  e.push_back(extreme_entry("max_dim", true, true, max_dim_op, true));
  e.push_back(extreme_entry("min_dim", false, true, min_dim_op, true));
  for (size_t k = e.size() - 2; k < e.size(); ++k) {
    OpEntry& x = e[k];
    auto inner = x.samples;
    // "all dims" is not a max_dim call: 0-d/1-d samples reduce dim 0, others are dropped.
    x.samples = [inner](DType dt) {
      auto s = inner(dt);
      std::erase_if(
          s, [](const Sample& v) { return v.inputs[1].numel() == 0 && v.inputs[0].dim() > 1; });
      for (auto& v : s)
        if (v.inputs[1].numel() == 0) v.inputs[1] = dims_t({0});
      return s;
    };
    x.errors.erase(x.errors.begin());  // no "all dims" form
  }
  for (bool take_sqrt : {false, true}) {
    const std::string name = take_sqrt ? "std" : "var";
    auto op = [take_sqrt](const std::vector<Tensor>& in) {
      auto c = in[3].item<int64_t>();
      return take_sqrt ? tessera::std(in[0], dims_of(in[1]), c, keep_of(in[2]))
                       : var(in[0], dims_of(in[1]), c, keep_of(in[2]));
    };
    e.push_back(
        {.prim = name,
         .dtypes = kFloatDTypes,
         .samples =
             [](DType dt) {
               auto s = reduce_samples(dt, false, true, int_t(1));
               for (auto& x : reduce_samples(dt, false, false, int_t(0)))
                 s.push_back({x.label + " correction 0", x.inputs});
               return s;
             },
         .op = op,
         .reference =
             [take_sqrt](const std::vector<Ref>& r, DType) {
               const double c = r[3].data[0];
               return reduce_ref(r, [=](const std::vector<cd>& v) {
                 const double x = ref_var(v, c);
                 return cd{take_sqrt ? std::sqrt(x) : x};
               });
             },
         .errors = {expect_error<DTypeError>("int input", name,
                                             [op] {
                                               op({arange(4), dims_t({}), flag_t(false), int_t(1)});
                                             }),
                    expect_error<NotImplementedError>(
                        "complex input", name,
                        [op] {
                          op({make({3}, kComplex64, 1), dims_t({}), flag_t(false), int_t(1)});
                        }),
                    expect_error<IndexError>("bad dim", name,
                                             [op] {
                                               op({x3(), dims_t({-5}), flag_t(false), int_t(1)});
                                             })},
         .tolerance = once_rounded});
  }
  e.push_back(
      {.prim = "logsumexp",
       .dtypes = kRealDTypes,
       .samples = [](DType dt) { return reduce_samples(dt, false, true); },
       .op =
           [](const std::vector<Tensor>& in) {
             return logsumexp(in[0], dims_of(in[1]), keep_of(in[2]));
           },
       .reference =
           [](const std::vector<Ref>& r, DType) {
             return reduce_ref(r, [](const std::vector<cd>& v) { return cd{ref_lse(v)}; });
           },
       .errors = {expect_error<IndexError>("bad dim", "logsumexp", [] { logsumexp(x3(), {7}); }),
                  expect_error<NotImplementedError>(
                      "complex", "logsumexp", [] { logsumexp(make({3}, kComplex64, 1), {0}); })},
       .tolerance = once_rounded,
       .expected_dtype =
           [](const std::vector<Tensor>& in) {
             return is_floating(in[0].dtype()) ? in[0].dtype() : kFloat32;
           }});
  e.push_back({.prim = "norm",
               .dtypes = float_and_complex(),
               .samples =
                   [](DType dt) {
                     std::vector<Sample> s;
                     for (double p : {1.0, 2.0, kInf, 0.0, 3.0, -kInf}) {
                       const bool identity = !std::isinf(p);
                       for (auto& x : reduce_samples(dt, false, identity, real_t(p)))
                         s.push_back({fmt::format("p={} {}", p, x.label), x.inputs});
                     }
                     return s;
                   },
               .op =
                   [](const std::vector<Tensor>& in) {
                     return norm(in[0], in[3].item<double>(), dims_of(in[1]), keep_of(in[2]));
                   },
               .reference =
                   [](const std::vector<Ref>& r, DType) {
                     const double p = r[3].data[0];
                     return real_part(reduce_ref(
                         r, [p](const std::vector<cd>& v) { return cd{ref_norm(v, p)}; }));
                   },
               .errors = {expect_error<DTypeError>("int input", "norm", [] { norm(arange(3)); }),
                          expect_error<ValueError>("inf norm of empty", "norm",
                                                   [] { norm(empty03(), kInf); }),
                          expect_error<ValueError>("NaN p", "norm", [] { norm(x3(), kNaN); })},
               .tolerance =
                   [](DType dt) {
                     return dt == kFloat32 || dt == kComplex64 ? Tolerance{1e-5, 1e-5}
                                                               : default_tolerance(dt);
                   },
               .expected_dtype =
                   [](const std::vector<Tensor>& in) { return to_real_dtype(in[0].dtype()); }});
  for (bool is_all : {true, false}) {
    const std::string name = is_all ? "all" : "any";
    auto op = [is_all](const std::vector<Tensor>& in) {
      return is_all ? all(in[0], dims_of(in[1]), keep_of(in[2]))
                    : any(in[0], dims_of(in[1]), keep_of(in[2]));
    };
    e.push_back({.prim = name,
                 .dtypes = kAllDTypes,
                 // Mostly non-zero values with some zeros, so both answers occur.
                 .samples =
                     [](DType dt) {
                       auto s = reduce_samples(dt, false, true);
                       uint64_t seed = 900;
                       for (auto& x : s)
                         if (x.inputs[0].numel() < 1000)
                           x.inputs[0] = make(x.inputs[0].shape(), kInt64, ++seed, 0, 3).to(dt);
                       return s;
                     },
                 .op = op,
                 .reference =
                     [is_all](const std::vector<Ref>& r, DType) {
                       return real_part(reduce_ref(r, [=](const std::vector<cd>& v) {
                         return cd{double(is_all ? ref_all(v) : ref_any(v))};
                       }));
                     },
                 .errors = {expect_error<IndexError>("bad dim", name,
                                                     [op] {
                                                       op({x3(), dims_t({3}), flag_t(false)});
                                                     })},
                 .expected_dtype =
                     [](const std::vector<Tensor>& in) {
                       return in[0].dtype() == kUInt8 ? kUInt8 : kBool;
                     }});
  }
  for (bool is_prod : {false, true}) {
    const std::string name = is_prod ? "cumprod" : "cumsum";
    auto op = [is_prod](const std::vector<Tensor>& in) {
      return is_prod ? cumprod(in[0], in[1].item<int64_t>()) : cumsum(in[0], in[1].item<int64_t>());
    };
    e.push_back(
        {.prim = name,
         .dtypes = kAllDTypes,
         .samples =
             [is_prod](DType dt) {
               return is_prod
                          ? along_samples(dt, is_integral(dt) ? -1 : 0.9, is_integral(dt) ? 1 : 1.1)
                          : along_samples(dt);
             },
         .op = op,
         .reference =
             [is_prod](const std::vector<Ref>& r, DType) {
               return ref_along(r[0], static_cast<int64_t>(r[1].data[0]),
                                is_prod ? ref_cumprod : ref_cumsum);
             },
         .errors = {expect_error<IndexError>("bad dim", name,
                                             [op] {
                                               op({x3(), int_t(3)});
                                             })},
         .tolerance =
             [](DType dt) {
               return dt == kFloat32 || dt == kComplex64 ? Tolerance{1e-5, 1e-5} : sum_tol(dt);
             },
         .expected_dtype = long_for_ints});
  }
  for (bool log : {false, true}) {
    const std::string name = log ? "log_softmax" : "softmax";
    auto op = [log](const std::vector<Tensor>& in) {
      return log ? log_softmax(in[0], in[1].item<int64_t>())
                 : softmax(in[0], in[1].item<int64_t>());
    };
    e.push_back({.prim = name,
                 .dtypes = kFloatDTypes,
                 .samples = [](DType dt) { return along_samples(dt, -5, 5); },
                 .op = op,
                 .reference =
                     [log](const std::vector<Ref>& r, DType) {
                       return ref_along(
                           r[0], static_cast<int64_t>(r[1].data[0]),
                           [log](const std::vector<cd>& v) { return ref_softmax(v, log); });
                     },
                 .errors = {expect_error<DTypeError>("int input", name,
                                                     [op] {
                                                       op({arange(3), int_t(0)});
                                                     }),
                            expect_error<IndexError>("bad dim", name,
                                                     [op] {
                                                       op({x3(), int_t(-4)});
                                                     })},
                 .tolerance = once_rounded,
                 .expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); }});
  }
  return e;
}

static bool registered = register_entries(entries());

}  // namespace

TEST(Reduce, Table) {
  for (const OpEntry& e : all_entries()) {
    static const std::vector<std::string> mine = {
        "sum",    "mean",   "prod",    "amax",    "amin",       "max_dim", "min_dim",
        "argmax", "argmin", "var",     "std",     "logsumexp",  "norm",    "all",
        "any",    "cumsum", "cumprod", "softmax", "log_softmax"};
    if (std::find(mine.begin(), mine.end(), e.prim) == mine.end()) continue;
    SCOPED_TRACE(e.prim);
    check_entry(e);
  }
}

// ---- focused tests --------------------------------------------------------------------------

TEST(Reduce, VarHugeMeanIsAccurate) {
  Generator g(3);
  std::vector<double> v = uniform(-1, 1, {100000}, kFloat64, &g).to_vector<double>();
  for (double& x : v) x += 1e8;
  double m = 0, s = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  for (double x : v) s += (x - m) * (x - m);
  const double want = s / static_cast<double>(v.size() - 1);
  const double got = var(tensor(v)).item<double>();
  EXPECT_NEAR(got, want, 1e-9 * want);
  EXPECT_NEAR(tessera::std(tensor(v), {}, 0).item<double>(),
              std::sqrt(s / static_cast<double>(v.size())), 1e-9);
  // Large enough for the parallel chunked path too.
  std::vector<double> big(400000);
  for (size_t i = 0; i < big.size(); ++i) big[i] = 1e8 + (i % 2 ? 0.5 : -0.5);
  EXPECT_NEAR(var(tensor(big), {}, 0).item<double>(), 0.25, 1e-9);
}

TEST(Reduce, SoftmaxStaysFinite) {
  Tensor x = tensor<float>({1000, -1000, 0, -fInf, 0, 1, -fInf, -fInf, -fInf}, Shape{3, 3});
  auto s = softmax(x, 1).to_vector<float>();
  EXPECT_FLOAT_EQ(s[0], 1);
  EXPECT_FLOAT_EQ(s[1], 0);
  EXPECT_FLOAT_EQ(s[2], 0);
  EXPECT_FLOAT_EQ(s[3], 0);
  EXPECT_NEAR(s[4], 1 / (1 + std::exp(1.0)), 1e-7);
  for (int i = 6; i < 9; ++i) EXPECT_TRUE(std::isnan(s[i])) << i;  // all -inf row: NaN (PyTorch)
  auto l = log_softmax(x, 1).to_vector<float>();
  EXPECT_FLOAT_EQ(l[0], 0);
  EXPECT_FLOAT_EQ(l[1], -2000);
  EXPECT_FLOAT_EQ(l[2], -1000);
  EXPECT_EQ(l[3], -kInf);
  EXPECT_NEAR(l[5], -std::log1p(std::exp(-1.0)), 1e-6);
  for (int i = 6; i < 9; ++i) EXPECT_TRUE(std::isnan(l[i])) << i;
  // Along dim 0 (strided lanes) of large values.
  auto c = softmax(tensor<float>({1000, 1000, 999, 1000}, Shape{2, 2}), 0).to_vector<float>();
  EXPECT_FLOAT_EQ(c[0], 1 / (1 + std::exp(-1.0f)));
  EXPECT_FLOAT_EQ(c[1], 0.5f);
}

TEST(Reduce, LogSumExpIsStable) {
  auto v =
      logsumexp(tensor<float>({1000, 1000, -1000, -1000, -fInf, -fInf, fInf, 1}, Shape{4, 2}), {1})
          .to_vector<float>();
  EXPECT_FLOAT_EQ(v[0], 1000 + std::log(2.0f));
  EXPECT_FLOAT_EQ(v[1], -1000 + std::log(2.0f));
  EXPECT_EQ(v[2], -kInf);
  EXPECT_EQ(v[3], kInf);
  EXPECT_TRUE(std::isnan(logsumexp(tensor<double>({1, kNaN, 2}), {0}).item<double>()));
  EXPECT_EQ(logsumexp(empty03(), {0}).to_vector<float>(), std::vector<float>(3, -kInf));
}

TEST(Reduce, ScansAlongEveryDimOfNonContiguous) {
  for (DType dt : {kFloat64, kInt32}) {
    Tensor x = make({4, 3, 5}, dt, 77, -1, 1).permute({1, 2, 0});  // shape (3, 5, 4)
    ASSERT_FALSE(x.is_contiguous());
    for (int64_t d = -3; d < 3; ++d) {
      SCOPED_TRACE(fmt::format("{} dim {}", dtype_name(dt), d));
      Ref r = to_ref(x);
      EXPECT_TRUE(close(cumsum(x, d), ref_along(r, d, ref_cumsum), {1e-12, 1e-12}));
      EXPECT_TRUE(close(cumprod(x, d), ref_along(r, d, ref_cumprod), {1e-12, 1e-12}));
    }
  }
}

TEST(Reduce, ArgmaxTiesReturnFirstIndex) {
  Tensor x = tensor<int32_t>({1, 3, 3, 2, 3, 0, 0, 0}, Shape{2, 4});
  EXPECT_EQ(argmax(x).item<int64_t>(), 1);
  EXPECT_EQ(argmin(x).item<int64_t>(), 5);
  EXPECT_EQ(argmax(x, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(argmax(x, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0}));
  EXPECT_EQ(argmax(x.t(), 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  // Every path: constant data, long (chunked), columns.
  EXPECT_EQ(argmax(zeros({500000})).item<int64_t>(), 0);
  EXPECT_EQ(argmin(ones({3, 200000}), 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));
  EXPECT_EQ(argmax(zeros({100, 64}), 0).to_vector<int64_t>(), std::vector<int64_t>(64, 0));
  EXPECT_EQ(argmax(tensor<float>({-fInf, -fInf})).item<int64_t>(), 0);
  EXPECT_EQ(argmax(tensor<float>({1, 2}), std::nullopt, true).shape(), (Shape{1}));
}

TEST(Reduce, NaNPropagatesInMaxMin) {
  Tensor x = tensor<float>({1, fNaN, 3, fNaN});
  EXPECT_TRUE(std::isnan(max(x).item<float>()));
  EXPECT_TRUE(std::isnan(min(x).item<float>()));
  EXPECT_EQ(argmax(x).item<int64_t>(), 1);
  EXPECT_EQ(argmin(x).item<int64_t>(), 1);
  auto [v, i] = max(x.reshape({2, 2}), 0);
  EXPECT_FLOAT_EQ(v.to_vector<float>()[0], 3);
  EXPECT_TRUE(std::isnan(v.to_vector<float>()[1]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 0}));
  std::vector<float> big(300000, 1.0f);
  big[123456] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(argmax(tensor(big)).item<int64_t>(), 123456);
}

TEST(Reduce, MaxDimValuesMatchAmax) {
  Tensor x = make({5, 6, 7}, kFloat32, 12).transpose(0, 2);
  for (int64_t d = 0; d < 3; ++d) {
    auto [v, i] = max(x, d, true);
    EXPECT_EQ(v.to_vector<float>(), amax(x, {d}, true).to_vector<float>());
    auto [mv, mi] = min(x, d);
    EXPECT_EQ(mv.to_vector<float>(), amin(x, {d}).to_vector<float>());
    EXPECT_EQ(mi.to_vector<int64_t>(), argmin(x, d).to_vector<int64_t>());
    EXPECT_EQ(i.dtype(), kInt64);
  }
  EXPECT_EQ(max(tensor<int64_t>({4, 9, 2})).item<int64_t>(), 9);
  EXPECT_TRUE(max(tensor<bool>({false, true})).item<bool>());
  EXPECT_THROW(max(empty03()), ValueError);
  EXPECT_THROW(min(empty03()), ValueError);
  EXPECT_THROW(max(make({3}, kComplex64, 1), 0), DTypeError);
}

TEST(Reduce, HalfSumAccumulatesInFloat) {
  Tensor x = ones({10000}, kFloat16);  // float16 accumulation would stall at 2048
  EXPECT_EQ(sum(x).item<float>(), 10000.0f);
  EXPECT_EQ(sum(x).dtype(), kFloat16);
  EXPECT_EQ(sum(ones({10000}, kBFloat16)).item<float>(), 9984.0f);  // 10000 rounded to bfloat16
  EXPECT_EQ(mean(ones({5000, 2}, kFloat16), {0}).to_vector<float>(), std::vector<float>(2, 1.0f));
}

TEST(Reduce, SumDTypeAndIntegerWrap) {
  EXPECT_EQ(sum(arange(10).to(kInt32), {}, false, kFloat64).dtype(), kFloat64);
  EXPECT_EQ(sum(arange(10).to(kInt32), {}, false, kInt32).dtype(), kInt32);
  EXPECT_EQ(sum(arange(10).to(kInt8)).dtype(), kInt64);
  EXPECT_EQ(sum(tensor<bool>({true, true, false})).item<int64_t>(), 2);
  const int64_t big = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(sum(tensor<int64_t>({big, 1})).item<int64_t>(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(prod(tensor<int64_t>({big, 2})).item<int64_t>(), -2);
  EXPECT_EQ(cumsum(tensor<int64_t>({big, 1}), 0).to_vector<int64_t>()[1],
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(all(tensor<uint8_t>({1, 2})).dtype(), kUInt8);
  EXPECT_TRUE(all(tensor<float>({fNaN})).item<bool>());
  EXPECT_TRUE(all(empty03()).item<bool>());
  EXPECT_FALSE(any(empty03()).item<bool>());
  EXPECT_TRUE(std::isnan(mean(empty03()).item<float>()));
}

TEST(Reduce, LargeFloatSumIsAccurateAndDeterministic) {
  Generator g(5);
  Tensor x = uniform(0, 1, {int64_t{1} << 24}, kFloat32, &g);
  const float* p = x.data_ptr<float>();
  double want = 0;
  for (int64_t i = 0; i < x.numel(); ++i) want += p[i];
  const float got = sum(x).item<float>();
  EXPECT_NEAR(got, want, 1e-6 * want);
  EXPECT_EQ(sum(x).item<float>(), got);
  const int threads = num_threads();
  set_num_threads(1);
  const float single = sum(x).item<float>();
  set_num_threads(threads);
  EXPECT_EQ(single, got);  // fixed chunking: independent of the thread count
  EXPECT_NEAR(mean(x).item<float>(), want / static_cast<double>(x.numel()), 1e-6);
}

}  // namespace tessera::test
