// Checkpoints: round trip of every part, RNG restore, refusal of foreign, truncated and
// corrupted files, and atomic replacement: stray or half-written temporary files, a write that
// fails half-way (file size limit), and a writer process killed with SIGKILL mid-save must all
// leave the previous checkpoint loadable.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <thread>

#include "test_io_util.h"

extern char** environ;

namespace tessera {
namespace {

using namespace iotest;

io::Checkpoint sample(int64_t step) {
  io::Checkpoint ck;
  ck.model = {{"layer.weight", ref_tensor(kFloat32, {3, 4})},
              {"layer.bias", ref_tensor(kBFloat16, {4})}};
  ck.optimizer = {{"state.0.exp_avg", ref_tensor(kFloat32, {3, 4})},
                  {"lr", scalar_tensor(0.001, kFloat64)},
                  {"step", scalar_tensor(int64_t{step}, kInt64)}};
  ck.scheduler = {{"last_epoch", scalar_tensor(int64_t{7}, kInt64)}};
  ck.rng = {0xfedcba9876543210, 12345};  // a seed above 2^63 travels as the same bits
  ck.step = step;
  ck.metadata = {{"run", "test"}};
  return ck;
}

void expect_same_dict(const StateDict& got, const StateDict& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [k, v] : want) expect_same(got.at(k), v, k);
}

TEST(IoCheckpoint, RoundTrip) {
  TempDir dir;
  io::save_checkpoint(dir / "ck.safetensors", sample(42));
  for (io::LoadMode mode : {io::LoadMode::Read, io::LoadMode::Map}) {
    io::Checkpoint back = io::load_checkpoint(dir / "ck.safetensors", mode);
    io::Checkpoint want = sample(42);
    expect_same_dict(back.model, want.model);
    expect_same_dict(back.optimizer, want.optimizer);
    expect_same_dict(back.scheduler, want.scheduler);
    EXPECT_EQ(back.rng, want.rng);
    EXPECT_EQ(back.step, 42);
    EXPECT_EQ(back.metadata, want.metadata);
  }
  // One safetensors file with prefixed keys.
  StateDict raw = io::load_safetensors(dir / "ck.safetensors");
  EXPECT_EQ(raw.count("model.layer.weight"), 1u);
  EXPECT_EQ(raw.count("optim.lr"), 1u);
  EXPECT_EQ(raw.count("sched.last_epoch"), 1u);
  EXPECT_EQ(raw.at("step").item<int64_t>(), 42);
  EXPECT_EQ(raw.at("rng.offset").item<int64_t>(), 12345);
  EXPECT_EQ(io::load_safetensors_metadata(dir / "ck.safetensors").at("tessera.format"),
            "checkpoint");
}

TEST(IoCheckpoint, RestoringTheRngRepeatsTheDraws) {
  TempDir dir;
  manual_seed(1234);
  randn({5});  // move the offset away from 0
  io::Checkpoint ck;
  ck.rng = io::capture_rng();
  io::save_checkpoint(dir / "ck.safetensors", ck);
  std::vector<float> first = randn({7}).to_vector<float>();
  manual_seed(99);
  randn({3});
  io::restore_rng(io::load_checkpoint(dir / "ck.safetensors").rng);
  EXPECT_EQ(randn({7}).to_vector<float>(), first);
  EXPECT_EQ(default_generator().seed(), 1234u);
  // An explicit generator too.
  Generator g(5);
  g.set_offset(77);
  io::RngState s = io::capture_rng(g);
  EXPECT_EQ(s, (io::RngState{5, 77}));
  Generator h;
  io::restore_rng(s, h);
  EXPECT_EQ(h.seed(), 5u);
  EXPECT_EQ(h.offset(), 77u);
}

TEST(IoCheckpoint, ReservedMetadataKeysAreRefused) {
  TempDir dir;
  io::Checkpoint ck;
  ck.metadata = {{"tessera.format", "x"}};
  EXPECT_THROW(io::save_checkpoint(dir / "ck.safetensors", ck), ValueError);
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(IoCheckpoint, ForeignAndDamagedFilesRaiseIOError) {
  TempDir dir;
  fs::path p = dir / "x.safetensors";
  io::save_safetensors(p, {{"a", ones({2})}});
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint", {"not a Tessera checkpoint"});
  io::save_safetensors(p, {{"model.a", ones({2})}},
                       {{"tessera.format", "checkpoint"}, {"tessera.version", "9"}});
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint",
                  {"checkpoint version '9' is not supported"});
  // Structure errors, checked before the checksum.
  const io::Metadata v1 = {{"tessera.format", "checkpoint"}, {"tessera.version", "1"}};
  Tensor one = scalar_tensor(int64_t{1}, kInt64);
  StateDict parts = {{"rng.seed", one}, {"rng.offset", one}, {"step", one}};
  io::save_safetensors(p, {{"rng.seed", one}, {"step", one}}, v1);
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint", {"missing 'rng.offset'"});
  parts["stray"] = one;
  io::save_safetensors(p, parts, v1);
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint", {"unexpected key 'stray'"});
  parts.erase("stray");
  parts["step"] = ones({2}, kInt64);
  io::save_safetensors(p, parts, v1);
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint",
                  {"'step' must be a 0-d int64 tensor, got int64 of shape (2,)"});
  parts["step"] = one;
  io::save_safetensors(p, parts, v1);
  expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint",
                  {"no tessera.crc32 checksum"});
  io::save_checkpoint(p, sample(3));
  std::string good = read_bytes(p);
  // Every truncation.
  for (size_t len = 0; len < good.size(); len += 7) {
    write_bytes(p, good.substr(0, len));
    expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint", {});
  }
  // A flipped bit anywhere in the tensor data is caught by the checksum.
  size_t data_start = 8 + read_le(good, 0, 8);
  for (size_t at = data_start; at < good.size(); at += 13) {
    std::string b = good;
    b[at] = static_cast<char>(b[at] ^ 0x04);
    write_bytes(p, b);
    expect_io_error([&] { io::load_checkpoint(p); }, "load_checkpoint", {"checksum mismatch"});
  }
  write_bytes(p, good);
  EXPECT_EQ(io::load_checkpoint(p).step, 3);
}

// What a crash can leave behind: stray temporary files, complete or not, next to the target.
TEST(IoCheckpoint, StrayTemporaryFilesDoNotAffectLoading) {
  TempDir dir;
  fs::path p = dir / "ck.safetensors";
  io::save_checkpoint(p, sample(1));
  io::save_checkpoint(dir / "next.safetensors", sample(2));
  std::string next = read_bytes(dir / "next.safetensors");
  write_bytes(dir / "ck.safetensors.tmp.99999.0", next.substr(0, next.size() / 2));
  write_bytes(dir / "ck.safetensors.tmp.99999.1", "");
  write_bytes(dir / "ck.safetensors.tmp.99999.2", next);  // complete but never renamed
  EXPECT_EQ(io::load_checkpoint(p).step, 1);
  expect_io_error([&] { io::load_checkpoint(dir / "ck.safetensors.tmp.99999.0"); },
                  "load_checkpoint", {});
  io::save_checkpoint(p, sample(3));
  EXPECT_EQ(io::load_checkpoint(p).step, 3);
  int temps = 0;
  for (const auto& e : fs::directory_iterator(dir.path()))
    temps += e.path().filename().string().starts_with("ck.safetensors.tmp.");
  EXPECT_EQ(temps, 3) << "a successful save leaves only the strays it found";
}

// A write that fails half-way (here: the file size limit, as on a full disk) raises IOError,
// removes its temporary file and leaves the previous checkpoint in place.
TEST(IoCheckpoint, FailedWriteKeepsThePreviousCheckpoint) {
  TempDir dir;
  fs::path p = dir / "ck.safetensors";
  io::save_checkpoint(p, sample(1));
  std::string before = read_bytes(p);
  io::Checkpoint big = sample(2);
  big.model["huge"] = zeros({1 << 20});  // 4 MiB
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG
  rlimit small = old;
  small.rlim_cur = 1 << 16;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  expect_io_error([&] { io::save_checkpoint(p, big); }, "save_checkpoint", {"write failed"});
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(read_bytes(p), before);
  EXPECT_EQ(io::load_checkpoint(p).step, 1);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1)
      << "the temporary file was removed";
}

// The child half of KilledWriterLeavesALoadableCheckpoint: saves checkpoints until killed.
// Each one's model is filled with its step, so a loaded checkpoint shows whether it is whole.
constexpr int64_t kCrashElems = int64_t{1} << 22;  // 16 MiB per save

TEST(IoCheckpointCrashChild, SavesUntilKilled) {
  const char* dir = std::getenv("TESSERA_IO_CRASH_DIR");
  if (!dir) GTEST_SKIP() << "run by IoCheckpoint.KilledWriterLeavesALoadableCheckpoint only";
  for (int64_t step = 1;; ++step) {
    io::Checkpoint ck;
    ck.model["w"] = full({kCrashElems}, static_cast<double>(step), kFloat32);
    ck.step = step;
    io::save_checkpoint(fs::path(dir) / "ck.safetensors", ck);
  }
}

pid_t spawn_crash_child(const fs::path& dir) {
  std::vector<std::string> env_store;
  for (char** e = environ; *e; ++e) env_store.emplace_back(*e);
  env_store.push_back("TESSERA_IO_CRASH_DIR=" + dir.string());
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = fs::read_symlink("/proc/self/exe").string();
  std::string filter = "--gtest_filter=IoCheckpointCrashChild.SavesUntilKilled";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  return rc == 0 ? pid : -1;
}

// A temporary file of the child that is still being written (shorter than a whole checkpoint).
bool partial_temp_exists(const fs::path& dir, uint64_t whole) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.path().filename().string().starts_with("ck.safetensors.tmp.")) continue;
    uint64_t size = fs::file_size(e.path(), ec);
    if (!ec && size > 0 && size < whole) return true;
  }
  return false;
}

TEST(IoCheckpoint, KilledWriterLeavesALoadableCheckpoint) {
  TempDir dir;
  fs::path p = dir / "ck.safetensors";
  pid_t pid = spawn_crash_child(dir.path());
  ASSERT_GT(pid, 0);
  // Kill it once a whole checkpoint exists and the next one is half-written.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  bool caught = false;
  while (!caught && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    uint64_t whole = fs::exists(p, ec) ? fs::file_size(p, ec) : 0;
    caught = whole > 0 && partial_temp_exists(dir.path(), whole);
    if (!caught) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(caught) << "never saw the child mid-write";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  io::Checkpoint ck = io::load_checkpoint(p);
  ASSERT_GE(ck.step, 1);
  Tensor w = ck.model.at("w");
  EXPECT_EQ(w.numel(), kCrashElems);
  EXPECT_EQ(w.min().item<double>(), static_cast<double>(ck.step));
  EXPECT_EQ(w.max().item<double>(), static_cast<double>(ck.step));
  // The stray temporary file is there, and a new save over it still works.
  int strays = 0;
  for (const auto& e : fs::directory_iterator(dir.path()))
    strays += e.path().filename().string().starts_with("ck.safetensors.tmp.");
  EXPECT_EQ(strays, 1);
  io::save_checkpoint(p, sample(1000));
  EXPECT_EQ(io::load_checkpoint(p).step, 1000);
}

}  // namespace
}  // namespace tessera
