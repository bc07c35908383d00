#pragma once
// nn::Module: the base of every layer. A module owns named parameters (leaf tensors that require
// grad), buffers (state such as running statistics) and child modules, all kept in registration
// order. Modules are plain classes used through std::shared_ptr:
//
//   struct Net : nn::Module {
//     std::shared_ptr<nn::Linear> fc1, fc2;
//     Net() {
//       fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
//       fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 2));
//     }
//     Tensor forward(const Tensor& x) override { return fc2->forward(relu(fc1->forward(x))); }
//   };
//   auto net = std::make_shared<Net>();
//   Tensor y = (*net)(x);                     // operator() calls forward
//   for (auto& [name, p] : net->named_parameters()) ...   // "fc1.weight", "fc1.bias", ...
//
// A module keeps tensor handles: the member `weight` and the registry entry are the same tensor,
// so in-place updates (optimizers, load_state_dict, to(dtype)) are seen through both. To swap in
// a different tensor, register it again under the same name and assign the member.
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"
#include "tessera/core/tensor.h"
#include "tessera/io/state_dict.h"

namespace tessera::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;
template <class T>
using Named = std::vector<std::pair<std::string, T>>;

/// What load_state_dict found: keys the module has but the dict lacks, and the reverse.
struct LoadStateDictReport {
  std::vector<std::string> missing_keys;
  std::vector<std::string> unexpected_keys;
};

class Module : public std::enable_shared_from_this<Module> {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // ---- forward ----------------------------------------------------------------------------
  /// The Tensor -> Tensor forward of most layers (and of Sequential's elements). Modules whose
  /// forward takes other arguments declare their own `forward` and `operator()` (adding
  /// `using Module::forward;` keeps this one visible); this default raises NotImplementedError.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- registration -----------------------------------------------------------------------
  /// Registers (or replaces) a parameter: a leaf tensor that requires grad (a non-leaf is
  /// detached first). Returns the registered handle; keep it in a member. An undefined tensor
  /// registers nothing and is returned as is (an absent bias).
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  /// Registers (or replaces) a buffer; non-persistent buffers are left out of state_dict.
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  /// Registers (or replaces) a child module and returns it with its own type.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

  // ---- traversal --------------------------------------------------------------------------
  /// Parameters of this module and (recurse) its descendants; a tensor registered twice (tied
  /// weights) appears once.
  std::vector<Tensor> parameters(bool recurse = true) const;
  /// ("fc1.weight", tensor) pairs with dotted names.
  Named<Tensor> named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  Named<Tensor> named_buffers(bool recurse = true) const;
  std::vector<ModulePtr> children() const;
  Named<ModulePtr> named_children() const;
  /// This module and all descendants, depth first (this module must be owned by a shared_ptr).
  std::vector<ModulePtr> modules();
  /// ("", self), ("encoder", ...), ("encoder.layers.0", ...), ...
  Named<ModulePtr> named_modules(const std::string& prefix = "");
  /// The descendant at a dotted path ("encoder.layers.1"); ValueError when there is none.
  ModulePtr get_submodule(const std::string& path) const;
  /// The parameter or buffer at a dotted path ("encoder.layers.1.linear1.bias").
  Tensor get_parameter(const std::string& path) const;
  Tensor get_buffer(const std::string& path) const;
  /// Calls fn on every descendant, then on this module (like PyTorch).
  Module& apply(const std::function<void(Module&)>& fn);

  // ---- modes and conversion ---------------------------------------------------------------
  /// Sets training mode on this module and its descendants.
  Module& train(bool on = true);
  Module& eval() { return train(false); }
  bool is_training() const { return training_; }
  /// Converts floating-point parameters, buffers and grads in place (handles stay valid).
  Module& to(DType dtype);
  /// Moves parameters and buffers (NotBuiltError for CUDA without the CUDA backend).
  Module& to(Device device);
  /// Sets the gradient of every parameter to undefined.
  void zero_grad();

  // ---- state ------------------------------------------------------------------------------
  /// Parameters and persistent buffers by dotted name, detached, sharing storage.
  StateDict state_dict() const;
  /// Copies values into the registered tensors (converting dtype). A shape mismatch always
  /// raises ValueError; with strict, missing or unexpected keys do too (listing all of them).
  LoadStateDictReport load_state_dict(const StateDict& state, bool strict = true);
  /// Re-initializes parameters the way the constructor did (layers override it).
  virtual void reset_parameters() {}

  // ---- printing ---------------------------------------------------------------------------
  /// The class name shown by str() (default: the C++ type name without namespaces).
  virtual std::string type_name() const;
  /// The part inside the parentheses, e.g. "in_features=4, out_features=2, bias=true".
  virtual std::string extra_repr() const { return ""; }
  /// The module tree, like PyTorch's repr.
  std::string str() const;

 protected:
  /// The child registry, for containers that index it.
  const Named<ModulePtr>& child_entries() const { return children_; }
  void add_child(const std::string& name, ModulePtr m);

 private:
  struct BufferEntry {
    Tensor tensor;
    bool persistent = true;
  };
  void check_new_name(const std::string& name, const char* kind) const;
  void collect_params(const std::string& prefix, bool recurse, Named<Tensor>& out) const;
  void collect_buffers(const std::string& prefix, bool recurse, bool persistent_only,
                       Named<Tensor>& out) const;
  void collect_modules(const std::string& prefix, Named<ModulePtr>& out) const;
  void convert_tensors(const std::function<Tensor(const Tensor&)>& convert);

  Named<Tensor> params_;
  Named<BufferEntry> buffers_;
  Named<ModulePtr> children_;
  bool training_ = true;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace tessera::nn
