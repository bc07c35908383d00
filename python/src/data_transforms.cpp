// tessera.data.transforms: the C++ transforms (tessera::data::Transform) as Python classes
// with torchvision's names; Compose also takes Python callables.
#include <fmt/ranges.h>

#include <utility>
#include <variant>

#include "data_common.h"

namespace tessera::py {
namespace {

using namespace data_bind;

// A transform as a Python object. `refs` owns what the function borrows: a generator, the
// transforms of a Compose.
struct TransformFn {
  data::Transform fn;
  std::string repr;
  std::vector<nb::object> refs;

  int traverse(visitproc visit, void* arg) const {
    for (const nb::object& r : refs) Py_VISIT(r.ptr());
    return 0;
  }
};
// The public classes (torchvision's names); each only adds a constructor.
struct NormalizeFn : TransformFn {};
struct ToTensorFn : TransformFn {};
struct RandomCropFn : TransformFn {};
struct RandomHorizontalFlipFn : TransformFn {};
struct ComposeFn : TransformFn {};

std::vector<nb::object> owning(nb::handle generator) {
  if (generator.is_none()) return {};
  return {nb::borrow(generator)};
}

std::vector<double> per_channel(const std::variant<double, std::vector<double>>& v) {
  if (const double* d = std::get_if<double>(&v)) return {*d};
  return std::get<std::vector<double>>(v);
}

std::vector<int64_t> crop_size(const std::variant<int64_t, std::vector<int64_t>>& v) {
  if (const int64_t* s = std::get_if<int64_t>(&v)) return {*s, *s};
  return std::get<std::vector<int64_t>>(v);
}

void init_normalize(NormalizeFn* self, const std::variant<double, std::vector<double>>& mean,
                    const std::variant<double, std::vector<double>>& stdev) {
  auto mu = per_channel(mean), sd = per_channel(stdev);
  auto repr =
      fmt::format("Normalize(mean=[{}], std=[{}])", fmt::join(mu, ", "), fmt::join(sd, ", "));
  new (self) NormalizeFn{{data::normalize(std::move(mu), std::move(sd)), std::move(repr), {}}};
}

void init_random_crop(RandomCropFn* self, const std::variant<int64_t, std::vector<int64_t>>& size,
                      int64_t padding, nb::handle generator) {
  auto s = crop_size(size);
  auto repr = fmt::format("RandomCrop(size=({}), padding={})", fmt::join(s, ", "), padding);
  auto fn = data::random_crop(std::move(s), padding, as_generator(generator, "RandomCrop"));
  new (self) RandomCropFn{{std::move(fn), std::move(repr), owning(generator)}};
}

void init_flip(RandomHorizontalFlipFn* self, double p, nb::handle generator) {
  auto fn = data::random_horizontal_flip(p, as_generator(generator, "RandomHorizontalFlip"));
  new (self) RandomHorizontalFlipFn{
      {std::move(fn), fmt::format("RandomHorizontalFlip(p={})", p), owning(generator)}};
}

void init_compose(ComposeFn* self, nb::handle transforms) {
  nb::list list;  // owns the transforms the composed function borrows
  std::vector<data::Transform> fns;
  std::string repr = "Compose(";
  for (nb::handle t : nb::iter(transforms)) {
    list.append(t);
    fns.push_back(as_transform(t));
    repr += fmt::format("\n    {}", nb::repr(t).c_str());
  }
  new (self) ComposeFn{{data::Compose(std::move(fns)), repr + "\n)", {list}}};
}

}  // namespace

data::Transform as_transform(nb::handle t) {
  if (nb::isinstance<TransformFn>(t)) return nb::cast<const TransformFn&>(t).fn;
  if (!PyCallable_Check(t.ptr()))
    type_error("transform must be a tessera transform or a callable, got " + py_type_name(t));
  return [f = t.ptr()](const Tensor& x) {
    LoaderGil gil;
    return nb::cast<Tensor>(nb::handle(f)(x));
  };
}

void init_data_transforms(nb::module_& m) {
  nb::class_<TransformFn>(m, "Transform",
                          "Base of the tensor transforms: call it on a tensor to get a tensor.",
                          nb::type_slots(gc_slots<TransformFn>))
      .def(
          "__call__",
          [](const TransformFn& t, const Tensor& x) {
            ReleaseGilIfLarge gil(x.numel());
            return t.fn(x);
          },
          nb::arg("tensor"), "Applies the transform.")
      .def("__repr__", [](const TransformFn& t) { return t.repr; });

  nb::class_<NormalizeFn, TransformFn>(
      m, "Normalize",
      "(x - mean[c]) / std[c] per channel of a floating (..., C, H, W) tensor; one value applies "
      "to every channel.",
      nb::type_slots(gc_slots<TransformFn>))
      .def("__init__", &init_normalize, nb::arg("mean"), nb::arg("std"));
  nb::class_<ToTensorFn, TransformFn>(
      m, "ToTensor",
      "A uint8 image (H, W, C) or (H, W) -> float32 (C, H, W) with values in [0, 1].",
      nb::type_slots(gc_slots<TransformFn>))
      .def("__init__", [](ToTensorFn* self) {
        new (self) ToTensorFn{{data::to_tensor(), "ToTensor()", {}}};
      });
  nb::class_<RandomCropFn, TransformFn>(
      m, "RandomCrop",
      "Pads the last two dims by `padding` zeros on each side, then crops a random (h, w) window "
      "(size: an int for a square).",
      nb::type_slots(gc_slots<TransformFn>))
      .def("__init__", &init_random_crop, nb::arg("size"), nb::arg("padding") = 0, nb::kw_only(),
           nb::arg("generator") = nb::none());
  nb::class_<RandomHorizontalFlipFn, TransformFn>(m, "RandomHorizontalFlip",
                                                  "Flips the last dim (width) with probability p.",
                                                  nb::type_slots(gc_slots<TransformFn>))
      .def("__init__", &init_flip, nb::arg("p") = 0.5, nb::kw_only(),
           nb::arg("generator") = nb::none());
  nb::class_<ComposeFn, TransformFn>(
      m, "Compose",
      "Applies its transforms in order (tessera transforms or any callables tensor -> tensor).",
      nb::type_slots(gc_slots<TransformFn>))
      .def("__init__", &init_compose, nb::arg("transforms"))
      .def_prop_ro(
          "transforms", [](const ComposeFn& c) { return c.refs[0]; }, "The transforms, in order.");
}

}  // namespace tessera::py
