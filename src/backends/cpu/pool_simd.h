#pragma once
// SIMD hot path of max pooling (Highway, runtime dispatch to the best target).
#include <cstdint>

namespace tessera::cpu {

/// One row of n 2 x 2 windows with stride 2 over the float rows r0 and r1 = r0 + w of a plane
/// w wide (2n elements each): out[j] is the max of r0[2j], r0[2j+1], r1[2j], r1[2j+1] by
/// max_pool's rule (the first maximum in that order; a NaN takes over from anything) and
/// index[j] its plane index, first + 2j + (0, 1, w or w + 1), first being r0[0]'s.
void simd_max_pool_2x2_f32(const float* r0, const float* r1, int64_t n, int64_t first, int32_t w,
                           float* out, int64_t* index);

}  // namespace tessera::cpu
