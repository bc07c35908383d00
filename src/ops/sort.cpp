// Sorting and selection primitives: sort, argsort, topk, unique. Kernels: backends/cpu/sort.cpp.
// Order everywhere: NaN is larger than every number (last ascending, first descending), and
// ties keep their input order (stable), like PyTorch's stable sort.
#include "tessera/ops/sort.h"

#include <cmath>

#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

void check_sortable(std::string_view op, const Tensor& x) {
  if (is_complex(x.dtype()))
    fail<DTypeError>(op, "complex tensors have no order (got {} of shape {})",
                     dtype_name(x.dtype()), shape_str(x.shape()));
}

// Validates dim; the caller normalizes the attribute so kernels see a dim in [0, max(ndim, 1)).
int64_t sort_dim(std::string_view op, const Tensor& x, const Attrs& a) {
  check_sortable(op, x);
  return wrap_dim(a.get<int64_t>("dim"), x.dim(), op);
}

std::vector<TensorMeta> sort_meta(Inputs in, const Attrs& a) {
  sort_dim("sort", in[0], a);
  return {{in[0].shape(), in[0].dtype()}, {in[0].shape(), kInt64}};
}

std::vector<TensorMeta> argsort_meta(Inputs in, const Attrs& a) {
  sort_dim("argsort", in[0], a);
  return {{in[0].shape(), kInt64}};
}

std::vector<TensorMeta> topk_meta(Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const int64_t d = sort_dim("topk", x, a), k = a.get<int64_t>("k");
  const int64_t n = x.dim() == 0 ? 1 : x.size(d);
  if (k < 0) fail<ValueError>("topk", "k must be non-negative, got {}", k);
  if (k > n)
    fail<IndexError>("topk", "k ({}) is out of range for dim {} of size {} (shape {})", k, d, n,
                     shape_str(x.shape()));
  Shape s = x.shape();
  if (!s.empty())
    s[d] = k;
  else if (k == 0)
    s = {0};  // nothing selected from a 0-d input: an empty 1-d result
  return {{s, x.dtype()}, {s, kInt64}};
}

// The number of unique values is known only after the kernel runs: outputs are sized for the
// worst case (every element distinct) and the kernel shrinks values and counts (kDynamicShape).
std::vector<TensorMeta> unique_meta(Inputs in, const Attrs&) {
  check_sortable("unique", in[0]);
  const int64_t n = in[0].numel();
  return {{{n}, in[0].dtype()}, {in[0].shape(), kInt64}, {{n}, kInt64}};
}

// About n log2 n comparisons; every element read once and written once per output.
Cost sort_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  const auto n = static_cast<double>(in[0].numel());
  double bytes = static_cast<double>(in[0].nbytes());
  for (const Tensor& t : out) bytes += static_cast<double>(t.nbytes());
  return {n * std::log2(std::max(n, 2.0)), bytes};
}

Attrs sort_attrs(int64_t dim, bool descending) {
  return {{"dim", dim}, {"descending", descending}};
}

}  // namespace

void register_sort_prims(Registry& r) {
  r.define({.name = "sort", .kind = PrimKind::Sort, .infer = sort_meta, .cost = sort_cost});
  r.define({.name = "argsort",
            .kind = PrimKind::Sort,
            .traits = kNonDifferentiable,
            .infer = argsort_meta,
            .cost = sort_cost});
  r.define({.name = "topk", .kind = PrimKind::Sort, .infer = topk_meta, .cost = sort_cost});
  r.define({.name = "unique",
            .kind = PrimKind::Sort,
            .traits = kNonDifferentiable | kDynamicShape,
            .infer = unique_meta,
            .cost = sort_cost});
}

std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim, bool descending) {
  static const Primitive& p = prim("sort");
  std::vector<Tensor> out = dispatch(p, Inputs(&x, 1), sort_attrs(dim, descending));
  return {std::move(out[0]), std::move(out[1])};
}

Tensor argsort(const Tensor& x, int64_t dim, bool descending) {
  static const Primitive& p = prim("argsort");
  return dispatch1(p, Inputs(&x, 1), sort_attrs(dim, descending));
}

std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest) {
  static const Primitive& p = prim("topk");
  std::vector<Tensor> out =
      dispatch(p, Inputs(&x, 1), {{"k", k}, {"dim", dim}, {"largest", largest}});
  return {std::move(out[0]), std::move(out[1])};
}

UniqueResult unique(const Tensor& x, bool return_inverse, bool return_counts) {
  static const Primitive& p = prim("unique");
  std::vector<Tensor> out = dispatch(p, Inputs(&x, 1));
  return {std::move(out[0]), return_inverse ? std::move(out[1]) : Tensor(),
          return_counts ? std::move(out[2]) : Tensor()};
}

}  // namespace tessera
