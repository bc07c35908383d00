// The backward engine: dependency counts by an explicit-stack walk, then nodes run in an
// order where each runs once all gradients for it have arrived (latest-created first). No
// recursion anywhere, so a chain of a million ops needs no more stack than a chain of one.
#include <atomic>
#include <cmath>
#include <mutex>
#include <queue>

#include "autograd/graph.h"
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/runtime/autocast.h"

namespace tessera::autograd {
namespace {

std::atomic<uint64_t> g_next_task{1};

// Every node reachable from the roots, with its scratch reset for this pass.
std::vector<Node*> reachable(const std::vector<Edge>& roots, uint64_t task) {
  std::vector<Node*> order, stack;
  auto visit = [&](Node* n) {
    if (!n || n->scratch.task == task) return;
    n->scratch = Node::Scratch{};
    n->scratch.task = task;
    stack.push_back(n);
  };
  for (const Edge& r : roots) visit(r.node.get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    order.push_back(n);
    for (const Edge& e : n->next) visit(e.node.get());
  }
  return order;
}

// For autograd::grad: marks the nodes from which a target can be reached (the only ones
// worth running). Iterative post-order.
void mark_needed(const std::vector<Node*>& nodes) {
  for (Node* start : nodes) {
    if (start->scratch.visited) continue;
    std::vector<std::pair<Node*, size_t>> stack{{start, 0}};
    start->scratch.visited = true;
    while (!stack.empty()) {
      auto& [n, i] = stack.back();
      if (i < n->next.size()) {
        Node* c = n->next[i++].node.get();
        if (c && !c->scratch.visited) {
          c->scratch.visited = true;
          stack.push_back({c, 0});
        }
        continue;
      }
      bool need = n->scratch.target;
      for (const Edge& e : n->next) need = need || (e.node && e.node->scratch.needed);
      n->scratch.needed = need;
      stack.pop_back();
    }
  }
}

void accumulate(std::vector<Tensor>& buf, uint32_t slot, const Tensor& g) {
  if (buf[slot].defined())
    buf[slot] = add(buf[slot], g);
  else
    buf[slot] = g;
}

void check_anomaly(const Node& n, const std::vector<Tensor>& res) {
  for (size_t i = 0; i < res.size(); ++i) {
    if (!res[i].defined() || !is_floating(res[i].dtype())) continue;
    NoGradGuard no_grad;
    if (!all(isfinite(res[i])).item<bool>())
      fail<ValueError>(n.name(),
                       "anomaly mode: the backward of '{}' produced a NaN or Inf gradient for "
                       "its input {} (shape {})",
                       n.forward_name().empty() ? n.name() : std::string(n.forward_name()), i,
                       shape_str(res[i].shape()));
  }
}

// Zeros for the slots nobody sent a gradient to, when some other slot got one (not for aux
// outputs: their rules read an undefined cotangent as zero).
bool fill_missing(const Node& n, std::vector<Tensor>& grads) {
  bool any = false;
  for (const Tensor& g : grads) any = any || g.defined();
  if (!any) return false;
  for (size_t s = 0; s < grads.size(); ++s)
    if (!grads[s].defined() && n.out_meta[s].zero_if_unused &&
        rules::is_differentiable(n.out_meta[s].dtype))
      grads[s] = zeros(n.out_meta[s].shape, n.out_meta[s].dtype);
  return true;
}

// Tensor hooks: the node's pre-hooks (retain_grad last), and a leaf's hooks at its
// accumulator.
void run_hooks(Node& n, std::vector<Tensor>& grads) {
  if (n.pre_hooks.empty() && !n.is_accumulator()) return;
  for (bool retain_hooks : {false, true})  // retain_grad keeps what the others leave
    for (auto& [id, hook] : n.pre_hooks) {
      Tensor& g = grads[hook.first];
      if (!g.defined() || (id == 0) != retain_hooks) continue;
      Tensor r = hook.second(g);
      if (r.defined()) g = r;
    }
  if (!n.is_accumulator() || !grads[0].defined()) return;
  auto impl = static_cast<AccumulateGrad&>(n).leaf.lock();
  if (!impl || !impl->autograd) return;
  for (auto& [id, hook] : impl->autograd->hooks) {
    (void)id;
    Tensor r = hook(grads[0]);
    if (r.defined()) grads[0] = r;
  }
}

class GradModeScope {
 public:
  explicit GradModeScope(bool on) : prev_(is_grad_enabled()) { set_grad_enabled(on); }
  ~GradModeScope() { set_grad_enabled(prev_); }
  GradModeScope(const GradModeScope&) = delete;
  GradModeScope& operator=(const GradModeScope&) = delete;

 private:
  bool prev_;
};

class BackwardOpScope {
 public:
  explicit BackwardOpScope(std::string_view op) : prev_(backward_op()) { set_backward_op(op); }
  ~BackwardOpScope() { set_backward_op(prev_); }
  BackwardOpScope(const BackwardOpScope&) = delete;
  BackwardOpScope& operator=(const BackwardOpScope&) = delete;

 private:
  std::string_view prev_;
};

}  // namespace

std::vector<Tensor> run_backward(const std::vector<Edge>& roots, const std::vector<Tensor>& seeds,
                                 const std::vector<Edge>& capture, bool retain_graph,
                                 bool create_graph, bool allow_unused) {
  // One pass at a time: concurrent passes from several threads share the leaves'
  // accumulators (and so their per-pass scratch and .grad). Recursive: a custom backward or a
  // checkpoint runs a nested pass on the same thread.
  static std::recursive_mutex engine_mutex;
  std::lock_guard<std::recursive_mutex> one_pass(engine_mutex);
  GradModeScope grad_mode(create_graph);
  // Backward ops run in the dtypes autocast chose for their forward ops, not under its policy.
  amp::NoAutocast no_autocast;
  const uint64_t task = g_next_task.fetch_add(1, std::memory_order_relaxed);
  std::vector<Node*> nodes = reachable(roots, task);
  for (const Edge& c : capture)
    if (c.node && c.node->scratch.task == task) c.node->scratch.target = true;
  if (!capture.empty()) {
    mark_needed(nodes);
    for (Node* n : nodes)  // accumulators have side effects: grad() never runs them
      n->scratch.runs = n->scratch.needed && !n->is_accumulator();
  } else {
    for (Node* n : nodes) n->scratch.runs = true;
  }
  for (Node* n : nodes) {
    if (!n->scratch.runs) continue;
    for (const Edge& e : n->next)
      if (e.node && (e.node->scratch.runs || e.node->scratch.target)) ++e.node->scratch.deps;
  }
  for (Node* n : nodes) n->scratch.buffer.resize(n->out_meta.size());

  using Ready = std::pair<uint64_t, Node*>;
  std::priority_queue<Ready> ready;
  auto push_ready = [&](Node* n) {
    if (!n->scratch.queued) {
      n->scratch.queued = true;
      ready.push({n->seq, n});
    }
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    Node* n = roots[r].node.get();
    if (!n) continue;
    accumulate(n->scratch.buffer, roots[r].slot, seeds[r]);
    if (n->scratch.deps == 0) push_ready(n);
  }

  std::vector<Tensor> captured(capture.size());
  std::vector<bool> reached(capture.size(), false);
  while (!ready.empty()) {
    Node* n = ready.top().second;
    ready.pop();
    std::vector<Tensor> grads = std::move(n->scratch.buffer);
    n->scratch.buffer = {};
    run_hooks(*n, grads);
    if (n->scratch.target)
      for (size_t c = 0; c < capture.size(); ++c)
        if (capture[c].node.get() == n) {
          reached[c] = true;
          captured[c] = grads[capture[c].slot];
        }
    if (!n->scratch.runs) continue;
    std::vector<Tensor> res;
    if (fill_missing(*n, grads)) {
      BackwardOpScope tag(n->forward_name());
      res = n->apply(grads);
      if (is_anomaly_enabled()) check_anomaly(*n, res);
    }
    if (!retain_graph) n->release();
    for (size_t i = 0; i < n->next.size(); ++i) {
      Node* c = n->next[i].node.get();
      if (!c || c->scratch.task != task || !(c->scratch.runs || c->scratch.target)) continue;
      if (i < res.size() && res[i].defined())
        accumulate(c->scratch.buffer, n->next[i].slot, res[i]);
      if (--c->scratch.deps == 0) push_ready(c);
    }
  }
  for (Node* n : nodes) n->scratch.buffer = {};  // nodes that never became ready
  for (size_t c = 0; c < capture.size(); ++c) {
    if (!reached[c] && !allow_unused)
      fail<ValueError>("autograd.grad",
                       "input {} is not used to compute the outputs; pass allow_unused=true "
                       "to get an undefined gradient for it",
                       c);
    if (reached[c] && !captured[c].defined()) {
      const OutMeta& m = capture[c].node->out_meta[capture[c].slot];
      captured[c] = zeros(m.shape, m.dtype);
    }
  }
  return captured;
}

namespace {

std::vector<Tensor> seeds_for(const std::vector<Tensor>& outputs,
                              const std::vector<Tensor>& grad_outputs, std::string_view op) {
  if (!grad_outputs.empty() && grad_outputs.size() != outputs.size())
    fail<ValueError>(op, "got {} gradients for {} outputs", grad_outputs.size(), outputs.size());
  std::vector<Tensor> seeds;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& out = outputs[i];
    if (!needs_grad(out))
      fail<ValueError>(op,
                       "output {} (shape {}) does not require grad and has no grad_fn: no "
                       "recorded op connects it to a tensor that requires grad",
                       i, shape_str(out.shape()));
    Tensor g = grad_outputs.empty() ? Tensor() : grad_outputs[i];
    if (!g.defined()) {
      if (out.numel() != 1)
        fail<ValueError>(op,
                         "a gradient can be created implicitly only for scalar outputs; "
                         "output {} has shape {}: pass a gradient of that shape",
                         i, shape_str(out.shape()));
      g = ones_like(out);
    } else if (g.shape() != out.shape()) {
      fail<ShapeError>(op, "gradient of shape {} for output {} of shape {}", shape_str(g.shape()),
                       i, shape_str(out.shape()));
    }
    seeds.push_back(g);
  }
  return seeds;
}

std::vector<Edge> edges_of(const std::vector<Tensor>& ts) {
  std::vector<Edge> e;
  for (const Tensor& t : ts) {
    refresh_view_history(t);
    e.push_back(edge_of(t));
  }
  return e;
}

}  // namespace

void backward(const std::vector<Tensor>& outputs, const std::vector<Tensor>& grad_outputs,
              bool retain_graph, bool create_graph) {
  std::vector<Tensor> seeds = seeds_for(outputs, grad_outputs, "backward");
  run_backward(edges_of(outputs), seeds, {}, retain_graph || create_graph, create_graph, true);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, GradOptions opt) {
  std::vector<Tensor> seeds = seeds_for(outputs, grad_outputs, "autograd.grad");
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!needs_grad(inputs[i]))
      fail<ValueError>("autograd.grad",
                       "input {} (shape {}) does not require grad; call requires_grad_() on it "
                       "before computing the outputs",
                       i, shape_str(inputs[i].shape()));
  if (inputs.empty())
    fail<ValueError>("autograd.grad", "no inputs to differentiate with respect to");
  return run_backward(edges_of(outputs), seeds, edges_of(inputs),
                      opt.retain_graph || opt.create_graph, opt.create_graph, opt.allow_unused);
}

std::string grad_fn_name(const Tensor& t) {
  const AutogradMeta* m = meta_if(t);
  return m && m->grad_fn ? m->grad_fn->name() : std::string();
}

}  // namespace tessera::autograd
