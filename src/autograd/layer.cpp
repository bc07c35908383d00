// The funnel's autograd layer: forward-mode tangents (jvp rules) and reverse-mode recording
// (one PrimNode per call), in-place rebasing and in-place writes through views.
#include <numeric>

#include "autograd/graph.h"
#include "autograd/rules.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"

namespace tessera::autograd {
namespace {

bool has_float_output_grad(const Tensor& t) { return rules::is_differentiable(t.dtype()); }

/// The backward of one primitive call: its vjp rule applied to the saved inputs and outputs.
struct PrimNode final : Node {
  const Primitive* prim;
  Attrs attrs;
  std::vector<SavedTensor> inputs, outputs;
  bool released = false;
  bool wants_all = false;  // under CopySlices, which also uses input 0's gradient

  PrimNode(const Primitive& p, const Attrs& a) : prim(&p), attrs(a) {}
  ~PrimNode() override { release(); }

  std::string name() const override { return prim->name + "_backward"; }
  std::string_view forward_name() const override { return prim->name; }
  void note_output_tangent(uint32_t slot, int level, const Tensor& tangent) override {
    if (slot < outputs.size()) outputs[slot].add_tangent(level, tangent);
  }
  void release() override {
    for (auto& s : inputs) s.reset();
    for (auto& s : outputs) s.reset();
    released = true;
  }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!prim->vjp)
      fail<NotImplementedError>(prim->name, "has no vjp rule (reverse-mode autodiff)");
    std::vector<Tensor> in, out;
    // Saved outputs get this node back as their history only when the backward is recorded.
    const std::shared_ptr<Node> self = is_grad_enabled() ? shared_from_this() : nullptr;
    for (const auto& s : inputs) in.push_back(s.unpack(self, 0, prim->name));
    for (size_t o = 0; o < outputs.size(); ++o)
      out.push_back(outputs[o].unpack(self, static_cast<uint32_t>(o), prim->name));
    // Inputs without an edge (data, constants) need no gradient: rules may skip them.
    uint64_t wanted = 0;
    for (size_t i = 0; i < next.size() && i < 64; ++i)
      if (wants_all || next[i].valid()) wanted |= uint64_t{1} << i;
    std::vector<Tensor> res;
    {
      rules::WantedGradsScope scope(wanted);
      res = prim->vjp(in, out, grads, attrs);
    }
    if (res.size() != in.size())
      fail<ValueError>(name(), "vjp rule returned {} gradients for {} inputs", res.size(),
                       in.size());
    for (size_t i = 0; i < res.size(); ++i) {
      if (!res[i].defined() || !next[i].valid()) continue;
      if (res[i].shape() != in[i].shape())
        fail<ShapeError>(name(), "gradient for input {} has shape {}, the input has {}", i,
                         shape_str(res[i].shape()), shape_str(in[i].shape()));
      res[i] = rules::to_dtype(res[i], in[i].dtype());
    }
    return res;
  }
};

// Flat positions (in the row-major elements of a contiguous base) of every element of a
// view of it: how gradients move between a base and a view written in place.
Tensor view_positions(const Tensor& base, const Tensor& view, std::string_view op) {
  if (!base.is_contiguous())
    fail<NotImplementedError>(op,
                              "in-place write through a view of a non-contiguous base "
                              "(shape {}) under autograd",
                              shape_str(base.shape()));
  Tensor pos = full({}, Scalar(view.offset() - base.offset()), kInt64);
  for (int64_t d = 0; d < view.dim(); ++d) {
    Shape s(static_cast<size_t>(view.dim()), 1);
    s[d] = view.shape()[d];
    pos = add(pos, mul(arange(Scalar(view.shape()[d]), kInt64).reshape(s), Scalar(view.stride(d))));
  }
  return pos.expand(view.shape()).contiguous();
}

/// The history of a view after an in-place write through it: the view is its base's elements
/// at fixed positions.
struct ViewOfBase final : Node {
  Shape base_shape;
  Tensor positions;  // of the view's elements in the base
  ViewOfBase(Shape bs, Tensor pos) : base_shape(std::move(bs)), positions(std::move(pos)) {}
  std::string name() const override { return "view_of_base_backward"; }
  std::string_view forward_name() const override { return "view"; }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    Tensor flat = zeros({checked_numel(base_shape, "view")}, g.dtype());
    flat = index_put(flat, {positions.reshape({-1})}, g.reshape({-1}), /*accumulate=*/true);
    return {flat.reshape(base_shape)};
  }
};

/// The base's history after an in-place op wrote into a view of it (PyTorch's CopySlices):
/// outside the view the gradient passes to the old base; inside, it goes through the
/// in-place op's own backward, whose input-0 gradient lands back in the view's positions.
struct CopySlices final : Node {
  Shape base_shape;
  Tensor positions;
  std::shared_ptr<Node> inner;  // the in-place op's node (its next[0] is unused)
  CopySlices(Shape bs, Tensor pos, std::shared_ptr<Node> op)
      : base_shape(std::move(bs)), positions(std::move(pos)), inner(std::move(op)) {}
  std::string name() const override { return "copy_slices"; }
  std::string_view forward_name() const override { return inner->forward_name(); }
  void release() override { inner->release(); }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    const Tensor idx = positions.reshape({-1});
    Tensor g_view = index(g.reshape({-1}), {idx}).reshape(positions.shape());
    std::vector<Tensor> inner_grads{g_view};
    std::vector<Tensor> res = inner->apply(inner_grads);
    Tensor g_old_view = rules::or_zeros(res[0], g_view);
    res[0] = index_put(g.reshape({-1}), {idx}, g_old_view.reshape({-1})).reshape(base_shape);
    return res;
  }
};

}  // namespace

void refresh_view_history(const Tensor& t) {
  AutogradMeta* m = t.defined() ? meta_if(t) : nullptr;
  if (!m || !m->view_base.defined()) return;
  const AutogradMeta* bm = meta_if(m->view_base);
  if (!bm || bm->rebases == m->base_rebases_seen) return;
  m->base_rebases_seen = bm->rebases;
  if (!needs_grad(m->view_base)) return;
  Tensor pos;
  {
    NoGradGuard no_grad;
    pos = view_positions(m->view_base, t, "view");
  }
  auto vb = std::make_shared<ViewOfBase>(m->view_base.shape(), pos);
  vb->out_meta.push_back({t.shape(), t.dtype()});
  vb->next.push_back(edge_of(m->view_base));
  m->grad_fn = vb;
  m->output_nr = 0;
  m->requires_grad = false;
}

namespace {

bool any_needs_grad(Inputs in) {
  bool any = false;
  for (const Tensor& t : in) {
    refresh_view_history(t);
    any = any || needs_grad(t);
  }
  return any;
}

// The root tensor whose storage a view shares (views of views share the first base).
Tensor root_base(const Tensor& t) {
  const AutogradMeta* m = meta_if(t);
  return m && m->view_base.defined() ? m->view_base : t;
}

void check_inplace_allowed(const Primitive& p, const Tensor& dst) {
  const Tensor base = root_base(dst);
  for (const Tensor* t : {&dst, &base}) {
    const AutogradMeta* m = meta_if(*t);
    if (m && m->requires_grad && !m->grad_fn)
      fail<ValueError>(p.name,
                       "a leaf tensor that requires grad{} is used in an in-place operation; "
                       "wrap the update in NoGradGuard or work on a clone",
                       t == &dst ? "" : " (through a view of it)");
  }
}

// In-place on a view: the base gets CopySlices history, the view a ViewOfBase node.
void rebase_view(const Primitive& p, const Tensor& view, const std::shared_ptr<PrimNode>& node) {
  node->wants_all = true;
  const Tensor base = root_base(view);
  Tensor pos = view_positions(base, view, p.name);
  NoGradGuard no_grad;  // the positions are constants
  auto cs = std::make_shared<CopySlices>(base.shape(), pos, node);
  cs->out_meta.push_back({base.shape(), base.dtype()});
  cs->next = node->next;
  cs->next[0] = edge_of(base);
  AutogradMeta& bm = meta_of(base);
  bm.grad_fn = cs;
  bm.output_nr = 0;
  ++bm.rebases;
  auto vb = std::make_shared<ViewOfBase>(base.shape(), pos);
  vb->out_meta.push_back({view.shape(), view.dtype()});
  vb->next.push_back({cs, 0});
  AutogradMeta& vm = meta_of(view);
  vm.grad_fn = vb;
  vm.output_nr = 0;
  vm.base_rebases_seen = bm.rebases;
}

void record(const Primitive& p, Inputs in, const Attrs& a, std::span<const Tensor> out) {
  auto node = std::make_shared<PrimNode>(p, a);
  const bool inplace = p.has(kMutatesInput0);
  const bool skip_in = p.vjp_skips & kVjpSkipsFloatInputs;
  const bool skip_out = p.vjp_skips & kVjpSkipsOutputs;
  for (size_t i = 0; i < in.size(); ++i) {
    const bool diff = rules::is_differentiable(in[i].dtype());
    node->next.push_back(diff ? edge_of(in[i]) : Edge{});
    // An in-place op's input 0 is its output: keep it without history (no cycle).
    if (skip_in && diff)
      node->inputs.emplace_back(rules::stand_in(in[i]), false, /*stand_in=*/true);
    else if (inplace && i == 0)
      node->inputs.emplace_back(plain_alias(in[0]), false);
    else
      node->inputs.emplace_back(in[i], false);
  }
  for (size_t o = 0; o < out.size(); ++o) {
    if (skip_out)
      node->outputs.emplace_back(rules::stand_in(out[o]), false, /*stand_in=*/true);
    else
      node->outputs.emplace_back(out[o], true);
    node->out_meta.push_back({out[o].shape(), out[o].dtype(), o == 0 || !p.has(kAuxOutputs)});
  }
  const bool through_view = inplace && meta_if(in[0]) && meta_if(in[0])->view_base.defined();
  if (through_view) {
    rebase_view(p, in[0], node);
    return;
  }
  for (size_t o = 0; o < out.size(); ++o) {
    if (!has_float_output_grad(out[o])) continue;
    AutogradMeta& m = meta_of(out[o]);
    m.grad_fn = node;
    m.output_nr = static_cast<uint32_t>(o);
  }
}

std::vector<Tensor> reverse_layer(const Primitive& p, Inputs in, const Attrs& a) {
  const bool grad_on = is_grad_enabled();
  const bool inplace = p.has(kMutatesInput0);
  if (grad_on && inplace) check_inplace_allowed(p, in[0]);
  const bool rec = grad_on && !p.has(kNonDifferentiable) && any_needs_grad(in);
  std::vector<Tensor> out = redispatch(p, in, a, Layer::Autograd);
  if (rec) record(p, in, a, out);
  // Views remember their base, so a later in-place write through them reaches the base.
  if (grad_on && p.view && !in.empty()) {
    const Tensor base = root_base(in[0]);
    const AutogradMeta* bm = meta_if(base);
    for (Tensor& o : out) {
      AutogradMeta& om = meta_of(o);
      om.view_base = base;
      om.base_rebases_seen = bm ? bm->rebases : 0;
    }
  }
  return out;
}

int top_tangent_level(Inputs in) {
  const int top = fwd_top_level();
  int best = 0;
  for (const Tensor& t : in)
    if (const AutogradMeta* m = meta_if(t))
      for (const auto& [level, tan] : m->tangents)
        if (level <= top && level > best) best = level;
  return best;
}

std::vector<Tensor> layer(const Primitive& p, Inputs in, const Attrs& a);

// Forward mode at `level`: the layers below compute the outputs (and handle lower levels
// and recording), then the jvp rule, with this level hidden, computes the tangents.
std::vector<Tensor> forward_layer(const Primitive& p, Inputs in, const Attrs& a, int level) {
  const int prev = set_fwd_top(level - 1);
  std::vector<Tensor> out, tangents;
  try {
    out = layer(p, in, a);
    std::vector<Tensor> tin(in.size());
    for (size_t i = 0; i < in.size(); ++i) tin[i] = tangent_at(in[i], level);
    if (!p.jvp) fail<NotImplementedError>(p.name, "has no jvp rule (forward-mode autodiff)");
    std::vector<Tensor> primal_out;
    for (const Tensor& o : out)
      primal_out.push_back(history_alias(o));  // o itself would end up owning its tangent
    tangents = p.jvp(in, primal_out, tin, a);
  } catch (...) {
    set_fwd_top(prev);
    throw;
  }
  set_fwd_top(prev);
  for (size_t o = 0; o < out.size() && o < tangents.size(); ++o) {
    if (!tangents[o].defined() || !has_float_output_grad(out[o])) continue;
    if (tangents[o].shape() != out[o].shape())
      fail<ShapeError>(p.name, "jvp rule gave a tangent of shape {} for an output of shape {}",
                       shape_str(tangents[o].shape()), shape_str(out[o].shape()));
    const Tensor tangent = rules::to_dtype(tangents[o], out[o].dtype());
    set_tangent(out[o], level, tangent);
    if (const AutogradMeta* m = meta_if(out[o]); m && m->grad_fn)
      m->grad_fn->note_output_tangent(m->output_nr, level, tangent);
  }
  return out;
}

std::vector<Tensor> layer(const Primitive& p, Inputs in, const Attrs& a) {
  // Fast path: no input carries autograd state, so there is nothing to record or propagate
  // (views still go the long way: they remember their base for later in-place writes).
  bool any_meta = p.view != nullptr;
  for (const Tensor& t : in) any_meta = any_meta || t.impl().autograd != nullptr;
  if (!any_meta) return redispatch(p, in, a, Layer::Autograd);
  if (!p.has(kNonDifferentiable) && fwd_top_level() > 0)
    if (const int level = top_tangent_level(in)) return forward_layer(p, in, a, level);
  return reverse_layer(p, in, a);
}

const bool g_installed = [] {
  set_layer_handler(Layer::Autograd, layer);
  return true;
}();

}  // namespace
}  // namespace tessera::autograd
