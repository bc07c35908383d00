#pragma once
// Shared by the tessera.data binding files (data.cpp, data_transforms.cpp): calling Python from
// loader threads, Python references held by C++ objects, and how those objects report them to
// the cycle collector.
#include <fmt/format.h>

#include <memory>
#include <string>

#include "bind.h"

namespace tessera::py::data_bind {

// The GIL for Python code run for a loader: dataset, collate_fn and transform calls and
// reference drops, often on a loader thread.
//
// Shutdown: from the start of interpreter finalization, a thread that asks for the GIL is ended
// with pthread_exit, whose unwinding cannot pass through C++ (std::terminate). So loader
// threads go through a gate that an atexit hook closes (close_python_gate, which then waits for
// the threads inside): afterwards they fail their batches (or leak a reference) instead.
//
// Garbage collection: a collection run inside such a scope may free an epoch whose threads
// include this one; active() tells LoaderIterator (data.cpp) to end such an epoch later
// instead of joining its threads here.
class LoaderGil {
 public:
  /// Takes the GIL; when the interpreter is shutting down, throws (required) or leaves
  /// acquired() false.
  explicit LoaderGil(bool required = true);
  ~LoaderGil();
  LoaderGil(const LoaderGil&) = delete;
  LoaderGil& operator=(const LoaderGil&) = delete;
  bool acquired() const { return acquired_; }
  static bool active() { return depth_ > 0; }

 private:
  bool gated_ = false, acquired_ = false;
  PyGILState_STATE state_{};
  static inline thread_local int depth_ = 0;
};

/// Closes the gate and waits (without the GIL) for loader threads inside it; call with the GIL.
void close_python_gate();

// Drops a reference on any thread (boxed samples and stream iterators also die on loader
// threads); at shutdown a loader thread leaks it instead.
inline void release_ref(PyObject* o) {
  LoaderGil gil(/*required=*/false);
  if (gil.acquired()) Py_DECREF(o);
}

// A strong reference that C++ state may copy and destroy without holding the GIL. Copies share
// one Python reference.
class PyRef {
 public:
  PyRef() = default;
  explicit PyRef(nb::handle h) : p_(h.inc_ref().ptr(), release_ref) {}
  nb::handle get() const { return p_.get(); }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  std::shared_ptr<PyObject> p_;
};

inline std::string py_type_name(nb::handle h) { return nb::str(nb::type_name(h.type())).c_str(); }

[[noreturn]] inline void type_error(const std::string& msg) { throw nb::type_error(msg.c_str()); }

/// An optional generator argument: null for None (the default generator).
inline Generator* as_generator(nb::handle g, const char* op) {
  if (g.is_none()) return nullptr;
  Generator* p = nullptr;
  if (!nb::try_cast(g, p) || !p)
    type_error(fmt::format("{}(): generator must be a tessera.Generator or None, got {}", op,
                           py_type_name(g)));
  return p;
}

// ---- reference cycles -----------------------------------------------------------------------
// A Python object that owns Python references through C++ state must show them to the cycle
// collector, or a cycle through it is never freed (e.g. a module-level dataset whose methods
// see the module globals, which hold its DataLoader: at exit nanobind then reports leaks).
// Each owned reference is visited exactly once, by its one owner, which holds it as an
// nb::object and has `int traverse(visitproc, void*) const`. The C++ plumbing under an owner
// (loader threads, a Subset's base, transform functions) only borrows what the owner keeps.

template <class T>
int tp_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(Py_TYPE(self));  // instances of heap types own a reference to their type
  if (!nb::inst_ready(self)) return 0;
  return nb::inst_ptr<T>(self)->traverse(visit, arg);
}

template <class T>
inline PyType_Slot gc_slots[] = {{Py_tp_traverse, reinterpret_cast<void*>(&tp_traverse<T>)},
                                 {0, nullptr}};

}  // namespace tessera::py::data_bind

namespace tessera::py {
/// PyTorch's default_collate over a batch (a sequence) of Python samples (data_collate.cpp).
nb::object default_collate(nb::handle batch);
/// Binds read_csv, write_csv, read_idx and read_image into m (data_readers.cpp).
void bind_readers(nb::module_& m);

/// Binds tessera.data.transforms into m (data_transforms.cpp).
void init_data_transforms(nb::module_& m);
/// A transform argument (a tessera transform or a callable tensor -> tensor) as a C++
/// function that borrows it: the caller keeps `t` alive as long as the function.
data::Transform as_transform(nb::handle t);
}  // namespace tessera::py
