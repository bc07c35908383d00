#pragma once
// Parallel loops and reductions over index ranges (oneTBB underneath), and the process-wide
// thread count. Exceptions thrown by fn on any worker are rethrown on the caller unchanged
// (same type, same message). Task graphs and launch() live in task_graph.h.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera {

/// Below this many elements of elementwise work, kernels stay on the calling thread.
inline constexpr int64_t kParallelGrain = 32768;

/// Runs fn(begin, end) over chunks of [0, n) of at least `grain` indices, in parallel when
/// n > grain and more than one thread is allowed.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
/// Runs fn(b, e) over chunks of [begin, end) of at least `grain` indices (see above).
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);
/// Number of worker threads kernels may use (TESSERA_NUM_THREADS or hardware concurrency).
int num_threads();
/// Caps every Tessera parallel construct (loops, reductions, task graphs) at n threads.
void set_num_threads(int n);
/// Runs fn on the calling thread with every parallel loop inside it run serially there. For
/// background threads (DataLoader workers): their work then never takes the pool's threads
/// from the computation in the foreground.
void run_serially(const std::function<void()>& fn);
/// Parses a TESSERA_NUM_THREADS value: a positive decimal integer, else nullopt.
std::optional<int> parse_num_threads(std::string_view text);

namespace detail {
/// Calls fn(c) once for every c in [0, count), each call a separate parallel task.
void parallel_chunks(int64_t count, const std::function<void(int64_t)>& fn);
}  // namespace detail

/// Reduces [0, n): reduce_fn(b, e, identity) -> T for each chunk, then combine_fn(acc, part)
/// folds the chunk results left to right on the caller. Chunks are [k*grain, (k+1)*grain):
/// their boundaries depend on n and grain only, never on the thread count or the schedule,
/// so floating-point results are bitwise reproducible under any set_num_threads().
template <class T, class Reduce, class Combine>
T parallel_reduce(int64_t n, int64_t grain, T identity, Reduce reduce_fn, Combine combine_fn) {
  if (n <= 0) return identity;
  grain = std::max<int64_t>(grain, 1);
  const int64_t chunks = (n + grain - 1) / grain;
  struct Slot {
    T value;
  };  // not vector<bool>: each chunk writes its own object
  std::vector<Slot> parts(static_cast<size_t>(chunks), Slot{identity});
  detail::parallel_chunks(chunks, [&](int64_t c) {
    const int64_t b = c * grain;
    parts[static_cast<size_t>(c)].value = reduce_fn(b, std::min(n, b + grain), identity);
  });
  T acc = std::move(parts[0].value);  // starting from part 0 keeps -0.0 sums exact
  for (size_t c = 1; c < parts.size(); ++c) acc = combine_fn(std::move(acc), parts[c].value);
  return acc;
}

}  // namespace tessera
