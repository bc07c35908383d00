#pragma once
// Parallel loops over index ranges (oneTBB underneath). Exceptions from workers are rethrown
// on the caller.
#include <cstdint>
#include <functional>

namespace tessera {

/// Below this many elements of elementwise work, kernels stay on the calling thread.
inline constexpr int64_t kParallelGrain = 32768;

/// Runs fn(begin, end) over chunks of [0, n) of at least `grain` indices, in parallel when
/// n > grain and more than one thread is allowed.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
/// Number of worker threads kernels may use (TESSERA_NUM_THREADS or hardware concurrency).
int num_threads();
void set_num_threads(int n);

}  // namespace tessera
