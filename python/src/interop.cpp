// NumPy and DLPack: arrays in and out without copies where the layout allows.
//   tessera.from_numpy(a) / tessera.from_dlpack(x) / tessera.asarray(x)  share memory;
//   t.numpy(), np.asarray(t), t.__dlpack__()                               share memory.
// Sharing keeps the owner alive: a tensor made from an array holds a reference to it, and an
// array made from a tensor holds a copy of the tensor handle (and so its storage).
#include <nanobind/ndarray.h>

#include <fmt/format.h>

#include <cstring>

#include "bind.h"
#include "tessera/runtime/cuda.h"

namespace tessera::py {
namespace {

using nb::dlpack::dtype_code;

struct DTypeCode {
  DType dtype;
  dtype_code code;
  uint8_t bits;
};
// The dtypes both sides know; bfloat16 exists in DLPack but not in NumPy.
constexpr DTypeCode kCodes[] = {
    {kBool, dtype_code::Bool, 8},        {kUInt8, dtype_code::UInt, 8},
    {kInt8, dtype_code::Int, 8},         {kInt16, dtype_code::Int, 16},
    {kInt32, dtype_code::Int, 32},       {kInt64, dtype_code::Int, 64},
    {kFloat16, dtype_code::Float, 16},   {kBFloat16, dtype_code::Bfloat, 16},
    {kFloat32, dtype_code::Float, 32},   {kFloat64, dtype_code::Float, 64},
    {kComplex64, dtype_code::Complex, 64}};

std::string describe(nb::dlpack::dtype d) {
  static const char* kNames[] = {"int", "uint", "float", "opaque", "bfloat", "complex", "bool"};
  const char* name = d.code < 7 ? kNames[d.code] : "extended";
  return fmt::format("{}{}", name, d.bits);
}

DType from_dl(nb::dlpack::dtype d, const char* op) {
  for (const auto& c : kCodes)
    if (static_cast<uint8_t>(c.code) == d.code && c.bits == d.bits && d.lanes == 1) return c.dtype;
  fail<DTypeError>(op, "unsupported array dtype {} (supported: bool, uint8, int8, int16, int32, "
                   "int64, float16, bfloat16, float32, float64, complex64)",
                   describe(d));
}

nb::dlpack::dtype to_dl(DType t) {
  for (const auto& c : kCodes)
    if (c.dtype == t) return {static_cast<uint8_t>(c.code), c.bits, 1};
  fail<DTypeError>("to_dlpack", "no DLPack code for dtype {}", dtype_name(t));
}

// Keeps a Python object alive until the tensor's storage is freed (on any thread).
std::function<void(void*)> keep_alive(nb::handle owner) {
  owner.inc_ref();
  PyObject* o = owner.ptr();
  return [o](void*) {
    if (!Py_IsInitialized()) return;  // interpreter already gone at exit
    nb::gil_scoped_acquire gil;
    Py_DECREF(o);
  };
}

// Copies an array with any (also negative) byte strides into a new contiguous tensor.
Tensor copy_strided(const char* data, const Shape& shape, const Strides& byte_strides, DType dt) {
  Tensor out = Tensor::empty(shape, dt);
  auto* dst = static_cast<char*>(out.raw_data());
  const size_t item = itemsize(dt);
  const int64_t n = out.numel();
  std::vector<int64_t> pos(shape.size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    const char* src = data;
    for (size_t d = 0; d < shape.size(); ++d) src += pos[d] * byte_strides[d];
    std::memcpy(dst + static_cast<size_t>(i) * item, src, item);
    for (size_t d = shape.size(); d-- > 0;) {
      if (++pos[d] < shape[d]) break;
      pos[d] = 0;
    }
  }
  return out;
}

// The tensor device of a DLPack device (CPU and CUDA; others are refused).
Device device_of(const nb::ndarray<nb::ro>& a, const char* op) {
  if (a.device_type() == nb::device::cpu::value) return Device::cpu();
  if (a.device_type() == nb::device::cuda::value) return Device::cuda(a.device_id());
  fail<DeviceError>(op, "arrays on DLPack device type {} are not supported (CPU and CUDA are)",
                    a.device_type());
}

Tensor wrap(const nb::ndarray<nb::ro>& a, nb::handle keep, const char* op, bool allow_copy) {
  const Device device = device_of(a, op);
  const DType dt = from_dl(a.dtype(), op);
  Shape shape(a.ndim());
  Strides strides(a.ndim());
  bool negative = false;
  for (size_t i = 0; i < a.ndim(); ++i) {
    shape[i] = static_cast<int64_t>(a.shape(i));
    strides[i] = a.stride(i);
    negative = negative || strides[i] < 0;
  }
  auto* data = const_cast<void*>(a.data());
  if (negative) {  // a reversed NumPy view: tensor strides are never negative
    if (!allow_copy || !device.is_cpu())
      fail<ValueError>(op, "the array has negative strides, which a tensor cannot share (copy "
                       "the array first, or use tessera.tensor)");
    Strides bytes(strides);
    for (auto& b : bytes) b *= static_cast<int64_t>(itemsize(dt));
    return copy_strided(static_cast<const char*>(data), shape, bytes, dt);
  }
  return from_blob(data, std::move(shape), dt, std::move(strides), keep_alive(keep), device);
}

Tensor import_array(nb::handle obj, const char* op, bool allow_copy = false) {
  nb::ndarray<nb::ro> a;
  if (!nb::try_cast(obj, a)) {
    // Give the exact reason for NumPy arrays of dtypes DLPack cannot carry.
    nb::object dt = nb::getattr(obj, "dtype", nb::none());
    if (!dt.is_none())
      fail<DTypeError>(op, "unsupported array dtype {} (supported: bool, uint8, int8, int16, "
                       "int32, int64, float16, bfloat16, float32, float64, complex64)",
                       nb::str(dt).c_str());
    throw nb::type_error(fmt::format("{}(): expected an array (buffer or DLPack protocol), got {}",
                                     op, nb::str(nb::type_name(obj.type())).c_str())
                             .c_str());
  }
  return wrap(a, obj, op, allow_copy);
}

// A view of the tensor's memory for NumPy/DLPack; the capsule owns a copy of the handle.
template <class Framework>
nb::ndarray<Framework> export_view(const Tensor& t, const char* op, bool allow_cuda = false) {
  if (!t.device().is_cpu() && !(allow_cuda && t.device().is_cuda()))
    fail<DeviceError>(op, "the tensor is on {}; copy it to the CPU first (.cpu())",
                      t.device().str());
  auto* keep = new Tensor(t);
  nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  std::vector<size_t> shape(t.shape().begin(), t.shape().end());
  const bool cuda = t.device().is_cuda();
  return nb::ndarray<Framework>(t.raw_data(), shape.size(), shape.data(), owner,
                                t.strides().data(), to_dl(t.dtype()),
                                cuda ? nb::device::cuda::value : nb::device::cpu::value,
                                cuda ? t.device().index : 0);
}

nb::object to_numpy(const Tensor& t, bool force) {
  if (t.requires_grad() && !force)
    fail<ValueError>("numpy", "the tensor requires grad; use t.detach().numpy()");
  if (t.dtype() == kBFloat16)
    fail<DTypeError>("numpy", "NumPy has no bfloat16; convert first (t.float().numpy())");
  Tensor src = force ? t.detach().to(Device::cpu()) : t;
  return nb::cast(export_view<nb::numpy>(src, "numpy"));
}

}  // namespace

Tensor from_array(nb::handle array, const char* op, bool allow_copy) {
  return import_array(array, op, allow_copy);
}

void init_interop(nb::module_& m, nb::class_<Tensor>& cls) {
  m.def("from_numpy",
        [](nb::handle a) {
          if (!nb::hasattr(a, "__array_interface__"))
            throw nb::type_error("from_numpy(): expected a numpy.ndarray");
          return import_array(a, "from_numpy");
        },
        nb::arg("ndarray"),
        "A tensor sharing memory with a NumPy array (writes through one are seen through the "
        "other); the tensor keeps the array alive.");
  m.def("from_dlpack", [](nb::handle x) { return import_array(x, "from_dlpack"); },
        nb::arg("ext_tensor"),
        "A tensor sharing memory with any object that implements __dlpack__ (NumPy, PyTorch, "
        "JAX, ...).");
  m.def("asarray",
        [](nb::handle x, std::optional<DType> dtype) {
          const bool array = PyObject_CheckBuffer(x.ptr()) || nb::hasattr(x, "__dlpack__");
          Tensor t = nb::isinstance<Tensor>(x) ? nb::cast<Tensor>(x)
                     : array                   ? import_array(x, "asarray", /*allow_copy=*/true)
                                               : tensor_from_data(x, std::nullopt);
          return dtype ? t.to(*dtype) : t;
        },
        nb::arg("obj"), nb::kw_only(), nb::arg("dtype") = nb::none(),
        "Like tensor(), but shares memory with arrays and tensors when the dtype matches.");

  cls.def("numpy", &to_numpy, nb::kw_only(), nb::arg("force") = false,
           "A NumPy array sharing memory with this CPU tensor (force=True detaches and copies "
           "to the CPU first).")
      .def("__array__",
           [](const Tensor& t, nb::handle dtype, nb::handle /*copy*/) {
             nb::object a = to_numpy(t, false);
             return dtype.is_none() ? a : a.attr("astype")(dtype);
           },
           nb::arg("dtype") = nb::none(), nb::arg("copy") = nb::none())
      .def("__dlpack__",
           [](const Tensor& t, nb::kwargs kwargs) {
             nb::object view =
                 nb::cast(export_view<nb::array_api>(t.detach(), "__dlpack__", true));
             // The consumer's stream: finishing our queued work first orders it before any
             // use there (a device-wide sync; exact per-stream events are left for later).
             kwargs.attr("pop")("stream", nb::none());
             if (t.device().is_cuda()) {
               nb::gil_scoped_release release;
               cuda::synchronize(t.device().index);
             }
             return view.attr("__dlpack__")(**kwargs);
           },
           "A DLPack capsule sharing this tensor's memory.")
      .def("__dlpack_device__", [](const Tensor& t) {
        return t.device().is_cuda() ? nb::make_tuple(2, t.device().index) : nb::make_tuple(1, 0);
      });
}

}  // namespace tessera::py
