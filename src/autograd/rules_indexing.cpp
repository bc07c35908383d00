// Autodiff rules (vjp, jvp, vmap batching) for the indexing primitives. Conventions: rules.h.
//
// Reads (index_select, gather, index) have scatter-add adjoints and writes (scatter, index_put)
// gather adjoints; index and mask inputs get no gradient. Where a write with repeated indices
// keeps only the last value (scatter, index_put without accumulate), only that value gets the
// gradient: the rules find the winners by replaying the write with element ids. All of them
// are linear in their floating inputs except masked_fill (its fill value is a constant).
//
// Batch rules put the batch dim in front of every input (expanding unbatched ones where the
// primitive needs matching sizes). Batched index tensors of index/index_put/index_put_ become
// one more advanced index: arange(batch) over the batch dim.
#include <numeric>

#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"

namespace tessera::rules {
namespace {

using Ints = std::vector<int64_t>;

Attrs with(const Attrs& a, std::string_view key, AttrValue v) {
  Attrs out = a;
  out.set(key, std::move(v));
  return out;
}

Ints inverse(const Ints& perm) {
  Ints inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return inv;
}

// t with zeros where keep is false (keep broadcasts to t).
Tensor keep_only(const Tensor& t, const Tensor& keep) {
  return masked_fill(t, logical_not(keep), Scalar(0));
}

// t zero-padded at the end of each dim up to shape.
Tensor pad_to(const Tensor& t, const Shape& shape) {
  Ints pads;  // pad() lists the last dim first
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    pads.push_back(0);
    pads.push_back(shape[d] - t.shape()[d]);
  }
  return t.shape() == shape ? t : pad(t, pads);
}

// 0..n-1 (int64) shaped like s on device d: an id per element.
Tensor element_ids(const Shape& s, Device d) {
  const int64_t n = std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
  return arange(n, kInt64).reshape(s).to(d);
}

// ---- index_select ---------------------------------------------------------------------------

void set_index_select(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const Tensor& x = in[0];
    std::vector<Tensor> at(wrap_dim(a.get<int64_t>("dim"), x.dim(), "index_select"));
    at.push_back(in[1]);  // undefined entries: whole dims
    return std::vector<Tensor>{index_put(zeros_like(x), at, ct[0], /*accumulate=*/true), Tensor()};
  };
  p.jvp = jvp_linear(p);
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t batch = batch_size(in, bdims, "index_select");
    const int64_t rank = logical_rank(in[0], bdims[0]);
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), rank, "index_select") + 1;
    const Tensor x = batched_front(in[0], bdims[0], batch);
    out_bdims = {0};
    if (bdims[1] < 0) return dispatch(p, {x, in[1]}, {{"dim", d}});
    // A batched index (batch, k): gather with the index spread along dim d.
    const Tensor idx = bdim_to_front(in[1], bdims[1]);
    Shape at(rank + 1, 1), full = x.shape();
    at[0] = batch;
    at[d] = full[d] = idx.shape()[1];
    return std::vector<Tensor>{gather(x, d, idx.reshape(at).expand(full))};
  };
}

// ---- gather, scatter, scatter_add -----------------------------------------------------------

// Gradient of scatter's src: ct read at the written positions, zero outside index's extent
// (src may be larger than index). With repeated positions only the last write counts.
Tensor src_grad(const Tensor& ct, int64_t d, const Tensor& idx, const Shape& src_shape,
                bool last_wins) {
  Tensor g = gather(ct, d, idx);
  if (last_wins && g.numel() > 0) {
    const Tensor ids = element_ids(idx.shape(), ct.device());
    const Tensor winner =
        scatter(full(ct.shape(), Scalar(-1), TensorOptions(kInt64, ct.device())), d, idx, ids);
    g = keep_only(g, eq(gather(winner, d, idx), ids));
  }
  return pad_to(g, src_shape);
}

// gather/scatter/scatter_add: every input in front (index and src must match x's batch).
BatchFn batch_along(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t batch = batch_size(in, bdims, p.name);
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), logical_rank(in[0], bdims[0]), p.name) + 1;
    std::vector<Tensor> args;
    for (size_t i = 0; i < in.size(); ++i) args.push_back(batched_front(in[i], bdims[i], batch));
    args[1] = args[1].contiguous();  // the primitives want contiguous indices
    out_bdims = {0};
    return dispatch(p, args, {{"dim", d}});
  };
}

void set_gather(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = a.get<int64_t>("dim");
    return std::vector<Tensor>{scatter_add(zeros_like(in[0]), d, in[1], ct[0]), Tensor()};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_along(p);
}

void set_scatter(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = a.get<int64_t>("dim");
    return std::vector<Tensor>{scatter(ct[0], d, in[1], Scalar(0)), Tensor(),
                               src_grad(ct[0], d, in[1], in[2].shape(), true)};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_along(p);
}

void set_scatter_add(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = a.get<int64_t>("dim");
    return std::vector<Tensor>{ct[0], Tensor(), src_grad(ct[0], d, in[1], in[2].shape(), false)};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_along(p);
}

// ---- masked_fill ----------------------------------------------------------------------------

void set_masked_fill(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    std::vector<Tensor> g(in.size());
    g[0] = masked_fill(ct[0], in[1], Scalar(0));
    return g;
  };
  p.jvp = [](Inputs in, Inputs, Inputs t, const Attrs&) {
    return std::vector<Tensor>{t[0].defined() ? masked_fill(t[0], in[1], Scalar(0)) : Tensor()};
  };
  // The mask broadcasts to x from the right: align them, with x batched (it gives the shape).
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    std::vector<Tensor> args = align_for_broadcast(in, bdims);
    args[0] = batched_front(args[0], bdims[0] < 0 ? -1 : 0, batch_size(in, bdims, p.name));
    out_bdims = {0};
    return dispatch(p, args, a);
  };
}

// ---- index, index_put, index_put_ -----------------------------------------------------------
// inputs: x, [values,] idx_0..idx_k-1 (int64, one shape I) indexing dims [start, start + k);
// the result (and values) have shape x[:start] + I + x[start+k:].

// The index tensors as a public index()/index_put() argument list (whole dims before start).
std::vector<Tensor> index_list(Inputs idx, int64_t start) {
  std::vector<Tensor> at(start);
  at.insert(at.end(), idx.begin(), idx.end());
  return at;
}

// Gradient of index_put's values: ct at the written positions. Without accumulate, repeated
// positions keep the last value: only it gets the gradient.
Tensor values_grad(const Tensor& ct, Inputs idx, int64_t start, bool accumulate) {
  Tensor g = index(ct, index_list(idx, start));
  if (accumulate || g.numel() == 0) return g;
  const auto k = static_cast<int64_t>(idx.size());
  const Shape& ishape = idx[0].shape();
  const Shape indexed(ct.shape().begin() + start, ct.shape().begin() + start + k);
  const std::vector<Tensor> at(idx.begin(), idx.end());
  const Tensor ids = element_ids(ishape, ct.device());
  const Tensor winner =
      index_put(full(indexed, Scalar(-1), TensorOptions(kInt64, ct.device())), at, ids);
  Shape s(start, 1);  // the winners broadcast over the other dims
  s.insert(s.end(), ishape.begin(), ishape.end());
  s.insert(s.end(), g.dim() - static_cast<int64_t>(s.size()), 1);
  return keep_only(g, eq(index(winner, at), ids).reshape(s));
}

std::vector<Tensor> index_put_vjp(Inputs in, Inputs, Inputs ct, const Attrs& a) {
  // Only shapes of in[0] are used: index_put_ has overwritten its values.
  const int64_t start = a.get<int64_t>("start");
  const bool acc = a.get<bool>("accumulate");
  Inputs idx = in.subspan(2);
  std::vector<Tensor> g(in.size());
  g[0] = acc ? ct[0] : index_put(ct[0], index_list(idx, start), zeros_like(in[1]));
  g[1] = values_grad(ct[0], idx, start, acc);
  return g;
}

// Batching with batched index tensors: x (batch in front) is permuted so the indexed dims
// follow the batch dim, which arange(batch) indexes: the primitive then runs with start 0 on
// x_perm, with result (batch, I, x[:start], x[start+k:]).
struct BatchedIndex {
  Tensor x;                    ///< x permuted (a view)
  Ints perm;                   ///< applied to x (batch dim first)
  std::vector<Tensor> idx;     ///< arange(batch) then the index tensors, all (batch, I), contiguous
  int64_t start = 0, n_i = 0;  ///< the logical start, rank of I
};

BatchedIndex batch_index(const Tensor& xf, Inputs idx, std::span<const int64_t> ibdims,
                         int64_t start, int64_t batch) {
  BatchedIndex b{.start = start};
  const auto k = static_cast<int64_t>(idx.size());
  b.perm = {0};
  for (int64_t d = 0; d < k; ++d) b.perm.push_back(start + 1 + d);
  for (int64_t d = 1; d < xf.dim(); ++d)
    if (d <= start || d > start + k) b.perm.push_back(d);
  b.x = xf.permute(b.perm);
  for (int64_t j = 0; j < k; ++j) b.idx.push_back(batched_front(idx[j], ibdims[j], batch));
  const Shape full = b.idx[0].shape();
  b.n_i = static_cast<int64_t>(full.size()) - 1;
  Shape col(full.size(), 1);
  col[0] = batch;
  b.idx.insert(b.idx.begin(), arange(batch, kInt64).to(xf.device()).reshape(col).expand(full));
  for (Tensor& t : b.idx) t = t.contiguous();
  return b;
}

// Permutation moving the I dims of (batch, I, pre, post) after pre: (batch, pre, I, post).
Ints i_after_pre(int64_t rank, int64_t n_i, int64_t start) {
  Ints perm{0};
  for (int64_t d = 0; d < start; ++d) perm.push_back(1 + n_i + d);
  for (int64_t d = 0; d < n_i; ++d) perm.push_back(1 + d);
  for (int64_t d = 1 + n_i + start; d < rank; ++d) perm.push_back(d);
  return perm;
}

bool any_batched(std::span<const int64_t> bdims) {
  for (int64_t b : bdims)
    if (b >= 0) return true;
  return false;
}

void set_index(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    std::vector<Tensor> g(in.size());
    g[0] = index_put(zeros_like(in[0]), index_list(in.subspan(1), a.get<int64_t>("start")), ct[0],
                     /*accumulate=*/true);
    return g;
  };
  p.jvp = jvp_linear(p);
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t batch = batch_size(in, bdims, "index");
    const int64_t start = a.get<int64_t>("start");
    const Tensor x = batched_front(in[0], bdims[0], batch);
    out_bdims = {0};
    if (!any_batched(bdims.subspan(1))) {
      std::vector<Tensor> args(in.begin(), in.end());
      args[0] = x;
      return dispatch(p, args, with(a, "start", start + 1));
    }
    BatchedIndex b = batch_index(x, in.subspan(1), bdims.subspan(1), start, batch);
    std::vector<Tensor> args{b.x};
    args.insert(args.end(), b.idx.begin(), b.idx.end());
    const Tensor out = dispatch1(p, args, with(a, "start", int64_t{0}));
    return std::vector<Tensor>{out.permute(i_after_pre(out.dim(), b.n_i, start))};
  };
}

// Batch rule of index_put (in_place false) and index_put_ (true: writes into the physical x,
// which must then be batched).
BatchFn batch_put(const Primitive& p, bool in_place) {
  return
      [&p, in_place](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
        const int64_t batch = batch_size(in, bdims, p.name);
        const int64_t start = a.get<int64_t>("start");
        if (in_place && bdims[0] < 0)
          fail<ValueError>(p.name,
                           "vmap: cannot write batched values in place into an unbatched tensor");
        const Tensor x = batched_front(in[0], bdims[0], batch);
        Tensor values = batched_front(in[1], bdims[1], batch);
        std::vector<Tensor> args{x, values};
        Attrs attrs = with(a, "start", start + 1);
        Ints perm;
        if (!any_batched(bdims.subspan(2))) {
          args.insert(args.end(), in.begin() + 2, in.end());
        } else {
          BatchedIndex b = batch_index(x, in.subspan(2), bdims.subspan(2), start, batch);
          perm = b.perm;
          // values (batch, pre, I, post) -> (batch, I, pre, post), like the permuted x's result.
          values = values.permute(inverse(i_after_pre(values.dim(), b.n_i, start)));
          args = {b.x, values};
          args.insert(args.end(), b.idx.begin(), b.idx.end());
          attrs = with(a, "start", int64_t{0});
        }
        if (in_place) {  // x is a view of the physical input: the write lands there
          dispatch(p, args, attrs);
          out_bdims = {bdims[0]};
          return std::vector<Tensor>{in[0]};
        }
        const Tensor out = dispatch1(p, args, attrs);
        out_bdims = {0};
        return std::vector<Tensor>{perm.empty() ? out : out.permute(inverse(perm))};
      };
}

void set_index_put(Primitive& p) {
  p.vjp = index_put_vjp;
  p.jvp = jvp_linear(p);
  p.batch = batch_put(p, false);
}

void set_index_put_(Primitive& p, const Primitive& out_of_place) {
  p.vjp = index_put_vjp;
  // The tangent of the result, computed out of place (the tangents must not be overwritten).
  p.jvp = [&out_of_place](Inputs in, Inputs, Inputs t, const Attrs& a) {
    if (!t[0].defined() && !t[1].defined()) return std::vector<Tensor>{Tensor()};
    std::vector<Tensor> args(in.begin(), in.end());
    args[0] = or_zeros(t[0], in[0]);
    args[1] = or_zeros(t[1], in[1]);
    return dispatch(out_of_place, args, a);
  };
  p.batch = batch_put(p, true);
}

}  // namespace

void register_indexing_rules(Registry& r) {
  set_index_select(r.get("index_select"));
  set_gather(r.get("gather"));
  set_scatter(r.get("scatter"));
  set_scatter_add(r.get("scatter_add"));
  set_masked_fill(r.get("masked_fill"));
  set_index(r.get("index"));
  set_index_put(r.get("index_put"));
  set_index_put_(r.get("index_put_"), r.get("index_put"));
  // nonzero: non-differentiable with a data-dependent shape; vmap loops over it.
}

}  // namespace tessera::rules
