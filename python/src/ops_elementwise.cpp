// Elementwise ops: unary math, binary arithmetic and comparisons (a Python number works as
// either operand where PyTorch allows it), clamp, lerp, where, result_type.
#include "ops_common.h"

namespace tessera::detail {
// The library's in-place casting rule (src/ops/internal.h, not an installed header).
bool can_cast(DType from, DType to);
}  // namespace tessera::detail

namespace tessera::py::ops {
namespace {

using T = const Tensor&;
using S = const Scalar&;
using UnaryFn = Tensor (*)(const Tensor&);
using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);
using ScalarFn = Tensor (*)(const Tensor&, const Scalar&);

struct Unary {
  const char* name;
  UnaryFn fn;
  const char* doc;
  bool method = true;  ///< PyTorch has Tensor.<name>
};

const Unary kUnary[] = {
    {"abs", &tessera::abs, "|input|."},
    {"absolute", &tessera::abs, "Alias of abs."},
    {"neg", &tessera::neg, "-input."},
    {"negative", &tessera::neg, "Alias of neg."},
    {"exp", &tessera::exp, "e ** input."},
    {"exp2", &tessera::exp2, "2 ** input."},
    {"expm1", &tessera::expm1, "exp(input) - 1, accurate near 0."},
    {"log", &tessera::log, "Natural logarithm."},
    {"log2", &tessera::log2, "Base-2 logarithm."},
    {"log1p", &tessera::log1p, "log(1 + input), accurate near 0."},
    {"sqrt", &tessera::sqrt, "Square root."},
    {"rsqrt", &tessera::rsqrt, "1 / sqrt(input)."},
    {"sin", &tessera::sin, "Sine."},
    {"cos", &tessera::cos, "Cosine."},
    {"tan", &tessera::tan, "Tangent."},
    {"asin", &tessera::asin, "Arcsine."},
    {"arcsin", &tessera::asin, "Alias of asin."},
    {"acos", &tessera::acos, "Arccosine."},
    {"arccos", &tessera::acos, "Alias of acos."},
    {"atan", &tessera::atan, "Arctangent."},
    {"arctan", &tessera::atan, "Alias of atan."},
    {"sinh", &tessera::sinh, "Hyperbolic sine."},
    {"cosh", &tessera::cosh, "Hyperbolic cosine."},
    {"tanh", &tessera::tanh, "Hyperbolic tangent."},
    {"sigmoid", &tessera::sigmoid, "1 / (1 + exp(-input))."},
    {"relu", &tessera::relu, "max(input, 0)."},
    {"silu", &tessera::silu, "input * sigmoid(input).", false},
    {"erf", &tessera::erf, "The error function."},
    {"floor", &tessera::floor, "Rounds down."},
    {"ceil", &tessera::ceil, "Rounds up."},
    {"round", &tessera::round, "Rounds to the nearest integer, halves to even."},
    {"trunc", &tessera::trunc, "Rounds toward zero."},
    {"fix", &tessera::trunc, "Alias of trunc."},
    {"sign", &tessera::sign, "-1, 0 or 1 by the sign of input."},
    {"reciprocal", &tessera::reciprocal, "1 / input."},
    {"square", &tessera::square, "input * input."},
    {"isnan", &tessera::isnan, "True where input is NaN."},
    {"isinf", &tessera::isinf, "True where input is +-inf."},
    {"isfinite", &tessera::isfinite, "True where input is neither NaN nor +-inf."},
    {"logical_not", &tessera::logical_not, "True where input is zero."},
    {"bitwise_not", &tessera::bitwise_not, "~input (integer and bool tensors)."},
};

void def_unary(nb::module_& m, nb::class_<Tensor>& c) {
  for (const Unary& u : kUnary) {
    auto f = [fn = u.fn](T x) {
      ReleaseGilIfLarge gil(work(x));
      return fn(x);
    };
    m.def(u.name, f, nb::arg("input"), u.doc);
    if (u.method) c.def(u.name, f, u.doc);
  }
  m.def(
      "gelu",
      [](T x, const std::string& approximate) {
        ReleaseGilIfLarge gil(work(x));
        return gelu(x, approximate);
      },
      nb::arg("input"), nb::kw_only(), nb::arg("approximate") = "none",
      "Gaussian error linear unit; approximate 'none' (erf) or 'tanh'.");
  m.def(
      "softplus",
      [](T x, double beta, double threshold) {
        ReleaseGilIfLarge gil(work(x));
        return softplus(x, beta, threshold);
      },
      nb::arg("input"), nb::arg("beta") = 1.0, nb::arg("threshold") = 20.0,
      "log(1 + exp(beta * input)) / beta, linear where beta * input > threshold.");
}

// ---- binary ---------------------------------------------------------------------------------

struct Binary {
  const char* name;
  BinaryFn tt;
  ScalarFn ts;        ///< the C++ overload for a number operand, or null (then a 0-d operand)
  bool number_first;  ///< PyTorch accepts a number as input too
  const char* doc;
};

const Binary kBinary[] = {
    {"mul", &tessera::mul, &tessera::mul, true, "input * other (broadcast)."},
    {"multiply", &tessera::mul, &tessera::mul, true, "Alias of mul."},
    {"true_divide", &tessera::div, &tessera::div, true, "input / other (true division)."},
    {"floor_divide", &tessera::floor_divide, nullptr, true, "floor(input / other)."},
    {"remainder", &tessera::remainder, nullptr, true,
     "Python's modulo: the result has the sign of other."},
    {"maximum", &tessera::maximum, nullptr, false, "Elementwise max (NaN propagates)."},
    {"minimum", &tessera::minimum, nullptr, false, "Elementwise min (NaN propagates)."},
    {"atan2", &tessera::atan2, nullptr, false, "The angle of the point (other, input)."},
    {"arctan2", &tessera::atan2, nullptr, false, "Alias of atan2."},
    {"eq", &tessera::eq, &tessera::eq, false, "input == other."},
    {"ne", &tessera::ne, &tessera::ne, false, "input != other."},
    {"not_equal", &tessera::ne, &tessera::ne, false, "Alias of ne."},
    {"lt", &tessera::lt, &tessera::lt, false, "input < other."},
    {"less", &tessera::lt, &tessera::lt, false, "Alias of lt."},
    {"le", &tessera::le, &tessera::le, false, "input <= other."},
    {"less_equal", &tessera::le, &tessera::le, false, "Alias of le."},
    {"gt", &tessera::gt, &tessera::gt, false, "input > other."},
    {"greater", &tessera::gt, &tessera::gt, false, "Alias of gt."},
    {"ge", &tessera::ge, &tessera::ge, false, "input >= other."},
    {"greater_equal", &tessera::ge, &tessera::ge, false, "Alias of ge."},
    {"logical_and", &tessera::logical_and, nullptr, false, "Both non-zero."},
    {"logical_or", &tessera::logical_or, nullptr, false, "Either non-zero."},
    {"logical_xor", &tessera::logical_xor, nullptr, false, "Exactly one non-zero."},
    {"bitwise_and", &tessera::bitwise_and, nullptr, true, "input & other (integer and bool)."},
    {"bitwise_or", &tessera::bitwise_or, nullptr, true, "input | other (integer and bool)."},
    {"bitwise_xor", &tessera::bitwise_xor, nullptr, true, "input ^ other (integer and bool)."},
};

void def_binary_table(nb::module_& m, nb::class_<Tensor>& c) {
  for (const Binary& b : kBinary) {
    auto tt = [fn = b.tt](T x, T y) {
      ReleaseGilIfLarge gil(work(x, y));
      return fn(x, y);
    };
    auto ts = [fn = b.tt, sfn = b.ts](T x, S y) {
      ReleaseGilIfLarge gil(work(x));
      return sfn ? sfn(x, y) : fn(x, operand(x, y));
    };
    m.def(b.name, tt, nb::arg("input"), nb::arg("other"), b.doc);
    m.def(b.name, ts, nb::arg("input"), nb::arg("other"));
    if (b.number_first)
      m.def(
          b.name,
          [fn = b.tt](S x, T y) {
            ReleaseGilIfLarge gil(work(y));
            return fn(operand(y, x), y);
          },
          nb::arg("input"), nb::arg("other"));
    c.def(b.name, tt, nb::arg("other"), b.doc);
    c.def(b.name, ts, nb::arg("other"));
  }
}

// alpha absent or 1 (an int or bool; a float alpha goes through the checked path). Absent is
// None, not 1, so the common call converts no default.
using Alpha = const std::optional<Scalar>&;
bool is_one(Alpha alpha) {
  return !alpha || ((alpha->is_integral() || alpha->is_bool()) && alpha->to<int64_t>() == 1);
}

Scalar negated(S s) {
  if (s.is_complex()) return -s.to<std::complex<double>>();
  if (s.is_floating()) return -s.to<double>();
  return -s.to<int64_t>();
}

Tensor add_alpha(T x, T y, Alpha alpha) {
  ReleaseGilIfLarge gil(work(x, y));
  return is_one(alpha) ? add(x, y) : add(x, y, *alpha);
}

Tensor sub_alpha(T x, T y, Alpha alpha) {
  ReleaseGilIfLarge gil(work(x, y));
  return is_one(alpha) ? sub(x, y) : add(x, y, negated(*alpha));
}

// div with rounding_mode "trunc": integers round toward zero exactly (no trip through float).
Tensor trunc_divide(T x, T y) {
  if (!is_integral(result_type(x, y))) return trunc(div(x, y));
  const Tensor q = floor_divide(x, y);
  const Tensor inexact = ne(remainder(x, y), Scalar(0));
  const Tensor opposite = ne(lt(x, Scalar(0)), lt(y, Scalar(0)));
  return where(logical_and(inexact, opposite), add(q, Scalar(1)), q);
}

Tensor divide(T x, T y, const std::optional<std::string>& mode) {
  ReleaseGilIfLarge gil(work(x, y));
  if (!mode) return div(x, y);
  if (*mode == "floor") return floor_divide(x, y);
  if (*mode == "trunc") return trunc_divide(x, y);
  fail<ValueError>("div", "rounding_mode must be None, 'trunc' or 'floor', got '{}'", *mode);
}

// Binds op(input, other, <kw>) for (Tensor, Tensor), (Tensor, number) and (number, Tensor),
// and the method, from one (Tensor, Tensor, K) function.
template <class K, class Kw>
void def_tensor_or_number(nb::module_& m, nb::class_<Tensor>& c, const char* name,
                          Tensor (*fn)(T, T, K), const Kw& kw, const char* doc) {
  auto ts = [fn](T x, S y, K k) { return fn(x, operand(x, y), k); };
  auto st = [fn](S x, T y, K k) { return fn(operand(y, x), y, k); };
  m.def(name, fn, nb::arg("input"), nb::arg("other"), nb::kw_only(), kw, doc);
  m.def(name, ts, nb::arg("input"), nb::arg("other"), nb::kw_only(), kw);
  m.def(name, st, nb::arg("input"), nb::arg("other"), nb::kw_only(), kw);
  c.def(name, fn, nb::arg("other"), nb::kw_only(), kw, doc);
  c.def(name, ts, nb::arg("other"), nb::kw_only(), kw);
}

void def_arithmetic(nb::module_& m, nb::class_<Tensor>& c) {
  for (const char* name : {"add", "sub", "subtract"}) {
    const bool is_add = name[0] == 'a';
    def_tensor_or_number<Alpha>(
        m, c, name, is_add ? &add_alpha : &sub_alpha, nb::arg("alpha").sig("1") = nb::none(),
        is_add ? "input + alpha * other (broadcast)." : "input - alpha * other (broadcast).");
  }
  for (const char* name : {"div", "divide"})
    def_tensor_or_number<const std::optional<std::string>&>(
        m, c, name, &divide, nb::arg("rounding_mode") = nb::none(),
        "input / other; rounding_mode None (true division), 'trunc' or 'floor'.");
  auto pow_tt = [](T x, T y) {
    ReleaseGilIfLarge gil(work(x, y));
    return pow(x, y);
  };
  auto pow_ts = [](T x, S y) {
    ReleaseGilIfLarge gil(work(x));
    return pow(x, y);
  };
  const char* pow_doc = "input ** exponent (broadcast).";
  m.def("pow", pow_tt, nb::arg("input"), nb::arg("exponent"), pow_doc);
  m.def("pow", pow_ts, nb::arg("input"), nb::arg("exponent"));
  m.def(
      "pow", [](S x, T y) { return pow(operand(y, x), y); }, nb::arg("input"), nb::arg("exponent"));
  c.def("pow", pow_tt, nb::arg("exponent"), pow_doc);
  c.def("pow", pow_ts, nb::arg("exponent"));
}

// ---- clamp, lerp, where ---------------------------------------------------------------------

using Bound = std::optional<std::variant<Tensor, Scalar>>;

Tensor bound_tensor(T x, const Bound& b) {
  if (!b) return {};
  if (const auto* t = std::get_if<Tensor>(&*b)) return *t;
  return operand(x, std::get<Scalar>(*b));
}

Tensor clamp_any(T x, const Bound& lo, const Bound& hi) {
  ReleaseGilIfLarge gil(work(x));
  const bool lo_num = !lo || std::holds_alternative<Scalar>(*lo);
  const bool hi_num = !hi || std::holds_alternative<Scalar>(*hi);
  if (lo_num && hi_num) {
    auto value = [](const Bound& b) -> std::optional<Scalar> {
      if (!b) return std::nullopt;
      return std::get<Scalar>(*b);
    };
    return clamp(x, value(lo), value(hi));
  }
  const Tensor l = bound_tensor(x, lo), h = bound_tensor(x, hi);
  if (!l.defined()) return minimum(x, h);
  if (!h.defined()) return maximum(x, l);
  return clamp(x, l, h);
}

Tensor where_any(T cond, const std::variant<Tensor, Scalar>& a,
                 const std::variant<Tensor, Scalar>& b) {
  const Tensor* ta = std::get_if<Tensor>(&a);
  const Tensor* tb = std::get_if<Tensor>(&b);
  ReleaseGilIfLarge gil(work(cond));
  if (!ta && !tb) return where(cond, std::get<Scalar>(a), std::get<Scalar>(b));
  if (ta && tb) return where(cond, *ta, *tb);
  if (ta) return where(cond, *ta, operand(*ta, std::get<Scalar>(b)));
  return where(cond, operand(*tb, std::get<Scalar>(a)), *tb);
}

void def_ternary(nb::module_& m, nb::class_<Tensor>& c) {
  for (const char* name : {"clamp", "clip"})
    def_both(m, c, name, &clamp_any, nb::arg("min").none() = nb::none(),
             nb::arg("max").none() = nb::none(),
             "Limits input to [min, max] (numbers or broadcast tensors; either may be None).");
  auto lerp_s = [](T a, T b, S w) {
    ReleaseGilIfLarge gil(work(a, b));
    return lerp(a, b, w);
  };
  auto lerp_t = [](T a, T b, T w) {
    ReleaseGilIfLarge gil(work(a, b));
    return lerp(a, b, w);
  };
  def_both(m, c, "lerp", lerp_t, nb::arg("end"), nb::arg("weight"),
           "input + weight * (end - input); end and weight have input's dtype.");
  def_both(m, c, "lerp", lerp_s, nb::arg("end"), nb::arg("weight"));
  m.def("where", &where_any, nb::arg("condition"), nb::arg("input"), nb::arg("other"),
        "input where condition is true, else other (tensors or numbers, broadcast).");
  m.def(
      "where",
      [](T cond) {
        const Tensor nz = nonzero(cond);
        std::vector<Tensor> cols;
        for (int64_t d = 0; d < nz.size(1); ++d) cols.push_back(nz.select(1, d));
        return tensor_tuple(std::move(cols));
      },
      nb::arg("condition"), "Same as nonzero(condition, as_tuple=True).");
  c.def(
      "where",
      [](T self, T cond, const std::variant<Tensor, Scalar>& other) {
        return where_any(cond, self, other);
      },
      nb::arg("condition"), nb::arg("other"), "self where condition is true, else other.");
}

void def_types(nb::module_& m) {
  const char* doc =
      "The dtype an arithmetic op on tensor and other gives (PyTorch's rules: "
      "0-d tensors and numbers rank below dimensioned tensors).";
  m.def(
      "result_type", [](T a, T b) { return result_type(a, b); }, nb::arg("tensor1"),
      nb::arg("tensor2"), doc);
  m.def(
      "result_type", [](T a, S b) { return result_type(a, b); }, nb::arg("tensor1"),
      nb::arg("tensor2"));
  m.def(
      "result_type", [](S a, T b) { return result_type(b, a); }, nb::arg("tensor1"),
      nb::arg("tensor2"));
  m.def(
      "result_type", [](S a, S b) { return result_type(scalar_tensor(a), b); }, nb::arg("tensor1"),
      nb::arg("tensor2"));
  m.def("can_cast", &detail::can_cast, nb::arg("from_"), nb::arg("to"),
        "Whether an in-place op may write a from_ value into a to tensor (no float to int, "
        "complex to real or non-bool to bool).");
}

}  // namespace

void init_elementwise(nb::module_& m, nb::class_<Tensor>& c) {
  def_unary(m, c);
  def_arithmetic(m, c);
  def_binary_table(m, c);
  def_ternary(m, c);
  def_types(m);
}

}  // namespace tessera::py::ops
