// Autodiff rules (vjp, jvp, vmap batching) for the view primitives. Conventions: rules.h.
//
// Views are linear: their jvps apply the view to the tangent, and their vjps put the cotangent
// back where the view took it from, with zeros elsewhere (built with pad/mul/index_put so the
// rules stay differentiable). Batch rules move the batch dim to the front, shift the dim
// attributes by one (wrapped against the logical rank) and return views of the input.
#include <algorithm>
#include <numeric>

#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"

namespace tessera::rules {
namespace {

using Ints = std::vector<int64_t>;

// Zero-pads dim d of t with `before` zeros in front and `after` behind (negative amounts crop).
Tensor pad_dim(const Tensor& t, int64_t d, int64_t before, int64_t after) {
  Ints pads(2 * (t.dim() - d), 0);  // pad() lists the last dim first
  pads[pads.size() - 2] = before;
  pads[pads.size() - 1] = after;
  return pad(t, pads);
}

// A physical dim of the batch-in-front input for the logical dim d of a rank-`rank` tensor.
int64_t front_dim(int64_t d, int64_t rank, std::string_view op) {
  return wrap_dim(d, rank, op) + 1;
}

Ints inverse(const Ints& perm) {
  Ints inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return inv;
}

// Batch rule of a one-input view: f gets the input with its batch dim in front (a view), the
// attrs and the logical rank, and returns the output batched at dim 0.
using FrontFn = Tensor (*)(const Tensor& xf, const Attrs& a, int64_t rank, const Primitive& p);
BatchFn batch_front(const Primitive& p, FrontFn f) {
  return [&p, f](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    out_bdims = {0};
    return std::vector<Tensor>{
        f(bdim_to_front(in[0], bdims[0]), a, logical_rank(in[0], bdims[0]), p)};
  };
}

// Batch rule of a view whose int attrs `keys` are dims: shifted past the batch dim.
BatchFn batch_shift(const Primitive& p, std::vector<std::string_view> keys) {
  return [&p, keys](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const int64_t rank = logical_rank(in[0], bdims[0]);
    Attrs b = a;
    for (std::string_view k : keys) b.set(k, front_dim(a.get<int64_t>(k), rank, p.name));
    out_bdims = {0};
    return dispatch(p, {bdim_to_front(in[0], bdims[0])}, b);
  };
}

Shape with_batch(int64_t batch, const Shape& s) {
  Shape out{batch};
  out.insert(out.end(), s.begin(), s.end());
  return out;
}

// ---- view, squeeze, unsqueeze: reshapes -----------------------------------------------------

// The gradient of any reshape-like view is the cotangent reshaped back (reshape, not view:
// the cotangent may be laid out differently from the input).
std::vector<Tensor> reshape_back(Inputs in, Inputs, Inputs ct, const Attrs&) {
  return {ct[0].reshape(in[0].shape())};
}

void set_view(Primitive& p) {
  p.vjp = reshape_back;
  // The tangent may have strides the view cannot express: reshape copies when needed.
  p.jvp = [](Inputs, Inputs out, Inputs t, const Attrs&) {
    return std::vector<Tensor>{t[0].defined() ? t[0].reshape(out[0].shape()) : Tensor()};
  };
  p.batch = batch_front(p, [](const Tensor& xf, const Attrs& a, int64_t, const Primitive&) {
    return xf.reshape(with_batch(xf.shape()[0], a.get<Ints>("shape")));
  });
}

void set_squeeze(Primitive& p) {
  p.vjp = reshape_back;
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, [](const Tensor& xf, const Attrs& a, int64_t rank, const Primitive& q) {
    Ints dims;
    for (int64_t d : a.get<Ints>("dims")) dims.push_back(front_dim(d, rank, q.name));
    return dispatch1(q, {xf}, {{"dims", dims}});
  });
}

void set_unsqueeze(Primitive& p) {
  p.vjp = reshape_back;
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, [](const Tensor& xf, const Attrs& a, int64_t rank, const Primitive& q) {
    // The new dim may go after the last one: wrap against rank + 1.
    return dispatch1(q, {xf}, {{"dim", front_dim(a.get<int64_t>("dim"), rank + 1, q.name)}});
  });
}

// ---- permute, expand ------------------------------------------------------------------------

Ints wrapped_perm(const Attrs& a, int64_t rank) {
  Ints perm;
  for (int64_t d : a.get<Ints>("dims")) perm.push_back(wrap_dim(d, rank, "permute"));
  return perm;
}

void set_permute(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{ct[0].permute(inverse(wrapped_perm(a, in[0].dim())))};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, [](const Tensor& xf, const Attrs& a, int64_t rank, const Primitive&) {
    Ints perm{0};
    for (int64_t d : wrapped_perm(a, rank)) perm.push_back(d + 1);
    return xf.permute(perm);
  });
}

void set_expand(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs&) {
    return std::vector<Tensor>{sum_to(ct[0], in[0].shape())};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_front(p, [](const Tensor& xf, const Attrs& a, int64_t rank, const Primitive&) {
    // New leading dims go after the batch dim: insert them as ones, then expand.
    const Ints& shape = a.get<Ints>("shape");
    Shape s = xf.shape();
    s.insert(s.begin() + 1, static_cast<int64_t>(shape.size()) - rank, 1);
    return xf.reshape(s).expand(with_batch(xf.shape()[0], shape));
  });
}

// ---- slice, select, diagonal: zeros with the cotangent written at the view ------------------

// Zeros of size n along dim d with t's slices at start, start + step, ...
Tensor put_strided(const Tensor& t, int64_t d, int64_t start, int64_t step, int64_t n) {
  const int64_t m = t.shape()[d];
  if (step == 1) return pad_dim(t, d, start, n - start - m);
  // Interleave step - 1 zeros after each slice, then place (cropping the excess at the end).
  Shape s = t.shape();
  s[d] = m * step;
  Tensor spread = pad_dim(t.unsqueeze(d + 1), d + 1, 0, step - 1).reshape(s);
  return pad_dim(spread, d, start, n - start - m * step);
}

void set_slice(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), in[0].dim(), "slice");
    return std::vector<Tensor>{
        put_strided(ct[0], d, a.get<int64_t>("start"), a.get<int64_t>("step"), in[0].shape()[d])};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_shift(p, {"dim"});
}

void set_select(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const int64_t d = wrap_dim(a.get<int64_t>("dim"), in[0].dim(), "select");
    const int64_t n = in[0].shape()[d];
    int64_t i = a.get<int64_t>("index");
    if (i < 0) i += n;
    return std::vector<Tensor>{pad_dim(ct[0].unsqueeze(d), d, i, n - 1 - i)};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_shift(p, {"dim"});
}

// Zeros shaped like x with ct (shape: the other dims, then the diagonal) on the diagonal.
Tensor put_diagonal(const Tensor& ct, const Tensor& x, const Attrs& a) {
  const int64_t r = x.dim(), off = a.get<int64_t>("offset");
  const int64_t d1 = wrap_dim(a.get<int64_t>("dim1"), r, "diagonal");
  const int64_t d2 = wrap_dim(a.get<int64_t>("dim2"), r, "diagonal");
  const int64_t n1 = x.shape()[d1], n2 = x.shape()[d2], len = ct.shape().back();
  if (len == 0 || ct.numel() == 0) return zeros_like(x);
  // The diagonal as a (len, len) matrix, padded to (n1, n2) so that it starts at the offset.
  Tensor m = mul(ct.unsqueeze(-1), eye(len, len, ct.dtype()));
  const int64_t row0 = off >= 0 ? 0 : -off, col0 = off >= 0 ? off : 0;
  m = pad_dim(m, r - 2, row0, n1 - len - row0);
  m = pad_dim(m, r - 1, col0, n2 - len - col0);
  // m's dims are x's other dims in order, then d1, d2: permute them back into x's order.
  Ints order;
  for (int64_t d = 0; d < r; ++d)
    if (d != d1 && d != d2) order.push_back(d);
  order.push_back(d1);
  order.push_back(d2);
  return m.permute(inverse(order));
}

void set_diagonal(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    return std::vector<Tensor>{put_diagonal(ct[0], in[0], a)};
  };
  p.jvp = jvp_linear(p);
  p.batch = batch_shift(p, {"dim1", "dim2"});
}

// ---- as_strided -----------------------------------------------------------------------------
// The view reads storage positions offset + sum(i_d * stride_d). Gradients go through a flat
// buffer covering the storage that the input and the output touch: the input's elements sit at
// their own storage positions in it, so elements the output reads outside the input get no
// gradient and positions read several times accumulate. The vjp reads the input's layout.

// A 1-d view or copy of t (0-d tensors get a unit dim).
Tensor flat1(const Tensor& t) { return t.dim() == 0 ? t.unsqueeze(0) : t.reshape({-1}); }

// Storage positions of a strided layout, flattened (int64).
Tensor positions(const Shape& s, const Strides& st, int64_t offset) {
  Tensor pos = scalar_tensor(offset, kInt64);
  for (size_t d = 0; d < s.size(); ++d) {
    Shape at(s.size(), 1);
    at[d] = s[d];
    pos = add(pos, mul(arange(s[d], kInt64), Scalar(st[d])).reshape(at));
  }
  return flat1(pos.expand(s));
}

// Smallest and largest storage position of a non-empty layout.
std::pair<int64_t, int64_t> span_of(const Shape& s, const Strides& st, int64_t offset) {
  int64_t lo = offset, hi = offset;
  for (size_t d = 0; d < s.size(); ++d) (st[d] < 0 ? lo : hi) += (s[d] - 1) * st[d];
  return {lo, hi};
}

// Whether distinct elements of the layout can share a storage position (sufficient test:
// sorted by stride, each dim must step past everything the smaller dims span).
bool may_overlap(const Shape& s, const Strides& st) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride|, size)
  for (size_t d = 0; d < s.size(); ++d)
    if (s[d] > 1) dims.emplace_back(std::abs(st[d]), s[d]);
  std::sort(dims.begin(), dims.end());
  int64_t reach = 0;  // largest distance covered by the smaller dims
  for (const auto& [stride, size] : dims) {
    if (stride <= reach) return true;
    reach += stride * (size - 1);
  }
  return false;
}

struct Layouts {
  Tensor in_pos, out_pos;  // flat positions relative to lo
  int64_t size = 0;        // of the buffer
};

Layouts layouts(const Tensor& x, const Attrs& a) {
  const Ints &shape = a.get<Ints>("shape"), &strides = a.get<Ints>("strides");
  const int64_t offset = a.get<int64_t>("offset");
  auto [lo, hi] = span_of(x.shape(), x.strides(), x.offset());
  auto [olo, ohi] = span_of(shape, strides, offset);
  lo = std::min(lo, olo);
  hi = std::max(hi, ohi);
  return {sub(positions(x.shape(), x.strides(), x.offset()), Scalar(lo)),
          sub(positions(shape, strides, offset), Scalar(lo)), hi - lo + 1};
}

void set_as_strided(Primitive& p) {
  p.vjp = [](Inputs in, Inputs, Inputs ct, const Attrs& a) {
    const Tensor& x = in[0];
    if (x.numel() == 0 || ct[0].numel() == 0) return std::vector<Tensor>{zeros_like(x)};
    if (may_overlap(x.shape(), x.strides()))
      fail<NotImplementedError>("as_strided",
                                "gradient for an input whose elements overlap in memory "
                                "(shape {}, strides ({}))",
                                shape_str(x.shape()), fmt::join(x.strides(), ", "));
    Layouts l = layouts(x, a);
    Tensor buf = index_put(zeros({l.size}, ct[0].dtype()), {l.out_pos}, flat1(ct[0]), true);
    return std::vector<Tensor>{index(buf, {l.in_pos}).reshape(x.shape())};
  };
  // The tangent is laid out like the input (not like its own strides) before the view reads it.
  p.jvp = [](Inputs in, Inputs out, Inputs t, const Attrs& a) {
    const Tensor& x = in[0];
    if (!t[0].defined()) return std::vector<Tensor>{Tensor()};
    if (x.numel() == 0 || out[0].numel() == 0) return std::vector<Tensor>{zeros_like(out[0])};
    Layouts l = layouts(x, a);
    Tensor buf = index_put(zeros({l.size}, t[0].dtype()), {l.in_pos}, flat1(t[0]));
    return std::vector<Tensor>{index(buf, {l.out_pos}).reshape(out[0].shape())};
  };
  // Like functorch: example b of the output starts at offset + b * (batch stride). When the
  // examples are not laid out one after the other, they are first copied so that they are (the
  // offset then stays relative to the input's own offset).
  p.batch = [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a, Ints& out_bdims) {
    const Tensor& x = in[0];
    Tensor xf = bdim_to_front(x, bdims[0]);
    if (!xf.is_contiguous()) xf = xf.contiguous();
    const int64_t batch = xf.shape()[0];
    const int64_t per = batch > 0 ? xf.numel() / batch : 0;
    Strides st{per};
    const Ints& s = a.get<Ints>("strides");
    st.insert(st.end(), s.begin(), s.end());
    const int64_t offset = a.get<int64_t>("offset") + xf.offset() - x.offset();
    out_bdims = {0};
    return dispatch(
        p, {xf},
        {{"shape", with_batch(batch, a.get<Ints>("shape"))}, {"strides", st}, {"offset", offset}});
  };
}

}  // namespace

void register_view_rules(Registry& r) {
  set_view(r.get("view"));
  set_permute(r.get("permute"));
  set_slice(r.get("slice"));
  set_select(r.get("select"));
  set_expand(r.get("expand"));
  set_squeeze(r.get("squeeze"));
  set_unsqueeze(r.get("unsqueeze"));
  set_diagonal(r.get("diagonal"));
  set_as_strided(r.get("as_strided"));
}

}  // namespace tessera::rules
