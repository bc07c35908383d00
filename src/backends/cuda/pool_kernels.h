#pragma once
// The pooling kernels' interface (pool.cu), in the style of kernels.h: pointers, sizes and
// strides only, no Tensor and no CUDA header.
#include <cstdint>

namespace tessera::cuda::k {

/// A pooling call over n * c planes with 3 spatial dims, right-aligned as in the CPU's
/// PoolGeom (unused leading dims: size 1, kernel 1, stride 1, padding 0, dilation 1).
struct Pool {
  int64_t n = 0, c = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1},
          p[3] = {0, 0, 0}, d[3] = {1, 1, 1};
  bool count_include_pad = true;
};

/// Element strides of an (n, c, d0, d1, d2) operand.
struct Strides5 {
  int64_t n = 0, c = 0, sp[3] = {0, 0, 0};
};

// Float dtypes only (codes kF16 ... kF64 of kernels.h); each queues work on `stream`.
// Outputs are contiguous (n, c, *spatial); 16-bit floats compute in float32.

/// out, idx (int64, flat index into the input plane) = the window maxima: the first maximum in
/// window order, a NaN taking over (the CPU's rule).
void max_pool(int code, const void* x, const Strides5& xs, void* out, int64_t* idx, const Pool& g,
              void* stream);
/// out = the window means (divisor by count_include_pad, as on the CPU).
void avg_pool(int code, const void* x, const Strides5& xs, void* out, const Pool& g, void* stream);
/// dx (input-shaped) = the sum of grad over the windows whose idx names each element; a
/// gather over the windows covering the element, in window order (deterministic).
void max_pool_backward(int code, const void* grad, const Strides5& gs, const int64_t* idx,
                       const Strides5& is, void* dx, const Pool& g, void* stream);
/// dx = the sum over the windows covering each element of grad / divisor.
void avg_pool_backward(int code, const void* grad, const Strides5& gs, void* dx, const Pool& g,
                       void* stream);

}  // namespace tessera::cuda::k
