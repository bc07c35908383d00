// CPU caching allocator: 64-byte aligned blocks, cached per size bucket so repeated
// allocations of similar sizes reuse memory instead of going to the system.
#include "tessera/core/allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "tessera/core/error.h"

namespace tessera {
namespace {

std::atomic<MemoryObserver> g_memory_observer{nullptr};

// Called outside the allocator's lock, so an observer may take its own locks freely.
void report(int64_t delta, int64_t current) {
  notify_memory_observer(Device::cpu(), delta, current);
}

// Buckets: multiples of 64 B up to 1 KiB, then 4 steps per power of two, so rounding
// wastes at most 25%.
size_t bucket_size(size_t n) {
  if (n <= 1024) return std::max<size_t>(64, (n + 63) & ~size_t{63});
  size_t p = std::bit_floor(n);
  size_t step = p / 4;
  return (n + step - 1) / step * step;
}

// Blocks from this size on (their bucket sizes are multiples of 2 MiB) are 2 MiB aligned and
// advised to use transparent huge pages, where the system offers them on request: one
// page-table entry per 2 MiB, so gathers of rows and GEMMs over large tensors miss the TLB far
// less, and first touches fault 512 times fewer.
constexpr size_t kHugePage = size_t{2} << 20, kHugeFrom = size_t{8} << 20;

void* system_alloc(size_t cap) {
  if (cap < kHugeFrom || cap % kHugePage != 0) return std::aligned_alloc(kCpuAlignment, cap);
  void* p = std::aligned_alloc(kHugePage, cap);
#ifdef MADV_HUGEPAGE
  if (p) madvise(p, cap, MADV_HUGEPAGE);  // advice only: failure changes nothing
#endif
  return p;
}

class CpuCachingAllocator final : public Allocator {
 public:
  // Cached bytes beyond this are returned to the system at once.
  static constexpr int64_t kMaxCached = int64_t{2} << 30;

  void* allocate(size_t nbytes, size_t* capacity) override {
    size_t cap = bucket_size(std::max<size_t>(nbytes, 1));
    *capacity = cap;
    void* p = nullptr;
    int64_t current = 0;
    {
      std::lock_guard lock(mu_);
      ++stats_.num_allocs;
      auto it = free_.find(cap);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        stats_.cached_bytes -= static_cast<int64_t>(cap);
        ++stats_.num_cache_hits;
      }
      current = note_alloc(cap);
    }
    if (!p) p = system_alloc(cap);
    if (!p) {
      std::lock_guard lock(mu_);
      stats_.current_bytes -= static_cast<int64_t>(cap);
      fail<ValueError>("cpu_allocator", "out of memory allocating {} bytes (in use: {} bytes)",
                       nbytes, stats_.current_bytes);
    }
    report(static_cast<int64_t>(cap), current);
    return p;
  }

  void deallocate(void* p, size_t cap) override {
    int64_t current = 0;
    {
      std::lock_guard lock(mu_);
      stats_.current_bytes -= static_cast<int64_t>(cap);
      current = stats_.current_bytes;
      if (stats_.cached_bytes + static_cast<int64_t>(cap) > kMaxCached) {
        std::free(p);
      } else {
        free_[cap].push_back(p);
        stats_.cached_bytes += static_cast<int64_t>(cap);
      }
    }
    report(-static_cast<int64_t>(cap), current);
  }

  Device device() const override { return Device::cpu(); }
  MemoryStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard lock(mu_);
    stats_.peak_bytes = stats_.current_bytes;
  }
  void empty_cache() override {
    std::lock_guard lock(mu_);
    for (auto& [cap, blocks] : free_)
      for (void* p : blocks) std::free(p);
    free_.clear();
    stats_.cached_bytes = 0;
  }

 private:
  int64_t note_alloc(size_t cap) {
    stats_.current_bytes += static_cast<int64_t>(cap);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    return stats_.current_bytes;
  }
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  MemoryStats stats_;
};

}  // namespace

void notify_memory_observer(Device device, int64_t delta, int64_t current) {
  if (MemoryObserver obs = g_memory_observer.load(std::memory_order_relaxed))
    obs(device, delta, current);
}

void set_memory_observer(MemoryObserver obs) {
  g_memory_observer.store(obs, std::memory_order_release);
}

Allocator& cpu_allocator() {
  // Leaked on purpose: tensors in static objects may be freed after main returns.
  static auto* a = new CpuCachingAllocator();
  return *a;
}

}  // namespace tessera
