#pragma once
// Private to the CUDA backend's host code: the host side of k::Scratch (device blocks of the
// caching allocator that live for one call) and the helpers of the sort and index kernels.
#include <vector>

#include "backends/cuda/sort_kernels.h"
#include "tessera/core/tensor.h"

namespace tessera::cuda {

/// Hands out device blocks for one call's launchers and frees them with the pool. Freeing right
/// after queuing is safe: a freed block serves only later work on the same stream until the
/// stream is synchronized (caching_allocator.h).
class ScratchPool {
 public:
  explicit ScratchPool(Device device) : device_(device) {}
  k::Scratch scratch() { return {&get, this}; }
  /// n elements of dtype dt (a Tensor, for the caller's own buffers).
  Tensor tensor(int64_t n, DType dt) {
    blocks_.push_back(Tensor::empty({n}, dt, device_));
    return blocks_.back();
  }

 private:
  static void* get(void* self, size_t bytes) {
    return static_cast<ScratchPool*>(self)->tensor(static_cast<int64_t>(bytes), kUInt8).raw_data();
  }
  Device device_;
  std::vector<Tensor> blocks_;
};

/// Raises a CUDA error a launcher of sort.cu returned (0: none) as DeviceError naming op.
void check_launch(int err, const char* op);

/// The int64 at device address p, read after the current stream of `device` finishes (which
/// raises the stream's errors, and an out-of-range index an index kernel recorded).
int64_t read_int64(const int64_t* p, int device, const char* op);

/// The winners of writes to repeated targets (k::last_of_keys): keys of n items, all <= invalid.
const uint8_t* last_writes(ScratchPool& pool, const uint64_t* keys, int64_t n, uint64_t invalid,
                           int device, const char* op);

}  // namespace tessera::cuda
