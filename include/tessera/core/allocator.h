#pragma once
// Memory allocators. The CPU one is 64-byte aligned and caches freed blocks by size bucket.
#include <cstddef>
#include <cstdint>

#include "tessera/core/device.h"

namespace tessera {

struct MemoryStats {
  int64_t current_bytes = 0;    ///< bytes handed out and not yet returned
  int64_t peak_bytes = 0;       ///< highest current_bytes since start or reset_peak
  int64_t cached_bytes = 0;     ///< bytes held in the cache for reuse
  int64_t num_allocs = 0;       ///< allocation requests served
  int64_t num_cache_hits = 0;   ///< requests served from the cache
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

/// Alignment of every CPU allocation, in bytes.
inline constexpr size_t kCpuAlignment = 64;

}  // namespace tessera
