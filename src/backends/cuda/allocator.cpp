// The CUDA caching allocator of each device (the policy of caching_allocator.h over
// cudaMalloc/cudaFree, bound to the calling thread's current stream), its statistics and limit,
// and pinned host memory (the cache of caching_host_allocator.h over cudaHostAlloc/cudaFreeHost
// and events).
#include <array>
#include <cstdlib>
#include <mutex>

#include "backends/cuda/caching_allocator.h"
#include "backends/cuda/caching_host_allocator.h"
#include "backends/cuda/common.h"
#include "tessera/core/storage.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxDevices = 64;

RawAllocator device_raw_allocator(int device) {
  RawAllocator raw;
  raw.alloc = [device](size_t n) -> void* {
    DeviceGuard g(device);
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, n);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: the caller empties its cache and retries
      return nullptr;
    }
    TS_CUDA_CHECK("cuda_allocator", e);
    return p;
  };
  raw.free = [device](void* p) {
    DeviceGuard g(device);
    TS_CUDA_CHECK("cuda_allocator", cudaFree(p));
  };
  // For blocks used on other streams (record_stream): no timing, so recording is cheap.
  raw.record_event = [device](StreamId stream) -> void* {
    DeviceGuard g(device);
    cudaEvent_t e = nullptr;
    TS_CUDA_CHECK("cuda.record_stream", cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    TS_CUDA_CHECK("cuda.record_stream", cudaEventRecord(e, reinterpret_cast<cudaStream_t>(stream)));
    return e;
  };
  raw.event_done = [](void* e) {
    const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e));
    if (r == cudaErrorNotReady) return not_ready();
    TS_CUDA_CHECK("cuda.record_stream", r);
    return true;
  };
  raw.destroy_event = [device](void* e) {
    DeviceGuard g(device);
    TS_CUDA_CHECK("cuda.record_stream", cudaEventDestroy(static_cast<cudaEvent_t>(e)));
  };
  return raw;
}

// TESSERA_CUDA_MEMORY_LIMIT: the initial cap of every device's allocator.
int64_t env_limit() {
  const char* v = std::getenv("TESSERA_CUDA_MEMORY_LIMIT");
  return v && *v ? parse_bytes(v, "TESSERA_CUDA_MEMORY_LIMIT") : 0;
}

class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int device)
      : device_(device), policy_(Device::cuda(device), device_raw_allocator(device)) {
    policy_.set_limit(env_limit());
  }
  void* allocate(size_t nbytes, size_t* capacity) override {
    const auto stream = reinterpret_cast<StreamId>(current_stream(device_));
    return policy_.allocate(nbytes, stream, capacity);
  }
  void deallocate(void* p, size_t) override { policy_.deallocate(p); }
  Device device() const override { return Device::cuda(device_); }
  MemoryStats stats() const override { return policy_.stats(); }
  void reset_peak() override { policy_.reset_peak(); }
  void empty_cache() override { policy_.empty_cache(); }
  CachingAllocator& policy() { return policy_; }

 private:
  int device_;
  CachingAllocator policy_;
};

CudaAllocator& device_allocator(int device) {
  // Leaked on purpose, like the CPU allocator: tensors in static objects may outlive main.
  static std::array<CudaAllocator*, kMaxDevices> all{};
  static std::mutex mu;
  check_device(device);
  std::lock_guard lock(mu);
  CudaAllocator*& a = all[static_cast<size_t>(device)];
  if (!a) a = new CudaAllocator(device);
  return *a;
}

}  // namespace

Allocator& allocator(int device) { return device_allocator(device); }

uint64_t allocator_mark(int device) { return device_allocator(device).policy().mark(); }

void allocator_synchronized(int device, cudaStream_t stream, bool all, uint64_t mark) {
  CachingAllocator& p = device_allocator(device).policy();
  if (all)
    p.device_synchronized(mark);
  else
    p.stream_synchronized(reinterpret_cast<StreamId>(stream), mark);
}

void allocator_stream_destroyed(int device, cudaStream_t stream, uint64_t mark) {
  device_allocator(device).policy().stream_destroyed(reinterpret_cast<StreamId>(stream), mark);
}

MemoryStats memory_stats(int device) { return device_allocator(resolve(device)).stats(); }

int64_t memory_reserved(int device) {
  return device_allocator(resolve(device)).policy().reserved();
}

void reset_peak_memory_stats(int device) { device_allocator(resolve(device)).reset_peak(); }

void empty_cache(int device) { device_allocator(resolve(device)).empty_cache(); }

void set_memory_fraction(double fraction, int device) {
  if (!(fraction > 0 && fraction <= 1))
    fail<ValueError>("cuda.set_memory_fraction", "fraction must be in (0, 1], got {}", fraction);
  const int d = resolve(device);
  const auto total = static_cast<double>(device_properties(d).total_memory);
  device_allocator(d).policy().set_limit(static_cast<int64_t>(fraction * total));
}

int64_t memory_limit(int device) { return device_allocator(resolve(device)).policy().limit(); }

void record_stream(const Tensor& t, const Stream& s) {
  if (!t.device().is_cuda())
    fail<DeviceError>("cuda.record_stream", "expected a CUDA tensor, got one on {}",
                      t.device().str());
  if (s.device() != t.device().index)
    fail<DeviceError>("cuda.record_stream", "the tensor is on {} but the stream on cuda:{}",
                      t.device().str(), s.device());
  if (t.storage()->data() == nullptr) return;  // an empty tensor holds no block
  device_allocator(s.device())
      .policy()
      .record_stream(t.storage()->data(), reinterpret_cast<StreamId>(s.handle()));
}

// ---- pinned host memory ---------------------------------------------------------------------

namespace {

RawHostAllocator host_raw_allocator() {
  RawHostAllocator raw;
  raw.alloc = [](size_t n) -> void* {
    void* p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, n, cudaHostAllocDefault);
    if (e == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();  // not sticky: the cache returns its idle blocks and retries
      return nullptr;
    }
    TS_CUDA_CHECK("cuda.pinned_memory", e);
    return p;
  };
  raw.free = [](void* p) { TS_CUDA_CHECK("cuda.pinned_memory", cudaFreeHost(p)); };
  raw.create_event = [](int device) -> void* {
    DeviceGuard g(device);
    cudaEvent_t e = nullptr;
    TS_CUDA_CHECK("cuda.pinned_memory", cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  };
  raw.record_event = [](void* e, int device, StreamId stream) {
    DeviceGuard g(device);
    TS_CUDA_CHECK("cuda.pinned_memory", cudaEventRecord(static_cast<cudaEvent_t>(e),
                                                        reinterpret_cast<cudaStream_t>(stream)));
  };
  raw.event_done = [](void* e) {
    const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e));
    if (r == cudaErrorNotReady) return not_ready();
    TS_CUDA_CHECK("cuda.pinned_memory", r);
    return true;
  };
  raw.destroy_event = [](void* e) {
    TS_CUDA_CHECK("cuda.pinned_memory", cudaEventDestroy(static_cast<cudaEvent_t>(e)));
  };
  return raw;
}

CachingHostAllocator& host_cache() {
  // Leaked on purpose, like the device allocators: pinned tensors in static objects may
  // outlive main, and cudaFreeHost at exit would race the driver's own teardown.
  static auto* cache = new CachingHostAllocator(host_raw_allocator());
  return *cache;
}

// The storage's deleter runs in destructors: it must not throw (deallocate only throws for a
// pointer the cache never handed out, which cannot reach here).
void release_pinned(void* p) noexcept {
  try {
    host_cache().deallocate(p);
  } catch (...) {
  }
}

}  // namespace

bool pinned_copy_queued(const void* block, int device, cudaStream_t stream) {
  return host_cache().record_use(block, device, reinterpret_cast<StreamId>(stream));
}

HostMemoryStats host_memory_stats() { return host_cache().stats(); }

void reset_peak_host_memory_stats() { host_cache().reset_peak(); }

void empty_host_cache() { host_cache().empty_cache(); }

Tensor empty_pinned(Shape shape, DType dtype) {
  const int64_t n = checked_numel(shape, "cuda.empty_pinned");
  const size_t nbytes = static_cast<size_t>(n) * itemsize(dtype);
  check_device(0);  // page-locking needs a driver and a device
  void* p = nullptr;
  if (nbytes > 0) {
    size_t capacity = 0;
    p = host_cache().allocate(nbytes, &capacity);
  }
  auto storage = Storage::wrap(p, nbytes, Device::cpu(), release_pinned);
  Strides strides = contiguous_strides(shape);
  return Tensor::make(std::move(storage), std::move(shape), std::move(strides), 0, dtype);
}

bool is_pinned(const Tensor& t) {
  if (!t.device().is_cpu() || !is_available() || t.storage()->data() == nullptr) return false;
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, t.storage()->data()) != cudaSuccess) {
    (void)cudaGetLastError();
    return false;
  }
  return a.type == cudaMemoryTypeHost;
}

Tensor pin_memory(const Tensor& t) {
  if (!t.device().is_cpu())
    fail<DeviceError>("cuda.pin_memory", "only CPU tensors can be pinned, got one on {}",
                      t.device().str());
  if (is_pinned(t)) return t;
  Tensor out = empty_pinned(t.shape(), t.dtype());
  out.copy_(t);
  return out;
}

}  // namespace tessera::cuda
