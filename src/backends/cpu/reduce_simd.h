#pragma once
// SIMD hot paths of the reduce family (Highway, runtime dispatch to the best target).
#include <cstdint>

namespace tessera::cpu {

/// Sum of n contiguous floats: float lanes with independent accumulators per block of 1024,
/// blocks added in double (error bounded by the block, not by n).
double simd_sum_f32(const float* p, int64_t n);
/// Sum of n contiguous doubles with independent vector accumulators.
double simd_sum_f64(const double* p, int64_t n);

}  // namespace tessera::cpu
