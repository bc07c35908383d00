// The CUDA caching allocator's policy over a fake device (no GPU needed): rounding and segment
// sizes, reuse by size, splitting and merging, stream association, OOM handling, the limit,
// and the statistics. The fake hands out addresses it never dereferences.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "backends/cuda/caching_allocator.h"
#include "tessera/core/error.h"

namespace tessera::cuda {
namespace {

constexpr size_t KiB = size_t{1} << 10, MiB = size_t{1} << 20;

// A device with `capacity` bytes: addresses far apart, so no two segments are adjacent.
struct FakeDevice {
  size_t capacity;
  size_t used = 0;
  uintptr_t next = uintptr_t{1} << 40;
  std::map<uintptr_t, size_t> live;
  int allocs = 0, frees = 0;

  RawAllocator raw() {
    return {[this](size_t n) -> void* {
              if (used + n > capacity) return nullptr;
              const uintptr_t p = next;
              next += n + (uintptr_t{1} << 30);
              live[p] = n;
              used += n;
              ++allocs;
              return reinterpret_cast<void*>(p);
            },
            [this](void* p) {
              auto it = live.find(reinterpret_cast<uintptr_t>(p));
              ASSERT_NE(it, live.end()) << "freed a segment the fake never handed out";
              used -= it->second;
              live.erase(it);
              ++frees;
            }};
  }
};

uintptr_t addr(void* p) { return reinterpret_cast<uintptr_t>(p); }

TEST(CudaCachingAllocator, RoundsRequestsAndPicksSegmentSizes) {
  using A = CachingAllocator;
  EXPECT_EQ(A::round_size(0), 512u);
  EXPECT_EQ(A::round_size(1), 512u);
  EXPECT_EQ(A::round_size(512), 512u);
  EXPECT_EQ(A::round_size(513), 1024u);
  EXPECT_EQ(A::segment_size(512), 2 * MiB);
  EXPECT_EQ(A::segment_size(1 * MiB), 2 * MiB);
  EXPECT_EQ(A::segment_size(1 * MiB + 512), 20 * MiB);
  EXPECT_EQ(A::segment_size(10 * MiB), 20 * MiB);
  EXPECT_EQ(A::segment_size(10 * MiB + 512), 12 * MiB);  // own segment, rounded to 2 MiB
  EXPECT_EQ(A::segment_size(21 * MiB), 22 * MiB);
}

TEST(CudaCachingAllocator, SmallRequestsShareASegmentAndReuseBySize) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  size_t cap1 = 0, cap2 = 0, cap3 = 0;
  void* p1 = a.allocate(1000, 1, &cap1);
  void* p2 = a.allocate(1000, 1, &cap2);
  EXPECT_EQ(cap1, 1024u);
  EXPECT_EQ(cap2, 1024u);
  EXPECT_EQ(addr(p2), addr(p1) + 1024);  // split from the same 2 MiB segment
  EXPECT_EQ(dev.allocs, 1);
  MemoryStats s = a.stats();
  EXPECT_EQ(s.current_bytes, 2048);
  EXPECT_EQ(a.reserved(), static_cast<int64_t>(2 * MiB));
  EXPECT_EQ(s.cached_bytes, static_cast<int64_t>(2 * MiB) - 2048);
  EXPECT_EQ(s.num_cache_hits, 1);  // the second came from the cached rest of the segment

  a.deallocate(p2);
  void* p3 = a.allocate(700, 1, &cap3);  // rounds to 1024 as well: the freed block again
  EXPECT_EQ(p3, p2);
  EXPECT_EQ(cap3, 1024u);
  EXPECT_EQ(dev.allocs, 1);
  s = a.stats();
  EXPECT_EQ(s.num_allocs, 3);
  EXPECT_EQ(s.num_cache_hits, 2);
  a.deallocate(p1);
  a.deallocate(p3);
  EXPECT_EQ(a.stats().current_bytes, 0);
  EXPECT_EQ(a.stats().peak_bytes, 2048);
}

TEST(CudaCachingAllocator, SplitsOnlyWhenTheRestIsWorthIt) {
  FakeDevice dev{256 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  size_t c1 = 0, c2 = 0, c3 = 0, c4 = 0;
  void* m1 = a.allocate(3 * MiB, 7, &c1);  // a 20 MiB segment, split
  void* m2 = a.allocate(3 * MiB, 7, &c2);
  EXPECT_EQ(c1, 3 * MiB);
  EXPECT_EQ(addr(m2), addr(m1) + 3 * MiB);
  EXPECT_EQ(dev.allocs, 1);
  // Freed neighbours merge back: the whole 20 MiB segment serves a 19 MiB request.
  a.deallocate(m1);
  a.deallocate(m2);
  void* big = a.allocate(19 * MiB, 7, &c3);
  EXPECT_EQ(big, m1);
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(c3, 20 * MiB);  // the 1 MiB rest is not split off (large blocks need > 1 MiB)
  a.deallocate(big);
  // A large request gets its own segment of its size rounded to 2 MiB; the 0.5 MiB rest
  // stays with the block.
  void* l = a.allocate(19 * MiB + 512 * KiB, 8, &c4);
  EXPECT_EQ(c4, 20 * MiB);
  EXPECT_EQ(dev.allocs, 2);  // stream 8 may not use stream 7's free block
  a.deallocate(l);
}

TEST(CudaCachingAllocator, FreedBlocksStayWithTheirStreamUntilSynchronized) {
  FakeDevice dev{1024 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  size_t cap = 0;
  constexpr size_t n = 12 * MiB;  // large: one segment per request
  void* p1 = a.allocate(n, 1, &cap);
  a.deallocate(p1);
  void* p2 = a.allocate(n, 2, &cap);  // stream 2 may not reuse stream 1's free block
  EXPECT_NE(p2, p1);
  EXPECT_EQ(dev.allocs, 2);
  void* p3 = a.allocate(n, 1, &cap);  // stream 1 may
  EXPECT_EQ(p3, p1);
  EXPECT_EQ(dev.allocs, 2);
  a.deallocate(p3);
  a.deallocate(p2);
  void* p4 = a.allocate(n, 3, &cap);  // neither free block is stream 3's
  EXPECT_EQ(dev.allocs, 3);
  a.deallocate(p4);

  a.stream_synchronized(1);  // stream 1 finished: its block is free for everyone
  void* p5 = a.allocate(n, 4, &cap);
  EXPECT_EQ(p5, p1);
  EXPECT_EQ(dev.allocs, 3);
  a.deallocate(p5);

  a.device_synchronized();  // all free blocks serve any stream now
  void* q1 = a.allocate(n, 5, &cap);
  void* q2 = a.allocate(n, 5, &cap);
  void* q3 = a.allocate(n, 5, &cap);
  EXPECT_EQ(dev.allocs, 3);
  std::set<void*> got{q1, q2, q3}, expected{p1, p2, p4};
  EXPECT_EQ(got, expected);
  for (void* q : got) a.deallocate(q);
}

TEST(CudaCachingAllocator, OutOfMemoryEmptiesTheCacheRetriesThenSaysWhy) {
  FakeDevice dev{30 * MiB};
  CachingAllocator a(Device::cuda(1), dev.raw());
  size_t cap = 0;
  void* p = a.allocate(12 * MiB, 1, &cap);
  a.deallocate(p);                          // 12 MiB cached
  void* q = a.allocate(20 * MiB, 2, &cap);  // 12 + 20 > 30: the cache goes back first
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.reserved(), static_cast<int64_t>(20 * MiB));
  EXPECT_EQ(a.stats().cached_bytes, 0);
  try {
    a.allocate(16 * MiB, 2, &cap);
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[cuda] out of memory on cuda:1: tried to allocate 16.00 MiB"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("20.00 MiB allocated to tensors, 0 B cached"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the device has no free memory left"), std::string::npos) << msg;
  }
  EXPECT_EQ(a.stats().current_bytes, static_cast<int64_t>(20 * MiB));  // unchanged by the OOM
  a.deallocate(q);
}

TEST(CudaCachingAllocator, LimitCapsReservedMemory) {
  FakeDevice dev{1024 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  a.set_limit(8 * MiB);
  EXPECT_EQ(a.limit(), static_cast<int64_t>(8 * MiB));
  size_t cap = 0;
  void* p = a.allocate(3 * MiB, 1, &cap);  // a 20 MiB segment would pass the cap: 4 MiB
  EXPECT_EQ(a.reserved(), static_cast<int64_t>(4 * MiB));
  try {
    a.allocate(6 * MiB, 1, &cap);  // 4 + 6 > 8
    ADD_FAILURE() << "expected OutOfMemoryError";
  } catch (const OutOfMemoryError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("that would pass the memory limit"), std::string::npos) << msg;
    EXPECT_NE(msg.find("limit 8.00 MiB"), std::string::npos) << msg;
  }
  a.set_limit(0);  // no cap
  void* q = a.allocate(6 * MiB, 1, &cap);
  EXPECT_NE(q, nullptr);
  a.deallocate(p);
  a.deallocate(q);
  EXPECT_THROW(a.set_limit(-1), ValueError);
}

TEST(CudaCachingAllocator, StatsPeakAndEmptyCache) {
  FakeDevice dev{1024 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  size_t cap = 0;
  void* p = a.allocate(5 * MiB, 1, &cap);
  void* q = a.allocate(100, 1, &cap);
  EXPECT_EQ(a.num_segments(), 2);
  EXPECT_EQ(a.stats().peak_bytes, static_cast<int64_t>(5 * MiB + 512));
  a.deallocate(p);
  EXPECT_EQ(a.stats().current_bytes, 512);
  EXPECT_EQ(a.stats().peak_bytes, static_cast<int64_t>(5 * MiB + 512));
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_bytes, 512);
  a.empty_cache();  // the 20 MiB segment is free and goes back; the small one holds q
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.num_segments(), 1);
  EXPECT_EQ(a.reserved(), static_cast<int64_t>(2 * MiB));
  EXPECT_EQ(a.stats().cached_bytes, static_cast<int64_t>(2 * MiB) - 512);
  a.deallocate(q);
  a.empty_cache();
  EXPECT_EQ(a.reserved(), 0);
  EXPECT_EQ(dev.used, 0u);
  EXPECT_THROW(a.deallocate(reinterpret_cast<void*>(uintptr_t{64})), ValueError);
}

TEST(CudaCachingAllocator, DestructorReturnsTheCache) {
  FakeDevice dev{64 * MiB};
  {
    CachingAllocator a(Device::cuda(0), dev.raw());
    size_t cap = 0;
    a.deallocate(a.allocate(4 * MiB, 1, &cap));
    EXPECT_EQ(dev.live.size(), 1u);
  }
  EXPECT_TRUE(dev.live.empty());
}

// Events of the fake device: each records a stream's work so far; the test says when it is done.
struct FakeEvents {
  std::map<uintptr_t, bool> done;  // live events
  uintptr_t next = 1;
  int created = 0, destroyed = 0;

  void attach(RawAllocator& raw) {
    raw.record_event = [this](StreamId) {
      ++created;
      done[next] = false;
      return reinterpret_cast<void*>(next++);
    };
    raw.event_done = [this](void* e) { return done.at(reinterpret_cast<uintptr_t>(e)); };
    raw.destroy_event = [this](void* e) {
      ASSERT_EQ(done.erase(reinterpret_cast<uintptr_t>(e)), 1u) << "destroyed an unknown event";
      ++destroyed;
    };
  }
};

TEST(CudaCachingAllocator, RecordedStreamsHoldAFreedBlockUntilTheirSynchronization) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());  // no event hooks: synchronizations only
  size_t cap = 0;
  void* p = a.allocate(4096, 1, &cap);
  a.record_stream(p, 2);
  a.record_stream(p, 3);
  a.record_stream(p, 1);  // its own stream: nothing to wait for
  a.deallocate(p);
  EXPECT_EQ(a.num_held(), 1);
  EXPECT_EQ(a.stats().current_bytes, 0);  // the tensor is gone; the block is not free yet
  void* q = a.allocate(4096, 1, &cap);
  EXPECT_NE(q, p) << "streams 2 and 3 may still be using p";
  a.deallocate(q);
  a.stream_synchronized(1);
  a.stream_synchronized(2);
  EXPECT_EQ(a.num_held(), 1) << "stream 3 has not been synchronized";
  a.stream_synchronized(3);
  EXPECT_EQ(a.num_held(), 0);
  // Freed now, p is bound to its own stream 1 like any freed block.
  EXPECT_EQ(a.allocate(4096, 1, &cap), p);
  EXPECT_THROW(a.record_stream(reinterpret_cast<char*>(p) + 512, 2), ValueError);

  void* r = a.allocate(4096, 1, &cap);
  a.record_stream(r, 5);
  a.deallocate(r);
  a.device_synchronized();
  EXPECT_EQ(a.num_held(), 0);
}

TEST(CudaCachingAllocator, RecordedStreamEventsReleaseAHeldBlockAtALaterAllocation) {
  FakeDevice dev{64 * MiB};
  FakeEvents events;
  RawAllocator raw = dev.raw();
  events.attach(raw);
  {
    CachingAllocator a(Device::cuda(0), raw);
    size_t cap = 0;
    void* p = a.allocate(8 * MiB, 1, &cap);
    a.record_stream(p, 2);
    a.record_stream(p, 2);  // once per stream
    a.deallocate(p);
    EXPECT_EQ(events.created, 1);
    void* q = a.allocate(8 * MiB, 1, &cap);
    EXPECT_NE(q, p) << "stream 2's work is not done";
    a.deallocate(q);
    events.done.begin()->second = true;  // stream 2 finished what it had queued
    EXPECT_EQ(a.allocate(8 * MiB, 1, &cap), p);
    EXPECT_EQ(events.destroyed, 1);

    a.record_stream(p, 4);
    a.deallocate(p);
    EXPECT_EQ(a.num_held(), 1);
    a.empty_cache();  // the held block keeps its segment
    EXPECT_EQ(a.num_held(), 1);
    EXPECT_EQ(a.num_segments(), 1);
  }
  EXPECT_EQ(events.destroyed, events.created) << "the allocator's end returns its events";
}

// Another thread may free a block while a synchronization waits: its last use may have been
// queued after the wait began, so the synchronization frees only blocks freed before it
// started (its mark), for every stream.
TEST(CudaCachingAllocator, ASynchronizationFreesOnlyTheBlocksFreedBeforeItStarted) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a(Device::cuda(0), dev.raw());
  size_t cap = 0;
  void* p = a.allocate(4096, 1, &cap);
  void* x = a.allocate(4096, 1, &cap);  // live between p and q: no merging
  void* q = a.allocate(4096, 1, &cap);
  a.deallocate(p);
  const uint64_t mark = a.mark();  // cudaStreamSynchronize(1) starts here
  a.deallocate(q);                 // another thread, meanwhile
  a.stream_synchronized(1, mark);
  EXPECT_EQ(a.allocate(4096, 2, &cap), p) << "freed before the synchronization: any stream";
  void* other = a.allocate(4096, 2, &cap);
  EXPECT_NE(other, q) << "q's last use on stream 1 may still be running";
  a.stream_synchronized(1);
  EXPECT_EQ(a.allocate(4096, 2, &cap), q);

  // Blocks held for other streams (record_stream) likewise.
  a.record_stream(x, 3);
  const uint64_t before = a.mark();
  a.deallocate(x);
  a.device_synchronized(before);
  EXPECT_EQ(a.num_held(), 1) << "x was freed after the device synchronization started";
  a.device_synchronized(a.mark());
  EXPECT_EQ(a.num_held(), 0);
  a.deallocate(other);
}

// A stream destroyed while a live block still lists it (record_stream, then the stream's last
// handle dropped before the tensor): freeing the block later must not record an event on the
// destroyed stream, which CUDA leaves undefined.
TEST(CudaCachingAllocator, ADestroyedStreamIsForgottenByTheBlocksThatRecordedIt) {
  FakeDevice dev{64 * MiB};
  FakeEvents events;
  RawAllocator raw = dev.raw();
  events.attach(raw);
  std::vector<StreamId> recorded_on;
  raw.record_event = [&, record = raw.record_event](StreamId s) {
    recorded_on.push_back(s);
    return record(s);
  };
  CachingAllocator a(Device::cuda(0), raw);
  size_t cap = 0;
  void* p = a.allocate(4096, 1, &cap);
  a.record_stream(p, 2);
  a.record_stream(p, 3);
  a.stream_destroyed(2);
  a.deallocate(p);
  EXPECT_EQ(recorded_on, (std::vector<StreamId>{3})) << "no event on the destroyed stream 2";
  EXPECT_EQ(a.num_held(), 1) << "stream 3 may still be using p";
  a.stream_destroyed(3);
  EXPECT_EQ(a.num_held(), 0) << "a destroyed stream was synchronized first";
  EXPECT_EQ(events.destroyed, events.created);
}

// Freeing runs in destructors: an event that cannot be recorded (a lost context) leaves the
// block held until a synchronization instead of throwing out of the free.
TEST(CudaCachingAllocator, AFailedEventRecordHoldsTheBlockInsteadOfThrowing) {
  FakeDevice dev{64 * MiB};
  RawAllocator raw = dev.raw();
  raw.record_event = [](StreamId) -> void* {
    fail<DeviceError>("cuda.record_stream", "CUDA error cudaErrorIllegalAddress");
  };
  raw.event_done = [](void*) -> bool {
    ADD_FAILURE() << "no event was recorded";
    return true;
  };
  raw.destroy_event = [](void*) { ADD_FAILURE() << "no event was recorded"; };
  CachingAllocator a(Device::cuda(0), raw);
  size_t cap = 0;
  void* p = a.allocate(4096, 1, &cap);
  a.record_stream(p, 2);
  EXPECT_NO_THROW(a.deallocate(p));
  EXPECT_EQ(a.num_held(), 1);
  EXPECT_NE(a.allocate(4096, 1, &cap), p) << "stream 2 may still be using p";
  a.stream_synchronized(2);
  EXPECT_EQ(a.num_held(), 0);
}

TEST(CudaCachingAllocator, ParsesByteCounts) {
  EXPECT_EQ(parse_bytes("4096", "x"), 4096);
  EXPECT_EQ(parse_bytes("512M", "x"), int64_t{512} << 20);
  EXPECT_EQ(parse_bytes("8g", "x"), int64_t{8} << 30);
  EXPECT_EQ(parse_bytes("3K", "x"), 3072);
  for (const char* bad : {"", "abc", "12X", "-1", "1MB", "99999999999999G"})
    EXPECT_THROW(parse_bytes(bad, "TESSERA_CUDA_MEMORY_LIMIT"), ValueError) << bad;
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(int64_t{3} << 29), "1.50 GiB");
}

}  // namespace
}  // namespace tessera::cuda
