// tessera.Tensor: metadata, conversion to Python values, operators, indexing and the autograd
// attributes. Named ops (tessera.sum, Tensor.sum, ...) are bound in ops.cpp.
#include <fmt/format.h>

#include "bind.h"
#include "tessera/runtime/cuda.h"

namespace tessera::py {
namespace {

// ---- Python data -> tensor ------------------------------------------------------------------

// The element kinds of Python data, in promotion order.
enum class Kind { Bool, Int, Float, Complex };

struct Nested {
  Shape shape;
  std::vector<nb::handle> leaves;
  Kind kind = Kind::Bool;
};

bool is_sequence(nb::handle h) {
  return PyList_Check(h.ptr()) || PyTuple_Check(h.ptr());
}

Kind leaf_kind(nb::handle h) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o)) return Kind::Bool;
  if (PyLong_Check(o) || PyIndex_Check(o)) return Kind::Int;
  if (PyComplex_Check(o)) return Kind::Complex;
  if (PyFloat_Check(o) || PyNumber_Check(o)) return Kind::Float;
  throw nb::type_error(
      fmt::format("tensor(): expected numbers or nested sequences of numbers, got {}",
                  nb::str(nb::type_name(h.type())).c_str())
          .c_str());
}

// Appends a dim. Out of line: GCC 12 reports a false -Warray-bounds on vector::push_back when
// it is inlined into the recursive walk below.
[[gnu::noinline]] void append_dim(Shape& shape, int64_t len) { shape.push_back(len); }

// Walks nested lists/tuples, checking that they are rectangular.
void walk(nb::handle h, size_t depth, Nested& n) {
  if (!is_sequence(h)) {
    if (depth != n.shape.size())
      throw nb::value_error("tensor(): nested sequences have inconsistent depths");
    if (nb::isinstance<Tensor>(h)) {
      const Tensor& t = nb::cast<const Tensor&>(h);
      if (t.numel() != 1)
        throw nb::value_error("tensor(): only one-element tensors can be elements of a list");
      n.kind = std::max(n.kind, is_complex(t.dtype())  ? Kind::Complex
                                : is_floating(t.dtype()) ? Kind::Float
                                : t.dtype() == kBool     ? Kind::Bool
                                                         : Kind::Int);
    } else {
      n.kind = std::max(n.kind, leaf_kind(h));
    }
    n.leaves.push_back(h);
    return;
  }
  const auto len = static_cast<int64_t>(nb::len(h));
  if (depth == n.shape.size()) {
    if (!n.leaves.empty())
      throw nb::value_error("tensor(): nested sequences have inconsistent depths");
    append_dim(n.shape, len);
  } else if (n.shape[depth] != len) {
    throw nb::value_error(fmt::format("tensor(): expected a sequence of length {} at dim {}, got {}",
                                      n.shape[depth], depth, len)
                              .c_str());
  }
  for (nb::handle item : nb::borrow<nb::sequence>(h)) walk(item, depth + 1, n);
}

Scalar leaf_value(nb::handle h) {
  if (nb::isinstance<Tensor>(h)) return nb::cast<const Tensor&>(h).item();
  return nb::cast<Scalar>(h);
}

template <class T>
Tensor fill_from(const Nested& n) {
  std::vector<T> values;
  values.reserve(n.leaves.size());
  for (nb::handle h : n.leaves) values.push_back(leaf_value(h).to<T>());
  return tessera::tensor<T>(values, n.shape);
}

Tensor from_python_data(nb::handle data) {
  Nested n;
  walk(data, 0, n);
  switch (n.kind) {
    case Kind::Bool: return fill_from<bool>(n);
    case Kind::Int: return fill_from<int64_t>(n);
    case Kind::Float: return fill_from<float>(n);
    case Kind::Complex: return fill_from<Complex64>(n);
  }
  return {};
}

bool has_array_protocol(nb::handle h) {
  return PyObject_CheckBuffer(h.ptr()) || nb::hasattr(h, "__dlpack__") ||
         nb::hasattr(h, "__array_interface__");
}

// ---- tensor -> Python values ----------------------------------------------------------------

nb::object to_list(const Tensor& c, const std::vector<Scalar>& flat, size_t dim, size_t& pos) {
  if (dim == c.shape().size()) return nb::cast(flat[pos++]);
  nb::list out;
  for (int64_t i = 0; i < c.shape()[dim]; ++i) out.append(to_list(c, flat, dim + 1, pos));
  return out;
}

template <class T>
std::vector<Scalar> scalars(const Tensor& t) {
  std::vector<T> v = t.to_vector<T>();
  return {v.begin(), v.end()};
}

nb::object tolist(const Tensor& t) {
  std::vector<Scalar> flat = is_complex(t.dtype())    ? scalars<std::complex<float>>(t)
                             : is_floating(t.dtype())   ? scalars<double>(t)
                             : t.dtype() == kBool       ? scalars<bool>(t)
                                                        : scalars<int64_t>(t);
  size_t pos = 0;
  return to_list(t, flat, 0, pos);
}

std::string repr(const Tensor& t) {
  std::string s = t.str();
  if (t.defined() && t.requires_grad()) s.insert(s.size() - 1, ", requires_grad=True");
  return s;
}

// ---- indexing -------------------------------------------------------------------------------

TensorIndex index_entry(nb::handle h) {
  PyObject* o = h.ptr();
  if (o == Py_None) return None;
  if (o == Py_Ellipsis) return Ellipsis;
  if (PySlice_Check(o)) {
    auto* s = reinterpret_cast<PySliceObject*>(o);
    auto bound = [](PyObject* b) -> SliceBound {
      if (b == Py_None) return None;
      return SliceBound(nb::cast<int64_t>(nb::handle(b)));
    };
    return Slice(bound(s->start), bound(s->stop), bound(s->step));
  }
  if (nb::isinstance<Tensor>(h)) return nb::cast<Tensor>(h);
  if (PyBool_Check(o)) return scalar_tensor(o == Py_True);
  if (PyLong_Check(o) || (PyIndex_Check(o) && !has_array_protocol(h)))
    return nb::cast<int64_t>(h);
  if (is_sequence(h) || has_array_protocol(h)) return tensor_from_data(h, std::nullopt);
  throw nb::type_error(
      fmt::format("index: only integers, slices, None, Ellipsis, sequences of integers and "
                  "integer or boolean tensors are valid indices (got {})",
                  nb::str(nb::type_name(h.type())).c_str())
          .c_str());
}

std::vector<TensorIndex> to_index(nb::handle key) {
  std::vector<TensorIndex> idx;
  if (PyTuple_Check(key.ptr())) {
    for (nb::handle h : nb::borrow<nb::tuple>(key)) idx.push_back(index_entry(h));
  } else {
    idx.push_back(index_entry(key));
  }
  return idx;
}

Tensor getitem(const Tensor& self, nb::handle key) {
  // The common x[i] skips building an index vector.
  if (PyLong_CheckExact(key.ptr())) return self.select(0, nb::cast<int64_t>(key));
  return self.index(to_index(key));
}

void setitem(Tensor& self, nb::handle key, nb::handle value) {
  std::vector<TensorIndex> idx = to_index(key);
  ReleaseGilIfLarge gil(self.numel());
  if (nb::isinstance<Tensor>(value)) {
    self.index_put_(idx, nb::cast<const Tensor&>(value));
  } else if (Scalar s; nb::try_cast(value, s)) {
    self.index_put_(idx, s);
  } else {
    self.index_put_(idx, tensor_from_data(value, self.dtype()));
  }
}

// ---- operators ------------------------------------------------------------------------------

// A Python number as a 0-d tensor of the dtype the op will compute in, so `float64_t % 0.1` does
// not round 0.1 to float32 first.
Tensor as_operand(const Tensor& t, const Scalar& s) { return scalar_tensor(s, result_type(t, s)); }

// An in-place op spelled through copy_ where the C++ API has no dedicated method.
Tensor& assign(Tensor& self, const Tensor& value) { return self.copy_(value); }

constexpr auto kSelf = nb::rv_policy::reference;  // in-place ops return the same Python object

void def_arithmetic(nb::class_<Tensor>& c) {
  using T = const Tensor&;
  using S = const Scalar&;
  c.def("__add__", [](T a, T b) { return a + b; })
      .def("__add__", [](T a, S b) { return a + b; })
      .def("__radd__", [](T a, S b) { return b + a; })
      .def("__sub__", [](T a, T b) { return a - b; })
      .def("__sub__", [](T a, S b) { return a - b; })
      .def("__rsub__", [](T a, S b) { return b - a; })
      .def("__mul__", [](T a, T b) { return a * b; })
      .def("__mul__", [](T a, S b) { return a * b; })
      .def("__rmul__", [](T a, S b) { return b * a; })
      .def("__truediv__", [](T a, T b) { return a / b; })
      .def("__truediv__", [](T a, S b) { return a / b; })
      .def("__rtruediv__", [](T a, S b) { return b / a; })
      .def("__floordiv__", [](T a, T b) { return floor_divide(a, b); })
      .def("__floordiv__", [](T a, S b) { return floor_divide(a, as_operand(a, b)); })
      .def("__rfloordiv__", [](T a, S b) { return floor_divide(as_operand(a, b), a); })
      .def("__mod__", [](T a, T b) { return remainder(a, b); })
      .def("__mod__", [](T a, S b) { return remainder(a, as_operand(a, b)); })
      .def("__rmod__", [](T a, S b) { return remainder(as_operand(a, b), a); })
      .def("__pow__", [](T a, T b) { return pow(a, b); })
      .def("__pow__", [](T a, S b) { return pow(a, b); })
      .def("__rpow__", [](T a, S b) { return pow(as_operand(a, b), a); })
      .def("__matmul__", [](T a, T b) {
        ReleaseGilIfLarge gil(a.numel() + b.numel());
        return matmul(a, b);
      })
      .def("__and__", [](T a, T b) { return a & b; })
      .def("__and__", [](T a, S b) { return a & as_operand(a, b); })
      .def("__rand__", [](T a, S b) { return as_operand(a, b) & a; })
      .def("__or__", [](T a, T b) { return a | b; })
      .def("__or__", [](T a, S b) { return a | as_operand(a, b); })
      .def("__ror__", [](T a, S b) { return as_operand(a, b) | a; })
      .def("__xor__", [](T a, T b) { return a ^ b; })
      .def("__xor__", [](T a, S b) { return a ^ as_operand(a, b); })
      .def("__rxor__", [](T a, S b) { return as_operand(a, b) ^ a; })
      .def("__neg__", [](T a) { return -a; })
      .def("__pos__", [](T a) { return a; })
      .def("__abs__", [](T a) { return abs(a); })
      .def("__invert__", [](T a) { return ~a; });
}

void def_inplace(nb::class_<Tensor>& c) {
  using T = const Tensor&;
  using S = const Scalar&;
  c.def("__iadd__", [](Tensor& a, T b) -> Tensor& { return a.add_(b); }, kSelf)
      .def("__iadd__", [](Tensor& a, S b) -> Tensor& { return a.add_(b); }, kSelf)
      .def("__isub__", [](Tensor& a, T b) -> Tensor& { return a.sub_(b); }, kSelf)
      .def("__isub__", [](Tensor& a, S b) -> Tensor& { return a.sub_(b); }, kSelf)
      .def("__imul__", [](Tensor& a, T b) -> Tensor& { return a.mul_(b); }, kSelf)
      .def("__imul__", [](Tensor& a, S b) -> Tensor& { return a.mul_(b); }, kSelf)
      .def("__itruediv__", [](Tensor& a, T b) -> Tensor& { return a.div_(b); }, kSelf)
      .def("__itruediv__", [](Tensor& a, S b) -> Tensor& { return a.div_(b); }, kSelf)
      .def("__ifloordiv__", [](Tensor& a, T b) -> Tensor& { return assign(a, floor_divide(a, b)); },
           kSelf)
      .def("__ifloordiv__",
           [](Tensor& a, S b) -> Tensor& { return assign(a, floor_divide(a, as_operand(a, b))); },
           kSelf)
      .def("__imod__", [](Tensor& a, T b) -> Tensor& { return assign(a, remainder(a, b)); }, kSelf)
      .def("__imod__",
           [](Tensor& a, S b) -> Tensor& { return assign(a, remainder(a, as_operand(a, b))); }, kSelf)
      .def("__ipow__", [](Tensor& a, T b) -> Tensor& { return assign(a, pow(a, b)); }, kSelf)
      .def("__ipow__", [](Tensor& a, S b) -> Tensor& { return assign(a, pow(a, b)); }, kSelf)
      .def("__iand__", [](Tensor& a, T b) -> Tensor& { return assign(a, a & b); }, kSelf)
      .def("__iand__", [](Tensor& a, S b) -> Tensor& { return assign(a, a & as_operand(a, b)); },
           kSelf)
      .def("__ior__", [](Tensor& a, T b) -> Tensor& { return assign(a, a | b); }, kSelf)
      .def("__ior__", [](Tensor& a, S b) -> Tensor& { return assign(a, a | as_operand(a, b)); },
           kSelf)
      .def("__ixor__", [](Tensor& a, T b) -> Tensor& { return assign(a, a ^ b); }, kSelf)
      .def("__ixor__", [](Tensor& a, S b) -> Tensor& { return assign(a, a ^ as_operand(a, b)); },
           kSelf);
}

void def_comparisons(nb::class_<Tensor>& c) {
  using T = const Tensor&;
  using S = const Scalar&;
  c.def("__eq__", [](T a, T b) { return a == b; })
      .def("__eq__", [](T a, S b) { return a == b; })
      .def("__ne__", [](T a, T b) { return a != b; })
      .def("__ne__", [](T a, S b) { return a != b; })
      .def("__lt__", [](T a, T b) { return a < b; })
      .def("__lt__", [](T a, S b) { return a < b; })
      .def("__le__", [](T a, T b) { return a <= b; })
      .def("__le__", [](T a, S b) { return a <= b; })
      .def("__gt__", [](T a, T b) { return a > b; })
      .def("__gt__", [](T a, S b) { return a > b; })
      .def("__ge__", [](T a, T b) { return a >= b; })
      .def("__ge__", [](T a, S b) { return a >= b; })
      // Tensors define __eq__ elementwise, so hashing is by identity, as in PyTorch.
      .def("__hash__", [](nb::handle self) { return reinterpret_cast<intptr_t>(self.ptr()); });
}

// ---- metadata and conversions ---------------------------------------------------------------

nb::tuple shape_tuple(const Shape& s) {
  nb::list l;
  for (int64_t v : s) l.append(v);
  return nb::tuple(l);
}

Scalar single_value(const Tensor& t, const char* what) {
  if (t.numel() != 1)
    throw nb::value_error(
        fmt::format("{}: only one-element tensors can be converted (shape {})", what,
                    shape_str(t.shape()))
            .c_str());
  return t.item();
}

void def_metadata(nb::class_<Tensor>& c) {
  c.def_prop_ro("shape", [](const Tensor& t) { return shape_tuple(t.shape()); },
                "The sizes, as a tuple.")
      .def("size",
           [](const Tensor& t, std::optional<int64_t> dim) -> nb::object {
             if (dim) return nb::cast(t.size(*dim));
             return shape_tuple(t.shape());
           },
           nb::arg("dim") = nb::none(), "The sizes, or the size of one dim.")
      .def("stride",
           [](const Tensor& t, std::optional<int64_t> dim) -> nb::object {
             if (dim) return nb::cast(t.stride(*dim));
             return shape_tuple(t.strides());
           },
           nb::arg("dim") = nb::none(), "The strides in elements, or the stride of one dim.")
      .def_prop_ro("dtype", &Tensor::dtype)
      .def_prop_ro("device", &Tensor::device)
      .def_prop_ro("ndim", &Tensor::dim)
      .def("dim", &Tensor::dim, "Number of dims.")
      .def("numel", &Tensor::numel, "Number of elements.")
      .def("element_size", &Tensor::itemsize, "Bytes per element.")
      .def_prop_ro("itemsize", &Tensor::itemsize)
      .def_prop_ro("nbytes", &Tensor::nbytes)
      .def("is_contiguous", &Tensor::is_contiguous, "Whether the elements are laid out row-major.")
      .def("storage_offset", &Tensor::offset, "Offset of the first element in its storage.")
      .def("data_ptr", [](const Tensor& t) { return reinterpret_cast<uintptr_t>(t.raw_data()); },
           "Address of the first element.")
      .def_prop_ro("is_cuda", [](const Tensor& t) { return t.device().is_cuda(); })
      .def("is_floating_point", [](const Tensor& t) { return is_floating(t.dtype()); },
           "Whether the dtype is a floating-point type.")
      .def_prop_ro("T", [](const Tensor& t) {
        std::vector<int64_t> dims(static_cast<size_t>(t.dim()));
        for (size_t i = 0; i < dims.size(); ++i) dims[i] = t.dim() - 1 - static_cast<int64_t>(i);
        return t.permute(dims);
      }, "The tensor with its dims reversed.")
      .def_prop_ro("mT", &Tensor::mT, "The last two dims swapped.")
      .def("__len__", [](const Tensor& t) {
        if (t.dim() == 0) throw nb::type_error("len() of a 0-d tensor");
        return t.shape()[0];
      })
      .def("__repr__", &repr)
      .def("__str__", &repr)
      .def("item", [](const Tensor& t) { return single_value(t, "item()"); },
           "The value of a one-element tensor as a Python number.")
      .def("tolist", &tolist, "The values as (nested) Python lists of numbers.")
      .def("__bool__", [](const Tensor& t) {
        if (t.numel() != 1)
          throw nb::value_error(
              fmt::format("the truth value of a tensor with {} elements is ambiguous", t.numel())
                  .c_str());
        return t.item().to<bool>();
      })
      .def("__float__", [](const Tensor& t) { return single_value(t, "float()").to<double>(); })
      .def("__int__", [](const Tensor& t) { return single_value(t, "int()").to<int64_t>(); })
      .def("__complex__", [](const Tensor& t) {
        return single_value(t, "complex()").to<std::complex<double>>();
      })
      .def("__index__", [](const Tensor& t) {
        if (!is_integral(t.dtype(), true) || t.numel() != 1)
          throw nb::type_error("only integer tensors of a single element can be an index");
        return t.item().to<int64_t>();
      });
}

void def_autograd(nb::class_<Tensor>& c) {
  c.def_prop_rw("requires_grad", &Tensor::requires_grad,
                [](Tensor& t, bool on) { t.requires_grad_(on); })
      .def("requires_grad_", &Tensor::requires_grad_, nb::arg("requires_grad") = true, kSelf,
           "Marks a leaf as requiring grad; returns self.")
      .def_prop_rw("grad",
                   [](const Tensor& t) -> std::optional<Tensor> {
                     Tensor g = t.grad();
                     if (!g.defined()) return std::nullopt;
                     return g;
                   },
                   [](Tensor& t, std::optional<Tensor> g) { t.set_grad(g.value_or(Tensor())); },
                   nb::arg("grad").none(), "The accumulated gradient (None before backward).")
      .def_prop_ro("is_leaf", &Tensor::is_leaf)
      .def_prop_ro("grad_fn",
                   [](const Tensor& t) -> std::optional<std::string> {
                     std::string name = autograd::grad_fn_name(t);
                     if (name.empty()) return std::nullopt;
                     return name;
                   },
                   "The name of the op that produced this tensor (None for leaves).")
      .def("backward",
           [](const Tensor& t, std::optional<Tensor> gradient, std::optional<bool> retain_graph,
              bool create_graph) {
             nb::gil_scoped_release release;  // hooks and custom functions take the GIL back
             t.backward(gradient.value_or(Tensor()), retain_graph.value_or(create_graph),
                        create_graph);
           },
           nb::arg("gradient") = nb::none(), nb::arg("retain_graph") = nb::none(),
           nb::arg("create_graph") = false,
           "Accumulates gradients of this tensor into the .grad of the leaves.")
      .def("detach", &Tensor::detach, "Shares storage, has no history, does not require grad.")
      .def_prop_ro("data", &Tensor::detach)
      .def("retain_grad", &Tensor::retain_grad, "Keeps .grad for this non-leaf after backward.")
      .def_prop_ro("retains_grad", &Tensor::retains_grad)
      .def("register_hook",
           [](const Tensor& t, nb::callable hook) {
             auto fn = std::make_shared<nb::callable>(std::move(hook));
             return t.register_hook([fn](const Tensor& g) -> Tensor {
               nb::gil_scoped_acquire gil;
               nb::object r = (*fn)(g);
               return r.is_none() ? Tensor() : nb::cast<Tensor>(r);
             });
           },
           nb::arg("hook"),
           "Calls hook(grad) when this tensor's gradient is computed; a returned tensor "
           "replaces it. Returns an id for remove_hook.")
      .def("remove_hook", &Tensor::remove_hook, nb::arg("id"),
           "Removes a hook registered with register_hook.");
}

void def_views(nb::class_<Tensor>& c) {
  c.def("view", [](const Tensor& t, nb::args s) { return t.view(shape_from_args(s, "view")); },
        "A view with a new shape (never copies).")
      .def("reshape",
           [](const Tensor& t, nb::args s) { return t.reshape(shape_from_args(s, "reshape")); },
           "A new shape; a view when the strides allow, else a copy.")
      .def("permute",
           [](const Tensor& t, nb::args d) { return t.permute(shape_from_args(d, "permute")); },
           "A view with the dims reordered.")
      .def("expand",
           [](const Tensor& t, nb::args s) { return t.expand(shape_from_args(s, "expand")); },
           "A broadcast view with new sizes (-1 keeps a dim).")
      .def("view_as", [](const Tensor& t, const Tensor& o) { return t.view(o.shape()); },
           nb::arg("other"), "view() with other's shape.")
      .def("reshape_as", [](const Tensor& t, const Tensor& o) { return t.reshape(o.shape()); },
           nb::arg("other"), "reshape() to other's shape.")
      .def("expand_as", [](const Tensor& t, const Tensor& o) { return t.expand(o.shape()); },
           nb::arg("other"), "expand() to other's shape.")
      .def("transpose", &Tensor::transpose, nb::arg("dim0"), nb::arg("dim1"),
           "A view with two dims swapped.")
      .def("t", &Tensor::t, "The transpose of a 0-, 1- or 2-d tensor.")
      .def("narrow", &Tensor::narrow, nb::arg("dim"), nb::arg("start"), nb::arg("length"),
           "A view of `length` elements of dim from start.")
      .def("select", &Tensor::select, nb::arg("dim"), nb::arg("index"),
           "A view at one index of dim, with that dim removed.")
      .def("squeeze",
           [](const Tensor& t, std::optional<int64_t> dim) {
             return dim ? t.squeeze(*dim) : t.squeeze();
           },
           nb::arg("dim") = nb::none(), "Removes size-1 dims (all, or the given one).")
      .def("unsqueeze", &Tensor::unsqueeze, nb::arg("dim"), "Inserts a size-1 dim.")
      .def("flatten", &Tensor::flatten, nb::arg("start_dim") = 0, nb::arg("end_dim") = -1,
           "Merges dims start_dim..end_dim into one.")
      .def("unflatten", &Tensor::unflatten, nb::arg("dim"), nb::arg("sizes"),
           "Splits dim into the given sizes.")
      .def("diagonal", &Tensor::diagonal, nb::arg("offset") = 0, nb::arg("dim1") = 0,
           nb::arg("dim2") = 1, "A view of a diagonal of the dim1 x dim2 planes.")
      .def("as_strided", &Tensor::as_strided, nb::arg("size"), nb::arg("stride"),
           nb::arg("storage_offset") = nb::none(), "A view with explicit sizes and strides.")
      .def("contiguous", &Tensor::contiguous, "Self if row-major, else a row-major copy.")
      .def("clone", &Tensor::clone, "A copy with its own storage (recorded by autograd).")
      .def("__getitem__", &getitem, nb::arg("key").none())
      .def("__setitem__", &setitem, nb::arg("key").none(), nb::arg("value"));
}

Tensor to_dtype_device(const Tensor& t, std::optional<Device> device, std::optional<DType> dtype,
                       bool copy, bool non_blocking = false) {
  Tensor r = t;
  if (device) r = r.to(*device, non_blocking);
  if (dtype) r = r.to(*dtype);
  if (copy && r.is_same(t)) r = r.clone();
  return r;
}

void def_conversions(nb::class_<Tensor>& c) {
  c.def("to",
        [](const Tensor& t, DType dtype, bool copy) {
          return to_dtype_device(t, std::nullopt, dtype, copy);
        },
        nb::arg("dtype"), nb::arg("copy") = false)
      .def("to",
           [](const Tensor& t, std::optional<Device> device, std::optional<DType> dtype,
              bool non_blocking, bool copy) {
             return to_dtype_device(t, device, dtype, copy, non_blocking);
           },
           nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none(),
           nb::arg("non_blocking") = false, nb::arg("copy") = false,
           "Converts dtype and/or moves to a device (self when nothing changes). non_blocking: "
           "a copy between pinned memory and a GPU is queued without waiting (see pin_memory).")
      .def("to",
           [](const Tensor& t, const Tensor& other, bool copy) {
             return to_dtype_device(t, other.device(), other.dtype(), copy);
           },
           nb::arg("other"), nb::arg("copy") = false)
      .def("type", [](const Tensor& t, DType dtype) { return t.to(dtype); }, nb::arg("dtype"),
           "Converts to dtype.")
      .def("cpu", [](const Tensor& t) { return t.to(Device::cpu()); }, "Copies to the CPU.")
      .def("cuda",
           [](const Tensor& t, int index, bool non_blocking) {
             return t.to(Device::cuda(index), non_blocking);
           },
           nb::arg("device") = 0, nb::arg("non_blocking") = false, "Copies to a CUDA device.")
      .def("pin_memory",
           [](const Tensor& t) {
             nb::gil_scoped_release release;  // page-locking takes the driver's time
             return cuda::pin_memory(t);
           },
           "A copy in pinned (page-locked) host memory, or self when already pinned; needs a "
           "CUDA device.")
      .def("is_pinned", &cuda::is_pinned, "Whether the memory is pinned host memory.");
  const std::pair<const char*, DType> casts[] = {
      {"float", kFloat32}, {"double", kFloat64}, {"half", kFloat16}, {"bfloat16", kBFloat16},
      {"int", kInt32},     {"long", kInt64},     {"short", kInt16},  {"char", kInt8},
      {"byte", kUInt8},    {"bool", kBool},      {"cfloat", kComplex64}};
  for (const auto& [name, dtype] : casts)
    c.def(name, [dt = dtype](const Tensor& t) { return t.to(dt); },
          fmt::format("Converts to {}.", dtype_name(dtype)).c_str());
}

void def_inplace_methods(nb::class_<Tensor>& c) {
  c.def("copy_", [](Tensor& t, const Tensor& s) -> Tensor& { return t.copy_(s); }, nb::arg("src"),
        kSelf, "Copies src into self (broadcasting, converting dtype).")
      .def("fill_", [](Tensor& t, const Scalar& v) -> Tensor& { return t.fill_(v); },
           nb::arg("value"), kSelf, "Sets every element to value.")
      .def("zero_", [](Tensor& t) -> Tensor& { return t.zero_(); }, kSelf,
           "Sets every element to zero.")
      .def("add_",
           [](Tensor& t, const Tensor& o, const Scalar& alpha) -> Tensor& {
             return alpha.to<double>() == 1.0 ? t.add_(o) : t.add_(o * alpha);
           },
           nb::arg("other"), nb::kw_only(), nb::arg("alpha") = 1, kSelf,
           "self += alpha * other, in place.")
      .def("add_", [](Tensor& t, const Scalar& o) -> Tensor& { return t.add_(o); },
           nb::arg("other"), kSelf)
      .def("sub_", [](Tensor& t, const Tensor& o) -> Tensor& { return t.sub_(o); },
           nb::arg("other"), kSelf, "self -= other, in place.")
      .def("sub_", [](Tensor& t, const Scalar& o) -> Tensor& { return t.sub_(o); },
           nb::arg("other"), kSelf)
      .def("mul_", [](Tensor& t, const Tensor& o) -> Tensor& { return t.mul_(o); },
           nb::arg("other"), kSelf, "self *= other, in place.")
      .def("mul_", [](Tensor& t, const Scalar& o) -> Tensor& { return t.mul_(o); },
           nb::arg("other"), kSelf)
      .def("div_", [](Tensor& t, const Tensor& o) -> Tensor& { return t.div_(o); },
           nb::arg("other"), kSelf, "self /= other, in place.")
      .def("div_", [](Tensor& t, const Scalar& o) -> Tensor& { return t.div_(o); },
           nb::arg("other"), kSelf)
      .def("clamp_",
           [](Tensor& t, std::optional<Scalar> lo, std::optional<Scalar> hi) -> Tensor& {
             return t.clamp_(lo, hi);
           },
           nb::arg("min") = nb::none(), nb::arg("max") = nb::none(), kSelf,
           "Clamps every element into [min, max], in place.")
      .def("masked_fill_",
           [](Tensor& t, const Tensor& mask, const Scalar& v) -> Tensor& {
             return t.masked_fill_(mask, v);
           },
           nb::arg("mask"), nb::arg("value"), kSelf, "Sets elements where mask is true to value.");
}

}  // namespace

Tensor tensor_from_data(nb::handle data, std::optional<DType> dtype) {
  Tensor t;
  if (nb::isinstance<Tensor>(data)) {
    t = nb::cast<const Tensor&>(data).detach().clone();
  } else if (!is_sequence(data) && has_array_protocol(data)) {
    t = from_array(data, "tensor", /*allow_copy=*/true).clone();  // tensor() always copies, like PyTorch
  } else {
    t = from_python_data(data);
  }
  return dtype ? t.to(*dtype) : t;
}

nb::class_<Tensor> init_tensor(nb::module_& m) {
  auto c = nb::class_<Tensor>(m, "Tensor",
                              "An n-dimensional array with autograd support (a shared handle: "
                              "views and in-place ops share storage).");
  def_metadata(c);
  def_arithmetic(c);
  def_inplace(c);
  def_comparisons(c);
  def_autograd(c);
  def_views(c);
  def_conversions(c);
  def_inplace_methods(c);

  m.def("tensor",
        [](nb::handle data, std::optional<DType> dtype, std::optional<Device> device,
           bool requires_grad) {
          Tensor t = tensor_from_data(data, dtype);
          if (device) t = t.to(*device);
          if (requires_grad) t.requires_grad_(true);
          return t;
        },
        nb::arg("data"), nb::kw_only(), nb::arg("dtype") = nb::none(),
        nb::arg("device") = nb::none(), nb::arg("requires_grad") = false,
        "A new tensor holding a copy of data (nested sequences of numbers, a NumPy array, "
        "anything with the buffer or DLPack protocol, or a number). The dtype follows the data "
        "unless given: bool, int64, float32 or complex64 for Python numbers.");
  return c;
}

}  // namespace tessera::py
