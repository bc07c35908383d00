// Autodiff rules (vjp, jvp, vmap batching) for the reduce primitives. Conventions: rules.h.
//
// Every reduction maps each group of reduced elements to one output: out = f(group). Its vjp is
// the cotangent broadcast back over the group times the partial d out / d x_i, and its jvp the
// group sum of tangent times that same partial, so each reduction only supplies its partial.
// Scans and softmax (one "dim", output shaped like x) come after.
#include <algorithm>
#include <cmath>
#include <string_view>
#include <utility>
#include <vector>

#include "autograd/rules.h"
#include "ops/reduce_dims.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::rules {
namespace {

// ---- shared helpers -------------------------------------------------------------------------

/// x where keep is true, else 0 (where, not a multiply: 0 * inf would be NaN).
Tensor keep_where(const Tensor& keep, const Tensor& x) { return where(keep, x, zeros_like(x)); }
/// x with ones where m is true.
Tensor one_where(const Tensor& m, const Tensor& x) { return where(m, ones_like(x), x); }

/// The reduced dims of x under a reduction's attrs ("dims", empty = all; "keepdim").
struct Reduced {
  Dims dims;  ///< wrapped, ascending (empty only for a 0-d x)
  bool keepdim = false;
  int64_t count = 1;  ///< elements reduced into each output

  /// g shaped like the output, with the reduced dims back as size 1 (it broadcasts against x).
  Tensor kept(const Tensor& g) const {
    if (keepdim) return g;
    Tensor t = g;
    for (int64_t d : dims) t = t.unsqueeze(d);
    return t;
  }
  /// t summed over the reduced dims, shaped to broadcast against x.
  Tensor sum_kept(const Tensor& t) const { return tessera::sum(t, dims, true); }
};

Reduced reduced(const Tensor& x, const Attrs& a, std::string_view op) {
  const std::vector<bool> mask = detail::reduce_mask(x.dim(), a.get_or<Dims>("dims", {}), op);
  Reduced r{.keepdim = a.get_or<bool>("keepdim", false)};
  for (int64_t d = 0; d < x.dim(); ++d)
    if (mask[static_cast<size_t>(d)]) {
      r.dims.push_back(d);
      r.count *= x.size(d);
    }
  return r;
}

/// sign(x) for real x, x / |x| (0 at 0) for complex x.
Tensor sgn(const Tensor& x) {
  if (!is_complex(x.dtype())) return sign(x);
  const Tensor a = abs(x);
  return keep_where(ne(a, Scalar(0)), div(x, a));
}

// ---- partials d out / d x of the reductions ---------------------------------------------------

/// d out / d x = factor * scale: factor shaped like x, scale per group (shaped to broadcast
/// against x; undefined = 1). The jvp sums tangent * factor over the group before scaling, so a
/// scale of 1/group-total gives NaN on empty groups (0/0), as PyTorch's jvps do.
struct Partial {
  Tensor factor, scale;
};
using PartialFn = Partial (*)(const Tensor& x, Inputs out, const Reduced& r, const Attrs& a);

Tensor per_group(const Tensor& kept_out, double v) { return full_like(kept_out, Scalar(v)); }

// 1/count at each of the tied extremes (hit), 0 elsewhere: PyTorch spreads the gradient of
// amax/amin evenly over ties.
Partial extreme_partial(const Tensor& x, const Tensor& hit, const Reduced& r) {
  const Tensor m = cast(hit, x.dtype());
  return {m, reciprocal(r.sum_kept(m))};
}

Partial amax_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs&) {
  return extreme_partial(x, eq(x, r.kept(out[0])), r);
}

// Product of the others: the product with zeros replaced by one, divided by x (one at zeros),
// where no other element of the group is zero; 0 otherwise. Exact at zeros, unlike out / x.
Partial prod_partial(const Tensor& x, Inputs, const Reduced& r, const Attrs&) {
  const Tensor zero = eq(x, Scalar(0));
  const Tensor xs = one_where(zero, x);
  const Tensor zeros_in_group = r.sum_kept(cast(zero, kInt64));
  const Tensor others_nonzero = eq(sub(zeros_in_group, cast(zero, kInt64)), Scalar(0));
  return {keep_where(others_nonzero, div(tessera::prod(xs, r.dims, true), xs)), {}};
}

// One at the returned index along the dim.
Partial index_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs&) {
  if (r.dims.empty()) return {ones_like(x), {}};  // 0-d x: out is x
  const int64_t d = r.dims[0];
  Shape s(static_cast<size_t>(x.dim() - d), 1);
  s[0] = x.size(d);
  const Tensor pos = arange(x.size(d), kInt64).to(x.device()).reshape(s);
  return {cast(eq(pos, r.kept(out[1])), x.dtype()), {}};
}

// var: 2 (x - mean) / (N - correction); std: (x - mean) / ((N - correction) std), 0 where the
// std is 0 (as PyTorch: the std of equal values is flat to first order).
double var_divisor(const Reduced& r, const Attrs& a) {
  const auto c = static_cast<double>(a.get_or<int64_t>("correction", 1));
  return std::max(0.0, static_cast<double>(r.count) - c);
}
Tensor centered(const Tensor& x, const Reduced& r) {
  return sub(x, tessera::mean(x, r.dims, true));
}
Partial var_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs& a) {
  return {centered(x, r), per_group(r.kept(out[0]), 2 / var_divisor(r, a))};
}
Partial std_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs& a) {
  const Tensor s = r.kept(out[0]);
  return {centered(x, r),
          keep_where(ne(s, Scalar(0)), reciprocal(mul(s, Scalar(var_divisor(r, a)))))};
}

// exp(x - out) / sum(exp(x - out)): the sum is 1 except on empty groups (0/0, like PyTorch).
Partial logsumexp_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs&) {
  const Tensor e = exp(sub(x, r.kept(out[0])));
  return {e, reciprocal(r.sum_kept(e))};
}

// p = 0 counts non-zeros (flat); +-inf acts like amax/amin of |x|; otherwise
// sgn(x) |x|^(p-1) / norm^(p-1), 0 where the norm is 0 (PyTorch masks it too).
Partial norm_partial(const Tensor& x, Inputs out, const Reduced& r, const Attrs& a) {
  const double p = a.get<double>("p");
  const Tensor n = r.kept(out[0]);
  if (p == 0) return {zeros_like(x), {}};
  if (p == 1) return {sgn(x), {}};
  if (std::isinf(p)) {
    Partial e = extreme_partial(x, eq(abs(x), n), r);
    return {mul(sgn(x), e.factor), e.scale};
  }
  const Tensor nonzero = ne(n, Scalar(0));
  if (p == 2) return {x, keep_where(nonzero, reciprocal(n))};
  const Tensor ratio = pow(div(abs(x), n), Scalar(p - 1));
  return {keep_where(nonzero, mul(sgn(x), ratio)), {}};
}

Tensor scaled(const Tensor& t, const Tensor& scale) { return scale.defined() ? mul(t, scale) : t; }

/// vjp and jvp of a reduction from its partial.
void set_by_partial(Primitive& p, PartialFn partial) {
  p.vjp = [&p, partial](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    if (!is_differentiable(in[0].dtype())) return g;
    const Reduced r = reduced(in[0], a, p.name);
    const Partial d = partial(in[0], out, r, a);
    g[0] = to_dtype(mul(scaled(r.kept(ct[0]), d.scale), d.factor), in[0].dtype());
    return g;
  };
  p.jvp = [&p, partial](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    std::vector<Tensor> res(out.size());
    if (!t[0].defined() || !is_differentiable(in[0].dtype())) return res;
    const Reduced r = reduced(in[0], a, p.name);
    const Partial d = partial(in[0], out, r, a);
    res[0] = scaled(r.sum_kept(mul(t[0], d.factor)), d.scale).reshape(out[0].shape());
    return res;
  };
}

// sum and mean are linear: the cotangent broadcast back (divided by the count for mean).
void set_sum_mean(Primitive& p, bool is_mean) {
  p.vjp = [&p, is_mean](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    if (!is_differentiable(in[0].dtype())) return g;
    const Reduced r = reduced(in[0], a, p.name);
    Tensor e = r.kept(ct[0]).expand(in[0].shape());
    if (is_mean) e = div(e, Scalar(static_cast<double>(r.count)));
    g[0] = to_dtype(e, in[0].dtype());
    return g;
  };
  p.jvp = jvp_linear(p);
}

// ---- scans and softmax --------------------------------------------------------------------

int64_t along_dim(const Tensor& x, const Attrs& a, std::string_view op) {
  return wrap_dim(a.get<int64_t>("dim"), x.dim(), op);
}

/// Sum from each position to the end of dim.
Tensor reverse_cumsum(const Tensor& t, int64_t d) { return flip(cumsum(flip(t, {d}), d), {d}); }

void set_cumsum(Primitive& p) {
  p.vjp = [&p](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    if (!is_differentiable(in[0].dtype())) return g;
    const Tensor& x = in[0];
    g[0] =
        to_dtype(x.dim() == 0 ? ct[0] : reverse_cumsum(ct[0], along_dim(x, a, p.name)), x.dtype());
    return g;
  };
  p.jvp = jvp_linear(p);
}

// Per lane, with z the first zero: before z the classic reverse_cumsum(ct * out) / x is exact;
// at z only the products with x_z left out survive (cumprod with x_z set to one); after z every
// product contains x_z, so the gradient is 0. Exact with zeros, in O(n) per lane.
struct CumprodZeros {
  Tensor before;  ///< positions before the lane's first zero
  Tensor first;   ///< the lane's first zero
  Tensor xs;      ///< x with ones from the first zero on (safe to divide by)
  Tensor skip;    ///< cumprod of x with its first zero replaced by one
};

CumprodZeros cumprod_zeros(const Tensor& x, int64_t d) {
  const Tensor zero = eq(x, Scalar(0));
  const Tensor seen = cumsum(zero, d);
  CumprodZeros z;
  z.before = eq(seen, Scalar(0));
  z.first = logical_and(zero, eq(seen, Scalar(1)));
  z.xs = where(z.before, x, ones_like(x));
  z.skip = cumprod(one_where(z.first, x), d);
  return z;
}

void set_cumprod(Primitive& p) {
  p.vjp = [&p](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    const Tensor& x = in[0];
    if (!is_differentiable(x.dtype())) return g;
    if (x.dim() == 0) return std::vector<Tensor>{to_dtype(ct[0], x.dtype())};
    const int64_t d = along_dim(x, a, p.name);
    const CumprodZeros z = cumprod_zeros(x, d);
    const Tensor head = keep_where(z.before, div(reverse_cumsum(mul(ct[0], out[0]), d), z.xs));
    const Tensor at_zero = keep_where(z.first, reverse_cumsum(mul(ct[0], z.skip), d));
    g[0] = to_dtype(add(head, at_zero), x.dtype());
    return g;
  };
  p.jvp = [&p](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    std::vector<Tensor> res(out.size());
    const Tensor& x = in[0];
    if (!t[0].defined() || !is_differentiable(x.dtype())) return res;
    if (x.dim() == 0) return std::vector<Tensor>{t[0]};
    const int64_t d = along_dim(x, a, p.name);
    const CumprodZeros z = cumprod_zeros(x, d);
    const Tensor head = mul(out[0], cumsum(div(t[0], z.xs), d));
    const Tensor t_zero = tessera::sum(keep_where(z.first, t[0]), {d}, true);
    res[0] = where(z.before, head, mul(t_zero, z.skip));
    return res;
  };
}

void set_softmax(Primitive& p) {
  // y * (v - sum(v * y)): the same map for the cotangent (vjp) and the tangent (jvp).
  auto rule = [](Inputs, Inputs out, Inputs v, const Attrs& a) {
    if (!v[0].defined()) return std::vector<Tensor>{Tensor()};
    const Tensor& y = out[0];
    const Dims d{a.get<int64_t>("dim")};
    return std::vector<Tensor>{mul(y, sub(v[0], tessera::sum(mul(v[0], y), d, true)))};
  };
  p.vjp = rule;
  p.jvp = rule;
}

void set_log_softmax(Primitive& p) {
  p.vjp = [](Inputs, Inputs out, Inputs ct, const Attrs& a) {
    const Dims d{a.get<int64_t>("dim")};
    return std::vector<Tensor>{sub(ct[0], mul(exp(out[0]), tessera::sum(ct[0], d, true)))};
  };
  p.jvp = [](Inputs, Inputs out, Inputs t, const Attrs& a) {
    if (!t[0].defined()) return std::vector<Tensor>{Tensor()};
    const Dims d{a.get<int64_t>("dim")};
    return std::vector<Tensor>{sub(t[0], tessera::sum(mul(exp(out[0]), t[0]), d, true))};
  };
}

// ---- batch rules --------------------------------------------------------------------------
// The batch dim goes to the front and the logical dims shift by one. A 0-d logical input
// becomes (B, 1) reduced over dim 1, which gives the 0-d results (B) for every reduction.

/// "dims" of a reduction in physical terms, with the batch dim at the front.
Dims batched_dims(const Attrs& a, int64_t lr, std::string_view op) {
  Dims dims = a.get_or<Dims>("dims", {});
  if (dims.empty())
    for (int64_t d = 0; d < lr; ++d) dims.push_back(d);  // all logical dims, not the batch dim
  for (int64_t& d : dims) d = wrap_dim(d, lr, op) + 1;
  return dims;
}

BatchFn batch_reduce(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
              std::vector<int64_t>& out_bdims) {
    Tensor x = bdim_to_front(in[0], bdims[0]);
    const int64_t lr = logical_rank(in[0], bdims[0]);
    Attrs b = a;
    if (lr == 0) {
      x = x.unsqueeze(1);
      b.set("dims", Dims{1}).set("keepdim", false);
    } else {
      b.set("dims", batched_dims(a, lr, p.name));
    }
    std::vector<Tensor> out = dispatch(p, Inputs(&x, 1), b);
    out_bdims.assign(out.size(), 0);
    return out;
  };
}

// argmax/argmin without a dim index the flattened input: flatten the logical dims.
BatchFn batch_arg_reduce(const Primitive& p) {
  BatchFn with_dim = batch_reduce(p);
  return [&p, with_dim](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
                        std::vector<int64_t>& out_bdims) {
    const int64_t lr = logical_rank(in[0], bdims[0]);
    if (!a.get_or<Dims>("dims", {}).empty() || lr == 0) return with_dim(in, bdims, a, out_bdims);
    const Tensor x = bdim_to_front(in[0], bdims[0]).flatten(1);
    Attrs b = a;
    b.set("dims", Dims{1}).set("keepdim", false);
    Tensor out = dispatch1(p, {x}, b);
    if (a.get_or<bool>("keepdim", false)) {
      Shape s(static_cast<size_t>(lr + 1), 1);
      s[0] = x.size(0);
      out = out.reshape(s);
    }
    out_bdims.assign(1, 0);
    return std::vector<Tensor>{out};
  };
}

BatchFn batch_along(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
              std::vector<int64_t>& out_bdims) {
    Tensor x = bdim_to_front(in[0], bdims[0]);
    const int64_t lr = logical_rank(in[0], bdims[0]);
    Attrs b = a;
    if (lr == 0) x = x.unsqueeze(1);
    b.set("dim", lr == 0 ? int64_t{1} : wrap_dim(a.get<int64_t>("dim"), lr, p.name) + 1);
    std::vector<Tensor> out = dispatch(p, Inputs(&x, 1), b);
    if (lr == 0)
      for (Tensor& o : out) o = o.squeeze(1);
    out_bdims.assign(out.size(), 0);
    return out;
  };
}

constexpr std::pair<const char*, PartialFn> kByPartial[] = {
    {"prod", prod_partial},     {"amax", amax_partial},           {"amin", amax_partial},
    {"max_dim", index_partial}, {"min_dim", index_partial},       {"var", var_partial},
    {"std", std_partial},       {"logsumexp", logsumexp_partial}, {"norm", norm_partial},
};

}  // namespace

void register_reduce_rules(Registry& r) {
  set_sum_mean(r.get("sum"), false);
  set_sum_mean(r.get("mean"), true);
  for (const auto& [name, partial] : kByPartial) set_by_partial(r.get(name), partial);
  set_cumsum(r.get("cumsum"));
  set_cumprod(r.get("cumprod"));
  set_softmax(r.get("softmax"));
  set_log_softmax(r.get("log_softmax"));
  register_layer_norm_rules(r);

  for (const char* name : {"sum", "mean", "prod", "amax", "amin", "max_dim", "min_dim", "var",
                           "std", "logsumexp", "norm", "all", "any"})
    r.get(name).batch = batch_reduce(r.get(name));
  for (const char* name : {"argmax", "argmin"}) r.get(name).batch = batch_arg_reduce(r.get(name));
  for (const char* name : {"cumsum", "cumprod", "softmax", "log_softmax"})
    r.get(name).batch = batch_along(r.get(name));
}

}  // namespace tessera::rules
