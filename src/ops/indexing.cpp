// Indexing primitives (gather/scatter family, advanced indexing, masks) and their public ops.
// Python-style index expressions live in index_expr.cpp and reduce to these.
#include "tessera/ops/indexing.h"

#include <algorithm>
#include <optional>

#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "tessera/ops/shape.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

// ---- inference --------------------------------------------------------------------------------

void check_index_tensor(const Tensor& idx, std::string_view op) {
  if (idx.dtype() != kInt64 || !idx.is_contiguous())
    fail<DTypeError>(op, "index tensors must be contiguous int64 here, got {}",
                     dtype_name(idx.dtype()));
}

std::vector<TensorMeta> index_select_meta(Inputs in, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1];
  check_index_tensor(idx, "index_select");
  if (idx.dim() != 1)
    fail<IndexError>("index_select", "index must be 1-d here, got shape {}",
                     shape_str(idx.shape()));
  const int64_t d = wrap_dim(a.get<int64_t>("dim"), x.dim(), "index_select");
  Shape s = x.shape();
  s[d] = idx.numel();
  return {{s, x.dtype()}};
}

// gather/scatter: index (and src) have x's ndim; index fits inside src everywhere and inside x
// away from dim.
void check_along(Inputs in, const Attrs& a, std::string_view op, bool has_src) {
  const Tensor &x = in[0], &idx = in[1];
  check_index_tensor(idx, op);
  const int64_t d = wrap_dim(a.get<int64_t>("dim"), x.dim(), op);
  if (idx.dim() != x.dim())
    fail<ShapeError>(op, "index {} must have as many dims as the input {}", shape_str(idx.shape()),
                     shape_str(x.shape()));
  for (int64_t i = 0; i < x.dim(); ++i)
    if (i != d && idx.shape()[i] > x.shape()[i])
      fail<ShapeError>(op,
                       "index {} is larger than the input {} at dim {} (only dim {} may differ)",
                       shape_str(idx.shape()), shape_str(x.shape()), i, d);
  if (!has_src) return;
  const Tensor& src = in[2];
  if (src.dtype() != x.dtype())
    fail<DTypeError>(op, "src dtype {} must match the input dtype {}", dtype_name(src.dtype()),
                     dtype_name(x.dtype()));
  if (src.dim() != x.dim())
    fail<ShapeError>(op, "src {} must have as many dims as the input {}", shape_str(src.shape()),
                     shape_str(x.shape()));
  for (int64_t i = 0; i < x.dim(); ++i)
    if (idx.shape()[i] > src.shape()[i])
      fail<ShapeError>(op, "index {} is larger than src {} at dim {}", shape_str(idx.shape()),
                       shape_str(src.shape()), i);
}

std::vector<TensorMeta> gather_meta(Inputs in, const Attrs& a) {
  check_along(in, a, "gather", false);
  return {{in[1].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> scatter_meta(Inputs in, const Attrs& a) {
  check_along(in, a, "scatter", true);
  return {{in[0].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> scatter_add_meta(Inputs in, const Attrs& a) {
  check_along(in, a, "scatter_add", true);
  return {{in[0].shape(), in[0].dtype()}};
}

// The mask broadcasts to x (x's shape is kept, like Tensor.masked_fill_).
std::vector<TensorMeta> masked_fill_meta(Inputs in, const Attrs&) {
  const Tensor &x = in[0], &m = in[1];
  if (m.dtype() != kBool)
    fail<DTypeError>("masked_fill", "expects a bool mask, got {}", dtype_name(m.dtype()));
  bool ok = m.dim() <= x.dim();
  for (int64_t i = 1; ok && i <= m.dim(); ++i) {
    const int64_t ms = m.shape()[m.dim() - i];
    ok = ms == 1 || ms == x.shape()[x.dim() - i];
  }
  if (!ok)
    fail<ShapeError>("masked_fill", "mask of shape {} does not broadcast to the input shape {}",
                     shape_str(m.shape()), shape_str(x.shape()));
  return {{x.shape(), x.dtype()}};
}

// The count is data-dependent: infer reports 0 rows and the kernel allocates the exact output.
std::vector<TensorMeta> nonzero_meta(Inputs in, const Attrs&) {
  return {{{0, in[0].dim()}, kInt64}};
}

// index(x, idx_0..idx_k-1): the index tensors (int64, contiguous, one shape B) select along
// dims [start, start + k); the result is x.shape[:start] + B + x.shape[start + k:].
Shape advanced_result(const Tensor& x, Inputs idx, int64_t start, std::string_view op) {
  const auto k = static_cast<int64_t>(idx.size());
  if (k == 0) fail<IndexError>(op, "needs at least one index tensor");
  if (start < 0 || start + k > x.dim())
    fail<IndexError>(op, "{} index tensors starting at dim {} do not fit a {}-d tensor", k, start,
                     x.dim());
  for (const Tensor& t : idx) {
    check_index_tensor(t, op);
    if (t.shape() != idx[0].shape())
      fail<IndexError>(op, "index tensors must share one shape here, got {} and {}",
                       shape_str(idx[0].shape()), shape_str(t.shape()));
  }
  Shape s(x.shape().begin(), x.shape().begin() + start);
  s.insert(s.end(), idx[0].shape().begin(), idx[0].shape().end());
  s.insert(s.end(), x.shape().begin() + start + k, x.shape().end());
  return s;
}

std::vector<TensorMeta> index_meta(Inputs in, const Attrs& a) {
  return {{advanced_result(in[0], in.subspan(1), a.get<int64_t>("start"), "index"), in[0].dtype()}};
}

void check_put(Inputs in, const Attrs& a, std::string_view op) {
  Shape r = advanced_result(in[0], in.subspan(2), a.get<int64_t>("start"), op);
  if (in[1].shape() != r)
    fail<ShapeError>(op, "values of shape {} must have the indexing result shape {} here",
                     shape_str(in[1].shape()), shape_str(r));
  if (in[1].dtype() != in[0].dtype())
    fail<DTypeError>(op, "values dtype {} must match the tensor dtype {}",
                     dtype_name(in[1].dtype()), dtype_name(in[0].dtype()));
}
std::vector<TensorMeta> index_put_meta(Inputs in, const Attrs& a) {
  check_put(in, a, "index_put");
  return {{in[0].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> index_put_inplace_meta(Inputs in, const Attrs& a) {
  check_put(in, a, "index_put_");
  return {{in[0].shape(), in[0].dtype()}};
}

// ---- cost ---------------------------------------------------------------------------------------

double bytes_of(Inputs in, std::span<const Tensor> out) {
  double b = 0;
  for (const Tensor& t : in) b += static_cast<double>(t.nbytes());
  for (const Tensor& t : out) b += static_cast<double>(t.nbytes());
  return b;
}
Cost move_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  return {0, bytes_of(in, out)};
}
// Accumulating writes do one add per written value.
Cost add_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  const bool adds = a.get_or<bool>("accumulate", true);
  const Tensor& written = in.size() > 2 ? in[2] : in[1];
  return {adds ? static_cast<double>(written.numel()) : 0.0, bytes_of(in, out)};
}

// ---- op helpers ---------------------------------------------------------------------------------

// Any integer index tensor as int64 (bool and floats are errors).
Tensor as_index(const Tensor& t, std::string_view op) {
  if (!t.defined()) fail<ValueError>(op, "index tensor is undefined");
  if (!is_integral(t.dtype()))
    fail<IndexError>(op, "tensors used as indices must be integer tensors, got {}",
                     dtype_name(t.dtype()));
  return t.to(kInt64).contiguous();
}

std::optional<Shape> try_broadcast(const Shape& a, const Shape& b) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 1; i <= out.size(); ++i) {
    const int64_t x = i <= a.size() ? a[a.size() - i] : 1, y = i <= b.size() ? b[b.size() - i] : 1;
    if (x != y && x != 1 && y != 1) return std::nullopt;
    out[out.size() - i] = x == 1 ? y : x;
  }
  return out;
}

bool broadcasts_to(const Shape& from, const Shape& to) {
  auto b = try_broadcast(from, to);
  return b && *b == to;
}

// gather/scatter on 0-d tensors work on their 1-element 1-d views.
Tensor lift(const Tensor& t) { return t.dim() == 0 ? t.unsqueeze(0) : t; }
// 1-d view or copy of any tensor (unsqueeze for 0-d: reshape cannot grow a 0-d view yet).
Tensor flat1(const Tensor& t) { return t.dim() == 0 ? t.unsqueeze(0) : t.reshape({-1}); }

Tensor scatter_impl(const Primitive& p, const Tensor& x, int64_t dim, const Tensor& index,
                    const Tensor& src, std::string_view op) {
  const Tensor idx = as_index(index, op);
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Tensor out = dispatch1(p, {lift(x), lift(idx), lift(src)}, {{"dim", d}});
  return x.dim() == 0 ? out.reshape({}) : out;
}

// A scalar fill value must fit the tensor's kind (no complex into real).
void check_scalar_fits(const Scalar& v, DType dt, std::string_view op) {
  if (v.is_complex() && !is_complex(dt))
    fail<DTypeError>(op, "cannot write a complex value into a {} tensor", dtype_name(dt));
}

}  // namespace

void register_indexing_prims(Registry& r) {
  const auto idx = PrimKind::Indexing;
  r.define({.name = "index_select", .kind = idx, .infer = index_select_meta, .cost = move_cost});
  r.define({.name = "gather", .kind = idx, .infer = gather_meta, .cost = move_cost});
  r.define({.name = "scatter", .kind = idx, .infer = scatter_meta, .cost = move_cost});
  r.define({.name = "scatter_add", .kind = idx, .infer = scatter_add_meta, .cost = add_cost});
  r.define({.name = "masked_fill", .kind = idx, .infer = masked_fill_meta, .cost = move_cost});
  r.define({.name = "nonzero",
            .kind = idx,
            .traits = kNonDifferentiable | kDynamicShape,
            .infer = nonzero_meta,
            .cost = move_cost});
  r.define({.name = "index", .kind = idx, .infer = index_meta, .cost = move_cost});
  r.define({.name = "index_put", .kind = idx, .infer = index_put_meta, .cost = add_cost});
  r.define({.name = "index_put_",
            .kind = idx,
            .traits = kMutatesInput0,
            .infer = index_put_inplace_meta,
            .cost = add_cost});
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  static const Primitive& p = prim("index_select");
  const Tensor idx = as_index(index, "index_select");
  if (idx.dim() > 1)
    fail<IndexError>("index_select", "index must be 0-d or 1-d, got shape {}",
                     shape_str(idx.shape()));
  if (x.dim() == 0) {
    wrap_dim(dim, 0, "index_select");
    if (idx.numel() != 1)
      fail<IndexError>("index_select", "index of a 0-d tensor must hold one value, got {}",
                       idx.numel());
    return dispatch1(p, {x.unsqueeze(0), flat1(idx)}, {{"dim", int64_t{0}}}).reshape({});
  }
  return dispatch1(p, {x, flat1(idx)}, {{"dim", wrap_dim(dim, x.dim(), "index_select")}});
}

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  static const Primitive& p = prim("gather");
  const Tensor idx = as_index(index, "gather");
  if (idx.dim() != x.dim())
    fail<ShapeError>("gather", "index {} must have as many dims as the input {}",
                     shape_str(idx.shape()), shape_str(x.shape()));
  const int64_t d = wrap_dim(dim, x.dim(), "gather");
  Tensor out = dispatch1(p, {lift(x), lift(idx)}, {{"dim", d}});
  return x.dim() == 0 ? out.reshape({}) : out;
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  static const Primitive& p = prim("scatter");
  return scatter_impl(p, x, dim, index, src, "scatter");
}

Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Scalar& value) {
  static const Primitive& p = prim("scatter");
  check_scalar_fits(value, x.dtype(), "scatter");
  const Tensor src = full({}, value, TensorOptions(x.dtype(), x.device())).expand(index.shape());
  return scatter_impl(p, x, dim, index, src, "scatter");
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  static const Primitive& p = prim("scatter_add");
  return scatter_impl(p, x, dim, index, src, "scatter_add");
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value) {
  static const Primitive& p = prim("masked_fill");
  check_scalar_fits(value, x.dtype(), "masked_fill");
  return dispatch1(p, {x, mask}, {{"value", value}});
}

Tensor nonzero(const Tensor& x) {
  static const Primitive& p = prim("nonzero");
  return dispatch1(p, {x});
}

namespace {

// An advanced index in the primitives' canonical form: x (permuted when the indexed dims were
// not adjacent, NumPy's rule) with int64 index tensors of one shape for dims [start, start+k).
struct Advanced {
  Tensor x;
  std::vector<Tensor> idx;
  int64_t start = 0;
  Shape result;
  std::vector<int64_t> perm;  ///< applied to x; empty when none
  bool lifted = false;        ///< x was 0-d and got a unit dim
};

// Bool masks become one int64 column per masked dim (their nonzero coordinates).
void expand_entries(Advanced& a, const std::vector<Tensor>& indices, std::string_view op,
                    std::vector<std::pair<int64_t, Tensor>>& entries) {
  int64_t d = 0;
  for (size_t i = 0; i < indices.size(); ++i) {
    const Tensor& t = indices[i];
    if (!t.defined()) {
      ++d;
      continue;
    }
    if (t.dtype() != kBool) {
      entries.emplace_back(d++, as_index(t, op));
      continue;
    }
    Tensor m = t;
    if (m.dim() == 0) {  // a 0-d mask adds a unit dim that it keeps or drops
      a.x = a.x.unsqueeze(d);
      m = m.unsqueeze(0);
    }
    if (d + m.dim() > a.x.dim())
      fail<IndexError>(op, "too many indices for tensor of dimension {}", a.x.dim());
    for (int64_t j = 0; j < m.dim(); ++j)
      if (m.shape()[j] != a.x.shape()[d + j])
        fail<IndexError>(op,
                         "the shape of the mask {} at index {} does not match the shape of the "
                         "indexed tensor {} at index {}",
                         shape_str(m.shape()), j, shape_str(a.x.shape()), d + j);
    const Tensor nz = nonzero(m);
    for (int64_t j = 0; j < m.dim(); ++j) entries.emplace_back(d + j, nz.select(1, j).contiguous());
    d += m.dim();
  }
  if (d > a.x.dim())
    fail<IndexError>(op, "too many indices for tensor of dimension {} (got {})", a.x.dim(), d);
}

Advanced prepare_advanced(const Tensor& x, const std::vector<Tensor>& indices,
                          std::string_view op) {
  Advanced a{.x = x};
  std::vector<std::pair<int64_t, Tensor>> entries;
  expand_entries(a, indices, op, entries);
  if (entries.empty()) {  // x[:] (all full slices): one arange index over dim 0 is the same
    if (a.x.dim() == 0) {
      a.x = a.x.unsqueeze(0);
      a.lifted = true;
    }
    entries.emplace_back(0, arange(a.x.shape()[0]).to(a.x.device()));
  }
  Shape b = entries[0].second.shape();
  for (const auto& [d, t] : entries) {
    auto bb = try_broadcast(b, t.shape());
    if (!bb) {
      std::vector<std::string> shapes;
      for (const auto& e : entries) shapes.push_back(shape_str(e.second.shape()));
      fail<IndexError>(op,
                       "shape mismatch: indexing tensors could not be broadcast together with "
                       "shapes {}",
                       fmt::join(shapes, ", "));
    }
    b = *bb;
  }
  bool adjacent = true;
  for (size_t i = 1; i < entries.size(); ++i)
    adjacent &= entries[i].first == entries[i - 1].first + 1;
  a.start = entries[0].first;
  if (!adjacent) {  // NumPy/PyTorch: separated advanced indices put the broadcast dims first
    for (const auto& e : entries) a.perm.push_back(e.first);
    for (int64_t d = 0; d < a.x.dim(); ++d)
      if (std::find(a.perm.begin(), a.perm.end(), d) == a.perm.end()) a.perm.push_back(d);
    a.x = a.x.permute(a.perm);
    a.start = 0;
  }
  for (const auto& e : entries) a.idx.push_back(e.second.expand(b).contiguous());
  a.result = Shape(a.x.shape().begin(), a.x.shape().begin() + a.start);
  a.result.insert(a.result.end(), b.begin(), b.end());
  a.result.insert(a.result.end(),
                  a.x.shape().begin() + a.start + static_cast<int64_t>(entries.size()),
                  a.x.shape().end());
  return a;
}

std::vector<Tensor> prim_inputs(const Advanced& a, const Tensor* values) {
  std::vector<Tensor> in{a.x};
  if (values) in.push_back(*values);
  in.insert(in.end(), a.idx.begin(), a.idx.end());
  return in;
}

// Values broadcast to the indexing result, in x's dtype, and never aliasing x's storage.
Tensor prepare_values(const Advanced& a, const Tensor& values, std::string_view op) {
  if (!broadcasts_to(values.shape(), a.result))
    fail<ShapeError>(op,
                     "shape mismatch: value tensor of shape {} cannot be broadcast to indexing "
                     "result of shape {}",
                     shape_str(values.shape()), shape_str(a.result));
  Tensor v = values.storage() == a.x.storage() ? values.clone() : values;
  return v.to(a.x.dtype()).expand(a.result);
}

std::vector<int64_t> inverse(const std::vector<int64_t>& perm) {
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return inv;
}

}  // namespace

Tensor index(const Tensor& x, const std::vector<Tensor>& indices) {
  static const Primitive& p = prim("index");
  Advanced a = prepare_advanced(x, indices, "index");
  Tensor out = dispatch1(p, prim_inputs(a, nullptr), {{"start", a.start}});
  return a.lifted ? out.reshape({}) : out;
}

Tensor index_put(const Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                 bool accumulate) {
  static const Primitive& p = prim("index_put");
  if (values.dtype() != x.dtype())
    fail<DTypeError>("index_put", "values dtype {} must match the tensor dtype {}",
                     dtype_name(values.dtype()), dtype_name(x.dtype()));
  Advanced a = prepare_advanced(x, indices, "index_put");
  const Tensor v = prepare_values(a, values, "index_put");
  Tensor out = dispatch1(p, prim_inputs(a, &v), {{"start", a.start}, {"accumulate", accumulate}});
  if (!a.perm.empty()) out = out.permute(inverse(a.perm));
  return a.lifted || x.dim() < out.dim() ? out.reshape(x.shape()) : out;
}

Tensor& index_put_(Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                   bool accumulate) {
  static const Primitive& p = prim("index_put_");
  Advanced a = prepare_advanced(x, indices, "index_put_");
  const Tensor v = prepare_values(a, values, "index_put_");
  dispatch(p, prim_inputs(a, &v), {{"start", a.start}, {"accumulate", accumulate}});
  return x;
}

Tensor masked_select(const Tensor& x, const Tensor& mask) {
  if (mask.dtype() != kBool)
    fail<DTypeError>("masked_select", "expects a bool mask, got {}", dtype_name(mask.dtype()));
  const Shape s = broadcast_shapes(x.shape(), mask.shape(), "masked_select");
  return index(flat1(x.expand(s)), {flat1(mask.expand(s))});
}

}  // namespace tessera
