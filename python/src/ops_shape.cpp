// Shape ops: joining and splitting, flips and rolls, padding, triangular parts, and the view
// ops as module functions (tessera.reshape(x, ...) next to the methods bound in tensor.cpp).
#include <cstdlib>

#include "ops_common.h"

namespace tessera::py::ops {
namespace {

using T = const Tensor&;
/// An int or a sequence of ints (dims, shifts, sizes).
using Ints = std::variant<int64_t, std::vector<int64_t>>;

std::vector<int64_t> ints(const Ints& v) {
  if (const auto* one = std::get_if<int64_t>(&v)) return {*one};
  return std::get<std::vector<int64_t>>(v);
}

int64_t total(const std::vector<Tensor>& xs) {
  int64_t n = 0;
  for (const Tensor& x : xs) n += x.numel();
  return n;
}

Tensor diag(T x, int64_t k) {
  if (x.dim() == 2) return x.diagonal(k, 0, 1).clone();
  if (x.dim() != 1)
    fail<ShapeError>("diag", "expected a 1-d or 2-d tensor, got shape {}", shape_str(x.shape()));
  // The 1-d case writes x on diagonal k of a zero matrix (index_put keeps it differentiable).
  const int64_t len = x.size(0), n = len + std::abs(k);
  const Tensor rows = arange(Scalar(k < 0 ? -k : 0), Scalar(len + (k < 0 ? -k : 0)));
  const Tensor cols = arange(Scalar(k > 0 ? k : 0), Scalar(len + (k > 0 ? k : 0)));
  return index_put(zeros({n, n}, {x.dtype(), x.device()}), {rows, cols}, x);
}

void def_join_split(nb::module_& m, nb::class_<Tensor>& c) {
  for (const char* name : {"cat", "concat"})
    m.def(
        name,
        [](const std::vector<Tensor>& tensors, int64_t dim) {
          ReleaseGilIfLarge gil(total(tensors));
          return cat(tensors, dim);
        },
        nb::arg("tensors"), nb::arg("dim") = 0,
        "Joins tensors along an existing dim (all other sizes must match).");
  m.def(
      "stack",
      [](const std::vector<Tensor>& tensors, int64_t dim) {
        ReleaseGilIfLarge gil(total(tensors));
        return stack(tensors, dim);
      },
      nb::arg("tensors"), nb::arg("dim") = 0, "Joins same-shaped tensors along a new dim.");
  const char* split_doc =
      "Views of pieces along dim: of split_size each (the last may be smaller), or of the "
      "given sizes (which must sum to the dim's size).";
  auto split_any = [](T x, const Ints& size, int64_t dim) {
    if (const auto* one = std::get_if<int64_t>(&size)) return tensor_tuple(split(x, *one, dim));
    return tensor_tuple(split(x, std::get<std::vector<int64_t>>(size), dim));
  };
  m.def("split", split_any, nb::arg("tensor"), nb::arg("split_size_or_sections"),
        nb::arg("dim") = 0, split_doc);
  c.def("split", split_any, nb::arg("split_size"), nb::arg("dim") = 0, split_doc);
  def_both(
      m, c, "chunk",
      [](T x, int64_t chunks, int64_t dim) { return tensor_tuple(chunk(x, chunks, dim)); },
      nb::arg("chunks"), nb::arg("dim") = 0,
      "At most `chunks` views along dim, of equal size except the last.");
  def_both(
      m, c, "unbind",
      [](T x, int64_t dim) {
        const int64_t n = x.size(dim);
        std::vector<Tensor> parts;
        parts.reserve(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) parts.push_back(x.select(dim, i));
        return tensor_tuple(std::move(parts));
      },
      nb::arg("dim") = 0, "The views x.select(dim, i) for every i, as a tuple.");
}

void def_reorder(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "flip",
      [](T x, const Ints& dims) {
        ReleaseGilIfLarge gil(work(x));
        return flip(x, ints(dims));
      },
      nb::arg("dims"), "A copy with the order of elements reversed along dims.");
  def_both(
      m, c, "roll",
      [](T x, const Ints& shifts, const std::optional<Ints>& dims) {
        ReleaseGilIfLarge gil(work(x));
        return roll(x, ints(shifts), dims ? ints(*dims) : std::vector<int64_t>{});
      },
      nb::arg("shifts"), nb::arg("dims") = nb::none(),
      "Rotates elements by shifts along dims (of the flattened input when dims is None).");
  c.def(
      "repeat",
      [](T x, nb::args sizes) {
        ReleaseGilIfLarge gil(work(x));
        return repeat(x, shape_from_args(sizes, "repeat"));
      },
      nb::arg("sizes"), "Tiles the tensor sizes[i] times along each dim (len(sizes) >= dim).");
  def_both(
      m, c, "tile",
      [](T x, const Ints& dims) {
        ReleaseGilIfLarge gil(work(x));
        return tile(x, ints(dims));
      },
      nb::arg("dims"), "Tiles the tensor; missing leading repetitions or dims count as 1.");
  for (const char* name : {"swapaxes", "swapdims"})
    c.def(
        name, [](T x, int64_t d0, int64_t d1) { return x.transpose(d0, d1); }, nb::arg("dim0"),
        nb::arg("dim1"), "Alias of transpose.");
  for (const char* name : {"movedim", "moveaxis"})
    def_both(m, c, name, &movedim, nb::arg("source"), nb::arg("destination"),
             "A view with dim source moved to position destination.");
  for (const bool lower : {true, false})
    def_both(
        m, c, lower ? "tril" : "triu",
        [lower](T x, int64_t diagonal) {
          ReleaseGilIfLarge gil(work(x));
          return lower ? tril(x, diagonal) : triu(x, diagonal);
        },
        nb::arg("diagonal") = 0,
        lower ? "The lower triangle of the last two dims (at and below diagonal), zeros "
                "elsewhere."
              : "The upper triangle of the last two dims (at and above diagonal), zeros "
                "elsewhere.");
  def_both(m, c, "diag", &diag, nb::arg("diagonal") = 0,
           "A 1-d input as diagonal `diagonal` of a square matrix; a 2-d input's diagonal as a "
           "new 1-d tensor.");
  m.def(
      "pad",
      [](T x, const std::vector<int64_t>& pad_sizes, const std::string& mode,
         std::optional<double> value) {
        ReleaseGilIfLarge gil(work(x));
        return pad(x, pad_sizes, mode, value.value_or(0.0));
      },
      nb::arg("input"), nb::arg("pad"), nb::arg("mode") = "constant", nb::arg("value") = nb::none(),
      "Pads the last dims: pad = (left_last, right_last, left_2nd_last, ...); mode "
      "'constant' (with value), 'reflect' or 'replicate'.");
}

// The view ops as functions; the methods are bound with Tensor (tensor.cpp).
void def_view_functions(nb::module_& m) {
  m.def(
      "reshape", [](T x, const Shape& shape) { return x.reshape(shape); }, nb::arg("input"),
      nb::arg("shape"), "A new shape (one size may be -1); a view when the strides allow.");
  m.def(
      "permute", [](T x, const std::vector<int64_t>& dims) { return x.permute(dims); },
      nb::arg("input"), nb::arg("dims"), "A view with the dims reordered.");
  for (const char* name : {"transpose", "swapaxes", "swapdims"})
    m.def(
        name, [](T x, int64_t d0, int64_t d1) { return x.transpose(d0, d1); }, nb::arg("input"),
        nb::arg("dim0"), nb::arg("dim1"), "A view with dims dim0 and dim1 swapped.");
  m.def(
      "t", [](T x) { return x.t(); }, nb::arg("input"),
      "The transpose of a 0-d, 1-d or 2-d tensor (a view).");
  m.def(
      "squeeze",
      [](T x, std::optional<int64_t> dim) { return dim ? x.squeeze(*dim) : x.squeeze(); },
      nb::arg("input"), nb::arg("dim") = nb::none(),
      "A view without size-1 dims (only dim, when given).");
  m.def(
      "unsqueeze", [](T x, int64_t dim) { return x.unsqueeze(dim); }, nb::arg("input"),
      nb::arg("dim"), "A view with a size-1 dim inserted at dim.");
  m.def(
      "flatten", [](T x, int64_t s, int64_t e) { return x.flatten(s, e); }, nb::arg("input"),
      nb::arg("start_dim") = 0, nb::arg("end_dim") = -1,
      "Dims start_dim..end_dim merged into one.");
  m.def(
      "unflatten", [](T x, int64_t dim, const Shape& s) { return x.unflatten(dim, s); },
      nb::arg("input"), nb::arg("dim"), nb::arg("sizes"), "Dim dim split into sizes (a view).");
  m.def(
      "narrow", [](T x, int64_t d, int64_t s, int64_t n) { return x.narrow(d, s, n); },
      nb::arg("input"), nb::arg("dim"), nb::arg("start"), nb::arg("length"),
      "A view of length elements of dim from start.");
  m.def(
      "select", [](T x, int64_t d, int64_t i) { return x.select(d, i); }, nb::arg("input"),
      nb::arg("dim"), nb::arg("index"), "A view of one index of dim, without that dim.");
  m.def(
      "diagonal", [](T x, int64_t o, int64_t d1, int64_t d2) { return x.diagonal(o, d1, d2); },
      nb::arg("input"), nb::arg("offset") = 0, nb::arg("dim1") = 0, nb::arg("dim2") = 1,
      "A view of a diagonal of dims dim1 and dim2 (moved to the last dim).");
  m.def(
      "clone", [](T x) { return x.clone(); }, nb::arg("input"), "A copy with its own storage.");
  m.def(
      "numel", [](T x) { return x.numel(); }, nb::arg("input"), "The number of elements.");
  m.def(
      "is_tensor", [](nb::handle obj) { return nb::isinstance<Tensor>(obj); }, nb::arg("obj"),
      "Whether obj is a tessera.Tensor.");
}

Shape broadcast_all(const nb::args& shapes) {
  Shape out;
  for (nb::handle h : shapes) {
    Shape s;
    if (int64_t n; nb::try_cast(h, n)) {
      s = {n};
    } else if (!nb::try_cast(h, s)) {
      throw nb::type_error("broadcast_shapes(): each shape must be an int or a sequence of ints");
    }
    out = broadcast_shapes(out, s, "broadcast_shapes");
  }
  return out;
}

void def_broadcast(nb::module_& m, nb::class_<Tensor>& c) {
  def_both(
      m, c, "broadcast_to", [](T x, const Shape& shape) { return x.broadcast_to(shape); },
      nb::arg("shape"), "A view of input broadcast to shape.");
  m.def(
      "broadcast_shapes",
      [](nb::args shapes) {
        const Shape s = broadcast_all(shapes);
        return nb::tuple(nb::cast(s));
      },
      nb::arg("shapes"), "The shape that shapes broadcast to (ShapeError if they do not).");
  m.def(
      "broadcast_tensors",
      [](nb::args tensors) {
        std::vector<Tensor> ts;
        Shape shape;
        for (nb::handle h : tensors) {
          if (!nb::isinstance<Tensor>(h))
            throw nb::type_error("broadcast_tensors(): every argument must be a Tensor");
          ts.push_back(nb::cast<Tensor>(h));
          shape = broadcast_shapes(shape, ts.back().shape(), "broadcast_tensors");
        }
        for (Tensor& t : ts) t = t.broadcast_to(shape);
        return tensor_tuple(std::move(ts));
      },
      nb::arg("tensors"), "Views of the tensors broadcast to one shape.");
}

}  // namespace

void init_shape(nb::module_& m, nb::class_<Tensor>& c) {
  def_join_split(m, c);
  def_reorder(m, c);
  def_view_functions(m);
  def_broadcast(m, c);
}

}  // namespace tessera::py::ops
