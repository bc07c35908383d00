#pragma once
// Private to the backend's .cu files: element loads/stores in the compute type (float for the
// 16-bit floats, as on the CPU), strided offsets, grid-stride launch sizes, math overloads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

inline constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n items (the loop covers what the grid does not).
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
}

__device__ __forceinline__ int64_t first_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// ---- compute type: float for half/bfloat16, the type itself otherwise ----
template <class T>
struct Io {
  using C = T;
  __device__ __forceinline__ static C up(T x) { return x; }
  __device__ __forceinline__ static T down(C x) { return x; }
};
template <>
struct Io<__half> {
  using C = float;
  __device__ __forceinline__ static float up(__half x) { return __half2float(x); }
  __device__ __forceinline__ static __half down(float x) { return __float2half_rn(x); }
};
template <>
struct Io<__nv_bfloat16> {
  using C = float;
  __device__ __forceinline__ static float up(__nv_bfloat16 x) { return __bfloat162float(x); }
  __device__ __forceinline__ static __nv_bfloat16 down(float x) { return __float2bfloat16_rn(x); }
};

/// A scalar parameter of a functor (add's alpha, softplus's beta) kept in both precisions, so
/// the kernel never converts it per element.
struct Param {
  float f;
  double d;
  explicit Param(double v = 0) : f(static_cast<float>(v)), d(v) {}
  template <class C>
  __device__ __forceinline__ C as() const {
    if constexpr (sizeof(C) == sizeof(float))
      return f;
    else
      return d;
  }
};

/// Records the first fault of a kernel in mapped host memory (the host raises it after the
/// next synchronization); later faults are dropped.
__device__ __forceinline__ void record_fault(IndexFault* f, int op, int64_t index, int64_t size) {
  if (atomicCAS_system(&f->flag, kFaultNone, kFaultClaimed) == kFaultNone) {
    f->op = op;
    f->index = index;
    f->size = size;
    __threadfence_system();  // the fields reach the host before the flag says they are there
    atomicExch_system(&f->flag, kFaultPublished);
  }
}

/// Element offsets of flat index i in each of N operands of g.
template <int N>
__device__ __forceinline__ void offsets(const Geometry& g, int64_t i, int64_t (&o)[N]) {
#pragma unroll
  for (int k = 0; k < N; ++k) o[k] = 0;
  if (g.ndim == 1) {  // the common case needs no division
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] = i * g.strides[k][0];
    return;
  }
  for (int d = g.ndim - 1; d >= 0; --d) {
    const int64_t size = g.sizes[d];
    const int64_t idx = i % size;
    i /= size;
#pragma unroll
    for (int k = 0; k < N; ++k) o[k] += idx * g.strides[k][d];
  }
}

/// 16 bytes of T, for vectorized loads and stores of contiguous aligned data.
template <class T>
struct alignas(16) Vec {
  static constexpr int kN = 16 / static_cast<int>(sizeof(T));
  T v[kN];
};

// ---- math in float or double ----
#define TS_MATH1(name, f32, f64)                                    \
  __device__ __forceinline__ float name(float x) { return f32(x); } \
  __device__ __forceinline__ double name(double x) { return f64(x); }
TS_MATH1(m_exp, expf, exp)
TS_MATH1(m_exp2, exp2f, exp2)
TS_MATH1(m_expm1, expm1f, expm1)
TS_MATH1(m_log, logf, log)
TS_MATH1(m_log2, log2f, log2)
TS_MATH1(m_log1p, log1pf, log1p)
TS_MATH1(m_sqrt, sqrtf, sqrt)
TS_MATH1(m_sin, sinf, sin)
TS_MATH1(m_cos, cosf, cos)
TS_MATH1(m_tan, tanf, tan)
TS_MATH1(m_tanh, tanhf, tanh)
TS_MATH1(m_erf, erff, erf)
TS_MATH1(m_abs, fabsf, fabs)
TS_MATH1(m_floor, floorf, floor)
TS_MATH1(m_ceil, ceilf, ceil)
TS_MATH1(m_rint, rintf, rint)
TS_MATH1(m_trunc, truncf, trunc)
#undef TS_MATH1
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }
__device__ __forceinline__ float m_atan2(float a, float b) { return atan2f(a, b); }
__device__ __forceinline__ double m_atan2(double a, double b) { return atan2(a, b); }

}  // namespace tessera::cuda::k
