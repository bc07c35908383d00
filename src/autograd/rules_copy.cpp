// Autodiff rules (vjp, jvp, vmap batching) for the copy primitives. Conventions: rules.h.
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::rules {
namespace {

/// Batch rule of a unary primitive that keeps its input's shape (clone, cast): the batch dim
/// stays where it is.
BatchFn batch_in_place_layout(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
              std::vector<int64_t>& out_bdims) {
    out_bdims.assign(1, bdims[0]);
    return dispatch(p, in, a);
  };
}

void set_clone(Primitive& p) {
  p.vjp = [](Inputs, Inputs, Inputs ct, const Attrs&) { return std::vector<Tensor>{ct[0]}; };
  p.jvp = jvp_linear(p);
  p.batch = batch_in_place_layout(p);
}

// The gradient is cast back to the input dtype (complex -> real keeps the real part, which is
// the gradient of taking the real part; real -> complex likewise).
void set_cast(Primitive& p) {
  p.vjp = [](Inputs in, Inputs out, Inputs ct, const Attrs&) {
    if (!is_differentiable(in[0].dtype())) return std::vector<Tensor>(1);
    return std::vector<Tensor>{to_dtype(or_zeros(ct[0], out[0]), in[0].dtype())};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_in_place_layout(p);
}

// copy_(dst, src): dst is overwritten, so its gradient is zero; src was broadcast to dst's
// shape and converted to its dtype (and moved to dst's device: the gradient moves back). The
// vjp reads only dst's shape and dtype.
void set_copy_(Primitive& p) {
  p.vjp = [](Inputs in, Inputs out, Inputs ct, const Attrs&) {
    std::vector<Tensor> g(2);
    if (is_differentiable(in[0].dtype())) g[0] = zeros_like(in[0]);
    if (is_differentiable(in[1].dtype()))
      g[1] = to_dtype(sum_to(or_zeros(ct[0], out[0]), in[1].shape()), in[1].dtype())
                 .to(in[1].device());
    return g;
  };
  // The output's tangent is src's tangent, broadcast and converted like src (dst's is lost).
  p.jvp = [&p](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    std::vector<Tensor> res(1);
    if (!t[1].defined() || !is_differentiable(out[0].dtype())) return res;
    const Tensor fresh = empty_like(in[0]);
    res[0] = dispatch1(p, {fresh, t[1]}, a);
    return res;
  };
  // Writes through dst with its batch dim moved to the front (a view of the same storage).
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
                 std::vector<int64_t>& out_bdims) {
    if (bdims[0] < 0)
      fail<ValueError>("copy_",
                       "vmap cannot write a batched value into an unbatched tensor in place: the "
                       "destination is not batched but the source is (batch the destination, "
                       "or use an out-of-place op)");
    const Tensor dst = bdim_to_front(in[0], bdims[0]);
    Tensor src = in[1];
    if (bdims[1] >= 0) {
      // src broadcasts from the right against dst's logical dims: pad them after the batch dim.
      const int64_t pad = logical_rank(in[0], bdims[0]) - logical_rank(in[1], bdims[1]);
      if (pad < 0)
        fail<ShapeError>("copy_", "source shape {} does not broadcast to destination {} (vmap)",
                         shape_str(in[1].shape()), shape_str(in[0].shape()));
      src = bdim_to_front(src, bdims[1]);
      Shape s = src.shape();
      s.insert(s.begin() + 1, pad, 1);
      src = src.reshape(s);
    }
    dispatch1(p, {dst, src}, a);
    out_bdims.assign(1, bdims[0]);
    return std::vector<Tensor>{in[0]};
  };
}

}  // namespace

void register_copy_rules(Registry& r) {
  set_clone(r.get("clone"));
  set_cast(r.get("cast"));
  set_copy_(r.get("copy_"));
}

}  // namespace tessera::rules
