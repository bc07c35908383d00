// Elementwise family: one table entry per primitive (float64 references written with plain
// loops, never Tessera ops) plus focused tests of promotion, wrapping, rounding and NaN rules
// (ReLU's gradient: test_relu_gradient.cpp; 16-bit rows on the SIMD path:
// test_elementwise_half.cpp).
#include <bit>
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>

#include "op_table.h"
#include "tessera/core/half.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::test {
namespace {

using cd = std::complex<double>;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Reference value as stored in dtype dt: bool is nonzero, integers wrap (two's complement).
double as_dtype(double v, DType dt) {
  if (dt == kBool) return v != 0;
  if (!is_integral(dt)) return v;
  const int bits = static_cast<int>(itemsize(dt)) * 8;
  auto u = static_cast<uint64_t>(static_cast<int64_t>(v));
  if (bits < 64) u &= (uint64_t{1} << bits) - 1;
  if (dt == kUInt8) return static_cast<double>(u);
  if (bits < 64 && (u >> (bits - 1)) & 1)
    return static_cast<double>(static_cast<int64_t>(u) - (int64_t{1} << bits));
  return static_cast<double>(static_cast<int64_t>(u));
}

Shape bshape(const std::vector<Ref>& in) {
  Shape s;
  for (const Ref& r : in) {
    const size_t n = std::max(s.size(), r.shape.size());
    Shape o(n, 1);
    for (size_t i = 0; i < n; ++i) {
      const int64_t a = i + s.size() < n ? 1 : s[i + s.size() - n];
      const int64_t b = i + r.shape.size() < n ? 1 : r.shape[i + r.shape.size() - n];
      o[i] = a == 1 ? b : a;
    }
    s = o;
  }
  return s;
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// Elementwise map over broadcast inputs; f gets the values (real parts) of each input at idx.
template <class F>
Ref map_n(const std::vector<Ref>& in, F f) {
  Ref r;
  r.shape = bshape(in);
  const int64_t n = numel_of(r.shape);
  r.data.resize(n);
  std::vector<double> v(in.size());
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> idx;  // only needed when some input is broadcast
    for (size_t k = 0; k < in.size(); ++k) {
      if (in[k].shape == r.shape) {
        v[k] = in[k].data[i];
        continue;
      }
      if (idx.empty()) idx = unravel(i, r.shape);
      v[k] = at_broadcast(in[k], idx);
    }
    r.data[i] = f(v);
  }
  return r;
}

// Same for complex inputs (imag parts read alongside); result complex.
template <class F>
Ref map_c(const std::vector<Ref>& in, F f) {
  Ref r;
  r.shape = bshape(in);
  const int64_t n = numel_of(r.shape);
  r.data.resize(n);
  r.imag.resize(n);
  std::vector<cd> v(in.size());
  std::vector<Ref> ims;  // imag parts as real Refs, for at_broadcast
  for (const Ref& x : in)
    ims.push_back({x.shape, x.imag.empty() ? std::vector<double>(x.data.size()) : x.imag, {}});
  for (int64_t i = 0; i < n; ++i) {
    auto idx = unravel(i, r.shape);
    for (size_t k = 0; k < in.size(); ++k)
      v[k] = cd(at_broadcast(in[k], idx), at_broadcast(ims[k], idx));
    cd z = f(v);
    r.data[i] = z.real();
    r.imag[i] = z.imag();
  }
  return r;
}

std::vector<DType> plus(std::vector<DType> a, std::initializer_list<DType> b) {
  a.insert(a.end(), b);
  return a;
}
const std::vector<DType> kFO = plus(kRealDTypes, {kBool});  // float-only ops: ints/bool -> f32
const std::vector<DType> kFOC = plus(kFO, {kComplex64});
const std::vector<DType> kIFC = plus(kRealDTypes, {kComplex64});
const std::vector<DType> kBI = plus(kIntDTypes, {kBool});
const std::vector<DType> kBIF = plus(kRealDTypes, {kBool});

// ---------------------------------------------------------------------------------------------
// Unary table
enum class OutK { Same, Float, Bool, Real };  // Float: ints/bool -> float32

struct UnaryRow {
  const char* prim;
  Tensor (*op)(const Tensor&);
  double (*f)(double);
  cd (*fc)(cd);  // null: complex unsupported
  std::vector<DType> dtypes;
  OutK out;
  double lo = -2, hi = 2;
  DType bad = kComplex64;  // a dtype the op rejects (kFloat32 = none)
};

DType expected_out(OutK k, DType in) {
  switch (k) {
    case OutK::Same:
      return in;
    case OutK::Float:
      return is_integral(in, true) ? kFloat32 : in;
    case OutK::Bool:
      return kBool;
    case OutK::Real:
      return in == kComplex64 ? kFloat32 : in;
  }
  return in;
}

double sgn(double x) { return static_cast<double>((0 < x) - (x < 0)); }

std::vector<UnaryRow> unary_rows() {
  const OutK S = OutK::Same, Fl = OutK::Float, Bo = OutK::Bool;
  return {
      {"abs", abs, [](double x) { return std::abs(x); }, [](cd z) { return cd(std::abs(z)); }, kIFC,
       OutK::Real, -2, 2, kBool},
      {"neg", neg, [](double x) { return -x; }, [](cd z) { return -z; }, kIFC, S, -2, 2, kBool},
      {"exp", exp, [](double x) { return std::exp(x); }, [](cd z) { return std::exp(z); }, kFOC,
       Fl},
      {"exp2", exp2, [](double x) { return std::exp2(x); }, nullptr, kFO, Fl},
      {"expm1", expm1, [](double x) { return std::expm1(x); }, nullptr, kFO, Fl},
      {"log", log, [](double x) { return std::log(x); }, [](cd z) { return std::log(z); }, kFOC, Fl,
       0.1, 3},
      {"log2", log2, [](double x) { return std::log2(x); }, nullptr, kFO, Fl, 0.1, 3},
      {"log1p", log1p, [](double x) { return std::log1p(x); }, nullptr, kFO, Fl, -0.9, 3},
      {"sqrt", sqrt, [](double x) { return std::sqrt(x); }, [](cd z) { return std::sqrt(z); }, kFOC,
       Fl, 0, 3},
      {"rsqrt", rsqrt, [](double x) { return 1 / std::sqrt(x); }, nullptr, kFO, Fl, 0.1, 3},
      {"sin", sin, [](double x) { return std::sin(x); }, [](cd z) { return std::sin(z); }, kFOC,
       Fl},
      {"cos", cos, [](double x) { return std::cos(x); }, [](cd z) { return std::cos(z); }, kFOC,
       Fl},
      {"tan", tan, [](double x) { return std::tan(x); }, nullptr, kFO, Fl, -1.2, 1.2},
      {"asin", asin, [](double x) { return std::asin(x); }, nullptr, kFO, Fl, -1, 1},
      {"acos", acos, [](double x) { return std::acos(x); }, nullptr, kFO, Fl, -1, 1},
      {"atan", atan, [](double x) { return std::atan(x); }, nullptr, kFO, Fl},
      {"sinh", sinh, [](double x) { return std::sinh(x); }, nullptr, kFO, Fl},
      {"cosh", cosh, [](double x) { return std::cosh(x); }, nullptr, kFO, Fl},
      {"tanh", tanh, [](double x) { return std::tanh(x); }, nullptr, kFO, Fl},
      {"sigmoid", sigmoid, [](double x) { return 1 / (1 + std::exp(-x)); }, nullptr, kFO, Fl, -20,
       20},
      {"relu", relu, [](double x) { return x > 0 ? x : 0.0; }, nullptr, kRealDTypes, S, -2, 2,
       kBool},
      {"gelu", [](const Tensor& x) { return gelu(x); },
       [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }, nullptr, kFO, Fl},
      {"silu", silu, [](double x) { return x / (1 + std::exp(-x)); }, nullptr, kFO, Fl},
      {"softplus", [](const Tensor& x) { return softplus(x); },
       [](double x) { return x > 20 ? x : std::log1p(std::exp(x)); }, nullptr, kFO, Fl, -5, 25},
      {"erf", erf, [](double x) { return std::erf(x); }, nullptr, kFO, Fl},
      {"floor", floor, [](double x) { return std::floor(x); }, nullptr, kRealDTypes, S, -4, 4,
       kBool},
      {"ceil", ceil, [](double x) { return std::ceil(x); }, nullptr, kRealDTypes, S, -4, 4, kBool},
      {"round", round, [](double x) { return std::nearbyint(x); }, nullptr, kRealDTypes, S, -4, 4,
       kBool},
      {"trunc", trunc, [](double x) { return std::trunc(x); }, nullptr, kRealDTypes, S, -4, 4,
       kBool},
      {"sign", sign, sgn, nullptr, kBIF, S},
      {"reciprocal", reciprocal, [](double x) { return 1 / x; }, [](cd z) { return 1.0 / z; }, kFOC,
       Fl, 0.5, 3},
      {"square", square, [](double x) { return x * x; }, [](cd z) { return z * z; }, kIFC, S, -2, 2,
       kBool},
      {"isnan", isnan, [](double x) { return static_cast<double>(std::isnan(x)); }, nullptr,
       kAllDTypes, Bo, -2, 2, kFloat32},
      {"isinf", isinf, [](double x) { return static_cast<double>(std::isinf(x)); }, nullptr,
       kAllDTypes, Bo, -2, 2, kFloat32},
      {"isfinite", isfinite, [](double x) { return static_cast<double>(std::isfinite(x)); },
       nullptr, kAllDTypes, Bo, -2, 2, kFloat32},
      {"logical_not", logical_not, [](double x) { return static_cast<double>(x == 0); }, nullptr,
       plus(kBIF, {}), Bo, -2, 2, kFloat32},
      {"bitwise_not", bitwise_not, [](double x) { return -x - 1; }, nullptr, kBI, S, -2, 2,
       kFloat32},
  };
}

OpEntry unary_entry(const UnaryRow& u) {
  OpEntry e;
  e.prim = u.prim;
  e.dtypes = u.dtypes;
  const double lo = u.lo, hi = u.hi;
  e.samples = [lo, hi](DType dt) { return unary_samples(dt, lo, hi); };
  auto op = u.op;
  e.op = [op](const std::vector<Tensor>& in) { return op(in[0]); };
  auto f = u.f;
  auto fc = u.fc;
  const OutK out = u.out;
  const std::string name = u.prim;
  e.reference = [f, fc, out, name](const std::vector<Ref>& in, DType dt) {
    if (dt == kComplex64 && fc && out == OutK::Real) {
      Ref r = map_c(in, [fc](const std::vector<cd>& v) { return fc(v[0]); });
      r.imag.clear();
      return r;
    }
    if (dt == kComplex64 && fc)
      return map_c(in, [fc](const std::vector<cd>& v) { return fc(v[0]); });
    if (dt == kComplex64)  // predicates on complex: any part
      return map_c(in, [f, name](const std::vector<cd>& v) {
        const double re = f(v[0].real()), im = f(v[0].imag());
        return cd(name == "isfinite" ? (re && im) : (re || im));
      });
    if (dt == kBool && name == "bitwise_not")
      return map_n(in, [](const std::vector<double>& v) { return double(v[0] == 0); });
    const DType od = expected_out(out, dt);
    return map_n(in, [f, od](const std::vector<double>& v) { return as_dtype(f(v[0]), od); });
  };
  e.expected_dtype = [out](const std::vector<Tensor>& in) {
    return expected_out(out, in[0].dtype());
  };
  e.errors.push_back(expect_error<ValueError>("undefined input", u.prim, [op] { op(Tensor()); }));
  if (u.bad != kFloat32 && !(u.bad == kComplex64 && u.fc)) {
    const DType bad = u.bad;
    e.errors.push_back(expect_error<DTypeError>(fmt::format("dtype {}", dtype_name(bad)), u.prim,
                                                [op, bad] { op(zeros({2}, bad)); }));
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Binary table
struct BinaryRow {
  const char* prim;
  Tensor (*op)(const Tensor&, const Tensor&);
  double (*f)(double, double);
  cd (*fc)(cd, cd);
  std::vector<DType> dtypes;
  OutK out;
  double lo = -2, hi = 2;
  DType bad = kFloat32;  // a dtype the op rejects (kFloat32 = none)
  bool nonzero_rhs = false;
};

double floor_div_ref(double a, double b) { return std::floor(a / b); }
double rem_ref(double a, double b) {
  double m = std::fmod(a, b);
  return (m != 0 && (b < 0) != (m < 0)) ? m + b : m;
}
double ipow_ref(double a, double b) { return std::pow(a, b); }  // samples keep b >= 0
double max_ref(double a, double b) {
  return (std::isnan(a) || std::isnan(b)) ? kNaN : std::max(a, b);
}
double min_ref(double a, double b) {
  return (std::isnan(a) || std::isnan(b)) ? kNaN : std::min(a, b);
}

std::vector<BinaryRow> binary_rows() {
  const OutK S = OutK::Same, Fl = OutK::Float, Bo = OutK::Bool;
  const std::vector<DType> all = kAllDTypes;
  return {
      {"add", add, [](double a, double b) { return a + b; }, [](cd a, cd b) { return a + b; }, all,
       S},
      {"sub", sub, [](double a, double b) { return a - b; }, [](cd a, cd b) { return a - b; }, kIFC,
       S, -2, 2, kBool},
      {"mul", mul, [](double a, double b) { return a * b; }, [](cd a, cd b) { return a * b; }, all,
       S},
      {"div", div, [](double a, double b) { return a / b; }, [](cd a, cd b) { return a / b; }, kFOC,
       Fl, 0.5, 3},
      {"floor_divide", floor_divide, floor_div_ref, nullptr, kRealDTypes, S, -5, 5, kBool, true},
      {"remainder", remainder, rem_ref, nullptr, kRealDTypes, S, -5, 5, kBool, true},
      {"pow", pow, ipow_ref, [](cd a, cd b) { return std::pow(a, b); }, kRealDTypes, S, 0.5, 2,
       kBool},
      {"maximum", maximum, max_ref, nullptr, kBIF, S, -2, 2, kComplex64},
      {"minimum", minimum, min_ref, nullptr, kBIF, S, -2, 2, kComplex64},
      {"atan2", atan2, [](double a, double b) { return std::atan2(a, b); }, nullptr, kFO, Fl, -2, 2,
       kComplex64},
      {"eq", eq, [](double a, double b) { return double(a == b); },
       [](cd a, cd b) { return cd(a == b); }, all, Bo, -1, 1},
      {"ne", ne, [](double a, double b) { return double(a != b); },
       [](cd a, cd b) { return cd(a != b); }, all, Bo, -1, 1},
      {"lt", lt, [](double a, double b) { return double(a < b); }, nullptr, kBIF, Bo, -2, 2,
       kComplex64},
      {"le", le, [](double a, double b) { return double(a <= b); }, nullptr, kBIF, Bo, -1, 1,
       kComplex64},
      {"gt", gt, [](double a, double b) { return double(a > b); }, nullptr, kBIF, Bo, -2, 2,
       kComplex64},
      {"ge", ge, [](double a, double b) { return double(a >= b); }, nullptr, kBIF, Bo, -1, 1,
       kComplex64},
      {"logical_and", logical_and, [](double a, double b) { return double(a != 0 && b != 0); },
       nullptr, kBIF, Bo},
      {"logical_or", logical_or, [](double a, double b) { return double(a != 0 || b != 0); },
       nullptr, kBIF, Bo},
      {"logical_xor", logical_xor, [](double a, double b) { return double((a != 0) != (b != 0)); },
       nullptr, kBIF, Bo},
      {"bitwise_and", bitwise_and,
       [](double a, double b) { return double(int64_t(a) & int64_t(b)); }, nullptr, kBI, S, -4, 4,
       kFloat64},
      {"bitwise_or", bitwise_or, [](double a, double b) { return double(int64_t(a) | int64_t(b)); },
       nullptr, kBI, S, -4, 4, kFloat64},
      {"bitwise_xor", bitwise_xor,
       [](double a, double b) { return double(int64_t(a) ^ int64_t(b)); }, nullptr, kBI, S, -4, 4,
       kFloat64},
  };
}

OpEntry binary_entry(const BinaryRow& b) {
  OpEntry e;
  e.prim = b.prim;
  e.dtypes = b.dtypes;
  const double lo = b.lo, hi = b.hi;
  const bool nz = b.nonzero_rhs;
  e.samples = [lo, hi, nz](DType dt) {
    auto s = binary_samples(dt, lo, hi);
    // Integer divisors: 2k+1 is never zero (floats in [-5, 5] hit zero with probability 0).
    if (nz && is_integral(dt))
      for (auto& x : s) x.inputs[1] = add(mul(x.inputs[1], 2), 1);
    return s;
  };
  auto op = b.op;
  e.op = [op](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
  auto f = b.f;
  auto fc = b.fc;
  const OutK out = b.out;
  e.reference = [f, fc, out](const std::vector<Ref>& in, DType dt) {
    if (dt == kComplex64 && out == OutK::Bool)
      return map_c(in, [fc](const std::vector<cd>& v) { return fc(v[0], v[1]); });
    if (dt == kComplex64)
      return map_c(in, [fc](const std::vector<cd>& v) { return fc(v[0], v[1]); });
    const DType od = expected_out(out, dt);
    return map_n(in, [f, od](const std::vector<double>& v) { return as_dtype(f(v[0], v[1]), od); });
  };
  e.expected_dtype = [out](const std::vector<Tensor>& in) {
    return expected_out(out, in[0].dtype());
  };
  e.errors.push_back(expect_error<ShapeError>(
      "shapes (3,) and (4,)", b.prim, [op] { op(zeros({3}, kInt32), zeros({4}, kInt32)); }));
  e.errors.push_back(
      expect_error<ValueError>("undefined input", b.prim, [op] { op(zeros({3}), Tensor()); }));
  if (b.bad != kFloat32) {
    const DType bad = b.bad;
    e.errors.push_back(
        expect_error<DTypeError>(fmt::format("dtype {}", dtype_name(bad)), b.prim,
                                 [op, bad] { op(zeros({2}, bad), zeros({2}, bad)); }));
  }
  if (b.nonzero_rhs)
    e.errors.push_back(expect_error<ValueError>(
        "integer division by zero", b.prim, [op] { op(ones({3}, kInt32), zeros({3}, kInt32)); }));
  return e;
}

// ---------------------------------------------------------------------------------------------
// Ternary entries: where, clamp, lerp
std::vector<Sample> ternary_samples(DType dt, bool bool_first, double lo, double hi) {
  auto first = [&](Shape s, uint64_t seed) {
    return bool_first ? random_tensor(std::move(s), kBool, -1, 1, seed)
                      : random_tensor(std::move(s), dt, lo, hi, seed);
  };
  return {
      {"same shape",
       {first({3, 4}, 41), random_tensor({3, 4}, dt, lo, hi, 42),
        random_tensor({3, 4}, dt, lo, hi, 43)}},
      {"broadcast",
       {first({3, 1}, 44), random_tensor({1, 4}, dt, lo, hi, 45),
        random_tensor({4}, dt, lo, hi, 46)}},
      {"0-d",
       {first({}, 47), random_tensor({2, 3}, dt, lo, hi, 48), random_tensor({}, dt, lo, hi, 49)}},
      {"empty",
       {first({0, 3}, 50), random_tensor({1, 3}, dt, lo, hi, 51),
        random_tensor({3}, dt, lo, hi, 52)}},
      {"non-contiguous",
       {bool_first ? noncontiguous({4, 6}, kBool, -1, 1, 53)
                   : noncontiguous({4, 6}, dt, lo, hi, 53),
        noncontiguous({4, 6}, dt, lo, hi, 54), random_tensor({4, 6}, dt, lo, hi, 55)}},
      {"large",
       {first({40000}, 56), random_tensor({40000}, dt, lo, hi, 57),
        random_tensor({1}, dt, lo, hi, 58)}},
  };
}

std::vector<OpEntry> ternary_entries() {
  OpEntry w;
  w.prim = "where";
  w.dtypes = kAllDTypes;
  w.samples = [](DType dt) { return ternary_samples(dt, true, -2, 2); };
  w.op = [](const std::vector<Tensor>& in) { return where(in[0], in[1], in[2]); };
  w.reference = [](const std::vector<Ref>& in, DType dt) {
    if (dt == kComplex64)
      return map_c(in, [](const std::vector<cd>& v) { return v[0].real() != 0 ? v[1] : v[2]; });
    return map_n(in, [](const std::vector<double>& v) { return v[0] != 0 ? v[1] : v[2]; });
  };
  w.errors = {expect_error<DTypeError>("float condition", "where",
                                       [] { where(zeros({2}), zeros({2}), zeros({2})); }),
              expect_error<ShapeError>("shapes", "where",
                                       [] { where(ones({3}, kBool), zeros({4}), zeros({3})); })};

  OpEntry c;
  c.prim = "clamp";
  c.dtypes = kRealDTypes;
  c.samples = [](DType dt) { return ternary_samples(dt, false, -3, 3); };
  c.op = [](const std::vector<Tensor>& in) { return clamp(in[0], in[1], in[2]); };
  c.reference = [](const std::vector<Ref>& in, DType) {
    return map_n(in,
                 [](const std::vector<double>& v) { return std::min(std::max(v[0], v[1]), v[2]); });
  };
  c.errors = {expect_error<DTypeError>("complex", "clamp",
                                       [] { clamp(zeros({2}, kComplex64), Scalar(0), Scalar(1)); }),
              expect_error<ValueError>("no bounds", "clamp",
                                       [] { clamp(zeros({2}), std::nullopt, std::nullopt); }),
              expect_error<ShapeError>("shapes", "clamp",
                                       [] { clamp(zeros({3}), zeros({4}), zeros({3})); })};

  OpEntry l;
  l.prim = "lerp";
  l.dtypes = kFloatDTypes;
  l.samples = [](DType dt) { return ternary_samples(dt, false, -1, 1.5); };
  l.op = [](const std::vector<Tensor>& in) { return lerp(in[0], in[1], in[2]); };
  l.reference = [](const std::vector<Ref>& in, DType) {
    return map_n(in, [](const std::vector<double>& v) { return v[0] + v[2] * (v[1] - v[0]); });
  };
  // a + w (b - a) in f16 loses a few ulps of |b - a| relative to the result.
  l.tolerance = [](DType dt) {
    Tolerance t = default_tolerance(dt);
    return Tolerance{t.rtol * 4, t.atol * 4};
  };
  l.errors = {
      expect_error<DTypeError>("mixed dtypes", "lerp",
                               [] { lerp(zeros({2}), zeros({2}, kFloat64), 0.5); }),
      expect_error<DTypeError>("int", "lerp",
                               [] { lerp(zeros({2}, kInt64), zeros({2}, kInt64), 0.5); }),
      expect_error<ShapeError>("shapes", "lerp", [] { lerp(zeros({3}), zeros({4}), 0.5); })};
  return {w, c, l};
}

// relu_backward(grad, y): grad where y > 0, else 0. No public op (relu's vjp calls it).
Tensor relu_backward(const Tensor& g, const Tensor& y) {
  static const Primitive& p = prim("relu_backward");
  return dispatch1(p, {g, y});
}

OpEntry relu_backward_entry() {
  OpEntry e;
  e.prim = "relu_backward";
  e.dtypes = kFloatDTypes;
  e.samples = [](DType dt) { return binary_samples(dt, -2, 2); };
  e.op = [](const std::vector<Tensor>& in) { return relu_backward(in[0], in[1]); };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return map_n(in, [](const std::vector<double>& v) { return v[1] > 0 ? v[0] : 0.0; });
  };
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  e.errors = {
      expect_error<DTypeError>("mixed dtypes", "relu_backward",
                               [] { relu_backward(zeros({2}), zeros({2}, kFloat64)); }),
      expect_error<DTypeError>("int", "relu_backward",
                               [] { relu_backward(zeros({2}, kInt32), zeros({2}, kInt32)); }),
      expect_error<ShapeError>("shapes", "relu_backward",
                               [] { relu_backward(zeros({3}), zeros({4})); })};
  return e;
}

std::vector<OpEntry>& entries() {
  static std::vector<OpEntry> all = [] {
    std::vector<OpEntry> v;
    for (const auto& u : unary_rows()) v.push_back(unary_entry(u));
    for (const auto& b : binary_rows()) v.push_back(binary_entry(b));
    for (auto& t : ternary_entries()) v.push_back(std::move(t));
    v.push_back(relu_backward_entry());
    return v;
  }();
  return all;
}

bool registered = register_entries(entries());

// ---- helpers for focused tests ----
template <class T>
std::vector<T> vals(const Tensor& t) {
  return t.to_vector<T>();
}
Tensor f32(std::vector<float> v) { return tensor(v); }

}  // namespace

TEST(Elementwise, Table) {
  for (const OpEntry& e : entries()) {
    SCOPED_TRACE(e.prim);
    check_entry(e);
  }
}

TEST(Elementwise, PromotionTable) {
  EXPECT_EQ(result_type(zeros({3}, kInt8), zeros({3}, kUInt8)), kInt16);
  EXPECT_EQ(add(zeros({3}, kInt8), zeros({3}, kUInt8)).dtype(), kInt16);
  EXPECT_EQ(result_type(zeros({3}, kInt32), Scalar(2.5)), kFloat32);
  EXPECT_EQ(result_type(zeros({3}, kInt32), Scalar(2)), kInt32);
  EXPECT_EQ(result_type(zeros({3}, kBool), Scalar(2)), kInt64);
  EXPECT_EQ(result_type(zeros({3}, kFloat16), Scalar(2.5)), kFloat16);
  EXPECT_EQ(result_type(zeros({3}, kFloat32), Scalar(Complex64(1, 1))), kComplex64);
  // 0-d tensors rank below dimensioned ones: they only raise the category.
  EXPECT_EQ(result_type(zeros({3}, kInt32), zeros({}, kInt64)), kInt32);
  EXPECT_EQ(result_type(zeros({3}, kFloat16), zeros({}, kFloat64)), kFloat16);
  // PyTorch: a higher-category 0-d tensor promotes with its own dtype (torch gives float64).
  EXPECT_EQ(result_type(zeros({3}, kInt32), zeros({}, kFloat64)), kFloat64);
  EXPECT_EQ(result_type(zeros({}, kInt32), zeros({}, kInt64)), kInt64);
  EXPECT_EQ(result_type(zeros({}, kInt32), Scalar(2.5)), kFloat32);
  EXPECT_EQ((zeros({3}, kUInt8) + zeros({}, kInt64)).dtype(), kUInt8);
  EXPECT_EQ(div(zeros({3}, kInt64), ones({3}, kInt64)).dtype(), kFloat32);
  EXPECT_EQ(exp(zeros({3}, kInt64)).dtype(), kFloat32);
  EXPECT_EQ(abs(zeros({3}, kComplex64)).dtype(), kFloat32);
  EXPECT_EQ(lt(zeros({3}, kInt32), Scalar(0.5)).dtype(), kBool);
}

TEST(Elementwise, ScalarOverloads) {
  Tensor x = tensor(std::vector<int32_t>{1, 2, 3});
  EXPECT_EQ(vals<int32_t>(x + 1), (std::vector<int32_t>{2, 3, 4}));
  EXPECT_EQ((x + 1).dtype(), kInt32);
  EXPECT_EQ(vals<float>(x + 0.5), (std::vector<float>{1.5f, 2.5f, 3.5f}));
  EXPECT_EQ(vals<int32_t>(10 - x), (std::vector<int32_t>{9, 8, 7}));
  EXPECT_EQ(vals<float>(6 / x), (std::vector<float>{6.f, 3.f, 2.f}));
  EXPECT_EQ(vals<int32_t>(2 * x), (std::vector<int32_t>{2, 4, 6}));
  EXPECT_EQ(vals<bool>(x >= 2), (std::vector<bool>{false, true, true}));
  EXPECT_EQ(vals<bool>(x == 2.0), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(vals<int32_t>(pow(x, 2)), (std::vector<int32_t>{1, 4, 9}));
  EXPECT_EQ(vals<int32_t>(add(x, x, 3)), (std::vector<int32_t>{4, 8, 12}));
  EXPECT_EQ(vals<float>(add(f32({1, 2}), f32({1, 1}), 0.5)), (std::vector<float>{1.5f, 2.5f}));
  EXPECT_THROW(add(x, x, 0.5), DTypeError);
  EXPECT_THROW(pow(x, -1), ValueError);
  EXPECT_EQ(vals<int64_t>(where(tensor(std::vector<bool>{true, false}), 1, 0)),
            (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(where(tensor(std::vector<bool>{true}), 1, 0.5).dtype(), kFloat32);
}

TEST(Elementwise, InPlaceMethods) {
  Tensor x = f32({1, 2, 3});
  x.add_(f32({1, 1, 1})).mul_(2).sub_(1).div_(f32({1, 5, 7}));
  EXPECT_EQ(vals<float>(x), (std::vector<float>{3.f, 1.f, 1.f}));
  x.clamp_(Scalar(1.5), std::nullopt);
  EXPECT_EQ(vals<float>(x), (std::vector<float>{3.f, 1.5f, 1.5f}));
  Tensor i = tensor(std::vector<int32_t>{4, 6});
  EXPECT_THROW(i.div_(2), DTypeError);  // float result into an int tensor
  i.add_(1);
  EXPECT_EQ(vals<int32_t>(i), (std::vector<int32_t>{5, 7}));
  // A broadcast view written in place keeps its storage.
  Tensor m = zeros({2, 3});
  m.add_(f32({1, 2, 3}));
  EXPECT_EQ(vals<float>(m), (std::vector<float>{1, 2, 3, 1, 2, 3}));
}

TEST(Elementwise, RoundHalfToEven) {
  Tensor x = f32({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.7f});
  EXPECT_EQ(vals<float>(round(x)), (std::vector<float>{0, 2, 2, -0.f, -2, -2, 4}));
  EXPECT_EQ(vals<double>(round(x.to(kFloat64))), (std::vector<double>{0, 2, 2, -0., -2, -2, 4}));
}

TEST(Elementwise, GeluExactVsTanh) {
  Tensor x = tensor(std::vector<double>{-3, -1, 0, 0.5, 2});
  auto exact = vals<double>(gelu(x)), approx = vals<double>(gelu(x, "tanh"));
  const double xs[] = {-3, -1, 0, 0.5, 2};
  for (int i = 0; i < 5; ++i) {
    const double v = xs[i];
    EXPECT_NEAR(exact[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-14);
    EXPECT_NEAR(
        approx[i],
        0.5 * v * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v))),
        1e-14);
  }
  EXPECT_GT(std::abs(exact[1] - approx[1]), 1e-5);  // really two formulas
  EXPECT_THROW(gelu(x, "fast"), ValueError);
}

TEST(Elementwise, SoftplusThreshold) {
  Tensor x = f32({30.f, 10.f, -10.f});
  auto y = vals<float>(softplus(x));
  EXPECT_EQ(y[0], 30.f);  // linear above the threshold
  EXPECT_NEAR(y[1], std::log1p(std::exp(10.0)), 1e-5);
  auto z = vals<float>(softplus(x, 2.0, 5.0));  // beta * x > threshold -> x
  EXPECT_EQ(z[1], 10.f);
  EXPECT_NEAR(z[2], std::log1p(std::exp(-20.0)) / 2, 1e-12);
  EXPECT_THROW(softplus(x, 0.0), ValueError);
}

TEST(Elementwise, RemainderAndFloorDivideSigns) {
  Tensor a = tensor(std::vector<int64_t>{-7, 7, -7, 7, std::numeric_limits<int64_t>::min()});
  Tensor b = tensor(std::vector<int64_t>{2, -2, -2, 2, -1});
  EXPECT_EQ(vals<int64_t>(remainder(a, b)), (std::vector<int64_t>{1, -1, -1, 1, 0}));
  EXPECT_EQ(vals<int64_t>(floor_divide(a, b)),
            (std::vector<int64_t>{-4, -4, 3, 3, std::numeric_limits<int64_t>::min()}));
  Tensor fa = f32({-7.5f, 7.5f, -7.5f}), fb = f32({2, -2, -2});
  EXPECT_EQ(vals<float>(remainder(fa, fb)), (std::vector<float>{0.5f, -0.5f, -1.5f}));
  EXPECT_EQ(vals<float>(a.to(kFloat32) % b.to(kFloat32))[0], 1.f);
  EXPECT_EQ(vals<float>(floor_divide(fa, fb)), (std::vector<float>{-4, -4, 3}));
  try {
    remainder(a, zeros({5}, kInt64));
    FAIL() << "expected an error";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[remainder] integer division by zero"),
              std::string::npos);
  }
  EXPECT_TRUE(std::isinf(vals<float>(floor_divide(f32({1}), f32({0})))[0]));
}

TEST(Elementwise, MaximumMinimumPropagateNaN) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int64_t n : {3, 100, 70000}) {  // scalar loop, SIMD rows, parallel SIMD
    std::vector<float> av(n, 1.f), bv(n, 2.f);
    av[0] = nan;
    bv[n - 1] = nan;
    Tensor a = f32(av), b = f32(bv);
    auto mx = vals<float>(maximum(a, b)), mn = vals<float>(minimum(b, a));
    EXPECT_TRUE(std::isnan(mx[0]) && std::isnan(mx[n - 1]) && std::isnan(mn[0]) &&
                std::isnan(mn[n - 1]));
    EXPECT_EQ(mx[1], 2.f);
    EXPECT_EQ(mn[1], 1.f);
  }
  EXPECT_TRUE(std::isnan(vals<float>(clamp(f32({nan}), Scalar(0), Scalar(1)))[0]));
}

TEST(Elementwise, SimdSpecialValues) {
  const float inf = std::numeric_limits<float>::infinity(),
              nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> xs = {100.f, -200.f, nan, inf, -inf, 0.f, -1.f, 1e-40f, 88.7f,
                                 1.f,   2.f,    3.f, 4.f, 5.f,  6.f, 7.f,  8.f};
  for (DType dt : {kFloat32, kFloat64}) {
    Tensor x = f32(xs).to(dt);
    auto e = vals<double>(exp(x)), l = vals<double>(log(x)), t = vals<double>(tanh(x)),
         s = vals<double>(sigmoid(x));
    for (size_t i = 0; i < xs.size(); ++i) {
      const double v = xs[i];
      auto same = [&](double got, double want) {
        if (std::isnan(want)) return std::isnan(got);
        if (std::isinf(want)) return got == want;
        if (want == 0) return std::abs(got) <= 1e-7;
        return std::abs(got - want) <= 4e-6 * std::abs(want);
      };
      // The reference rounded to the output dtype (float32 underflows to 0 where double does not).
      auto rd = [&](double w) { return dt == kFloat32 ? double(float(w)) : w; };
      const double want_e = rd(std::exp(v));
      EXPECT_TRUE(same(e[i], want_e)) << dtype_name(dt) << " exp(" << v << ") = " << e[i];
      EXPECT_TRUE(same(l[i], std::log(v))) << dtype_name(dt) << " log(" << v << ") = " << l[i];
      EXPECT_TRUE(same(t[i], std::tanh(v))) << dtype_name(dt) << " tanh(" << v << ") = " << t[i];
      EXPECT_TRUE(same(s[i], rd(1 / (1 + std::exp(-v)))))
          << dtype_name(dt) << " sigmoid(" << v << ") = " << s[i];
    }
  }
  auto e64 = vals<double>(exp(tensor(std::vector<double>{705, 709, 710, 0, 0, 0, 0, 0})));
  EXPECT_NEAR(e64[0] / std::exp(705.0), 1, 1e-14);
  EXPECT_NEAR(e64[1] / std::exp(709.0), 1, 1e-14);
  EXPECT_TRUE(std::isinf(e64[2]));
  auto r = vals<float>(relu(f32({nan, -1, 2, -0.f, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})));
  EXPECT_TRUE(std::isnan(r[0]));
  EXPECT_EQ(r[1], 0.f);
  EXPECT_EQ(r[2], 2.f);
}

TEST(Elementwise, IntegerWrapAndSpecials) {
  const int32_t mx = std::numeric_limits<int32_t>::max(), mn = std::numeric_limits<int32_t>::min();
  Tensor x = tensor(std::vector<int32_t>{mx, mn});
  EXPECT_EQ(vals<int32_t>(x + 1), (std::vector<int32_t>{mn, mn + 1}));
  EXPECT_EQ(vals<int32_t>(-x), (std::vector<int32_t>{mn + 1, mn}));
  EXPECT_EQ(vals<int32_t>(abs(x)), (std::vector<int32_t>{mx, mn}));
  EXPECT_EQ(vals<int32_t>(x * 2), (std::vector<int32_t>{-2, 0}));
  EXPECT_EQ(vals<int8_t>(square(tensor(std::vector<int8_t>{16, -128}))),
            (std::vector<int8_t>{0, 0}));
  EXPECT_EQ(vals<int64_t>(pow(tensor(std::vector<int64_t>{2, -1, 1, 3}),
                              tensor(std::vector<int64_t>{63, -3, -2, -1}))),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), -1, 1, 0}));
  EXPECT_THROW(neg(ones({2}, kBool)), DTypeError);
  EXPECT_THROW(sub(ones({2}, kBool), ones({2}, kBool)), DTypeError);
  EXPECT_EQ(vals<bool>(add(ones({1}, kBool), ones({1}, kBool))), std::vector<bool>{true});
  EXPECT_EQ(vals<bool>(isnan(f32({std::numeric_limits<float>::quiet_NaN(), 1}))),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(vals<bool>(isinf(tensor(std::vector<Complex64>{{1, INFINITY}, {1, 1}}))),
            (std::vector<bool>{true, false}));
  EXPECT_EQ(vals<float>(sign(f32({-2, 0, 3, std::numeric_limits<float>::quiet_NaN()}))),
            (std::vector<float>{-1, 0, 1, 0}));
}

TEST(Elementwise, WhereLerpClampBroadcast) {
  Tensor cond = tensor(std::vector<bool>{true, false, true}).reshape({3, 1});
  Tensor w = where(cond, f32({1, 2}), Tensor(zeros({})));
  EXPECT_EQ(w.shape(), (Shape{3, 2}));
  EXPECT_EQ(vals<float>(w), (std::vector<float>{1, 2, 0, 0, 1, 2}));
  EXPECT_EQ(where(cond, tensor(std::vector<int32_t>{1}), f32({0.5f})).dtype(), kFloat32);
  Tensor l = lerp(f32({0, 10}), f32({10, 20}).reshape({2, 1}), f32({0.25f, 1.f}));
  EXPECT_EQ(vals<float>(l), (std::vector<float>{2.5f, 10.f, 5.f, 20.f}));
  EXPECT_EQ(vals<float>(lerp(f32({0, 1}), f32({4, 5}), 0.5)), (std::vector<float>{2, 3}));
  Tensor c = clamp(f32({-5, 0, 5}), f32({-1}), f32({1, 1, 1}).reshape({3, 1}));
  EXPECT_EQ(c.shape(), (Shape{3, 3}));
  EXPECT_EQ(vals<float>(c)[0], -1.f);
  EXPECT_EQ(clamp(tensor(std::vector<int32_t>{-5, 5}), Scalar(-1), Scalar(1)).dtype(), kInt32);
  EXPECT_EQ(clamp(tensor(std::vector<int32_t>{-5, 5}), Scalar(0.5), std::nullopt).dtype(),
            kFloat32);
  EXPECT_EQ(vals<int32_t>(clamp(tensor(std::vector<int32_t>{-5, 5}), Scalar(-1), Scalar(1))),
            (std::vector<int32_t>{-1, 1}));
  EXPECT_EQ(vals<float>(clamp(f32({-5, 5}), std::nullopt, Scalar(2))), (std::vector<float>{-5, 2}));
}

TEST(Elementwise, OperatorsAndLogical) {
  Tensor a = tensor(std::vector<int32_t>{0b1100, 0b1010}),
         b = tensor(std::vector<int32_t>{0b1010, 0});
  EXPECT_EQ(vals<int32_t>(a & b), (std::vector<int32_t>{0b1000, 0}));
  EXPECT_EQ(vals<int32_t>(a | b), (std::vector<int32_t>{0b1110, 0b1010}));
  EXPECT_EQ(vals<int32_t>(a ^ b), (std::vector<int32_t>{0b0110, 0b1010}));
  EXPECT_EQ(vals<int32_t>(~a), (std::vector<int32_t>{~0b1100, ~0b1010}));
  EXPECT_EQ(vals<bool>(!b), (std::vector<bool>{false, true}));
  EXPECT_EQ(vals<bool>(logical_and(a, b)), (std::vector<bool>{true, false}));
  EXPECT_THROW(bitwise_and(f32({1}), f32({1})), DTypeError);
  EXPECT_THROW(lt(zeros({1}, kComplex64), zeros({1}, kComplex64)), DTypeError);
}

}  // namespace tessera::test
