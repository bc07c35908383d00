#pragma once
// What the tessera.nn / tessera.optim binding files share: argument conversions (sizes given as
// an int or a tuple, PyTorch's reduction strings, optional tensors) and the per-file entries
// that nn.cpp and optim.cpp call.
#include <string>
#include <variant>
#include <vector>

#include "bind.h"

namespace tessera::py {

/// A size that is one int for every dim or a sequence with one per dim (kernel_size=3 or (3, 5)).
using IntsArg = std::variant<int64_t, std::vector<int64_t>>;
nn::Ints to_ints(const IntsArg& a);
/// An optional size (stride=None means "the kernel size" for pooling: {}).
nn::Ints to_ints_or_empty(const std::optional<IntsArg>& a);
/// Convolution padding: sizes or "same" / "valid".
using PaddingArg = std::variant<int64_t, std::vector<int64_t>, std::string>;
nn::ConvPadding to_padding(const PaddingArg& a);

/// PyTorch's reduction names: "none", "mean", "sum" (and "batchmean" for kl_div).
nn::Reduction to_reduction(const std::string& r, const char* op);

/// None as an undefined tensor.
inline Tensor opt(const std::optional<Tensor>& t) { return t.value_or(Tensor()); }
/// An undefined tensor as None.
inline std::optional<Tensor> none_if_undefined(const Tensor& t) {
  if (!t.defined()) return std::nullopt;
  return t;
}

/// h as a module (shared_ptr); TypeError naming op and the argument's position otherwise.
nn::ModulePtr as_module(nb::handle h, const char* op, size_t i);

/// Tensors from a tensor or an iterable of tensors (model.parameters(), a list, ...); TypeError
/// naming op for anything else.
std::vector<Tensor> tensors_from(nb::handle h, const char* op);

/// A dict of name -> tensor (or array-like) as a StateDict; TypeError naming op otherwise.
StateDict state_dict_from(nb::handle mapping, const char* op);
/// A StateDict as a dict (sorted by key, like the C++ map).
nb::dict state_dict_to_python(const StateDict& sd);

/// The device= and dtype= arguments of layer constructors.
using Dev = std::optional<Device>;
using DT = std::optional<DType>;

/// Moves / converts a freshly built layer for its device= and dtype= arguments.
void apply_factory_kwargs(nn::Module& m, const std::optional<Device>& device,
                          const std::optional<DType>& dtype);

/// A layer's own parameter or buffer as a property: reading gives the tensor (None when
/// absent); assigning registers the new tensor under the same name and points the layer's member
/// at it, so the layer computes with it (tied weights: decoder.weight = encoder.weight).
template <class Cls>
void tensor_attr(Cls& cls, const char* name, Tensor Cls::Type::*member, bool parameter) {
  using T = typename Cls::Type;
  cls.def_prop_rw(
      name, [member](const T& self) { return none_if_undefined(self.*member); },
      [member, n = std::string(name), parameter](T& self, std::optional<Tensor> v) {
        self.*member = parameter ? self.register_parameter(n, opt(v), v ? v->requires_grad() : true)
                                 : self.register_buffer(n, opt(v));
      },
      nb::for_setter(nb::arg("value").none()),
      parameter ? "A parameter; assigning a tensor replaces it (None removes it)."
                : "A buffer; assigning a tensor replaces it.");
}

// The parts of tessera.nn (the Module class comes first: the others derive from it).
void init_nn_module(nb::module_& nn);
void init_nn_containers(nb::module_& nn);  // Sequential, ModuleList, ModuleDict
void init_nn_layers(nb::module_& nn);
void init_nn_sequence_layers(nb::module_& nn);  // recurrent and transformer layers
void init_nn_functional(nb::module_& nn);       // nn.functional and nn.init
void init_nn_losses(nb::module_& nn);
void init_optim_schedulers(nb::module_& optim);

}  // namespace tessera::py
