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
inline constexpr int kLayerNormWarpRowsPerBlock = 8;
/// Shared memory a block may use without cudaFuncSetAttribute: 48 KiB, static and dynamic
/// together (a launch past it fails with cudaErrorInvalidValue).
inline constexpr int64_t kLayerNormSharedLimit = 48 * 1024;
/// The block-row kernels' static shared memory: the partial sums of up to 32 warps.
inline constexpr int kLayerNormBlockParts = 32;

/// How the row kernels of layer_norm (arrays = 1: x) and its backward (arrays = 2: dy and x)
/// launch for `rows` rows of n elements of `elem` bytes, accumulated in `acc` bytes (float or
/// double): a warp per row or a block per row, 16-byte vectors when `aligned` (every pointer)
/// and n a multiple of the vector, and the rows cached in dynamic shared memory when that fits
/// beside the kernel's static shared memory.
struct LayerNormRowLaunch {
  bool warp = false, vec = false, cache = false;
  unsigned threads = 0, blocks = 0;
  int64_t smem = 0;         ///< dynamic shared memory bytes
  int64_t static_smem = 0;  ///< the kernel's own (block rows: kLayerNormBlockParts accumulators)
};
inline LayerNormRowLaunch layer_norm_row_launch(int64_t rows, int64_t n, int elem, int acc,
                                                bool aligned, int arrays) {
  LayerNormRowLaunch l;
  const int64_t vec_n = 16 / elem;
  l.warp = n <= kLayerNormWarpRow;
  l.vec = aligned && n % vec_n == 0;
  const int64_t per_group = static_cast<int64_t>(arrays) * n * elem;
  int64_t groups = 1;
  if (l.warp) {
    l.threads = 32 * kLayerNormWarpRowsPerBlock;
    groups = kLayerNormWarpRowsPerBlock;
  } else {
    // About four vectors (or elements) per thread, 128 to 1024 threads.
    const int64_t units = (l.vec ? n / vec_n : n + 3) / 4;
    unsigned t = 128;
    while (t < 1024 && t < units) t *= 2;
    l.threads = t;
    l.static_smem = static_cast<int64_t>(kLayerNormBlockParts) * acc;
  }
  l.cache = per_group * groups + l.static_smem <= kLayerNormSharedLimit;
  l.smem = l.cache ? per_group * groups : 0;
  const int64_t b = (rows + groups - 1) / groups;
  l.blocks = static_cast<unsigned>(std::clamp<int64_t>(b, 1, int64_t{1} << 30));
  return l;
}

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
