#pragma once
// The policy of the pinned (page-locked) host memory cache, as plain host code over injectable
// driver hooks (cudaHostAlloc / cudaFreeHost and CUDA events in the backend, fakes in the
// unit test). No CUDA header. What PyTorch's CachingHostAllocator does:
// - cudaHostAlloc and cudaFreeHost are slow and cudaFreeHost waits for the whole device, so
//   freed blocks are kept and handed out again, never returned to the driver except by
//   empty_cache (cuda::empty_host_cache) or at the retry after a failed page-lock;
// - a request is rounded up to a power of two of at least a page (kMinBlock) and served by a
//   cached block of exactly that size; blocks are never split or merged (each is one
//   cudaHostAlloc), so a request may take up to twice its size;
// - a block that was the source or destination of an asynchronous copy must not be reused
//   before the copy ran: record_use, called right after the copy is queued, records an event on
//   the copy's stream (one per device and stream, re-recorded by later copies). A freed block
//   with events waits until all of them completed (queried, never waited for) at later
//   allocations and empty_cache; a block without any is free at once.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "backends/cuda/caching_allocator.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {

/// The driver as the cache sees it. alloc returns null when nothing more can be page-locked
/// (and throws on any other failure). Events belong to a device; record_event marks the work
/// queued on `stream` of `device` so far (recording an event again moves that mark).
struct RawHostAllocator {
  std::function<void*(size_t)> alloc;
  std::function<void(void*)> free;
  std::function<void*(int device)> create_event;
  std::function<void(void* event, int device, StreamId stream)> record_event;
  std::function<bool(void*)> event_done;  ///< whether the recorded work is done
  std::function<void(void*)> destroy_event;
};

class CachingHostAllocator {
 public:
  static constexpr size_t kMinBlock = 4096;  // a page: the unit the host locks

  explicit CachingHostAllocator(RawHostAllocator raw);
  /// Returns the free blocks and spare events; blocks still in use are left to the process's
  /// end, and so are the events of blocks still waiting.
  ~CachingHostAllocator();
  CachingHostAllocator(const CachingHostAllocator&) = delete;
  CachingHostAllocator& operator=(const CachingHostAllocator&) = delete;

  /// A block of at least nbytes (*capacity gets its size). Out of page-locked memory, the idle
  /// blocks go back to the driver and the request is retried once; then OutOfMemoryError.
  void* allocate(size_t nbytes, size_t* capacity);
  /// Returns a block (its start) to the cache: free at once, or once its copies are done.
  /// Never calls the driver, so it is safe in destructors.
  void deallocate(void* p);
  /// An asynchronous copy from or into the live block starting at p was just queued on
  /// `stream` of `device`: the block is not reused before that work is done. False when p is
  /// not a live block of this cache (then nothing guards the copy).
  bool record_use(const void* p, int device, StreamId stream);
  /// Returns every idle block (free, or freed and its copies done) to the driver, and the
  /// spare events. Blocks in use or still waiting for copies stay.
  void empty_cache();

  HostMemoryStats stats() const;
  void reset_peak();
  /// Freed blocks still waiting for their copies.
  int64_t num_waiting() const;

  /// The size a request is rounded to: the next power of two, at least kMinBlock.
  static size_t round_size(size_t nbytes);

 private:
  struct Use {
    int device;
    StreamId stream;
    void* event;
  };
  struct Block {
    void* ptr = nullptr;
    size_t size = 0;
    bool allocated = false;
    std::vector<Use> uses;  // copies queued since it was handed out, one event per stream
  };

  static size_t size_class(size_t rounded);
  /// Frees the waiting blocks whose events all completed (their events become spares).
  void process_waiting();
  void push_free(Block* b);
  /// Takes every free block out of the cache (the caller returns them to the driver unlocked).
  std::vector<void*> take_free_blocks();
  void free_to_driver(const std::vector<void*>& blocks);
  void* take_event(int device);
  [[noreturn]] void out_of_memory(size_t nbytes, size_t rounded) const;

  RawHostAllocator raw_;
  mutable std::mutex mu_;
  std::unordered_map<const void*, Block> blocks_;    // every block from the driver, by start
  std::vector<std::vector<Block*>> free_;            // free blocks by size class (log2 of size)
  std::vector<Block*> waiting_;                      // freed, copies maybe still running
  std::vector<std::pair<int, void*>> spare_events_;  // device, completed event
  HostMemoryStats stats_;
};

}  // namespace tessera::cuda
