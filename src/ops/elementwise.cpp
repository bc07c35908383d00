// Elementwise primitives (one table row each) and the public elementwise ops: argument checks,
// PyTorch type promotion, then the funnel. Kernels never see mixed dtypes: the ops cast first.
#include "tessera/ops/elementwise.h"

#include <array>
#include <utility>

#include "ops/internal.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

// ---- dtype categories a primitive accepts ----
enum Cat : uint8_t { B = 1, I = 2, F = 4, C = 8, kAnyCat = B | I | F | C };
uint8_t category(DType d) { return d == kBool ? B : is_integral(d) ? I : is_floating(d) ? F : C; }

/// Output dtype: like the input, bool (predicates), or the real counterpart (abs of complex).
enum class Out : uint8_t { Same, Bool, Real };

struct OpDef {
  const char* name;
  uint8_t cats;     ///< categories the kernel accepts
  bool float_only;  ///< the public op computes integer/bool inputs in float32
  Out out;
  uint32_t traits;
  double flops;  ///< per output element, for the profiler/scheduler
};

constexpr uint32_t kND = kNonDifferentiable;

// Rows: name, categories, float-only, output, traits, flops/element.
constexpr std::array kUnary = {
    OpDef{"abs", I | F | C, false, Out::Real, kNoTraits, 1},
    OpDef{"neg", I | F | C, false, Out::Same, kNoTraits, 1},
    OpDef{"exp", F | C, true, Out::Same, kNoTraits, 10},
    OpDef{"exp2", F, true, Out::Same, kNoTraits, 10},
    OpDef{"expm1", F, true, Out::Same, kNoTraits, 10},
    OpDef{"log", F | C, true, Out::Same, kNoTraits, 10},
    OpDef{"log2", F, true, Out::Same, kNoTraits, 10},
    OpDef{"log1p", F, true, Out::Same, kNoTraits, 10},
    OpDef{"sqrt", F | C, true, Out::Same, kNoTraits, 1},
    OpDef{"rsqrt", F, true, Out::Same, kNoTraits, 2},
    OpDef{"sin", F | C, true, Out::Same, kNoTraits, 10},
    OpDef{"cos", F | C, true, Out::Same, kNoTraits, 10},
    OpDef{"tan", F, true, Out::Same, kNoTraits, 10},
    OpDef{"asin", F, true, Out::Same, kNoTraits, 10},
    OpDef{"acos", F, true, Out::Same, kNoTraits, 10},
    OpDef{"atan", F, true, Out::Same, kNoTraits, 10},
    OpDef{"sinh", F, true, Out::Same, kNoTraits, 10},
    OpDef{"cosh", F, true, Out::Same, kNoTraits, 10},
    OpDef{"tanh", F, true, Out::Same, kNoTraits, 10},
    OpDef{"sigmoid", F, true, Out::Same, kNoTraits, 12},
    OpDef{"relu", I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"gelu", F, true, Out::Same, kNoTraits, 15},
    OpDef{"silu", F, true, Out::Same, kNoTraits, 12},
    OpDef{"softplus", F, true, Out::Same, kNoTraits, 15},
    OpDef{"erf", F, true, Out::Same, kNoTraits, 10},
    OpDef{"floor", I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"ceil", I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"round", I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"trunc", I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"sign", B | I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"reciprocal", F | C, true, Out::Same, kNoTraits, 1},
    OpDef{"square", I | F | C, false, Out::Same, kNoTraits, 1},
    OpDef{"isnan", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"isinf", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"isfinite", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"logical_not", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"bitwise_not", B | I, false, Out::Same, kND, 1},
};

constexpr std::array kBinary = {
    OpDef{"add", kAnyCat, false, Out::Same, kNoTraits, 1},
    OpDef{"sub", I | F | C, false, Out::Same, kNoTraits, 1},
    OpDef{"mul", kAnyCat, false, Out::Same, kNoTraits, 1},
    OpDef{"div", F | C, true, Out::Same, kNoTraits, 1},
    OpDef{"floor_divide", I | F, false, Out::Same, kND, 4},
    OpDef{"remainder", I | F, false, Out::Same, kNoTraits, 4},
    OpDef{"pow", I | F | C, false, Out::Same, kNoTraits, 10},
    OpDef{"maximum", B | I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"minimum", B | I | F, false, Out::Same, kNoTraits, 1},
    OpDef{"atan2", F, true, Out::Same, kNoTraits, 10},
    OpDef{"eq", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"ne", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"lt", B | I | F, false, Out::Bool, kND, 1},
    OpDef{"le", B | I | F, false, Out::Bool, kND, 1},
    OpDef{"gt", B | I | F, false, Out::Bool, kND, 1},
    OpDef{"ge", B | I | F, false, Out::Bool, kND, 1},
    OpDef{"logical_and", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"logical_or", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"logical_xor", kAnyCat, false, Out::Bool, kND, 1},
    OpDef{"bitwise_and", B | I, false, Out::Same, kND, 1},
    OpDef{"bitwise_or", B | I, false, Out::Same, kND, 1},
    OpDef{"bitwise_xor", B | I, false, Out::Same, kND, 1},
    // ReLU's backward fused into one pass: grad where y > 0, else 0 (inputs grad, y = relu(x)).
    // No public op: the relu autograd rule calls the primitive.
    OpDef{"relu_backward", F, false, Out::Same, kNoTraits, 1},
};

// Ternary: input 0 is the condition (where) or the value (clamp, lerp); 1 and 2 share a dtype.
constexpr std::array kTernary = {
    OpDef{"where", kAnyCat, false, Out::Same, kNoTraits, 1},
    OpDef{"clamp", I | F, false, Out::Same, kNoTraits, 2},
    OpDef{"lerp", F, false, Out::Same, kNoTraits, 4},
};

// ---- shape/dtype inference ----
void check_cats(const OpDef& d, DType dt) {
  if (!(category(dt) & d.cats))
    fail<DTypeError>(d.name, "does not support dtype {}", dtype_name(dt));
}

DType out_dtype(const OpDef& d, DType in) {
  return d.out == Out::Bool ? kBool : d.out == Out::Real ? to_real_dtype(in) : in;
}

Shape broadcast_pair(const Shape& a, const Shape& b, std::string_view op) {
  if (a == b) return a;
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i + a.size() < n ? 1 : a[i + a.size() - n];
    const int64_t db = i + b.size() < n ? 1 : b[i + b.size() - n];
    if (da != db && da != 1 && db != 1)
      fail<ShapeError>(op,
                       "shapes {} and {} cannot be broadcast together (size {} vs {} at dim {})",
                       shape_str(a), shape_str(b), da, db, i);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void check_same_dtype(const OpDef& d, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    fail<DTypeError>(d.name, "expected inputs of one dtype, got {} and {}", dtype_name(a.dtype()),
                     dtype_name(b.dtype()));
}

template <size_t K>
std::vector<TensorMeta> unary_infer(Inputs in, const Attrs&) {
  constexpr const OpDef& d = kUnary[K];
  check_cats(d, in[0].dtype());
  return {{in[0].shape(), out_dtype(d, in[0].dtype())}};
}

template <size_t K>
std::vector<TensorMeta> binary_infer(Inputs in, const Attrs&) {
  constexpr const OpDef& d = kBinary[K];
  check_same_dtype(d, in[0], in[1]);
  check_cats(d, in[0].dtype());
  return {{broadcast_pair(in[0].shape(), in[1].shape(), d.name), out_dtype(d, in[0].dtype())}};
}

template <size_t K>
std::vector<TensorMeta> ternary_infer(Inputs in, const Attrs&) {
  constexpr const OpDef& d = kTernary[K];
  if (K == 0 && in[0].dtype() != kBool)  // where's condition
    fail<DTypeError>(d.name, "condition must be a bool tensor, got {}", dtype_name(in[0].dtype()));
  if (K != 0) check_same_dtype(d, in[0], in[1]);
  check_same_dtype(d, in[1], in[2]);
  check_cats(d, in[1].dtype());
  Shape s =
      broadcast_pair(broadcast_pair(in[0].shape(), in[1].shape(), d.name), in[2].shape(), d.name);
  return {{std::move(s), in[1].dtype()}};
}

template <const auto& kTable, size_t K>
Cost table_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  double bytes = static_cast<double>(out[0].nbytes());
  for (const Tensor& t : in) bytes += static_cast<double>(t.nbytes());
  return {kTable[K].flops * static_cast<double>(out[0].numel()), bytes};
}

template <const auto& kTable, PrimKind kKind, class InferOf, size_t... K>
void define_rows(Registry& r, InferOf infer_of, std::index_sequence<K...>) {
  (r.define({.name = kTable[K].name,
             .kind = kKind,
             .traits = kTable[K].traits,
             .infer = infer_of(std::integral_constant<size_t, K>{}),
             .cost = table_cost<kTable, K>}),
   ...);
}

// ---- promotion: PyTorch's three tiers (dimensioned > 0-d > wrapped numbers) ----
std::optional<DType> combine_categories(std::optional<DType> higher, std::optional<DType> lower) {
  if (!higher) return lower;
  if (!lower) return higher;
  const DType h = *higher, l = *lower;
  if (is_complex(h)) return h;
  if (is_complex(l)) return l;
  if (is_floating(h)) return h;
  // A lower tier raises the dtype only from bool, or into floating point.
  if (h == kBool || is_floating(l)) return promote_types(h, l);
  return h;
}

struct Promotion {
  std::optional<DType> dim, zero, wrapped;
  static void merge(std::optional<DType>& slot, DType d) {
    slot = slot ? promote_types(*slot, d) : d;
  }
  Promotion& add(const Tensor& t) {
    merge(t.dim() > 0 ? dim : zero, t.dtype());
    return *this;
  }
  Promotion& add(const Scalar& s) {
    merge(wrapped, s.default_dtype());
    return *this;
  }
  DType result() const {
    return combine_categories(dim, combine_categories(zero, wrapped)).value_or(kFloat32);
  }
};

void need(const Tensor& t, std::string_view op) {
  if (!t.defined()) fail<ValueError>(op, "got an undefined tensor");
}

// ---- calling the primitives ----
struct OpRef {
  const Primitive* p;
  const OpDef* def;
};
template <size_t N>
OpRef find_op(const std::array<OpDef, N>& table, std::string_view name) {
  for (const OpDef& d : table)
    if (name == d.name) return {&prim(name), &d};
  fail<ValueError>(name, "no elementwise primitive of this name");
}

Tensor call_unary(const OpRef& op, const Tensor& x, const Attrs& attrs = {}) {
  need(x, op.def->name);
  if (op.def->float_only && is_integral(x.dtype(), true))
    return dispatch1(*op.p, {cast(x, kFloat32)}, attrs);
  return dispatch1(*op.p, {x}, attrs);
}

DType compute_dtype(const OpRef& op, DType dt) {
  return op.def->float_only && is_integral(dt, true) ? kFloat32 : dt;
}

Tensor call_binary(const OpRef& op, const Tensor& a, const Tensor& b, const Attrs& attrs = {}) {
  need(a, op.def->name);
  need(b, op.def->name);
  const DType dt = compute_dtype(op, result_type(a, b));
  if (a.dtype() == dt && b.dtype() == dt) return dispatch1(*op.p, {a, b}, attrs);
  return dispatch1(*op.p, {cast(a, dt), cast(b, dt)}, attrs);
}

// A number as a 0-d tensor on the device of the tensor it meets (a GPU op then reads it there).
Tensor scalar_on(const Scalar& s, DType dt, const Tensor& like) {
  return full({}, s, TensorOptions(dt, like.device()));
}

// A Scalar operand is a wrapped number: it takes part in promotion below every tensor.
Tensor call_binary(const OpRef& op, const Tensor& a, const Scalar& s, bool scalar_first = false) {
  need(a, op.def->name);
  const DType dt = compute_dtype(op, result_type(a, s));
  Tensor st = scalar_on(s, dt, a);
  Tensor at = cast(a, dt);
  return scalar_first ? dispatch1(*op.p, {st, at}) : dispatch1(*op.p, {at, st});
}

#define TS_OP(table, fn) static const OpRef op = find_op(table, #fn)

}  // namespace

void register_elementwise_prims(Registry& r) {
  define_rows<kUnary, PrimKind::Unary>(
      r, [](auto k) { return &unary_infer<decltype(k)::value>; },
      std::make_index_sequence<kUnary.size()>{});
  define_rows<kBinary, PrimKind::Binary>(
      r, [](auto k) { return &binary_infer<decltype(k)::value>; },
      std::make_index_sequence<kBinary.size()>{});
  define_rows<kTernary, PrimKind::Ternary>(
      r, [](auto k) { return &ternary_infer<decltype(k)::value>; },
      std::make_index_sequence<kTernary.size()>{});
}

DType result_type(const Tensor& a, const Tensor& b) {
  need(a, "result_type");
  need(b, "result_type");
  if (a.dtype() == b.dtype()) return a.dtype();  // the common case, without the tier logic
  return Promotion{}.add(a).add(b).result();
}
DType result_type(const Tensor& a, const Scalar& b) {
  need(a, "result_type");
  return Promotion{}.add(a).add(b).result();
}

// ---- unary ----
#define TS_UNARY(fn)           \
  Tensor fn(const Tensor& x) { \
    TS_OP(kUnary, fn);         \
    return call_unary(op, x);  \
  }
TS_UNARY(abs)
TS_UNARY(neg)
TS_UNARY(exp) TS_UNARY(exp2) TS_UNARY(expm1) TS_UNARY(log) TS_UNARY(log2) TS_UNARY(log1p)
    TS_UNARY(sqrt) TS_UNARY(rsqrt) TS_UNARY(sin) TS_UNARY(cos) TS_UNARY(tan) TS_UNARY(asin)
        TS_UNARY(acos) TS_UNARY(atan) TS_UNARY(sinh) TS_UNARY(cosh) TS_UNARY(tanh) TS_UNARY(sigmoid)
            TS_UNARY(relu) TS_UNARY(silu) TS_UNARY(erf) TS_UNARY(floor) TS_UNARY(ceil)
                TS_UNARY(round) TS_UNARY(trunc) TS_UNARY(sign) TS_UNARY(reciprocal) TS_UNARY(square)
                    TS_UNARY(isnan) TS_UNARY(isinf) TS_UNARY(isfinite) TS_UNARY(logical_not)
                        TS_UNARY(bitwise_not)
#undef TS_UNARY

                            Tensor gelu(const Tensor& x, std::string_view approximate) {
  TS_OP(kUnary, gelu);
  // Attr values must outlive the call: map the argument to a literal.
  if (approximate == "none") return call_unary(op, x, {{"approximate", std::string_view("none")}});
  if (approximate == "tanh") return call_unary(op, x, {{"approximate", std::string_view("tanh")}});
  fail<ValueError>("gelu", "approximate must be 'none' or 'tanh', got '{}'", approximate);
}

Tensor softplus(const Tensor& x, double beta, double threshold) {
  TS_OP(kUnary, softplus);
  if (beta == 0 || beta != beta)
    fail<ValueError>("softplus", "beta must be a nonzero number, got {}", beta);
  return call_unary(op, x, {{"beta", beta}, {"threshold", threshold}});
}

// ---- binary ----
#define TS_BINARY(fn)                           \
  Tensor fn(const Tensor& a, const Tensor& b) { \
    TS_OP(kBinary, fn);                         \
    return call_binary(op, a, b);               \
  }
TS_BINARY(add)
TS_BINARY(sub)
TS_BINARY(mul) TS_BINARY(div) TS_BINARY(floor_divide) TS_BINARY(remainder) TS_BINARY(pow)
    TS_BINARY(maximum) TS_BINARY(minimum) TS_BINARY(atan2) TS_BINARY(eq) TS_BINARY(ne) TS_BINARY(lt)
        TS_BINARY(le) TS_BINARY(gt) TS_BINARY(ge) TS_BINARY(logical_and) TS_BINARY(logical_or)
            TS_BINARY(logical_xor) TS_BINARY(bitwise_and) TS_BINARY(bitwise_or)
                TS_BINARY(bitwise_xor)
#undef TS_BINARY

#define TS_BINARY_SCALAR(fn)                    \
  Tensor fn(const Tensor& a, const Scalar& b) { \
    TS_OP(kBinary, fn);                         \
    return call_binary(op, a, b);               \
  }
                    TS_BINARY_SCALAR(add) TS_BINARY_SCALAR(sub) TS_BINARY_SCALAR(mul)
                        TS_BINARY_SCALAR(div) TS_BINARY_SCALAR(eq) TS_BINARY_SCALAR(ne)
                            TS_BINARY_SCALAR(lt) TS_BINARY_SCALAR(le) TS_BINARY_SCALAR(gt)
                                TS_BINARY_SCALAR(ge)
#undef TS_BINARY_SCALAR

                                    Tensor
    add(const Tensor& a, const Tensor& b, const Scalar& alpha) {
  TS_OP(kBinary, add);
  need(a, "add");
  need(b, "add");
  const DType dt = result_type(a, b);
  // PyTorch: alpha may not carry a higher category than the result.
  if (is_integral(dt, true) && (alpha.is_floating() || alpha.is_complex()))
    fail<DTypeError>("add",
                     "for integral inputs ({}), alpha must not be a floating point number, got {}",
                     dtype_name(dt), alpha.str());
  if (dt == kBool && !alpha.is_bool())
    fail<DTypeError>("add", "for bool inputs, alpha must be a bool, got {}", alpha.str());
  if (!is_complex(dt) && alpha.is_complex())
    fail<DTypeError>("add", "complex alpha {} needs complex inputs, got {}", alpha.str(),
                     dtype_name(dt));
  return call_binary(op, a, b, {{"alpha", alpha}});
}

Tensor pow(const Tensor& a, const Scalar& b) {
  TS_OP(kBinary, pow);
  need(a, "pow");
  if (is_integral(a.dtype(), true) && b.is_integral() && b.to<int64_t>() < 0)
    fail<ValueError>("pow", "integers to negative integer powers are not allowed (exponent {})",
                     b.str());
  return call_binary(op, a, b);
}

// ---- clamp, lerp, where ----
Tensor clamp(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  TS_OP(kTernary, clamp);
  need(x, "clamp");
  if (!lo && !hi) fail<ValueError>("clamp", "at least one of min and max must be given");
  Promotion pr;
  pr.add(x);
  if (lo) pr.add(*lo);
  if (hi) pr.add(*hi);
  const DType dt = pr.result();
  check_cats(*op.def, dt);
  const Tensor xc = cast(x, dt);
  if (!hi) return maximum(xc, scalar_on(*lo, dt, xc));
  if (!lo) return minimum(xc, scalar_on(*hi, dt, xc));
  return dispatch1(*op.p, {xc, scalar_on(*lo, dt, xc), scalar_on(*hi, dt, xc)});
}

Tensor clamp(const Tensor& x, const Tensor& lo, const Tensor& hi) {
  TS_OP(kTernary, clamp);
  need(x, "clamp");
  need(lo, "clamp");
  need(hi, "clamp");
  const DType dt = Promotion{}.add(x).add(lo).add(hi).result();
  return dispatch1(*op.p, {cast(x, dt), cast(lo, dt), cast(hi, dt)});
}

Tensor lerp(const Tensor& a, const Tensor& b, const Tensor& w) {
  TS_OP(kTernary, lerp);
  need(a, "lerp");
  need(b, "lerp");
  need(w, "lerp");
  // PyTorch does not promote here: end and weight must match start's dtype.
  for (const Tensor* t : {&b, &w})
    if (t->dtype() != a.dtype())
      fail<DTypeError>("lerp", "expected {} to have dtype {} like start, got {}",
                       t == &b ? "end" : "weight", dtype_name(a.dtype()), dtype_name(t->dtype()));
  return dispatch1(*op.p, {a, b, w});
}

Tensor lerp(const Tensor& a, const Tensor& b, const Scalar& w) {
  need(a, "lerp");
  return lerp(a, b, scalar_on(w, a.dtype(), a));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  TS_OP(kTernary, where);
  need(cond, "where");
  need(a, "where");
  need(b, "where");
  if (cond.dtype() != kBool)
    fail<DTypeError>("where", "condition must be a bool tensor, got {}", dtype_name(cond.dtype()));
  const DType dt = result_type(a, b);
  return dispatch1(*op.p, {cond, cast(a, dt), cast(b, dt)});
}

Tensor where(const Tensor& cond, const Scalar& a, const Scalar& b) {
  const DType dt = Promotion{}.add(a).add(b).result();
  return where(cond, scalar_on(a, dt, cond), scalar_on(b, dt, cond));
}

// ---- operators ----
Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator%(const Tensor& a, const Tensor& b) { return remainder(a, b); }
Tensor operator+(const Tensor& a, const Scalar& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Scalar& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Scalar& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Scalar& b) { return div(a, b); }
Tensor operator+(const Scalar& a, const Tensor& b) { return add(b, a); }
Tensor operator*(const Scalar& a, const Tensor& b) { return mul(b, a); }
Tensor operator-(const Scalar& a, const Tensor& b) {
  TS_OP(kBinary, sub);
  return call_binary(op, b, a, /*scalar_first=*/true);
}
Tensor operator/(const Scalar& a, const Tensor& b) {
  TS_OP(kBinary, div);
  return call_binary(op, b, a, /*scalar_first=*/true);
}
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator==(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor operator==(const Tensor& a, const Scalar& b) { return eq(a, b); }
Tensor operator!=(const Tensor& a, const Scalar& b) { return ne(a, b); }
Tensor operator<(const Tensor& a, const Scalar& b) { return lt(a, b); }
Tensor operator<=(const Tensor& a, const Scalar& b) { return le(a, b); }
Tensor operator>(const Tensor& a, const Scalar& b) { return gt(a, b); }
Tensor operator>=(const Tensor& a, const Scalar& b) { return ge(a, b); }
Tensor operator&(const Tensor& a, const Tensor& b) { return bitwise_and(a, b); }
Tensor operator|(const Tensor& a, const Tensor& b) { return bitwise_or(a, b); }
Tensor operator^(const Tensor& a, const Tensor& b) { return bitwise_xor(a, b); }
Tensor operator~(const Tensor& a) { return bitwise_not(a); }
Tensor operator!(const Tensor& a) { return logical_not(a); }

}  // namespace tessera
