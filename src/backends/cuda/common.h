#pragma once
// Private to the CUDA backend's host code: error checks, the current device and stream, and
// the record of launched kernels that names the op when an asynchronous error surfaces.
#include <cuda_runtime.h>

#include <string_view>

#include "backends/cuda/kernels.h"
#include "tessera/core/error.h"

namespace tessera::cuda {

/// Throws DeviceError "[op] CUDA error <name> (<text>) in <call>", adding the kernels launched
/// since the last synchronization when the error is one a kernel left behind.
[[noreturn]] void raise(cudaError_t e, std::string_view op, std::string_view call);

#define TS_CUDA_CHECK(op, expr)                                             \
  do {                                                                      \
    const cudaError_t ts_err_ = (expr);                                     \
    if (ts_err_ != cudaSuccess) ::tessera::cuda::raise(ts_err_, op, #expr); \
  } while (0)

/// What a query answers for cudaErrorNotReady: false, after clearing the thread's last error.
/// The runtime records cudaErrorNotReady from cudaStreamQuery / cudaEventQuery as the last
/// error, which launched() would otherwise raise as a failure of the next, unrelated kernel.
bool not_ready();

/// After a kernel launch on a device: remembers the op (a static name) for later error
/// reports and turns a launch error (bad configuration, no kernel image for this GPU) into an
/// exception naming the op.
void launched(int device, const char* op);

/// The device index a call refers to (-1: the current device), validated.
int resolve(int device);

/// Makes a device current for the guard's lifetime.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

/// The stream this thread queues work on for a device.
cudaStream_t current_stream(int device);

/// Lets device `to` read and write device `from`'s memory directly, where the hardware allows
/// (NVLink or PCIe peer-to-peer); once per pair, later calls return at once. Without peer
/// access a peer copy still works, staged through the host by the driver.
void enable_peer_access(int from, int to);

/// The device's caching allocator's point in its order of frees (CachingAllocator::mark),
/// taken before a synchronization starts.
uint64_t allocator_mark(int device);
/// Tells the device's caching allocator that a stream (or the whole device, for stream ==
/// nullptr and all == true) has finished the work queued before `mark`.
void allocator_synchronized(int device, cudaStream_t stream, bool all, uint64_t mark);
/// Tells it that a stream is being destroyed (after the work queued before `mark` finished,
/// or the context failed).
void allocator_stream_destroyed(int device, cudaStream_t stream, uint64_t mark);

/// An asynchronous copy from or into the pinned block starting at `block` (a Storage's data)
/// was just queued on `stream`: the pinned memory cache will not reuse the block before it ran
/// (an event recorded on the stream). False when the block is not from that cache.
bool pinned_copy_queued(const void* block, int device, cudaStream_t stream);

/// Waits for a stream, surfacing asynchronous errors as DeviceError naming `op`, and an
/// out-of-range index an index kernel met as IndexError.
void sync_stream(int device, cudaStream_t stream, std::string_view op);

/// The device's fault record for the index kernels (mapped host memory, made on first use;
/// the pointer works on the device and on the host).
k::IndexFault* index_fault(int device);
/// After a synchronization: throws IndexError for the out-of-range index an index kernel
/// recorded on the device since the last check (and clears the record).
void check_index_fault(int device);

}  // namespace tessera::cuda
