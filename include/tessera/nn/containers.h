#pragma once
// Containers: Sequential (a chain of Tensor -> Tensor modules), ModuleList and ModuleDict
// (registries whose elements the owner calls itself).
//
//   auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(4, 8),
//                                               std::make_shared<nn::ReLU>(),
//                                               std::make_shared<nn::Linear>(8, 2));
//   Tensor y = (*net)(x);
//   auto first = net->at<nn::Linear>(0);   // typed access; (*net)[0] gives a ModulePtr
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/nn/module.h"

namespace tessera::nn {

/// What Sequential and ModuleList share: children in order, named "0", "1", ... when no
/// name is given, indexable (negative counts from the end) and iterable as (name, module).
class ModuleSequence : public Module {
 public:
  /// Appends a module named by its position.
  void push_back(ModulePtr m);
  size_t size() const { return child_entries().size(); }
  bool empty() const { return size() == 0; }
  /// The i-th module; IndexError when out of range.
  ModulePtr operator[](int64_t i) const;
  /// The i-th module as M; ValueError when it is another type.
  template <class M>
  std::shared_ptr<M> at(int64_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    if (!m) wrong_type(i);
    return m;
  }
  auto begin() const { return child_entries().begin(); }
  auto end() const { return child_entries().end(); }

 private:
  [[noreturn]] void wrong_type(int64_t i) const;
};

/// Modules applied in order; children are named "0", "1", ... (or by the given names).
class Sequential : public ModuleSequence {
 public:
  Sequential() = default;
  explicit Sequential(const std::vector<ModulePtr>& modules);
  /// Named children, like PyTorch's Sequential(OrderedDict(...)).
  explicit Sequential(const Named<ModulePtr>& modules);
  /// Sequential(std::make_shared<Linear>(4, 8), std::make_shared<ReLU>(), ...).
  template <class... Ms>
  requires(sizeof...(Ms) > 0 &&
           (std::is_base_of_v<Module, Ms> && ...)) explicit Sequential(std::shared_ptr<Ms>... ms)
      : Sequential(std::vector<ModulePtr>{std::move(ms)...}) {}

  Tensor forward(const Tensor& x) override;
  using ModuleSequence::push_back;
  void push_back(const std::string& name, ModulePtr m);
};

/// A list of modules registered as "0", "1", ...; its owner decides how to call them.
class ModuleList : public ModuleSequence {
 public:
  ModuleList() = default;
  explicit ModuleList(const std::vector<ModulePtr>& modules);
  void extend(const std::vector<ModulePtr>& modules);
};

/// Modules by name, in insertion order.
class ModuleDict : public Module {
 public:
  ModuleDict() = default;
  explicit ModuleDict(const Named<ModulePtr>& modules);
  /// Adds or replaces a module.
  void insert(const std::string& name, ModulePtr m);
  bool contains(const std::string& name) const;
  size_t size() const { return child_entries().size(); }
  bool empty() const { return size() == 0; }
  /// The module named `name`; IndexError listing the keys when absent.
  ModulePtr operator[](const std::string& name) const;
  template <class M>
  std::shared_ptr<M> at(const std::string& name) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[name]);
    if (!m) wrong_type(name);
    return m;
  }
  std::vector<std::string> keys() const;
  auto begin() const { return child_entries().begin(); }
  auto end() const { return child_entries().end(); }

 private:
  [[noreturn]] void wrong_type(const std::string& name) const;
};

}  // namespace tessera::nn
