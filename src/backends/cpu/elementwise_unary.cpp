// CPU kernels of the unary elementwise primitives: one functor per op (see elementwise.h for
// the conventions), one table row registering it.
#include <cmath>
#include <complex>

#include "backends/cpu/elementwise.h"

namespace tessera::cpu::ew {
namespace {

template <class C>
inline constexpr bool is_cplx_v = std::is_same_v<C, Complex64>;
template <class C>
inline constexpr bool is_float_v = std::is_floating_point_v<C>;

struct UnaryBase {
  explicit UnaryBase(const Attrs&) {}
  template <class T>
  using Out = T;
  static constexpr int kSimd = -1;
};
struct PredicateBase : UnaryBase {
  using UnaryBase::UnaryBase;
  template <class T>
  using Out = bool;
};

// Declares functor Name<C> with op name, dtype set, SIMD slot and the expression of x.
#define TS_UNARY_FUNCTOR(Name, Base, str, types, simd, ...) \
  template <class C>                                        \
  struct Name : Base {                                      \
    using Base::Base;                                       \
    static constexpr const char* kName = str;               \
    static constexpr uint32_t kTypes = types;               \
    static constexpr int kSimd = simd;                      \
    auto operator()(C x) const { __VA_ARGS__; }             \
  };

template <class C>
C abs_of(C x) {
  if constexpr (is_float_v<C>)
    return std::fabs(x);  // abs(-0.0) = 0.0 and the sign of a NaN cleared, as the SIMD path
  else if constexpr (std::is_signed_v<C>)
    return x < 0 ? wrap_neg(x) : x;
  else
    return x;
}
template <class C>
C sign_of(C x) {
  if constexpr (std::is_same_v<C, bool>)
    return x;
  else if constexpr (std::is_unsigned_v<C>)
    return static_cast<C>(x > 0);
  else
    return static_cast<C>((C(0) < x) - (x < C(0)));  // NaN -> 0, as PyTorch
}
template <class C>
C relu_of(C x) {
  if constexpr (std::is_unsigned_v<C>)
    return x;
  else
    return x < C(0) ? C(0) : x;  // NaN stays NaN
}
template <class C>
C sigmoid_of(C x) {  // exp of a non-positive number only: never overflows
  const C e = std::exp(-std::abs(x));
  return x >= C(0) ? C(1) / (C(1) + e) : e / (C(1) + e);
}
template <class C, class F>
C int_or(C x, F f) {  // rounding functions: integers are already whole
  if constexpr (std::is_integral_v<C>)
    return x;
  else
    return f(x);
}
template <class C>
bool isnan_of(C x) {
  if constexpr (is_cplx_v<C>)
    return std::isnan(x.real()) || std::isnan(x.imag());
  else if constexpr (is_float_v<C>)
    return std::isnan(x);
  else
    return false;
}
template <class C>
bool isinf_of(C x) {
  if constexpr (is_cplx_v<C>)
    return std::isinf(x.real()) || std::isinf(x.imag());
  else if constexpr (is_float_v<C>)
    return std::isinf(x);
  else
    return false;
}
template <class C>
bool isfinite_of(C x) {
  if constexpr (is_cplx_v<C>)
    return std::isfinite(x.real()) && std::isfinite(x.imag());
  else if constexpr (is_float_v<C>)
    return std::isfinite(x);
  else
    return true;
}

// abs of complex is real.
template <class C>
struct Abs : UnaryBase {
  using UnaryBase::UnaryBase;
  static constexpr const char* kName = "abs";
  static constexpr uint32_t kTypes = kI | kF | kC;
  static constexpr int kSimd = kSimdAbs;
  template <class T>
  using Out = std::conditional_t<std::is_same_v<T, Complex64>, float, T>;
  auto operator()(C x) const {
    if constexpr (is_cplx_v<C>)
      return std::abs(x);
    else
      return abs_of(x);
  }
};

TS_UNARY_FUNCTOR(Neg, UnaryBase, "neg", kI | kF | kC, kSimdNeg, return wrap_neg(x))
TS_UNARY_FUNCTOR(Exp, UnaryBase, "exp", kF | kC, kSimdExp, return std::exp(x))
TS_UNARY_FUNCTOR(Exp2, UnaryBase, "exp2", kF, -1, return std::exp2(x))
TS_UNARY_FUNCTOR(Expm1, UnaryBase, "expm1", kF, -1, return std::expm1(x))
TS_UNARY_FUNCTOR(Log, UnaryBase, "log", kF | kC, kSimdLog, return std::log(x))
TS_UNARY_FUNCTOR(Log2, UnaryBase, "log2", kF, -1, return std::log2(x))
TS_UNARY_FUNCTOR(Log1p, UnaryBase, "log1p", kF, -1, return std::log1p(x))
TS_UNARY_FUNCTOR(Sqrt, UnaryBase, "sqrt", kF | kC, kSimdSqrt, return std::sqrt(x))
TS_UNARY_FUNCTOR(Rsqrt, UnaryBase, "rsqrt", kF, -1, return C(1) / std::sqrt(x))
TS_UNARY_FUNCTOR(Sin, UnaryBase, "sin", kF | kC, -1, return std::sin(x))
TS_UNARY_FUNCTOR(Cos, UnaryBase, "cos", kF | kC, -1, return std::cos(x))
TS_UNARY_FUNCTOR(Tan, UnaryBase, "tan", kF, -1, return std::tan(x))
TS_UNARY_FUNCTOR(Asin, UnaryBase, "asin", kF, -1, return std::asin(x))
TS_UNARY_FUNCTOR(Acos, UnaryBase, "acos", kF, -1, return std::acos(x))
TS_UNARY_FUNCTOR(Atan, UnaryBase, "atan", kF, -1, return std::atan(x))
TS_UNARY_FUNCTOR(Sinh, UnaryBase, "sinh", kF, -1, return std::sinh(x))
TS_UNARY_FUNCTOR(Cosh, UnaryBase, "cosh", kF, -1, return std::cosh(x))
TS_UNARY_FUNCTOR(Tanh, UnaryBase, "tanh", kF, kSimdTanh, return std::tanh(x))
TS_UNARY_FUNCTOR(Sigmoid, UnaryBase, "sigmoid", kF, kSimdSigmoid, return sigmoid_of(x))
TS_UNARY_FUNCTOR(Relu, UnaryBase, "relu", kI | kF, kSimdRelu, return relu_of(x))
TS_UNARY_FUNCTOR(Silu, UnaryBase, "silu", kF, -1, return x / (C(1) + std::exp(-x)))
TS_UNARY_FUNCTOR(Erf, UnaryBase, "erf", kF, -1, return std::erf(x))
TS_UNARY_FUNCTOR(Floor, UnaryBase, "floor", kI | kF, -1,
                 return int_or(x, [](C v) { return std::floor(v); }))
TS_UNARY_FUNCTOR(Ceil, UnaryBase, "ceil", kI | kF, -1,
                 return int_or(x, [](C v) { return std::ceil(v); }))
// nearbyint rounds half to even in the default rounding mode (numpy and PyTorch agree).
TS_UNARY_FUNCTOR(Round, UnaryBase, "round", kI | kF, -1,
                 return int_or(x, [](C v) { return std::nearbyint(v); }))
TS_UNARY_FUNCTOR(Trunc, UnaryBase, "trunc", kI | kF, -1,
                 return int_or(x, [](C v) { return std::trunc(v); }))
TS_UNARY_FUNCTOR(Sign, UnaryBase, "sign", kB | kI | kF, -1, return sign_of(x))
TS_UNARY_FUNCTOR(Reciprocal, UnaryBase, "reciprocal", kF | kC, -1, return C(1) / x)
TS_UNARY_FUNCTOR(Square, UnaryBase, "square", kI | kF | kC, -1, return wrap_mul(x, x))
TS_UNARY_FUNCTOR(IsNan, PredicateBase, "isnan", kAll, -1, return isnan_of(x))
TS_UNARY_FUNCTOR(IsInf, PredicateBase, "isinf", kAll, -1, return isinf_of(x))
TS_UNARY_FUNCTOR(IsFinite, PredicateBase, "isfinite", kAll, -1, return isfinite_of(x))
TS_UNARY_FUNCTOR(LogicalNot, PredicateBase, "logical_not", kAll, -1, return x == C(0))
TS_UNARY_FUNCTOR(BitwiseNot, UnaryBase, "bitwise_not", kB | kI, -1,
                 if constexpr (std::is_same_v<C, bool>) return !x;
                 else return static_cast<C>(~x))
#undef TS_UNARY_FUNCTOR

template <class C>
struct Gelu : UnaryBase {
  static constexpr const char* kName = "gelu";
  static constexpr uint32_t kTypes = kF;
  bool tanh_approx;
  explicit Gelu(const Attrs& a)
      : UnaryBase(a), tanh_approx(a.get_or<std::string_view>("approximate", "none") == "tanh") {}
  C operator()(C x) const {
    if (tanh_approx) {
      constexpr C k = static_cast<C>(0.7978845608028654),
                  c = static_cast<C>(0.044715);  // sqrt(2/pi)
      return C(0.5) * x * (C(1) + std::tanh(k * (x + c * x * x * x)));
    }
    return C(0.5) * x * (C(1) + std::erf(x * static_cast<C>(0.7071067811865476)));
  }
};

template <class C>
struct Softplus : UnaryBase {
  static constexpr const char* kName = "softplus";
  static constexpr uint32_t kTypes = kF;
  C beta, threshold;
  explicit Softplus(const Attrs& a)
      : UnaryBase(a),
        beta(static_cast<C>(a.get_or<double>("beta", 1.0))),
        threshold(static_cast<C>(a.get_or<double>("threshold", 20.0))) {}
  // Linear above the threshold, where log1p(exp(.)) would equal x anyway (or overflow).
  C operator()(C x) const {
    return x * beta > threshold ? x : std::log1p(std::exp(x * beta)) / beta;
  }
};

}  // namespace

[[noreturn]] void unsupported(std::string_view op, DType dt) {
  fail<DTypeError>(op, "no CPU kernel for dtype {}", dtype_name(dt));
}

void register_unary_kernels(Registry& r) {
  struct Row {
    const char* name;
    KernelFn fn;
  };
  static constexpr Row kRows[] = {
      {"abs", unary_kernel<Abs>},
      {"neg", unary_kernel<Neg>},
      {"exp", unary_kernel<Exp>},
      {"exp2", unary_kernel<Exp2>},
      {"expm1", unary_kernel<Expm1>},
      {"log", unary_kernel<Log>},
      {"log2", unary_kernel<Log2>},
      {"log1p", unary_kernel<Log1p>},
      {"sqrt", unary_kernel<Sqrt>},
      {"rsqrt", unary_kernel<Rsqrt>},
      {"sin", unary_kernel<Sin>},
      {"cos", unary_kernel<Cos>},
      {"tan", unary_kernel<Tan>},
      {"asin", unary_kernel<Asin>},
      {"acos", unary_kernel<Acos>},
      {"atan", unary_kernel<Atan>},
      {"sinh", unary_kernel<Sinh>},
      {"cosh", unary_kernel<Cosh>},
      {"tanh", unary_kernel<Tanh>},
      {"sigmoid", unary_kernel<Sigmoid>},
      {"relu", unary_kernel<Relu>},
      {"gelu", unary_kernel<Gelu>},
      {"silu", unary_kernel<Silu>},
      {"softplus", unary_kernel<Softplus>},
      {"erf", unary_kernel<Erf>},
      {"floor", unary_kernel<Floor>},
      {"ceil", unary_kernel<Ceil>},
      {"round", unary_kernel<Round>},
      {"trunc", unary_kernel<Trunc>},
      {"sign", unary_kernel<Sign>},
      {"reciprocal", unary_kernel<Reciprocal>},
      {"square", unary_kernel<Square>},
      {"isnan", unary_kernel<IsNan>},
      {"isinf", unary_kernel<IsInf>},
      {"isfinite", unary_kernel<IsFinite>},
      {"logical_not", unary_kernel<LogicalNot>},
      {"bitwise_not", unary_kernel<BitwiseNot>},
  };
  for (const Row& row : kRows) r.add_kernel(row.name, {DeviceType::CPU, "builtin", row.fn});
}

}  // namespace tessera::cpu::ew
