// Device facts: measured once per machine (GEMM-bound peak FLOP/s, copy-bound bandwidth, the
// funnel's fixed cost per op), cached in a small JSON file with a format version and a machine
// fingerprint. A cache that cannot be trusted is ignored with one warning line and measured
// again. The same file keeps the scheduler's remembered kernel choices.
#include "tessera/runtime/device_facts.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "backends/cpu/gemm.h"
#include "runtime/calibration.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/info.h"
#include "tessera/runtime/parallel.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif

namespace tessera {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// 2: CPU peaks measured through cpu::gemm (oneDNN where built) instead of one CBLAS call.
constexpr int kFormatVersion = 2;
constexpr const char* kFormatName = "tessera-calibration";

thread_local bool t_calibrating = false;

// Everything loaded, measured or injected. Published facts are never freed or changed, so the
// references device_facts() hands out stay valid (a replacement is a new object).
struct State {
  std::mutex mu;
  std::string path_override;
  bool loaded = false;                                // the file was read (or found absent)
  json file_devices = json::object();                 // "cpu" -> facts, as in the file
  std::map<std::string, std::string> file_choices;    // scheduler's remembered choices
  std::map<std::string, const DeviceFacts*> current;  // device name -> published facts
  std::map<std::string, std::string> source;          // device name -> injected/cache/measured
  std::deque<DeviceFacts> arena;
};

State& state() {
  static State* s = new State();  // never destroyed: facts may be used during exit
  return *s;
}

// ---- the machine fingerprint ------------------------------------------------------------

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(std::min(line.size(), line.find(':') + 2));
  return "unknown CPU";
}

json fingerprint() {
  return {{"cpu", cpu_model()}, {"threads", num_threads()}, {"tessera", TESSERA_VERSION}};
}

// ---- facts <-> JSON ----------------------------------------------------------------------

json to_json(const DeviceFacts& f) {
  json peaks = json::object();
  for (const auto& [dt, v] : f.peak_flops) peaks[std::string(dtype_name(dt))] = v;
  return {{"device", f.device.str()},
          {"name", f.name},
          {"peak_flops", peaks},
          {"mem_bandwidth", f.mem_bandwidth},
          {"host_to_device_bandwidth", f.host_to_device_bandwidth},
          {"device_to_host_bandwidth", f.device_to_host_bandwidth},
          {"transfer_latency", f.transfer_latency},
          {"op_overhead", f.op_overhead}};
}

double finite_nonneg(const json& j, const char* key) {
  const double v = j.at(key).get<double>();
  if (!std::isfinite(v) || v < 0)
    fail<ValueError>("calibration", "'{}' = {} is not a rate", key, v);
  return v;
}

// Throws (json or ValueError) on anything malformed.
DeviceFacts from_json(const json& j) {
  DeviceFacts f;
  f.device = Device::parse(j.at("device").get<std::string>());
  f.name = j.at("name").get<std::string>();
  for (const auto& [name, v] : j.at("peak_flops").items()) {
    const double x = v.get<double>();
    if (!std::isfinite(x) || x <= 0) fail<ValueError>("calibration", "peak {} = {}", name, x);
    f.peak_flops[dtype_from_name(name)] = x;
  }
  f.mem_bandwidth = finite_nonneg(j, "mem_bandwidth");
  f.host_to_device_bandwidth = finite_nonneg(j, "host_to_device_bandwidth");
  f.device_to_host_bandwidth = finite_nonneg(j, "device_to_host_bandwidth");
  f.transfer_latency = finite_nonneg(j, "transfer_latency");
  f.op_overhead = finite_nonneg(j, "op_overhead");
  if (f.peak(kFloat32) <= 0 || f.mem_bandwidth <= 0)
    fail<ValueError>("calibration", "no float32 peak or no bandwidth for {}", f.device.str());
  f.measured = true;
  return f;
}

// ---- the cache file ----------------------------------------------------------------------

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string default_cache_path() {
  if (std::string d = env_or_empty("TESSERA_CACHE_DIR"); !d.empty()) return d + "/calibration.json";
  if (std::string d = env_or_empty("XDG_CACHE_HOME"); !d.empty())
    return d + "/tessera/calibration.json";
  if (std::string d = env_or_empty("HOME"); !d.empty())
    return d + "/.cache/tessera/calibration.json";
  return (fs::temp_directory_path() / "tessera" / "calibration.json").string();
}

std::string path_locked(const State& s) {
  return s.path_override.empty() ? default_cache_path() : s.path_override;
}

void warn(const std::string& what) { fmt::print(stderr, "tessera: warning: {}\n", what); }

// Why the parsed file cannot be used, or "" when it can.
std::string reject_reason(const json& j) {
  if (!j.is_object() || j.value("format", std::string()) != kFormatName)
    return "not a calibration file";
  if (!j.contains("version") || !j["version"].is_number_integer() ||
      j["version"].get<int>() != kFormatVersion)
    return fmt::format("format version {} (expected {})",
                       j.contains("version") ? j["version"].dump() : "none", kFormatVersion);
  if (j.value("fingerprint", json()) != fingerprint())
    return fmt::format("written for another machine or build ({})",
                       j.value("fingerprint", json()).dump());
  return "";
}

// Reads the file once per path. Anything unusable is dropped with one warning line.
void ensure_loaded_locked(State& s) {
  if (s.loaded) return;
  s.loaded = true;
  const std::string path = path_locked(s);
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  try {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail<IOError>("calibration", "cannot open");
    const json j = json::parse(f);
    if (std::string why = reject_reason(j); !why.empty()) {
      warn(fmt::format("ignoring calibration cache {}: {}; measuring again", path, why));
      return;
    }
    // Validate everything before taking anything: a half-good file is a bad file.
    std::map<std::string, std::string> choices;
    const json stored_choices = j.contains("choices") ? j.at("choices") : json::object();
    for (const auto& [k, v] : stored_choices.items()) choices[k] = v.get<std::string>();
    const json devices = j.contains("devices") ? j.at("devices") : json::object();
    for (const auto& [name, d] : devices.items())
      if (from_json(d).device.str() != name)
        fail<ValueError>("calibration", "entry {} names another device", name);
    s.file_devices = devices;
    s.file_choices = std::move(choices);
  } catch (const std::exception& e) {
    warn(fmt::format("ignoring calibration cache {}: unreadable ({}); measuring again", path,
                     std::string(e.what()).substr(0, 120)));
  }
}

// Writes the file atomically (temp file + rename). A cache that cannot be written is only a
// lost optimization: warn, never throw.
void save_locked(State& s) {
  const std::string path = path_locked(s);
  json j = {{"format", kFormatName},
            {"version", kFormatVersion},
            {"fingerprint", fingerprint()},
            {"devices", s.file_devices},
            {"choices", s.file_choices}};
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = fmt::format("{}.tmp.{}", path, ::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f) {
      warn(fmt::format("cannot write calibration cache {}", path));
      return;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    warn(fmt::format("cannot write calibration cache {}: {}", path, ec.message()));
    fs::remove(tmp, ec);
  }
}

const DeviceFacts* publish_locked(State& s, DeviceFacts f, std::string_view source) {
  const std::string key = f.device.str();
  const DeviceFacts* p = &s.arena.emplace_back(std::move(f));
  s.current[key] = p;
  s.source[key] = std::string(source);
  return p;
}

// ---- measurement -------------------------------------------------------------------------

// GEMM-bound peak: one square product through the GEMM matmul runs on (cpu::gemm: oneDNN or
// BLAS per block, blocks over the kernel threads), best of three.
template <class T>
double gemm_peak(int n) {
  std::vector<T> a(static_cast<size_t>(n) * n, T(1) / T(3)), b(a), c(a.size());
  auto run = [&](int m) {
    cpu::gemm(CblasNoTrans, CblasNoTrans, m, m, m, a.data(), m, b.data(), m, T(0), c.data(), m);
  };
  run(n / 4);  // wakes the pool's threads
  const double t = detail::best_seconds(3, [&] { run(n); });
  return 2.0 * n * static_cast<double>(n) * n / t;
}

// Copy-bound bandwidth: bytes read + written by a memcpy split across the kernel threads.
double copy_bandwidth(size_t bytes) {
  std::vector<char> src(bytes, 1), dst(bytes, 0);  // touched, so page faults are not timed
  const auto n = static_cast<int64_t>(bytes);
  const double t = detail::best_seconds(3, [&] {
    parallel_for(n, 1 << 20, [&](int64_t b, int64_t e) {
      std::memcpy(dst.data() + b, src.data() + b, static_cast<size_t>(e - b));
    });
  });
  return 2.0 * static_cast<double>(bytes) / t;
}

// The funnel's fixed cost: 1-element adds, best of a few batches.
double op_overhead(int ops) {
  Tensor a = ones({1}), b = ones({1});
  const int batches = 5, per = std::max(1, ops / batches);
  return detail::best_seconds(batches,
                              [&] {
                                for (int i = 0; i < per; ++i) (void)add(a, b);
                              }) /
         per;
}

DeviceFacts measure(Device d) {
  struct Guard {
    Guard() { t_calibrating = true; }
    ~Guard() { t_calibrating = false; }
  } guard;
  if (d.is_cuda()) return cuda::measure_facts(d.index);
  DeviceFacts f;
  f.device = d;
  f.name = fmt::format("{} ({} threads)", cpu_model(), num_threads());
  f.peak_flops[kFloat32] = gemm_peak<float>(1024);
  f.peak_flops[kFloat64] = gemm_peak<double>(1024);
  f.mem_bandwidth = copy_bandwidth(size_t{64} << 20);
  f.op_overhead = op_overhead(10000);
  f.measured = true;
  return f;
}

// Facts for a device asked for while this thread is measuring (e.g. the profiler observing
// the measurement's own adds): zeros, marked unmeasured.
const DeviceFacts& placeholder(Device d) {
  static thread_local std::deque<DeviceFacts> held;
  for (const DeviceFacts& f : held)
    if (f.device == d) return f;
  DeviceFacts& f = held.emplace_back();
  f.device = d;
  f.name = "(being measured)";
  return f;
}

void check_known(Device d) {
  if (d.type == DeviceType::Auto)
    fail<DeviceError>("device_facts", "'auto' is a placement policy, not a device");
  const auto& known = detail::known_devices_ref();
  if (d.is_cuda() && !cuda::is_built())
    fail<NotBuiltError>("device_facts", "not built with CUDA (device {})", d.str());
  if (std::find(known.begin(), known.end(), d) == known.end()) {
    std::vector<std::string> names;
    for (Device k : known) names.push_back(k.str());
    fail<DeviceError>("device_facts", "unknown device {} (known: {})", d.str(),
                      fmt::join(names, ", "));
  }
}

}  // namespace

double DeviceFacts::peak(DType dt) const {
  if (auto it = peak_flops.find(dt); it != peak_flops.end()) return it->second;
  if (auto it = peak_flops.find(kFloat32); it != peak_flops.end()) return it->second;
  return 0;
}

const DeviceFacts& device_facts(Device device) {
  State& s = state();
  const std::string key = device.str();
  {
    std::lock_guard lock(s.mu);
    if (auto it = s.current.find(key); it != s.current.end()) return *it->second;
    ensure_loaded_locked(s);
    if (auto it = s.file_devices.find(key); it != s.file_devices.end())
      return *publish_locked(s, from_json(*it), "cache");  // validated when loaded
  }
  if (t_calibrating) return placeholder(device);
  check_known(device);
  // Measured without the lock (the measurement runs ops through the funnel); two threads may
  // both measure, the first to publish wins.
  DeviceFacts f = measure(device);
  std::lock_guard lock(s.mu);
  if (auto it = s.current.find(key); it != s.current.end()) return *it->second;
  ensure_loaded_locked(s);
  s.file_devices[key] = to_json(f);
  const DeviceFacts* p = publish_locked(s, std::move(f), "measured");
  save_locked(s);
  return *p;
}

std::vector<Device> known_devices() { return detail::known_devices_ref(); }

void set_device_facts(DeviceFacts f) {
  if (f.device.type == DeviceType::Auto)
    fail<DeviceError>("set_device_facts", "'auto' is a placement policy, not a device");
  State& s = state();
  std::lock_guard lock(s.mu);
  publish_locked(s, std::move(f), "injected");
}

void recalibrate() {
  State& s = state();
  {
    std::lock_guard lock(s.mu);
    ensure_loaded_locked(s);
    s.current.clear();
    s.source.clear();
    s.file_devices = json::object();
    // Tuned kernel choices are measurements too: one taken on a busy machine must not
    // outlive a recalibration, so they are forgotten and re-tuned on next sight.
    s.file_choices.clear();
  }
  detail::scheduler_on_cache_reset();
  std::vector<DeviceFacts> fresh;
  for (Device d : detail::known_devices_ref()) fresh.push_back(measure(d));
  std::lock_guard lock(s.mu);
  for (DeviceFacts& f : fresh) {
    s.file_devices[f.device.str()] = to_json(f);
    publish_locked(s, std::move(f), "measured");
  }
  save_locked(s);
}

std::string calibration_cache_path() {
  State& s = state();
  std::lock_guard lock(s.mu);
  return path_locked(s);
}

void set_calibration_cache_path(const std::string& path) {
  {
    State& s = state();
    std::lock_guard lock(s.mu);
    s.path_override = path;
    s.loaded = false;
    s.file_devices = json::object();
    s.file_choices.clear();
    s.current.clear();
    s.source.clear();
  }
  detail::scheduler_on_cache_reset();
}

std::string device_facts_source(Device device) {
  State& s = state();
  std::lock_guard lock(s.mu);
  auto it = s.source.find(device.str());
  return it == s.source.end() ? std::string() : it->second;
}

namespace detail {

double best_seconds(int reps, const std::function<void()>& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

std::map<std::string, std::string> cached_choices() {
  State& s = state();
  std::lock_guard lock(s.mu);
  ensure_loaded_locked(s);
  return s.file_choices;
}

void store_choice(const std::string& key, const std::string& impl) {
  State& s = state();
  std::lock_guard lock(s.mu);
  ensure_loaded_locked(s);
  s.file_choices[key] = impl;
  save_locked(s);
}

bool calibrating() { return t_calibrating; }

const std::vector<Device>& known_devices_ref() {
  static const std::vector<Device> devices = [] {
    std::vector<Device> v{Device::cpu()};
    if (cuda::is_built())
      for (int i = 0, n = cuda::device_count(); i < n; ++i) v.push_back(Device::cuda(i));
    return v;
  }();
  return devices;
}

}  // namespace detail
}  // namespace tessera
