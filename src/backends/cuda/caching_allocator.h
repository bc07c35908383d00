#pragma once
// The policy of the CUDA caching allocator, as plain host code over an injectable raw
// allocator (cudaMalloc/cudaFree in the backend, a fake in the unit test). No CUDA header.
//
// Policy (close to PyTorch's):
// - every block size is a multiple of 512 bytes;
// - requests up to 1 MiB are carved from 2 MiB segments ("small pool"); requests up to 10 MiB
//   from 20 MiB segments, larger ones get a segment of their size rounded to 2 MiB ("large
//   pool"); a cached block is split when the rest is at least 512 B (small) or over 1 MiB
//   (large), and freed neighbours in a segment merge again;
// - a block belongs to the stream it was allocated on: once freed, it is reused only by
//   requests on that stream (whose later work is ordered after the block's last use), until a
//   synchronization of that stream or the device makes it free for every stream;
// - a block also used on other streams (record_stream) is held when freed until the work
//   queued on each of them by then is done: an event recorded on each at the free, polled at
//   later allocations, or a synchronization of that stream or the device;
// - when the device has no memory left (or the limit would be passed), the cache is returned
//   to the device and the request retried once; then OutOfMemoryError says how much was asked,
//   is in use and is cached.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tessera/core/allocator.h"

namespace tessera::cuda {

/// Identifies a stream to the policy (the cudaStream_t's value in the backend).
using StreamId = uint64_t;

/// The device's own allocator. alloc returns null when the device is out of memory (and
/// throws on any other failure); free returns a segment. The event hooks are optional: without
/// them a block freed after record_stream waits for synchronizations only (as it does when
/// record_event throws: a free happens in destructors, which must not throw).
struct RawAllocator {
  std::function<void*(size_t)> alloc;
  std::function<void(void*)> free;
  std::function<void*(StreamId)> record_event;  ///< an event marking the stream's work so far
  std::function<bool(void*)> event_done;        ///< whether that work is done
  std::function<void(void*)> destroy_event;
};

class CachingAllocator {
 public:
  static constexpr size_t kRound = 512;
  static constexpr size_t kSmallRequest = size_t{1} << 20;
  static constexpr size_t kSmallSegment = size_t{2} << 20;
  static constexpr size_t kMediumRequest = size_t{10} << 20;
  static constexpr size_t kMediumSegment = size_t{20} << 20;
  static constexpr size_t kLargeRound = size_t{2} << 20;
  static constexpr size_t kMinLargeSplit = size_t{1} << 20;

  CachingAllocator(Device device, RawAllocator raw);
  /// Returns cached segments; segments still in use are left to the process's end.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// A block of at least nbytes usable on `stream`; *capacity gets its size.
  void* allocate(size_t nbytes, StreamId stream, size_t* capacity);
  /// Returns a block to the cache (it stays bound to its stream; with record_stream streams it
  /// is held until their work so far is done).
  void deallocate(void* p);
  /// The live block p (an allocation's start) is also used by work on `stream`.
  void record_stream(void* p, StreamId stream);
  /// Blocks freed and still held for other streams' work.
  int64_t num_held() const;
  /// A point in the order of frees, taken before a synchronization starts: only blocks freed
  /// by then had their last use queued before it. A block freed meanwhile by another thread
  /// may have work queued after the synchronization's start, still running when it returns.
  uint64_t mark() const;
  static constexpr uint64_t kNow = ~uint64_t{0};
  /// All work queued on `stream` before `mark` is done: the blocks of the stream freed by then
  /// become free for every stream. (kNow: no other thread frees meanwhile, as in the tests.)
  void stream_synchronized(StreamId stream, uint64_t mark = kNow);
  /// `stream` was synchronized and is being destroyed: as stream_synchronized, and live blocks
  /// forget that it used them (record_stream), so that freeing one later records no event on
  /// a destroyed stream (undefined behaviour in CUDA). A new stream may get the same id.
  void stream_destroyed(StreamId stream, uint64_t mark = kNow);
  /// All work queued on the device before `mark` is done: every block freed by then becomes
  /// free for every stream.
  void device_synchronized(uint64_t mark = kNow);
  /// Returns every segment without a live block to the device.
  void empty_cache();

  MemoryStats stats() const;
  /// Bytes obtained from the device (in use + cached).
  int64_t reserved() const;
  int64_t num_segments() const;
  void reset_peak();
  /// Caps the reserved bytes (0: no cap).
  void set_limit(int64_t bytes);
  int64_t limit() const;

  /// Size a request is rounded to, and the segment size it would get from the device.
  static size_t round_size(size_t nbytes);
  static size_t segment_size(size_t rounded);

 private:
  static constexpr StreamId kAnyStream = ~StreamId{0};
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    StreamId stream = 0;
    bool allocated = false;
    bool small = false;
    Block* prev = nullptr;  // neighbours within the segment
    Block* next = nullptr;
    size_t segment_size = 0;     // set on a segment's first block only
    std::vector<StreamId> uses;  // other streams that used it (record_stream)
    uint64_t freed = 0;          // when it was freed (free_seq_), while free and stream-bound
  };
  // A freed block waiting for work on other streams; stays `allocated` (busy) until then.
  struct Held {
    Block* block;
    std::vector<std::pair<StreamId, void*>> waits;  // stream, event (null without event hooks)
    uint64_t freed = 0;                             // when it was freed (free_seq_)
  };
  struct Order {  // by stream, then best fit, then address
    bool operator()(const Block* a, const Block* b) const;
  };
  using Pool = std::set<Block*, Order>;

  Pool& pool_of(bool small) { return small ? small_ : large_; }
  Block* find_free(Pool& pool, StreamId stream, size_t size);
  Block* take_segment(size_t size, bool small, size_t nbytes);
  Block* split(Block* b, size_t size);
  /// Marks b free at `freed` (0: now, a new point in the order of frees) and merges it.
  void free_block(Block* b, uint64_t freed = 0);
  Block* merge(Block* into, Block* other);
  void release_free_segments();
  void retag_free(StreamId from, uint64_t mark);
  void hold(Block* b);
  void release_held(const std::function<bool(const Held&, StreamId, void*)>& done);
  [[noreturn]] void out_of_memory(size_t nbytes, size_t rounded, const char* why) const;

  Device device_;
  RawAllocator raw_;
  mutable std::mutex mu_;
  Pool small_, large_;
  std::unordered_map<void*, Block*> live_;
  std::vector<Held> held_;
  std::vector<Block*> segments_;  // first block of each segment
  MemoryStats stats_;
  int64_t reserved_ = 0;
  int64_t limit_ = 0;
  uint64_t free_seq_ = 0;  // frees so far
};

/// Parses a byte count with an optional K/M/G suffix (powers of 1024), as in
/// TESSERA_CUDA_MEMORY_LIMIT; throws ValueError on anything else.
int64_t parse_bytes(std::string_view text, std::string_view what);
/// "1.50 GiB", "512 B" ...
std::string format_bytes(int64_t bytes);

}  // namespace tessera::cuda
