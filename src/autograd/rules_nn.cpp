// Autodiff rules (vjp, jvp, vmap batching) for convolution and pooling. Conventions: rules.h.
//
// The three convolution primitives are each other's derivatives. With y = conv(x, w):
//   dx = conv_transpose(dy, w)  (output_padding chosen to give back x's size)
//   dw = conv_weight_grad(x, dy)
// and conv_transpose's derivatives are conv (narrowed to x's size) and conv_weight_grad(dy, x);
// conv_weight_grad's are conv_transpose and conv again, so every order of derivative stays in
// this family. Pooling backward primitives are linear in the gradient; their vjp is the
// forward pool (avg) or a gather through the argmax (max).
//
// Batching: a batched input with unbatched weights folds the batch into N. Batched weights
// (or a batched conv_weight_grad) turn the batch into groups: channels of the B examples are
// stacked and groups becomes B * groups, so each example only meets its own weights.
#include "autograd/rules.h"
#include "ops/nn_geometry.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"
#include "tessera/ops/reduce.h"

namespace tessera::rules {
namespace {

using Ints = std::vector<int64_t>;

struct NnPrims {
  const Primitive *conv, *tr, *wgrad, *max_pool, *max_bw, *avg_pool, *avg_bw;
};

Ints spatial(const Shape& s) { return Ints(s.begin() + 2, s.end()); }

Tensor call(const Primitive* p, std::vector<Tensor> in, const Attrs& a) {
  return dispatch(*p, in, a)[0];
}

// The transposed convolution of `grid` that reaches exactly the spatial size of `image`.
Tensor transpose_to(const NnPrims& P, const Tensor& grid, const Tensor& w, const Shape& image,
                    const Attrs& a) {
  const Ints &s = a.get<Ints>("stride"), &p = a.get<Ints>("padding"), &d = a.get<Ints>("dilation");
  Ints op(s.size());
  for (size_t i = 0; i < s.size(); ++i)
    op[i] = image[2 + i] -
            detail::conv_transpose_out_size(grid.size(2 + i), w.size(2 + i), s[i], p[i], d[i], 0);
  Attrs t = a;
  t.set("output_padding", op);
  return call(P.tr, {grid, w}, t);
}

Tensor weight_grad(const NnPrims& P, const Tensor& image, const Tensor& grid, const Shape& weight,
                   const Attrs& a) {
  Attrs t = a;
  t.set("kernel", spatial(weight));
  return call(P.wgrad, {image, grid}, t);
}

// t with each spatial dim cut to the size it has in `like` (a no-op where they agree).
Tensor narrow_to(Tensor t, const Shape& like) {
  for (int64_t i = 2; i < t.dim(); ++i)
    if (t.size(i) != like[i]) t = t.narrow(i, 0, like[i]);
  return t;
}

// Gradient of a per-channel bias: the cotangent summed over batch and space.
Tensor bias_grad(const Tensor& ct) {
  Dims dims{0};
  for (int64_t i = 2; i < ct.dim(); ++i) dims.push_back(i);
  return tessera::sum(ct, dims);
}

// A bias tangent broadcast over the output (N, C, *spatial).
Tensor bias_tangent(const Tensor& tb, const Tensor& out) {
  Shape s(out.shape().size(), 1);
  s[1] = tb.size(0);
  return tb.reshape(s).expand(out.shape()).contiguous();
}

// ---- convolutions -------------------------------------------------------------------------

void set_conv(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());  // skipping unwanted ones: the data batch's dx
    if (grad_wanted(0)) g[0] = transpose_to(P, ct[0], in[1], in[0].shape(), a);
    if (grad_wanted(1)) g[1] = weight_grad(P, in[0], ct[0], in[1].shape(), a);
    if (in.size() > 2 && grad_wanted(2)) g[2] = bias_grad(ct[0]);
    return g;
  };
  p.jvp = [P](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    Tensor y;
    if (t[0].defined()) y = call(P.conv, {t[0], in[1]}, a);
    if (t[1].defined()) y = add_opt(y, call(P.conv, {in[0], t[1]}, a));
    if (in.size() > 2 && t[2].defined()) y = add_opt(y, bias_tangent(t[2], out[0]));
    return std::vector<Tensor>{y};
  };
}

void set_conv_transpose(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    // With output_padding >= stride the adjoint conv covers extra positions of x: cut them.
    if (grad_wanted(0)) g[0] = narrow_to(call(P.conv, {ct[0], in[1]}, a), in[0].shape());
    if (grad_wanted(1)) g[1] = weight_grad(P, ct[0], in[0], in[1].shape(), a);
    if (in.size() > 2 && grad_wanted(2)) g[2] = bias_grad(ct[0]);
    return g;
  };
  p.jvp = [P](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    Tensor y;
    if (t[0].defined()) y = call(P.tr, {t[0], in[1]}, a);
    if (t[1].defined()) y = add_opt(y, call(P.tr, {in[0], t[1]}, a));
    if (in.size() > 2 && t[2].defined()) y = add_opt(y, bias_tangent(t[2], out[0]));
    return std::vector<Tensor>{y};
  };
}

// Bilinear in (x, dy): dx = conv_transpose(dy, G), d dy = conv(x, G) cut to dy's size.
void set_conv_weight_grad(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(2);
    if (grad_wanted(0)) g[0] = transpose_to(P, in[1], ct[0], in[0].shape(), a);
    if (grad_wanted(1)) g[1] = narrow_to(call(P.conv, {in[0], ct[0]}, a), in[1].shape());
    return g;
  };
  p.jvp = [P](Inputs in, Inputs, Inputs t, const Attrs& a) {
    Tensor y;
    if (t[0].defined()) y = call(P.wgrad, {t[0], in[1]}, a);
    if (t[1].defined()) y = add_opt(y, call(P.wgrad, {in[0], t[1]}, a));
    return std::vector<Tensor>{y};
  };
}

// t (batch dim bdim, or unbatched: expanded) with the batch merged into dim `into`.
Tensor merge_batch(const Tensor& t, int64_t bdim, int64_t batch, int64_t into) {
  Tensor f = movedim(batched_front(t, bdim, batch), 0, into);
  Shape s = f.shape();
  s[into] *= s[into + 1];
  s.erase(s.begin() + into + 1);
  return f.reshape(s);
}

// Dim `at` of y (batch * size) split back into (batch, size).
Tensor split_batch(const Tensor& y, int64_t at, int64_t batch) {
  Shape s = y.shape();
  s[at] /= batch;
  s.insert(s.begin() + at, batch);
  return y.reshape(s);
}

// conv and conv_transpose: inputs (x, w[, b]), output (N, C, *spatial).
BatchFn batch_conv(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bd, const Attrs& a, std::vector<int64_t>& ob) {
    const int64_t batch = batch_size(in, bd, p.name);
    std::vector<Tensor> args(in.begin(), in.end());
    const bool weights_batched = bd[1] >= 0 || (in.size() > 2 && bd[2] >= 0);
    if (!weights_batched) {  // one convolution over B * N items
      args[0] = merge_batch(in[0], bd[0], batch, 0);
      ob = {0};
      return std::vector<Tensor>{split_batch(dispatch(p, args, a)[0], 0, batch)};
    }
    args[0] = merge_batch(in[0], bd[0], batch, 1);
    for (size_t i = 1; i < in.size(); ++i) args[i] = merge_batch(in[i], bd[i], batch, 0);
    Attrs t = a;
    t.set("groups", a.get<int64_t>("groups") * batch);
    ob = {1};
    return std::vector<Tensor>{split_batch(dispatch(p, args, t)[0], 1, batch)};
  };
}

// conv_weight_grad: (x, dy) -> (O, C / groups, *k); batched examples become groups.
BatchFn batch_weight_grad(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bd, const Attrs& a, std::vector<int64_t>& ob) {
    const int64_t batch = batch_size(in, bd, p.name);
    std::vector<Tensor> args{merge_batch(in[0], bd[0], batch, 1),
                             merge_batch(in[1], bd[1], batch, 1)};
    Attrs t = a;
    t.set("groups", a.get<int64_t>("groups") * batch);
    ob = {0};
    return std::vector<Tensor>{split_batch(dispatch(p, args, t)[0], 0, batch)};
  };
}

// ---- pooling --------------------------------------------------------------------------------

// Values of t (N, C, *spatial) at the plane indices idx (N, C, *out): a gather per plane.
Tensor gather_planes(const Tensor& t, const Tensor& idx) {
  return gather(t.flatten(2), 2, idx.flatten(2)).reshape(idx.shape());
}

Attrs with_input_size(const Attrs& a, const Tensor& x) {
  Attrs t = a;
  t.set("input_size", spatial(x.shape()));
  return t;
}

void set_max_pool(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs in, Inputs out, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{call(P.max_bw, {ct[0], out[1]}, with_input_size(a, in[0]))};
  };
  p.jvp = [](Inputs, Inputs out, Inputs t, const Attrs&) {
    std::vector<Tensor> r(2);
    if (t[0].defined()) r[0] = gather_planes(t[0], out[1]);
    return r;
  };
  p.vjp_skips = kVjpSkipsFloatInputs;  // the indices (an output) say where the max was
}

void set_max_pool_backward(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    return std::vector<Tensor>{gather_planes(ct[0], in[1]), Tensor()};
  };
  p.jvp = jvp_linear(p);
  p.vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;
}

void set_avg_pool(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{call(P.avg_bw, {ct[0]}, with_input_size(a, in[0]))};
  };
  p.jvp = jvp_linear(p);
  p.vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;
}

// The adjoint of the adjoint is the pool itself (its attrs carry an unused input_size).
void set_avg_pool_backward(Primitive& p, const NnPrims& P) {
  p.vjp = [P](Inputs, Inputs, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{call(P.avg_pool, {ct[0]}, a)};
  };
  p.jvp = jvp_linear(p);
  p.vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;
}

// Pools treat every (n, c) plane alike: the batch folds into N for every input and output.
BatchFn batch_pool(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bd, const Attrs& a, std::vector<int64_t>& ob) {
    const int64_t batch = batch_size(in, bd, p.name);
    std::vector<Tensor> args;
    for (size_t i = 0; i < in.size(); ++i) args.push_back(merge_batch(in[i], bd[i], batch, 0));
    std::vector<Tensor> out = dispatch(p, args, a);
    for (Tensor& o : out) o = split_batch(o, 0, batch);
    ob.assign(out.size(), 0);
    return out;
  };
}

}  // namespace

void register_nn_rules(Registry& r) {
  const NnPrims P{&r.get("conv"),
                  &r.get("conv_transpose"),
                  &r.get("conv_weight_grad"),
                  &r.get("max_pool"),
                  &r.get("max_pool_backward"),
                  &r.get("avg_pool"),
                  &r.get("avg_pool_backward")};
  set_conv(r.get("conv"), P);
  set_conv_transpose(r.get("conv_transpose"), P);
  set_conv_weight_grad(r.get("conv_weight_grad"), P);
  for (const char* name : {"conv", "conv_transpose", "conv_weight_grad"})
    r.get(name).vjp_skips = kVjpSkipsOutputs;  // derivatives read the inputs only
  for (const char* name : {"conv", "conv_transpose"}) r.get(name).batch = batch_conv(r.get(name));
  r.get("conv_weight_grad").batch = batch_weight_grad(r.get("conv_weight_grad"));
  set_max_pool(r.get("max_pool"), P);
  set_max_pool_backward(r.get("max_pool_backward"));
  set_avg_pool(r.get("avg_pool"), P);
  set_avg_pool_backward(r.get("avg_pool_backward"), P);
  for (const char* name : {"max_pool", "max_pool_backward", "avg_pool", "avg_pool_backward"})
    r.get(name).batch = batch_pool(r.get(name));
}

}  // namespace tessera::rules
