#pragma once
// Memory allocators. The CPU one is 64-byte aligned and caches freed blocks by size bucket.
#include <cstddef>
#include <cstdint>

#include "tessera/core/device.h"

namespace tessera {

struct MemoryStats {
  int64_t current_bytes = 0;   ///< bytes handed out and not yet returned
  int64_t peak_bytes = 0;      ///< highest current_bytes since start or reset_peak
  int64_t cached_bytes = 0;    ///< bytes held in the cache for reuse
  int64_t num_allocs = 0;      ///< allocation requests served
  int64_t num_cache_hits = 0;  ///< requests served from the cache
};

/// A device allocator. Implementations are thread-safe.
class Allocator {
 public:
  virtual ~Allocator() = default;
  /// Returns at least nbytes; *capacity receives the block size actually reserved.
  virtual void* allocate(size_t nbytes, size_t* capacity) = 0;
  virtual void deallocate(void* p, size_t capacity) = 0;
  virtual Device device() const = 0;
  virtual MemoryStats stats() const = 0;
  virtual void reset_peak() = 0;
  /// Returns cached blocks to the system.
  virtual void empty_cache() = 0;
};

/// The process-wide CPU allocator.
Allocator& cpu_allocator();

/// Told of every allocation (delta > 0) and release (delta < 0) of a device allocator, with
/// the bytes in use right after it. Used by the profiler's memory timeline.
using MemoryObserver = void (*)(Device device, int64_t delta_bytes, int64_t current_bytes);
/// Installs the memory observer (null turns it off: then one relaxed atomic load per call).
void set_memory_observer(MemoryObserver obs);

/// Tells the installed memory observer (if any) of an allocation or release by a device
/// allocator; called outside the allocator's lock.
void notify_memory_observer(Device device, int64_t delta_bytes, int64_t current_bytes);

/// Alignment of every CPU allocation, in bytes.
inline constexpr size_t kCpuAlignment = 64;

}  // namespace tessera
