// Autodiff rules (vjp, jvp, vmap batching) for the shape primitives. Conventions: rules.h.
//
// All of them only move values, so they are linear: jvps apply the primitive to the tangent
// (pad with a zero fill value), vjps move the cotangent back (the inverse move, or a sum where
// values were duplicated). Batch rules put the batch dim in front and shift the dim attributes.
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::rules {
namespace {

using Ints = std::vector<int64_t>;

Attrs with(const Attrs& a, std::string_view key, AttrValue v) {
  Attrs out = a;
  out.set(key, std::move(v));
  return out;
}

// Zero-pads dim d of t with `before` zeros in front and `after` behind.
Tensor pad_dim(const Tensor& t, int64_t d, int64_t before, int64_t after) {
  Ints pads(2 * (t.dim() - d), 0);  // pad() lists the last dim first
  pads[pads.size() - 2] = before;
  pads[pads.size() - 1] = after;
  return pad(t, pads);
}

// The logical dims of attr `key`, wrapped against the logical rank and shifted past a batch
// dim in front.
Ints front_dims(const Attrs& a, std::string_view key, int64_t rank, std::string_view op) {
  Ints out;
  for (int64_t d : a.get<Ints>(key)) out.push_back(wrap_dim(d, rank, op) + 1);
  return out;
}

// vjp of a primitive whose adjoint is the primitive itself with changed attrs (flip: the same;
// roll: negated shifts; tril/triu: the same).
using AdjointAttrs = Attrs (*)(const Attrs&);
VjpFn vjp_self(const Primitive& p, AdjointAttrs adj) {
  return [&p, adj](Inputs, Inputs, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{dispatch1(p, {ct[0]}, adj ? adj(a) : a)};
  };
}

// Batch rule of a one-input primitive: `shift` rewrites the attrs for the batch dim in front.
using ShiftAttrs = Attrs (*)(const Attrs&, int64_t rank, std::string_view op);
BatchFn batch_front(const Primitive& p, ShiftAttrs shift) {
  return [&p, shift](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t rank = logical_rank(in[0], bdims[0]);
    out_bdims = {0};
    return dispatch(p, {bdim_to_front(in[0], bdims[0])}, shift ? shift(a, rank, p.name) : a);
  };
}

Attrs shift_dims(const Attrs& a, int64_t rank, std::string_view op) {
  return with(a, "dims", front_dims(a, "dims", rank, op));
}

// ---- cat ------------------------------------------------------------------------------------

void set_cat(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), in[0].dim(), "cat");
    std::vector<Tensor> grads;
    int64_t at = 0;
    for (const Tensor& x : in) {
      grads.push_back(ct[0].narrow(d, at, x.shape()[d]));
      at += x.shape()[d];
    }
    return grads;
  };
  p.jvp = jvp_linear(p);
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t batch = batch_size(in, bdims, "cat");
    std::vector<Tensor> xs;
    for (size_t i = 0; i < in.size(); ++i) xs.push_back(batched_front(in[i], bdims[i], batch));
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), logical_rank(in[0], bdims[0]), "cat") + 1;
    out_bdims = {0};
    return dispatch(p, xs, {{"dim", d}});
  };
}

// ---- flip, roll, tril, triu -----------------------------------------------------------------

void set_flip(Primitive& p) {
  p.vjp = vjp_self(p, nullptr);
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, shift_dims);
}

void set_roll(Primitive& p) {
  p.vjp = vjp_self(p, [](const Attrs& a) {
    Ints shifts = a.get<Ints>("shifts");
    for (int64_t& s : shifts) s = -s;
    return with(a, "shifts", shifts);
  });
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, shift_dims);
}

// tril/triu act on the last two dims: a batch dim in front changes nothing.
void set_tri(Primitive& p) {
  p.vjp = vjp_self(p, nullptr);
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, nullptr);
}

// ---- repeat ---------------------------------------------------------------------------------

void set_repeat(Primitive& p) {
  // The output is the input tiled: view it as (r0, n0, r1, n1, ...) and sum over the r's.
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const Tensor& x = in[0];
    const Ints& reps = a.get<Ints>("repeats");
    if (x.dim() == 0) return std::vector<Tensor>{ct[0]};
    Shape split;
    Dims tiles;
    for (int64_t d = 0; d < x.dim(); ++d) {
      tiles.push_back(2 * d);
      split.push_back(reps[d]);
      split.push_back(x.shape()[d]);
    }
    return std::vector<Tensor>{sum(ct[0].reshape(split), tiles).reshape(x.shape())};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, [](const Attrs& a, int64_t, std::string_view) {
    Ints reps{1};
    const Ints& r = a.get<Ints>("repeats");
    reps.insert(reps.end(), r.begin(), r.end());
    return with(a, "repeats", reps);
  });
}

// ---- pad ------------------------------------------------------------------------------------
// attrs: pads (before, after) per dim in dim order, mode (0 constant, 1 reflect, 2 replicate),
// value.
constexpr int64_t kConstant = 0, kReflect = 1;

// Adjoint of reflect/replicate padding along dim d (size l + n + r in g, n after): the border
// slices fold back onto the input positions they were read from.
Tensor fold_dim(const Tensor& g, int64_t d, int64_t l, int64_t r, int64_t n, int64_t mode) {
  Tensor out = g.narrow(d, l, n);
  if (l > 0) {
    const Tensor left = g.narrow(d, 0, l);
    // reflect: left position o came from l - o (positions 1..l); replicate: all from 0.
    out = mode == kReflect ? add(out, pad_dim(flip(left, {d}), d, 1, n - 1 - l))
                           : add(out, pad_dim(sum(left, {d}, true), d, 0, n - 1));
  }
  if (r > 0) {
    const Tensor right = g.narrow(d, l + n, r);
    // reflect: right position k came from n - 2 - k (positions n-1-r..n-2); replicate: n - 1.
    out = mode == kReflect ? add(out, pad_dim(flip(right, {d}), d, n - 1 - r, 1))
                           : add(out, pad_dim(sum(right, {d}, true), d, n - 1, 0));
  }
  return out;
}

void set_pad(Primitive& p) {
  p.vjp = [&p](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const Ints& pads = a.get<Ints>("pads");
    const int64_t mode = a.get<int64_t>("mode");
    if (mode == kConstant) {  // crop what was added (and zero-pad what was cropped)
      Ints neg = pads;
      for (int64_t& v : neg) v = -v;
      return std::vector<Tensor>{
          dispatch1(p, {ct[0]}, {{"pads", neg}, {"mode", kConstant}, {"value", 0.0}})};
    }
    Tensor g = ct[0];
    for (int64_t d = 0; d < in[0].dim(); ++d)
      g = fold_dim(g, d, pads[2 * d], pads[2 * d + 1], in[0].shape()[d], mode);
    return std::vector<Tensor>{g};
  };
  // The fill value is a constant: the tangent is padded with zeros.
  p.jvp = [&p](Inputs, Inputs, Inputs t, const Attrs& a) {
    return std::vector<Tensor>{t[0].defined() ? dispatch1(p, {t[0]}, with(a, "value", 0.0))
                                              : Tensor()};
  };
  p.batch = batch_front(p, [](const Attrs& a, int64_t, std::string_view) {
    Ints pads{0, 0};
    const Ints& v = a.get<Ints>("pads");
    pads.insert(pads.end(), v.begin(), v.end());
    return with(a, "pads", pads);
  });
}

}  // namespace

void register_shape_rules(Registry& r) {
  set_cat(r.get("cat"));
  set_flip(r.get("flip"));
  set_roll(r.get("roll"));
  set_repeat(r.get("repeat"));
  set_pad(r.get("pad"));
  set_tri(r.get("tril"));
  set_tri(r.get("triu"));
}

}  // namespace tessera::rules
