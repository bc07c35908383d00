#pragma once
// The CUDA runtime as Tessera exposes it: devices, streams, events, the caching allocator's
// statistics and limit, pinned host memory. No CUDA header here: streams and events are opaque
// handles. Without the CUDA build every function below throws NotBuiltError (is_built,
// device_count and is_available, in info.h, answer without throwing where documented).
//
// A `device` argument of -1 means the current device of the calling thread (cuda:0 unless
// set_device changed it).
#include <cstdint>
#include <memory>
#include <string>

#include "tessera/core/allocator.h"
#include "tessera/core/tensor.h"
#include "tessera/runtime/device_facts.h"
#include "tessera/runtime/info.h"

namespace tessera::cuda {

// ---- devices --------------------------------------------------------------------------------

struct DeviceProperties {
  int index = 0;
  std::string name;          ///< e.g. "NVIDIA H200"
  int64_t total_memory = 0;  ///< bytes of device memory
  int multiprocessors = 0;
  int major = 0, minor = 0;  ///< compute capability
  int64_t l2_cache_bytes = 0;
  int clock_khz = 0;  ///< peak SM clock
  int memory_bus_bits = 0;
};
DeviceProperties device_properties(int device = -1);

/// Why device_count() is 0 when it is ("" when devices were found), e.g. the CUDA driver's
/// "no CUDA-capable device is detected".
std::string unavailable_reason();

/// Throws DeviceError unless cuda:index can be used: "[cuda] no CUDA device (requested
/// cuda:0)" or "[cuda] device cuda:5 does not exist (2 devices)".
void check_device(int index);
int current_device();
/// Makes cuda:index the current device of this thread.
void set_device(int index);

/// Waits until all work queued on the device is done. An asynchronous kernel error surfaces
/// here as a DeviceError naming the kernels launched since the last synchronization.
void synchronize(int device = -1);

/// Measures a device's facts (cuBLAS GEMM peaks per dtype, copy bandwidth, pinned host<->device
/// bandwidth and latency, overhead per op). device_facts() calls this once per machine and
/// caches the result.
DeviceFacts measure_facts(int device = -1);

// ---- streams and events ---------------------------------------------------------------------

/// A CUDA stream (a shared handle: the stream is destroyed with its last copy, after its work).
class Stream {
 public:
  /// The default (legacy) stream of a device.
  static Stream default_stream(int device = -1);
  /// The stream this thread queues work on for the device (the default stream unless a
  /// StreamGuard says otherwise).
  static Stream current(int device = -1);
  /// A new non-blocking stream.
  static Stream create(int device = -1);

  /// Waits until the stream's work is done (errors surface as in cuda::synchronize).
  void synchronize() const;
  /// True when all work queued so far is done.
  bool query() const;
  int device() const { return device_; }
  /// The cudaStream_t.
  void* handle() const { return handle_; }
  bool operator==(const Stream& o) const { return handle_ == o.handle_ && device_ == o.device_; }

 private:
  Stream(std::shared_ptr<void> owner, void* handle, int device)
      : owner_(std::move(owner)), handle_(handle), device_(device) {}
  std::shared_ptr<void> owner_;  // null for the default stream
  void* handle_ = nullptr;
  int device_ = 0;
};

/// Makes a stream the current one of its device on this thread, until the guard goes away.
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s);
  ~StreamGuard();
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
  Stream installed_;
};

/// A CUDA event with timing: record on a stream, wait for it, measure between two.
class Event {
 public:
  explicit Event(int device = -1);
  /// Records the event on s (by default the current stream of the event's device).
  void record();
  void record(const Stream& s);
  /// Makes s wait for the work before the last record (without blocking the host).
  void block(const Stream& s) const;
  void synchronize() const;
  bool query() const;
  /// Milliseconds from this event to `end`; both must have been recorded (waits for end).
  double elapsed_ms(const Event& end) const;

 private:
  std::shared_ptr<void> event_;
  int device_ = 0;
  bool recorded_ = false;
};

// ---- memory ---------------------------------------------------------------------------------

/// The caching allocator's statistics: current (in use), peak, cached (held for reuse).
MemoryStats memory_stats(int device = -1);
/// Bytes obtained from the device: in use plus cached.
int64_t memory_reserved(int device = -1);
void reset_peak_memory_stats(int device = -1);
/// Returns every cached segment that holds no live tensor to the device.
void empty_cache(int device = -1);
/// Caps what the allocator reserves on a device at fraction x its total memory (0 < f <= 1).
/// The environment variable TESSERA_CUDA_MEMORY_LIMIT (bytes, suffix K/M/G allowed) sets the
/// initial cap of every device.
void set_memory_fraction(double fraction, int device = -1);
/// The cap in bytes (0: none).
int64_t memory_limit(int device = -1);
/// Tells the caching allocator that work queued on stream s uses t's memory, though t was
/// allocated on another stream: when t's storage is freed, the memory is not reused until the
/// work queued on s by then is done (as PyTorch's Tensor.record_stream). Without it, a tensor
/// used on a second stream must outlive that stream's work, or the stream be synchronized first.
void record_stream(const Tensor& t, const Stream& s);

/// A CPU tensor in page-locked (pinned) memory: host<->device copies from it run at full
/// bandwidth, and with non_blocking without waiting. Pinned memory comes from a process-wide
/// cache (as PyTorch's CachingHostAllocator): sizes are rounded up to a power of two (at least
/// 4 KiB) and a freed block is kept for later pinned tensors instead of going back to the
/// driver (cudaFreeHost waits for every device). A block an asynchronous copy read or wrote is
/// reused only once that copy is done. Safe from any thread (DataLoader workers pin batches).
Tensor empty_pinned(Shape shape, DType dtype = kFloat32);
/// The pinned memory cache's statistics (bytes are block sizes, powers of two).
struct HostMemoryStats {
  int64_t current_bytes = 0;        ///< in blocks held by tensors
  int64_t peak_bytes = 0;           ///< highest current_bytes since start or the last reset
  int64_t cached_bytes = 0;         ///< in free blocks and blocks waiting for their copies
  int64_t reserved_bytes = 0;       ///< page-locked from the driver: current + cached
  int64_t peak_reserved_bytes = 0;  ///< highest reserved_bytes since start or the last reset
  int64_t num_allocs = 0;           ///< requests served
  int64_t num_cache_hits = 0;       ///< requests served by a cached block
  int64_t num_host_alloc = 0;       ///< cudaHostAlloc calls (blocks added to the cache)
  int64_t num_host_free = 0;        ///< cudaFreeHost calls (blocks returned to the driver)
};
/// Statistics of the pinned host memory cache (one per process, shared by every device).
HostMemoryStats host_memory_stats();
void reset_peak_host_memory_stats();
/// Returns the cached pinned blocks no tensor holds and no queued copy uses to the driver
/// (cudaFreeHost, which waits for the devices). empty_cache() leaves pinned memory alone, as
/// torch.cuda.empty_cache() does (PyTorch has torch._C._host_emptyCache for it).
void empty_host_cache();
/// Whether t's memory is page-locked host memory from CUDA.
bool is_pinned(const Tensor& t);
/// t (a CPU tensor) copied into pinned memory, or t itself when it is pinned already; what a
/// DataLoader with pin_memory does to each batch, so that `to(cuda, true)` can be asynchronous.
Tensor pin_memory(const Tensor& t);

// ---- math modes -----------------------------------------------------------------------------

/// Lets float32 matmuls use TF32 tensor cores (about 10 mantissa bits). Off by default, so
/// float32 results match the CPU to float32 rounding.
void set_allow_tf32(bool on);
bool allow_tf32();

/// Lets the cuDNN convolutions time their candidate algorithms (cudnnFind*AlgorithmEx, on the
/// call's own buffers) on the first call of each shape and run the fastest, as PyTorch's
/// torch.backends.cudnn.benchmark. Off by default: cuDNN's heuristics choose without running
/// anything. Either way the choice is remembered per device, pass, dtype, math type and
/// geometry, so later calls of that shape skip the query. Under the scheduler's
/// deterministic mode (set_deterministic) only deterministic algorithms qualify. Without the
/// CUDA build, set_cudnn_benchmark throws NotBuiltError and cudnn_benchmark() is false.
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();

// ---- peers for benchmarks -------------------------------------------------------------------

/// c = a @ b for contiguous row-major matrices of one dtype on one device, by cuBLAS called
/// directly on the current stream: no funnel, no allocation, no checks beyond cuBLAS's own.
/// The peer `tessera bench gpu` measures matmul against.
void cublas_gemm(const Tensor& a, const Tensor& b, const Tensor& c);

}  // namespace tessera::cuda
