// Profiler device timing: kernels on a device with a marker (CUDA events on a GPU) are timed by
// the device. Without a GPU the plumbing is tested with a fake marker installed for the CPU:
// its clock advances exactly 1 ms per mark, so every kernel lasts 1 ms of "device" time.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "tessera/runtime/cuda.h"
#include "tessera/runtime/profiler.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int64_t kTick = 1'000'000;  // ns of fake device time per mark

struct FakeDevice {
  int64_t clock = 0;     // device time of the next mark, in ticks
  int64_t queue = 7;     // queue the next mark is recorded on
  bool finished = true;  // whether marks recorded so far report done()
  int alive = 0;         // marks not yet destroyed
};
FakeDevice g_fake;

class FakeMark final : public profiler::detail::DeviceMark {
 public:
  FakeMark() : tick_(g_fake.clock++), queue_(g_fake.queue) { ++g_fake.alive; }
  ~FakeMark() override { --g_fake.alive; }
  bool done() const override { return g_fake.finished; }
  void wait() const override {}
  double ms_since(const DeviceMark& earlier) const override {
    return static_cast<double>(tick_ - static_cast<const FakeMark&>(earlier).tick_);
  }
  int64_t queue() const override { return queue_; }

 private:
  int64_t tick_;
  int64_t queue_;
};

std::unique_ptr<profiler::detail::DeviceMark> fake_mark(Device) {
  return std::make_unique<FakeMark>();
}

// Installs the fake marker for the CPU for one test.
class ProfilerDeviceTiming : public ::testing::Test {
 protected:
  void SetUp() override {
    g_fake = {};
    profiler::detail::set_device_marker(DeviceType::CPU, &fake_mark);
  }
  void TearDown() override { profiler::detail::set_device_marker(DeviceType::CPU, nullptr); }
};

TEST_F(ProfilerDeviceTiming, KernelsGetDeviceTimesOnTheSessionClock) {
  Tensor a = ones({64, 64}), b = ones({64, 64});
  profiler::Session s;
  Tensor c = matmul(a, b);
  Tensor d = add(c, c);
  Tensor e = d.transpose(0, 1);  // a view: no kernel, timed by the host
  Tensor f = exp(e);
  s.stop();
  const auto ops = s.ops();
  ASSERT_EQ(ops.size(), 4u);
  // Marks: the anchor (tick 0), then begin and end of each kernel.
  for (int i : {0, 1, 3}) {
    SCOPED_TRACE(ops[i].name);
    ASSERT_TRUE(ops[i].device_timed());
    EXPECT_EQ(ops[i].device_end_ns - ops[i].device_start_ns, kTick);
    EXPECT_DOUBLE_EQ(ops[i].seconds(), 1e-3);
    EXPECT_EQ(ops[i].stream, 0);
    EXPECT_GE(ops[i].host_seconds(), 0);
  }
  EXPECT_EQ(ops[1].device_start_ns - ops[0].device_start_ns, 2 * kTick);
  EXPECT_EQ(ops[3].device_start_ns - ops[1].device_start_ns, 2 * kTick);
  // The anchor was waited for before the first kernel began: tick 0 is at or before it.
  EXPECT_LE(ops[0].device_start_ns - kTick, ops[0].start_ns + kTick);
  EXPECT_FALSE(ops[2].device_timed());
  EXPECT_EQ(ops[2].stream, -1);
  // Rates and the summary use device time.
  EXPECT_DOUBLE_EQ(ops[0].gflops, 2.0 * 64 * 64 * 64 / 1e-3 * 1e-9);
  const std::string matmul_row = fmt::format("{:<20} {:>8} {:>10.3f}", "matmul", 1, 1.0);
  EXPECT_NE(s.summary().find(matmul_row), std::string::npos) << s.summary();
  EXPECT_EQ(g_fake.alive, 1);  // stop() resolved every kernel and released its marks; the
                               // anchor stays with the session
}

TEST_F(ProfilerDeviceTiming, MarksAreReleasedAsTheDeviceFinishes) {
  Tensor a = ones({8});
  profiler::Session s;
  g_fake.finished = false;
  for (int i = 0; i < 5; ++i) a = add(a, a);
  EXPECT_EQ(g_fake.alive, 1 + 2 * 5);  // the anchor and both marks of every pending kernel
  g_fake.finished = true;
  a = add(a, a);  // finds all of them done
  EXPECT_EQ(g_fake.alive, 1);
  g_fake.finished = false;
  a = add(a, a);
  const auto ops = s.ops();  // reading waits for the pending kernel
  EXPECT_EQ(g_fake.alive, 1);
  ASSERT_EQ(ops.size(), 7u);
  for (const auto& o : ops) EXPECT_EQ(o.device_end_ns - o.device_start_ns, kTick);
  s.stop();
}

TEST_F(ProfilerDeviceTiming, StreamsGetTracksAndLaunchesStayOnTheirThread) {
  const std::string path =
      (fs::temp_directory_path() / fmt::format("tessera_prof_dev_{}.json", ::getpid())).string();
  Tensor a = ones({16});
  {
    profiler::Session s({.output = path});
    a = add(a, a);
    g_fake.queue = 9;  // a second stream
    a = mul(a, a);
    g_fake.queue = 7;
    a = add(a, a);
    s.stop();
    const auto ops = s.ops();
    ASSERT_EQ(ops.size(), 3u);
    EXPECT_EQ(ops[0].stream, 0);
    EXPECT_EQ(ops[1].stream, 1);
    EXPECT_EQ(ops[2].stream, 0);
  }
  std::ifstream is(path);
  const json trace = json::parse(is);
  fs::remove(path);
  std::multiset<std::pair<std::string, int>> kernels, launches;  // (name, tid)
  std::set<std::string> track_names;
  for (const json& e : trace["traceEvents"]) {
    if (e["ph"] == "M" && e["name"] == "thread_name")
      track_names.insert(e["args"]["name"].get<std::string>());
    if (e["ph"] != "X") continue;
    if (e["cat"] == "op") {
      kernels.insert({e["name"].get<std::string>(), e["tid"].get<int>()});
      EXPECT_DOUBLE_EQ(e["dur"].get<double>(), 1000.0);  // 1 ms in us
      EXPECT_TRUE(e["args"].contains("launch_us"));
    } else if (e["cat"] == "launch") {
      launches.insert({e["name"].get<std::string>(), e["tid"].get<int>()});
    }
  }
  EXPECT_EQ(kernels, (std::multiset<std::pair<std::string, int>>{
                         {"add", 1000}, {"mul", 1001}, {"add", 1000}}));
  EXPECT_EQ(launches,
            (std::multiset<std::pair<std::string, int>>{{"add", 0}, {"mul", 0}, {"add", 0}}));
  EXPECT_TRUE(track_names.count("stream 0"));
  EXPECT_TRUE(track_names.count("stream 1"));
  EXPECT_TRUE(track_names.count("thread 0 (started the session)"));
}

TEST_F(ProfilerDeviceTiming, NoMarksWithoutASession) {
  Tensor a = add(ones({4}), ones({4}));
  EXPECT_EQ(g_fake.clock, 0);
  EXPECT_EQ(g_fake.alive, 0);
}

// On a GPU: kernels are timed by CUDA events. A 2048^3 float32 matmul keeps the device busy far
// longer than its launch takes; the device times lie within the session and never overlap on
// one stream.
TEST(ProfilerCuda, KernelsAreTimedByEvents) {
  if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  profiler::detail::set_device_marker(DeviceType::CPU, nullptr);
  Tensor a = randn({2048, 2048}).to(Device::cuda(0)), b = randn({2048, 2048}).to(Device::cuda(0));
  cuda::synchronize();
  profiler::Session s;
  Tensor c = matmul(a, b);
  Tensor d = matmul(c, b);
  Tensor e = add(d, d);
  s.stop();
  const auto ops = s.ops();
  ASSERT_EQ(ops.size(), 3u);
  for (const auto& o : ops) {
    SCOPED_TRACE(o.name);
    ASSERT_TRUE(o.device_timed());
    EXPECT_EQ(o.stream, 0);
    EXPECT_GT(o.seconds(), 0);
    EXPECT_GE(o.device_start_ns, 0);
  }
  EXPECT_GT(ops[0].seconds(), ops[0].host_seconds());  // ~0.5 ms of math vs a launch
  EXPECT_LE(ops[0].device_end_ns, ops[1].device_start_ns);
  EXPECT_LE(ops[1].device_end_ns, ops[2].device_start_ns);
  EXPECT_GT(ops[0].roofline, 0);
  EXPECT_LE(ops[0].roofline, 1.05);
}

}  // namespace
}  // namespace tessera
