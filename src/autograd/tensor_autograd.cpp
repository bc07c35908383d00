// Tensor's autograd methods, custom functions and activation checkpointing.
#include <atomic>

#include "autograd/graph.h"
#include "autograd/rules.h"
#include "autograd/vmap.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/runtime/autocast.h"

namespace tessera {

using autograd::meta_if;
using autograd::meta_of;

bool Tensor::requires_grad() const { return autograd::needs_grad(*this); }

Tensor& Tensor::requires_grad_(bool on) {
  AutogradMeta* m = meta_if(*this);
  if (m && m->grad_fn)
    fail<ValueError>("requires_grad_",
                     "only leaf tensors can change requires_grad (this one has grad_fn {}); "
                     "use detach() to get a leaf",
                     m->grad_fn->name());
  if (on && dtype() == kComplex64)
    fail<NotImplementedError>("requires_grad_", "autograd of complex tensors is not implemented");
  if (on && !rules::is_differentiable(dtype()))
    fail<DTypeError>("requires_grad_", "only floating point tensors can require gradients, got {}",
                     dtype_name(dtype()));
  if (on || m) meta_of(*this).requires_grad = on;
  return *this;
}

namespace autograd {

Tensor parameter_source(const Tensor& t) {
  const AutogradMeta* m = meta_if(t);
  if (!m || t.impl().batched || !m->tangents.empty()) return {};
  const Tensor leaf = m->view_base.defined() ? m->view_base : t;
  const AutogradMeta* lm = meta_if(leaf);
  if (!lm || !lm->requires_grad || lm->grad_fn || leaf.impl().batched || !lm->tangents.empty())
    return {};
  return leaf;
}

}  // namespace autograd

bool Tensor::is_leaf() const {
  const AutogradMeta* m = meta_if(*this);
  return !m || !m->grad_fn;
}

Tensor Tensor::grad() const {
  const AutogradMeta* m = meta_if(*this);
  return m ? m->grad : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  if (g.defined() && g.shape() != shape())
    fail<ShapeError>("set_grad", "gradient of shape {} for a tensor of shape {}",
                     shape_str(g.shape()), shape_str(shape()));
  meta_of(*this).grad = g;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  autograd::backward({*this},
                     gradient.defined() ? std::vector<Tensor>{gradient} : std::vector<Tensor>{},
                     retain_graph, create_graph);
}

Tensor Tensor::detach() const {
  if (const autograd::Batched* b = autograd::batch_of(*this))  // inside vmap: keep batched
    return autograd::wrap_batched(b->value.detach(), b->level, b->bdim);
  return autograd::plain_alias(*this);
}

namespace {
std::atomic<int64_t> g_next_hook{1};
}  // namespace

void Tensor::retain_grad() const {
  AutogradMeta* m = meta_if(*this);
  if (!m || (!m->grad_fn && !m->requires_grad))
    fail<ValueError>("retain_grad", "the tensor does not require grad");
  if (!m->grad_fn || m->retains_grad) return;  // leaves keep their grad anyway
  m->retains_grad = true;
  std::weak_ptr<TensorImpl> weak = impl_ptr();
  m->grad_fn->pre_hooks.push_back({0, {m->output_nr, [weak](const Tensor& g) {
                                         if (auto impl = weak.lock()) {
                                           Tensor& slot = impl->autograd->grad;
                                           slot = slot.defined() ? add(slot, g) : g;
                                         }
                                         return Tensor();
                                       }}});
}

bool Tensor::retains_grad() const {
  const AutogradMeta* m = meta_if(*this);
  return m && m->retains_grad;
}

int64_t Tensor::register_hook(std::function<Tensor(const Tensor&)> hook) const {
  AutogradMeta* m = meta_if(*this);
  if (!m || (!m->grad_fn && !m->requires_grad))
    fail<ValueError>("register_hook",
                     "cannot register a hook on a tensor that does not "
                     "require grad");
  const int64_t id = g_next_hook++;
  if (m->grad_fn)
    m->grad_fn->pre_hooks.push_back({id, {m->output_nr, std::move(hook)}});
  else
    m->hooks.push_back({id, std::move(hook)});
  return id;
}

void Tensor::remove_hook(int64_t id) const {
  AutogradMeta* m = meta_if(*this);
  if (!m) return;
  std::erase_if(m->hooks, [id](const auto& h) { return h.first == id; });
  if (m->grad_fn)
    std::erase_if(m->grad_fn->pre_hooks, [id](const auto& h) { return h.first == id; });
}

namespace autograd {

void FunctionCtx::save_for_backward(std::vector<Tensor> ts) {
  versions_.clear();
  for (const Tensor& t : ts) versions_.push_back(t.defined() ? t.version() : 0);
  saved_output_nr_.assign(ts.size(), -1);
  saved_ = std::move(ts);
}

std::vector<Tensor> FunctionCtx::saved() const {
  for (size_t i = 0; i < saved_.size(); ++i)
    if (saved_[i].defined() && saved_[i].version() != versions_[i])
      fail<ValueError>("custom_function",
                       "saved tensor {} was modified in place by {} after being saved", i,
                       saved_[i].storage()->last_writer());
  std::vector<Tensor> out = saved_;
  if (std::shared_ptr<Node> node = node_.lock()) {
    for (size_t i = 0; i < out.size(); ++i) {
      if (saved_output_nr_[i] < 0) continue;
      out[i] = plain_alias(saved_[i]);
      AutogradMeta& m = meta_of(out[i]);
      m.grad_fn = node;
      m.output_nr = static_cast<uint32_t>(saved_output_nr_[i]);
    }
  }
  return out;
}

void FunctionCtx::mark_non_differentiable(std::vector<Tensor> ts) {
  non_diff_.insert(non_diff_.end(), ts.begin(), ts.end());
}

namespace {

struct CustomNode final : Node {
  std::string fn_name;
  CustomBackward backward;
  FunctionCtx ctx;
  std::vector<OutMeta> in_meta;
  bool released = false;

  std::string name() const override { return fn_name + "_backward"; }
  std::string_view forward_name() const override { return fn_name; }
  void release() override {
    ctx = FunctionCtx();
    released = true;
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (released)
      fail<ValueError>(name(),
                       "backward through the graph a second time; pass "
                       "retain_graph=true to the first backward");
    std::vector<Tensor> res = backward(ctx, grads);
    if (res.size() != in_meta.size())
      fail<ValueError>(name(), "backward returned {} gradients for {} inputs", res.size(),
                       in_meta.size());
    for (size_t i = 0; i < res.size(); ++i)
      if (res[i].defined() && next[i].valid() && res[i].shape() != in_meta[i].shape)
        fail<ShapeError>(name(),
                         "backward returned a gradient of shape {} for input {} of shape {}",
                         shape_str(res[i].shape()), i, shape_str(in_meta[i].shape));
    return res;
  }
};

}  // namespace

std::vector<Tensor> apply_function(const std::string& name, const CustomForward& forward,
                                   const CustomBackward& backward,
                                   const std::vector<Tensor>& inputs) {
  for (const Tensor& t : inputs)
    if (batch_of(t) || (fwd_top_level() > 0 && meta_if(t) && !meta_if(t)->tangents.empty()))
      fail<NotImplementedError>(name,
                                "custom autograd functions inside vmap or jvp are not implemented");
  auto node = std::make_shared<CustomNode>();
  std::vector<Tensor> outputs;
  {
    NoGradGuard no_grad;
    outputs = forward(node->ctx, inputs);
  }
  bool any = false;
  for (const Tensor& t : inputs) any = any || needs_grad(t);
  if (!any || !is_grad_enabled()) return outputs;
  node->fn_name = name;
  node->backward = backward;
  for (const Tensor& t : inputs) {
    node->next.push_back(t.defined() && rules::is_differentiable(t.dtype()) ? edge_of(t) : Edge{});
    node->in_meta.push_back(t.defined() ? OutMeta{t.shape(), t.dtype()} : OutMeta{{}, kFloat32});
  }
  for (size_t o = 0; o < outputs.size(); ++o) {
    Tensor& out = outputs[o];
    node->out_meta.push_back({out.shape(), out.dtype()});
    bool non_diff = !rules::is_differentiable(out.dtype());
    for (const Tensor& nd : node->ctx.non_differentiable()) non_diff = non_diff || nd.is_same(out);
    if (non_diff) continue;
    for (const Tensor& in : inputs)  // an output that is an input gets its own handle
      if (in.is_same(out)) out = plain_alias(out);
    auto& ctx = node->ctx;
    for (size_t i = 0; i < ctx.saved_.size(); ++i) {  // saving an output must not make a cycle
      if (!ctx.saved_[i].is_same(out)) continue;
      ctx.saved_[i] = plain_alias(ctx.saved_[i]);
      ctx.saved_output_nr_[i] = static_cast<int>(o);
      ctx.node_ = node;
    }
    AutogradMeta& m = meta_of(out);
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(o);
  }
  return outputs;
}

std::vector<Tensor> checkpoint(
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& fn,
    const std::vector<Tensor>& inputs) {
  auto forward = [&fn](FunctionCtx& ctx, const std::vector<Tensor>& in) {
    ctx.save_for_backward(in);
    return fn(in);
  };
  // The recomputation runs under the autocast state of the forward (the engine turns
  // autocast off during backward), so it rebuilds the same dtypes.
  auto backward = [fn, amp_states = amp::autocast_snapshot()](FunctionCtx& ctx,
                                                              const std::vector<Tensor>& grads) {
    // Recompute with recording on, from detached copies of the inputs, then backpropagate
    // through the recomputed graph.
    std::vector<Tensor> in = ctx.saved(), leaves;
    std::vector<size_t> which;
    for (size_t i = 0; i < in.size(); ++i) {
      Tensor d = in[i].detach();
      if (needs_grad(in[i])) {
        d.requires_grad_(true);
        leaves.push_back(d);
        which.push_back(i);
      }
      in[i] = d;
    }
    std::vector<Tensor> outs, gs;
    {
      EnableGradGuard grad_on;
      amp::AutocastStateGuard forward_autocast(amp_states);
      std::vector<Tensor> all = fn(in);
      for (size_t o = 0; o < all.size(); ++o)
        if (needs_grad(all[o]) && grads[o].defined()) {
          outs.push_back(all[o]);
          gs.push_back(grads[o]);
        }
    }
    std::vector<Tensor> res(in.size());
    if (outs.empty() || leaves.empty()) return res;
    std::vector<Tensor> g = grad(outs, leaves, gs, {false, is_grad_enabled(), true});
    for (size_t k = 0; k < which.size(); ++k) res[which[k]] = g[k];
    return res;
  };
  return apply_function("checkpoint", forward, backward, inputs);
}

}  // namespace autograd
}  // namespace tessera
