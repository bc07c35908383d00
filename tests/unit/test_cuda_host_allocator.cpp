// The pinned host memory cache's policy over a fake driver and fake events (no GPU needed):
// size classes, reuse, blocks held by queued copies until their events complete, empty_cache,
// the statistics, out-of-memory, failures of the driver, and concurrent use. The fake driver
// hands out real (malloc'd) memory so that the threads can check their blocks' contents.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/caching_host_allocator.h"
#include "tessera/core/error.h"

namespace tessera::cuda {
namespace {

constexpr size_t KiB = size_t{1} << 10, MiB = size_t{1} << 20;

// Page-locked host memory of `capacity` bytes.
struct FakeDriver {
  size_t capacity;
  std::mutex mu;
  size_t used = 0;
  std::map<void*, size_t> live;
  int allocs = 0, frees = 0;

  void add_to(RawHostAllocator& raw) {
    raw.alloc = [this](size_t n) -> void* {
      std::lock_guard lock(mu);
      if (used + n > capacity) return nullptr;
      void* p = std::malloc(n);
      live[p] = n;
      used += n;
      ++allocs;
      return p;
    };
    raw.free = [this](void* p) {
      std::lock_guard lock(mu);
      auto it = live.find(p);
      ASSERT_NE(it, live.end()) << "freed a block the fake never handed out";
      used -= it->second;
      live.erase(it);
      std::free(p);
      ++frees;
    };
  }
  ~FakeDriver() {
    for (auto& [p, n] : live) std::free(p);
  }
};

// Events: each belongs to a device; a record marks a stream's work so far (not done until the
// test says so, as a real record on a busy stream).
struct FakeEvents {
  struct E {
    int device;
    StreamId stream = 0;
    int records = 0;
    bool done = true;  // a new event has nothing to wait for
  };
  std::mutex mu;
  std::map<uintptr_t, E> live;
  uintptr_t next = 1;
  int created = 0, destroyed = 0, queries = 0;
  bool always_done = false;  // for the threads test

  void add_to(RawHostAllocator& raw) {
    raw.create_event = [this](int device) {
      std::lock_guard lock(mu);
      ++created;
      live[next] = E{device};
      return reinterpret_cast<void*>(next++);
    };
    raw.record_event = [this](void* e, int device, StreamId stream) {
      std::lock_guard lock(mu);
      E& ev = live.at(reinterpret_cast<uintptr_t>(e));
      ASSERT_EQ(ev.device, device) << "an event recorded on another device's stream";
      ev.stream = stream;
      ++ev.records;
      ev.done = always_done;
    };
    raw.event_done = [this](void* e) {
      std::lock_guard lock(mu);
      ++queries;
      return live.at(reinterpret_cast<uintptr_t>(e)).done;
    };
    raw.destroy_event = [this](void* e) {
      std::lock_guard lock(mu);
      ASSERT_EQ(live.erase(reinterpret_cast<uintptr_t>(e)), 1u) << "destroyed an unknown event";
      ++destroyed;
    };
  }
  // The stream's work so far completed: every event last recorded on it is done.
  void finish(int device, StreamId stream) {
    std::lock_guard lock(mu);
    for (auto& [id, e] : live)
      if (e.device == device && e.stream == stream) e.done = true;
  }
};

struct Fixture {
  FakeDriver driver{64 * MiB};
  FakeEvents events;
  RawHostAllocator raw() {
    RawHostAllocator r;
    driver.add_to(r);
    events.add_to(r);
    return r;
  }
};

TEST(CudaHostAllocator, RoundsRequestsToPowersOfTwoOfAtLeastAPage) {
  using A = CachingHostAllocator;
  EXPECT_EQ(A::round_size(0), 4 * KiB);
  EXPECT_EQ(A::round_size(1), 4 * KiB);
  EXPECT_EQ(A::round_size(4 * KiB), 4 * KiB);
  EXPECT_EQ(A::round_size(4 * KiB + 1), 8 * KiB);
  EXPECT_EQ(A::round_size(5000), 8 * KiB);
  EXPECT_EQ(A::round_size(1 * MiB), 1 * MiB);
  EXPECT_EQ(A::round_size(1 * MiB + 1), 2 * MiB);
  EXPECT_EQ(A::round_size(size_t{3} << 30), size_t{4} << 30);
}

TEST(CudaHostAllocator, ReusesAFreedBlockOnlyForItsSizeClass) {
  Fixture f;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* p = a.allocate(5000, &cap);
  EXPECT_EQ(cap, 8 * KiB);
  a.deallocate(p);
  EXPECT_EQ(a.allocate(6000, &cap), p) << "same class (8 KiB): the cached block";
  EXPECT_EQ(cap, 8 * KiB);
  void* small = a.allocate(3000, &cap);  // 4 KiB: another class, a new block
  void* big = a.allocate(9000, &cap);    // 16 KiB
  EXPECT_EQ(cap, 16 * KiB);
  EXPECT_NE(small, p);
  EXPECT_NE(big, p);
  EXPECT_EQ(f.driver.allocs, 3);
  a.deallocate(big);
  void* again = a.allocate(8 * KiB, &cap);  // the 16 KiB block is free but never split
  EXPECT_NE(again, big);
  EXPECT_EQ(f.driver.allocs, 4);
  EXPECT_EQ(f.driver.live.at(again), 8 * KiB);
  EXPECT_EQ(f.driver.frees, 0) << "freeing never returns a block to the driver";
  // The most recently freed block of a class comes back first.
  void* q = a.allocate(8 * KiB, &cap);
  a.deallocate(again);
  a.deallocate(q);
  EXPECT_EQ(a.allocate(8 * KiB, &cap), q);
  EXPECT_THROW(a.deallocate(static_cast<char*>(p) + 64), ValueError) << "not a block's start";
  a.deallocate(p);
  EXPECT_THROW(a.deallocate(p), ValueError) << "freed twice";
  a.deallocate(nullptr);  // nothing
}

TEST(CudaHostAllocator, AFreedBlockWaitsForTheEventsOfItsCopies) {
  Fixture f;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* p = a.allocate(100 * KiB, &cap);
  ASSERT_TRUE(a.record_use(p, 0, 7));  // an async copy queued on stream 7 of cuda:0
  ASSERT_TRUE(a.record_use(p, 0, 7));  // another: the same event, recorded again
  EXPECT_EQ(f.events.created, 1);
  EXPECT_EQ(f.events.live.begin()->second.records, 2);
  ASSERT_TRUE(a.record_use(p, 0, 8));  // another stream
  ASSERT_TRUE(a.record_use(p, 1, 7));  // the same stream id on another device
  EXPECT_EQ(f.events.created, 3);

  a.deallocate(p);
  EXPECT_EQ(a.num_waiting(), 1);
  EXPECT_EQ(a.stats().current_bytes, 0) << "the tensor is gone";
  EXPECT_EQ(a.stats().cached_bytes, static_cast<int64_t>(128 * KiB));
  void* q = a.allocate(100 * KiB, &cap);
  EXPECT_NE(q, p) << "its copies may still be running";
  a.deallocate(q);
  f.events.finish(0, 7);
  f.events.finish(0, 8);
  void* r = a.allocate(100 * KiB, &cap);
  EXPECT_EQ(r, q) << "cuda:1's copy is not done yet";
  f.events.finish(1, 7);
  void* s = a.allocate(100 * KiB, &cap);
  EXPECT_EQ(s, p) << "every copy done: reused";
  EXPECT_EQ(a.num_waiting(), 0);
  EXPECT_EQ(f.events.destroyed, 0) << "the completed events are kept for later copies";

  // Later copies take the spare events of their device before creating any.
  ASSERT_TRUE(a.record_use(s, 1, 3));
  ASSERT_TRUE(a.record_use(r, 0, 9));
  ASSERT_TRUE(a.record_use(r, 0, 10));
  EXPECT_EQ(f.events.created, 3);
  ASSERT_TRUE(a.record_use(r, 0, 11));  // cuda:0 had two spares
  EXPECT_EQ(f.events.created, 4);
  a.deallocate(r);
  a.deallocate(s);
  EXPECT_EQ(a.num_waiting(), 2);
  // A block with no copy since it was handed out is free at once, whatever it had before.
  f.events.finish(1, 3);
  void* t = a.allocate(100 * KiB, &cap);
  EXPECT_EQ(t, s);
  a.deallocate(t);
  EXPECT_EQ(a.allocate(100 * KiB, &cap), s);
}

TEST(CudaHostAllocator, OnlyLiveBlockStartsRecordCopies) {
  Fixture f;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* p = a.allocate(4096, &cap);
  int local = 0;
  EXPECT_FALSE(a.record_use(&local, 0, 1)) << "memory the cache did not hand out";
  EXPECT_FALSE(a.record_use(static_cast<char*>(p) + 8, 0, 1)) << "not a block's start";
  a.deallocate(p);
  EXPECT_FALSE(a.record_use(p, 0, 1)) << "a freed block";
  EXPECT_EQ(f.events.created, 0);
}

TEST(CudaHostAllocator, EmptyCacheReturnsOnlyIdleBlocks) {
  Fixture f;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* live = a.allocate(4 * KiB, &cap);
  void* waiting = a.allocate(8 * KiB, &cap);
  void* idle = a.allocate(16 * KiB, &cap);
  a.record_use(waiting, 0, 5);
  a.record_use(live, 0, 6);
  a.deallocate(waiting);
  a.deallocate(idle);
  a.empty_cache();
  EXPECT_EQ(f.driver.frees, 1);
  EXPECT_EQ(f.driver.live.count(idle), 0u);
  EXPECT_EQ(f.driver.live.count(waiting), 1u) << "its copy may still be running";
  EXPECT_EQ(a.stats().reserved_bytes, static_cast<int64_t>(12 * KiB));
  f.events.finish(0, 5);
  a.empty_cache();  // the copy is done: the block goes back, and its event
  EXPECT_EQ(f.driver.frees, 2);
  EXPECT_EQ(f.events.destroyed, 1);
  EXPECT_EQ(a.stats().reserved_bytes, static_cast<int64_t>(4 * KiB));
  EXPECT_EQ(a.stats().cached_bytes, 0);
  EXPECT_EQ(a.stats().num_host_free, 2);
  a.deallocate(live);  // waits for stream 6
  a.empty_cache();
  EXPECT_EQ(f.driver.live.size(), 1u);
  f.events.finish(0, 6);
  a.empty_cache();
  EXPECT_TRUE(f.driver.live.empty());
  EXPECT_EQ(f.events.destroyed, f.events.created);
  EXPECT_EQ(a.stats().reserved_bytes, 0);
  // The cache works on after being emptied.
  void* p = a.allocate(4 * KiB, &cap);
  EXPECT_EQ(f.driver.live.size(), 1u);
  a.deallocate(p);
}

TEST(CudaHostAllocator, StatisticsCountBlockBytesAndDriverCalls) {
  Fixture f;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* p = a.allocate(3 * KiB, &cap);      // 4 KiB
  void* q = a.allocate(100 * KiB, &cap);    // 128 KiB
  void* r = a.allocate(1 * MiB + 1, &cap);  // 2 MiB
  HostMemoryStats s = a.stats();
  const auto total = static_cast<int64_t>(4 * KiB + 128 * KiB + 2 * MiB);
  EXPECT_EQ(s.current_bytes, total);
  EXPECT_EQ(s.peak_bytes, total);
  EXPECT_EQ(s.reserved_bytes, total);
  EXPECT_EQ(s.peak_reserved_bytes, total);
  EXPECT_EQ(s.cached_bytes, 0);
  EXPECT_EQ(s.num_allocs, 3);
  EXPECT_EQ(s.num_cache_hits, 0);
  EXPECT_EQ(s.num_host_alloc, 3);
  a.deallocate(r);
  a.record_use(q, 0, 1);
  a.deallocate(q);
  s = a.stats();
  EXPECT_EQ(s.current_bytes, static_cast<int64_t>(4 * KiB));
  EXPECT_EQ(s.peak_bytes, total);
  EXPECT_EQ(s.cached_bytes, static_cast<int64_t>(128 * KiB + 2 * MiB)) << "free and waiting";
  EXPECT_EQ(s.reserved_bytes, total);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_bytes, static_cast<int64_t>(4 * KiB));
  EXPECT_EQ(a.stats().peak_reserved_bytes, total);
  r = a.allocate(2 * MiB, &cap);  // a hit
  s = a.stats();
  EXPECT_EQ(s.num_allocs, 4);
  EXPECT_EQ(s.num_cache_hits, 1);
  EXPECT_EQ(s.current_bytes, static_cast<int64_t>(4 * KiB + 2 * MiB));
  EXPECT_EQ(s.cached_bytes, static_cast<int64_t>(128 * KiB));
  EXPECT_EQ(s.current_bytes + s.cached_bytes, s.reserved_bytes);
  a.deallocate(p);
  a.deallocate(r);
  a.empty_cache();
  s = a.stats();
  EXPECT_EQ(s.reserved_bytes, static_cast<int64_t>(128 * KiB)) << "q still waits";
  EXPECT_EQ(s.peak_reserved_bytes, total);
  EXPECT_EQ(s.num_host_free, 2);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_reserved_bytes, static_cast<int64_t>(128 * KiB));
}

TEST(CudaHostAllocator, OutOfMemoryReturnsTheIdleCacheRetriesThenSaysWhy) {
  Fixture f;
  f.driver.capacity = 1 * MiB;
  CachingHostAllocator a(f.raw());
  size_t cap = 0;
  void* idle = a.allocate(256 * KiB, &cap);
  void* waiting = a.allocate(256 * KiB, &cap);
  void* held = a.allocate(256 * KiB, &cap);
  a.deallocate(idle);
  a.record_use(waiting, 0, 1);
  a.deallocate(waiting);
  void* p = a.allocate(512 * KiB, &cap);  // 256 KiB left: the idle block goes back first
  EXPECT_EQ(f.driver.frees, 1);
  EXPECT_EQ(f.driver.live.count(idle), 0u);
  a.deallocate(p);
  try {
    a.allocate(600 * KiB, &cap);  // 1 MiB: more than the driver has, even emptied
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("cannot page-lock 1.00 MiB of host memory (614400 bytes requested"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("256.00 KiB pinned by tensors, 256.00 KiB waiting for copies or cached"),
              std::string::npos)
        << m;
  }
  EXPECT_EQ(f.driver.live.count(waiting), 1u) << "a block with running copies is never freed";
  EXPECT_EQ(f.driver.live.count(held), 1u);
  EXPECT_THROW(a.allocate(SIZE_MAX, &cap), OutOfMemoryError);
  a.deallocate(held);
}

TEST(CudaHostAllocator, DriverFailuresLeaveTheCacheConsistent) {
  Fixture f;
  RawHostAllocator raw = f.raw();
  bool fail_record = false, fail_query = false;
  auto record = raw.record_event;
  raw.record_event = [&](void* e, int d, StreamId s) {
    if (fail_record) throw DeviceError("record failed");
    record(e, d, s);
  };
  auto done = raw.event_done;
  raw.event_done = [&](void* e) {
    if (fail_query) throw DeviceError("query failed");
    return done(e);
  };
  CachingHostAllocator a(raw);
  size_t cap = 0;
  void* p = a.allocate(4096, &cap);
  fail_record = true;
  EXPECT_THROW(a.record_use(p, 0, 1), DeviceError);
  fail_record = false;
  ASSERT_TRUE(a.record_use(p, 0, 1));
  EXPECT_EQ(f.events.created, 1) << "the event whose record failed is used again";
  a.deallocate(p);
  fail_query = true;
  EXPECT_THROW(a.allocate(4096, &cap), DeviceError);
  EXPECT_EQ(a.num_waiting(), 1) << "a failed query frees nothing";
  fail_query = false;
  EXPECT_NE(a.allocate(4096, &cap), p) << "still waiting for its copy";
  f.events.finish(0, 1);
  EXPECT_EQ(a.allocate(4096, &cap), p);
}

TEST(CudaHostAllocator, DestructorReturnsFreeBlocksAndSpareEvents) {
  Fixture f;
  void* kept = nullptr;
  {
    CachingHostAllocator a(f.raw());
    size_t cap = 0;
    void* p = a.allocate(4096, &cap);
    kept = a.allocate(8192, &cap);
    a.record_use(p, 0, 1);
    a.deallocate(p);
    f.events.finish(0, 1);
    a.deallocate(a.allocate(4096, &cap));  // p is free again, its event a spare
  }
  EXPECT_EQ(f.driver.live.size(), 1u) << "a block still in use stays";
  EXPECT_EQ(f.driver.live.count(kept), 1u);
  EXPECT_EQ(f.events.destroyed, f.events.created);
}

// DataLoader workers pin batches while the main thread copies them: concurrent allocations,
// copies and frees never hand one block to two users at once.
TEST(CudaHostAllocator, ThreadsNeverShareALiveBlock) {
  Fixture f;
  f.driver.capacity = 256 * MiB;
  f.events.always_done = true;  // each copy finished by the next query
  CachingHostAllocator a(f.raw());
  constexpr int kThreads = 4, kRounds = 2000;
  std::atomic<int> corrupted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::pair<unsigned char*, size_t>> mine;
      for (int i = 0; i < kRounds; ++i) {
        size_t cap = 0;
        const size_t n = 100 + static_cast<size_t>((i * 7919 + t * 104729) % 40000);
        auto* p = static_cast<unsigned char*>(a.allocate(n, &cap));
        std::memset(p, t + 1, n);
        if (i % 3 == 0) a.record_use(p, t % 2, static_cast<StreamId>(i % 4));
        mine.emplace_back(p, n);
        if (mine.size() > 4 || i % 5 == 0) {  // free the oldest after checking it
          auto [q, m] = mine.front();
          mine.erase(mine.begin());
          for (size_t k = 0; k < m; ++k)
            if (q[k] != t + 1) {
              ++corrupted;
              break;
            }
          a.deallocate(q);
        }
      }
      for (auto [q, m] : mine) a.deallocate(q);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(corrupted.load(), 0);
  const HostMemoryStats s = a.stats();
  EXPECT_EQ(s.current_bytes, 0);
  EXPECT_EQ(s.num_allocs, kThreads * kRounds);
  EXPECT_GT(s.num_cache_hits, kThreads * kRounds / 2);
  a.empty_cache();
  EXPECT_TRUE(f.driver.live.empty());
  EXPECT_EQ(a.stats().reserved_bytes, 0);
}

}  // namespace
}  // namespace tessera::cuda
