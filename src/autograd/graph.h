#pragma once
// The autograd graph (internal): per-tensor metadata, nodes, edges, saved tensors, and the
// thread-local modes. See docs/design/autograd.md.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tessera/autograd/autograd.h"
#include "tessera/ops/primitive.h"

namespace tessera {

namespace autograd {
struct Node;

/// Where a gradient goes: input slot `slot` of `node` (the node's forward output number).
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t slot = 0;
  bool valid() const { return node != nullptr; }
};

/// Shape and dtype of a forward output, to make zero gradients for outputs nobody used.
struct OutMeta {
  Shape shape;
  DType dtype;
  /// False for the aux outputs of a kAuxOutputs primitive: no zeros are made for them.
  bool zero_if_unused = true;
};

using GradHook = std::function<Tensor(const Tensor&)>;

/// A backward step. One node per recorded forward op; `next[i]` is where the gradient of
/// forward input i goes. apply() maps gradients of the forward outputs (one per slot) to
/// gradients of the forward inputs (one per edge).
struct Node : std::enable_shared_from_this<Node> {
  std::vector<Edge> next;
  std::vector<OutMeta> out_meta;
  /// Hooks on the gradient arriving at a slot (tensor hooks of non-leaves, retain_grad).
  std::vector<std::pair<int64_t, std::pair<uint32_t, GradHook>>> pre_hooks;
  uint64_t seq = 0;  ///< creation order

  Node();
  virtual ~Node();
  virtual std::vector<Tensor> apply(std::vector<Tensor>& grads) = 0;
  virtual std::string name() const = 0;
  /// Drops saved tensors (after a backward without retain_graph).
  virtual void release() {}
  /// Forward mode computed the tangent of output `slot` after this node saved it: forward
  /// over reverse needs it on the saved copy too.
  virtual void note_output_tangent(uint32_t slot, int level, const Tensor& tangent) {
    (void)slot, (void)level, (void)tangent;
  }
  /// The forward op this node differentiates (for the profiler and anomaly messages).
  virtual std::string_view forward_name() const { return {}; }
  virtual bool is_accumulator() const { return false; }

  /// Scratch of the backward pass currently walking this node (run_backward owns it; a
  /// graph is walked by one backward at a time).
  struct Scratch {
    uint64_t task = 0;  ///< the pass that last initialized this scratch
    int deps = 0;       ///< gradients still to arrive
    bool runs = false, target = false, needed = false, visited = false, queued = false;
    std::vector<Tensor> buffer;  ///< gradients per slot, summed
  } scratch;
};

/// Accumulates into a leaf's .grad (the graph's sinks).
struct AccumulateGrad final : Node {
  std::weak_ptr<TensorImpl> leaf;
  explicit AccumulateGrad(const std::shared_ptr<TensorImpl>& t);
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  std::string name() const override { return "accumulate_grad"; }
  bool is_accumulator() const override { return true; }
};

/// A tensor kept for backward, with the storage version at save time. Outputs of the node
/// that saves them are kept without history (that would be a reference cycle) and given it
/// back on unpack.
class SavedTensor {
 public:
  SavedTensor() = default;
  /// stand_in: t holds only a shape and dtype (rules::stand_in) and survives reset(), so a
  /// node that saved nothing else can run backward again, as PyTorch's nodes without saved
  /// tensors can (the autocast cache reuses a parameter's cast node across steps).
  SavedTensor(const Tensor& t, bool is_output_of_saver, bool stand_in = false);
  /// The tensor, after checking it was not modified in place since it was saved (errors name
  /// "<forward_op>_backward"). `saver` (null when not recording) becomes a saved output's
  /// grad_fn again.
  Tensor unpack(const std::shared_ptr<Node>& saver, uint32_t output_nr,
                std::string_view forward_op) const;
  void reset();
  bool defined() const { return t_.defined(); }
  /// Adds a tangent (without reverse history) to a saved output.
  void add_tangent(int level, const Tensor& tangent);

 private:
  Tensor t_;
  uint64_t version_ = 0;
  bool is_output_ = false;
  bool stand_in_ = false;
};

}  // namespace autograd

namespace autograd {
/// A tensor inside vmap: `value` holds the examples along dim `bdim` at vmap level `level`.
struct Batched {
  int level;
  int64_t bdim;
  Tensor value;
};
}  // namespace autograd

/// Per-tensor transform state (TensorImpl::autograd): reverse mode, forward mode, vmap.
struct AutogradMeta {
  bool requires_grad = false;  ///< set on leaves by requires_grad_(); non-leaves have grad_fn
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
  std::weak_ptr<autograd::Node> accumulator;  ///< a leaf's AccumulateGrad (weak: no cycle)
  /// An alias of a leaf (history_alias) owns the leaf's accumulator, which would otherwise die
  /// at once (no cycle: the accumulator points at the leaf, not at the alias).
  std::shared_ptr<autograd::Node> alias_accumulator;
  bool retains_grad = false;
  std::vector<std::pair<int64_t, autograd::GradHook>> hooks;  ///< leaf hooks
  /// Forward-mode tangents, one per active jvp level: (level, tangent).
  std::vector<std::pair<int, Tensor>> tangents;
  /// Views: the tensor whose storage this one views (the root base), for in-place on views.
  Tensor view_base;
  /// In-place writes through views rebase the base's history: the base counts them, and a
  /// view made before a rebase gets its history regenerated from the base when next used.
  uint32_t rebases = 0, base_rebases_seen = 0;
  /// Set on the logical tensors vmap hands to the function (TensorImpl::batched).
  std::shared_ptr<autograd::Batched> batch;
};

namespace autograd {

/// The tensor's meta, created when absent.
AutogradMeta& meta_of(const Tensor& t);
inline AutogradMeta* meta_if(const Tensor& t) { return t.impl().autograd.get(); }
/// Whether t takes part in the reverse graph (leaf requiring grad or has grad_fn).
inline bool needs_grad(const Tensor& t) {
  const AutogradMeta* m = t.defined() ? meta_if(t) : nullptr;
  return m && (m->requires_grad || m->grad_fn);
}
/// The edge a gradient for t flows into (its grad_fn, or its leaf accumulator).
Edge edge_of(const Tensor& t);
/// A view whose base was rebased (written in place through another view) since the view was
/// made: gives it history as "these elements of the base" again.
void refresh_view_history(const Tensor& t);
/// Lets t die without recursing into a long chain of history (see Node::~Node).
void bury_tensor(Tensor&& t);
/// A new handle to t's data with t's reverse history (grad_fn, or its leaf accumulator) but
/// no tangents: jvp rules and transforms use it so that no tensor ends up owning a tangent
/// computed from itself (a reference cycle).
Tensor history_alias(const Tensor& t);
/// A new handle to t's data with no autograd state at all.
Tensor plain_alias(const Tensor& t);

// ---- forward mode -------------------------------------------------------------------------
/// The innermost jvp level visible to ops now (0 = none).
int fwd_top_level();
/// Opens a new jvp level and returns it; close with pop_fwd_level.
int push_fwd_level();
void pop_fwd_level(int level);
/// Hides levels above `level` while a jvp rule runs (returns the previous top).
int set_fwd_top(int level);
/// t's tangent at level (undefined when none).
Tensor tangent_at(const Tensor& t, int level);
void set_tangent(const Tensor& t, int level, const Tensor& tangent);

// ---- the engine ---------------------------------------------------------------------------
/// Backward from roots (edges with their seed gradients). With `capture`, returns the
/// gradients arriving at those edges instead of running accumulators.
std::vector<Tensor> run_backward(const std::vector<Edge>& roots, const std::vector<Tensor>& seeds,
                                 const std::vector<Edge>& capture, bool retain_graph,
                                 bool create_graph, bool allow_unused);

/// Recomputes grad-mode + forward-level state into the funnel's Autograd layer bit.
void refresh_layer_bit();

}  // namespace autograd
}  // namespace tessera
