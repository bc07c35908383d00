// Autodiff rules (vjp, jvp, vmap batching) for the elementwise primitives. Conventions: rules.h.
//
// Most differentiable elementwise primitives are described by their partial derivatives: one
// tensor per input, broadcastable to the output. vjp is then ct * conj(d_i) summed down to input
// i's shape, and jvp is sum_i t_i * d_i. Linear primitives (add, sub, neg, where) have their
// own rules, relu has a fused one (relu_backward), and piecewise-constant ones (floor, ...) have
// zero derivatives.
#include <cmath>
#include <functional>
#include <numbers>

#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::rules {
namespace {

// ---- helpers ----------------------------------------------------------------------------
/// A 0-d constant of like's dtype on like's device (broadcasts against anything in where/mul;
/// on the CPU it would stop a GPU gradient: ops refuse operands on two devices).
Tensor constant(double v, const Tensor& like) {
  return full({}, Scalar(v), TensorOptions(like.dtype(), like.device()));
}

/// Complex conjugate, with ops only: conj(z) = 2 re(z) - z (casting to real keeps the real part).
/// Real tensors are returned as they are.
Tensor conj(const Tensor& z) {
  if (!is_complex(z.dtype())) return z;
  const Tensor re = cast(cast(z, to_real_dtype(z.dtype())), z.dtype());
  return sub(add(re, re), z);
}

/// 1 - x.
Tensor one_minus(const Tensor& x) { return Scalar(1) - x; }

/// A bool mask as 0/1 in dtype dt.
Tensor as_weight(const Tensor& mask, DType dt) { return cast(mask, dt); }

// ---- rules from partial derivatives ----------------------------------------------------
/// Partial derivatives of the output w.r.t. each input (undefined: no gradient), each
/// broadcastable to the output shape. Only called for differentiable outputs.
using PartialsFn = std::function<std::vector<Tensor>(Inputs in, Inputs out, const Attrs&)>;

void set_from_partials(Primitive& p, PartialsFn partials) {
  p.vjp = [partials](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    if (!ct[0].defined()) return g;  // a non-floating output: nothing flows back
    const std::vector<Tensor> d = partials(in, out, a);
    for (size_t i = 0; i < in.size(); ++i)
      if (d[i].defined() && is_differentiable(in[i].dtype()))
        g[i] = to_dtype(sum_to(mul(ct[0], conj(d[i])), in[i].shape()), in[i].dtype());
    return g;
  };
  p.jvp = [partials](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    std::vector<Tensor> res(1);
    bool any = false;
    for (const Tensor& ti : t) any = any || ti.defined();
    if (!any || !is_differentiable(out[0].dtype())) return res;
    const std::vector<Tensor> d = partials(in, out, a);
    Tensor acc;
    for (size_t i = 0; i < in.size(); ++i)
      if (t[i].defined() && d[i].defined()) acc = add_opt(acc, mul(t[i], d[i]));
    if (!acc.defined()) return res;
    // Casting a complex tangent to a real output keeps its real part (abs of complex).
    acc = to_dtype(acc, out[0].dtype());
    // An input smaller than the output, with a partial that does not broadcast it up.
    res[0] = acc.shape() == out[0].shape() ? acc : acc.broadcast_to(out[0].shape());
    return res;
  };
  p.batch = batch_elementwise(p);
}

// ---- unary derivatives, in terms of the input x and the output y ------------------------
using UnaryDeriv = Tensor (*)(const Tensor& x, const Tensor& y, const Attrs& a);

/// sign(x) for real x; x / |x| (0 at 0) for complex x, the derivative direction of abs.
Tensor sgn(const Tensor& x) {
  if (!is_complex(x.dtype())) return sign(x);
  return where(eq(x, Scalar(0)), constant(0, x), div(x, abs(x)));
}

Tensor gelu_deriv(const Tensor& x, const Tensor&, const Attrs& a) {
  using std::numbers::inv_sqrtpi, std::numbers::sqrt2;
  if (a.get_or<std::string_view>("approximate", "none") == "tanh") {
    // y = x/2 (1 + tanh(u)), u = k (x + c x^3).
    constexpr double k = sqrt2 * inv_sqrtpi, c = 0.044715;
    const Tensor x2 = square(x);
    const Tensor th = tanh(mul(mul(x, add(mul(x2, Scalar(c)), Scalar(1))), Scalar(k)));
    const Tensor du = mul(add(mul(x2, Scalar(3 * c)), Scalar(1)), Scalar(k));
    const Tensor dth = mul(one_minus(square(th)), du);
    return mul(add(add(th, Scalar(1)), mul(x, dth)), Scalar(0.5));
  }
  // Phi(x) + x phi(x).
  const Tensor cdf = mul(add(erf(mul(x, Scalar(1 / sqrt2))), Scalar(1)), Scalar(0.5));
  const Tensor pdf = mul(exp(mul(square(x), Scalar(-0.5))), Scalar(inv_sqrtpi / sqrt2));
  return add(cdf, mul(x, pdf));
}

Tensor softplus_deriv(const Tensor& x, const Tensor&, const Attrs& a) {
  const double beta = a.get_or<double>("beta", 1.0),
               threshold = a.get_or<double>("threshold", 20.0);
  const Tensor bx = mul(x, Scalar(beta));
  // Linear above the threshold (like the kernel), sigmoid(beta x) below.
  return where(gt(bx, Scalar(threshold)), constant(1, x), sigmoid(bx));
}

struct UnaryRule {
  const char* name;
  UnaryDeriv d;
};

// exp keeps its hand-written example rule below.
const UnaryRule kUnaryRules[] = {
    // Not holomorphic for complex x: d|x| = re(conj(sgn(x)) dx), so the partial is conj(sgn).
    {"abs", [](const Tensor& x, const Tensor&, const Attrs&) { return conj(sgn(x)); }},
    {"exp2", [](const Tensor&, const Tensor& y,
                const Attrs&) { return mul(y, Scalar(std::numbers::ln2)); }},
    {"expm1", [](const Tensor&, const Tensor& y, const Attrs&) { return add(y, Scalar(1)); }},
    {"log", [](const Tensor& x, const Tensor&, const Attrs&) { return reciprocal(x); }},
    {"log2", [](const Tensor& x, const Tensor&,
                const Attrs&) { return reciprocal(mul(x, Scalar(std::numbers::ln2))); }},
    {"log1p", [](const Tensor& x, const Tensor&, const Attrs&) { return reciprocal(add(x, 1)); }},
    {"sqrt", [](const Tensor&, const Tensor& y, const Attrs&) { return Scalar(0.5) / y; }},
    {"rsqrt", [](const Tensor&, const Tensor& y,
                 const Attrs&) { return mul(mul(y, square(y)), Scalar(-0.5)); }},
    {"sin", [](const Tensor& x, const Tensor&, const Attrs&) { return cos(x); }},
    {"cos", [](const Tensor& x, const Tensor&, const Attrs&) { return neg(sin(x)); }},
    {"tan", [](const Tensor&, const Tensor& y, const Attrs&) { return add(square(y), 1); }},
    {"asin",
     [](const Tensor& x, const Tensor&, const Attrs&) { return rsqrt(one_minus(square(x))); }},
    {"acos",
     [](const Tensor& x, const Tensor&, const Attrs&) { return neg(rsqrt(one_minus(square(x)))); }},
    {"atan",
     [](const Tensor& x, const Tensor&, const Attrs&) { return reciprocal(add(square(x), 1)); }},
    {"sinh", [](const Tensor& x, const Tensor&, const Attrs&) { return cosh(x); }},
    {"cosh", [](const Tensor& x, const Tensor&, const Attrs&) { return sinh(x); }},
    {"tanh", [](const Tensor&, const Tensor& y, const Attrs&) { return one_minus(square(y)); }},
    {"sigmoid", [](const Tensor&, const Tensor& y, const Attrs&) { return mul(y, one_minus(y)); }},
    {"gelu", gelu_deriv},
    {"silu",
     [](const Tensor& x, const Tensor&, const Attrs&) {
       // s (1 + x (1 - s)), s = sigmoid(x).
       const Tensor s = sigmoid(x);
       return mul(s, add(mul(x, one_minus(s)), 1));
     }},
    {"softplus", softplus_deriv},
    {"erf",
     [](const Tensor& x, const Tensor&, const Attrs&) {
       return mul(exp(neg(square(x))), Scalar(2 * std::numbers::inv_sqrtpi));
     }},
    {"reciprocal", [](const Tensor&, const Tensor& y, const Attrs&) { return neg(square(y)); }},
    {"square", [](const Tensor& x, const Tensor&, const Attrs&) { return mul(x, Scalar(2)); }},
};

void set_unary(Primitive& p, UnaryDeriv d) {
  set_from_partials(p, [d](Inputs in, Inputs out, const Attrs& a) {
    return std::vector<Tensor>{d(in[0], out[0], a)};
  });
}

// ---- binary and ternary partials ----------------------------------------------------------
std::vector<Tensor> mul_partials(Inputs in, Inputs, const Attrs&) { return {in[1], in[0]}; }

std::vector<Tensor> div_partials(Inputs in, Inputs out, const Attrs&) {
  return {reciprocal(in[1]), neg(div(out[0], in[1]))};
}

// a - floor(a / b) b: the quotient is piecewise constant.
std::vector<Tensor> remainder_partials(Inputs in, Inputs, const Attrs&) {
  return {constant(1, in[0]), neg(floor_divide(in[0], in[1]))};
}

// Like PyTorch: no base gradient where the exponent is 0, and no exponent gradient where the
// base is 0 and the exponent >= 0 (the limit there, where log(0) would give NaN).
std::vector<Tensor> pow_partials(Inputs in, Inputs out, const Attrs&) {
  const Tensor &a = in[0], &b = in[1];
  const Tensor zero = constant(0, a);
  const Tensor b_re = is_complex(b.dtype()) ? cast(b, to_real_dtype(b.dtype())) : b;
  const Tensor da = where(eq(b, Scalar(0)), zero, mul(b, pow(a, sub(b, Scalar(1)))));
  const Tensor db =
      where(logical_and(eq(a, Scalar(0)), ge(b_re, Scalar(0))), zero, mul(out[0], log(a)));
  return {da, db};
}

// Like PyTorch: ties split the gradient equally; NaN comparisons give both inputs all of it.
std::vector<Tensor> extremum_partials(Inputs in, bool is_max) {
  const Tensor &a = in[0], &b = in[1];
  const Tensor half = constant(0.5, a), zero = constant(0, a), one = constant(1, a);
  const Tensor tie = eq(a, b);
  const Tensor a_loses = is_max ? lt(a, b) : gt(a, b);
  const Tensor b_loses = is_max ? gt(a, b) : lt(a, b);
  return {where(tie, half, where(a_loses, zero, one)), where(tie, half, where(b_loses, zero, one))};
}

std::vector<Tensor> atan2_partials(Inputs in, Inputs, const Attrs&) {
  const Tensor r = add(square(in[0]), square(in[1]));
  return {div(in[1], r), neg(div(in[0], r))};
}

// Masks as in PyTorch's clamp backward: x where lo <= x <= hi, lo where x < lo < hi, hi where
// x > hi or hi < lo (then the output is hi everywhere).
std::vector<Tensor> clamp_partials(Inputs in, Inputs, const Attrs&) {
  const Tensor &x = in[0], &lo = in[1], &hi = in[2];
  const DType dt = x.dtype();
  return {as_weight(logical_and(ge(x, lo), le(x, hi)), dt),
          as_weight(logical_and(lt(x, lo), lt(lo, hi)), dt),
          as_weight(logical_or(gt(x, hi), lt(hi, lo)), dt)};
}

// a + w (b - a).
std::vector<Tensor> lerp_partials(Inputs in, Inputs, const Attrs&) {
  return {one_minus(in[2]), in[2], sub(in[1], in[0])};
}

// ---- linear and piecewise-constant primitives ---------------------------------------------
void set_add(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const Scalar alpha = a.get_or<Scalar>("alpha", Scalar(1));
    return std::vector<Tensor>{sum_to(ct[0], in[0].shape()),
                               sum_to(mul(ct[0], alpha), in[1].shape())};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_elementwise(p);
}

void set_exp(Primitive& p) {
  p.vjp = [](Inputs, Inputs out, Inputs ct, const Attrs&) {
    return std::vector<Tensor>{mul(ct[0], out[0])};
  };
  p.jvp = [](Inputs, Inputs out, Inputs t, const Attrs&) {
    return std::vector<Tensor>{t[0].defined() ? mul(t[0], out[0]) : Tensor()};
  };
  p.batch = batch_elementwise(p);
}

void set_sub(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    if (!ct[0].defined()) return std::vector<Tensor>(2);
    return std::vector<Tensor>{sum_to(ct[0], in[0].shape()), sum_to(neg(ct[0]), in[1].shape())};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_elementwise(p);
}

void set_neg(Primitive& p) {
  p.vjp = [](Inputs, Inputs, Inputs ct, const Attrs&) {
    return std::vector<Tensor>{ct[0].defined() ? neg(ct[0]) : Tensor()};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_elementwise(p);
}

// where(c, a, b): the condition carries no gradient; a and b get ct where they were chosen.
void set_where(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    std::vector<Tensor> g(3);
    if (!ct[0].defined()) return g;
    const Tensor zero = constant(0, ct[0]);
    g[1] = sum_to(where(in[0], ct[0], zero), in[1].shape());
    g[2] = sum_to(where(in[0], zero, ct[0]), in[2].shape());
    return g;
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_elementwise(p);
}

// relu: the gradient passes where the output is positive, in one fused primitive
// (relu_backward) rather than gt, cast and mul: three passes over memory.
void set_relu(Primitive& p, const Primitive& relu_bw) {
  p.vjp = [&relu_bw](Inputs, Inputs out, Inputs ct, const Attrs&) {
    if (!ct[0].defined()) return std::vector<Tensor>(1);  // integer relu
    return std::vector<Tensor>{dispatch1(relu_bw, {ct[0], out[0]})};
  };
  p.jvp = [&relu_bw](Inputs, Inputs out, Inputs t, const Attrs&) {
    const bool any = t[0].defined() && is_differentiable(out[0].dtype());
    return std::vector<Tensor>{any ? dispatch1(relu_bw, {t[0], out[0]}) : Tensor()};
  };
  p.batch = batch_elementwise(p);
}

// relu_backward(g, y) is linear in g; its derivative in y is zero wherever it exists (a step
// at y = 0), so y gets a zero gradient (when wanted) and contributes no tangent.
void set_relu_backward(Primitive& p) {
  p.vjp = [&p](Inputs in, Inputs, Inputs ct, const Attrs&) {
    std::vector<Tensor> g(2);
    if (!ct[0].defined()) return g;
    g[0] = sum_to(dispatch1(p, {ct[0], in[1]}), in[0].shape());
    if (grad_wanted(1)) g[1] = zeros_like(in[1]);
    return g;
  };
  p.jvp = [&p](Inputs in, Inputs out, Inputs t, const Attrs&) {
    std::vector<Tensor> res(1);
    if (!t[0].defined()) return res;
    const Tensor r = dispatch1(p, {t[0], in[1]});
    res[0] = r.shape() == out[0].shape() ? r : r.broadcast_to(out[0].shape());
    return res;
  };
  p.batch = batch_elementwise(p);
  p.vjp_skips = kVjpSkipsOutputs;  // reads y (a floating input), never the output
}

// floor, ceil, round, trunc, sign: derivative zero wherever it exists.
void set_piecewise_constant(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    return std::vector<Tensor>{ct[0].defined() ? zeros_like(in[0]) : Tensor()};
  };
  p.jvp = [](Inputs, Inputs out, Inputs t, const Attrs&) {
    const bool zero = t[0].defined() && is_differentiable(out[0].dtype());
    return std::vector<Tensor>{zero ? zeros_like(out[0]) : Tensor()};
  };
  p.batch = batch_elementwise(p);
}

constexpr const char* kPiecewiseConstant[] = {"floor", "ceil", "round", "trunc", "sign"};

// Non-differentiable primitives: batch rule only.
constexpr const char* kBatchOnly[] = {
    "isnan",       "isinf",      "isfinite",    "logical_not", "bitwise_not", "floor_divide",
    "eq",          "ne",         "lt",          "le",          "gt",          "ge",
    "logical_and", "logical_or", "logical_xor", "bitwise_and", "bitwise_or",  "bitwise_xor"};

}  // namespace

void register_elementwise_rules(Registry& r) {
  set_add(r.get("add"));
  set_exp(r.get("exp"));
  set_sub(r.get("sub"));
  set_neg(r.get("neg"));
  set_where(r.get("where"));
  set_relu(r.get("relu"), r.get("relu_backward"));
  set_relu_backward(r.get("relu_backward"));
  for (const UnaryRule& u : kUnaryRules) set_unary(r.get(u.name), u.d);
  for (const char* name : kPiecewiseConstant) set_piecewise_constant(r.get(name));
  set_from_partials(r.get("mul"), mul_partials);
  set_from_partials(r.get("div"), div_partials);
  set_from_partials(r.get("remainder"), remainder_partials);
  set_from_partials(r.get("pow"), pow_partials);
  set_from_partials(r.get("maximum"), [](Inputs in, Inputs, const Attrs&) {
    return extremum_partials(in, /*is_max=*/true);
  });
  set_from_partials(r.get("minimum"), [](Inputs in, Inputs, const Attrs&) {
    return extremum_partials(in, /*is_max=*/false);
  });
  set_from_partials(r.get("atan2"), atan2_partials);
  set_from_partials(r.get("clamp"), clamp_partials);
  set_from_partials(r.get("lerp"), lerp_partials);
  for (const char* name : kBatchOnly) {
    Primitive& p = r.get(name);
    p.batch = batch_elementwise(p);
  }
}

}  // namespace tessera::rules
