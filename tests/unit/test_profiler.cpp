// Profiler: records match the ops executed, FLOP counts, scopes, summary order, the Chrome
// trace, the memory timeline, the one-session rule, unwritable outputs and TESSERA_PROFILE.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "tessera/runtime/device_facts.h"
#include "tessera/runtime/profiler.h"
#include "tessera/runtime/scheduler.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  return (fs::temp_directory_path() / fmt::format("tessera_prof_{}_{}", ::getpid(), name)).string();
}

std::vector<std::string> names_of(const std::vector<profiler::OpRecord>& ops) {
  std::vector<std::string> out;
  for (const auto& o : ops) out.push_back(o.name);
  return out;
}

// The implementation the scheduler picks for a matmul of a and b on the CPU ("blas" for
// float32 unless tuning or a remembered choice says otherwise).
std::string matmul_impl(const Tensor& a, const Tensor& b) {
  const Tensor in[] = {a, b};
  return std::string(choose_kernel(prim("matmul"), in, {}, Device::cpu())->impl);
}

json read_json(const std::string& path) {
  std::ifstream is(path);
  return json::parse(is);  // throws on invalid JSON
}

TEST(ProfilerSession, RecordsMatchOpsExecuted) {
  Tensor a = ones({3, 4}), b = ones({4, 5});
  Tensor ia = ones({2, 3}, kInt64), ib = ones({3, 2}, kInt64);
  const std::string f32_impl = matmul_impl(a, b);
  profiler::Session s;
  Tensor c = matmul(a, b);
  Tensor d = add(c, c);
  Tensor e = matmul(ia, ib);
  s.stop();
  auto ops = s.ops();
  ASSERT_EQ(names_of(ops), (std::vector<std::string>{"matmul", "add", "matmul"}));
  EXPECT_EQ(ops[0].shapes, (std::vector<Shape>{{3, 4}, {4, 5}}));
  EXPECT_EQ(ops[0].dtypes, (std::vector<DType>{kFloat32, kFloat32}));
  EXPECT_EQ(ops[0].impl, f32_impl);
  const Tensor ab[] = {a, b};
  const std::string key = choice_key(prim("matmul"), ab, {}, Device::cpu());
  if (!tuning() && !remembered_choices().contains(key)) {
    EXPECT_EQ(f32_impl, "blas");  // the highest-priority kernel when nothing was tuned
  }
  EXPECT_EQ(ops[0].device, Device::cpu());
  EXPECT_EQ(ops[1].shapes, (std::vector<Shape>{{3, 5}, {3, 5}}));
  EXPECT_EQ(ops[1].impl, "builtin");
  EXPECT_EQ(ops[2].shapes, (std::vector<Shape>{{2, 3}, {3, 2}}));
  EXPECT_EQ(ops[2].dtype, kInt64);
  EXPECT_EQ(ops[2].impl, "builtin");
  for (const auto& o : ops) {
    EXPECT_EQ(o.thread, 0);
    EXPECT_LE(o.start_ns, o.end_ns);
    EXPECT_GE(o.start_ns, 0);
  }
  EXPECT_LE(ops[0].end_ns, ops[1].start_ns);
}

TEST(ProfilerSession, ViewsAreRecordedAsView) {
  Tensor a = ones({3, 4});
  profiler::Session s;
  Tensor t = a.t();
  s.stop();
  auto ops = s.ops();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_EQ(ops[0].impl, "view");
  EXPECT_EQ(ops[0].shapes, (std::vector<Shape>{{3, 4}}));
}

TEST(ProfilerSession, MatmulFlopsMatchHandCount) {
  const int64_t m = 6, k = 7, n = 8;
  Tensor a = ones({m, k}), b = ones({k, n});
  Tensor ba = ones({3, m, k}, kFloat64), bb = ones({3, k, n}, kFloat64);
  profiler::Session s;
  matmul(a, b);
  matmul(ba, bb);
  s.stop();
  auto ops = s.ops();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].flops, 2.0 * m * n * k);
  EXPECT_EQ(ops[0].bytes, 4.0 * (m * k + k * n + m * n));
  EXPECT_EQ(ops[1].flops, 3 * 2.0 * m * n * k);
  EXPECT_EQ(ops[1].bytes, 8.0 * 3 * (m * k + k * n + m * n));
}

TEST(ProfilerSession, RatesAndRooflineFollowFromTheRecord) {
  Tensor a = ones({64, 64}), b = ones({64, 64});
  profiler::Session s;
  matmul(a, b);
  s.stop();
  const auto o = s.ops().at(0);
  ASSERT_GT(o.seconds(), 0);
  EXPECT_DOUBLE_EQ(o.gflops, o.flops / o.seconds() * 1e-9);
  EXPECT_DOUBLE_EQ(o.gbps, o.bytes / o.seconds() * 1e-9);
  const DeviceFacts& f = device_facts(Device::cpu());
  const double peak = f.peak(kFloat32);
  const double expect = std::max(peak > 0 ? o.flops / peak : 0.0,
                                 f.mem_bandwidth > 0 ? o.bytes / f.mem_bandwidth : 0.0) /
                        o.seconds();
  EXPECT_NEAR(o.roofline, expect, 1e-12 + 1e-9 * expect);
  if (peak > 0) {
    EXPECT_GT(o.roofline, 0);
  }
}

TEST(ProfilerSession, ShapesCanBeLeftOut) {
  Tensor a = ones({2, 2});
  profiler::Session s({.record_shapes = false});
  add(a, a);
  s.stop();
  auto ops = s.ops();
  ASSERT_EQ(ops.size(), 1u);
  EXPECT_TRUE(ops[0].shapes.empty());
  EXPECT_EQ(ops[0].name, "add");
}

TEST(ProfilerSession, NoRecordsAfterStop) {
  Tensor a = ones({2, 2});
  profiler::Session s;
  add(a, a);
  EXPECT_TRUE(s.active());
  EXPECT_TRUE(profiler::active());
  s.stop();
  EXPECT_FALSE(s.active());
  EXPECT_FALSE(profiler::active());
  const size_t n_ops = s.ops().size(), n_mem = s.memory().size();
  add(a, a);
  { profiler::Scope late("late"); }
  profiler::note_decision("ignored");
  Tensor big = Tensor::empty({1 << 16});
  EXPECT_EQ(s.ops().size(), n_ops);
  EXPECT_EQ(s.memory().size(), n_mem);
  EXPECT_TRUE(s.scopes().empty());
  EXPECT_TRUE(s.decisions().empty());
  s.stop();  // idempotent
}

TEST(ProfilerSession, SecondConcurrentSessionIsAClearError) {
  profiler::Session s;
  try {
    profiler::Session t;
    ADD_FAILURE() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[profiler] a session is already active"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(s.active());
  s.stop();
  profiler::Session u;  // fine once the first one stopped
  EXPECT_TRUE(u.active());
}

TEST(ProfilerSession, UnwritablePathFailsAtStart) {
  const std::string path = "/nonexistent_dir_tessera/x.json";
  try {
    profiler::Session s({.output = path});
    ADD_FAILURE() << "expected IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("[profiler] cannot write the trace file '" + path + "'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(profiler::active());
  profiler::Session ok;  // the failed start left nothing behind
  EXPECT_TRUE(ok.active());
}

TEST(ProfilerScope, ScopesContainTheirOps) {
  Tensor a = ones({4, 4});
  profiler::Session s;
  {
    profiler::Scope outer("data");
    add(a, a);
    {
      profiler::Scope inner("step");
      mul(a, a);
    }
  }
  s.stop();
  auto scopes = s.scopes();
  auto ops = s.ops();
  ASSERT_EQ(scopes.size(), 2u);
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(scopes[0].name, "data");
  EXPECT_EQ(scopes[0].depth, 0);
  EXPECT_EQ(scopes[1].name, "step");
  EXPECT_EQ(scopes[1].depth, 1);
  auto contains = [](int64_t s0, int64_t s1, int64_t t0, int64_t t1) {
    return s0 <= t0 && t1 <= s1;
  };
  EXPECT_TRUE(contains(scopes[0].start_ns, scopes[0].end_ns, scopes[1].start_ns, scopes[1].end_ns));
  EXPECT_TRUE(contains(scopes[0].start_ns, scopes[0].end_ns, ops[0].start_ns, ops[0].end_ns));
  EXPECT_TRUE(contains(scopes[1].start_ns, scopes[1].end_ns, ops[1].start_ns, ops[1].end_ns));
  EXPECT_FALSE(contains(scopes[1].start_ns, scopes[1].end_ns, ops[0].start_ns, ops[0].end_ns));
}

TEST(ProfilerScope, ScopesAndOpsOnSeveralThreads) {
  Tensor a = ones({8});
  constexpr int kThreads = 4, kOps = 50;
  profiler::Session s;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      profiler::Scope sc("worker");
      for (int i = 0; i < kOps; ++i) add(a, a);
    });
  for (auto& th : threads) th.join();
  s.stop();
  auto ops = s.ops();
  auto scopes = s.scopes();
  EXPECT_EQ(ops.size(), size_t{kThreads * kOps});
  ASSERT_EQ(scopes.size(), size_t{kThreads});
  std::map<int, int> per_thread;
  for (const auto& o : ops) ++per_thread[o.thread];
  EXPECT_EQ(per_thread.size(), size_t{kThreads});
  for (const auto& [tid, n] : per_thread) {
    EXPECT_GT(tid, 0);  // thread 0 started the session and ran nothing
    EXPECT_EQ(n, kOps);
  }
  for (const auto& sc : scopes)
    for (const auto& o : ops)
      if (o.thread == sc.thread) {
        EXPECT_TRUE(sc.start_ns <= o.start_ns && o.end_ns <= sc.end_ns);
      }
}

TEST(ProfilerSession, DecisionsAttachToTheNextOp) {
  // Views: the scheduler does not see them, so only this test's note is in play.
  Tensor a = ones({2, 3});
  profiler::note_decision("off: dropped");
  profiler::Session s;
  profiler::note_decision("add -> cpu/builtin (predicted 0.2 us)");
  a.t();
  a.t();
  s.stop();
  auto ops = s.ops();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].decision, "add -> cpu/builtin (predicted 0.2 us)");
  EXPECT_EQ(ops[1].decision, "");
  ASSERT_EQ(s.decisions().size(), 1u);
  EXPECT_EQ(s.decisions()[0].text, ops[0].decision);
}

TEST(ProfilerMemory, TimelinePeakCoversABigAllocation) {
  constexpr int64_t kBig = int64_t{1} << 22;  // elements: 16 MiB of float32
  profiler::Session s;
  const int64_t before = cpu_allocator().stats().current_bytes;
  { Tensor big = Tensor::empty({kBig}); }
  s.stop();
  EXPECT_GE(s.memory_peak(Device::cpu()), before + kBig * 4);
  auto mem = s.memory();
  ASSERT_GE(mem.size(), 3u);  // the starting level, the allocation, the release
  bool saw_alloc = false, saw_free = false;
  for (const auto& m : mem) {
    EXPECT_EQ(m.device, Device::cpu());
    saw_alloc |= m.delta_bytes >= kBig * 4;
    saw_free |= m.delta_bytes <= -kBig * 4;
  }
  EXPECT_TRUE(saw_alloc);
  EXPECT_TRUE(saw_free);
  EXPECT_EQ(s.memory_peak(Device::cuda(0)), 0);
}

TEST(ProfilerReport, SummarySortedByTotalTime) {
  Tensor big = ones({192, 192}), small = ones({4});
  const std::string where = "cpu/" + matmul_impl(big, big);
  profiler::Session s;
  {
    profiler::Scope sc("loop");
    for (int i = 0; i < 20; ++i) add(small, small);
  }
  for (int i = 0; i < 3; ++i) matmul(big, big);
  mul(small, small);
  s.stop();
  std::map<std::string, double> total;
  for (const auto& o : s.ops()) total[o.name] += o.seconds();
  std::vector<std::pair<double, std::string>> order;
  for (const auto& [n, t] : total) order.emplace_back(-t, n);
  std::sort(order.begin(), order.end());
  const std::string text = s.summary();
  size_t last = 0;
  for (const auto& [neg, name] : order) {
    const size_t at = text.find("\n" + name + " ");
    ASSERT_NE(at, std::string::npos) << name << " missing from\n" << text;
    EXPECT_GT(at, last) << name << " out of order in\n" << text;
    last = at;
  }
  EXPECT_NE(text.find(where), std::string::npos) << text;
  EXPECT_NE(text.find("\nloop "), std::string::npos) << text;
  EXPECT_NE(text.find("memory peak cpu:"), std::string::npos) << text;
  const std::string top1 = s.summary(1);
  EXPECT_NE(top1.find("... 2 more op names"), std::string::npos) << top1;
}

TEST(ProfilerReport, ChromeTraceIsValidJsonWithTheExpectedEvents) {
  Tensor a = ones({16, 16});
  const std::string impl = matmul_impl(a, a);
  const std::string path = temp_path("trace.json");
  {
    profiler::Session s({.output = path});
    {
      profiler::Scope sc("data");
      matmul(a, a);
      add(a, a);
    }
    s.stop();
    const json j = read_json(path);
    ASSERT_TRUE(j.contains("traceEvents"));
    std::map<std::string, int> x_ops, x_scopes;
    int counters = 0, thread_names = 0, process_names = 0;
    for (const json& e : j["traceEvents"]) {
      const std::string ph = e.at("ph");
      if (ph == "X" && e.at("cat") == "op") {
        ++x_ops[e.at("name")];
        EXPECT_EQ(e.at("pid"), 0);
        EXPECT_TRUE(e.at("args").contains("impl"));
        EXPECT_TRUE(e.at("args").contains("flops"));
        if (e.at("name") == "matmul") {
          EXPECT_EQ(e.at("args").at("impl"), impl);
          EXPECT_EQ(e.at("args").at("dtype"), "float32");
          EXPECT_EQ(e.at("args").at("flops"), 2.0 * 16 * 16 * 16);
          EXPECT_EQ(e.at("args").at("shapes"), json::parse("[[16,16],[16,16]]"));
        }
      } else if (ph == "X" && e.at("cat") == "scope") {
        ++x_scopes[e.at("name")];
      } else if (ph == "C") {
        ++counters;
        EXPECT_EQ(e.at("name"), "memory cpu");
        EXPECT_TRUE(e.at("args").at("bytes").is_number_integer());
      } else if (ph == "M") {
        thread_names += e.at("name") == "thread_name";
        process_names += e.at("name") == "process_name";
      }
    }
    EXPECT_EQ(x_ops, (std::map<std::string, int>{{"matmul", 1}, {"add", 1}}));
    EXPECT_EQ(x_scopes, (std::map<std::string, int>{{"data", 1}}));
    EXPECT_GE(counters, 3);  // start level + at least the two outputs
    EXPECT_EQ(thread_names, 1);
    EXPECT_EQ(process_names, 1);
    // The explicit export writes the same events.
    const std::string again = temp_path("again.json");
    s.write_chrome_trace(again);
    EXPECT_EQ(read_json(again)["traceEvents"].size(), j["traceEvents"].size());
    fs::remove(again);
  }
  fs::remove(path);
}

// TESSERA_PROFILE is read when the library loads, so it is tested in a child process: this
// binary again, running only ProfilerEnv.ChildWorkload.
TEST(ProfilerEnv, ChildWorkload) {
  if (!std::getenv("TESSERA_PROFILE_TEST_CHILD")) GTEST_SKIP() << "run by ProfilerEnv.* only";
  EXPECT_TRUE(profiler::active());
  EXPECT_THROW(profiler::Session{}, ValueError);
  profiler::Scope sc("child");
  Tensor a = ones({8, 8});
  matmul(a, a);
}

struct ChildResult {
  int status;
  std::string output;
};

ChildResult run_child(const std::string& profile_path) {
  const std::string cmd = fmt::format(
      "TESSERA_PROFILE='{}' TESSERA_PROFILE_TEST_CHILD=1 /proc/{}/exe "
      "--gtest_filter=ProfilerEnv.ChildWorkload 2>&1",
      profile_path, ::getpid());
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  return {::pclose(p), out};
}

TEST(ProfilerEnv, WritesTraceAndSummaryAtExit) {
  const std::string path = temp_path("env.json");
  ChildResult r = run_child(path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("Tessera profile:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\nmatmul "), std::string::npos) << r.output;
  const json j = read_json(path);
  int matmuls = 0, child_scopes = 0;
  for (const json& e : j["traceEvents"]) {
    if (e.at("ph") != "X") continue;
    matmuls += e.at("name") == "matmul";
    child_scopes += e.at("name") == "child";
  }
  EXPECT_EQ(matmuls, 1);
  EXPECT_EQ(child_scopes, 1);
  fs::remove(path);
}

TEST(ProfilerEnv, UnwritablePathFailsAtStart) {
  ChildResult r = run_child("/nonexistent_dir_tessera/x.json");
  EXPECT_NE(r.status, 0) << r.output;
  EXPECT_NE(
      r.output.find("[profiler] cannot write the trace file '/nonexistent_dir_tessera/x.json'"),
      std::string::npos)
      << r.output;
  // It failed before any test ran.
  EXPECT_EQ(r.output.find("ChildWorkload"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace tessera

namespace tessera {
// Kernels run by backward are attributed to the forward op they differentiate.
TEST(ProfilerSession, BackwardOpsNameTheirForwardOp) {
  Tensor x = randn({8}, kFloat64).requires_grad_();
  Tensor y = exp(x).sum();
  profiler::Session s;
  y.backward();
  s.stop();
  bool saw_exp = false;
  for (const auto& o : s.ops()) {
    if (o.name == "mul") {
      EXPECT_EQ(o.backward_of, "exp");
    }
    saw_exp = saw_exp || (o.backward_of == "exp" && o.name == "mul");
  }
  EXPECT_TRUE(saw_exp);  // exp's vjp multiplies by the saved output
  EXPECT_NE(s.summary().find("mul (backward of exp)"), std::string::npos);
}
}  // namespace tessera
