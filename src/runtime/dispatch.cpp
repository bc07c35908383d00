// The funnel. The fast path (no layer active, no observer) is: infer, schedule, allocate,
// run the kernel. schedule() itself lives in scheduler.cpp.
#include "tessera/runtime/dispatch.h"

#include <array>
#include <atomic>
#include <chrono>

#include "tessera/runtime/scheduler.h"

namespace tessera {
namespace {

constexpr int kNumLayers = static_cast<int>(Layer::kCount);
std::array<std::atomic<LayerFn>, kNumLayers> g_handlers{};
std::atomic<KernelObserver> g_observer{nullptr};
std::atomic<KernelBegin> g_begin{nullptr};
// Grad mode is on by default: the autograd layer starts active on every thread.
thread_local std::string_view t_backward_op;
thread_local uint32_t t_active = 1u << static_cast<int>(Layer::Autograd);

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

void check_inputs(const Primitive& p, Inputs in) {
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].defined()) fail<ValueError>(p.name, "input {} is an undefined tensor", i);
    if (in[i].storage()->released())
      fail<ValueError>(p.name, "input {} (shape {}) is a view of freed storage", i,
                       shape_str(in[i].shape()));
  }
}

std::vector<Tensor> allocate_outputs(const Primitive& p, Inputs in, const Attrs& attrs,
                                     Device device) {
  if (p.has(kMutatesInput0)) return {in[0]};
  std::vector<TensorMeta> metas = p.infer(in, attrs);
  std::vector<Tensor> out;
  out.reserve(metas.size());
  for (auto& m : metas) out.push_back(Tensor::empty(std::move(m.shape), m.dtype, device));
  return out;
}

void notify(const Primitive& p, Inputs in, std::span<const Tensor> out, const Attrs& attrs,
            const Kernel* k, Device d, int64_t t0, int64_t mark = -1) {
  if (KernelObserver obs = g_observer.load(std::memory_order_relaxed))
    obs(KernelEvent{&p, in, out, &attrs, k, d, t0, now_ns(), mark});
}

int64_t begin_mark(Device d) {
  KernelBegin begin = g_begin.load(std::memory_order_relaxed);
  return begin ? begin(d) : -1;
}

bool all_on(Inputs in, Device d) {
  for (const Tensor& t : in)
    if (t.device() != d) return false;
  return true;
}

// Under auto placement the scheduler may run a call where some inputs do not live yet.
std::vector<Tensor> moved_to(Inputs in, Device d) {
  std::vector<Tensor> out;
  out.reserve(in.size());
  for (const Tensor& t : in) out.push_back(t.to(d));
  return out;
}

// Layers 4-6 of the design: scheduler, profiler, kernel.
std::vector<Tensor> execute(const Primitive& p, Inputs in, const Attrs& attrs) {
  check_inputs(p, in);
  const bool observed = g_observer.load(std::memory_order_relaxed) != nullptr;
  const int64_t t0 = observed ? now_ns() : 0;
  if (p.view) {
    std::vector<Tensor> out = p.view(in, attrs);
    if (observed)
      notify(p, in, out, attrs, nullptr, in.empty() ? Device::cpu() : in[0].device(), t0);
    return out;
  }
  if (p.has(kMutatesInput0)) p.infer(in, attrs);  // validates
  Placement pl = schedule(p, in, attrs);
  std::vector<Tensor> moved;
  if (!p.has(kCrossDevice) && !all_on(in, pl.device)) in = moved = moved_to(in, pl.device);
  std::vector<Tensor> out = allocate_outputs(p, in, attrs, pl.device);
  const int64_t mark = observed ? begin_mark(pl.device) : -1;
  if (detail::scheduler_wants_timing()) {  // feeds the cost model's corrections
    const int64_t tk = now_ns();
    pl.kernel->fn(in, out, attrs);
    note_measured_time(p, in, attrs, pl.device, static_cast<double>(now_ns() - tk) * 1e-9);
  } else {
    pl.kernel->fn(in, out, attrs);
  }
  if (p.has(kMutatesInput0)) in[0].storage()->bump_version(p.name);
  if (observed) notify(p, in, out, attrs, pl.kernel, pl.device, t0, mark);
  return out;
}

std::vector<Tensor> run_from(const Primitive& p, Inputs in, const Attrs& attrs, int first) {
  for (int l = first; l < kNumLayers; ++l) {
    if (!(t_active & (1u << l))) continue;
    if (LayerFn fn = g_handlers[l].load(std::memory_order_acquire)) return fn(p, in, attrs);
  }
  return execute(p, in, attrs);
}

}  // namespace

std::vector<Tensor> dispatch(const Primitive& p, Inputs inputs, const Attrs& attrs) {
  if (t_active == 0) return execute(p, inputs, attrs);
  return run_from(p, inputs, attrs, 0);
}

std::vector<Tensor> dispatch(const Primitive& p, std::initializer_list<Tensor> inputs,
                             const Attrs& attrs) {
  return dispatch(p, Inputs(inputs.begin(), inputs.size()), attrs);
}

Tensor dispatch1(const Primitive& p, Inputs inputs, const Attrs& attrs) {
  return std::move(dispatch(p, inputs, attrs)[0]);
}

Tensor dispatch1(const Primitive& p, std::initializer_list<Tensor> inputs, const Attrs& attrs) {
  return dispatch1(p, Inputs(inputs.begin(), inputs.size()), attrs);
}

std::vector<Tensor> redispatch(const Primitive& p, Inputs inputs, const Attrs& attrs, Layer from) {
  return run_from(p, inputs, attrs, static_cast<int>(from) + 1);
}

void set_layer_handler(Layer layer, LayerFn fn) {
  g_handlers[static_cast<int>(layer)].store(fn, std::memory_order_release);
}

std::string_view backward_op() { return t_backward_op; }
void set_backward_op(std::string_view op) { t_backward_op = op; }

LayerFn layer_handler(Layer layer) {
  return g_handlers[static_cast<int>(layer)].load(std::memory_order_acquire);
}

void set_layer_active(Layer layer, bool on) {
  const uint32_t bit = 1u << static_cast<int>(layer);
  t_active = on ? (t_active | bit) : (t_active & ~bit);
}

bool layer_active(Layer layer) { return (t_active >> static_cast<int>(layer)) & 1u; }

void set_kernel_observer(KernelObserver obs, KernelBegin begin) {
  // The begin hook first: an observer that sees a call must have seen its begin.
  g_begin.store(begin, std::memory_order_release);
  g_observer.store(obs, std::memory_order_release);
}

}  // namespace tessera
