#pragma once
// Eager reverse-mode autograd (PyTorch's model): tensors that require grad record the ops
// applied to them; backward() walks that graph in reverse. Tensor methods requires_grad_(),
// grad(), backward(), detach(), retain_grad(), register_hook() are declared in tensor.h and
// documented there; this header has the rest.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::autograd {

// ---- grad mode --------------------------------------------------------------------------
/// Whether ops on tensors that require grad are recorded (per thread; on by default).
bool is_grad_enabled();
void set_grad_enabled(bool on);

/// Turns recording off for its scope (like torch.no_grad()).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

/// Turns recording on for its scope (like torch.enable_grad()).
class EnableGradGuard {
 public:
  EnableGradGuard();
  ~EnableGradGuard();
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

/// Inference mode: nothing is recorded and the funnel skips the autograd layer entirely, so
/// ops cost exactly what they cost without autograd.
class InferenceMode {
 public:
  InferenceMode();
  ~InferenceMode();
  InferenceMode(const InferenceMode&) = delete;
  InferenceMode& operator=(const InferenceMode&) = delete;

 private:
  bool prev_;
};

/// Anomaly mode: every gradient a backward op produces is checked for NaN/Inf, and the error
/// names the op (and its forward op) that produced it.
bool is_anomaly_enabled();
class AnomalyMode {
 public:
  AnomalyMode();
  ~AnomalyMode();
  AnomalyMode(const AnomalyMode&) = delete;
  AnomalyMode& operator=(const AnomalyMode&) = delete;

 private:
  bool prev_;
};

// ---- gradients --------------------------------------------------------------------------
struct GradOptions {
  bool retain_graph = false;  ///< keep saved tensors for another backward (default: create_graph)
  bool create_graph = false;  ///< record the backward pass itself (gradients of gradients)
  bool allow_unused = false;  ///< an input the outputs do not depend on gives an undefined grad
};

/// Gradients of sum(grad_outputs[i] * outputs[i]) with respect to inputs, returned instead of
/// accumulated into .grad. grad_outputs may be empty for scalar outputs (ones).
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, GradOptions opt = {});

/// Runs backward from several outputs at once, accumulating into the leaves' .grad.
void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs = {},
              bool retain_graph = false, bool create_graph = false);

/// Name of the backward node that produced t (e.g. "mul_backward"), empty for leaves.
std::string grad_fn_name(const Tensor& t);

/// The leaf that requires grad of which t is itself or a view made by view primitives only
/// (as linear's w.t()), when t is neither a forward-mode dual nor batched by vmap; undefined
/// otherwise. The autocast cast cache keeps casts of such tensors: parameters.
Tensor parameter_source(const Tensor& t);

// ---- custom functions -------------------------------------------------------------------
struct Node;  // a recorded op (src/autograd/graph.h)

/// What a custom function's forward may keep for its backward.
class FunctionCtx {
 public:
  /// Tensors backward needs; they come back from saved() (checked against in-place changes).
  void save_for_backward(std::vector<Tensor> ts);
  std::vector<Tensor> saved() const;
  /// Marks outputs that get no gradient.
  void mark_non_differentiable(std::vector<Tensor> ts);
  const std::vector<Tensor>& non_differentiable() const { return non_diff_; }

 private:
  friend std::vector<Tensor> apply_function(
      const std::string&,
      const std::function<std::vector<Tensor>(FunctionCtx&, const std::vector<Tensor>&)>&,
      const std::function<std::vector<Tensor>(FunctionCtx&, const std::vector<Tensor>&)>&,
      const std::vector<Tensor>&);
  std::vector<Tensor> saved_;
  std::vector<uint64_t> versions_;
  std::vector<Tensor> non_diff_;
  // A saved output is kept without history (the node owns the ctx: history would be a cycle);
  // saved() gives it back its history from the node, for gradients of gradients.
  std::vector<int> saved_output_nr_;  ///< output index per saved tensor, -1 for others
  std::weak_ptr<Node> node_;
};

using CustomForward = std::function<std::vector<Tensor>(FunctionCtx&, const std::vector<Tensor>&)>;
/// Returns one gradient per input (undefined = none), given one gradient per output.
using CustomBackward =
    std::function<std::vector<Tensor>(FunctionCtx&, const std::vector<Tensor>& grad_outputs)>;

/// Runs forward without recording, then records one node whose backward is the user's.
/// Backward's results are checked: one per input, each with its input's shape.
std::vector<Tensor> apply_function(const std::string& name, const CustomForward& forward,
                                   const CustomBackward& backward,
                                   const std::vector<Tensor>& inputs);

/// A custom function as a class: derive, write static forward/backward, call F::apply(...).
///   struct Cube : Function<Cube> {
///     static std::vector<Tensor> forward(FunctionCtx& c, const std::vector<Tensor>& x);
///     static std::vector<Tensor> backward(FunctionCtx& c, const std::vector<Tensor>& g);
///   };
template <class Derived>
struct Function {
  static std::vector<Tensor> apply(const std::vector<Tensor>& inputs) {
    return apply_function(Derived::name(), &Derived::forward, &Derived::backward, inputs);
  }
  static std::string name() { return "custom_function"; }
};

/// Activation checkpointing: runs fn without saving anything for backward; backward reruns
/// it (with recording) to get the gradients. fn must be deterministic in its inputs.
std::vector<Tensor> checkpoint(
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
    const std::vector<Tensor>& inputs);

}  // namespace tessera::autograd
