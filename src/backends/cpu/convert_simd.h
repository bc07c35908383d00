#pragma once
// SIMD conversions of contiguous rows between float32/float64 and float16/bfloat16 (Highway,
// runtime dispatch to the best target); the cast kernel's fast path (copy.cpp).
#include <cstdint>

#include "tessera/core/dtype.h"

namespace tessera::cpu {

using ConvertRowFn = void (*)(const void* src, void* dst, int64_t n);

/// The row converter from `from` to `to`, bitwise equal to the scalar convert<To, From>, or
/// nullptr where there is none: float32/float64 <-> float16/bfloat16 and float16 <-> bfloat16.
ConvertRowFn simd_convert_fn(DType from, DType to);

// The per-target table behind simd_convert_fn.
enum ConvertPair : int {
  kF32ToF16,
  kF32ToBF16,
  kF16ToF32,
  kBF16ToF32,
  kF64ToF16,
  kF64ToBF16,
  kF16ToF64,
  kBF16ToF64,
  kF16ToBF16,
  kBF16ToF16,
  kNumConvertPairs
};
struct ConvertTable {
  ConvertRowFn fn[kNumConvertPairs];
};

}  // namespace tessera::cpu
