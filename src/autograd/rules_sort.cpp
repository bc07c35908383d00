// Autodiff rules (vjp, jvp, vmap batching) for the sort primitives. Conventions: rules.h.
//
// sort and topk output values picked from x along "dim" (their second output holds the
// positions): the vjp scatters the cotangent back to those positions, the jvp gathers the
// tangent from them. argsort only needs batching; unique has a data-dependent size (no rules).
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/indexing.h"

namespace tessera::rules {
namespace {

void set_select_along(Primitive& p) {
  p.vjp = [&p](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    const Tensor& x = in[0];
    std::vector<Tensor> g(1);
    if (!is_differentiable(x.dtype())) return g;
    if (x.dim() == 0)  // one value, picked (k = 1) or not (topk with k = 0)
      g[0] = ct[0].numel() == 1 ? ct[0].reshape({}) : zeros_like(x);
    else
      g[0] = scatter_add(zeros_like(x), wrap_dim(a.get<int64_t>("dim"), x.dim(), p.name), out[1],
                         ct[0]);
    return g;
  };
  p.jvp = [&p](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    const Tensor& x = in[0];
    std::vector<Tensor> res(2);
    if (!t[0].defined() || !is_differentiable(x.dtype())) return res;
    if (x.dim() == 0)
      res[0] = out[0].numel() == 1 ? t[0].reshape(out[0].shape()) : zeros_like(out[0]);
    else
      res[0] = gather(t[0], wrap_dim(a.get<int64_t>("dim"), x.dim(), p.name), out[1]);
    return res;
  };
}

// Batch dim to the front, "dim" shifted by one. A 0-d logical input becomes (B, 1) sorted
// along dim 1; its outputs lose that dim again when they kept one element (k = 0 keeps (B, 0),
// the (0,) result of a 0-d topk).
BatchFn batch_along(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
              std::vector<int64_t>& out_bdims) {
    Tensor x = bdim_to_front(in[0], bdims[0]);
    const int64_t lr = logical_rank(in[0], bdims[0]);
    if (lr == 0) x = x.unsqueeze(1);
    Attrs b = a;
    b.set("dim", lr == 0 ? int64_t{1} : wrap_dim(a.get<int64_t>("dim"), lr, p.name) + 1);
    std::vector<Tensor> out = dispatch(p, Inputs(&x, 1), b);
    if (lr == 0)
      for (Tensor& o : out)
        if (o.size(1) == 1) o = o.squeeze(1);
    out_bdims.assign(out.size(), 0);
    return out;
  };
}

}  // namespace

void register_sort_rules(Registry& r) {
  for (const char* name : {"sort", "topk"}) set_select_along(r.get(name));
  for (const char* name : {"sort", "argsort", "topk"}) r.get(name).batch = batch_along(r.get(name));
}

}  // namespace tessera::rules
