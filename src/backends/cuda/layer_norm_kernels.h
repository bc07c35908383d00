#pragma once
// The layer_norm kernels' interface (layer_norm.cu), in the style of kernels.h: pointers and
// sizes only, no Tensor and no CUDA header. Every array is contiguous: `rows` rows of `n`
// elements. Float dtypes only (codes kF16 ... kF64 of kernels.h); the statistics (mean, rstd)
// and the accumulation are float32 for the 16-bit floats and float32, float64 for float64.
#include <algorithm>
#include <cstdint>

namespace tessera::cuda::k {

/// Rows up to this long get a warp each (eight rows per block); longer rows a block each.
inline constexpr int64_t kLayerNormWarpRow = 1024;

/// y = (x - mean) * rstd * w + b per row (w, b may be null; b only with w), and the rows'
/// mean and rstd = 1 / sqrt(biased var + eps).
void layer_norm(int code, const void* x, const void* w, const void* b, void* y, void* mean,
                void* rstd, int64_t rows, int64_t n, double eps, void* stream);

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) per row, g = dy * w (dy when w is null),
/// xhat = (x - mean) * rstd.
void layer_norm_backward(int code, const void* dy, const void* x, const void* mean,
                         const void* rstd, const void* w, void* dx, int64_t rows, int64_t n,
                         void* stream);

/// The parts the rows are split into for the weight and bias gradients: a fixed function of
/// the shape (so results do not depend on the GPU), about 1024 blocks of 32 columns in all.
inline int layer_norm_weight_grad_parts(int64_t rows, int64_t n) {
  const int64_t col_blocks = std::max<int64_t>(1, (n + 31) / 32);
  const int64_t by_rows = (rows + 63) / 64, by_grid = std::max<int64_t>(1, 1024 / col_blocks);
  return static_cast<int>(std::clamp<int64_t>(std::min(by_rows, by_grid), 1, 65535));
}

/// dw = sum over rows of dy * xhat, db = sum over rows of dy (columns of 32, rows split into
/// `parts` summed in a fixed order). parts > 1 needs `work`: 2 * parts * n accumulators
/// (float32, or float64 for kF64).
void layer_norm_weight_grads(int code, const void* dy, const void* x, const void* mean,
                             const void* rstd, void* dw, void* db, void* work, int parts,
                             int64_t rows, int64_t n, void* stream);

}  // namespace tessera::cuda::k
