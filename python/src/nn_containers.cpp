// tessera.nn containers: Sequential (called from C++, so it can hold Python modules), ModuleList
// and ModuleDict, with Python's sequence and mapping protocols.
#include <fmt/format.h>

#include <algorithm>

#include "nn_bind.h"

namespace tessera::py {
namespace {

using nn::Module;
using nn::ModulePtr;

nb::object self_of(nb::handle self) { return nb::borrow(self); }
nb::iterator iter_of(nb::handle l) { return nb::iter(l); }

// Python index (negative from the end) of a container of size n; IndexError when out of range.
size_t wrap(int64_t i, size_t n, const char* op) {
  const auto size = static_cast<int64_t>(n);
  if (i < -size || i >= size)
    throw nb::index_error(
        fmt::format("{}: index {} is out of range for {} modules", op, i, n).c_str());
  return static_cast<size_t>(i < 0 ? i + size : i);
}

std::vector<ModulePtr> modules_from(nb::handle iterable, const char* op) {
  std::vector<ModulePtr> out;
  if (iterable.is_none()) return out;
  size_t i = 0;
  for (nb::handle h : nb::iter(iterable)) out.push_back(as_module(h, op, i++));
  return out;
}

nn::Named<ModulePtr> named_from(nb::handle mapping, const char* op) {
  nn::Named<ModulePtr> out;
  if (mapping.is_none()) return out;
  nb::object items = PyMapping_Check(mapping.ptr()) && nb::hasattr(mapping, "items")
                         ? mapping.attr("items")()
                         : nb::borrow(mapping);
  size_t i = 0;
  for (nb::handle kv : nb::iter(items))
    out.emplace_back(nb::cast<std::string>(kv[0]), as_module(kv[1], op, i++));
  return out;
}

// __getitem__, __setitem__, __len__, __iter__, append and extend of Sequential and ModuleList.
template <class T>
void def_sequence(nb::class_<T, Module>& c, const char* op) {
  c.def("__len__", &T::size)
      .def(
          "__getitem__",
          [op](const T& s, int64_t i) { return s.named_children()[wrap(i, s.size(), op)].second; },
          nb::arg("idx"))
      .def(
          "__getitem__",
          [](const T& s, nb::slice slice) {
            auto [start, stop, step, len] = slice.compute(s.size());
            nn::Named<ModulePtr> all = s.named_children(), picked;
            for (size_t k = 0; k < len; ++k)
              picked.push_back(all[static_cast<size_t>(start + static_cast<Py_ssize_t>(k) * step)]);
            if constexpr (std::is_same_v<T, nn::Sequential>) {
              return std::make_shared<T>(picked);  // keeps the names, like PyTorch
            } else {
              std::vector<ModulePtr> mods;
              for (auto& e : picked) mods.push_back(e.second);
              return std::make_shared<T>(mods);
            }
          },
          nb::arg("idx"))
      .def(
          "__setitem__",
          [op](T& s, int64_t i, nb::handle m) {
            const std::string name = s.named_children()[wrap(i, s.size(), op)].first;
            s.register_module(name, as_module(m, op, 1));
          },
          nb::arg("idx"), nb::arg("module"))
      .def("__iter__", [](const T& s) { return iter_of(nb::cast(s.children())); })
      .def(
          "append",
          [op](nb::handle self, nb::handle m) {
            nb::cast<T&>(self).push_back(as_module(m, op, 0));
            return self_of(self);
          },
          nb::arg("module"), "Appends a module at the end; returns self.")
      .def(
          "extend",
          [op](nb::handle self, nb::handle modules) {
            for (auto& m : modules_from(modules, op)) nb::cast<T&>(self).push_back(m);
            return self_of(self);
          },
          nb::arg("modules"), "Appends modules from an iterable; returns self.");
}

}  // namespace

void init_nn_containers(nb::module_& nn) {
  auto seq = nb::class_<nn::Sequential, Module>(
      nn, "Sequential",
      "Modules applied in order: Sequential(m1, m2, ...) (children named '0', '1', ...) or "
      "Sequential(OrderedDict(name=module, ...)).");
  seq.def("__init__",
          [](nn::Sequential* self, nb::args args) {
            if (args.size() == 1 && PyDict_Check(args[0].ptr()))
              new (self) nn::Sequential(named_from(args[0], "Sequential"));
            else
              new (self) nn::Sequential(modules_from(args, "Sequential"));
          })
      .def(
          "insert",
          [](nb::handle self, int64_t index, nb::handle m) {
            auto& s = nb::cast<nn::Sequential&>(self);
            std::vector<ModulePtr> all = s.children();
            const auto n = static_cast<int64_t>(all.size());
            const int64_t at = std::clamp(index < 0 ? index + n : index, int64_t{0}, n);
            all.insert(all.begin() + at, as_module(m, "Sequential.insert", 1));
            // Children are named by position, so every later name moves up by one.
            for (size_t i = static_cast<size_t>(at); i < all.size(); ++i)
              s.register_module(std::to_string(i), all[i]);
            return self_of(self);
          },
          nb::arg("index"), nb::arg("module"),
          "Inserts a module before index (children must be named by position); returns self.");
  def_sequence(seq, "Sequential");

  auto list = nb::class_<nn::ModuleList, Module>(
      nn, "ModuleList",
      "A list of modules registered as children '0', '1', ...; the owner calls them itself.");
  list.def(
      "__init__",
      [](nn::ModuleList* self, nb::handle modules) {
        new (self) nn::ModuleList(modules_from(modules, "ModuleList"));
      },
      nb::arg("modules") = nb::none());
  def_sequence(list, "ModuleList");

  nb::class_<nn::ModuleDict, Module>(nn, "ModuleDict",
                                     "Modules by name, in insertion order (children).")
      .def(
          "__init__",
          [](nn::ModuleDict* self, nb::handle modules) {
            new (self) nn::ModuleDict(named_from(modules, "ModuleDict"));
          },
          nb::arg("modules") = nb::none())
      .def(
          "__getitem__",
          [](const nn::ModuleDict& d, const std::string& k) {
            if (!d.contains(k))
              throw nb::key_error(
                  fmt::format("ModuleDict: no module '{}' (keys: {})", k, fmt::join(d.keys(), ", "))
                      .c_str());
            return d[k];
          },
          nb::arg("key"))
      .def(
          "__setitem__",
          [](nn::ModuleDict& d, const std::string& k, nb::handle m) {
            d.insert(k, as_module(m, "ModuleDict", 1));
          },
          nb::arg("key"), nb::arg("module"))
      .def("__contains__", &nn::ModuleDict::contains, nb::arg("key"))
      .def("__len__", &nn::ModuleDict::size)
      .def("__iter__", [](const nn::ModuleDict& d) { return iter_of(nb::cast(d.keys())); })
      .def("keys", &nn::ModuleDict::keys, "The names, in insertion order.")
      .def("values", &nn::ModuleDict::children, "The modules, in insertion order.")
      .def(
          "items",
          [](const nn::ModuleDict& d) {
            nb::list out;
            for (const auto& [n, m] : d.named_children()) out.append(nb::make_tuple(n, m));
            return out;
          },
          "(name, module) pairs, in insertion order.")
      .def(
          "update",
          [](nn::ModuleDict& d, nb::handle modules) {
            for (auto& [n, m] : named_from(modules, "ModuleDict.update")) d.insert(n, m);
          },
          nb::arg("modules"), "Adds or replaces modules from a mapping or (name, module) pairs.");
}

}  // namespace tessera::py
