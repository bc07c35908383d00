#include "tessera/runtime/parallel.h"

#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "tessera/core/error.h"

namespace tessera {
namespace {

// More threads than this is a typo, not a machine.
constexpr int kMaxThreads = 1 << 16;

int default_threads() {
  if (const char* env = std::getenv("TESSERA_NUM_THREADS")) {
    if (auto n = parse_num_threads(env)) return *n;
    fmt::print(stderr,
               "[TESSERA_NUM_THREADS] warning: ignoring '{}': expected an integer in "
               "[1, {}]\n",
               env, kMaxThreads);
  }
  return tbb::this_task_arena::max_concurrency();
}

struct ThreadState {
  std::mutex mu;                                // serializes replacing `control`
  std::atomic<int> threads{default_threads()};  // read lock-free on every parallel call
  std::unique_ptr<tbb::global_control> control = std::make_unique<tbb::global_control>(
      tbb::global_control::max_allowed_parallelism, threads.load());
};

ThreadState& state() {
  static auto* s = new ThreadState();  // leaked: workers may outlive static destruction
  return *s;
}

}  // namespace

std::optional<int> parse_num_threads(std::string_view text) {
  int n = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (text.empty() || ec != std::errc() || ptr != end || n < 1 || n > kMaxThreads) return {};
  return n;
}

int num_threads() { return state().threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    fail<ValueError>("set_num_threads", "thread count must be in [1, {}], got {}", kMaxThreads, n);
  auto& s = state();
  std::lock_guard lock(s.mu);
  s.control =
      std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
  s.threads.store(n, std::memory_order_relaxed);
}

void run_serially(const std::function<void()>& fn) {
  // A one-slot arena per thread, reserved for that thread: tasks spawned inside it (every
  // parallel_for) can only run here.
  thread_local tbb::task_arena arena(1, 1);
  arena.execute(fn);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = num_threads();
  if (n <= grain || threads == 1) {
    fn(0, n);
    return;
  }
  // Exceptions thrown in fn propagate out of tbb::parallel_for to this thread unchanged
  // (oneTBB captures the exception_ptr and rethrows it after cancelling the other chunks).
  const int64_t chunks = std::min<int64_t>(threads, (n + grain - 1) / grain);
  const int64_t step = (n + chunks - 1) / chunks;
  tbb::parallel_for(int64_t{0}, chunks, [&](int64_t c) {
    int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  });
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  parallel_for(end - begin, grain, [&](int64_t b, int64_t e) { fn(begin + b, begin + e); });
}

namespace detail {

void parallel_chunks(int64_t count, const std::function<void(int64_t)>& fn) {
  if (count <= 0) return;
  if (count == 1 || num_threads() == 1) {
    for (int64_t c = 0; c < count; ++c) fn(c);
    return;
  }
  tbb::parallel_for(int64_t{0}, count, [&](int64_t c) { fn(c); });
}

}  // namespace detail
}  // namespace tessera
