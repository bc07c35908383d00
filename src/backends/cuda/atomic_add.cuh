#pragma once
// Private to index.cu and index_adv.cu: *p += v atomically in every dtype, each add the CPU's
// add for one element (backends/cpu/indexing.cpp's add_values), so scatter_add and index_put's
// accumulate give the CPU's sums up to the order of the adds. 16-bit floats add one at a time
// in 16 bits, as on the CPU and in PyTorch: each add is rounded once to nearest even (a float32
// sum rounded to 16 bits is that correctly rounded add), so a long run of duplicates rounds
// once per add and the order can change the result by an ulp of the total per add.
#include "backends/cuda/device.cuh"
#include "backends/cuda/sort_keys.cuh"

namespace tessera::cuda::k {

/// complex64 for the atomics: two float32 parts, each added atomically.
struct C64 {
  float re, im;
};

// `code` names the dtype for the compare-and-swap path (add_small); the others ignore it.
__device__ __forceinline__ void atomic_acc(int* p, int v, int) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_acc(float* p, float v, int) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_acc(double* p, double v, int) { atomicAdd(p, v); }
// Two's complement sums wrap the same as unsigned ones.
__device__ __forceinline__ void atomic_acc(int64_t* p, int64_t v, int) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}
__device__ __forceinline__ void atomic_acc(C64* p, C64 v, int) {
  atomicAdd(&p->re, v.re);
  atomicAdd(&p->im, v.im);
}

/// A 1- or 2-byte element (bits U) += v: add_small's sum in the element's field of its aligned
/// 32-bit word, retried until no other thread changed the word. The word stays inside the
/// allocation (blocks start 512-byte aligned and are rounded to 512 B); a neighbour in the same
/// word changed by another thread's atomic makes the compare fail and the add retry.
template <class U>
__device__ __forceinline__ void cas_add(U* p, U v, int code) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto* word = reinterpret_cast<unsigned int*>(addr & ~uintptr_t{3});
  const auto shift = static_cast<unsigned>(addr & 3) * 8;
  unsigned int old = *word, assumed;
  do {
    assumed = old;
    old = atomicCAS(word, assumed,
                    add_into_word(assumed, shift, static_cast<int>(sizeof(U)), code, v));
  } while (old != assumed);
}
// bool, uint8, int8 (U = uint8_t) and int16 (uint16_t).
__device__ __forceinline__ void atomic_acc(uint8_t* p, uint8_t v, int code) { cas_add(p, v, code); }
__device__ __forceinline__ void atomic_acc(uint16_t* p, uint16_t v, int code) {
  cas_add(p, v, code);
}
// float16: the hardware's 16-bit add (atom.add.noftz.f16, sm_70 on: every target we build),
// rounded to nearest even without flushing subnormals: add_small's result.
__device__ __forceinline__ void atomic_acc(__half* p, __half v, int) { atomicAdd(p, v); }
// bfloat16: the hardware's add from sm_90 (atom.add.noftz.bf16); the sm_75 PTX (JIT-compiled
// for the GPUs between) adds through the 32-bit word, the same rounding.
__device__ __forceinline__ void atomic_acc(__nv_bfloat16* p, __nv_bfloat16 v, int code) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  (void)code;
  atomicAdd(p, v);
#else
  cas_add(reinterpret_cast<uint16_t*>(p), __bfloat16_as_ushort(v), code);
#endif
}

/// The element type the atomics add for each dtype code (kBool ... kF64, kC64).
template <int Code>
struct AtomicType;
template <>
struct AtomicType<kBool> {
  using T = uint8_t;
};
template <>
struct AtomicType<kU8> {
  using T = uint8_t;
};
template <>
struct AtomicType<kI8> {
  using T = uint8_t;
};
template <>
struct AtomicType<kI16> {
  using T = uint16_t;
};
template <>
struct AtomicType<kI32> {
  using T = int;
};
template <>
struct AtomicType<kI64> {
  using T = int64_t;
};
template <>
struct AtomicType<kF16> {
  using T = __half;
};
template <>
struct AtomicType<kBF16> {
  using T = __nv_bfloat16;
};
template <>
struct AtomicType<kF32> {
  using T = float;
};
template <>
struct AtomicType<kF64> {
  using T = double;
};
template <>
struct AtomicType<kC64> {
  using T = C64;
};

}  // namespace tessera::cuda::k
