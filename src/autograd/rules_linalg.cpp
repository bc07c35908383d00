// Autodiff rules (vjp, jvp, vmap batching) for the linalg primitives. Conventions: rules.h.
//
// The matmul primitive sees operands of at least 2 dims (the public op lifts 1-d operands and
// drops the added dim afterwards, so those views carry their own rules) whose batch dims
// (all but the last two) broadcast.
#include "autograd/rules.h"
#include "tessera/ops/linalg.h"

namespace tessera::rules {
namespace {

// x @ y with the strides of `like` when like is a transposed matrix (like.mT() contiguous,
// e.g. the weight of a linear layer seen through w.t()): computed as (y^T @ x^T)^T, which BLAS
// reads in place, so the gradient reaches the leaf contiguous and the optimizer copies nothing.
Tensor matmul_like(const Tensor& x, const Tensor& y, const Tensor& like) {
  const bool transposed = like.dim() == 2 && x.dim() == 2 && y.dim() == 2 &&
                          !like.is_contiguous() && like.mT().is_contiguous();
  return transposed ? matmul(y.mT(), x.mT()).mT() : matmul(x, y);
}

void set_matmul(Primitive& p) {
  // out = a @ b: da = ct @ b^T, db = a^T @ ct, each summed over the batch dims it was
  // broadcast along. (Complex operands would need conjugates; there is no conj op yet.)
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    const Tensor &a = in[0], &b = in[1];
    std::vector<Tensor> g(2);
    if (!is_differentiable(a.dtype())) return g;
    if (grad_wanted(0)) g[0] = sum_to(matmul_like(ct[0], b.mT(), a), a.shape());
    if (grad_wanted(1)) g[1] = sum_to(matmul_like(a.mT(), ct[0], b), b.shape());
    return g;
  };
  // Bilinear: d(a @ b) = da @ b + a @ db.
  p.jvp = [](Inputs in, Inputs, Inputs t, const Attrs&) {
    Tensor ta = t[0].defined() ? matmul(t[0], in[1]) : Tensor();
    Tensor tb = t[1].defined() ? matmul(in[0], t[1]) : Tensor();
    return std::vector<Tensor>{add_opt(ta, tb)};
  };
  // Batched operands get the batch dim in front and size-1 dims up to the larger logical rank,
  // so the primitive's own batch broadcasting pairs them (unbatched operands broadcast from the
  // right): exactly the elementwise alignment.
  p.batch = batch_elementwise(p);
}

}  // namespace

void register_linalg_rules(Registry& r) { set_matmul(r.get("matmul")); }

}  // namespace tessera::rules
