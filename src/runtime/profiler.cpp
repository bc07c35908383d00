// Profiler recording: the funnel's kernel observer, the allocator's memory observer, scopes
// and scheduler notes append to per-thread buffers of the active session; readers decode them.
//
// Device timing: for a kernel on a device with a marker (CUDA), the begin hook records a mark
// (event) before the launch and on_kernel one after it. The pair is resolved into device
// times once the end mark is done: retired in order as later calls find them done, and all
// at once when the records are read or the session stops. Device times are put on the
// session's clock through an anchor mark per device, recorded and waited for on its first
// kernel.
//
// Lifetime: hooks enter by bumping g_inflight *before* loading g_state, and stop() clears
// g_state *before* waiting for g_inflight to drain (all seq_cst), so once stop() returns no
// hook can still touch the session's state.
#include "tessera/runtime/profiler.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "tessera/core/allocator.h"
#include "tessera/core/error.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/device_facts.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::profiler {
namespace detail {

// Facts are kept for the CPU and the first 15 CUDA devices.
constexpr int kMaxDevices = 16;

// A kernel call as stored on the hot path: shapes live in the buffer's dims arena.
struct RawOp {
  const Primitive* prim;
  std::string_view impl;
  Device device;
  DType dtype;
  int64_t t0, t1;
  double flops, bytes;
  uint32_t dims_at;   // per input in dims: dtype, rank, sizes...
  uint32_t n_inputs;  // 0 when shapes are not recorded
  int32_t decision;   // index into decisions, -1 for none
  std::string backward_of;
  int32_t mark0 = -1, mark1 = -1;    // device marks around the kernel (indices into marks)
  int64_t dev_t0 = -1, dev_t1 = -1;  // resolved device times, session clock
  int32_t stream = -1;
};

// Everything one thread recorded in one session. Only its thread appends; readers lock mu.
struct ThreadBuffer {
  explicit ThreadBuffer(int i) : index(i) {
    ops.reserve(4096);
    dims.reserve(4096 * 8);
  }
  const int index;
  mutable std::mutex mu;
  std::vector<RawOp> ops;
  std::vector<int64_t> dims;
  std::vector<ScopeRecord> scopes;
  std::vector<MemorySample> memory;
  std::vector<DecisionRecord> decisions;
  int32_t pending_decision = -1;
  std::vector<std::unique_ptr<DeviceMark>> marks;  // released once their op is resolved
  size_t unresolved = 0;  // ops before this index have their device times (or need none)
};

struct State {
  uint64_t id = 0;
  Options opt;
  std::string origin;  // who started it, for the "already active" error
  int64_t t_start = 0;
  std::atomic<bool> active{false};
  std::ofstream out;

  mutable std::mutex mu;  // guards buffers (the list, not their contents)
  std::deque<ThreadBuffer> buffers;

  std::mutex facts_mu;
  std::array<std::atomic<bool>, kMaxDevices> have_facts{};
  std::array<DeviceFacts, kMaxDevices> facts;  // written once, before have_facts is set

  std::mutex anchor_mu;  // guards anchors, anchor_ns and streams
  std::array<std::unique_ptr<DeviceMark>, kMaxDevices> anchors;
  std::array<int64_t, kMaxDevices> anchor_ns{};    // session time at which anchors[i] was done
  std::array<std::atomic<bool>, kMaxDevices> anchored{};  // anchors[i] is set: skip the lock
  std::map<std::pair<int, int64_t>, int> streams;  // (device slot, queue) -> track index

  ThreadBuffer& buffer();
  void ensure_facts(Device d);
  const DeviceFacts* facts_for(Device d) const;
  void ensure_anchor(Device d, DeviceMarker marker);
  void resolve(ThreadBuffer& b, bool wait);
  void resolve_all();
};

}  // namespace detail

namespace {

using detail::RawOp;
using detail::State;
using detail::ThreadBuffer;

std::atomic<State*> g_state{nullptr};
std::atomic<uint64_t> g_session_id{0};  // 0: none; a cheap check for scopes and notes
std::atomic<int64_t> g_inflight{0};
std::atomic<uint64_t> g_next_id{0};
std::mutex g_start_mu;  // serializes start and stop

struct ThreadSlot {
  uint64_t session = 0;
  ThreadBuffer* buffer = nullptr;
};
thread_local ThreadSlot t_slot;
thread_local int t_depth = 0;
// Set while the profiler itself runs ops (device calibration): they are not recorded.
thread_local bool t_busy = false;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A CUDA event recorded on the device's current stream.
class CudaMark final : public detail::DeviceMark {
 public:
  explicit CudaMark(Device d) : event_(d.index), stream_(cuda::Stream::current(d.index)) {
    event_.record(stream_);
  }
  bool done() const override { return event_.query(); }
  void wait() const override { event_.synchronize(); }
  double ms_since(const DeviceMark& earlier) const override {
    return static_cast<const CudaMark&>(earlier).event_.elapsed_ms(event_);
  }
  int64_t queue() const override { return reinterpret_cast<int64_t>(stream_.handle()); }

 private:
  cuda::Event event_;
  cuda::Stream stream_;  // held so that its handle cannot name another stream meanwhile
};

std::unique_ptr<detail::DeviceMark> cuda_mark(Device d) { return std::make_unique<CudaMark>(d); }

// Per DeviceType: CPU, CUDA, Auto (never a kernel's device).
std::array<std::atomic<detail::DeviceMarker>, 3> g_markers{nullptr, &cuda_mark, nullptr};

int device_slot(Device d) {
  if (d.is_cpu()) return 0;
  if (d.is_cuda() && d.index >= 0 && d.index < detail::kMaxDevices - 1) return 1 + d.index;
  return -1;
}

// Entry of every hook; see the lifetime note at the top.
class Hook {
 public:
  Hook() {
    g_inflight.fetch_add(1);
    state_ = g_state.load();
  }
  ~Hook() { g_inflight.fetch_sub(1); }
  Hook(const Hook&) = delete;
  Hook& operator=(const Hook&) = delete;
  State* state() const { return t_busy ? nullptr : state_; }

 private:
  State* state_;
};

void encode_inputs(ThreadBuffer& b, RawOp& r, Inputs in) {
  r.dims_at = static_cast<uint32_t>(b.dims.size());
  r.n_inputs = static_cast<uint32_t>(in.size());
  for (const Tensor& t : in) {
    b.dims.push_back(static_cast<int64_t>(t.dtype()));
    b.dims.push_back(t.dim());
    b.dims.insert(b.dims.end(), t.shape().begin(), t.shape().end());
  }
}

DType op_dtype(const KernelEvent& e) {
  if (!e.inputs.empty()) return e.inputs[0].dtype();
  if (!e.outputs.empty() && e.outputs[0].defined()) return e.outputs[0].dtype();
  return kFloat32;
}

// The begin hook: a mark before the kernel, on devices that have a marker.
int64_t on_begin(Device d) {
  Hook hook;
  State* s = hook.state();
  const detail::DeviceMarker marker = detail::device_marker(d.type);
  if (!s || !marker || device_slot(d) < 0) return -1;
  s->ensure_anchor(d, marker);
  std::unique_ptr<detail::DeviceMark> mark = marker(d);
  ThreadBuffer& b = s->buffer();
  std::lock_guard lock(b.mu);
  b.marks.push_back(std::move(mark));
  return static_cast<int64_t>(b.marks.size() - 1);
}

void on_kernel(const KernelEvent& e) {
  Hook hook;
  State* s = hook.state();
  // A call that began before this session started belongs to no session (and its begin mark,
  // if any, to no buffer of this one).
  if (!s || e.start_ns < s->t_start) return;
  s->ensure_facts(e.device);
  const Cost c = e.prim->cost ? e.prim->cost(e.inputs, e.outputs, *e.attrs) : Cost{};
  std::unique_ptr<detail::DeviceMark> end;
  if (e.begin_mark >= 0) end = detail::device_marker(e.device.type)(e.device);
  ThreadBuffer& b = s->buffer();
  std::lock_guard lock(b.mu);
  RawOp r{e.prim,
          e.kernel ? e.kernel->impl : std::string_view("view"),
          e.device,
          op_dtype(e),
          e.start_ns,
          e.end_ns,
          c.flops,
          c.bytes,
          0,
          0,
          std::exchange(b.pending_decision, -1),
          std::string(backward_op())};
  if (s->opt.record_shapes) encode_inputs(b, r, e.inputs);
  if (end) {
    r.mark0 = static_cast<int32_t>(e.begin_mark);
    r.mark1 = static_cast<int32_t>(b.marks.size());
    b.marks.push_back(std::move(end));
  }
  b.ops.push_back(std::move(r));
  s->resolve(b, /*wait=*/false);  // retires what is done, so few events are alive at once
}

void on_memory(Device d, int64_t delta, int64_t current) {
  Hook hook;
  State* s = hook.state();
  if (!s) return;
  ThreadBuffer& b = s->buffer();
  std::lock_guard lock(b.mu);
  b.memory.push_back({d, now_ns() - s->t_start, delta, current});
}

std::shared_ptr<State> start(Options opt, std::string origin) {
  std::lock_guard lock(g_start_mu);
  if (State* cur = g_state.load())
    fail<ValueError>("profiler",
                     "a session is already active (started by {}, {:.3f} s ago); "
                     "stop it before starting another",
                     cur->origin, static_cast<double>(now_ns() - cur->t_start) * 1e-9);
  auto s = std::make_shared<State>();
  if (!opt.output.empty()) {
    // Opened now so that an unwritable path fails at start, not when the trace is written.
    s->out.open(opt.output, std::ios::out | std::ios::trunc);
    if (!s->out)
      fail<IOError>("profiler", "cannot write the trace file '{}': {}", opt.output,
                    std::strerror(errno));
  }
  s->id = ++g_next_id;
  s->opt = std::move(opt);
  s->origin = std::move(origin);
  s->t_start = now_ns();
  ThreadBuffer& b0 = s->buffer();  // the starting thread is thread 0
  if (s->opt.record_memory)
    b0.memory.push_back({Device::cpu(), 0, 0, cpu_allocator().stats().current_bytes});
  s->active = true;
  g_state.store(s.get());
  g_session_id.store(s->id);
  set_kernel_observer(&on_kernel, &on_begin);
  if (s->opt.record_memory) set_memory_observer(&on_memory);
  return s;
}

// Returns false when s had already stopped.
bool stop(State& s) {
  std::lock_guard lock(g_start_mu);
  if (!s.active) return false;
  g_session_id.store(0);
  g_state.store(nullptr);
  set_kernel_observer(nullptr);
  set_memory_observer(nullptr);
  while (g_inflight.load() != 0) std::this_thread::yield();
  s.active = false;
  s.resolve_all();
  return true;
}

double roofline_seconds(const DeviceFacts* f, DType dt, double flops, double bytes) {
  if (!f) return 0;
  const double peak = f->peak(dt);
  const double compute = peak > 0 ? flops / peak : 0;
  const double memory = f->mem_bandwidth > 0 ? bytes / f->mem_bandwidth : 0;
  return std::max(compute, memory);
}

OpRecord decode(const State& s, const ThreadBuffer& b, const RawOp& r) {
  OpRecord o;
  o.name = r.prim->name;
  o.backward_of = r.backward_of;
  o.impl = r.impl;
  o.device = r.device;
  o.dtype = r.dtype;
  o.thread = b.index;
  o.start_ns = r.t0 - s.t_start;
  o.end_ns = r.t1 - s.t_start;
  o.device_start_ns = r.dev_t0;
  o.device_end_ns = r.dev_t1;
  o.stream = r.stream;
  o.flops = r.flops;
  o.bytes = r.bytes;
  const int64_t* d = b.dims.data() + r.dims_at;
  for (uint32_t i = 0; i < r.n_inputs; ++i) {
    o.dtypes.push_back(static_cast<DType>(d[0]));
    o.shapes.emplace_back(d + 2, d + 2 + d[1]);
    d += 2 + d[1];
  }
  const double sec = o.seconds();
  if (sec > 0) {
    o.gflops = o.flops / sec * 1e-9;
    o.gbps = o.bytes / sec * 1e-9;
    o.roofline = roofline_seconds(s.facts_for(r.device), r.dtype, r.flops, r.bytes) / sec;
  }
  if (r.decision >= 0) o.decision = b.decisions[static_cast<size_t>(r.decision)].text;
  return o;
}

// Calls fn(buffer) for every thread buffer of s, each under its lock.
template <class F>
void for_each_buffer(const State& s, F&& fn) {
  std::lock_guard lock(s.mu);
  for (const ThreadBuffer& b : s.buffers) {
    std::lock_guard bl(b.mu);
    fn(b);
  }
}

template <class T, class Key>
void sort_by(std::vector<T>& v, Key key) {
  std::stable_sort(v.begin(), v.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
}

}  // namespace

namespace detail {

ThreadBuffer& State::buffer() {
  if (t_slot.session == id) return *t_slot.buffer;
  std::lock_guard lock(mu);
  ThreadBuffer& b = buffers.emplace_back(static_cast<int>(buffers.size()));
  t_slot = {id, &b};
  return b;
}

// Snapshots the device's facts the first time it is seen. device_facts() may calibrate by
// running ops: t_busy keeps them out of the records, and other threads skip instead of
// waiting (the facts are only needed when records are read).
void State::ensure_facts(Device d) {
  const int i = device_slot(d);
  if (i < 0 || have_facts[i].load(std::memory_order_acquire)) return;
  std::unique_lock lock(facts_mu, std::try_to_lock);
  if (!lock || have_facts[i].load(std::memory_order_relaxed)) return;
  t_busy = true;
  try {
    facts[i] = device_facts(d);
  } catch (const std::exception& e) {
    fmt::print(stderr, "tessera: [profiler] no device facts for {} (roofline shown as 0): {}\n",
               d.str(), e.what());
  }
  t_busy = false;
  have_facts[i].store(true, std::memory_order_release);
}

// The first kernel of a device in this session: a mark that the host waits for, so that
// session time = anchor_ns + device time since the anchor. Waiting costs the session one
// drain of the queue, once per device.
void State::ensure_anchor(Device d, DeviceMarker marker) {
  const int i = device_slot(d);
  if (anchored[i].load(std::memory_order_acquire)) return;
  std::lock_guard lock(anchor_mu);
  if (anchors[i]) return;
  std::unique_ptr<DeviceMark> a = marker(d);
  a->wait();
  anchor_ns[i] = now_ns() - t_start;
  anchors[i] = std::move(a);
  anchored[i].store(true, std::memory_order_release);
}

// Gives device times to the ops of b whose end marks are done, in order, stopping at the
// first that is not (or waiting for each, with wait). Call under b.mu.
void State::resolve(ThreadBuffer& b, bool wait) {
  for (; b.unresolved < b.ops.size(); ++b.unresolved) {
    RawOp& r = b.ops[b.unresolved];
    if (r.mark1 < 0) continue;
    std::unique_ptr<DeviceMark>& m0 = b.marks[static_cast<size_t>(r.mark0)];
    std::unique_ptr<DeviceMark>& m1 = b.marks[static_cast<size_t>(r.mark1)];
    if (wait) {
      m0->wait();
      m1->wait();
    } else if (!m0->done() || !m1->done()) {
      return;
    }
    const int slot = device_slot(r.device);
    std::lock_guard lock(anchor_mu);
    const DeviceMark& anchor = *anchors[slot];
    auto session_ns = [&](const DeviceMark& m) {
      return anchor_ns[slot] + static_cast<int64_t>(std::llround(m.ms_since(anchor) * 1e6));
    };
    r.dev_t0 = session_ns(*m0);
    r.dev_t1 = std::max(r.dev_t0, session_ns(*m1));
    const auto [it, added] =
        streams.try_emplace({slot, m1->queue()}, static_cast<int>(streams.size()));
    r.stream = it->second;
    m0.reset();
    m1.reset();
  }
}

void State::resolve_all() {
  std::lock_guard lock(mu);
  for (ThreadBuffer& b : buffers) {
    std::lock_guard bl(b.mu);
    resolve(b, /*wait=*/true);
  }
}

const DeviceFacts* State::facts_for(Device d) const {
  const int i = device_slot(d);
  if (i < 0 || !have_facts[i].load(std::memory_order_acquire)) return nullptr;
  return &facts[i];
}

}  // namespace detail

Session::Session(Options options) : state_(start(std::move(options), "profiler::Session")) {}

Session::~Session() {
  try {
    stop();
  } catch (const std::exception& e) {
    fmt::print(stderr, "tessera: {}\n", e.what());
  }
}

void Session::stop() {
  if (!tessera::profiler::stop(*state_)) return;
  if (state_->out.is_open()) {
    detail::write_chrome_trace(*this, state_->out);
    state_->out.close();
    if (state_->out.fail())
      fail<IOError>("profiler", "writing the trace file '{}' failed", state_->opt.output);
  }
  if (state_->opt.print_summary) fmt::print(stderr, "{}", summary());
}

bool Session::active() const { return state_->active.load(); }

std::vector<OpRecord> Session::ops() const {
  state_->resolve_all();  // waits for the device times of what was launched so far
  std::vector<OpRecord> out;
  for_each_buffer(*state_, [&](const ThreadBuffer& b) {
    for (const RawOp& r : b.ops) out.push_back(decode(*state_, b, r));
  });
  sort_by(out, [](const OpRecord& o) { return o.start_ns; });
  return out;
}

std::vector<ScopeRecord> Session::scopes() const {
  std::vector<ScopeRecord> out;
  for_each_buffer(*state_, [&](const ThreadBuffer& b) {
    out.insert(out.end(), b.scopes.begin(), b.scopes.end());
  });
  sort_by(out, [](const ScopeRecord& r) { return r.start_ns; });
  return out;
}

std::vector<MemorySample> Session::memory() const {
  std::vector<MemorySample> out;
  for_each_buffer(*state_, [&](const ThreadBuffer& b) {
    out.insert(out.end(), b.memory.begin(), b.memory.end());
  });
  sort_by(out, [](const MemorySample& m) { return m.time_ns; });
  return out;
}

std::vector<DecisionRecord> Session::decisions() const {
  std::vector<DecisionRecord> out;
  for_each_buffer(*state_, [&](const ThreadBuffer& b) {
    out.insert(out.end(), b.decisions.begin(), b.decisions.end());
  });
  sort_by(out, [](const DecisionRecord& d) { return d.time_ns; });
  return out;
}

int64_t Session::memory_peak(Device device) const {
  int64_t peak = 0;
  for_each_buffer(*state_, [&](const ThreadBuffer& b) {
    for (const MemorySample& m : b.memory)
      if (m.device == device) peak = std::max(peak, m.current_bytes);
  });
  return peak;
}

bool active() { return g_session_id.load(std::memory_order_relaxed) != 0; }

void detail::set_device_marker(DeviceType type, DeviceMarker marker) {
  g_markers.at(static_cast<size_t>(type)).store(marker);
}

detail::DeviceMarker detail::device_marker(DeviceType type) {
  return g_markers[static_cast<size_t>(type)].load(std::memory_order_relaxed);
}

Scope::Scope(std::string_view name) {
  session_ = g_session_id.load(std::memory_order_relaxed);
  if (session_ == 0) return;
  name_ = name;
  depth_ = t_depth++;
  start_ns_ = now_ns();
}

Scope::~Scope() {
  if (session_ == 0) return;
  const int64_t end = now_ns();
  --t_depth;
  Hook hook;
  State* s = hook.state();
  if (!s || s->id != session_) return;  // the session stopped (or another started) meanwhile
  ThreadBuffer& b = s->buffer();
  std::lock_guard lock(b.mu);
  b.scopes.push_back({std::move(name_), b.index, depth_, start_ns_ - s->t_start, end - s->t_start});
}

void note_decision(std::string_view text) {
  if (g_session_id.load(std::memory_order_relaxed) == 0) return;
  Hook hook;
  State* s = hook.state();
  if (!s) return;
  ThreadBuffer& b = s->buffer();
  std::lock_guard lock(b.mu);
  b.decisions.push_back({std::string(text), b.index, now_ns() - s->t_start});
  b.pending_decision = static_cast<int32_t>(b.decisions.size() - 1);
}

// TESSERA_PROFILE=<file>: a session for the whole process, started when the library loads
// and written (plus the summary on stderr) at exit. Leaked: tensors in static objects may
// still be freed after the exit handler ran, and the observers are gone by then.
namespace {

Session* g_env_session = nullptr;

void finish_env_session() {
  try {
    g_env_session->stop();
  } catch (const std::exception& e) {
    fmt::print(stderr, "tessera: {}\n", e.what());
  }
}

}  // namespace

Session::Session(std::shared_ptr<State> state) : state_(std::move(state)) {}

void detail::start_env_session() {
  const char* path = std::getenv("TESSERA_PROFILE");
  if (!path || !*path || g_env_session) return;
  try {
    g_env_session = new Session(start({.output = path, .print_summary = true}, "TESSERA_PROFILE"));
  } catch (const Error& e) {
    // No caller can catch an exception thrown while the library loads: report and exit.
    fmt::print(stderr, "tessera: TESSERA_PROFILE: {}\n", e.what());
    std::exit(1);
  }
  std::atexit(finish_env_session);
}

namespace {
const bool g_env_started = (detail::start_env_session(), true);
}  // namespace

}  // namespace tessera::profiler
