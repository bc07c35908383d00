// The pinned host memory cache on a real device: blocks reused without the driver, never under
// a queued non_blocking copy (the data a copy reads or writes stays intact while its tensor is
// dropped and pinned memory is asked for again), DataLoader batches pinned from worker threads
// out of the cache, statistics and empty_host_cache. The tests that need a GPU skip without
// one; the first runs everywhere. The policy itself is tested without a GPU in
// test_cuda_host_allocator.cpp.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::kGpu;
using data::DataLoader;
using data::Example;
using data::TensorDataset;

bool same(const Tensor& a, const Tensor& b) {
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  return x.shape() == y.shape() && x.dtype() == y.dtype() &&
         std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
}

// Two free blocks of n float32 in the cache, so that the tests below pin without calling the
// driver while a copy is queued.
void warm_cache(int64_t n) { Tensor a = cuda::empty_pinned({n}), b = cuda::empty_pinned({n}); }

// Keeps the current stream busy for tens of milliseconds (float32 matmuls without TF32), so
// that a copy queued after it is still pending while the test goes on.
void busy_work() {
  Tensor h = full({4096, 4096}, 1.0, {kFloat32, kGpu});
  const Tensor w = full({4096, 4096}, 1.0 / 4096, {kFloat32, kGpu});
  for (int i = 0; i < 32; ++i) h = matmul(h, w);
}

TEST(CudaPinned, TheCacheAnswersWithoutADevice) {
  if (!cuda::is_built()) {
    EXPECT_THROW(cuda::host_memory_stats(), NotBuiltError);
    EXPECT_THROW(cuda::empty_host_cache(), NotBuiltError);
    return;
  }
  const cuda::HostMemoryStats s = cuda::host_memory_stats();
  EXPECT_EQ(s.current_bytes + s.cached_bytes, s.reserved_bytes);
  if (cuda::is_available()) return;
  EXPECT_EQ(s.reserved_bytes, 0) << "nothing can be pinned without a device";
  EXPECT_EQ(s.num_allocs, 0);
  cuda::empty_host_cache();  // nothing to return
  cuda::reset_peak_host_memory_stats();
}

TEST(CudaPinned, AFreedBlockServesTheNextRequestOfItsSizeClass) {
  SKIP_WITHOUT_GPU();
  cuda::synchronize();
  const cuda::HostMemoryStats before = cuda::host_memory_stats();
  const void* first = nullptr;
  {
    const Tensor p = cuda::empty_pinned({3000});  // 12000 B: a 16 KiB block
    EXPECT_TRUE(cuda::is_pinned(p));
    first = p.raw_data();
  }
  const Tensor q = cuda::empty_pinned({2500}, kFloat64);  // 20000 B: a 32 KiB block
  const Tensor r = cuda::empty_pinned({4000});            // 16000 B: the first block again
  EXPECT_NE(q.raw_data(), first);
  EXPECT_EQ(r.raw_data(), first);
  EXPECT_TRUE(cuda::is_pinned(r));
  const cuda::HostMemoryStats after = cuda::host_memory_stats();
  EXPECT_EQ(after.num_allocs - before.num_allocs, 3);
  EXPECT_GE(after.num_cache_hits - before.num_cache_hits, 1);
  EXPECT_GE(after.current_bytes - before.current_bytes, 16384 + 32768);
  EXPECT_EQ(after.current_bytes + after.cached_bytes, after.reserved_bytes);
  EXPECT_EQ(cuda::empty_pinned({0}).raw_data(), nullptr) << "an empty tensor pins nothing";
  // pin_memory takes its block from the cache too, and keeps the values.
  const Tensor x = arange(0, 3000, 1, kFloat32);
  const Tensor px = cuda::pin_memory(x);
  EXPECT_TRUE(cuda::is_pinned(px));
  EXPECT_TRUE(same(px, x));
}

// An upload from a pinned tensor dropped right after it was queued: the block is not handed
// out again before the copy ran (if it were, the -1s written into the new tensor would reach
// the GPU), on the default stream and on a stream of the caller's. Both tensors come from the
// cache: nothing between queuing the copy and asking again waits for the device.
TEST(CudaPinned, ADroppedSourceIsNotReusedUnderItsQueuedUpload) {
  SKIP_WITHOUT_GPU();
  const int64_t n = int64_t{1} << 22;  // 16 MiB of float32
  const Tensor want = arange(0, static_cast<double>(n), 1, kFloat32);
  warm_cache(n);
  for (const bool side : {false, true}) {
    std::optional<cuda::Stream> stream;
    std::optional<cuda::StreamGuard> guard;
    if (side) {
      stream = cuda::Stream::create();
      guard.emplace(*stream);
    }
    Tensor up;
    const void* first = nullptr;
    {
      const Tensor src = cuda::pin_memory(want);
      first = src.raw_data();
      busy_work();
      up = src.to(kGpu, true);  // queued behind the matmuls
    }
    Tensor again = cuda::empty_pinned({n});
    if (!cuda::Stream::current().query())  // the copy was still pending when `again` came
      EXPECT_NE(again.raw_data(), first)
          << "reused under a queued copy (side stream: " << side << ")";
    else
      ADD_FAILURE() << "the copy was done before the test could check: something waited for "
                       "the device, or busy_work is too short for this GPU";
    again.fill_(-1.0);
    cuda::synchronize();
    EXPECT_TRUE(same(up, want)) << "side stream: " << side;
    // Done: the block serves the next request of its class.
    const Tensor third = cuda::empty_pinned({n});
    EXPECT_EQ(third.raw_data(), first);
  }
}

// A download into new pinned memory dropped before it ran: a tensor pinned meanwhile must not
// be the block the copy is about to write.
TEST(CudaPinned, ADroppedDestinationIsNotReusedUnderItsQueuedDownload) {
  SKIP_WITHOUT_GPU();
  const int64_t n = int64_t{1} << 22;
  const Tensor on_gpu = arange(0, static_cast<double>(n), 1, kFloat32).to(kGpu);
  const void* first = nullptr;
  warm_cache(n);
  busy_work();
  {
    const Tensor down = on_gpu.to(Device::cpu(), true);
    EXPECT_TRUE(cuda::is_pinned(down));
    first = down.raw_data();
  }
  Tensor other = cuda::empty_pinned({n});
  if (!cuda::Stream::current().query())
    EXPECT_NE(other.raw_data(), first) << "reused under a queued copy";
  else
    ADD_FAILURE() << "the copy was done before the test could check";
  other.fill_(-1.0);
  cuda::synchronize();
  EXPECT_TRUE(same(other, full({n}, -1.0, kFloat32))) << "a queued download wrote into it";
  // A non_blocking round trip through one pinned tensor, reused many times: one event per
  // stream is recorded again and again, and the values stay right.
  Tensor buf = cuda::empty_pinned({1000});
  for (int i = 0; i < 50; ++i) {
    buf.fill_(static_cast<double>(i));
    const Tensor g = buf.to(kGpu, true) + 1.0;
    g.to(Device::cpu(), false);  // waits, so buf can be written again
    cuda::synchronize();
    EXPECT_TRUE(same(g, full({1000}, i + 1.0, kFloat32)));
  }
}

// DataLoader workers pin every batch: after the first epoch the batches' blocks come from the
// cache, and the copies of each batch reach the GPU intact.
TEST(CudaPinned, DataLoaderBatchesArePinnedFromTheCache) {
  SKIP_WITHOUT_GPU();
  const int64_t rows = 64, cols = 1000;
  const Tensor x = arange(0, static_cast<double>(rows * cols), 1, kFloat32).reshape({rows, cols});
  auto ds = std::make_shared<TensorDataset>(
      std::vector<Tensor>{x, arange(0, static_cast<double>(rows), 1, kInt64)});
  cuda::synchronize();
  const cuda::HostMemoryStats before = cuda::host_memory_stats();
  DataLoader loader(ds, {.batch_size = 8, .num_workers = 2, .pin_memory = true});
  int64_t batches = 0;
  for (int epoch = 0; epoch < 3; ++epoch) {
    for (const Example& b : loader) {
      ASSERT_TRUE(cuda::is_pinned(b[0]) && cuda::is_pinned(b[1]));
      const Tensor g = b[0].to(kGpu, true);  // the batch is dropped while this may run
      const int64_t first = b[1].to_vector<int64_t>()[0];
      EXPECT_TRUE(same(g, x.slice(0, first, first + 8))) << "rows from " << first;
      ++batches;
    }
  }
  EXPECT_EQ(batches, 24);
  const cuda::HostMemoryStats after = cuda::host_memory_stats();
  EXPECT_EQ(after.num_allocs - before.num_allocs, 2 * batches);
  EXPECT_GT(after.num_cache_hits - before.num_cache_hits, batches)
      << "most batches should reuse a cached block";
  EXPECT_LT(after.num_host_alloc - before.num_host_alloc, batches);
}

TEST(CudaPinned, EmptyHostCacheReturnsOnlyIdleBlocks) {
  SKIP_WITHOUT_GPU();
  const Tensor held = cuda::empty_pinned({1 << 20});         // 4 MiB, stays
  { const Tensor dropped = cuda::empty_pinned({3 << 20}); }  // 12 MiB -> a cached 16 MiB block
  cuda::synchronize();
  cuda::HostMemoryStats s = cuda::host_memory_stats();
  EXPECT_GE(s.cached_bytes, int64_t{16} << 20);
  cuda::empty_cache();  // the device cache only, as torch.cuda.empty_cache
  EXPECT_EQ(cuda::host_memory_stats().reserved_bytes, s.reserved_bytes);
  cuda::empty_host_cache();
  s = cuda::host_memory_stats();
  EXPECT_EQ(s.cached_bytes, 0) << "every copy is done after the synchronization";
  EXPECT_EQ(s.reserved_bytes, s.current_bytes);
  EXPECT_GE(s.current_bytes, int64_t{4} << 20);
  cuda::reset_peak_host_memory_stats();
  EXPECT_EQ(cuda::host_memory_stats().peak_bytes, s.current_bytes);
  EXPECT_EQ(cuda::host_memory_stats().peak_reserved_bytes, s.reserved_bytes);
  EXPECT_TRUE(cuda::is_pinned(held));
}

}  // namespace
}  // namespace tessera
