// Profiler reports: the summary table and the Chrome trace event export. Both read the
// session through its public accessors.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tessera/core/error.h"
#include "tessera/runtime/profiler.h"

namespace tessera::profiler {
namespace {

using nlohmann::json;

// Totals of one op name.
struct OpTotals {
  std::string name;
  int64_t calls = 0;
  double seconds = 0, flops = 0, bytes = 0;
  double roofline_seconds = 0;          // sum of roofline * wall over calls
  std::map<std::string, double> where;  // "device/impl" -> seconds
};

std::vector<OpTotals> totals_by_name(const std::vector<OpRecord>& ops) {
  std::map<std::string, OpTotals> by;
  for (const OpRecord& o : ops) {
    const std::string key =
        o.backward_of.empty() ? o.name : o.name + " (backward of " + o.backward_of + ")";
    OpTotals& t = by[key];
    t.name = key;
    ++t.calls;
    t.seconds += o.seconds();
    t.flops += o.flops;
    t.bytes += o.bytes;
    t.roofline_seconds += o.roofline * o.seconds();
    t.where[o.device.str() + "/" + o.impl] += o.seconds();
  }
  std::vector<OpTotals> out;
  for (auto& [name, t] : by) out.push_back(std::move(t));
  std::stable_sort(out.begin(), out.end(),
                   [](const OpTotals& a, const OpTotals& b) { return a.seconds > b.seconds; });
  return out;
}

std::string where_str(const OpTotals& t) {
  std::vector<std::pair<double, std::string>> w;
  for (const auto& [k, sec] : t.where) w.emplace_back(-sec, k);
  std::sort(w.begin(), w.end());
  std::string s;
  for (const auto& [neg, k] : w) s += (s.empty() ? "" : ", ") + k;
  return s;
}

std::string rate(double amount, double seconds) {
  return amount > 0 && seconds > 0 ? fmt::format("{:.2f}", amount / seconds * 1e-9) : "-";
}

std::string op_row(const OpTotals& t, double total_seconds) {
  const double share = total_seconds > 0 ? t.seconds / total_seconds : 0;
  const std::string roof =
      t.roofline_seconds > 0 ? fmt::format("{:.3g}%", 100 * t.roofline_seconds / t.seconds) : "-";
  return fmt::format("{:<20} {:>8} {:>10.3f} {:>6.1f}% {:>10.2f} {:>9} {:>9} {:>8}  {}\n", t.name,
                     t.calls, t.seconds * 1e3, 100 * share, t.seconds / t.calls * 1e6,
                     rate(t.flops, t.seconds), rate(t.bytes, t.seconds), roof, where_str(t));
}

std::string scope_table(const std::vector<ScopeRecord>& scopes) {
  if (scopes.empty()) return "";
  std::map<std::string, std::pair<int64_t, double>> by;  // name -> calls, seconds
  for (const ScopeRecord& s : scopes) {
    auto& [calls, sec] = by[s.name];
    ++calls;
    sec += static_cast<double>(s.end_ns - s.start_ns) * 1e-9;
  }
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [name, v] : by) order.emplace_back(-v.second, name);
  std::sort(order.begin(), order.end());
  std::string out = fmt::format("\n{:<20} {:>8} {:>10}\n", "scope", "calls", "total ms");
  for (const auto& [neg, name] : order)
    out += fmt::format("{:<20} {:>8} {:>10.3f}\n", name, by[name].first, -neg * 1e3);
  return out;
}

std::string bytes_str(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) v /= 1024, ++u;
  return u == 0 ? fmt::format("{} B", bytes) : fmt::format("{:.2f} {}", v, kUnits[u]);
}

std::string memory_lines(const Session& s) {
  std::set<std::pair<int, int>> seen;  // (type, index)
  std::string out;
  for (const MemorySample& m : s.memory()) {
    if (!seen.insert({static_cast<int>(m.device.type), m.device.index}).second) continue;
    out += fmt::format("memory peak {}: {}\n", m.device.str(), bytes_str(s.memory_peak(m.device)));
  }
  return out;
}

// Chrome trace: one process per device, one track per session thread. A device-timed kernel
// (GPU) is drawn on its device's process on the track of its stream, and its launch on the
// CPU process on the track of the thread that launched it.
int device_pid(Device d) { return d.is_cpu() ? 0 : 1 + d.index; }

constexpr int kStreamTrack = 1000;  // tid of stream 0; thread tracks count up from 0

int op_tid(const OpRecord& o) { return o.device_timed() ? kStreamTrack + o.stream : o.thread; }

double us(int64_t ns) { return static_cast<double>(ns) * 1e-3; }

json shapes_json(const OpRecord& o) {
  json shapes = json::array();
  for (const Shape& s : o.shapes) shapes.push_back(s);
  return shapes;
}

json dtypes_json(const OpRecord& o) {
  json out = json::array();
  for (DType d : o.dtypes) out.push_back(std::string(dtype_name(d)));
  return out;
}

json op_event(const OpRecord& o) {
  json args = {{"impl", o.impl},
               {"device", o.device.str()},
               {"dtype", std::string(dtype_name(o.dtype))},
               {"shapes", shapes_json(o)},
               {"dtypes", dtypes_json(o)},
               {"flops", o.flops},
               {"bytes", o.bytes},
               {"gflops", o.gflops},
               {"gbps", o.gbps},
               {"roofline", o.roofline}};
  if (!o.decision.empty()) args["decision"] = o.decision;
  if (!o.backward_of.empty()) args["backward_of"] = o.backward_of;
  if (o.device_timed()) {
    args["stream"] = o.stream;
    args["launch_us"] = us(o.end_ns - o.start_ns);
  }
  return {{"name", o.name},
          {"cat", "op"},
          {"ph", "X"},
          {"ts", us(o.device_timed() ? o.device_start_ns : o.start_ns)},
          {"dur", o.seconds() * 1e6},
          {"pid", device_pid(o.device)},
          {"tid", op_tid(o)},
          {"args", std::move(args)}};
}

// The host side of a device-timed kernel.
json launch_event(const OpRecord& o) {
  return {{"name", o.name},
          {"cat", "launch"},
          {"ph", "X"},
          {"ts", us(o.start_ns)},
          {"dur", us(o.end_ns - o.start_ns)},
          {"pid", 0},
          {"tid", o.thread},
          {"args", {{"device", o.device.str()}, {"stream", o.stream}}}};
}

// Scopes are host code: they live on the CPU process, on their thread's track.
json scope_event(const ScopeRecord& s) {
  return {{"name", s.name},
          {"cat", "scope"},
          {"ph", "X"},
          {"ts", us(s.start_ns)},
          {"dur", us(s.end_ns - s.start_ns)},
          {"pid", 0},
          {"tid", s.thread},
          {"args", {{"depth", s.depth}}}};
}

json memory_event(const MemorySample& m) {
  return {{"name", "memory " + m.device.str()},
          {"ph", "C"},
          {"ts", us(m.time_ns)},
          {"pid", device_pid(m.device)},
          {"args", {{"bytes", m.current_bytes}}}};
}

json decision_event(const DecisionRecord& d) {
  return {{"name", "schedule"}, {"cat", "scheduler"},        {"ph", "i"},
          {"s", "t"},           {"ts", us(d.time_ns)},       {"pid", 0},
          {"tid", d.thread},    {"args", {{"text", d.text}}}};
}

std::string track_name(int tid) {
  if (tid >= kStreamTrack) return fmt::format("stream {}", tid - kStreamTrack);
  return tid == 0 ? "thread 0 (started the session)" : fmt::format("thread {}", tid);
}

json meta_event(const char* what, int pid, int tid, const std::string& name) {
  json e = {{"name", what}, {"ph", "M"}, {"pid", pid}, {"args", {{"name", name}}}};
  if (tid >= 0) e["tid"] = tid;
  return e;
}

// Names each process (device) and each (process, thread) track that has events.
std::vector<json> metadata(const std::vector<OpRecord>& ops, const std::vector<ScopeRecord>& scopes,
                           const std::vector<MemorySample>& mem,
                           const std::vector<DecisionRecord>& decisions) {
  std::map<int, std::string> procs{{0, "cpu"}};
  std::set<std::pair<int, int>> tracks;
  for (const OpRecord& o : ops) {
    procs[device_pid(o.device)] = o.device.str();
    tracks.insert({device_pid(o.device), op_tid(o)});
    if (o.device_timed()) tracks.insert({0, o.thread});
  }
  for (const MemorySample& m : mem) procs[device_pid(m.device)] = m.device.str();
  for (const ScopeRecord& s : scopes) tracks.insert({0, s.thread});
  for (const DecisionRecord& d : decisions) tracks.insert({0, d.thread});
  std::vector<json> out;
  for (const auto& [pid, name] : procs) out.push_back(meta_event("process_name", pid, -1, name));
  for (const auto& [pid, tid] : tracks)
    out.push_back(meta_event("thread_name", pid, tid, track_name(tid)));
  return out;
}

}  // namespace

std::string Session::summary(size_t top) const {
  const std::vector<OpRecord> ops = this->ops();
  std::vector<OpTotals> totals = totals_by_name(ops);
  double total = 0;
  for (const OpTotals& t : totals) total += t.seconds;
  std::string out =
      fmt::format("Tessera profile: {} op calls, {:.3f} ms in kernels\n", ops.size(), total * 1e3);
  out += fmt::format("{:<20} {:>8} {:>10} {:>7} {:>10} {:>9} {:>9} {:>8}  {}\n", "op", "calls",
                     "total ms", "share", "mean us", "GFLOP/s", "GB/s", "roofline", "where");
  const size_t shown = top == 0 ? totals.size() : std::min(top, totals.size());
  for (size_t i = 0; i < shown; ++i) out += op_row(totals[i], total);
  if (shown < totals.size()) out += fmt::format("... {} more op names\n", totals.size() - shown);
  out += scope_table(scopes());
  out += "\n" + memory_lines(*this);
  if (size_t n = decisions().size()) out += fmt::format("scheduler decisions: {}\n", n);
  return out;
}

void detail::write_chrome_trace(const Session& s, std::ostream& os) {
  const auto ops = s.ops();
  const auto scopes = s.scopes();
  const auto mem = s.memory();
  const auto decisions = s.decisions();
  os << "{\"displayTimeUnit\": \"ns\", \"traceEvents\": [\n";
  bool first = true;
  auto emit = [&](const json& e) {
    // replace: a scope name that is not valid UTF-8 must not abort the export.
    os << (first ? "" : ",\n") << e.dump(-1, ' ', false, json::error_handler_t::replace);
    first = false;
  };
  for (const json& e : metadata(ops, scopes, mem, decisions)) emit(e);
  for (const ScopeRecord& r : scopes) emit(scope_event(r));
  for (const OpRecord& o : ops) {
    emit(op_event(o));
    if (o.device_timed()) emit(launch_event(o));
  }
  for (const MemorySample& m : mem) emit(memory_event(m));
  for (const DecisionRecord& d : decisions) emit(decision_event(d));
  os << "\n]}\n";
}

void Session::write_chrome_trace(const std::string& path) const {
  std::ofstream os(path, std::ios::out | std::ios::trunc);
  if (!os)
    fail<IOError>("profiler", "cannot write the trace file '{}': {}", path, std::strerror(errno));
  detail::write_chrome_trace(*this, os);
  os.close();
  if (os.fail()) fail<IOError>("profiler", "writing the trace file '{}' failed", path);
}

}  // namespace tessera::profiler
