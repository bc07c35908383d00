#include "tessera/runtime/parallel.h"

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "tessera/core/error.h"

namespace tessera {
namespace {

int default_threads() {
  if (const char* env = std::getenv("TESSERA_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  return tbb::this_task_arena::max_concurrency();
}

struct ThreadState {
  std::mutex mu;
  int threads = default_threads();
  std::unique_ptr<tbb::global_control> control =
      std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
};

ThreadState& state() {
  static auto* s = new ThreadState();  // leaked: workers may outlive static destruction
  return *s;
}

}  // namespace

int num_threads() { return state().threads; }

void set_num_threads(int n) {
  if (n < 1) fail<ValueError>("set_num_threads", "thread count must be >= 1, got {}", n);
  auto& s = state();
  std::lock_guard lock(s.mu);
  s.threads = n;
  s.control = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, n);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  if (n <= grain || num_threads() == 1) {
    fn(0, n);
    return;
  }
  // Exceptions thrown in fn propagate out of tbb::parallel_for to this thread.
  const int64_t chunks = std::min<int64_t>(num_threads(), (n + grain - 1) / grain);
  const int64_t step = (n + chunks - 1) / chunks;
  tbb::parallel_for(int64_t{0}, chunks, [&](int64_t c) {
    int64_t b = c * step, e = std::min(n, b + step);
    if (b < e) fn(b, e);
  });
}

}  // namespace tessera
