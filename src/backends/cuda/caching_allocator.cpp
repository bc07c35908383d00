// The caching allocator's policy (see caching_allocator.h). Host code only: the device is
// reached through the injected RawAllocator.
#include "backends/cuda/caching_allocator.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <tuple>
#include <utility>

#include "tessera/core/error.h"

namespace tessera::cuda {
namespace {

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

// At exit the device may already be gone; an event is then simply not returned.
void try_destroy(const RawAllocator& raw, void* event) {
  try {
    raw.destroy_event(event);
  } catch (...) {
  }
}

}  // namespace

std::string format_bytes(int64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes >= (int64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / (1 << 30));
  if (bytes >= (int64_t{1} << 20)) return fmt::format("{:.2f} MiB", b / (1 << 20));
  if (bytes >= (int64_t{1} << 10)) return fmt::format("{:.2f} KiB", b / (1 << 10));
  return fmt::format("{} B", bytes);
}

int64_t parse_bytes(std::string_view text, std::string_view what) {
  int64_t n = 0;
  const char* end = text.data() + text.size();
  auto [p, ec] = std::from_chars(text.data(), end, n);
  int shift = 0;
  if (p != end && p + 1 == end) {
    switch (std::toupper(static_cast<unsigned char>(*p))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      default:
        shift = -1;
    }
    ++p;
  }
  if (ec != std::errc() || p != end || shift < 0 || n < 0 || n > (INT64_MAX >> shift))
    fail<ValueError>(what, "expected a byte count like 4096, 512M or 8G, got '{}'", text);
  return n << shift;
}

bool CachingAllocator::Order::operator()(const Block* a, const Block* b) const {
  return std::tie(a->stream, a->size, a->ptr) < std::tie(b->stream, b->size, b->ptr);
}

CachingAllocator::CachingAllocator(Device device, RawAllocator raw)
    : device_(device), raw_(std::move(raw)) {}

CachingAllocator::~CachingAllocator() {
  try {
    std::lock_guard lock(mu_);
    release_free_segments();
  } catch (...) {  // the device may already be gone at process exit
  }
  for (Held& h : held_)
    for (auto& [stream, event] : h.waits)
      if (event) try_destroy(raw_, event);
  for (Block* head : segments_)
    for (Block* b = head; b;) delete std::exchange(b, b->next);
}

size_t CachingAllocator::round_size(size_t nbytes) {
  return round_up(std::max<size_t>(nbytes, 1), kRound);
}

size_t CachingAllocator::segment_size(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSegment;
  if (rounded <= kMediumRequest) return kMediumSegment;
  return round_up(rounded, kLargeRound);
}

CachingAllocator::Block* CachingAllocator::find_free(Pool& pool, StreamId stream, size_t size) {
  Block key;
  key.stream = stream;
  key.size = size;
  auto it = pool.lower_bound(&key);
  return it != pool.end() && (*it)->stream == stream ? *it : nullptr;
}

void* CachingAllocator::allocate(size_t nbytes, StreamId stream, size_t* capacity) {
  const size_t size = round_size(nbytes);
  const bool small = size <= kSmallRequest;
  Block* b = nullptr;
  int64_t current = 0;
  {
    std::lock_guard lock(mu_);
    ++stats_.num_allocs;
    if (!held_.empty() && raw_.event_done)
      release_held(
          [&](const Held&, StreamId, void* event) { return event && raw_.event_done(event); });
    Pool& pool = pool_of(small);
    b = find_free(pool, stream, size);
    if (!b) b = find_free(pool, kAnyStream, size);
    if (b) {
      pool.erase(b);
      ++stats_.num_cache_hits;
    } else {
      b = take_segment(size, small, nbytes);
    }
    b = split(b, size);
    b->stream = stream;
    b->allocated = true;
    live_.emplace(b->ptr, b);
    stats_.current_bytes += static_cast<int64_t>(b->size);
    stats_.peak_bytes = std::max(stats_.peak_bytes, stats_.current_bytes);
    stats_.cached_bytes = reserved_ - stats_.current_bytes;
    current = stats_.current_bytes;
  }
  *capacity = b->size;
  notify_memory_observer(device_, static_cast<int64_t>(b->size), current);
  return b->ptr;
}

// A new segment from the device; on failure the cache goes back to the device and the request
// is retried once, then it is an OutOfMemoryError.
CachingAllocator::Block* CachingAllocator::take_segment(size_t size, bool small, size_t nbytes) {
  const size_t preferred = small ? kSmallSegment : segment_size(size);
  const size_t minimal = small ? kSmallSegment : round_up(size, kLargeRound);
  const char* why = "the device has no free memory left";
  void* p = nullptr;
  size_t seg = preferred;
  for (int attempt = 0; attempt < 2 && !p; ++attempt) {
    if (attempt == 1) release_free_segments();
    const auto room = limit_ > 0 ? limit_ - reserved_ : INT64_MAX;
    seg = static_cast<int64_t>(preferred) <= room ? preferred : minimal;
    if (static_cast<int64_t>(seg) > room) {
      why = "that would pass the memory limit";
      continue;
    }
    p = raw_.alloc(seg);
  }
  if (!p) out_of_memory(nbytes, size, why);
  auto* b = new Block;
  b->ptr = static_cast<char*>(p);
  b->size = seg;
  b->stream = kAnyStream;  // fresh memory: no stream has used it yet
  b->small = small;
  b->segment_size = seg;
  segments_.push_back(b);
  reserved_ += static_cast<int64_t>(seg);
  return b;
}

// Keeps the first `size` bytes of b; the rest becomes a free block with b's stream tag.
CachingAllocator::Block* CachingAllocator::split(Block* b, size_t size) {
  const size_t rest = b->size - size;
  if (b->small ? rest < kRound : rest <= kMinLargeSplit) return b;
  auto* r = new Block;
  r->ptr = b->ptr + size;
  r->size = rest;
  r->stream = b->stream;
  r->freed = b->freed;
  r->small = b->small;
  r->prev = b;
  r->next = b->next;
  if (b->next) b->next->prev = r;
  b->next = r;
  b->size = size;
  pool_of(r->small).insert(r);
  return b;
}

void CachingAllocator::deallocate(void* p) {
  if (!p) return;
  int64_t current = 0, size = 0;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end())
      fail<ValueError>("cuda_allocator", "{} was not allocated by the {} caching allocator", p,
                       device_.str());
    Block* b = it->second;
    live_.erase(it);
    size = static_cast<int64_t>(b->size);
    stats_.current_bytes -= size;
    stats_.cached_bytes = reserved_ - stats_.current_bytes;
    current = stats_.current_bytes;
    if (b->uses.empty()) {
      free_block(b);
    } else {
      hold(b);
    }
  }
  notify_memory_observer(device_, -size, current);
}

void CachingAllocator::record_stream(void* p, StreamId stream) {
  std::lock_guard lock(mu_);
  auto it = live_.find(p);
  if (it == live_.end())
    fail<ValueError>("cuda.record_stream",
                     "{} is not the start of a live block of the {} caching "
                     "allocator",
                     p, device_.str());
  Block* b = it->second;
  if (stream == b->stream || std::find(b->uses.begin(), b->uses.end(), stream) != b->uses.end())
    return;
  b->uses.push_back(stream);
}

// A freed block used on other streams stays busy until the work queued on each of them up to
// now is done: an event per stream marks that point.
void CachingAllocator::hold(Block* b) {
  Held h{b, {}, ++free_seq_};
  for (StreamId s : b->uses) {
    void* event = nullptr;  // none: the block waits for a synchronization of s or the device
    if (raw_.record_event) {
      try {
        event = raw_.record_event(s);
      } catch (...) {  // deallocate runs in destructors: a failed record must not throw
      }
    }
    h.waits.emplace_back(s, event);
  }
  b->uses.clear();
  held_.push_back(std::move(h));
}

// Drops the waits that done(stream, event) says are over; a block with none left is freed.
void CachingAllocator::release_held(const std::function<bool(const Held&, StreamId, void*)>& done) {
  std::vector<Held> still;
  for (Held& h : held_) {
    std::erase_if(h.waits, [&](const std::pair<StreamId, void*>& w) {
      if (!done(h, w.first, w.second)) return false;
      if (w.second) raw_.destroy_event(w.second);
      return true;
    });
    if (h.waits.empty())
      free_block(h.block, h.freed);
    else
      still.push_back(std::move(h));
  }
  held_ = std::move(still);
}

int64_t CachingAllocator::num_held() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(held_.size());
}

// `other` (the block right after `into`) joins `into`.
CachingAllocator::Block* CachingAllocator::merge(Block* into, Block* other) {
  into->size += other->size;
  into->freed = std::max(into->freed, other->freed);
  into->next = other->next;
  if (other->next) other->next->prev = into;
  delete other;
  return into;
}

// Marks b free and merges it with free neighbours that the same stream may use (its own
// blocks and blocks free for any stream); the merged block is bound to b's stream.
void CachingAllocator::free_block(Block* b, uint64_t freed) {
  b->allocated = false;
  b->freed = freed ? freed : ++free_seq_;
  Pool& pool = pool_of(b->small);
  auto joins = [&](const Block* n) {
    return n && !n->allocated && (n->stream == b->stream || n->stream == kAnyStream);
  };
  if (joins(b->prev)) {
    Block* p = b->prev;
    pool.erase(p);
    p->stream = b->stream;
    b = merge(p, b);
  }
  if (joins(b->next)) {
    pool.erase(b->next);
    merge(b, b->next);
  }
  pool.insert(b);
}

// Free blocks of `from` (or of every stream, when from is kAnyStream) freed by `mark` become
// free for every stream, and runs of such blocks merge.
void CachingAllocator::retag_free(StreamId from, uint64_t mark) {
  for (Block* head : segments_) {
    Pool& pool = pool_of(head->small);
    for (Block* b = head; b; b = b->next) {
      if (b->allocated || b->stream == kAnyStream || b->freed > mark) continue;
      if (from != kAnyStream && b->stream != from) continue;
      pool.erase(b);
      b->stream = kAnyStream;
      pool.insert(b);
    }
    for (Block* b = head; b; b = b->next) {
      if (b->allocated || b->stream != kAnyStream) continue;
      while (b->next && !b->next->allocated && b->next->stream == kAnyStream) {
        pool.erase(b);
        pool.erase(b->next);
        merge(b, b->next);
        pool.insert(b);
      }
    }
  }
}

uint64_t CachingAllocator::mark() const {
  std::lock_guard lock(mu_);
  return free_seq_;
}

void CachingAllocator::stream_synchronized(StreamId stream, uint64_t mark) {
  std::lock_guard lock(mu_);
  if (stream == kAnyStream) return;
  release_held([&](const Held& h, StreamId s, void*) { return s == stream && h.freed <= mark; });
  retag_free(stream, mark);
}

void CachingAllocator::stream_destroyed(StreamId stream, uint64_t mark) {
  std::lock_guard lock(mu_);
  if (stream == kAnyStream) return;
  release_held([&](const Held& h, StreamId s, void*) { return s == stream && h.freed <= mark; });
  retag_free(stream, mark);
  for (auto& [ptr, b] : live_) std::erase(b->uses, stream);
}

void CachingAllocator::device_synchronized(uint64_t mark) {
  std::lock_guard lock(mu_);
  release_held([&](const Held& h, StreamId, void*) { return h.freed <= mark; });
  retag_free(kAnyStream, mark);
}

void CachingAllocator::release_free_segments() {
  std::vector<Block*> kept;
  for (Block* head : segments_) {
    bool busy = false;
    for (Block* b = head; b && !busy; b = b->next) busy = b->allocated;
    if (busy) {
      kept.push_back(head);
      continue;
    }
    Pool& pool = pool_of(head->small);
    for (Block* b = head; b; b = b->next) pool.erase(b);
    raw_.free(head->ptr);
    reserved_ -= static_cast<int64_t>(head->segment_size);
    for (Block* b = head; b;) delete std::exchange(b, b->next);
  }
  segments_ = std::move(kept);
  stats_.cached_bytes = reserved_ - stats_.current_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard lock(mu_);
  if (!held_.empty() && raw_.event_done)
    release_held(
        [&](const Held&, StreamId, void* event) { return event && raw_.event_done(event); });
  release_free_segments();
}

void CachingAllocator::out_of_memory(size_t nbytes, size_t rounded, const char* why) const {
  std::string limit;
  if (limit_ > 0)
    limit = fmt::format("; limit {} (set_memory_fraction or TESSERA_CUDA_MEMORY_LIMIT)",
                        format_bytes(limit_));
  fail<OutOfMemoryError>(
      "cuda",
      "out of memory on {}: tried to allocate {} ({} bytes, {} rounded) but {}; {} allocated to "
      "tensors, {} cached after returning the free cache, {} reserved in total{}",
      device_.str(), format_bytes(static_cast<int64_t>(nbytes)), nbytes, rounded, why,
      format_bytes(stats_.current_bytes), format_bytes(reserved_ - stats_.current_bytes),
      format_bytes(reserved_), limit);
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

int64_t CachingAllocator::reserved() const {
  std::lock_guard lock(mu_);
  return reserved_;
}

int64_t CachingAllocator::num_segments() const {
  std::lock_guard lock(mu_);
  return static_cast<int64_t>(segments_.size());
}

void CachingAllocator::reset_peak() {
  std::lock_guard lock(mu_);
  stats_.peak_bytes = stats_.current_bytes;
}

void CachingAllocator::set_limit(int64_t bytes) {
  if (bytes < 0) fail<ValueError>("cuda", "memory limit must be >= 0 bytes, got {}", bytes);
  std::lock_guard lock(mu_);
  limit_ = bytes;
}

int64_t CachingAllocator::limit() const {
  std::lock_guard lock(mu_);
  return limit_;
}

}  // namespace tessera::cuda
