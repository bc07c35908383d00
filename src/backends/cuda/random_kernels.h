#pragma once
// The interface of the random and creation kernels (random.cu), in the style of kernels.h:
// pointers, sizes and plain parameters, no Tensor and no CUDA header. Element i of a draw
// uses Philox counter offset + i under key seed, as on the CPU (cpu/creation.cpp), so a seed
// gives the same numbers on every device.
#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

/// The IndexFault op recorded by bernoulli for a probability outside [0, 1] (or NaN): index is
/// the flat element, size holds the probability's double bits. Raised as ValueError at the
/// next synchronization (runtime.cpp).
inline constexpr int32_t kBernoulliFault = 100;

struct Draw {
  uint64_t seed, offset;
};

// Outputs are n contiguous elements of dtype `code`; each launcher queues work on `stream`.
/// low + (high - low) * u, u with 24 random bits (53 for kF64), rounded to the dtype and kept
/// below high. Float codes.
void uniform(int code, void* out, int64_t n, Draw d, double low, double high, void* stream);
/// mean + std * Box-Muller(u1, u2), in double, rounded to the dtype. Float codes.
void normal(int code, void* out, int64_t n, Draw d, double mean, double std, void* stream);
/// low + (64 random bits mod range), converted to the dtype. Integer and float codes.
void randint(int code, void* out, int64_t n, Draw d, int64_t low, uint64_t range, void* stream);
/// out (contiguous, operand 0 of g) = u < p (operand 1 of g, any strides, the same float code
/// as out). A p outside [0, 1] writes 0 and is recorded in `fault` as kBernoulliFault.
void bernoulli(int code, const void* p, void* out, const Geometry& g, Draw d, IndexFault* fault,
               void* stream);

/// arange: start + i * step in int64 (ints) or double; any code, complex64 included.
struct Arange {
  bool ints;
  int64_t istart, istep;
  double start, step;
};
void arange(int code, void* out, int64_t n, const Arange& a, void* stream);
/// linspace with the CPU's symmetric formula; step = (end - start) / (n - 1) from the host.
void linspace(int code, void* out, int64_t n, double start, double end, double step, void* stream);
/// eye: element i of a row-major matrix with `cols` columns is 1 on the diagonal.
void eye(int code, void* out, int64_t n, int64_t cols, void* stream);

}  // namespace tessera::cuda::k
