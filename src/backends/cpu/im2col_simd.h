#pragma once
// SIMD hot paths of the convolutions' im2col and col2im (Highway, runtime dispatch to the best
// target).
#include <cstdint>

namespace tessera::cpu {

/// The unfolding of one float32 image item, 2-D (or 1-D with h = 1) with unit stride and
/// dilation along the width and contiguous image rows. Column-matrix row (c * kh + i) * kw + j
/// starts at cols + that * ld and holds the oh x ow output grid.
struct ColGeom {
  int64_t c0, c1;          ///< channels to unfold
  int64_t cs, rs;          ///< channel and row strides of the image
  int64_t h, w;            ///< image size
  int64_t kh, kw;          ///< kernel size
  int64_t sh, dh, ph, pw;  ///< stride and dilation along the height, padding
  int64_t oh, ow;          ///< output grid
  int64_t ld;              ///< leading dimension of the column matrix
};

/// cols[((c * kh + i) * kw + j) * ld + y * ow + x] = img[c, y * sh - ph + i * dh, x - pw + j],
/// zero where that falls outside the image: the same matrix as the generic im2col.
void simd_im2col_f32(const ColGeom& g, const float* img, float* cols);
/// The adjoint: img[c, ...] += every column-matrix entry that reads it (col2im).
void simd_col2im_f32(const ColGeom& g, const float* cols, float* img);

}  // namespace tessera::cpu
