// Argument conversions shared by the binding files.
#include <fmt/format.h>

#include "bind.h"

namespace nanobind::detail {

bool type_caster<tessera::Scalar>::from_python(handle src, uint8_t flags,
                                               cleanup_list*) noexcept {
  PyObject* o = src.ptr();
  if (PyBool_Check(o)) {
    value = tessera::Scalar(o == Py_True);
    return true;
  }
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred())) {
      PyErr_Clear();
      return false;
    }
    value = tessera::Scalar(static_cast<int64_t>(v));
    return true;
  }
  if (PyFloat_Check(o)) {
    value = tessera::Scalar(PyFloat_AS_DOUBLE(o));
    return true;
  }
  if (PyComplex_Check(o)) {
    value = tessera::Scalar(std::complex<double>(PyComplex_RealAsDouble(o), PyComplex_ImagAsDouble(o)));
    return true;
  }
  // NumPy scalars and other number-likes, but never tensors (which also define __float__).
  if (!(flags & static_cast<uint8_t>(cast_flags::convert)) || nb::isinstance<tessera::Tensor>(src))
    return false;
  if (PyIndex_Check(o)) {
    long long v = PyLong_AsLongLong(o);
    if (v == -1 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value = tessera::Scalar(static_cast<int64_t>(v));
    return true;
  }
  if (PyNumber_Check(o) && Py_TYPE(o)->tp_as_number->nb_float != nullptr) {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) {
      PyErr_Clear();
      return false;
    }
    value = tessera::Scalar(v);
    return true;
  }
  return false;
}

handle type_caster<tessera::Scalar>::from_cpp(const tessera::Scalar& s, rv_policy,
                                              cleanup_list*) noexcept {
  if (s.is_bool()) return PyBool_FromLong(s.to<bool>() ? 1 : 0);
  if (s.is_integral()) return PyLong_FromLongLong(s.to<int64_t>());
  if (s.is_complex()) {
    auto c = s.to<std::complex<double>>();
    return PyComplex_FromDoubles(c.real(), c.imag());
  }
  return PyFloat_FromDouble(s.to<double>());
}

}  // namespace nanobind::detail

namespace tessera::py {

Dims to_dims(const DimArg& d) {
  if (!d) return {};
  if (const auto* one = std::get_if<int64_t>(&*d)) return {*one};
  return std::get<std::vector<int64_t>>(*d);
}

Shape shape_from_args(const nb::args& args, const char* op) {
  // One sequence argument holds the sizes: zeros((2, 3)) or zeros([2, 3]).
  if (args.size() == 1 && !PyLong_Check(args[0].ptr()) && PySequence_Check(args[0].ptr())) {
    try {
      return nb::cast<Shape>(args[0]);
    } catch (const nb::cast_error&) {
      throw nb::type_error(fmt::format("{}(): size must be ints or one sequence of ints, got {}",
                                       op, nb::str(args[0]).c_str())
                               .c_str());
    }
  }
  Shape shape;
  shape.reserve(args.size());
  for (nb::handle a : args) {
    if (!PyIndex_Check(a.ptr()) || PyBool_Check(a.ptr()))
      throw nb::type_error(fmt::format("{}(): size must be ints or one sequence of ints, got {}",
                                       op, nb::str(nb::type_name(a.type())).c_str())
                               .c_str());
    shape.push_back(nb::cast<int64_t>(a));
  }
  return shape;
}

}  // namespace tessera::py
