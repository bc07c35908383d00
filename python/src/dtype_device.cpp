// dtypes and devices as Python objects: tessera.float32, tessera.device("cpu").
#include <fmt/format.h>

#include "bind.h"

namespace tessera::py {

void init_dtype_device(nb::module_& m) {
  auto dt = nb::enum_<DType>(m, "dtype", "An element type (tessera.float32, tessera.int64, ...).");
  for (int i = 0; i < kNumDTypes; ++i) {
    auto t = static_cast<DType>(i);
    dt.value(std::string(dtype_name(t)).c_str(), t);
  }
  dt.def_prop_ro("is_floating_point", [](DType t) { return is_floating(t); },
                 "True for float16, bfloat16, float32 and float64.")
      .def_prop_ro("is_complex", [](DType t) { return is_complex(t); })
      .def_prop_ro("is_signed", [](DType t) {
        return t != kBool && t != kUInt8;
      })
      .def_prop_ro("itemsize", [](DType t) { return itemsize(t); }, "Bytes per element.")
      .def("__repr__", [](DType t) { return fmt::format("tessera.{}", dtype_name(t)); })
      .def("__str__", [](DType t) { return fmt::format("tessera.{}", dtype_name(t)); });
  m.def("promote_types", &promote_types, nb::arg("type1"), nb::arg("type2"),
        "The dtype a binary op on these two dtypes gives (PyTorch's promotion table).");

  nb::class_<Device>(m, "device", "Where a tensor lives: 'cpu', 'cuda:N' or 'auto'.")
      .def("__init__", [](Device* d, const std::string& s) { new (d) Device(Device::parse(s)); },
           nb::arg("type"))
      .def("__init__",
           [](Device* d, const std::string& type, int index) {
             new (d) Device(Device::parse(fmt::format("{}:{}", type, index)));
           },
           nb::arg("type"), nb::arg("index"))
      .def_prop_ro("type", [](const Device& d) {
        return d.is_cpu() ? "cpu" : d.is_cuda() ? "cuda" : "auto";
      })
      .def_prop_ro("index", [](const Device& d) -> std::optional<int> {
        if (d.is_cuda()) return d.index;
        return std::nullopt;
      })
      .def("__repr__", [](const Device& d) { return fmt::format("device('{}')", d.str()); })
      .def("__str__", &Device::str)
      .def("__eq__", [](const Device& a, const Device& b) { return a == b; })
      .def("__eq__", [](const Device& a, const std::string& b) { return a == Device::parse(b); })
      .def("__hash__", [](const Device& d) { return static_cast<int>(d.type) * 1024 + d.index; });
  nb::implicitly_convertible<std::string, Device>();
}

}  // namespace tessera::py
