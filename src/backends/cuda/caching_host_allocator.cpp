// The pinned host memory cache's policy (see caching_host_allocator.h). Host code only: the
// driver is reached through the injected RawHostAllocator.
#include "backends/cuda/caching_host_allocator.h"

#include <algorithm>
#include <bit>
#include <exception>

#include "tessera/core/error.h"

namespace tessera::cuda {

CachingHostAllocator::CachingHostAllocator(RawHostAllocator raw) : raw_(std::move(raw)) {}

CachingHostAllocator::~CachingHostAllocator() {
  try {  // the driver may already be gone at process exit
    free_to_driver(take_free_blocks());
    for (auto& [device, event] : spare_events_) raw_.destroy_event(event);
  } catch (...) {
  }
}

size_t CachingHostAllocator::round_size(size_t nbytes) {
  return std::bit_ceil(std::max(nbytes, kMinBlock));
}

size_t CachingHostAllocator::size_class(size_t rounded) {
  return static_cast<size_t>(std::countr_zero(rounded));
}

void* CachingHostAllocator::allocate(size_t nbytes, size_t* capacity) {
  if (nbytes > (SIZE_MAX >> 1) + 1)
    fail<OutOfMemoryError>("cuda.pinned_memory", "cannot page-lock {} bytes of host memory",
                           nbytes);
  const size_t size = round_size(nbytes);
  const size_t cls = size_class(size);
  {
    std::lock_guard lock(mu_);
    ++stats_.num_allocs;
    if (!waiting_.empty()) process_waiting();
    if (cls < free_.size() && !free_[cls].empty()) {
      Block* b = free_[cls].back();  // the most recently freed: likeliest still in the caches
      free_[cls].pop_back();
      b->allocated = true;
      ++stats_.num_cache_hits;
      stats_.current_bytes += static_cast<int64_t>(size);
      stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
      stats_.cached_bytes -= static_cast<int64_t>(size);
      *capacity = size;
      return b->ptr;
    }
  }
  // Page-locking takes milliseconds: other threads (DataLoader workers) go on meanwhile.
  void* p = raw_.alloc(size);
  if (!p) {
    std::vector<void*> idle;
    {
      std::lock_guard lock(mu_);
      if (!waiting_.empty()) process_waiting();
      idle = take_free_blocks();
    }
    free_to_driver(idle);
    p = raw_.alloc(size);
    if (!p) out_of_memory(nbytes, size);
  }
  std::lock_guard lock(mu_);
  Block& b = blocks_[p];
  b.ptr = p;
  b.size = size;
  b.allocated = true;
  ++stats_.num_host_alloc;
  stats_.reserved_bytes += static_cast<int64_t>(size);
  stats_.peak_reserved_bytes = std::max(stats_.peak_reserved_bytes, stats_.reserved_bytes);
  stats_.current_bytes += static_cast<int64_t>(size);
  stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
  *capacity = size;
  return p;
}

void CachingHostAllocator::deallocate(void* p) {
  if (!p) return;
  std::lock_guard lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end() || !it->second.allocated)
    fail<ValueError>("cuda.pinned_memory", "{} is not a live block of the pinned memory cache", p);
  Block& b = it->second;
  b.allocated = false;
  stats_.current_bytes -= static_cast<int64_t>(b.size);
  stats_.cached_bytes += static_cast<int64_t>(b.size);
  if (b.uses.empty())
    push_free(&b);
  else
    waiting_.push_back(&b);
}

bool CachingHostAllocator::record_use(const void* p, int device, StreamId stream) {
  std::lock_guard lock(mu_);
  auto it = blocks_.find(p);
  if (it == blocks_.end() || !it->second.allocated) return false;
  Block& b = it->second;
  auto use = std::find_if(b.uses.begin(), b.uses.end(),
                          [&](const Use& u) { return u.device == device && u.stream == stream; });
  if (use != b.uses.end()) {  // the stream's later work includes its earlier copies
    raw_.record_event(use->event, device, stream);
    return true;
  }
  void* event = take_event(device);
  try {
    raw_.record_event(event, device, stream);
  } catch (...) {
    spare_events_.emplace_back(device, event);  // never recorded: as good as a completed one
    throw;
  }
  b.uses.push_back({device, stream, event});
  return true;
}

void* CachingHostAllocator::take_event(int device) {
  auto it = std::find_if(spare_events_.begin(), spare_events_.end(),
                         [&](const std::pair<int, void*>& e) { return e.first == device; });
  if (it == spare_events_.end()) return raw_.create_event(device);
  void* event = it->second;
  spare_events_.erase(it);
  return event;
}

// Each waiting block asks its events in turn and stops at the first one not done. A failed
// query (a lost context) keeps the blocks not yet looked at waiting, then is raised.
void CachingHostAllocator::process_waiting() {
  std::vector<Block*> still;
  std::exception_ptr error;
  for (Block* b : waiting_) {
    bool done = false;
    if (!error) {
      try {
        done = std::all_of(b->uses.begin(), b->uses.end(),
                           [&](const Use& u) { return raw_.event_done(u.event); });
      } catch (...) {
        error = std::current_exception();
      }
    }
    if (!done) {
      still.push_back(b);
      continue;
    }
    for (const Use& u : b->uses) spare_events_.emplace_back(u.device, u.event);
    b->uses.clear();
    push_free(b);
  }
  waiting_ = std::move(still);
  if (error) std::rethrow_exception(error);
}

void CachingHostAllocator::push_free(Block* b) {
  const size_t cls = size_class(b->size);
  if (free_.size() <= cls) free_.resize(cls + 1);
  free_[cls].push_back(b);
}

std::vector<void*> CachingHostAllocator::take_free_blocks() {
  std::vector<void*> out;
  for (std::vector<Block*>& list : free_) {
    for (Block* b : list) {
      out.push_back(b->ptr);
      stats_.reserved_bytes -= static_cast<int64_t>(b->size);
      stats_.cached_bytes -= static_cast<int64_t>(b->size);
      ++stats_.num_host_free;
      blocks_.erase(b->ptr);
    }
    list.clear();
  }
  return out;
}

// cudaFreeHost waits for the device: never under the lock. Every block is tried; the first
// failure is raised after.
void CachingHostAllocator::free_to_driver(const std::vector<void*>& blocks) {
  std::exception_ptr first;
  for (void* p : blocks) {
    try {
      raw_.free(p);
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

void CachingHostAllocator::empty_cache() {
  std::vector<void*> idle;
  std::vector<std::pair<int, void*>> events;
  {
    std::lock_guard lock(mu_);
    if (!waiting_.empty()) process_waiting();
    idle = take_free_blocks();
    events.swap(spare_events_);
  }
  for (auto& [device, event] : events) raw_.destroy_event(event);
  free_to_driver(idle);
}

void CachingHostAllocator::out_of_memory(size_t nbytes, size_t rounded) const {
  std::lock_guard lock(mu_);
  fail<OutOfMemoryError>(
      "cuda.pinned_memory",
      "cannot page-lock {} of host memory ({} bytes requested, {} rounded to a power of two) "
      "after returning the idle cache; {} pinned by tensors, {} waiting for copies or cached",
      format_bytes(static_cast<int64_t>(rounded)), nbytes, rounded,
      format_bytes(stats_.current_bytes), format_bytes(stats_.cached_bytes));
}

HostMemoryStats CachingHostAllocator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void CachingHostAllocator::reset_peak() {
  std::lock_guard lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
  stats_.peak_reserved_bytes = stats_.reserved_bytes;
}

int64_t CachingHostAllocator::num_waiting() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(waiting_.size());
}

}  // namespace tessera::cuda
