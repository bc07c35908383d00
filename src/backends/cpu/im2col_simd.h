#pragma once
// SIMD hot path of the convolutions' im2col (Highway, runtime dispatch to the best target).
#include <cstdint>

namespace tessera::cpu {

/// One float32 image item, 2-D (or 1-D with h = 1), unit stride and dilation along the width.
struct Im2ColRows {
  const float* img;
  int64_t c0, c1;          ///< channels to unfold
  int64_t cs, rs;          ///< channel and row strides of img (columns are contiguous)
  int64_t h, w;            ///< image size
  int64_t kh, kw;          ///< kernel size
  int64_t sh, dh, ph, pw;  ///< stride and dilation along the height, padding
  int64_t oh, ow;          ///< output grid
  float* cols;             ///< row (c * kh + i) * kw + j at cols + that * ld
  int64_t ld;
};

/// cols[((c * kh + i) * kw + j) * ld + y * ow + x] = img[c, y * sh - ph + i * dh, x - pw + j],
/// zero where that falls outside the image: the same matrix as the generic im2col.
void simd_im2col_f32(const Im2ColRows& a);

}  // namespace tessera::cpu
