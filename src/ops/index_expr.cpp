// Python-style index expressions: x[0, 1:5:2, None, ..., idx]. Ints, slices and None become
// views (select/slice/unsqueeze); integer and bool tensors are collected and handed to the
// advanced-indexing ops (index / index_put_), which apply NumPy's placement rules.
#include <variant>

#include "ops/internal.h"
#include "tessera/ops/indexing.h"
#include "tessera/ops/primitive.h"

namespace tessera::detail {
namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

const Tensor* tensor_of(const TensorIndex& i) {
  const auto* p = std::get_if<std::shared_ptr<Tensor>>(&i.value());
  return p ? p->get() : nullptr;
}

// Dims of x an entry consumes: ints, slices and int tensors one; a bool mask its ndim.
int64_t consumed_dims(const TensorIndex& i) {
  if (const Tensor* t = tensor_of(i)) return t->defined() && t->dtype() == kBool ? t->dim() : 1;
  return std::holds_alternative<int64_t>(i.value()) || std::holds_alternative<Slice>(i.value());
}

// The view left after the basic entries, and the tensor entries as advanced indices of it
// (one per dim of the view; undefined = whole dim).
struct Walk {
  Tensor view;
  std::vector<Tensor> advanced;
};

Walk walk(const Tensor& x, const std::vector<TensorIndex>& idx, std::string_view op) {
  int64_t consumed = 0, ellipses = 0;
  for (const auto& i : idx) {
    consumed += consumed_dims(i);
    ellipses += std::holds_alternative<EllipsisT>(i.value());
  }
  if (ellipses > 1) fail<IndexError>(op, "an index can only have a single ellipsis ('...')");
  if (consumed > x.dim())
    fail<IndexError>(op, "too many indices for tensor of dimension {} (got {})", x.dim(), consumed);
  Walk w{x, {}};
  int64_t d = 0;  // the next dim of w.view to index
  auto place = [&](const Tensor& t, int64_t at) {
    w.advanced.resize(at + 1);
    w.advanced[at] = t;
  };
  for (const auto& i : idx) {
    std::visit(Overloaded{
                   [&](int64_t v) {
                     const int64_t n = w.view.shape()[d];
                     if (v < -n || v >= n)
                       fail<IndexError>(
                           op, "index {} is out of bounds for dimension {} with size {}", v, d, n);
                     w.view = w.view.select(d, v);
                   },
                   [&](const Slice& s) {
                     const int64_t step = s.step.value_or(1);
                     if (step <= 0)
                       fail<ValueError>(op, "step must be greater than zero, got {}", step);
                     w.view = w.view.slice(d++, s.start, s.stop, step);
                   },
                   [&](NoneT) { w.view = w.view.unsqueeze(d++); },
                   [&](EllipsisT) { d += x.dim() - consumed; },
                   [&](const std::shared_ptr<Tensor>& tp) {
                     const Tensor& t = *tp;
                     if (!t.defined()) fail<IndexError>(op, "index tensor is undefined");
                     if (t.dtype() == kBool && t.dim() == 0) {  // x[True]: a new unit dim, masked
                       w.view = w.view.unsqueeze(d);
                       place(t.unsqueeze(0), d++);
                       return;
                     }
                     if (t.dtype() != kBool && !is_integral(t.dtype()))
                       fail<IndexError>(op,
                                        "tensors used as indices must be integer or bool tensors, "
                                        "got {}",
                                        dtype_name(t.dtype()));
                     place(t, d);
                     d += t.dtype() == kBool ? t.dim() : 1;
                   },
               },
               i.value());
  }
  // A bool mask fills one slot for all the dims it spans: drop the slots it covers.
  std::vector<Tensor> adv;
  for (size_t p = 0; p < w.advanced.size();) {
    const Tensor& t = w.advanced[p];
    adv.push_back(t);
    p += t.defined() && t.dtype() == kBool ? static_cast<size_t>(t.dim()) : 1;
  }
  w.advanced = std::move(adv);
  return w;
}

bool any_defined(const std::vector<Tensor>& ts) {
  for (const Tensor& t : ts)
    if (t.defined()) return true;
  return false;
}

}  // namespace

Tensor index_expr(const Tensor& x, const std::vector<TensorIndex>& idx) {
  Walk w = walk(x, idx, "index");
  return any_defined(w.advanced) ? index(w.view, w.advanced) : w.view;
}

void index_put_expr(Tensor& x, const std::vector<TensorIndex>& idx, const Tensor& value) {
  Walk w = walk(x, idx, "index_put_");
  if (any_defined(w.advanced)) {
    index_put_(w.view, w.advanced, value);
    return;
  }
  const Shape& s = w.view.shape();
  bool ok = value.dim() <= w.view.dim();
  for (int64_t i = 1; ok && i <= value.dim(); ++i) {
    const int64_t v = value.shape()[value.dim() - i];
    ok = v == 1 || v == s[s.size() - i];
  }
  if (!ok)
    fail<ShapeError>("index_put_",
                     "shape mismatch: value tensor of shape {} cannot be broadcast to "
                     "indexing result of shape {}",
                     shape_str(value.shape()), shape_str(s));
  w.view.copy_(value);
}

}  // namespace tessera::detail
