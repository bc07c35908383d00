// Shape primitives that copy data (cat, flip, roll, repeat, pad, tril/triu) and the ops built
// on them or on views (stack = unsqueeze + cat, split/chunk = narrow views, tile = repeat).
#include "tessera/ops/shape.h"

#include <algorithm>
#include <array>

#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

// Pad modes by attribute code; the CPU kernel maps coordinates with the same order.
constexpr std::array<std::string_view, 3> kPadModes = {"constant", "reflect", "replicate"};
constexpr int64_t kConstant = 0, kReflect = 1;

std::vector<TensorMeta> cat_meta(Inputs in, const Attrs& a) {
  if (in.empty()) fail<ValueError>("cat", "expects a non-empty list of tensors");
  const Tensor& x0 = in[0];
  if (x0.dim() == 0)
    fail<ShapeError>("cat", "zero-dimensional tensor (at position 0) cannot be concatenated");
  const int64_t d = wrap_dim(a.get<int64_t>("dim"), x0.dim(), "cat");
  Shape out = x0.shape();
  out[d] = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const Tensor& x = in[i];
    if (x.dtype() != x0.dtype())
      fail<DTypeError>("cat", "tensor {} has dtype {} but tensor 0 has {}", i,
                       dtype_name(x.dtype()), dtype_name(x0.dtype()));
    if (x.dim() != x0.dim())
      fail<ShapeError>("cat", "tensor {} has {} dims (shape {}) but tensor 0 has {} (shape {})", i,
                       x.dim(), shape_str(x.shape()), x0.dim(), shape_str(x0.shape()));
    for (int64_t k = 0; k < x.dim(); ++k)
      if (k != d && x.shape()[k] != x0.shape()[k])
        fail<ShapeError>("cat",
                         "sizes must match except in dim {}: tensor {} has shape {} but "
                         "tensor 0 has shape {}",
                         d, i, shape_str(x.shape()), shape_str(x0.shape()));
    out[d] += x.shape()[d];
  }
  return {{out, x0.dtype()}};
}

std::vector<TensorMeta> same_meta(Inputs in, const Attrs&) {
  return {{in[0].shape(), in[0].dtype()}};
}

std::vector<TensorMeta> repeat_meta(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto& reps = a.get<std::vector<int64_t>>("repeats");
  if (static_cast<int64_t>(reps.size()) != x.dim())
    fail<ShapeError>("repeat", "{} repeats for a {}-d input here", reps.size(), x.dim());
  Shape out(reps.size());
  for (size_t d = 0; d < reps.size(); ++d) {
    if (reps[d] < 0)
      fail<ValueError>("repeat", "repeats must be non-negative, got ({})", fmt::join(reps, ", "));
    if (reps[d] != 0 && x.shape()[d] > INT64_MAX / reps[d])
      fail<ValueError>("repeat", "repeating {} by ({}) overflows int64", shape_str(x.shape()),
                       fmt::join(reps, ", "));
    out[d] = x.shape()[d] * reps[d];
  }
  checked_numel(out, "repeat");
  return {{out, x.dtype()}};
}

// attrs: pads (left, right) per dim in dim order, mode (code into kPadModes), value.
std::vector<TensorMeta> pad_meta(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto& pads = a.get<std::vector<int64_t>>("pads");
  const int64_t mode = a.get<int64_t>("mode");
  if (static_cast<int64_t>(pads.size()) != 2 * x.dim() || mode < 0 || mode >= std::ssize(kPadModes))
    fail<ValueError>("pad", "bad attributes: {} pads for a {}-d input, mode {}", pads.size(),
                     x.dim(), mode);
  Shape out = x.shape();
  for (int64_t d = 0; d < x.dim(); ++d) {
    const int64_t l = pads[2 * d], r = pads[2 * d + 1], n = x.shape()[d];
    if (mode != kConstant && (l < 0 || r < 0))
      fail<ValueError>("pad", "{} padding must be non-negative, got ({}, {}) for dim {}",
                       kPadModes[mode], l, r, d);
    if (mode == kReflect && (l > 0 || r > 0) && (l >= n || r >= n))
      fail<ValueError>("pad",
                       "reflect padding ({}, {}) must be less than the size {} of dim {} "
                       "(input shape {})",
                       l, r, n, d, shape_str(x.shape()));
    if (mode != kConstant && n == 0 && (l > 0 || r > 0))
      fail<ValueError>("pad", "{} padding of the empty dim {} (input shape {})", kPadModes[mode], d,
                       shape_str(x.shape()));
    out[d] = n + l + r;
    if (out[d] < 0)
      fail<ValueError>("pad", "padding ({}, {}) makes dim {} of size {} negative", l, r, d, n);
  }
  checked_numel(out, "pad");
  return {{out, x.dtype()}};
}

std::vector<TensorMeta> tri_meta(const Tensor& x, std::string_view op) {
  if (x.dim() < 2)
    fail<ShapeError>(op, "needs at least 2 dims, got shape {}", shape_str(x.shape()));
  return {{x.shape(), x.dtype()}};
}
std::vector<TensorMeta> tril_meta(Inputs in, const Attrs&) { return tri_meta(in[0], "tril"); }
std::vector<TensorMeta> triu_meta(Inputs in, const Attrs&) { return tri_meta(in[0], "triu"); }

Cost move_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  double b = 0;
  for (const Tensor& t : in) b += static_cast<double>(t.nbytes());
  for (const Tensor& t : out) b += static_cast<double>(t.nbytes());
  return {0, b};
}

// Wraps dims and rejects repeats (flip/roll name themselves).
std::vector<int64_t> wrap_dims(const std::vector<int64_t>& dims, int64_t ndim, std::string_view op,
                               bool unique) {
  std::vector<int64_t> out;
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, ndim, op);
    if (unique && std::find(out.begin(), out.end(), w) != out.end())
      fail<ValueError>(op, "dim {} appears multiple times in the list of dims ({})", w,
                       fmt::join(dims, ", "));
    out.push_back(w);
  }
  return out;
}

}  // namespace

void register_shape_prims(Registry& r) {
  const auto k = PrimKind::Shape;
  r.define({.name = "cat", .kind = k, .infer = cat_meta, .cost = move_cost});
  r.define({.name = "flip", .kind = k, .infer = same_meta, .cost = move_cost});
  r.define({.name = "roll", .kind = k, .infer = same_meta, .cost = move_cost});
  r.define({.name = "repeat", .kind = k, .infer = repeat_meta, .cost = move_cost});
  r.define({.name = "pad", .kind = k, .infer = pad_meta, .cost = move_cost});
  r.define({.name = "tril", .kind = k, .infer = tril_meta, .cost = move_cost});
  r.define({.name = "triu", .kind = k, .infer = triu_meta, .cost = move_cost});
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  Shape out(std::max(a.size(), b.size()));
  for (size_t i = 1; i <= out.size(); ++i) {
    const int64_t x = i <= a.size() ? a[a.size() - i] : 1, y = i <= b.size() ? b[b.size() - i] : 1;
    if (x != y && x != 1 && y != 1)
      fail<ShapeError>(op, "shapes {} and {} are not broadcastable (dim -{}: {} vs {})",
                       shape_str(a), shape_str(b), i, x, y);
    out[out.size() - i] = x == 1 ? y : x;
  }
  return out;
}

Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  static const Primitive& p = prim("cat");
  if (xs.empty()) fail<ValueError>("cat", "expects a non-empty list of tensors");
  DType dt = xs[0].dtype();
  for (const Tensor& x : xs) dt = promote_types(dt, x.dtype());
  std::vector<Tensor> in;
  in.reserve(xs.size());
  for (const Tensor& x : xs) in.push_back(x.to(dt));  // PyTorch promotes across the inputs
  return dispatch1(p, in, {{"dim", dim}});
}

Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) fail<ValueError>("stack", "expects a non-empty list of tensors");
  for (size_t i = 1; i < xs.size(); ++i)
    if (xs[i].shape() != xs[0].shape())
      fail<ShapeError>("stack",
                       "expects each tensor to be equal size, but got {} at entry 0 and {} "
                       "at entry {}",
                       shape_str(xs[0].shape()), shape_str(xs[i].shape()), i);
  const int64_t d = wrap_dim(dim, xs[0].dim() + 1, "stack");
  std::vector<Tensor> us;
  us.reserve(xs.size());
  for (const Tensor& x : xs) us.push_back(x.unsqueeze(d));
  return cat(us, d);
}

namespace {
int64_t split_dim(const Tensor& x, int64_t dim, std::string_view op) {
  if (x.dim() == 0) fail<ShapeError>(op, "cannot split a 0-d tensor");
  return wrap_dim(dim, x.dim(), op);
}
}  // namespace

std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim) {
  const int64_t d = split_dim(x, dim, "split"), n = x.shape()[d];
  if (size < 0 || (size == 0 && n > 0))
    fail<ValueError>("split",
                     "split size must be positive (0 only for an empty dim), got {} for "
                     "dim {} of size {}",
                     size, d, n);
  if (n == 0) return {x};
  std::vector<Tensor> out;
  for (int64_t off = 0; off < n; off += size)
    out.push_back(x.narrow(d, off, std::min(size, n - off)));
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = split_dim(x, dim, "split"), n = x.shape()[d];
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0)
      fail<ValueError>("split", "split sizes must be non-negative, got ({})",
                       fmt::join(sizes, ", "));
    total += s;
  }
  if (total != n)
    fail<ValueError>("split", "split sizes ({}) must sum to the size {} of dim {}, got {}",
                     fmt::join(sizes, ", "), n, d, total);
  std::vector<Tensor> out;
  int64_t off = 0;
  for (int64_t s : sizes) {
    out.push_back(x.narrow(d, off, s));
    off += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  const int64_t d = split_dim(x, dim, "chunk"), n = x.shape()[d];
  if (chunks <= 0) fail<ValueError>("chunk", "number of chunks must be positive, got {}", chunks);
  const int64_t size = (n + chunks - 1) / chunks;
  if (size == 0) return std::vector<Tensor>(chunks, x.narrow(d, 0, 0));  // like PyTorch
  return split(x, size, d);
}

Tensor flip(const Tensor& x, const std::vector<int64_t>& dims) {
  static const Primitive& p = prim("flip");
  auto ds = wrap_dims(dims, x.dim(), "flip", true);
  if (x.dim() == 0) ds.clear();  // dim 0 of a scalar is itself
  return dispatch1(p, {x}, {{"dims", ds}});
}

Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts, const std::vector<int64_t>& dims) {
  static const Primitive& p = prim("roll");
  if (dims.empty()) {
    if (shifts.size() != 1)
      fail<ValueError>("roll", "without dims expects one shift, got {}", shifts.size());
    if (x.dim() == 0) return x.clone();
    return roll(x.flatten(), shifts, {0}).view(x.shape());
  }
  if (shifts.size() != dims.size())
    fail<ValueError>("roll", "shifts and dims must align, got {} shifts and {} dims", shifts.size(),
                     dims.size());
  auto ds = wrap_dims(dims, x.dim(), "roll", false);
  std::vector<int64_t> ss = shifts;
  if (x.dim() == 0) ds.clear(), ss.clear();
  return dispatch1(p, {x}, {{"shifts", ss}, {"dims", ds}});
}

Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats) {
  static const Primitive& p = prim("repeat");
  if (static_cast<int64_t>(repeats.size()) < x.dim())
    fail<ShapeError>("repeat",
                     "number of repeat dims ({}) can not be smaller than the number of "
                     "tensor dims ({})",
                     repeats.size(), x.dim());
  Tensor v = x;  // new leading dims of size 1, as views
  while (v.dim() < static_cast<int64_t>(repeats.size())) v = v.unsqueeze(0);
  return dispatch1(p, {v}, {{"repeats", repeats}});
}

Tensor tile(const Tensor& x, const std::vector<int64_t>& reps) {
  std::vector<int64_t> r = reps;
  if (static_cast<int64_t>(r.size()) < x.dim()) r.insert(r.begin(), x.dim() - r.size(), 1);
  return repeat(x, r);
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, std::string_view mode, double value) {
  static const Primitive& p = prim("pad");
  const auto it = std::find(kPadModes.begin(), kPadModes.end(), mode);
  if (it == kPadModes.end())
    fail<ValueError>("pad", "unknown mode '{}' (expected constant, reflect or replicate)", mode);
  const int64_t code = it - kPadModes.begin();
  if (pads.size() % 2 != 0)
    fail<ValueError>("pad", "padding length must be divisible by 2, got {}", pads.size());
  if (static_cast<int64_t>(pads.size()) > 2 * x.dim())
    fail<ValueError>("pad", "padding length {} is too large for a {}-d input", pads.size(),
                     x.dim());
  if (code != kConstant && value != 0.0)
    fail<ValueError>("pad", "mode '{}' doesn't take a value (got {})", mode, value);
  std::vector<int64_t> full(2 * x.dim(), 0);  // pads[0..1] apply to the last dim
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(i);
    full[2 * d] = pads[2 * i];
    full[2 * d + 1] = pads[2 * i + 1];
  }
  return dispatch1(p, {x}, {{"pads", full}, {"mode", code}, {"value", value}});
}

Tensor tril(const Tensor& x, int64_t diagonal) {
  static const Primitive& p = prim("tril");
  return dispatch1(p, {x}, {{"diagonal", diagonal}});
}

Tensor triu(const Tensor& x, int64_t diagonal) {
  static const Primitive& p = prim("triu");
  return dispatch1(p, {x}, {{"diagonal", diagonal}});
}

Tensor movedim(const Tensor& x, int64_t from, int64_t to) {
  from = wrap_dim(from, x.dim(), "movedim");
  to = wrap_dim(to, x.dim(), "movedim");
  if (from == to) return x;
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != from) perm.push_back(d);
  perm.insert(perm.begin() + to, from);
  return x.permute(perm);
}

}  // namespace tessera
