// The CUDA runtime behind tessera::cuda: device discovery (no GPU or no driver = 0 devices),
// validation, the current device and stream, streams, events, and error reports that name the
// kernels launched before an asynchronous failure.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

#include "backends/cuda/common.h"
#include "backends/cuda/random_kernels.h"
#include "backends/cuda/sort_kernels.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxDevices = 64;

struct Probe {
  int count = 0;
  std::string reason;  // why count is 0
};

// cudaGetDeviceCount fails without a driver or a GPU: that is 0 devices, with the reason kept.
const Probe& probe() {
  static const Probe p = [] {
    Probe r;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess) {
      r.count = std::min(n, kMaxDevices);
      if (n == 0) r.reason = "no CUDA-capable device is detected";
    } else {
      r.reason = fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
      (void)cudaGetLastError();  // not sticky: clear it so later calls start clean
    }
    return r;
  }();
  return p;
}

// The most recent kernels per device (static names only), for reports of asynchronous errors.
struct LaunchLog {
  static constexpr int kKept = 8;
  std::atomic<uint32_t> next{0};
  std::array<std::atomic<const char*>, kKept> ops{};
};
std::array<LaunchLog, kMaxDevices> g_launches;

// CUDA_LAUNCH_BLOCKING=1 (as in PyTorch): every launch waits, so an error names its own op.
bool blocking_launches() {
  static const bool on = [] {
    const char* v = std::getenv("CUDA_LAUNCH_BLOCKING");
    return v && std::string_view(v) == "1";
  }();
  return on;
}

std::string recent_kernels(int device) {
  if (device < 0 || device >= kMaxDevices) return {};
  LaunchLog& log = g_launches[static_cast<size_t>(device)];
  const uint32_t n = log.next.load(std::memory_order_relaxed);
  std::string out;
  const uint32_t first = n > LaunchLog::kKept ? n - LaunchLog::kKept : 0;
  for (uint32_t i = first; i < n; ++i)
    if (const char* op = log.ops[i % LaunchLog::kKept].load(std::memory_order_relaxed))
      out += fmt::format("{}{}", out.empty() ? "" : ", ", op);
  return out;
}

// Errors a kernel leaves behind; the "sticky" ones also leave the context unusable.
bool kernel_error(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorAssert:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorHardwareStackError:
    case cudaErrorInvalidPc:
    case cudaErrorLaunchTimeout:
    case cudaErrorLaunchOutOfResources:
    case cudaErrorNoKernelImageForDevice:
      return true;
    default:
      return false;
  }
}
bool sticky(cudaError_t e) {
  return kernel_error(e) && e != cudaErrorLaunchOutOfResources &&
         e != cudaErrorNoKernelImageForDevice;
}

thread_local std::array<cudaStream_t, kMaxDevices> t_current_stream{};
// The Stream objects behind the non-default entries of t_current_stream, so that
// Stream::current() shares ownership of a guarded stream: a handle taken inside a StreamGuard
// stays valid after the guard and the stream's creator are gone (Python keeps such handles as
// long as it likes). Kept apart from t_current_stream, which kernel launches read.
thread_local std::array<std::optional<Stream>, kMaxDevices> t_current_owner;
std::atomic<bool> g_allow_tf32{false};
std::atomic<bool> g_cudnn_benchmark{false};

void destroy_stream(int device, cudaStream_t s) noexcept {
  try {  // its work finishes first, so blocks freed on it may serve any stream afterwards
    DeviceGuard g(device);
    const uint64_t mark = allocator_mark(device);
    // A failed synchronization is a lost context (an asynchronous kernel error): the
    // allocator forgets the stream either way, as nothing may be queued on it once destroyed.
    if (cudaStreamSynchronize(s) != cudaSuccess) (void)cudaGetLastError();
    allocator_stream_destroyed(device, s, mark);
    (void)cudaStreamDestroy(s);
  } catch (...) {
  }
}

}  // namespace

// ---- info.h ---------------------------------------------------------------------------------

bool is_built() { return true; }
int device_count() { return probe().count; }
bool is_available() { return probe().count > 0; }
std::string unavailable_reason() { return probe().reason; }

// ---- errors ---------------------------------------------------------------------------------

void raise(cudaError_t e, std::string_view op, std::string_view call) {
  // The runtime also keeps a failed call's error as the thread's last error, which launched()
  // reads after every kernel: clear it, or the next launch of an unrelated op raises it again
  // after the caller caught this one (a sticky error stays: the context is lost anyway).
  (void)cudaGetLastError();
  std::string msg =
      fmt::format("CUDA error {} ({}) in {}", cudaGetErrorName(e), cudaGetErrorString(e), call);
  if (kernel_error(e)) {
    int dev = -1;
    (void)cudaGetDevice(&dev);
    const std::string recent = recent_kernels(dev);
    if (!recent.empty())
      msg += fmt::format(
          "; the most recent kernels launched on cuda:{} were: {} (set CUDA_LAUNCH_BLOCKING=1 to "
          "stop at the failing one)",
          dev, recent);
    if (sticky(e)) msg += "; the CUDA context cannot be used any more: restart the process";
  }
  fail<DeviceError>(op, "{}", msg);
}

bool not_ready() {
  (void)cudaGetLastError();
  return false;
}

void launched(int device, const char* op) {
  if (device >= 0 && device < kMaxDevices) {
    LaunchLog& log = g_launches[static_cast<size_t>(device)];
    const uint32_t i = log.next.fetch_add(1, std::memory_order_relaxed);
    log.ops[i % LaunchLog::kKept].store(op, std::memory_order_relaxed);
  }
  if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) raise(e, op, "kernel launch");
  if (blocking_launches()) sync_stream(device, current_stream(device), op);
}

// ---- devices --------------------------------------------------------------------------------

void check_device(int index) {
  const Probe& p = probe();
  if (p.count == 0)
    fail<DeviceError>("cuda", "no CUDA device (requested cuda:{}): {}", index, p.reason);
  if (index < 0 || index >= p.count)
    fail<DeviceError>("cuda", "device cuda:{} does not exist ({} device{})", index, p.count,
                      p.count == 1 ? "" : "s");
}

int current_device() {
  if (probe().count == 0) check_device(0);
  int d = 0;
  TS_CUDA_CHECK("cuda", cudaGetDevice(&d));
  return d;
}

void set_device(int index) {
  check_device(index);
  TS_CUDA_CHECK("cuda", cudaSetDevice(index));
}

int resolve(int device) {
  if (device == -1) return current_device();
  check_device(device);
  return device;
}

DeviceGuard::DeviceGuard(int device) {
  TS_CUDA_CHECK("cuda", cudaGetDevice(&previous_));
  if (previous_ == device)
    previous_ = -1;
  else
    TS_CUDA_CHECK("cuda", cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0) (void)cudaSetDevice(previous_);
}

DeviceProperties device_properties(int device) {
  const int d = resolve(device);
  cudaDeviceProp p{};
  TS_CUDA_CHECK("cuda.device_properties", cudaGetDeviceProperties(&p, d));
  DeviceProperties r;
  r.index = d;
  r.name = p.name;
  r.total_memory = static_cast<int64_t>(p.totalGlobalMem);
  r.multiprocessors = p.multiProcessorCount;
  r.major = p.major;
  r.minor = p.minor;
  r.l2_cache_bytes = p.l2CacheSize;
  r.memory_bus_bits = p.memoryBusWidth;
  // clockRate left cudaDeviceProp in CUDA 13: ask for the attribute.
  TS_CUDA_CHECK("cuda.device_properties",
                cudaDeviceGetAttribute(&r.clock_khz, cudaDevAttrClockRate, d));
  return r;
}

void synchronize(int device) {
  const int d = resolve(device);
  DeviceGuard g(d);
  const uint64_t mark = allocator_mark(d);  // blocks freed during the wait may still be in use
  TS_CUDA_CHECK("cuda.synchronize", cudaDeviceSynchronize());
  allocator_synchronized(d, nullptr, true, mark);
  g_launches[static_cast<size_t>(d)].next.store(0, std::memory_order_relaxed);
  check_index_fault(d);
}

void sync_stream(int device, cudaStream_t stream, std::string_view op) {
  DeviceGuard g(device);
  const uint64_t mark = allocator_mark(device);  // blocks freed during the wait may be in use
  TS_CUDA_CHECK(op, cudaStreamSynchronize(stream));
  allocator_synchronized(device, stream, false, mark);
  check_index_fault(device);
}

// ---- index faults ---------------------------------------------------------------------------
// Index kernels record a bad index here instead of touching memory outside a tensor (a device
// assert would leave the context unusable). Mapped pinned memory: the kernel writes it
// directly and the host reads it after a synchronization without a copy.

namespace {
std::array<std::atomic<k::IndexFault*>, kMaxDevices> g_faults{};
std::mutex g_faults_mutex;

// How each op code of the fault record reads as an error: index and size as the kernel wrote
// them.
struct FaultRow;
using RaiseFault = void (*)(const FaultRow& row, int64_t index, int64_t size, int device);
struct FaultRow {
  int32_t code;
  const char* op;
  RaiseFault raise;
  const char* symbol = "";  // the operator, for division by zero
};

[[noreturn]] void index_out_of_range(const FaultRow& row, int64_t index, int64_t size, int device) {
  fail<IndexError>(row.op,
                   "index {} is out of bounds for a dim of size {} (found on cuda:{}; the "
                   "element was skipped)",
                   index, size, device);
}

// integer.cu: index holds the dividend.
[[noreturn]] void divided_by_zero(const FaultRow& row, int64_t index, int64_t, int device) {
  fail<ValueError>(row.op,
                   "integer division by zero ({} {} 0, found on cuda:{}; the element was set "
                   "to 0)",
                   index, row.symbol, device);
}

// random.cu: size holds the probability's bits.
[[noreturn]] void bad_probability(const FaultRow& row, int64_t index, int64_t size, int device) {
  double p = 0;
  std::memcpy(&p, &size, sizeof p);
  fail<ValueError>(row.op,
                   "probability {} at flat index {} is outside [0, 1] (found on cuda:{}; the "
                   "element was set to 0)",
                   p, index, device);
}

constexpr FaultRow kFaults[] = {
    {k::kGather, "gather", index_out_of_range},
    {k::kScatterAdd, "scatter_add", index_out_of_range},
    {k::kIndexSelect, "index_select", index_out_of_range},
    {k::kIndexAdd, "index_add", index_out_of_range},
    {k::kIndex, "index", index_out_of_range},
    {k::kIndexPut, "index_put", index_out_of_range},
    {k::kIndexPutInplace, "index_put_", index_out_of_range},
    {k::kScatter, "scatter", index_out_of_range},
    {k::kFloorDivideByZero, "floor_divide", divided_by_zero, "//"},
    {k::kRemainderByZero, "remainder", divided_by_zero, "%"},
    {k::kBernoulliFault, "bernoulli", bad_probability},
};
}  // namespace

k::IndexFault* index_fault(int device) {
  auto& slot = g_faults[static_cast<size_t>(device)];
  if (k::IndexFault* f = slot.load(std::memory_order_acquire)) return f;
  std::lock_guard lock(g_faults_mutex);
  if (k::IndexFault* f = slot.load(std::memory_order_relaxed)) return f;
  DeviceGuard g(device);
  void* p = nullptr;
  TS_CUDA_CHECK("cuda.index_fault", cudaHostAlloc(&p, sizeof(k::IndexFault),
                                                  cudaHostAllocMapped | cudaHostAllocPortable));
  auto* f = static_cast<k::IndexFault*>(p);
  *f = k::IndexFault{};
  void* dp = nullptr;  // the same address under unified addressing, but ask
  TS_CUDA_CHECK("cuda.index_fault", cudaHostGetDevicePointer(&dp, p, 0));
  TS_CHECK(dp == p, DeviceError, "cuda.index_fault",
           "mapped host memory has a different device address (no unified addressing)");
  slot.store(f, std::memory_order_release);  // kept for the process's lifetime
  return f;
}

void check_index_fault(int device) {
  k::IndexFault* f = g_faults[static_cast<size_t>(device)].load(std::memory_order_acquire);
  if (!f) return;  // no index kernel ran on this device
  volatile k::IndexFault* vf = f;
  // A claimed record is still being written by a kernel on another stream: a later
  // synchronization raises it.
  if (vf->flag != k::kFaultPublished) return;
  std::atomic_thread_fence(std::memory_order_acquire);
  const int32_t op = vf->op;
  const int64_t index = vf->index, size = vf->size;
  vf->flag = k::kFaultNone;
  for (const FaultRow& row : kFaults)
    if (row.code == op) row.raise(row, index, size, device);
  fail<DeviceError>("cuda", "unknown fault code {} recorded on cuda:{} (index {}, size {})", op,
                    device, index, size);
}

// ---- peers ----------------------------------------------------------------------------------

void enable_peer_access(int from, int to) {
  static std::mutex mu;
  static std::array<std::array<bool, kMaxDevices>, kMaxDevices> tried{};
  std::lock_guard lock(mu);
  bool& done = tried[static_cast<size_t>(to)][static_cast<size_t>(from)];
  if (done || from == to) return;
  done = true;
  int can = 0;
  TS_CUDA_CHECK("cuda.peer_access", cudaDeviceCanAccessPeer(&can, to, from));
  if (!can) return;
  DeviceGuard guard(to);
  // Already enabled (by another library) is what we wanted; any other refusal (e.g.
  // cudaErrorTooManyPeers past 8 peers) only costs speed: the driver stages the copy instead.
  if (cudaDeviceEnablePeerAccess(from, 0) != cudaSuccess) (void)cudaGetLastError();
}

// ---- streams --------------------------------------------------------------------------------

cudaStream_t current_stream(int device) { return t_current_stream[static_cast<size_t>(device)]; }

Stream Stream::default_stream(int device) { return Stream(nullptr, nullptr, resolve(device)); }

Stream Stream::current(int device) {
  const int d = resolve(device);
  if (const std::optional<Stream>& s = t_current_owner[static_cast<size_t>(d)]) return *s;
  return Stream(nullptr, current_stream(d), d);
}

Stream Stream::create(int device) {
  const int d = resolve(device);
  DeviceGuard g(d);
  cudaStream_t s = nullptr;
  TS_CUDA_CHECK("cuda.Stream", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  std::shared_ptr<void> owner(s, [d](void* p) { destroy_stream(d, static_cast<cudaStream_t>(p)); });
  return Stream(std::move(owner), s, d);
}

void Stream::synchronize() const {
  sync_stream(device_, static_cast<cudaStream_t>(handle_), "Stream.synchronize");
}

bool Stream::query() const {
  DeviceGuard g(device_);
  const cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(handle_));
  if (e == cudaErrorNotReady) return not_ready();
  TS_CUDA_CHECK("Stream.query", e);
  return true;
}

namespace {
void make_current(const Stream& s) {
  const auto d = static_cast<size_t>(s.device());
  t_current_stream[d] = static_cast<cudaStream_t>(s.handle());
  if (s.handle())
    t_current_owner[d] = s;
  else
    t_current_owner[d].reset();  // the default stream needs no owner
}
}  // namespace

StreamGuard::StreamGuard(const Stream& s) : previous_(Stream::current(s.device())), installed_(s) {
  make_current(s);
}

StreamGuard::~StreamGuard() { make_current(previous_); }

// ---- events ---------------------------------------------------------------------------------

Event::Event(int device) : device_(resolve(device)) {
  DeviceGuard g(device_);
  cudaEvent_t e = nullptr;
  TS_CUDA_CHECK("cuda.Event", cudaEventCreate(&e));
  const int d = device_;
  event_ = std::shared_ptr<void>(e, [d](void* p) {
    try {
      DeviceGuard guard(d);
      (void)cudaEventDestroy(static_cast<cudaEvent_t>(p));
    } catch (...) {
    }
  });
}

void Event::record() { record(Stream::current(device_)); }

void Event::record(const Stream& s) {
  if (s.device() != device_)
    fail<DeviceError>("Event.record", "the event belongs to cuda:{} but the stream to cuda:{}",
                      device_, s.device());
  DeviceGuard g(device_);
  TS_CUDA_CHECK("Event.record", cudaEventRecord(static_cast<cudaEvent_t>(event_.get()),
                                                static_cast<cudaStream_t>(s.handle())));
  recorded_ = true;
}

void Event::block(const Stream& s) const {
  DeviceGuard g(s.device());
  TS_CUDA_CHECK("Event.block", cudaStreamWaitEvent(static_cast<cudaStream_t>(s.handle()),
                                                   static_cast<cudaEvent_t>(event_.get()), 0));
}

void Event::synchronize() const {
  DeviceGuard g(device_);
  TS_CUDA_CHECK("Event.synchronize", cudaEventSynchronize(static_cast<cudaEvent_t>(event_.get())));
  check_index_fault(device_);
}

bool Event::query() const {
  DeviceGuard g(device_);
  const cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event_.get()));
  if (e == cudaErrorNotReady) return not_ready();
  TS_CUDA_CHECK("Event.query", e);
  return true;
}

double Event::elapsed_ms(const Event& end) const {
  if (!recorded_ || !end.recorded_)
    fail<ValueError>("Event.elapsed_ms", "both events must be recorded first (start: {}, end: {})",
                     recorded_ ? "recorded" : "not recorded",
                     end.recorded_ ? "recorded" : "not recorded");
  end.synchronize();
  float ms = 0;
  DeviceGuard g(device_);
  TS_CUDA_CHECK("Event.elapsed_ms",
                cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(event_.get()),
                                     static_cast<cudaEvent_t>(end.event_.get())));
  return static_cast<double>(ms);
}

// ---- math modes -----------------------------------------------------------------------------

void set_allow_tf32(bool on) { g_allow_tf32.store(on, std::memory_order_relaxed); }
bool allow_tf32() { return g_allow_tf32.load(std::memory_order_relaxed); }
void set_cudnn_benchmark(bool on) { g_cudnn_benchmark.store(on, std::memory_order_relaxed); }
bool cudnn_benchmark() { return g_cudnn_benchmark.load(std::memory_order_relaxed); }

}  // namespace tessera::cuda
