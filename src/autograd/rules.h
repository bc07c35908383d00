#pragma once
// Shared by the autodiff rule files (src/autograd/rules_<family>.cpp). Internal, not installed.
//
// Conventions every rule follows (the engine relies on them):
//  * Rules are written with public tensor ops (tessera::add, mul, sum, ...), never with raw
//    kernels: the engine runs them with grad mode on when create_graph is asked, and the
//    forward-mode and vmap layers see the ops they issue, so rules compose to any order.
//  * vjp(inputs, outputs, cotangents, attrs) returns one tensor per input: the gradient, with
//    the input's shape and dtype, or an undefined Tensor when the input carries no gradient
//    (integer/bool inputs, index tensors). Cotangents come one per output; a floating output's
//    cotangent is always defined (zeros when unused), a non-floating output's is undefined;
//    so is an unused aux output's (trait kAuxOutputs: the outputs after the first).
//  * jvp(inputs, outputs, tangents, attrs) returns one tangent per output (undefined = zero,
//    and always undefined for non-floating outputs). tangents[i] is undefined when input i
//    has no tangent: rules treat that as zero.
//  * batch(inputs, bdims, attrs, out_bdims) gets physical inputs: bdims[i] is the position of
//    the batch dim in inputs[i], or -1 for an unbatched input (at least one is batched). It
//    returns physical outputs and sets out_bdims (one per output, -1 = unbatched). Where a
//    primitive has no batch rule, the vmap layer loops over the batch and stacks.
//  * Rules are registered while the registry is being built: look primitives up with
//    r.get("name") on the Registry passed in, never with prim() (that would recurse).
#include <cstdint>
#include <span>
#include <vector>

#include "tessera/ops/primitive.h"
#include "tessera/ops/shape.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::rules {

/// Whether tensors of this dtype carry gradients (floating types; complex autograd is not
/// implemented).
bool is_differentiable(DType dt);
/// Sums g down to `shape` (undoes broadcasting: leading dims and dims of size 1).
Tensor sum_to(const Tensor& g, const Shape& shape);
/// t, or zeros shaped and typed like `like` when t is undefined.
Tensor or_zeros(const Tensor& t, const Tensor& like);
/// a + b where an undefined operand means zero (both undefined: undefined).
Tensor add_opt(const Tensor& a, const Tensor& b);
/// Casts g to dtype when they differ (gradients follow their input's dtype).
Tensor to_dtype(const Tensor& g, DType dtype);

/// A zero tensor with t's shape and dtype that owns one element (see VjpSkips).
Tensor stand_in(const Tensor& t);

/// Whether the backward step running this vjp rule uses input i's gradient. It does not when
/// the input neither requires grad nor has history (a data batch, a constant): a rule may then
/// skip that work and return an undefined Tensor for it (PyTorch's needs_input_grad). Outside
/// a backward step (a rule called directly) every input's gradient is wanted.
bool grad_wanted(size_t i);

/// Set by the engine around one vjp call: bit i of `wanted` for input i (inputs from 64 on
/// always count as wanted).
class WantedGradsScope {
 public:
  explicit WantedGradsScope(uint64_t wanted);
  ~WantedGradsScope();
  WantedGradsScope(const WantedGradsScope&) = delete;
  WantedGradsScope& operator=(const WantedGradsScope&) = delete;

 private:
  bool prev_active_;
  uint64_t prev_wanted_;
};

// ---- generic rules ---------------------------------------------------------------------
/// jvp of a primitive that is linear in its floating inputs (views, shape ops, sum, add,
/// gather in its source, ...): the primitive applied to the tangents, with zeros for
/// undefined tangents of floating inputs and the primal for the other inputs (indices).
JvpFn jvp_linear(const Primitive& p);

// ---- batching helpers -------------------------------------------------------------------
/// The batch size: size of the batch dim of any batched input (they must agree).
int64_t batch_size(Inputs in, std::span<const int64_t> bdims, std::string_view op);
/// x with its batch dim moved to the front (a view); x itself when bdim is -1.
Tensor bdim_to_front(const Tensor& x, int64_t bdim);
/// x with the batch dim at the front: moved when batched, expanded (a view) when not.
Tensor batched_front(const Tensor& x, int64_t bdim, int64_t batch);
/// The logical rank of a physical input (its rank without the batch dim).
inline int64_t logical_rank(const Tensor& x, int64_t bdim) { return x.dim() - (bdim >= 0); }
/// For broadcasting elementwise ops: every batched input with its batch dim in front and
/// size-1 dims inserted after it so all batched inputs have rank max_logical_rank + 1;
/// unbatched inputs are returned as they are (they broadcast from the right).
std::vector<Tensor> align_for_broadcast(Inputs in, std::span<const int64_t> bdims);
/// Batch rule for elementwise primitives (any number of broadcasting inputs, outputs with
/// the broadcast shape): align, call the primitive, outputs batched at dim 0.
BatchFn batch_elementwise(const Primitive& p);

// ---- registration (one function per family, called once after all primitives exist) ----
void register_elementwise_rules(Registry& r);
void register_reduce_rules(Registry& r);
/// layer_norm and layer_norm_backward (rules_layer_norm.cpp), called by the reduce family's.
void register_layer_norm_rules(Registry& r);
void register_linalg_rules(Registry& r);
void register_sort_rules(Registry& r);
void register_view_rules(Registry& r);
void register_shape_rules(Registry& r);
void register_indexing_rules(Registry& r);
void register_copy_rules(Registry& r);
void register_nn_rules(Registry& r);
/// Marks what each vjp rule does not read (Primitive::vjp_skips); runs after the families.
void register_vjp_skips(Registry& r);

}  // namespace tessera::rules
