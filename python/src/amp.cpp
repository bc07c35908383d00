// tessera._C._amp: the autocast state (per thread and device type) that tessera.autocast sets and
// restores, the policy table, and the GradScaler that tessera.amp.GradScaler derives from.
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;

DeviceType device_type(const std::string& name) {
  if (name == "cpu") return DeviceType::CPU;
  if (name == "cuda") return DeviceType::CUDA;
  fail<ValueError>("autocast", "device_type must be 'cpu' or 'cuda', got '{}'", name);
}

void def_state(nb::module_& a) {
  a.def(
      "get_state",
      [](const std::string& dev) {
        const amp::AutocastState s = amp::autocast_state(device_type(dev));
        return std::make_tuple(s.enabled, s.dtype, s.cache_enabled);
      },
      "device_type"_a,
      "(enabled, dtype, cache_enabled) of the device type's autocast on this thread.");
  a.def(
      "set_state",
      [](const std::string& dev, bool enabled, DType dtype, bool cache_enabled) {
        amp::set_autocast_state(device_type(dev), {enabled, dtype, cache_enabled});
      },
      "device_type"_a, "enabled"_a, "dtype"_a, "cache_enabled"_a = true,
      "Sets the device type's autocast on this thread (dtype: float16 or bfloat16).");
  a.def("increment_nesting", &amp::autocast_increment_nesting,
        "Opens an autocast region on this thread (the cast cache lives while one is open).");
  a.def("decrement_nesting", &amp::autocast_decrement_nesting,
        "Closes one; the cast cache is cleared when the last closes. Returns the depth left.");
  a.def("clear_cache", &amp::clear_autocast_cache, "Drops this thread's cached casts.");
  a.def("cache_size", &amp::autocast_cache_size, "How many casts this thread's cache holds.");
  a.def(
      "policy",
      [](const std::string& primitive) {
        return std::string(amp::policy_name(amp::cast_policy(primitive)));
      },
      "primitive"_a,
      "What autocast does to a primitive's floating inputs: 'lower', 'float32', 'promote' or "
      "'keep'.");
}

void def_grad_scaler(nb::module_& a) {
  using optim::GradScaler;
  nb::class_<GradScaler>(a, "GradScaler",
                         "Loss scaling for mixed precision (the C++ optim::GradScaler).")
      .def(
          "__init__",
          [](GradScaler* self, double init_scale, double growth_factor, double backoff_factor,
             int64_t growth_interval, bool enabled) {
            new (self)
                GradScaler({init_scale, growth_factor, backoff_factor, growth_interval, enabled});
          },
          "init_scale"_a = 65536.0, "growth_factor"_a = 2.0, "backoff_factor"_a = 0.5,
          "growth_interval"_a = 2000, "enabled"_a = true)
      .def(
          "_scale_tensor", [](GradScaler& s, const Tensor& t) { return s.scale(t); }, "loss"_a)
      .def(
          "unscale_",
          [](GradScaler& s, optim::Optimizer& opt) {
            nb::gil_scoped_release release;
            s.unscale_(opt);
          },
          "optimizer"_a,
          "Divides the optimizer's gradients by the scale in place and checks them for inf/NaN "
          "(once per optimizer between update()s).")
      .def(
          "_step",
          [](GradScaler& s, optim::Optimizer& opt) {
            nb::gil_scoped_release release;
            return s.step(opt);
          },
          "optimizer"_a)
      .def(
          "update",
          [](GradScaler& s, std::optional<double> new_scale) {
            nb::gil_scoped_release release;
            s.update(new_scale);
          },
          "new_scale"_a = nb::none(),
          "Adapts the scale (backoff after an inf/NaN, growth after growth_interval clean "
          "steps), or sets it to new_scale.")
      .def("get_scale", &GradScaler::get_scale, "The current scale (1.0 when disabled).")
      .def("get_growth_factor", &GradScaler::get_growth_factor)
      .def("set_growth_factor", &GradScaler::set_growth_factor, "new_factor"_a)
      .def("get_backoff_factor", &GradScaler::get_backoff_factor)
      .def("set_backoff_factor", &GradScaler::set_backoff_factor, "new_factor"_a)
      .def("get_growth_interval", &GradScaler::get_growth_interval)
      .def("set_growth_interval", &GradScaler::set_growth_interval, "new_interval"_a)
      .def("_get_growth_tracker", &GradScaler::growth_tracker)
      .def("is_enabled", &GradScaler::is_enabled)
      .def("_state_dict_tensors",
           [](const GradScaler& s) { return state_dict_to_python(s.state_dict()); })
      .def(
          "_load_state_dict_tensors",
          [](GradScaler& s, nb::handle sd) {
            s.load_state_dict(state_dict_from(sd, "GradScaler.load_state_dict"));
          },
          "state_dict"_a);
}

}  // namespace

void init_amp(nb::module_& m) {
  nb::module_ a = m.def_submodule("_amp", "Autocast state and gradient scaling.");
  def_state(a);
  def_grad_scaler(a);
}

}  // namespace tessera::py
