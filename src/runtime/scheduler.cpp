// The scheduler behind the funnel's schedule(). Fast path (explicit device, one kernel that
// supports the call, no switch on): one relaxed atomic load more than a plain kernel lookup.
// Everything else (auto placement, several kernels, tuning, logging) is the slow path.
#include "tessera/runtime/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "runtime/calibration.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/info.h"
#include "tessera/runtime/profiler.h"

namespace tessera {
namespace {

// Switches, packed so that the fast path reads them with one relaxed load.
enum ModeBit : uint32_t {
  kAuto = 1u << 0,  // default device is auto
  kTune = 1u << 1,
  kDet = 1u << 2,
  kLog = 1u << 3,
  kRemembered = 1u << 4,  // some choice is remembered
  kNeedLoad = 1u << 5,    // the cache snapshot was not read yet
  kFeedback = 1u << 6,    // auto placement among several devices: time kernels
};
constexpr uint32_t kSlowChoice = kTune | kDet | kLog | kRemembered | kNeedLoad;

// Another device must beat the CPU by this factor: ties and near-ties stay on the CPU.
constexpr double kCpuPreference = 0.9;
// Weight of a new measurement in a correction (exponential moving average).
constexpr double kCorrectionWeight = 0.3;

bool env_on(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string_view(v) != "0";
}

uint32_t initial_mode() {
  uint32_t m = kNeedLoad;
  if (env_on("TESSERA_TUNE")) m |= kTune;
  if (env_on("TESSERA_DETERMINISTIC")) m |= kDet;
  if (env_on("TESSERA_SCHEDULER_LOG")) m |= kLog;
  return m;
}

std::atomic<uint32_t> g_mode{initial_mode()};
std::atomic<uint32_t> g_default{0};  // packed Device: type << 16 | index

uint32_t pack(Device d) {
  return static_cast<uint32_t>(d.type) << 16 | static_cast<uint32_t>(d.index);
}
Device unpack(uint32_t v) {
  return {static_cast<DeviceType>(v >> 16), static_cast<int>(v & 0xffff)};
}

// Bumped by every change to remembered choices or to the switches: per-thread memos of
// kernel choices are valid for one generation.
std::atomic<uint64_t> g_choice_generation{1};
void bump_choices() { g_choice_generation.fetch_add(1, std::memory_order_relaxed); }

void set_bit(uint32_t bit, bool on) {
  if (on)
    g_mode.fetch_or(bit, std::memory_order_relaxed);
  else
    g_mode.fetch_and(~bit, std::memory_order_relaxed);
}

struct SchedState {
  std::mutex mu;
  bool loaded = false;
  std::unordered_map<std::string, std::string> snapshot;    // as read from the cache file
  std::unordered_map<std::string, std::string> remembered;  // snapshot + tuned since
  std::unordered_map<std::string, double> corrections;      // measured / predicted
};

SchedState& sched() {
  static SchedState* s = new SchedState();  // never destroyed: ops may run during exit
  return *s;
}

void ensure_snapshot() {
  SchedState& s = sched();
  {
    std::lock_guard lock(s.mu);
    if (s.loaded) return;
  }
  // Read without our lock held: the facts module takes its own.
  std::map<std::string, std::string> choices = detail::cached_choices();
  std::lock_guard lock(s.mu);
  if (s.loaded) return;
  s.snapshot = {choices.begin(), choices.end()};
  s.remembered = s.snapshot;
  s.loaded = true;
  set_bit(kRemembered, !s.remembered.empty());
  set_bit(kNeedLoad, false);
  bump_choices();
}

// ---- describing a call -------------------------------------------------------------------

// round(log2(d)) without a log: floor, plus one above 2^floor * sqrt(2). -1 for empty dims.
int bucket(int64_t d) {
  if (d <= 0) return -1;
  const int f = std::bit_width(static_cast<uint64_t>(d)) - 1;
  return static_cast<double>(d) > std::ldexp(1.4142135623730951, f) ? f + 1 : f;
}

DType call_dtype(Inputs in, const Attrs& attrs) {
  return in.empty() ? attrs.get_or<DType>("dtype", kFloat32) : in[0].dtype();
}

std::string key_with_device(const Primitive& p, Inputs in, const Attrs& attrs, Device d) {
  fmt::memory_buffer b;
  fmt::format_to(std::back_inserter(b), "{}|{}|{}|", p.name, dtype_name(call_dtype(in, attrs)),
                 d.str());
  auto dims = [&](const Shape& s) {
    if (s.empty()) fmt::format_to(std::back_inserter(b), "s");
    for (size_t i = 0; i < s.size(); ++i)
      fmt::format_to(std::back_inserter(b), "{}{}", i ? "." : "", bucket(s[i]));
  };
  if (in.empty()) dims(attrs.get_or<std::vector<int64_t>>("shape", {}));
  for (size_t i = 0; i < in.size(); ++i) {
    if (i) b.push_back(',');
    dims(in[i].shape());
  }
  return fmt::to_string(b);
}

std::string describe_call(const Primitive& p, Inputs in, const Attrs& attrs) {
  std::string s = p.name;
  if (in.empty() && attrs.has("shape"))
    s += " " + shape_str(attrs.get<std::vector<int64_t>>("shape"));
  for (const Tensor& t : in) s += " " + shape_str(t.shape());
  return s + fmt::format(" {}", dtype_name(call_dtype(in, attrs)));
}

std::string seconds_str(double s) {
  if (!std::isfinite(s)) return "inf";
  if (s >= 1) return fmt::format("{:.3g} s", s);
  if (s >= 1e-3) return fmt::format("{:.3g} ms", s * 1e3);
  return fmt::format("{:.3g} us", s * 1e6);
}

// A tensor with shape and dtype but no memory, for cost functions that only read metadata.
Tensor shape_only(const Shape& shape, DType dt, Device d) {
  const auto n = static_cast<size_t>(checked_numel(shape, "scheduler"));
  return Tensor::make(Storage::wrap(nullptr, n * itemsize(dt), d, {}), shape,
                      contiguous_strides(shape), 0, dt);
}

Cost call_cost(const Primitive& p, Inputs in, const Attrs& attrs) {
  std::vector<Tensor> out;
  if (p.has(kMutatesInput0))
    out.push_back(in[0]);
  else
    for (const TensorMeta& m : p.infer(in, attrs))
      out.push_back(shape_only(m.shape, m.dtype, Device::cpu()));
  if (p.cost) return p.cost(in, out, attrs);
  Cost c;  // no cost function: assume the call moves its operands once
  for (const Tensor& t : in) c.bytes += static_cast<double>(t.nbytes());
  for (const Tensor& t : out) c.bytes += static_cast<double>(t.nbytes());
  return c;
}

double correction(const std::string& key) {
  SchedState& s = sched();
  std::lock_guard lock(s.mu);
  auto it = s.corrections.find(key);
  return it == s.corrections.end() ? 1.0 : it->second;
}

// ---- placement ---------------------------------------------------------------------------

const DeviceFacts* facts_in(std::span<const DeviceFacts> cands, Device d) {
  for (const DeviceFacts& f : cands)
    if (f.device == d) return &f;
  return nullptr;
}

double rate_time(double bytes, double rate, double latency) {
  return rate > 0 ? bytes / rate + latency : std::numeric_limits<double>::infinity();
}

// Seconds to move `bytes` from device `from` to `to` (through the host between two GPUs).
double transfer_seconds(double bytes, Device from, Device to, std::span<const DeviceFacts> cands) {
  if (from == to) return 0;
  auto facts = [&](Device d) -> const DeviceFacts& {
    const DeviceFacts* f = facts_in(cands, d);
    return f ? *f : device_facts(d);
  };
  double t = 0;
  if (!from.is_cpu()) {
    const DeviceFacts& f = facts(from);
    t += rate_time(bytes, f.device_to_host_bandwidth, f.transfer_latency);
  }
  if (!to.is_cpu()) {
    const DeviceFacts& f = facts(to);
    t += rate_time(bytes, f.host_to_device_bandwidth, f.transfer_latency);
  }
  return t;
}

Decision decide(const Primitive& p, Inputs in, const Attrs& attrs,
                std::span<const DeviceFacts> cands, std::span<const Device> residency) {
  const Cost cost = call_cost(p, in, attrs);
  const DType dt = call_dtype(in, attrs);
  Decision d;
  for (const DeviceFacts& f : cands) {
    PlacementEstimate e{f.device};
    e.compute_s =
        roofline_seconds(f, cost, dt) * correction(key_with_device(p, in, attrs, f.device));
    for (size_t i = 0; i < in.size(); ++i)
      e.transfer_s +=
          transfer_seconds(static_cast<double>(in[i].nbytes()), residency[i], f.device, cands);
    e.total_s = e.compute_s + e.transfer_s;
    d.estimates.push_back(e);
  }
  if (d.estimates.empty()) fail<DeviceError>(p.name, "no candidate device to place the call on");
  auto best = std::min_element(d.estimates.begin(), d.estimates.end(),
                               [](const auto& a, const auto& b) { return a.total_s < b.total_s; });
  auto cpu = std::find_if(d.estimates.begin(), d.estimates.end(),
                          [](const auto& e) { return e.device.is_cpu(); });
  if (cpu != d.estimates.end() && !(best->total_s < kCpuPreference * cpu->total_s)) best = cpu;
  d.device = best->device;
  return d;
}

std::string estimates_str(const Decision& d) {
  std::string s;
  for (const PlacementEstimate& e : d.estimates)
    s += fmt::format("{}{} {} (compute {} + transfer {})", s.empty() ? "" : ", ", e.device.str(),
                     seconds_str(e.total_s), seconds_str(e.compute_s), seconds_str(e.transfer_s));
  return s;
}

// What the log line and the profiler get for one call.
struct Note {
  bool on = false;
  std::string place, impl;
};

Device auto_place(const Primitive& p, Inputs in, const Attrs& attrs, Note& note) {
  const std::vector<Device>& devs = detail::known_devices_ref();
  // The measurement's own ops run while facts are unknown: they stay where their inputs live
  // (a GPU being measured), else on the CPU.
  if (detail::calibrating() && !in.empty() &&
      std::all_of(in.begin(), in.end(),
                  [&](const Tensor& t) { return t.device() == in[0].device(); })) {
    if (note.on) note.place = "auto: where the inputs are (measuring)";
    return in[0].device();
  }
  if (devs.size() == 1 || detail::calibrating()) {
    if (note.on) note.place = "auto: cpu (the only device)";
    return Device::cpu();
  }
  note.on = note.on || profiler::active();  // a real decision: the profiler shows it
  std::vector<DeviceFacts> cands;
  for (Device d : devs)
    if (p.find_kernel(d.type, in, attrs)) cands.push_back(device_facts(d));
  if (cands.size() <= 1) {
    if (note.on) note.place = "auto: only one device has a kernel";
    return cands.empty() ? Device::cpu() : cands[0].device;
  }
  std::vector<Device> residency;
  for (const Tensor& t : in) residency.push_back(t.device());
  Decision d = decide(p, in, attrs, cands, residency);
  if (note.on) note.place = "auto: " + estimates_str(d);
  return d.device;
}

// ---- implementation choice ---------------------------------------------------------------

// Median wall time of each candidate on the real inputs, writing into scratch outputs.
// Candidates are timed in alternating blocks so machine noise hits every candidate alike;
// each block starts with an untimed call, because the previous candidate may leave threads
// busy (OpenBLAS workers spin for a while after a call) and the first call pays for that.
std::vector<double> time_kernels(const Primitive& p, std::span<const Kernel* const> cands,
                                 Inputs in, const Attrs& attrs, Device d) {
  const std::vector<TensorMeta> metas = p.infer(in, attrs);
  auto once = [&](const Kernel& k) {
    std::vector<Tensor> out;  // fresh each run: dynamic-shape kernels replace their outputs
    for (const TensorMeta& m : metas) out.push_back(Tensor::empty(m.shape, m.dtype, d));
    const auto t0 = std::chrono::steady_clock::now();
    k.fn(in, out, attrs);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  constexpr double kFailed = std::numeric_limits<double>::infinity();
  std::vector<double> first(cands.size(), kFailed);
  for (size_t i = 0; i < cands.size(); ++i) {
    try {
      first[i] = once(*cands[i]);  // also warms caches
    } catch (const Error&) {       // a kernel that fails here is simply not a candidate
    }
  }
  double slowest = 0;
  for (double f : first)
    if (f != kFailed) slowest = std::max(slowest, f);
  if (slowest > 0.1) return first;
  // Short kernels are noisier: more repetitions, still a few milliseconds at most.
  constexpr int kRounds = 3;
  const int per_round = slowest < 1e-4 ? 7 : slowest < 1e-2 ? 3 : 1;
  std::vector<std::vector<double>> t(cands.size());
  for (int r = 0; r < kRounds; ++r)
    for (size_t i = 0; i < cands.size(); ++i) {
      if (first[i] == kFailed) continue;
      once(*cands[i]);  // untimed: absorbs the hand-over from the previous candidate
      for (int j = 0; j < per_round; ++j) t[i].push_back(once(*cands[i]));
    }
  std::vector<double> med(cands.size(), kFailed);
  for (size_t i = 0; i < cands.size(); ++i) {
    if (t[i].empty()) continue;
    const auto mid = t[i].begin() + static_cast<std::ptrdiff_t>(t[i].size() / 2);
    std::nth_element(t[i].begin(), mid, t[i].end());
    med[i] = *mid;
  }
  return med;
}

const Kernel* by_impl(std::span<const Kernel* const> cands, std::string_view impl) {
  for (const Kernel* k : cands)
    if (k->impl == impl) return k;
  return nullptr;
}

const Kernel* remembered(const std::string& key, std::span<const Kernel* const> cands,
                         bool snapshot_only) {
  SchedState& s = sched();
  std::lock_guard lock(s.mu);
  const auto& map = snapshot_only ? s.snapshot : s.remembered;
  auto it = map.find(key);
  return it == map.end() ? nullptr : by_impl(cands, it->second);
}

// Times every candidate, remembers the fastest (memory and cache file). In-place primitives
// are not tuned: timing them would write into their input.
const Kernel* tune(const Primitive& p, Inputs in, const Attrs& attrs, Device d,
                   std::span<const Kernel* const> cands, const std::string& key, Note& note) {
  if (p.has(kMutatesInput0)) return nullptr;
  const std::vector<double> t = time_kernels(p, cands, in, attrs, d);
  const Kernel* best = nullptr;
  double best_t = std::numeric_limits<double>::infinity();
  std::string times;
  for (size_t i = 0; i < cands.size(); ++i) {
    times += fmt::format("{}{} {}", times.empty() ? "" : ", ", cands[i]->impl, seconds_str(t[i]));
    if (t[i] < best_t) best = cands[i], best_t = t[i];
  }
  if (note.on) note.impl = "tuned: " + times;
  if (!best) return nullptr;
  {
    SchedState& s = sched();
    std::lock_guard lock(s.mu);
    s.remembered[key] = std::string(best->impl);
    set_bit(kRemembered, true);
    bump_choices();
  }
  detail::store_choice(key, std::string(best->impl));
  return best;
}

std::string priorities_str(std::span<const Kernel* const> cands) {
  std::string s;
  for (const Kernel* k : cands)
    s += fmt::format("{}{} {}", s.empty() ? "" : ", ", k->impl, k->priority);
  return s;
}

// The remembered / tuned / deterministic answer for a call, or null for "by priority".
const Kernel* decide_impl(const Primitive& p, Inputs in, const Attrs& attrs, Device d,
                          uint32_t mode, Note& note) {
  std::vector<const Kernel*> cands;
  for (const Kernel& k : p.kernels)
    if (k.device == d.type && (!k.supports || k.supports(in, attrs))) cands.push_back(&k);
  const std::string key = key_with_device(p, in, attrs, d);
  const bool det = mode & kDet;
  if (const Kernel* k = remembered(key, cands, det)) {
    if (note.on)
      note.impl = fmt::format("{} ({})", det ? "deterministic: cache snapshot" : "remembered", key);
    return k;
  }
  if (!det && (mode & kTune))
    if (const Kernel* k = tune(p, in, attrs, d, cands, key, note)) return k;
  if (note.on && note.impl.empty())
    note.impl = fmt::format("{}priority ({})", det ? "deterministic: " : "", priorities_str(cands));
  return nullptr;
}

// Per-thread memo of decide_impl, so a remembered choice costs a hash lookup, not a string
// key and a lock. Any change to choices or switches bumps g_choice_generation.
struct ChoiceKey {
  const Primitive* prim = nullptr;
  uint32_t device = 0;
  uint8_t dtype = 0, n = 0;
  std::array<int8_t, 30> buckets{};  // per dim; kSep between inputs, kScalar for 0-d
  bool operator==(const ChoiceKey&) const = default;
};
constexpr int8_t kSep = -128, kScalar = -127;

struct ChoiceKeyHash {
  size_t operator()(const ChoiceKey& k) const {
    size_t h = std::hash<const void*>()(k.prim) ^
               (size_t{k.device} << 8 | k.dtype) * 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < k.n; ++i) h = (h ^ static_cast<uint8_t>(k.buckets[i])) * 0x100000001B3ull;
    return h;
  }
};

// False when the call does not fit the compact key (then it takes the string path).
bool make_choice_key(const Primitive& p, Inputs in, Device d, ChoiceKey& k) {
  if (in.empty()) return false;  // creation ops: rare, keyed by attrs
  k.prim = &p;
  k.device = pack(d);
  k.dtype = static_cast<uint8_t>(in[0].dtype());
  for (size_t i = 0; i < in.size(); ++i) {
    const Shape& s = in[i].shape();
    if (k.n + s.size() + 2 > k.buckets.size()) return false;
    if (i) k.buckets[k.n++] = kSep;
    if (s.empty()) k.buckets[k.n++] = kScalar;
    for (int64_t dim : s) k.buckets[k.n++] = static_cast<int8_t>(bucket(dim));
  }
  return true;
}

struct ChoiceMemo {
  uint64_t generation = 0;
  std::unordered_map<ChoiceKey, const Kernel*, ChoiceKeyHash> map;
};
thread_local ChoiceMemo t_memo;

// Several kernels support the call: deterministic snapshot, remembered, tuned, or priority.
const Kernel* choose_among(const Primitive& p, Inputs in, const Attrs& attrs, Device d,
                           uint32_t mode, const Kernel* by_priority, Note& note) {
  if (mode & kNeedLoad) {
    ensure_snapshot();
    mode = g_mode.load(std::memory_order_relaxed);
  }
  if (!(mode & (kTune | kDet | kRemembered))) {
    if (note.on) note.impl = "priority (highest)";
    return by_priority;
  }
  ChoiceKey ck;
  const bool memo = !note.on && make_choice_key(p, in, d, ck);
  if (memo) {
    const uint64_t gen = g_choice_generation.load(std::memory_order_relaxed);
    if (t_memo.generation != gen) t_memo.map.clear(), t_memo.generation = gen;
    if (auto it = t_memo.map.find(ck); it != t_memo.map.end()) {
      const Kernel* k = it->second;  // the same bucket may differ in layout: re-check support
      return k && (!k->supports || k->supports(in, attrs)) ? k : by_priority;
    }
  }
  const uint64_t gen = g_choice_generation.load(std::memory_order_relaxed);
  const Kernel* k = decide_impl(p, in, attrs, d, mode, note);
  // Memoized under the generation read before deciding, so a concurrent change is not lost.
  if (memo && gen == t_memo.generation) t_memo.map.emplace(ck, k);
  return k ? k : by_priority;
}

const Kernel* pick_kernel(const Primitive& p, Inputs in, const Attrs& attrs, Device d,
                          uint32_t mode, Note& note) {
  const Kernel* best = nullptr;
  int n = 0;
  for (const Kernel& k : p.kernels) {
    if (k.device != d.type || (k.supports && !k.supports(in, attrs))) continue;
    ++n;
    if (!best || k.priority > best->priority) best = &k;
  }
  if (n <= 1) {
    if (note.on) note.impl = "only kernel";
    return best;
  }
  if (!(mode & kSlowChoice) && !note.on && !profiler::active()) return best;
  note.on = note.on || profiler::active();
  return choose_among(p, in, attrs, d, mode, best, note);
}

Device requested_device(const Primitive& p, Inputs in, const Attrs& attrs, uint32_t mode) {
  if (in.empty())
    return attrs.get_or<Device>("device", unpack(g_default.load(std::memory_order_relaxed)));
  const Device d = in[0].device();
  if (p.has(kCrossDevice)) {  // a transfer runs where the GPU is (source or destination)
    for (const Tensor& t : in)
      if (!t.device().is_cpu()) return t.device();
    return d;
  }
  // Under the auto default, where inputs live is residency, not a request.
  if ((mode & kAuto) && !p.has(kMutatesInput0)) return Device::auto_();
  for (size_t i = 1; i < in.size(); ++i)
    if (in[i].device() != d)
      fail<DeviceError>(p.name,
                        "expected all tensors on one device, got {} (input 0) and {} "
                        "(input {}); move one with .to(device)",
                        d.str(), in[i].device().str(), i);
  return d;
}

[[noreturn]] void no_kernel(const Primitive& p, Inputs in, Device d) {
  std::string dtypes;
  for (const Tensor& t : in)
    dtypes += std::string(dtypes.empty() ? "" : ", ") + std::string(dtype_name(t.dtype()));
  fail<NotImplementedError>(p.name, "no {} kernel for inputs of dtype ({})", d.str(), dtypes);
}

void emit(const Primitive& p, Inputs in, const Attrs& attrs, Device d, const Kernel* k,
          uint32_t mode, const Note& note) {
  std::string place = note.place.empty() ? "explicit " + d.str() : note.place;
  // Explicit: one candidate; the log still shows what the model predicts there (this may
  // measure the device facts, so the profiler's note leaves it out).
  if (note.place.empty() && (mode & kLog)) {
    const double t =
        roofline_seconds(device_facts(d), call_cost(p, in, attrs), call_dtype(in, attrs)) *
        correction(key_with_device(p, in, attrs, d));
    place = fmt::format("explicit {} (predicted {})", d.str(), seconds_str(t));
  }
  const std::string text =
      fmt::format("{} -> {}/{} | place: {} | impl: {}", describe_call(p, in, attrs), d.str(),
                  k ? k->impl : "none", place, note.impl);
  if (mode & kLog) fmt::print(stderr, "[scheduler] {}\n", text);
  profiler::note_decision(text);
}

}  // namespace

Placement schedule(const Primitive& p, Inputs in, const Attrs& attrs) {
  const uint32_t mode = g_mode.load(std::memory_order_relaxed);
  Note note;
  note.on = (mode & kLog) && !detail::calibrating();  // not the measurement's own 10k adds
  Device device = requested_device(p, in, attrs, mode);
  if (device.type == DeviceType::Auto) {
    device = auto_place(p, in, attrs, note);
  } else if (device.is_cuda()) {
    if (!cuda::is_built())
      fail<NotBuiltError>(p.name, "not built with CUDA (device {})", device.str());
    cuda::check_device(device.index);  // "[cuda] no CUDA device ..." before any kernel is chosen
  }
  const Kernel* k = pick_kernel(p, in, attrs, device, mode, note);
  if (note.on) emit(p, in, attrs, device, k, mode, note);
  if (!k) no_kernel(p, in, device);
  return {device, k};
}

double roofline_seconds(const DeviceFacts& f, const Cost& c, DType dt) {
  const double peak = f.peak(dt);
  const double compute = peak > 0 ? c.flops / peak : 0;
  const double memory = f.mem_bandwidth > 0 ? c.bytes / f.mem_bandwidth : 0;
  return std::max(compute, memory) + f.op_overhead;
}

Decision decide_placement(const Primitive& p, Inputs in, const Attrs& attrs,
                          std::span<const DeviceFacts> candidates, Device input_device) {
  const std::vector<Device> residency(in.size(), input_device);
  return decide(p, in, attrs, candidates, residency);
}

void note_measured_time(const Primitive& p, Inputs in, const Attrs& attrs, Device device,
                        double seconds) {
  const double predicted =
      roofline_seconds(device_facts(device), call_cost(p, in, attrs), call_dtype(in, attrs));
  if (!(predicted > 0) || !(seconds >= 0)) return;
  const double ratio = seconds / predicted;
  const std::string key = key_with_device(p, in, attrs, device);
  SchedState& s = sched();
  std::lock_guard lock(s.mu);
  auto [it, fresh] = s.corrections.emplace(key, ratio);
  if (!fresh) it->second += kCorrectionWeight * (ratio - it->second);
}

const Kernel* choose_kernel(const Primitive& p, Inputs in, const Attrs& attrs, Device device) {
  Note note;
  return pick_kernel(p, in, attrs, device, g_mode.load(std::memory_order_relaxed), note);
}

std::string choice_key(const Primitive& p, Inputs in, const Attrs& attrs, Device device) {
  return key_with_device(p, in, attrs, device);
}

std::map<std::string, std::string> remembered_choices() {
  ensure_snapshot();
  SchedState& s = sched();
  std::lock_guard lock(s.mu);
  return {s.remembered.begin(), s.remembered.end()};
}

void reset_scheduler_state() {
  SchedState& s = sched();
  std::lock_guard lock(s.mu);
  s.loaded = false;
  s.snapshot.clear();
  s.remembered.clear();
  s.corrections.clear();
  set_bit(kRemembered, false);
  set_bit(kNeedLoad, true);
  bump_choices();
}

void set_default_device(Device device) {
  if (device.is_cuda()) {
    const auto& known = detail::known_devices_ref();
    if (std::find(known.begin(), known.end(), device) == known.end())
      fail<DeviceError>("set_default_device", "device {} is not available ({})", device.str(),
                        cuda::is_built() ? "no such CUDA device" : "not built with CUDA");
  }
  g_default.store(pack(device), std::memory_order_relaxed);
  const bool is_auto = device.type == DeviceType::Auto;
  set_bit(kAuto, is_auto);
  set_bit(kFeedback, is_auto && detail::known_devices_ref().size() > 1);
}

void set_default_device(const std::string& name) { set_default_device(Device::parse(name)); }
Device default_device() { return unpack(g_default.load(std::memory_order_relaxed)); }

void set_tuning(bool on) {
  set_bit(kTune, on);
  bump_choices();
}
bool tuning() { return g_mode.load(std::memory_order_relaxed) & kTune; }
void set_deterministic(bool on) {
  set_bit(kDet, on);
  bump_choices();
}
bool deterministic() { return g_mode.load(std::memory_order_relaxed) & kDet; }
void set_scheduler_log(bool on) { set_bit(kLog, on); }
bool scheduler_log() { return g_mode.load(std::memory_order_relaxed) & kLog; }

namespace detail {
void scheduler_on_cache_reset() { reset_scheduler_state(); }
bool scheduler_wants_timing() { return g_mode.load(std::memory_order_relaxed) & kFeedback; }
}  // namespace detail

}  // namespace tessera
