// tessera.data.default_collate: how a batch of Python samples becomes tensors (PyTorch's rules).
#include <fmt/format.h>

#include <string>
#include <vector>

#include "data_common.h"

namespace tessera::py {
namespace {

using namespace data_bind;

// ---- default_collate ----------------------------------------------------------------------
// PyTorch's rules: tensors, arrays and numbers are stacked along a new dim 0, strings are
// kept as a list, dicts and sequences are collated entry by entry (tuples become lists,
// namedtuples stay namedtuples). `where` names the entry for error messages ("['x'][1]").

using Samples = std::vector<nb::object>;

std::string at(const std::string& where) { return where.empty() ? "" : " at " + where; }

bool has_array_protocol(nb::handle h) {
  return PyObject_CheckBuffer(h.ptr()) || nb::hasattr(h, "__array_interface__") ||
         nb::hasattr(h, "__dlpack__");
}

Tensor stack_checked(const std::vector<Tensor>& ts, const std::string& where) {
  int64_t numel = 0;
  for (size_t j = 0; j < ts.size(); ++j) {
    TS_CHECK(ts[j].shape() == ts[0].shape(), ShapeError, "default_collate",
             "sample {} has shape {} but sample 0 has {}{}", j, shape_str(ts[j].shape()),
             shape_str(ts[0].shape()), at(where));
    TS_CHECK(ts[j].dtype() == ts[0].dtype(), DTypeError, "default_collate",
             "sample {} has dtype {} but sample 0 has {}{}", j, dtype_name(ts[j].dtype()),
             dtype_name(ts[0].dtype()), at(where));
    numel += ts[j].numel();
  }
  ReleaseGilIfLarge gil(numel);
  return stack(ts, 0);
}

Tensor collate_tensors(const Samples& s, const std::string& where) {
  std::vector<Tensor> ts(s.size());
  for (size_t j = 0; j < s.size(); ++j) {
    if (!nb::try_cast(s[j], ts[j]))
      type_error(fmt::format("default_collate(): sample {} is a {} but sample 0 is a Tensor{}", j,
                             py_type_name(s[j]), at(where)));
  }
  return stack_checked(ts, where);
}

// NumPy arrays and scalars (and anything with the buffer or DLPack protocol), in their dtype.
Tensor collate_arrays(const Samples& s, const std::string& where) {
  std::vector<Tensor> ts;
  ts.reserve(s.size());
  for (const nb::object& x : s) ts.push_back(tensor_from_data(x, std::nullopt));
  return stack_checked(ts, where);
}

// Python numbers: bool -> bool, int -> int64, float -> float64 (as PyTorch).
template <class T>
Tensor collate_numbers(const Samples& s, const std::string& where) {
  std::vector<T> values(s.size());
  for (size_t j = 0; j < s.size(); ++j) {
    T v{};
    const bool same_kind = std::is_same_v<T, bool> ? PyBool_Check(s[j].ptr())
                           : std::is_same_v<T, int64_t>
                               ? PyLong_Check(s[j].ptr()) != 0
                               : PyFloat_Check(s[j].ptr()) || PyLong_Check(s[j].ptr());
    if (!same_kind)
      type_error(fmt::format("default_collate(): sample {} is a {} but sample 0 is a {}{}", j,
                             py_type_name(s[j]), py_type_name(s[0]), at(where)));
    TS_CHECK(nb::try_cast(s[j], v), ValueError, "default_collate",
             "sample {} ({}) does not fit in {}{}", j, nb::str(s[j]).c_str(),
             std::is_same_v<T, double> ? "float64" : "int64", at(where));
    values[j] = v;
  }
  return tessera::tensor<T>(values);
}

nb::object collate(const Samples& s, const std::string& where, bool tuple_column = false);

nb::object collate_dict(const Samples& s, const std::string& where) {
  nb::dict out;
  for (auto [key, value] : nb::borrow<nb::dict>(s[0])) {
    Samples column;
    column.reserve(s.size());
    for (size_t j = 0; j < s.size(); ++j) {
      if (!PyDict_Check(s[j].ptr()))
        type_error(fmt::format("default_collate(): sample {} is a {} but sample 0 is a dict{}", j,
                               py_type_name(s[j]), at(where)));
      column.push_back(s[j][key]);  // KeyError when a sample lacks the key
    }
    out[key] = collate(column, fmt::format("{}[{}]", where, nb::repr(key).c_str()));
  }
  if (PyDict_CheckExact(s[0].ptr())) return out;
  try {  // OrderedDict and other dict types that can be built from a dict
    return s[0].type()(out);
  } catch (const nb::python_error&) {
    return out;
  }
}

nb::object collate_sequence(const Samples& s, const std::string& where) {
  const size_t n = nb::len(s[0]);
  for (size_t j = 1; j < s.size(); ++j) {
    if (!PyList_Check(s[j].ptr()) && !PyTuple_Check(s[j].ptr()))
      type_error(fmt::format("default_collate(): sample {} is a {} but sample 0 is a {}{}", j,
                             py_type_name(s[j]), py_type_name(s[0]), at(where)));
    TS_CHECK(nb::len(s[j]) == n, ValueError, "default_collate",
             "sample {} has {} entries but sample 0 has {}{}", j, nb::len(s[j]), n, at(where));
  }
  nb::list out;
  for (size_t k = 0; k < n; ++k) {
    Samples column;
    column.reserve(s.size());
    for (const nb::object& x : s) column.push_back(x[nb::int_(k)]);
    out.append(collate(column, fmt::format("{}[{}]", where, k), /*tuple_column=*/true));
  }
  const bool named = PyTuple_Check(s[0].ptr()) && nb::hasattr(s[0], "_fields");
  return named ? s[0].type()(*nb::tuple(out)) : nb::object(out);
}

// Strings stay as they are, in a tuple for a sequence entry and a list otherwise (what
// PyTorch's zip-based transposition gives).
nb::object collate(const Samples& s, const std::string& where, bool tuple_column) {
  PyObject* e = s[0].ptr();
  if (nb::isinstance<Tensor>(s[0])) return nb::cast(collate_tensors(s, where));
  if (PyUnicode_Check(e) || PyBytes_Check(e))
    return tuple_column ? nb::object(nb::tuple(nb::cast(s))) : nb::object(nb::list(nb::cast(s)));
  if (PyBool_Check(e)) return nb::cast(collate_numbers<bool>(s, where));
  if (PyLong_Check(e)) return nb::cast(collate_numbers<int64_t>(s, where));
  if (PyFloat_Check(e)) return nb::cast(collate_numbers<double>(s, where));
  if (has_array_protocol(s[0])) return nb::cast(collate_arrays(s, where));
  if (PyDict_Check(e)) return collate_dict(s, where);
  if (PyList_Check(e) || PyTuple_Check(e)) return collate_sequence(s, where);
  type_error(
      fmt::format("default_collate(): samples must be tensors, NumPy arrays, numbers, "
                  "strings, dicts or lists/tuples of them; found {}{}",
                  py_type_name(s[0]), at(where)));
}

}  // namespace

nb::object default_collate(nb::handle batch) {
  Samples s;
  for (nb::handle x : nb::iter(batch)) s.push_back(nb::borrow(x));
  TS_CHECK(!s.empty(), ValueError, "default_collate", "the batch is empty");
  return collate(s, "");
}

}  // namespace tessera::py
