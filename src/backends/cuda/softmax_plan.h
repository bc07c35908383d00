#pragma once
// When softmax / log_softmax (softmax.cu) take their register path, as plain C++ (no CUDA
// header) so that a host test can check it: lanes contiguous in the input and the output, made
// of whole 16-byte vectors that all start 16-byte aligned, and short enough for a block's
// registers. Such a lane is read from global memory once (every load of a thread issued before
// the first use), where the general kernel reads it three times, one element at a time.
#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

/// 16-byte vectors each thread of the register path holds.
inline constexpr int kSoftmaxVecsPerThread = 4;
/// Its largest block (the kernel's shared memory holds one partial per warp: 32).
inline constexpr unsigned kSoftmaxMaxThreads = 1024;

/// Whether every lane start of `rows` (operand 0: out, 1: in; element strides) lies on a
/// 16-byte boundary, given 16-byte aligned base pointers, for elements of `elem` bytes.
inline bool softmax_starts_aligned(const Geometry& rows, const void* in, const void* out,
                                   int elem) {
  if (reinterpret_cast<uintptr_t>(in) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return false;
  const int64_t per_vec = 16 / elem;
  for (int d = 0; d < rows.ndim; ++d)
    for (int o = 0; o < 2; ++o)
      if (rows.strides[o][d] % per_vec != 0) return false;
  return true;
}

/// Threads per block (one block per lane, a power of two from 32 to 1024) of the register path
/// for lanes of n elements of `elem` bytes with these element strides along the lane, or 0
/// when the lanes do not qualify and the general kernel runs.
inline unsigned softmax_vector_threads(int64_t n, int elem, int64_t in_stride, int64_t out_stride,
                                       bool starts_aligned) {
  const int64_t per_vec = 16 / elem;
  if (n <= 0 || in_stride != 1 || out_stride != 1 || n % per_vec != 0 || !starts_aligned) return 0;
  const int64_t vecs = n / per_vec;
  unsigned t = 32;
  while (t < kSoftmaxMaxThreads && t * int64_t{kSoftmaxVecsPerThread} < vecs) t *= 2;
  return t * int64_t{kSoftmaxVecsPerThread} >= vecs ? t : 0;
}

}  // namespace tessera::cuda::k
