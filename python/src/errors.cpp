// Tessera's exceptions as Python exceptions. Each class derives from tessera.Error and from the
// built-in exception a Python user would catch (ShapeError is a ValueError, IndexError an
// IndexError, ...), and keeps the C++ message ("[op] ...") unchanged.
#include "bind.h"

namespace tessera::py {
namespace {

struct PyErrors {
  PyObject* error = nullptr;
  PyObject* shape = nullptr;
  PyObject* dtype = nullptr;
  PyObject* device = nullptr;
  PyObject* index = nullptr;
  PyObject* value = nullptr;
  PyObject* io = nullptr;
  PyObject* not_implemented = nullptr;
  PyObject* not_built = nullptr;
};
PyErrors errs;

PyObject* new_error(nb::module_& m, const char* name, nb::handle bases, const char* doc) {
  std::string qual = std::string("tessera.") + name;
  PyObject* type = PyErr_NewExceptionWithDoc(qual.c_str(), doc, bases.ptr(), nullptr);
  if (!type) throw nb::python_error();
  m.attr(name) = nb::handle(type);
  return type;
}

nb::tuple bases(PyObject* a, PyObject* b) {
  return nb::make_tuple(nb::handle(a), nb::handle(b));
}

void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const ShapeError& e) {
    PyErr_SetString(errs.shape, e.what());
  } catch (const DTypeError& e) {
    PyErr_SetString(errs.dtype, e.what());
  } catch (const DeviceError& e) {
    PyErr_SetString(errs.device, e.what());
  } catch (const IndexError& e) {
    PyErr_SetString(errs.index, e.what());
  } catch (const ValueError& e) {
    PyErr_SetString(errs.value, e.what());
  } catch (const IOError& e) {
    PyErr_SetString(errs.io, e.what());
  } catch (const NotBuiltError& e) {
    PyErr_SetString(errs.not_built, e.what());
  } catch (const NotImplementedError& e) {
    PyErr_SetString(errs.not_implemented, e.what());
  } catch (const Error& e) {
    PyErr_SetString(errs.error, e.what());
  }
}

}  // namespace

void init_errors(nb::module_& m) {
  errs.error = new_error(m, "Error", nb::handle(PyExc_RuntimeError),
                         "Base of every error Tessera raises.");
  errs.shape = new_error(m, "ShapeError", bases(errs.error, PyExc_ValueError),
                         "Incompatible shapes or dims.");
  errs.dtype = new_error(m, "DTypeError", bases(errs.error, PyExc_TypeError),
                         "Unsupported or mismatched dtype.");
  errs.device = new_error(m, "DeviceError", bases(errs.error, PyExc_RuntimeError),
                          "Wrong, mixed or missing device.");
  errs.index = new_error(m, "IndexError", bases(errs.error, PyExc_IndexError),
                         "Index out of range.");
  errs.value = new_error(m, "ValueError", bases(errs.error, PyExc_ValueError),
                         "Bad argument value.");
  errs.io = new_error(m, "IOError", bases(errs.error, PyExc_OSError),
                      "Malformed or unreadable file.");
  errs.not_implemented = new_error(m, "NotImplementedError",
                                   bases(errs.error, PyExc_NotImplementedError),
                                   "A feature that is not done yet.");
  errs.not_built = new_error(m, "NotBuiltError", nb::make_tuple(nb::handle(errs.not_implemented)),
                             "A backend that was not compiled in.");
  nb::register_exception_translator(translate);
}

}  // namespace tessera::py
