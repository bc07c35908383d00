#pragma once
// Shared pieces of the Python bindings (tessera._C): argument conversions, the GIL policy and
// the init functions each binding file defines. Keep this header small: every binding file
// includes it.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/variant.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <variant>
#include <vector>

#include "tessera/tessera.h"

namespace nb = nanobind;

// Python numbers (bool, int, float, complex, and NumPy scalars on the conversion pass) as
// tessera::Scalar. Tensors are never taken as scalars, so (Tensor, Scalar) overloads stay
// unambiguous.
namespace nanobind::detail {
template <>
struct type_caster<tessera::Scalar> {
  NB_TYPE_CASTER(tessera::Scalar, const_name("bool | int | float | complex"))
  bool from_python(handle src, uint8_t flags, cleanup_list* cleanup) noexcept;
  static handle from_cpp(const tessera::Scalar& s, rv_policy, cleanup_list*) noexcept;
};
}  // namespace nanobind::detail

namespace tessera::py {

/// A `dim` argument: None (all dims), an int, or a sequence of ints.
using DimArg = std::optional<std::variant<int64_t, std::vector<int64_t>>>;
Dims to_dims(const DimArg& d);

/// Sizes given as varargs (`zeros(2, 3)`) or as one sequence (`zeros((2, 3))`).
Shape shape_from_args(const nb::args& args, const char* op);

/// Python data (nested sequences of numbers, a NumPy array or anything with the buffer or
/// DLPack protocol, a Tensor, a number) as a new tensor. dtype defaults like PyTorch: bool,
/// int64, float32 or complex64 for Python data, the array's own dtype for arrays.
Tensor tensor_from_data(nb::handle data, std::optional<DType> dtype);

/// Wraps an array-like object (buffer or DLPack protocol) without copying; the tensor keeps the
/// object alive. Layouts a tensor cannot share (negative strides) are copied when allow_copy,
/// else raise ValueError.
Tensor from_array(nb::handle array, const char* op, bool allow_copy = false);

/// Releases the GIL for the scope when the work is large enough to be worth the switch (a
/// release/re-acquire costs about 0.1 us, which the tiny-op budget cannot afford).
class ReleaseGilIfLarge {
 public:
  explicit ReleaseGilIfLarge(int64_t numel)
      : state_(numel >= kThreshold ? PyEval_SaveThread() : nullptr) {}
  ~ReleaseGilIfLarge() {
    if (state_) PyEval_RestoreThread(state_);
  }
  ReleaseGilIfLarge(const ReleaseGilIfLarge&) = delete;
  ReleaseGilIfLarge& operator=(const ReleaseGilIfLarge&) = delete;
  static constexpr int64_t kThreshold = 1 << 15;

 private:
  PyThreadState* state_;
};

// One per binding file; module.cpp calls them in order. The C++ submodules behind Python
// packages carry a leading underscore (_C._nn, ...): `from ._C import *` in tessera/__init__.py
// must not put them where the Python packages tessera.nn, ... belong.
void init_errors(nb::module_& m);
void init_dtype_device(nb::module_& m);
nb::class_<Tensor> init_tensor(nb::module_& m);
void init_interop(nb::module_& m, nb::class_<Tensor>& cls);
void init_ops(nb::module_& m, nb::class_<Tensor>& cls);  // module functions + Tensor methods
void init_autograd(nb::module_& m);  // grad modes, autograd.grad, custom functions, transforms
void init_nn(nb::module_& m);        // _C._nn: Module, layers, functional, init, losses
void init_optim(nb::module_& m);     // _C._optim: optimizers, LR schedulers, clipping
void init_data(nb::module_& m);      // _C._data: datasets, DataLoader, transforms, readers
void init_io(nb::module_& m);        // _C._io: safetensors, NPY/NPZ, checkpoints
void init_runtime(nb::module_& m);   // threads, scheduler switches, profiler, build facts
void init_cuda(nb::module_& m, nb::class_<Tensor>& cls);  // tessera.cuda, Tensor.record_stream
void init_amp(nb::module_& m);       // _C._amp: autocast state, policy, GradScaler

}  // namespace tessera::py
