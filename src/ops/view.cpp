// View primitives: outputs alias the input's storage with new shape/strides/offset.
#include <algorithm>
#include <numeric>

#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

Tensor alias(const Tensor& x, Shape shape, Strides strides, int64_t offset) {
  return Tensor::make(x.storage(), std::move(shape), std::move(strides), offset, x.dtype());
}

// Strides that let `x` be viewed as `shape` without copying, or nullopt (PyTorch's
// computeStride): each run of dims that is contiguous in memory may be re-split freely.
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides,
                                    const Shape& shape) {
  Strides out(shape.size());
  if (old_shape.empty() || std::find(old_shape.begin(), old_shape.end(), 0) != old_shape.end()) {
    return contiguous_strides(shape);
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 ||
        (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

std::vector<Tensor> reshape_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto& shape = a.get<std::vector<int64_t>>("shape");
  if (checked_numel(shape, "view") != x.numel())
    fail<ShapeError>("view", "shape {} is invalid for input of size {}", shape_str(shape),
                     x.numel());
  auto st = view_strides(x.shape(), x.strides(), shape);
  if (!st)
    fail<ShapeError>("view",
                     "shape {} is not compatible with input shape {} and strides ({}); "
                     "use reshape (which copies)",
                     shape_str(shape), shape_str(x.shape()), fmt::join(x.strides(), ", "));
  return {alias(x, shape, *st, x.offset())};
}

std::vector<Tensor> permute_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto& dims = a.get<std::vector<int64_t>>("dims");
  if (static_cast<int64_t>(dims.size()) != x.dim())
    fail<ShapeError>("permute", "got {} dims for a {}-d tensor", dims.size(), x.dim());
  Shape shape(dims.size());
  Strides strides(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t d = wrap_dim(dims[i], x.dim(), "permute");
    if (seen[d]) fail<ValueError>("permute", "dim {} repeated in ({})", d, fmt::join(dims, ", "));
    seen[d] = true;
    shape[i] = x.shape()[d];
    strides[i] = x.strides()[d];
  }
  return {alias(x, shape, strides, x.offset())};
}

// attrs: dim, start, stop, step (already clamped by Tensor::slice).
std::vector<Tensor> slice_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  int64_t d = wrap_dim(a.get<int64_t>("dim"), x.dim(), "slice");
  int64_t start = a.get<int64_t>("start"), stop = a.get<int64_t>("stop"),
          step = a.get<int64_t>("step");
  if (step <= 0) fail<ValueError>("slice", "step must be positive, got {}", step);
  if (start < 0 || stop > x.shape()[d] || start > stop)
    fail<IndexError>("slice", "range [{}, {}) out of bounds for dim {} of size {}", start, stop, d,
                     x.shape()[d]);
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[d] = (stop - start + step - 1) / step;
  strides[d] *= step;
  return {alias(x, shape, strides, x.offset() + start * x.strides()[d])};
}

std::vector<Tensor> select_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  if (x.dim() == 0) fail<IndexError>("select", "cannot index a 0-d tensor");
  int64_t d = wrap_dim(a.get<int64_t>("dim"), x.dim(), "select");
  int64_t i = a.get<int64_t>("index"), n = x.shape()[d];
  if (i < -n || i >= n)
    fail<IndexError>("select", "index {} is out of bounds for dim {} with size {}", i, d, n);
  if (i < 0) i += n;
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  return {alias(x, shape, strides, x.offset() + i * x.strides()[d])};
}

std::vector<Tensor> expand_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  Shape shape = a.get<std::vector<int64_t>>("shape");
  const auto nd = static_cast<int64_t>(shape.size());
  if (nd < x.dim())
    fail<ShapeError>("expand", "target shape {} has fewer dims than input {}", shape_str(shape),
                     shape_str(x.shape()));
  Strides strides(nd, 0);
  for (int64_t i = 0; i < nd; ++i) {
    int64_t xi = i - (nd - x.dim());
    int64_t have = xi >= 0 ? x.shape()[xi] : 1;
    if (shape[i] == -1) {
      if (xi < 0)
        fail<ShapeError>("expand", "-1 is not allowed for a new leading dim in {}",
                         shape_str(shape));
      shape[i] = have;
    }
    if (have == shape[i])
      strides[i] = xi >= 0 ? x.strides()[xi] : 0;
    else if (have != 1)
      fail<ShapeError>("expand",
                       "cannot expand shape {} to {}: dim {} has size {} (must be 1 or {})",
                       shape_str(x.shape()), shape_str(shape), i, have, shape[i]);
    if (shape[i] < 0) fail<ShapeError>("expand", "negative size in {}", shape_str(shape));
  }
  return {alias(x, shape, strides, x.offset())};
}

// attrs: dims (normalized, each of size 1) to drop.
std::vector<Tensor> squeeze_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto& dims = a.get<std::vector<int64_t>>("dims");
  Shape shape;
  Strides strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    bool drop = std::find(dims.begin(), dims.end(), d) != dims.end() && x.shape()[d] == 1;
    if (!drop) {
      shape.push_back(x.shape()[d]);
      strides.push_back(x.strides()[d]);
    }
  }
  return {alias(x, shape, strides, x.offset())};
}

std::vector<Tensor> unsqueeze_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  int64_t d = a.get<int64_t>("dim");
  if (d < -(x.dim() + 1) || d > x.dim())
    fail<IndexError>("unsqueeze", "dim {} out of range for a {}-d tensor (expected [{}, {}])", d,
                     x.dim(), -(x.dim() + 1), x.dim());
  if (d < 0) d += x.dim() + 1;
  Shape shape = x.shape();
  Strides strides = x.strides();
  int64_t st = d < x.dim() ? x.strides()[d] * x.shape()[d] : 1;
  shape.insert(shape.begin() + d, 1);
  strides.insert(strides.begin() + d, st);
  return {alias(x, shape, strides, x.offset())};
}

std::vector<Tensor> diagonal_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  if (x.dim() < 2)
    fail<ShapeError>("diagonal", "needs at least 2 dims, got shape {}", shape_str(x.shape()));
  int64_t off = a.get<int64_t>("offset");
  int64_t d1 = wrap_dim(a.get<int64_t>("dim1"), x.dim(), "diagonal");
  int64_t d2 = wrap_dim(a.get<int64_t>("dim2"), x.dim(), "diagonal");
  if (d1 == d2) fail<ValueError>("diagonal", "dim1 and dim2 must differ, both are {}", d1);
  int64_t n1 = x.shape()[d1], n2 = x.shape()[d2];
  int64_t len = off >= 0 ? std::min(n1, n2 - off) : std::min(n1 + off, n2);
  len = std::max<int64_t>(len, 0);
  int64_t start = x.offset();
  if (len > 0) start += off >= 0 ? off * x.strides()[d2] : -off * x.strides()[d1];
  Shape shape;
  Strides strides;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (d != d1 && d != d2) {
      shape.push_back(x.shape()[d]);
      strides.push_back(x.strides()[d]);
    }
  shape.push_back(len);
  strides.push_back(x.strides()[d1] + x.strides()[d2]);
  return {alias(x, shape, strides, start)};
}

std::vector<Tensor> as_strided_view(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  return {alias(x, a.get<std::vector<int64_t>>("shape"), a.get<std::vector<int64_t>>("strides"),
                a.get<int64_t>("offset"))};
}

}  // namespace

void register_view_prims(Registry& r) {
  struct Entry {
    const char* name;
    ViewFn fn;
  };
  for (const Entry& e : {Entry{"view", reshape_view},
                         {"permute", permute_view},
                         {"slice", slice_view},
                         {"select", select_view},
                         {"expand", expand_view},
                         {"squeeze", squeeze_view},
                         {"unsqueeze", unsqueeze_view},
                         {"diagonal", diagonal_view},
                         {"as_strided", as_strided_view}}) {
    Primitive p;
    p.name = e.name;
    p.kind = PrimKind::View;
    p.view = e.fn;
    r.define(std::move(p));
  }
}

}  // namespace tessera
