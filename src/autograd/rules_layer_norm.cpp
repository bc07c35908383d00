// Autodiff rules (vjp, jvp, vmap batching) for layer_norm and layer_norm_backward.
// Conventions: rules.h.
//
// Per row (the last ndim dims, n elements), with xc = x - mean, xhat = xc * rstd:
//   y = xhat * w + b
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * w
//   dw = sum over rows of dy * xhat,  db = sum over rows of dy.
// The first-order backward is the fused layer_norm_backward primitive, a function of
// (dy, x, mean, rstd, w) taken as independent inputs; its own vjp is written with tensor ops
// (any order of derivative). Where mean and rstd depend on x, layer_norm's vjp adds their
// cotangents' terms: so a second derivative, which reaches the saved mean and rstd through
// layer_norm_backward's vjp, is exact. In a first backward nothing reaches them (kAuxOutputs
// leaves their cotangents undefined) and the rule is one fused call.
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::rules {
namespace {

/// The normalized dims (the last ndim, as negative indices: they stay right under vmap) and
/// the elements per row.
struct Rows {
  Dims dims;
  double n = 1;
};

Rows rows_of(const Tensor& x, const Attrs& a) {
  Rows r;
  const auto k = a.get<int64_t>("ndim");
  for (int64_t d = -k; d < 0; ++d) {
    r.dims.push_back(d);
    r.n *= static_cast<double>(x.size(d));
  }
  return r;
}

Tensor row_mean(const Tensor& t, const Rows& r) { return tessera::mean(t, r.dims, true); }
Tensor row_sum(const Tensor& t, const Rows& r) { return tessera::sum(t, r.dims, true); }
Tensor mul_opt(const Tensor& a, const Tensor& b) { return b.defined() ? mul(a, b) : a; }

void set_layer_norm(Primitive& p, const Primitive& bw) {
  p.vjp = [&bw](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    const Tensor& x = in[0];
    const Tensor &mean = out[1], &rstd = out[2];
    const bool affine_grads =
        in.size() > 1 && (grad_wanted(1) || (in.size() > 2 && grad_wanted(2)));
    std::vector<Tensor> args{or_zeros(ct[0], x), x, mean, rstd};
    if (in.size() > 1) args.push_back(in[1]);
    const Attrs b{{"ndim", a.get<int64_t>("ndim")}, {"weight_grads", affine_grads}};
    std::vector<Tensor> r = dispatch(bw, args, b);
    Tensor dx = r[0];
    if (ct[1].defined() || ct[2].defined()) {
      // d mean / dx = 1 / n; d rstd / dx = -rstd^3 (x - mean) / n.
      const Rows rows = rows_of(x, a);
      Tensor k;
      if (ct[1].defined()) k = div(ct[1], Scalar(rows.n));
      if (ct[2].defined()) {
        const Tensor c = mul(ct[2], div(mul(rstd, mul(rstd, rstd)), Scalar(-rows.n)));
        dx = add(dx, mul(sub(x, mean), c));
      }
      if (k.defined()) dx = add(dx, k);
    }
    g[0] = to_dtype(dx, x.dtype());
    if (affine_grads) {
      g[1] = r[1];
      if (in.size() > 2) g[2] = r[2];
    }
    return g;
  };
  // t_xhat = rstd * (tx - mean(tx) - xhat * mean(xhat * tx)); t_mean = mean(tx);
  // t_rstd = -rstd^2 mean(xhat * tx); t_y = t_xhat * w + xhat * tw + tb.
  p.jvp = [](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    std::vector<Tensor> res(3);
    const Tensor& x = in[0];
    const Tensor &mean = out[1], &rstd = out[2];
    const Rows rows = rows_of(x, a);
    const Tensor xhat = mul(sub(x, mean), rstd);
    Tensor ty;
    if (t[0].defined()) {
      const Tensor mt = row_mean(t[0], rows), c = row_mean(mul(xhat, t[0]), rows);
      ty = mul_opt(mul(rstd, sub(sub(t[0], mt), mul(xhat, c))), in.size() > 1 ? in[1] : Tensor());
      res[1] = mt;
      res[2] = neg(mul(mul(rstd, rstd), c));
    }
    if (in.size() > 1 && t[1].defined()) ty = add_opt(ty, mul(xhat, t[1]));
    if (in.size() > 2 && t[2].defined()) ty = add_opt(ty, t[2].expand(x.shape()));
    res[0] = to_dtype(ty, x.dtype());
    return res;
  };
}

// With L = <u, dx> + <p, dw> + <q, db> and v = rstd * (u - mean(u) - xhat * mean(u * xhat))
// (dL/dg: the same projection, it is self-adjoint):
//   d dy = v * w + p * xhat + q          d w = sum over rows of v * dy
//   G = dL/dxhat = -rstd * (mean(g * xhat) * u + mean(u * xhat) * g) + p * dy
//   d x = G * rstd      d mean = -rstd * sum(G)
//   d rstd = sum(G * xc) + sum(u * (g - mean(g) - xhat * mean(g * xhat)))
void set_layer_norm_backward(Primitive& p) {
  p.vjp = [](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    std::vector<Tensor> res(in.size());
    const Tensor &dy = in[0], &x = in[1], &mean = in[2], &rstd = in[3];
    const Tensor w = in.size() > 4 ? in[4] : Tensor();
    const Tensor u = or_zeros(ct[0], x);
    const Tensor pw = out.size() > 1 ? ct[1] : Tensor(), qb = out.size() > 2 ? ct[2] : Tensor();
    const Rows rows = rows_of(x, a);
    const Tensor xc = sub(x, mean), xhat = mul(xc, rstd);
    const Tensor g = mul_opt(dy, w);
    const Tensor mg = row_mean(g, rows), mgx = row_mean(mul(g, xhat), rows);
    const Tensor mu = row_mean(u, rows), mux = row_mean(mul(u, xhat), rows);
    const Tensor v = mul(rstd, sub(sub(u, mu), mul(xhat, mux)));
    Tensor gdy = mul_opt(v, w);
    if (pw.defined()) gdy = add(gdy, mul(pw, xhat));
    if (qb.defined()) gdy = add(gdy, qb);
    res[0] = to_dtype(gdy, dy.dtype());
    Tensor gxh = neg(mul(rstd, add(mul(mgx, u), mul(mux, g))));
    if (pw.defined()) gxh = add(gxh, mul(pw, dy));
    res[1] = to_dtype(mul(gxh, rstd), x.dtype());
    res[2] = to_dtype(neg(mul(rstd, row_sum(gxh, rows))), mean.dtype());
    const Tensor direct = row_sum(mul(u, sub(sub(g, mg), mul(xhat, mgx))), rows);
    res[3] = to_dtype(add(row_sum(mul(gxh, xc), rows), direct), rstd.dtype());
    if (w.defined()) res[4] = to_dtype(sum_to(mul(v, dy), w.shape()), w.dtype());
    return res;
  };
  p.jvp = [](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    // Forward mode through the composite formula (the product rule on each factor).
    std::vector<Tensor> res(out.size());
    bool any = false;
    for (const Tensor& ti : t) any = any || ti.defined();
    if (!any) return res;
    const Tensor &dy = in[0], &x = in[1], &mean = in[2], &rstd = in[3];
    const Tensor w = in.size() > 4 ? in[4] : Tensor();
    auto tan = [&](size_t i) { return or_zeros(t[i], in[i]); };
    const Rows rows = rows_of(x, a);
    // dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) rstd.
    const Tensor xc = sub(x, mean), xhat = mul(xc, rstd);
    const Tensor txhat = add(mul(sub(tan(1), tan(2)), rstd), mul(xc, tan(3)));
    const Tensor g = mul_opt(dy, w);
    const Tensor tg = w.defined() ? add(mul(tan(0), w), mul(dy, tan(4))) : tan(0);
    const Tensor mg = row_mean(g, rows), mgx = row_mean(mul(g, xhat), rows);
    const Tensor tmg = row_mean(tg, rows);
    const Tensor tmgx = row_mean(add(mul(tg, xhat), mul(g, txhat)), rows);
    const Tensor inner = sub(sub(g, mg), mul(xhat, mgx));
    const Tensor tinner = sub(sub(tg, tmg), add(mul(txhat, mgx), mul(xhat, tmgx)));
    res[0] = to_dtype(add(mul(tan(3), inner), mul(rstd, tinner)), x.dtype());
    if (out.size() > 1) {
      res[1] = to_dtype(sum_to(add(mul(tan(0), xhat), mul(dy, txhat)), w.shape()), x.dtype());
      res[2] = to_dtype(sum_to(tan(0), w.shape()), x.dtype());
    }
    return res;
  };
}

// The batch dim goes to the front: it is then one more leading (row) dim. Batched weight or
// bias: the primitive normalizes without them and the affine step is tensor ops.
BatchFn batch_layer_norm(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bd, const Attrs& a, std::vector<int64_t>& ob) {
    const int64_t batch = batch_size(in, bd, p.name);
    const Tensor x = batched_front(in[0], bd[0], batch);
    ob.assign(3, 0);
    bool affine_batched = false;
    for (size_t i = 1; i < in.size(); ++i) affine_batched = affine_batched || bd[i] >= 0;
    if (!affine_batched) {
      std::vector<Tensor> args(in.begin(), in.end());
      args[0] = x;
      return dispatch(p, args, a);
    }
    std::vector<Tensor> out = dispatch(p, Inputs(&x, 1), a);
    const int64_t k = a.get<int64_t>("ndim");
    for (size_t i = 1; i < in.size(); ++i) {
      Tensor t = in[i];
      if (bd[i] >= 0) {  // (B, row...) -> (B, 1 per leading dim, row...)
        t = bdim_to_front(t, bd[i]);
        Shape s = t.shape();
        s.insert(s.begin() + 1, static_cast<size_t>(x.dim() - 1 - k), 1);
        t = t.reshape(s);
      }
      out[0] = i == 1 ? mul(out[0], t) : add(out[0], t);
    }
    return out;
  };
}

BatchFn batch_layer_norm_backward(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bd, const Attrs& a, std::vector<int64_t>& ob) {
    const int64_t batch = batch_size(in, bd, p.name);
    std::vector<Tensor> f(4);
    for (size_t i = 0; i < 4; ++i) f[i] = batched_front(in[i], bd[i], batch);
    const Tensor &dy = f[0], &x = f[1];
    const int64_t k = a.get<int64_t>("ndim");
    Tensor g = dy;
    if (in.size() > 4) {
      Tensor w = in[4];
      if (bd[4] >= 0) {
        w = bdim_to_front(w, bd[4]);
        Shape s = w.shape();
        s.insert(s.begin() + 1, static_cast<size_t>(x.dim() - 1 - k), 1);
        w = w.reshape(s);
      }
      g = mul(dy, w);
    }
    const Attrs b{{"ndim", k}, {"weight_grads", false}};
    std::vector<Tensor> out{dispatch(p, std::vector<Tensor>{g, x, f[2], f[3]}, b)[0]};
    if (a.get_or<bool>("weight_grads", false)) {
      // Per example: sums over its own leading dims only (dims 1 .. rank - k - 1).
      Dims lead;
      for (int64_t d = 1; d < x.dim() - k; ++d) lead.push_back(d);
      const Tensor dw = mul(dy, mul(sub(x, f[2]), f[3]));
      out.push_back(lead.empty() ? dw : tessera::sum(dw, lead));
      out.push_back(lead.empty() ? dy : tessera::sum(dy, lead));
    }
    ob.assign(out.size(), 0);
    return out;
  };
}

}  // namespace

void register_layer_norm_rules(Registry& r) {
  Primitive &ln = r.get("layer_norm"), &bw = r.get("layer_norm_backward");
  set_layer_norm(ln, bw);
  set_layer_norm_backward(bw);
  ln.batch = batch_layer_norm(ln);
  bw.batch = batch_layer_norm_backward(bw);
}

}  // namespace tessera::rules
