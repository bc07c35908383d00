// Scheduler and device facts: placement decisions from injected facts, explicit placement,
// implementation choice (tuning, remembering, deterministic mode), the calibration cache
// (round trip, corrupt/foreign/old files) and device names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "tessera/runtime/scheduler.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

DeviceFacts fake_cpu() {
  DeviceFacts f;
  f.device = Device::cpu();
  f.name = "fake cpu";
  f.peak_flops = {{kFloat32, 100e9}, {kFloat64, 50e9}};
  f.mem_bandwidth = 20e9;
  f.op_overhead = 0.2e-6;
  return f;
}

// A fast GPU behind a slow link: 100 TFLOP/s, 3 TB/s, 20 GB/s and 10 us per transfer.
DeviceFacts fake_gpu() {
  DeviceFacts f;
  f.device = Device::cuda(0);
  f.name = "fake gpu";
  f.peak_flops = {{kFloat32, 100e12}};
  f.mem_bandwidth = 3e12;
  f.host_to_device_bandwidth = f.device_to_host_bandwidth = 20e9;
  f.transfer_latency = 10e-6;
  f.op_overhead = 5e-6;
  return f;
}

// Every test gets its own calibration cache file and leaves the switches as it found them.
class SchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("tessera-test-{}-{}", ::getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    set_calibration_cache_path(path());
  }
  void TearDown() override {
    set_default_device(Device::cpu());
    set_tuning(false);
    set_deterministic(false);
    set_scheduler_log(false);
    set_calibration_cache_path("");
    fs::remove_all(dir_);
  }
  std::string path() const { return (dir_ / "calibration.json").string(); }
  void write_file(const std::string& text) const {
    fs::create_directories(dir_);
    std::ofstream(path(), std::ios::binary) << text;
  }
  json read_file() const {
    std::ifstream f(path());
    return json::parse(f);
  }
  fs::path dir_;
};

std::array<DeviceFacts, 2> both() { return {fake_cpu(), fake_gpu()}; }

// ---- placement ---------------------------------------------------------------------------

using SchedulerPlacement = SchedulerTest;

TEST_F(SchedulerPlacement, TinyAddStaysOnCpu) {
  Tensor a = ones({1});
  const std::vector<Tensor> in{a, a};
  const auto facts = both();
  Decision d = decide_placement(prim("add"), in, {}, facts, Device::cpu());
  EXPECT_EQ(d.device, Device::cpu());
  ASSERT_EQ(d.estimates.size(), 2u);
  // CPU: 12 bytes at 20 GB/s + 0.2 us; GPU: 5 us + two 4-byte uploads of 10 us each.
  EXPECT_NEAR(d.estimates[0].total_s, 12 / 20e9 + 0.2e-6, 1e-12);
  EXPECT_NEAR(d.estimates[1].transfer_s, 2 * (4 / 20e9 + 10e-6), 1e-12);
  EXPECT_GT(d.estimates[1].total_s, 25e-6);
}

TEST_F(SchedulerPlacement, ResultsStayWhereTheyLive) {
  // The same tiny add with inputs already on the GPU runs there: moving them back costs more.
  Tensor a = ones({1});
  const std::vector<Tensor> in{a, a};
  const auto facts = both();
  Decision d = decide_placement(prim("add"), in, {}, facts, Device::cuda(0));
  EXPECT_EQ(d.device, Device::cuda(0));
  EXPECT_EQ(d.estimates[1].transfer_s, 0.0);
  EXPECT_GT(d.estimates[0].transfer_s, 20e-6);
}

TEST_F(SchedulerPlacement, LargeMatmulGoesToFastGpu) {
  Tensor a = empty({4096, 4096}), b = empty({4096, 4096});
  const std::vector<Tensor> in{a, b};
  const auto facts = both();
  Decision d = decide_placement(prim("matmul"), in, {}, facts, Device::cpu());
  EXPECT_EQ(d.device, Device::cuda(0));
  const double flops = 2.0 * 4096.0 * 4096.0 * 4096.0;
  EXPECT_NEAR(d.estimates[0].compute_s, flops / 100e9 + 0.2e-6, 1e-9);
  EXPECT_NEAR(d.estimates[1].compute_s, flops / 100e12 + 5e-6, 1e-9);
  EXPECT_NEAR(d.estimates[1].transfer_s, 2 * (4096.0 * 4096 * 4 / 20e9 + 10e-6), 1e-9);
}

TEST_F(SchedulerPlacement, SmallMatmulOnCpuStaysBecauseOfTransfer) {
  Tensor a = rand({96, 96}), b = rand({96, 96});
  const std::vector<Tensor> in{a, b};
  const auto facts = both();
  Decision d = decide_placement(prim("matmul"), in, {}, facts, Device::cpu());
  EXPECT_EQ(d.device, Device::cpu());
  // Compute alone favours the GPU clearly; the two uploads are what keep it on the CPU.
  EXPECT_LT(d.estimates[1].compute_s, 0.5 * d.estimates[0].compute_s);
  EXPECT_GT(d.estimates[1].total_s, d.estimates[0].total_s);
  // Resident on the GPU, the same call runs there.
  EXPECT_EQ(decide_placement(prim("matmul"), in, {}, facts, Device::cuda(0)).device,
            Device::cuda(0));
}

TEST_F(SchedulerPlacement, TiesGoToCpu) {
  DeviceFacts twin = fake_cpu();
  twin.device = Device::cuda(0);
  twin.host_to_device_bandwidth = twin.device_to_host_bandwidth = 1e30;  // free transfers
  const std::array<DeviceFacts, 2> facts{twin, fake_cpu()};              // CPU listed last
  Tensor a = rand({64, 64});
  const std::vector<Tensor> in{a, a};
  EXPECT_EQ(decide_placement(prim("matmul"), in, {}, facts, Device::cpu()).device, Device::cpu());
}

TEST_F(SchedulerPlacement, MeasuredTimesCorrectThePrediction) {
  set_device_facts(fake_cpu());
  set_device_facts(fake_gpu());
  Tensor a = empty({4096, 4096});
  const std::vector<Tensor> in{a, a};
  const auto facts = both();
  ASSERT_EQ(decide_placement(prim("matmul"), in, {}, facts, Device::cpu()).device, Device::cuda(0));
  // The GPU turned out 10000x slower than its roofline for this bucket: the CPU wins now.
  const double predicted =
      roofline_seconds(fake_gpu(), {2.0 * 4096 * 4096 * 4096, 3.0 * 4096 * 4096 * 4}, kFloat32);
  note_measured_time(prim("matmul"), in, {}, Device::cuda(0), predicted * 1e4);
  Decision d = decide_placement(prim("matmul"), in, {}, facts, Device::cpu());
  EXPECT_EQ(d.device, Device::cpu());
  EXPECT_NEAR(d.estimates[1].compute_s, predicted * 1e4, predicted * 1e-3);
  reset_scheduler_state();
  EXPECT_EQ(decide_placement(prim("matmul"), in, {}, facts, Device::cpu()).device, Device::cuda(0));
}

TEST_F(SchedulerPlacement, ExplicitPlacementNeverOverridden) {
  set_device_facts(fake_cpu());
  set_device_facts(fake_gpu());  // a much faster device the scheduler could be tempted by
  Tensor a = rand({512, 512});
  const std::vector<Tensor> in{a, a};
  EXPECT_EQ(schedule(prim("matmul"), in, {}).device, Device::cpu());
  EXPECT_EQ(matmul(a, a).device(), Device::cpu());
  // An explicit CUDA request is obeyed too: without CUDA (or without a GPU) it fails, it is not
  // moved to the CPU.
  const Attrs to_gpu{
      {"shape", std::vector<int64_t>{4}}, {"dtype", kFloat32}, {"device", Device::cuda(0)}};
  auto expect_gpu_request_obeyed = [&] {
    if (cuda::is_available()) {
      EXPECT_EQ(schedule(prim("fill"), {}, to_gpu).device, Device::cuda(0));
    } else if (cuda::is_built()) {
      EXPECT_THROW(schedule(prim("fill"), {}, to_gpu), DeviceError);
    } else {
      EXPECT_THROW(schedule(prim("fill"), {}, to_gpu), NotBuiltError);
    }
  };
  expect_gpu_request_obeyed();
  // Under the auto default an explicit creation device still wins.
  set_default_device(Device::auto_());
  const Attrs on_cpu{
      {"shape", std::vector<int64_t>{4}}, {"dtype", kFloat32}, {"device", Device::cpu()}};
  EXPECT_EQ(schedule(prim("fill"), {}, on_cpu).device, Device::cpu());
  expect_gpu_request_obeyed();
}

TEST_F(SchedulerPlacement, AutoOnlyConsidersKnownDevices) {
  // Injected facts for a fake GPU do not make it a device: without CUDA, auto means the CPU.
  if (cuda::is_available()) GTEST_SKIP() << "a real GPU is a known device here";
  set_device_facts(fake_gpu());
  ASSERT_EQ(known_devices(), std::vector<Device>{Device::cpu()});
  set_default_device(Device::auto_());
  EXPECT_EQ(default_device(), Device::auto_());
  Tensor a = rand({512, 512});
  const std::vector<Tensor> in{a, a};
  EXPECT_EQ(schedule(prim("matmul"), in, {}).device, Device::cpu());
  Tensor c = matmul(a, a);
  EXPECT_EQ(c.device(), Device::cpu());
  Tensor z = zeros({3}, TensorOptions(kFloat32, Device::auto_()));
  EXPECT_EQ(z.device(), Device::cpu());
  EXPECT_EQ(z.sum().item<float>(), 0.f);
}

TEST_F(SchedulerPlacement, MixedDevicesAreAnErrorUnderExplicitPlacement) {
  Tensor a = rand({2});
  const std::vector<Tensor> in{a, a};
  EXPECT_NO_THROW(schedule(prim("add"), in, {}));
  // There is no second real device here, so check the message path with a storage on cuda:0.
  Tensor g = Tensor::make(Storage::wrap(nullptr, 8, Device::cuda(0), {}), {2}, {1}, 0, kFloat32);
  const std::vector<Tensor> mixed{a, g};
  try {
    schedule(prim("add"), mixed, {});
    ADD_FAILURE() << "expected DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "[add] expected all tensors on one device, got cpu (input 0) and cuda:0"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(SchedulerPlacement, UnknownDeviceNamesAreDeviceErrors) {
  EXPECT_THROW(Device::parse("gpu"), DeviceError);
  EXPECT_THROW(Device::parse("cuda:x"), DeviceError);
  EXPECT_THROW(set_default_device("tpu"), DeviceError);
  EXPECT_THROW(set_default_device("cuda:-1"), DeviceError);
  if (!cuda::is_available()) {  // not built, or no GPU
    EXPECT_THROW(set_default_device(Device::cuda(0)), DeviceError);
  }
  EXPECT_EQ(default_device(), Device::cpu());
  set_default_device("auto");
  EXPECT_EQ(default_device(), Device::auto_());
  EXPECT_THROW(device_facts(Device::auto_()), DeviceError);
  if (!cuda::is_built()) {
    EXPECT_THROW(device_facts(Device::cuda(3)), NotBuiltError);
  } else if (cuda::device_count() <= 3) {
    EXPECT_THROW(device_facts(Device::cuda(3)), DeviceError);
  }
}

TEST_F(SchedulerPlacement, LogPrintsEachDecision) {
  Tensor a = ones({2, 3});
  set_scheduler_log(true);
  testing::internal::CaptureStderr();
  Tensor c = add(a, a);
  const std::string log = testing::internal::GetCapturedStderr();
  set_scheduler_log(false);
  EXPECT_NE(log.find("[scheduler] add (2, 3) (2, 3) float32 -> cpu/"), std::string::npos) << log;
  EXPECT_NE(log.find("place: explicit"), std::string::npos) << log;
  EXPECT_EQ(c.sum().item<float>(), 12.f);
}

// ---- implementation choice ---------------------------------------------------------------

// A test-only primitive with two kernels: "slow" has the higher priority, "fast" is faster.
// Each writes its own marker so the test can see which one ran.
void slow_kernel(Inputs, Outputs out, const Attrs&) {
  std::this_thread::sleep_for(std::chrono::milliseconds(3));
  out[0].fill_(1.0);
}
void fast_kernel(Inputs, Outputs out, const Attrs&) { out[0].fill_(2.0); }

const Primitive& pair_prim() {
  static const Primitive& p = [&]() -> const Primitive& {
    if (const Primitive* q = registry().find("test_sched_pair")) return *q;
    Primitive& d = registry().define(
        {.name = "test_sched_pair", .kind = PrimKind::Unary, .infer = [](Inputs in, const Attrs&) {
           return std::vector<TensorMeta>{{in[0].shape(), in[0].dtype()}};
         }});
    d.kernels.push_back({DeviceType::CPU, "slow", slow_kernel, nullptr, 10});
    d.kernels.push_back({DeviceType::CPU, "fast", fast_kernel, nullptr, 0});
    return d;
  }();
  return p;
}

float run_pair() { return dispatch1(pair_prim(), {zeros({8})})[0].item<float>(); }
const std::string kPairKey = "test_sched_pair|float32|cpu|3";

using SchedulerChoice = SchedulerTest;

TEST_F(SchedulerChoice, KeyBucketsByRoundedLog2) {
  auto key = [](int64_t m, int64_t n) {
    Tensor a = empty({m, n});
    const std::vector<Tensor> in{a, a};
    return choice_key(prim("matmul"), in, {}, Device::cpu());
  };
  EXPECT_EQ(key(64, 64), "matmul|float32|cpu|6.6,6.6");
  EXPECT_EQ(key(90, 91), "matmul|float32|cpu|6.7,6.7");  // log2 90 = 6.49, log2 91 = 6.51
  EXPECT_EQ(key(1, 0), "matmul|float32|cpu|0.-1,0.-1");
  Tensor s = ones({});
  EXPECT_EQ(choice_key(prim("neg"), std::vector<Tensor>{s}, {}, Device::cpu()),
            "neg|float32|cpu|s");
}

TEST_F(SchedulerChoice, PriorityWithoutTuning) {
  EXPECT_EQ(run_pair(), 1.f);
  EXPECT_TRUE(remembered_choices().empty());
  // Matmul on float32 has blas (priority 10) and builtin (0).
  Tensor a = rand({16, 16});
  const std::vector<Tensor> in{a, a};
  EXPECT_EQ(choose_kernel(prim("matmul"), in, {}, Device::cpu())->impl, "blas");
}

TEST_F(SchedulerChoice, TuningPicksTheFasterAndPersistsIt) {
  set_tuning(true);
  EXPECT_EQ(run_pair(), 2.f);
  EXPECT_EQ(remembered_choices().at(kPairKey), "fast");
  EXPECT_EQ(read_file()["choices"][kPairKey], "fast");
  // Round trip: a fresh load of the file remembers the choice without tuning.
  set_tuning(false);
  set_calibration_cache_path(path());
  EXPECT_EQ(remembered_choices(), (std::map<std::string, std::string>{{kPairKey, "fast"}}));
  EXPECT_EQ(run_pair(), 2.f);
  // Other shape buckets are not covered by that choice.
  EXPECT_EQ(dispatch1(pair_prim(), {zeros({100})})[0].item<float>(), 1.f);
}

TEST_F(SchedulerChoice, DeterministicModeIgnoresTuning) {
  set_tuning(true);
  set_deterministic(true);
  EXPECT_EQ(run_pair(), 1.f);  // priorities only: nothing tuned
  EXPECT_TRUE(remembered_choices().empty());
  EXPECT_FALSE(fs::exists(path()));
  set_deterministic(false);
  EXPECT_EQ(run_pair(), 2.f);  // tuned now
  set_deterministic(true);
  EXPECT_EQ(run_pair(), 1.f);          // still the snapshot loaded at start
  set_calibration_cache_path(path());  // a new start: the snapshot has the choice
  EXPECT_EQ(run_pair(), 2.f);
}

TEST_F(SchedulerChoice, RememberedChoiceIsUsedWithoutTuning) {
  write_file(json{{"format", "tessera-calibration"},
                  {"version", 2},
                  {"fingerprint", json::parse(R"({})")},
                  {"choices", {{kPairKey, "fast"}}}}
                 .dump());
  // Foreign fingerprint: ignored, so priority wins...
  testing::internal::CaptureStderr();
  EXPECT_EQ(run_pair(), 1.f);
  EXPECT_NE(testing::internal::GetCapturedStderr().find("another machine"), std::string::npos);
  // ...while the same choice in a file written here is followed.
  set_tuning(true);
  EXPECT_EQ(run_pair(), 2.f);  // tunes and writes a file with this machine's fingerprint
  set_tuning(false);
  set_calibration_cache_path(path());
  EXPECT_EQ(run_pair(), 2.f);
}

TEST_F(SchedulerChoice, ConcurrentCallsAgree) {
  set_tuning(true);
  std::vector<std::thread> threads;
  std::atomic<int> fast{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) fast += run_pair() == 2.f;
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(fast.load(), 80);
  EXPECT_EQ(remembered_choices().at(kPairKey), "fast");
}

// ---- device facts and the cache file -----------------------------------------------------

using DeviceFactsCache = SchedulerTest;

TEST_F(DeviceFactsCache, MeasuredOnceThenReadBack) {
  const DeviceFacts& m = device_facts(Device::cpu());
  EXPECT_EQ(device_facts_source(Device::cpu()), "measured");
  EXPECT_TRUE(m.measured);
  EXPECT_GT(m.peak(kFloat32), 1e8);
  EXPECT_GT(m.peak(kFloat64), 1e8);
  EXPECT_EQ(m.peak(kInt32), m.peak(kFloat32));  // falls back to float32's figure
  EXPECT_GT(m.mem_bandwidth, 1e8);
  EXPECT_GT(m.op_overhead, 0.0);
  EXPECT_LT(m.op_overhead, 1e-3);
  EXPECT_EQ(m.host_to_device_bandwidth, 0.0);
  ASSERT_TRUE(fs::exists(path()));
  const json j = read_file();
  EXPECT_EQ(j["version"], 2);
  EXPECT_EQ(j["fingerprint"]["threads"], num_threads());

  set_calibration_cache_path(path());  // forget, reload
  testing::internal::CaptureStderr();
  const DeviceFacts& r = device_facts(Device::cpu());
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(device_facts_source(Device::cpu()), "cache");
  EXPECT_EQ(r.name, m.name);
  EXPECT_EQ(r.peak_flops, m.peak_flops);
  EXPECT_EQ(r.mem_bandwidth, m.mem_bandwidth);
  EXPECT_EQ(r.op_overhead, m.op_overhead);
  EXPECT_EQ(&device_facts(Device::cpu()), &r);  // stable reference
}

TEST_F(DeviceFactsCache, ChoicesAndFactsRoundTripTogether) {
  set_tuning(true);
  EXPECT_EQ(run_pair(), 2.f);
  const DeviceFacts& m = device_facts(Device::cpu());
  const double peak = m.peak(kFloat32);
  const auto choices = remembered_choices();
  set_calibration_cache_path(path());
  EXPECT_EQ(device_facts(Device::cpu()).peak(kFloat32), peak);
  EXPECT_EQ(device_facts_source(Device::cpu()), "cache");
  EXPECT_EQ(remembered_choices(), choices);
}

TEST_F(DeviceFactsCache, InjectedFactsWinAndAreNotWritten) {
  set_device_facts(fake_cpu());
  EXPECT_EQ(device_facts(Device::cpu()).name, "fake cpu");
  EXPECT_EQ(device_facts_source(Device::cpu()), "injected");
  EXPECT_FALSE(device_facts(Device::cpu()).measured);
  EXPECT_FALSE(fs::exists(path()));
  set_device_facts(fake_gpu());
  EXPECT_EQ(device_facts(Device::cuda(0)).peak(kFloat64), 100e12);
}

// Writes a bad file, checks it is ignored with exactly one warning line and re-measured, and
// that the rewritten file is then read back silently.
void expect_ignored_and_remeasured(const SchedulerTest& t, const std::string& path,
                                   const std::string& why) {
  set_calibration_cache_path(path);
  testing::internal::CaptureStderr();
  const DeviceFacts& f = device_facts(Device::cpu());
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(err.find("warning: ignoring calibration cache " + path), std::string::npos) << err;
  EXPECT_NE(err.find(why), std::string::npos) << err;
  EXPECT_EQ(device_facts_source(Device::cpu()), "measured");
  EXPECT_GT(f.peak(kFloat32), 0.0);
  set_calibration_cache_path(path);
  testing::internal::CaptureStderr();
  device_facts(Device::cpu());
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(device_facts_source(Device::cpu()), "cache");
  (void)t;
}

TEST_F(DeviceFactsCache, GarbageFileIsIgnoredWithAWarning) {
  write_file(std::string("\x00\xff{not json", 11));
  expect_ignored_and_remeasured(*this, path(), "unreadable");
}

TEST_F(DeviceFactsCache, WrongVersionIsIgnoredWithAWarning) {
  device_facts(Device::cpu());
  json j = read_file();
  j["version"] = 99;
  write_file(j.dump());
  expect_ignored_and_remeasured(*this, path(), "format version 99 (expected 2)");
}

TEST_F(DeviceFactsCache, ForeignFingerprintIsIgnoredWithAWarning) {
  device_facts(Device::cpu());
  json j = read_file();
  j["fingerprint"]["cpu"] = "Some Other CPU 9000";
  write_file(j.dump());
  expect_ignored_and_remeasured(*this, path(), "another machine");
}

TEST_F(DeviceFactsCache, BadFiguresAreIgnoredWithAWarning) {
  device_facts(Device::cpu());
  json j = read_file();
  j["devices"]["cpu"]["mem_bandwidth"] = -5.0;
  write_file(j.dump());
  expect_ignored_and_remeasured(*this, path(), "unreadable");
}

TEST_F(DeviceFactsCache, RecalibrateMeasuresAgainAndForgetsChoices) {
  set_tuning(true);
  EXPECT_EQ(run_pair(), 2.f);
  EXPECT_EQ(read_file()["choices"][kPairKey], "fast");
  set_device_facts(fake_cpu());
  recalibrate();
  EXPECT_EQ(device_facts_source(Device::cpu()), "measured");
  EXPECT_NE(device_facts(Device::cpu()).name, "fake cpu");
  EXPECT_FALSE(read_file()["choices"].contains(kPairKey));  // re-tuned on next sight
  EXPECT_TRUE(read_file()["devices"].contains("cpu"));
  EXPECT_EQ(run_pair(), 2.f);
  EXPECT_EQ(read_file()["choices"][kPairKey], "fast");
}

TEST_F(DeviceFactsCache, PathFollowsTesseraCacheDir) {
  set_calibration_cache_path("");
  const char* old = std::getenv("TESSERA_CACHE_DIR");
  const std::string saved = old ? old : "";
  ::setenv("TESSERA_CACHE_DIR", dir_.c_str(), 1);
  EXPECT_EQ(calibration_cache_path(), (dir_ / "calibration.json").string());
  if (old)
    ::setenv("TESSERA_CACHE_DIR", saved.c_str(), 1);
  else
    ::unsetenv("TESSERA_CACHE_DIR");
}

}  // namespace
}  // namespace tessera
