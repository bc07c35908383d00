// tessera.nn: the Module class (subclassable from Python, with PyTorch's automatic registration
// of parameters, buffers and children through attribute assignment). Containers, layers,
// functional, init and losses are bound in nn_containers.cpp, nn_layers.cpp, nn_sequence.cpp,
// nn_functional.cpp and nn_losses.cpp.
#include <fmt/format.h>
#include <nanobind/trampoline.h>

#include <set>

#include "nn_bind.h"

namespace tessera::py {
namespace {

using nn::Module;
using nn::ModulePtr;

// A Python class deriving from tessera.nn.Module: C++ callers (Sequential, str(),
// reset_parameters) reach its Python overrides. The overrides take the GIL (nanobind's ticket).
class PythonModule final : public Module {
 public:
  NB_TRAMPOLINE(Module);
  Tensor forward(const Tensor& x) override {
    nb::detail::ticket t(nb_trampoline, "forward", nb::detail::str_hash("forward"), false);
    if (!t.key.is_valid()) return Module::forward(x);
    nb::object r = nb_trampoline.base().attr(t.key)(x);
    if (!nb::isinstance<Tensor>(r))
      throw nb::type_error(fmt::format("{}.forward returned a {}; a module called by a C++ "
                                       "container (Sequential, ...) must return one Tensor",
                                       python_name(), nb::type_name(r.type()).c_str())
                               .c_str());
    return nb::cast<Tensor>(r);
  }
  std::string extra_repr() const override { NB_OVERRIDE(extra_repr); }
  void reset_parameters() override { NB_OVERRIDE(reset_parameters); }
  // The Python class name unless Python overrides type_name itself.
  std::string type_name() const override {
    nb::detail::ticket t(nb_trampoline, "type_name", nb::detail::str_hash("type_name"), false);
    if (t.key.is_valid()) return nb::cast<std::string>(nb_trampoline.base().attr(t.key)());
    nb::gil_scoped_acquire gil;
    return python_name();
  }
  std::string python_name() const {
    return nb::cast<std::string>(nb_trampoline.base().type().attr("__name__"));
  }
};

PythonModule* as_python_module(Module& m) { return dynamic_cast<PythonModule*>(&m); }

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

nb::object self_of(nb::handle self) { return nb::borrow(self); }

// ---- registries seen from Python ------------------------------------------------------------

enum class Kind { None, Parameter, Buffer, Module };

Kind registered_kind(const Module& m, const std::string& name) {
  for (const auto& e : m.named_parameters(false))
    if (e.first == name) return Kind::Parameter;
  for (const auto& e : m.named_buffers(false))
    if (e.first == name) return Kind::Buffer;
  for (const auto& e : m.named_children())
    if (e.first == name) return Kind::Module;
  return Kind::None;
}

const char* kind_name(Kind k) {
  return k == Kind::Parameter ? "parameter" : k == Kind::Buffer ? "buffer" : "module";
}

void drop_from_dict(nb::handle self, const std::string& name) {
  nb::object d = nb::steal(PyObject_GenericGetDict(self.ptr(), nullptr));
  if (!d.is_valid()) throw nb::python_error();
  if (PyDict_GetItemString(d.ptr(), name.c_str()) != nullptr &&
      PyDict_DelItemString(d.ptr(), name.c_str()) != 0)
    throw nb::python_error();
}

void set_in_dict(nb::handle self, const std::string& name, nb::handle value) {
  nb::object d = nb::steal(PyObject_GenericGetDict(self.ptr(), nullptr));
  if (!d.is_valid() || PyDict_SetItemString(d.ptr(), name.c_str(), value.ptr()) != 0)
    throw nb::python_error();
}

constexpr const char* kNonPersistent = "_non_persistent_buffers_set";

bool is_persistent(nb::handle self, const std::string& name) {
  nb::object d = nb::steal(PyObject_GenericGetDict(self.ptr(), nullptr));
  if (!d.is_valid()) throw nb::python_error();
  PyObject* set = PyDict_GetItemString(d.ptr(), kNonPersistent);
  return set == nullptr || PySet_Contains(set, nb::str(name.c_str()).ptr()) != 1;
}

void mark_persistence(nb::handle self, const std::string& name, bool persistent) {
  nb::object d = nb::steal(PyObject_GenericGetDict(self.ptr(), nullptr));
  if (!d.is_valid()) throw nb::python_error();
  PyObject* set = PyDict_GetItemString(d.ptr(), kNonPersistent);
  if (set == nullptr) {
    if (persistent) return;
    nb::object fresh = nb::steal(PySet_New(nullptr));
    if (!fresh.is_valid() || PyDict_SetItemString(d.ptr(), kNonPersistent, fresh.ptr()) != 0)
      throw nb::python_error();
    set = fresh.ptr();  // the dict holds it now
  }
  nb::str key(name.c_str());
  if (persistent ? PySet_Discard(set, key.ptr()) < 0 : PySet_Add(set, key.ptr()) < 0)
    throw nb::python_error();
}

// A class attribute that is not an instance-level registry entry (a method, a property): PyTorch
// refuses to register a parameter, buffer or module under such a name.
void check_not_class_attr(nb::handle self, const std::string& name, const char* what) {
  if (_PyType_Lookup(reinterpret_cast<PyTypeObject*>(self.type().ptr()),
                     nb::str(name.c_str()).ptr()) != nullptr)
    throw nb::key_error(fmt::format("register_{}: attribute '{}' already exists on {}", what, name,
                                    nb::type_name(self.type()).c_str())
                            .c_str());
}

// A property or other data descriptor on the class (they take assignments themselves).
bool is_data_descriptor(nb::handle type, nb::handle name) {
  PyObject* d = _PyType_Lookup(reinterpret_cast<PyTypeObject*>(type.ptr()), name.ptr());
  return d != nullptr && Py_TYPE(d)->tp_descr_set != nullptr;
}

// A layer's own tensor attribute (Linear.weight): assigning through its property re-registers
// the tensor and updates the layer's member.
bool set_through_property(nb::handle self, const std::string& name, nb::handle value) {
  nb::str key(name.c_str());
  if (!is_data_descriptor(self.type(), key)) return false;
  if (PyObject_GenericSetAttr(self.ptr(), key.ptr(), value.ptr()) != 0) throw nb::python_error();
  return true;
}

void register_parameter(nb::handle self, const std::string& name, std::optional<Tensor> t) {
  if (set_through_property(self, name, t ? nb::cast(*t) : nb::none())) return;
  check_not_class_attr(self, name, "parameter");
  Module& m = nb::cast<Module&>(self);
  drop_from_dict(self, name);
  m.register_parameter(name, opt(t), t ? t->requires_grad() : true);
  if (!t) set_in_dict(self, name, nb::none());  // like PyTorch: the attribute reads None
}

void register_buffer(nb::handle self, const std::string& name, std::optional<Tensor> t,
                     bool persistent) {
  if (set_through_property(self, name, t ? nb::cast(*t) : nb::none())) return;
  check_not_class_attr(self, name, "buffer");
  Module& m = nb::cast<Module&>(self);
  drop_from_dict(self, name);
  m.register_buffer(name, opt(t), persistent);
  mark_persistence(self, name, persistent);
  if (!t) set_in_dict(self, name, nb::none());
}

void register_module(nb::handle self, const std::string& name, nb::handle module) {
  check_not_class_attr(self, name, "module");
  Module& m = nb::cast<Module&>(self);
  ModulePtr child = as_module(module, "register_module", 2);
  drop_from_dict(self, name);
  m.register_module(name, std::move(child));
}

// ---- attribute protocol -----------------------------------------------------------------------

void generic_setattr(nb::handle self, nb::handle name, PyObject* value) {
  if (PyObject_GenericSetAttr(self.ptr(), name.ptr(), value) != 0) throw nb::python_error();
}

[[noreturn]] void before_init(nb::handle self) {
  throw nb::attribute_error(
      fmt::format("cannot assign parameters or modules to a {} before Module.__init__() is "
                  "called (call super().__init__() first)",
                  nb::type_name(self.type()).c_str())
          .c_str());
}

// Tensors that are leaves and require grad become parameters, modules become children, a tensor
// assigned to a buffer's name replaces the buffer; anything else is a plain attribute.
void module_setattr(nb::handle self, nb::str name, nb::handle value) {
  if (is_data_descriptor(self.type(), name)) return generic_setattr(self, name, value.ptr());
  const bool is_module = nb::isinstance<Module>(value);
  const bool is_tensor = nb::isinstance<Tensor>(value);
  const bool is_param = is_tensor && nb::cast<const Tensor&>(value).is_leaf() &&
                        nb::cast<const Tensor&>(value).requires_grad();
  if (!nb::inst_ready(self)) {
    if (is_module || is_param) before_init(self);
    return generic_setattr(self, name, value.ptr());
  }
  Module& m = nb::cast<Module&>(self);
  const std::string n = nb::cast<std::string>(name);
  const Kind kind = registered_kind(m, n);
  if (is_module) {
    drop_from_dict(self, n);
    m.register_module(n, nb::cast<ModulePtr>(value));
    return;
  }
  if (is_tensor && kind == Kind::Buffer) {
    m.register_buffer(n, nb::cast<Tensor>(value), is_persistent(self, n));
    return;
  }
  if (is_param) {
    drop_from_dict(self, n);
    m.register_parameter(n, nb::cast<Tensor>(value), true);
    return;
  }
  if (value.is_none() && (kind == Kind::Parameter || kind == Kind::Buffer)) {
    if (kind == Kind::Parameter)
      m.register_parameter(n, Tensor());
    else
      m.register_buffer(n, Tensor());
    set_in_dict(self, n, value);
    return;
  }
  if (kind != Kind::None)
    throw nb::type_error(
        fmt::format("cannot assign a {} to {} '{}' of {} (expected {})",
                    nb::type_name(value.type()).c_str(), kind_name(kind), n,
                    nb::type_name(self.type()).c_str(),
                    kind == Kind::Parameter ? "a tensor that requires grad (tessera.nn.Parameter) "
                                              "or None"
                    : kind == Kind::Buffer  ? "a tensor or None"
                                            : "a Module (children can be replaced, not removed)")
            .c_str());
  generic_setattr(self, name, value.ptr());
}

// Called only when normal lookup fails: registered parameters, buffers and children by name.
nb::object module_getattr(nb::handle self, const std::string& name) {
  if (nb::inst_ready(self)) {
    const Module& m = nb::cast<const Module&>(self);
    for (const auto& [n, t] : m.named_parameters(false))
      if (n == name) return nb::cast(t);
    for (const auto& [n, t] : m.named_buffers(false))
      if (n == name) return nb::cast(t);
    for (const auto& [n, c] : m.named_children())
      if (n == name) return nb::cast(c);
  }
  throw nb::attribute_error(
      fmt::format("'{}' object has no attribute '{}'", nb::type_name(self.type()).c_str(), name)
          .c_str());
}

void module_delattr(nb::handle self, nb::str name) {
  if (nb::inst_ready(self)) {
    Module& m = nb::cast<Module&>(self);
    const std::string n = nb::cast<std::string>(name);
    switch (registered_kind(m, n)) {
      case Kind::Parameter:
        m.register_parameter(n, Tensor());
        return;
      case Kind::Buffer:
        m.register_buffer(n, Tensor());
        return;
      case Kind::Module:
        throw nb::type_error(
            fmt::format("can't delete child module '{}': tessera modules cannot unregister "
                        "children (replace it, e.g. with nn.Identity())",
                        n)
                .c_str());
      case Kind::None:
        break;
    }
  }
  generic_setattr(self, name, nullptr);
}

nb::list module_dir(nb::handle self) {
  nb::list names =
      nb::borrow<nb::list>(nb::module_::import_("builtins").attr("object").attr("__dir__")(self));
  if (nb::inst_ready(self)) {
    const Module& m = nb::cast<const Module&>(self);
    for (const auto& e : m.named_parameters(false)) names.append(e.first);
    for (const auto& e : m.named_buffers(false)) names.append(e.first);
    for (const auto& e : m.named_children()) names.append(e.first);
  }
  return nb::borrow<nb::list>(nb::module_::import_("builtins").attr("sorted")(nb::set(names)));
}

// ---- traversal and state ------------------------------------------------------------------------

nb::iterator iter_of(nb::handle l) { return nb::iter(l); }

template <class T>
nb::iterator named(const nn::Named<T>& items, const std::string& prefix) {
  nb::list out;
  for (const auto& [n, x] : items) out.append(nb::make_tuple(join(prefix, n), x));
  return iter_of(out);
}

nb::iterator named_modules(const ModulePtr& self, const std::string& prefix,
                           bool remove_duplicate) {
  std::set<const Module*> seen;
  nb::list out;
  for (const auto& [n, m] : self->named_modules(prefix))
    if (!remove_duplicate || seen.insert(m.get()).second) out.append(nb::make_tuple(n, m));
  return iter_of(out);
}

// The registered parameter or buffer itself (not detached) at a dotted path.
Tensor registered_tensor(const Module& m, const std::string& path) {
  const auto dot = path.rfind('.');
  ModulePtr owner_ptr = dot == std::string::npos ? nullptr : m.get_submodule(path.substr(0, dot));
  const Module& owner = owner_ptr ? *owner_ptr : m;
  const std::string leaf = dot == std::string::npos ? path : path.substr(dot + 1);
  for (const auto& [n, t] : owner.named_parameters(false))
    if (n == leaf) return t;
  return owner.get_buffer(leaf);
}

// PyTorch's state_dict order: each module's parameters, then its buffers, then its children.
void state_order(const Module& m, const std::string& prefix, std::vector<std::string>& keys) {
  for (const auto& e : m.named_parameters(false)) keys.push_back(join(prefix, e.first));
  for (const auto& e : m.named_buffers(false)) keys.push_back(join(prefix, e.first));
  for (const auto& [n, c] : m.named_children()) state_order(*c, join(prefix, n), keys);
}

nb::dict state_dict(const Module& m, const std::string& prefix, bool keep_vars) {
  StateDict sd = m.state_dict();
  std::vector<std::string> keys;
  state_order(m, "", keys);
  nb::dict out;
  auto put = [&](const std::string& k) {
    auto it = sd.find(k);
    if (it == sd.end()) return;
    out[nb::str((prefix + k).c_str())] = keep_vars ? registered_tensor(m, k) : it->second;
    sd.erase(it);
  };
  for (const auto& k : keys) put(k);
  while (!sd.empty()) put(sd.begin()->first);
  return out;
}

nb::object incompatible_keys(const nn::LoadStateDictReport& r) {
  // Leaked on purpose: a static nb::object would be released after the interpreter is gone.
  static nb::handle type =
      nb::module_::import_("collections")
          .attr("namedtuple")("IncompatibleKeys", nb::make_tuple("missing_keys", "unexpected_keys"))
          .release();
  return type(r.missing_keys, r.unexpected_keys);
}

// PyTorch's apply: children first (recursively, through Python so overrides are seen), then self.
nb::object apply(nb::handle self, nb::handle fn) {
  for (const ModulePtr& c : nb::cast<const Module&>(self).children()) nb::cast(c).attr("apply")(fn);
  fn(self);
  return self_of(self);
}

void zero_grad(const Module& m, bool set_to_none) {
  autograd::NoGradGuard no_grad;
  for (Tensor p : m.parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none || g.requires_grad())
      p.set_grad(set_to_none ? Tensor() : zeros_like(g));
    else
      g.zero_();
  }
}

// ---- binding ---------------------------------------------------------------------------------

void def_registration(nb::class_<Module, PythonModule>& c) {
  c.def("__setattr__", &module_setattr, nb::arg("name"), nb::arg("value").none())
      .def("__getattr__", &module_getattr, nb::arg("name"))
      .def("__delattr__", &module_delattr, nb::arg("name"))
      .def("__dir__", &module_dir)
      .def("register_parameter", &register_parameter, nb::arg("name"), nb::arg("param").none(),
           "Adds a parameter (None: the attribute reads None and nothing is registered).")
      .def("register_buffer", &register_buffer, nb::arg("name"), nb::arg("tensor").none(),
           nb::arg("persistent") = true,
           "Adds a buffer: module state that is not a parameter (running statistics); "
           "non-persistent buffers are left out of state_dict().")
      .def("register_module", &register_module, nb::arg("name"), nb::arg("module"),
           "Adds a child module.")
      .def("add_module", &register_module, nb::arg("name"), nb::arg("module"),
           "Adds a child module (same as register_module).");
}

void def_traversal(nb::class_<Module, PythonModule>& c) {
  c.def(
       "parameters",
       [](const Module& m, bool recurse) { return iter_of(nb::cast(m.parameters(recurse))); },
       nb::arg("recurse") = true,
       "An iterator over the parameters (a tensor shared by several modules appears once).")
      .def(
          "named_parameters",
          [](const Module& m, const std::string& prefix, bool recurse) {
            return named(m.named_parameters(recurse), prefix);
          },
          nb::arg("prefix") = "", nb::arg("recurse") = true,
          "An iterator over (dotted name, parameter) pairs, in registration order.")
      .def(
          "buffers",
          [](const Module& m, bool recurse) { return iter_of(nb::cast(m.buffers(recurse))); },
          nb::arg("recurse") = true, "An iterator over the buffers.")
      .def(
          "named_buffers",
          [](const Module& m, const std::string& prefix, bool recurse) {
            return named(m.named_buffers(recurse), prefix);
          },
          nb::arg("prefix") = "", nb::arg("recurse") = true,
          "An iterator over (dotted name, buffer) pairs.")
      .def(
          "children", [](const Module& m) { return iter_of(nb::cast(m.children())); },
          "An iterator over the direct children.")
      .def(
          "named_children", [](const Module& m) { return named(m.named_children(), ""); },
          "An iterator over (name, child) pairs.")
      .def(
          "modules",
          [](const ModulePtr& self) {
            std::set<const Module*> seen;
            nb::list out;
            for (const auto& e : self->named_modules())
              if (seen.insert(e.second.get()).second) out.append(e.second);
            return iter_of(out);
          },
          "An iterator over this module and all its descendants, depth first.")
      .def("named_modules", &named_modules, nb::arg("prefix") = "",
           nb::arg("remove_duplicate") = true,
           "An iterator over (dotted name, module) pairs: ('', self), ('fc1', ...), ...")
      .def("get_submodule", &Module::get_submodule, nb::arg("target"),
           "The descendant at a dotted path ('encoder.layers.1').")
      .def("get_parameter", &Module::get_parameter, nb::arg("target"),
           "The parameter at a dotted path ('encoder.layers.1.linear1.bias').")
      .def("get_buffer", &Module::get_buffer, nb::arg("target"), "The buffer at a dotted path.")
      .def("apply", &apply, nb::arg("fn"),
           "Calls fn on every descendant and then on this module; returns self.");
}

void def_modes(nb::class_<Module, PythonModule>& c) {
  c.def(
       "train",
       [](nb::handle self, bool mode) {
         nb::cast<Module&>(self).train(mode);
         return self_of(self);
       },
       nb::arg("mode") = true, "Sets training mode here and in all descendants; returns self.")
      .def(
          "eval",
          [](nb::handle self) {
            nb::cast<Module&>(self).eval();
            return self_of(self);
          },
          "Sets evaluation mode (train(False)); returns self.")
      .def_prop_rw(
          "training", &Module::is_training, [](Module& m, bool on) { m.train(on); },
          "Whether the module is in training mode (setting it sets the descendants too).")
      .def(
          "requires_grad_",
          [](nb::handle self, bool on) {
            for (Tensor p : nb::cast<const Module&>(self).parameters()) p.requires_grad_(on);
            return self_of(self);
          },
          nb::arg("requires_grad") = true,
          "Sets requires_grad on every parameter (freezing or unfreezing); returns self.")
      .def("zero_grad", &zero_grad, nb::arg("set_to_none") = true,
           "Drops every parameter's gradient (set_to_none) or fills it with zeros.");
}

void def_conversions(nb::class_<Module, PythonModule>& c) {
  c.def(
       "to",
       [](nb::handle self, DType dtype) {
         nb::cast<Module&>(self).to(dtype);
         return self_of(self);
       },
       nb::arg("dtype"))
      .def(
          "to",
          [](nb::handle self, std::optional<Device> device, std::optional<DType> dtype) {
            apply_factory_kwargs(nb::cast<Module&>(self), device, dtype);
            return self_of(self);
          },
          nb::arg("device") = nb::none(), nb::arg("dtype") = nb::none(),
          "Converts floating-point parameters and buffers to dtype and/or moves them to device "
          "in place (the tensors keep their identity); returns self.");
  const std::pair<const char*, DType> casts[] = {
      {"float", kFloat32}, {"double", kFloat64}, {"half", kFloat16}, {"bfloat16", kBFloat16}};
  for (const auto& [name, dtype] : casts)
    c.def(
        name,
        [dt = dtype](nb::handle self) {
          nb::cast<Module&>(self).to(dt);
          return self_of(self);
        },
        fmt::format("Converts floating-point parameters and buffers to {}; returns self.",
                    dtype_name(dtype))
            .c_str());
  c.def(
       "cpu",
       [](nb::handle self) {
         nb::cast<Module&>(self).to(Device::cpu());
         return self_of(self);
       },
       "Moves parameters and buffers to the CPU; returns self.")
      .def(
          "cuda",
          [](nb::handle self, int index) {
            nb::cast<Module&>(self).to(Device::cuda(index));
            return self_of(self);
          },
          nb::arg("device") = 0, "Moves parameters and buffers to a CUDA device; returns self.");
}

void def_state(nb::class_<Module, PythonModule>& c) {
  c.def("state_dict", &state_dict, nb::kw_only(), nb::arg("prefix") = "",
        nb::arg("keep_vars") = false,
        "Parameters and persistent buffers by dotted name (a dict in PyTorch's order), "
        "detached and sharing storage (keep_vars: the tensors themselves).")
      .def(
          "load_state_dict",
          [](Module& m, nb::handle sd, bool strict) {
            return incompatible_keys(
                m.load_state_dict(state_dict_from(sd, "load_state_dict"), strict));
          },
          nb::arg("state_dict"), nb::arg("strict") = true,
          "Copies values (tensors or arrays) into the registered tensors. Shape mismatches "
          "raise ValueError; so do missing or unexpected keys when strict. Returns "
          "(missing_keys, unexpected_keys).");
}

void def_forward_and_printing(nb::class_<Module, PythonModule>& c) {
  c.def(
       "forward",
       [](Module& self, const Tensor& input) -> Tensor {
         // A Python subclass calling super().forward(x): the base, not the Python override.
         if (PythonModule* p = as_python_module(self)) return p->Module::forward(input);
         ReleaseGilIfLarge gil(input.numel());
         return self.forward(input);
       },
       nb::arg("input"),
       "The computation (Python subclasses define it; the base raises NotImplementedError).")
      .def(
          "__call__",
          [](nb::handle self, nb::args args, nb::kwargs kwargs) {
            nb::object f = self.attr("forward");
            PyObject* r = PyObject_Call(f.ptr(), args.ptr(), kwargs.ptr());
            if (r == nullptr) throw nb::python_error();
            return nb::steal(r);
          },
          "Calls self.forward(*args, **kwargs).")
      .def(
          "reset_parameters",
          [](Module& self) {
            if (PythonModule* p = as_python_module(self)) return p->Module::reset_parameters();
            self.reset_parameters();
          },
          "Re-initializes the parameters the way the constructor did.")
      .def(
          "extra_repr",
          [](Module& self) {
            if (PythonModule* p = as_python_module(self)) return p->Module::extra_repr();
            return self.extra_repr();
          },
          "The text inside the parentheses of this module's repr.")
      .def(
          "type_name",
          [](Module& self) {
            if (PythonModule* p = as_python_module(self)) return p->python_name();
            return self.type_name();
          },
          "The class name shown by repr().")
      .def("__repr__", &Module::str);
}

// ---- garbage collection -----------------------------------------------------------------------

// A child module created in Python is held by its parent's registry through a shared_ptr that
// owns one reference to the child's Python object. The collector must see that edge, or a cycle
// through it (a global Sequential of Python modules whose class refers back to the module's
// globals) is never freed. Module types therefore extend nanobind's traverse (the __dict__ and
// the type) with those children.
traverseproc g_nb_traverse = nullptr;
inquiry g_nb_clear = nullptr;

// The registry without copying it: a copy would change the use counts checked below.
struct RegistryAccess : Module {
  static const nn::Named<ModulePtr>& children_of(const Module& m) {
    return (m.*(&RegistryAccess::child_entries))();
  }
};

// The one reference to a child's Python object that this registry entry owns, if any.
PyObject* owned_reference(const ModulePtr& child) {
  // A control block shared with other holders owns a single reference that can't be
  // attributed to this parent; leaving it out only makes the collector more conservative.
  if (child.use_count() != 1) return nullptr;
  const auto* d = std::get_deleter<nb::detail::py_deleter>(child);
  return d ? d->o : nullptr;
}

// Whether the Python object owns the C++ module (created from Python) rather than viewing a
// module owned by C++ shared_ptrs, whose registry other owners may reach as well.
bool python_owned(const Module& m) {
  const std::shared_ptr<const Module> sp = m.weak_from_this().lock();
  return !sp || std::get_deleter<nb::detail::py_deleter>(sp) != nullptr;
}

int module_traverse(PyObject* self, visitproc visit, void* arg) {
  if (int r = g_nb_traverse(self, visit, arg)) return r;
  if (!nb::inst_ready(self)) return 0;
  const Module* m = nb::inst_ptr<Module>(self);
  if (!python_owned(*m)) return 0;
  for (const auto& entry : RegistryAccess::children_of(*m))
    if (PyObject* o = owned_reference(entry.second)) Py_VISIT(o);
  return 0;
}

// Breaks a cycle the collector found: children are registered for good, so each one it saw is
// replaced by an empty Module (the module is garbage; nothing will call it again).
int module_clear(PyObject* self) {
  g_nb_clear(self);
  if (!nb::inst_ready(self)) return 0;
  Module* m = nb::inst_ptr<Module>(self);
  if (!python_owned(*m)) return 0;
  std::vector<std::string> names;
  for (const auto& entry : RegistryAccess::children_of(*m))
    if (owned_reference(entry.second) != nullptr) names.push_back(entry.first);
  try {
    for (const auto& n : names) m->register_module(n, std::make_shared<Module>());
  } catch (const std::exception&) {  // tp_clear can't fail; the cycle then stays
  }
  return 0;
}

void install_traverse(nb::module_& nn) {
  auto* base = reinterpret_cast<PyTypeObject*>(nb::type<Module>().ptr());
  g_nb_traverse = base->tp_traverse;
  g_nb_clear = base->tp_clear;
  nb::dict names = nb::borrow<nb::dict>(nn.attr("__dict__"));
  for (auto [name, value] : names) {
    if (!PyType_Check(value.ptr())) continue;
    auto* t = reinterpret_cast<PyTypeObject*>(value.ptr());
    if (PyType_IsSubtype(t, base) && t->tp_traverse == g_nb_traverse && t->tp_clear == g_nb_clear) {
      t->tp_traverse = &module_traverse;
      t->tp_clear = &module_clear;
    }
  }
}

}  // namespace

// ---- shared helpers (nn_bind.h) ---------------------------------------------------------------

ModulePtr as_module(nb::handle h, const char* op, size_t i) {
  if (!nb::isinstance<Module>(h))
    throw nb::type_error(fmt::format("{}: argument {} is a {}, not a tessera.nn.Module", op, i,
                                     nb::type_name(h.type()).c_str())
                             .c_str());
  return nb::cast<ModulePtr>(h);
}

nn::Ints to_ints(const IntsArg& a) {
  if (const auto* one = std::get_if<int64_t>(&a)) return nn::Ints(*one);
  return nn::Ints(std::get<std::vector<int64_t>>(a));
}

nn::Ints to_ints_or_empty(const std::optional<IntsArg>& a) {
  return a ? to_ints(*a) : nn::Ints(std::vector<int64_t>{});
}

nn::ConvPadding to_padding(const PaddingArg& a) {
  if (const auto* one = std::get_if<int64_t>(&a)) return nn::ConvPadding(*one);
  if (const auto* v = std::get_if<std::vector<int64_t>>(&a)) return nn::ConvPadding(*v);
  return nn::ConvPadding(std::get<std::string>(a));
}

nn::Reduction to_reduction(const std::string& r, const char* op) {
  if (r == "mean") return nn::Reduction::Mean;
  if (r == "sum") return nn::Reduction::Sum;
  if (r == "none") return nn::Reduction::None;
  if (r == "batchmean") return nn::Reduction::BatchMean;
  fail<ValueError>(op, "reduction must be 'none', 'mean' or 'sum', got '{}'", r);
}

std::vector<Tensor> tensors_from(nb::handle h, const char* op) {
  if (nb::isinstance<Tensor>(h)) return {nb::cast<Tensor>(h)};
  std::vector<Tensor> out;
  if (!nb::hasattr(h, "__iter__") || nb::isinstance<nb::str>(h))
    throw nb::type_error(fmt::format("{}: expected a tensor or an iterable of tensors, got {}", op,
                                     nb::type_name(h.type()).c_str())
                             .c_str());
  for (nb::handle x : nb::iter(h)) {
    if (!nb::isinstance<Tensor>(x))
      throw nb::type_error(
          fmt::format("{}: expected tensors, got a {}", op, nb::type_name(x.type()).c_str())
              .c_str());
    out.push_back(nb::cast<Tensor>(x));
  }
  return out;
}

StateDict state_dict_from(nb::handle mapping, const char* op) {
  if (!PyDict_Check(mapping.ptr()) && !nb::hasattr(mapping, "items"))
    throw nb::type_error(fmt::format("{}: expected a dict of name -> tensor, got {}", op,
                                     nb::type_name(mapping.type()).c_str())
                             .c_str());
  StateDict sd;
  nb::object items = mapping.attr("items")();
  for (nb::handle kv : items) {
    nb::handle k = kv[0], v = kv[1];
    if (!nb::isinstance<nb::str>(k))
      throw nb::type_error(
          fmt::format("{}: keys must be strings, got {}", op, nb::type_name(k.type()).c_str())
              .c_str());
    sd[nb::cast<std::string>(k)] =
        nb::isinstance<Tensor>(v) ? nb::cast<Tensor>(v) : tensor_from_data(v, std::nullopt);
  }
  return sd;
}

nb::dict state_dict_to_python(const StateDict& sd) {
  nb::dict out;
  for (const auto& [k, t] : sd) out[nb::str(k.c_str())] = t;
  return out;
}

void apply_factory_kwargs(nn::Module& m, const std::optional<Device>& device,
                          const std::optional<DType>& dtype) {
  if (device) m.to(*device);
  if (dtype) m.to(*dtype);
}

void init_nn_module(nb::module_& nn) {
  auto c = nb::class_<Module, PythonModule>(
      nn, "Module",
      "Base class of every layer. Subclass it in Python: assigning a tensor that requires grad "
      "(tessera.nn.Parameter) or a Module to an attribute registers it as a parameter or child, "
      "and calling the module calls forward().",
      nb::dynamic_attr());
  c.def(nb::init<>());
  def_registration(c);
  def_traversal(c);
  def_modes(c);
  def_conversions(c);
  def_state(c);
  def_forward_and_printing(c);
}

void init_nn(nb::module_& m) {
  nb::module_ nn = m.def_submodule("_nn", "Modules, layers, losses, functional and init.");
  init_nn_module(nn);
  init_nn_containers(nn);
  init_nn_layers(nn);
  init_nn_sequence_layers(nn);
  init_nn_functional(nn);
  init_nn_losses(nn);
  install_traverse(nn);
}

}  // namespace tessera::py
