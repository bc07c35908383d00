// Autodiff rules (vjp, jvp, vmap batching) for the elementwise primitives. Conventions: rules.h.
#include "autograd/rules.h"
#include "tessera/ops/elementwise.h"

namespace tessera::rules {
namespace {

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

}  // namespace

void register_elementwise_rules(Registry& r) {
  set_add(r.get("add"));
  set_exp(r.get("exp"));
}

}  // namespace tessera::rules
