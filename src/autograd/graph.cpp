// Graph objects: nodes (destroyed without recursion), leaf accumulators, saved tensors,
// per-tensor metadata and the thread-local modes (grad mode, jvp levels, anomaly).
#include "autograd/graph.h"

#include <algorithm>
#include <atomic>
#include <mutex>

#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::autograd {
namespace {

thread_local bool t_grad_enabled = true;
thread_local bool t_inference = false;
thread_local bool t_anomaly = false;
thread_local int t_fwd_levels = 0;  // jvp levels opened on this thread
thread_local int t_fwd_top = 0;     // innermost level visible to ops

std::atomic<uint64_t> g_next_seq{0};

// Freeing a long chain of nodes one destructor inside another would overflow the stack. The
// outermost destructor collects what dies next here and frees it in a loop instead.
struct Graveyard {
  std::vector<std::shared_ptr<Node>> nodes;
  std::vector<Tensor> tensors;
};
thread_local Graveyard* t_yard = nullptr;

template <class T>
void bury(T&& item) {
  if (t_yard) {
    if constexpr (std::is_same_v<std::decay_t<T>, Tensor>)
      t_yard->tensors.push_back(std::forward<T>(item));
    else
      t_yard->nodes.push_back(std::forward<T>(item));
    return;
  }
  Graveyard yard;
  t_yard = &yard;
  if constexpr (std::is_same_v<std::decay_t<T>, Tensor>)
    yard.tensors.push_back(std::forward<T>(item));
  else
    yard.nodes.push_back(std::forward<T>(item));
  while (!yard.nodes.empty() || !yard.tensors.empty()) {
    if (!yard.nodes.empty()) {
      std::shared_ptr<Node> n = std::move(yard.nodes.back());
      yard.nodes.pop_back();
    } else {
      Tensor t = std::move(yard.tensors.back());
      yard.tensors.pop_back();
    }
  }
  t_yard = nullptr;
}

}  // namespace

void bury_tensor(Tensor&& t) {
  if (t.defined()) bury(std::move(t));
}

Node::Node() : seq(g_next_seq.fetch_add(1, std::memory_order_relaxed)) {}

Node::~Node() {
  for (Edge& e : next)
    if (e.node) bury(std::move(e.node));
}

AccumulateGrad::AccumulateGrad(const std::shared_ptr<TensorImpl>& t) : leaf(t) {
  out_meta.push_back({t->shape, t->dtype});
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>& grads) {
  std::shared_ptr<TensorImpl> impl = leaf.lock();
  if (!impl || !grads[0].defined()) return {};
  AutogradMeta& m = *impl->autograd;
  Tensor g = grads[0];
  if (g.shape() != impl->shape)
    fail<ShapeError>("accumulate_grad", "gradient of shape {} for a leaf of shape {}",
                     shape_str(g.shape()), shape_str(impl->shape));
  if (!is_grad_enabled()) g = plain_alias(g);
  m.grad = m.grad.defined() ? add(m.grad, g) : g;
  return {};
}

SavedTensor::SavedTensor(const Tensor& t, bool is_output_of_saver, bool stand_in)
    : version_(t.version()), is_output_(is_output_of_saver), stand_in_(stand_in) {
  if (!is_output_of_saver) {
    t_ = t;
    return;
  }
  // Without history (the node would own itself), but with its tangents (forward over
  // reverse needs them), themselves without reverse history for the same reason.
  t_ = plain_alias(t);
  if (const AutogradMeta* m = meta_if(t))
    for (const auto& [level, tan] : m->tangents)
      meta_of(t_).tangents.push_back({level, plain_alias(tan)});
}

void SavedTensor::add_tangent(int level, const Tensor& tangent) {
  if (is_output_ && t_.defined()) meta_of(t_).tangents.push_back({level, plain_alias(tangent)});
}

void SavedTensor::reset() {
  if (!stand_in_) bury_tensor(std::move(t_));
}

Tensor SavedTensor::unpack(const std::shared_ptr<Node>& saver, uint32_t output_nr,
                           std::string_view forward_op) const {
  if (!t_.defined())
    fail<ValueError>(fmt::format("{}_backward", forward_op),
                     "backward through the graph a second time (its saved tensors were freed); "
                     "pass retain_graph=true to the first backward");
  if (t_.version() != version_)
    fail<ValueError>(
        fmt::format("{}_backward", forward_op),
        "a tensor of shape {} saved for its backward was modified in place by {} "
        "(version {}, saved at version {}); clone it before the in-place op",
        shape_str(t_.shape()),
        t_.storage()->last_writer().empty() ? "an in-place op" : t_.storage()->last_writer(),
        t_.version(), version_);
  if (!is_output_ || !saver) return t_;
  // create_graph: give the saved output its history back, so higher-order gradients see it.
  Tensor r(std::make_shared<TensorImpl>(t_.impl()));
  r.impl().autograd = std::make_shared<AutogradMeta>();
  r.impl().autograd->grad_fn = saver;
  r.impl().autograd->output_nr = output_nr;
  if (const AutogradMeta* m = meta_if(t_)) r.impl().autograd->tangents = m->tangents;
  return r;
}

AutogradMeta& meta_of(const Tensor& t) {
  auto& m = t.impl().autograd;
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}

Edge edge_of(const Tensor& t) {
  AutogradMeta* m = meta_if(t);
  if (!m) return {};
  if (m->grad_fn) return {m->grad_fn, m->output_nr};
  if (!m->requires_grad) return {};
  // Threads recording ops on the same leaf would otherwise race to create its accumulator.
  static std::mutex accumulator_mutex;
  std::lock_guard<std::mutex> lock(accumulator_mutex);
  std::shared_ptr<Node> acc = m->accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    m->accumulator = acc;
  }
  return {acc, 0};
}

Tensor history_alias(const Tensor& t) {
  Tensor r = plain_alias(t);
  if (const AutogradMeta* m = meta_if(t); m && (m->grad_fn || m->requires_grad)) {
    AutogradMeta& rm = meta_of(r);
    rm.grad_fn = m->grad_fn;
    rm.output_nr = m->output_nr;
    if (!m->grad_fn) {  // a leaf: share its accumulator so gradients still reach its .grad
      rm.requires_grad = true;
      rm.alias_accumulator = edge_of(t).node;
      rm.accumulator = rm.alias_accumulator;
    }
  }
  return r;
}

Tensor plain_alias(const Tensor& t) {
  const TensorImpl& i = t.impl();
  return Tensor(std::make_shared<TensorImpl>(
      TensorImpl{i.storage, i.shape, i.strides, i.offset, i.dtype, nullptr}));
}

// ---- modes ----------------------------------------------------------------------------------

void refresh_layer_bit() {
  set_layer_active(Layer::Autograd, !t_inference && (t_grad_enabled || t_fwd_top > 0));
}

bool is_grad_enabled() { return t_grad_enabled && !t_inference; }
void set_grad_enabled(bool on) {
  t_grad_enabled = on;
  refresh_layer_bit();
}

NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { set_grad_enabled(false); }
NoGradGuard::~NoGradGuard() { set_grad_enabled(prev_); }
EnableGradGuard::EnableGradGuard() : prev_(t_grad_enabled) { set_grad_enabled(true); }
EnableGradGuard::~EnableGradGuard() { set_grad_enabled(prev_); }
InferenceMode::InferenceMode() : prev_(t_inference) {
  t_inference = true;
  refresh_layer_bit();
}
InferenceMode::~InferenceMode() {
  t_inference = prev_;
  refresh_layer_bit();
}

bool is_anomaly_enabled() { return t_anomaly; }
AnomalyMode::AnomalyMode() : prev_(t_anomaly) { t_anomaly = true; }
AnomalyMode::~AnomalyMode() { t_anomaly = prev_; }

int fwd_top_level() { return t_fwd_top; }
int push_fwd_level() {
  t_fwd_top = ++t_fwd_levels;
  refresh_layer_bit();
  return t_fwd_levels;
}
void pop_fwd_level(int level) {
  t_fwd_levels = level - 1;
  t_fwd_top = t_fwd_levels;
  refresh_layer_bit();
}
int set_fwd_top(int level) {
  const int prev = t_fwd_top;
  t_fwd_top = level;
  refresh_layer_bit();
  return prev;
}

Tensor tangent_at(const Tensor& t, int level) {
  if (const AutogradMeta* m = t.defined() ? meta_if(t) : nullptr)
    for (const auto& [l, tan] : m->tangents)
      if (l == level) return tan;
  return {};
}

void set_tangent(const Tensor& t, int level, const Tensor& tangent) {
  auto& tans = meta_of(t).tangents;
  std::erase_if(tans, [&](const auto& p) { return p.first == level; });
  if (tangent.defined()) tans.push_back({level, tangent});
}

}  // namespace tessera::autograd
