// Indexing (gather/scatter, masks, nonzero, take, index_put), sorting and selection, and
// products (matmul, mm, bmm, mv, dot, outer, einsum).
#include <fmt/format.h>

#include "ops_common.h"

namespace tessera::py::ops {
namespace {

using T = const Tensor&;
using S = const Scalar&;
constexpr auto kSelf = nb::rv_policy::reference;  // in-place methods return the same object

// A fill value given as a number or a one-element tensor (PyTorch accepts both).
using Fill = std::variant<Scalar, Tensor>;

Scalar fill_value(const Fill& v, const char* op) {
  if (const auto* s = std::get_if<Scalar>(&v)) return *s;
  const Tensor& t = std::get<Tensor>(v);
  if (t.dim() != 0)
    fail<ValueError>(op, "value must be a number or a 0-d tensor, got shape {}",
                     shape_str(t.shape()));
  return t.item();
}

Tensor scatter_any(T x, int64_t dim, T index, const std::variant<Tensor, Scalar>& src) {
  ReleaseGilIfLarge gil(work(x));
  if (const auto* t = std::get_if<Tensor>(&src)) return scatter(x, dim, index, *t);
  return scatter(x, dim, index, std::get<Scalar>(src));
}

std::variant<Tensor, TensorTuple> nonzero_any(T x, bool as_tuple) {
  Tensor nz;
  {
    ReleaseGilIfLarge gil(work(x));
    nz = nonzero(x);
  }
  if (!as_tuple) return nz;
  std::vector<Tensor> cols;
  for (int64_t d = 0; d < nz.size(1); ++d) cols.push_back(nz.select(1, d));
  return tensor_tuple(std::move(cols));
}

void def_gather_scatter(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "gather",
      [](T x, int64_t dim, T index) {
        ReleaseGilIfLarge gil(work(index));
        return gather(x, dim, index);
      },
      nb::arg("dim"), nb::arg("index"),
      "out[i][j] = input[index[i][j]][j] for dim 0 (and likewise for other dims).");
  const char* scatter_doc =
      "A copy of input with src (a tensor, or a number `value`) written "
      "at index along dim.";
  m.def("scatter", &scatter_any, nb::arg("input"), nb::arg("dim"), nb::arg("index"), nb::arg("src"),
        scatter_doc);
  m.def("scatter", &scatter_any, nb::arg("input"), nb::arg("dim"), nb::arg("index"),
        nb::arg("value"));
  c.def("scatter", &scatter_any, nb::arg("dim"), nb::arg("index"), nb::arg("src"), scatter_doc);
  c.def("scatter", &scatter_any, nb::arg("dim"), nb::arg("index"), nb::arg("value"));
  for (const char* arg : {"src", "value"})
    c.def(
        "scatter_",
        [](Tensor& self, int64_t dim, T index, const std::variant<Tensor, Scalar>& src) -> Tensor& {
          return self.copy_(scatter_any(self, dim, index, src));
        },
        nb::arg("dim"), nb::arg("index"), nb::arg(arg), kSelf, "In-place scatter; returns self.");
  auto scatter_add_f = [](T x, int64_t dim, T index, T src) {
    ReleaseGilIfLarge gil(work(x));
    return scatter_add(x, dim, index, src);
  };
  def_both(m, c, "scatter_add", scatter_add_f, nb::arg("dim"), nb::arg("index"), nb::arg("src"),
           "A copy of input with src added at index along dim (repeats accumulate).");
  c.def(
      "scatter_add_",
      [scatter_add_f](Tensor& self, int64_t dim, T index, T src) -> Tensor& {
        return self.copy_(scatter_add_f(self, dim, index, src));
      },
      nb::arg("dim"), nb::arg("index"), nb::arg("src"), kSelf,
      "In-place scatter_add; returns self.");
  def_both(
      m, c, "index_select",
      [](T x, int64_t dim, T index) {
        ReleaseGilIfLarge gil(work(x));
        return index_select(x, dim, index);
      },
      nb::arg("dim"), nb::arg("index"), "The entries index (1-d, int) of input along dim.");
}

void def_masks(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "masked_fill",
      [](T x, T mask, const Fill& value) {
        const Scalar v = fill_value(value, "masked_fill");
        ReleaseGilIfLarge gil(work(x));
        return masked_fill(x, mask, v);
      },
      nb::arg("mask"), nb::arg("value"),
      "A copy of input with value where mask (bool, broadcast) is true.");
  def_both(
      m, c, "masked_select",
      [](T x, T mask) {
        ReleaseGilIfLarge gil(work(x));
        return masked_select(x, mask);
      },
      nb::arg("mask"), "The elements where mask (bool, broadcast) is true, as a 1-d tensor.");
  def_both(m, c, "nonzero", &nonzero_any, nb::kw_only(), nb::arg("as_tuple") = false,
           "Coordinates of the non-zero elements: an int64 (count, ndim) tensor, or with "
           "as_tuple one 1-d tensor per dim.");
  def_both(
      m, c, "argwhere", [](T x) { return nonzero(x); },
      "Coordinates of the non-zero elements as an int64 (count, ndim) tensor.");
  def_both(
      m, c, "take", [](T x, T index) { return tessera::index(x.reshape({-1}), {index}); },
      nb::arg("index"), "input.flatten()[index], with index's shape.");
  auto put = [](T x, const std::vector<Tensor>& indices, T values, bool accumulate) {
    ReleaseGilIfLarge gil(work(x));
    return index_put(x, indices, values, accumulate);
  };
  def_both(m, c, "index_put", put, nb::arg("indices"), nb::arg("values"),
           nb::arg("accumulate") = false,
           "A copy of input with values written (or added) at input[indices].");
  c.def(
      "index_put_",
      [](Tensor& self, const std::vector<Tensor>& indices, T values, bool accumulate) -> Tensor& {
        ReleaseGilIfLarge gil(work(self));
        return index_put_(self, indices, values, accumulate);
      },
      nb::arg("indices"), nb::arg("values"), nb::arg("accumulate") = false, kSelf,
      "Writes (or adds) values at self[indices]; returns self.");
}

// ---- sorting --------------------------------------------------------------------------------

void def_sorting(nb::module_& m, nb::class_<Tensor>& c) {
  // The sort is always stable, so `stable` is accepted and has nothing to change.
  def_both(
      m, c, "sort",
      [](T x, int64_t dim, bool descending, bool) {
        std::tuple<Tensor, Tensor> r;
        {
          ReleaseGilIfLarge gil(work(x));
          r = sort(x, dim, descending);
        }
        return values_indices(Named::Sort, std::move(std::get<0>(r)), std::move(std::get<1>(r)));
      },
      nb::arg("dim") = -1, nb::arg("descending") = false, nb::kw_only(), nb::arg("stable") = false,
      "(values, indices) sorted along dim (stable; NaN last, first when descending).");
  def_both(
      m, c, "argsort",
      [](T x, int64_t dim, bool descending, bool) {
        ReleaseGilIfLarge gil(work(x));
        return argsort(x, dim, descending);
      },
      nb::arg("dim") = -1, nb::arg("descending") = false, nb::kw_only(), nb::arg("stable") = false,
      "The indices that sort input along dim (stable).");
  // The k results are always sorted, so `sorted` is accepted and has nothing to change.
  def_both(
      m, c, "topk",
      [](T x, int64_t k, int64_t dim, bool largest, bool) {
        std::tuple<Tensor, Tensor> r;
        {
          ReleaseGilIfLarge gil(work(x));
          r = topk(x, k, dim, largest);
        }
        return values_indices(Named::Topk, std::move(std::get<0>(r)), std::move(std::get<1>(r)));
      },
      nb::arg("k"), nb::arg("dim") = -1, nb::arg("largest") = true, nb::arg("sorted") = true,
      "(values, indices) of the k largest (or smallest) entries along dim, sorted.");
  def_both(
      m, c, "unique",
      [](T x, bool, bool return_inverse, bool return_counts,
         std::optional<int64_t> dim) -> std::variant<Tensor, TensorTuple> {
        if (dim)
          fail<NotImplementedError>("unique",
                                    "dim={} is not supported (only the "
                                    "flattened input)",
                                    *dim);
        UniqueResult r;
        {
          ReleaseGilIfLarge gil(work(x));
          r = unique(x, return_inverse, return_counts);
        }
        if (!return_inverse && !return_counts) return std::move(r.values);
        std::vector<Tensor> out{std::move(r.values)};
        if (return_inverse) out.push_back(std::move(r.inverse));
        if (return_counts) out.push_back(std::move(r.counts));
        return tensor_tuple(std::move(out));
      },
      nb::arg("sorted") = true, nb::arg("return_inverse") = false, nb::arg("return_counts") = false,
      nb::arg("dim") = nb::none(),
      "The sorted unique values of the flattened input; with return_inverse and/or "
      "return_counts, a tuple adding the index of each input element in the values and "
      "the count of each value.");
}

// ---- products -------------------------------------------------------------------------------

// mm/bmm/mv take fixed ranks (matmul broadcasts); check them so a wrong rank is named.
void need_dims(const char* op, T a, int64_t da, T b, int64_t db) {
  if (a.dim() != da || b.dim() != db)
    fail<ShapeError>(op, "expected {}-d and {}-d tensors, got shapes {} and {}", da, db,
                     shape_str(a.shape()), shape_str(b.shape()));
}

Tensor matmul_checked(const char* op, int64_t da, int64_t db, T a, T b) {
  if (op) need_dims(op, a, da, b, db);
  ReleaseGilIfLarge gil(work(a, b));
  return matmul(a, b);
}

void def_products(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "matmul", [](T a, T b) { return matmul_checked(nullptr, 0, 0, a, b); },
      nb::arg("other"),
      "Matrix product with NumPy's rules: 1-d operands are promoted, batch dims broadcast.");
  def_both(
      m, c, "mm", [](T a, T b) { return matmul_checked("mm", 2, 2, a, b); }, nb::arg("mat2"),
      "The product of two matrices.");
  def_both(
      m, c, "bmm", [](T a, T b) { return matmul_checked("bmm", 3, 3, a, b); }, nb::arg("mat2"),
      "Batched matrix products of two 3-d tensors.");
  def_both(
      m, c, "mv", [](T a, T b) { return matmul_checked("mv", 2, 1, a, b); }, nb::arg("vec"),
      "The product of a matrix and a vector.");
  def_both(
      m, c, "dot",
      [](T a, T b) {
        ReleaseGilIfLarge gil(work(a, b));
        return dot(a, b);
      },
      nb::arg("tensor"), "The inner product of two 1-d tensors.");
  def_both(
      m, c, "outer",
      [](T a, T b) {
        ReleaseGilIfLarge gil(work(a, b));
        return outer(a, b);
      },
      nb::arg("vec2"), "The outer product of two 1-d tensors.");
  m.def(
      "einsum",
      [](const std::string& equation, nb::args operands) {
        // einsum(eq, a, b) or einsum(eq, [a, b]).
        std::vector<Tensor> ts;
        const bool one_list = operands.size() == 1 && !nb::isinstance<Tensor>(operands[0]);
        bool ok = one_list ? nb::try_cast(operands[0], ts) : true;
        for (size_t i = 0; ok && !one_list && i < operands.size(); ++i) {
          ok = nb::isinstance<Tensor>(operands[i]);
          if (ok) ts.push_back(nb::cast<Tensor>(operands[i]));
        }
        if (!ok)
          throw nb::type_error("einsum(): operands must be tensors or one sequence of tensors");
        int64_t n = 0;
        for (const Tensor& t : ts) n = std::max(n, t.numel());
        ReleaseGilIfLarge gil(n);
        return einsum(equation, ts);
      },
      nb::arg("equation"), nb::arg("operands"),
      "Einstein summation: 'ij,jk->ik', 'bij,bjk->bik', 'ii->i', implicit output, '...'.");
}

}  // namespace

void init_indexing(nb::module_& m, nb::class_<Tensor>& c) {
  def_gather_scatter(m, c);
  def_masks(m, c);
  def_sorting(m, c);
  def_products(m, c);
}

}  // namespace tessera::py::ops
