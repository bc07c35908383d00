#pragma once
// JAX-style function transforms over C++ callables. They compose: vmap(grad(f)) gives
// per-example gradients, grad(grad(f)) second derivatives, jacfwd(jacrev(f)) Hessians,
// vmap(vmap(f)) nested batching. Nested transforms keep their levels apart.
#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

/// A function of several tensors returning several tensors.
using TensorsFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
/// A function of one tensor returning one tensor.
using TensorFn = std::function<Tensor(const Tensor&)>;

/// Gradient of a scalar-valued f with respect to the arguments in argnums.
TensorsFn grad(TensorsFn f, std::vector<int64_t> argnums = {0});
TensorFn grad(TensorFn f);
/// f's value and its gradient with respect to argnums (f's first output must be a scalar).
std::function<std::pair<Tensor, std::vector<Tensor>>(const std::vector<Tensor>&)> value_and_grad(
    TensorsFn f, std::vector<int64_t> argnums = {0});

/// f's outputs at primals, and the function mapping output cotangents to input cotangents
/// (callable any number of times).
std::pair<std::vector<Tensor>, TensorsFn> vjp(TensorsFn f, const std::vector<Tensor>& primals);
/// f's outputs at primals and their tangents along `tangents` (forward mode).
std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(TensorsFn f,
                                                        const std::vector<Tensor>& primals,
                                                        const std::vector<Tensor>& tangents);

/// Maps f over a batch dim: in_axes[i] is the dim of input i to map over (nullopt: the input
/// is shared by every example; empty in_axes: dim 0 of every input); out_axes[o] is where the
/// batch dim goes in output o (empty: 0).
TensorsFn vmap(TensorsFn f, std::vector<std::optional<int64_t>> in_axes = {},
               std::vector<int64_t> out_axes = {});
TensorFn vmap(TensorFn f, int64_t in_axis = 0, int64_t out_axis = 0);

/// Jacobian of f at x, shape out.shape + x.shape: by reverse mode (one vjp per output
/// element) or forward mode (one jvp per input element).
TensorFn jacrev(TensorFn f);
TensorFn jacfwd(TensorFn f);
/// Hessian of a scalar f: jacfwd(jacrev(f)).
TensorFn hessian(TensorFn f);

}  // namespace tessera
