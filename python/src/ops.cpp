// The tensor ops as tessera.* functions and Tensor methods (PyTorch's names and keywords). Each
// family lives in its own ops_*.cpp; this file holds the entry point and the shared helpers.
#include "ops_common.h"

namespace tessera::py {
namespace ops {
namespace {

// The struct sequence types behind tessera.return_types, indexed by Named.
PyTypeObject* g_named[4] = {};

PyStructSequence_Field g_fields[] = {{"values", "The selected values."},
                                     {"indices", "Their int64 positions along the dim."},
                                     {nullptr, nullptr}};

PyTypeObject* new_named(nb::module_& rt, const char* qualname, const char* name, const char* doc) {
  PyStructSequence_Desc desc = {qualname, doc, g_fields, 2};
  PyTypeObject* t = PyStructSequence_NewType(&desc);
  if (!t) throw nb::python_error();
  rt.attr(name) = nb::handle(reinterpret_cast<PyObject*>(t));  // the module keeps it alive
  return t;
}

}  // namespace

int64_t work(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d <= 0) return 0;
    n = n > (int64_t{1} << 40) / d ? (int64_t{1} << 40) : n * d;
  }
  return n;
}

TensorPair values_indices(Named kind, Tensor values, Tensor indices) {
  PyObject* o = PyStructSequence_New(g_named[static_cast<int>(kind)]);
  if (!o) throw nb::python_error();
  TensorPair r(nb::steal<nb::tuple>(o));  // a struct sequence is a tuple subclass
  PyStructSequence_SetItem(o, 0, nb::cast(std::move(values)).release().ptr());
  PyStructSequence_SetItem(o, 1, nb::cast(std::move(indices)).release().ptr());
  return r;
}

TensorTuple tensor_tuple(std::vector<Tensor> v) {
  PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(v.size()));
  if (!t) throw nb::python_error();
  TensorTuple r(nb::steal<nb::tuple>(t));
  for (size_t i = 0; i < v.size(); ++i)
    PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), nb::cast(std::move(v[i])).release().ptr());
  return r;
}

void init_return_types(nb::module_& m) {
  nb::module_ rt = m.def_submodule("return_types",
                                   "Named tuples returned by ops that give values with indices.");
  g_named[0] =
      new_named(rt, "tessera.return_types.max", "max", "max(input, dim): (values, indices)");
  g_named[1] =
      new_named(rt, "tessera.return_types.min", "min", "min(input, dim): (values, indices)");
  g_named[2] = new_named(rt, "tessera.return_types.sort", "sort", "sort(input): (values, indices)");
  g_named[3] =
      new_named(rt, "tessera.return_types.topk", "topk", "topk(input, k): (values, indices)");
}

}  // namespace ops

void init_ops(nb::module_& m, nb::class_<Tensor>& cls) {
  ops::init_return_types(m);
  ops::init_creation(m, cls);
  ops::init_elementwise(m, cls);
  ops::init_reduce(m, cls);
  ops::init_shape(m, cls);
  ops::init_indexing(m, cls);
}

}  // namespace tessera::py
