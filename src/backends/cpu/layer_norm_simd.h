#pragma once
// SIMD rows of layer_norm and layer_norm_backward (Highway, runtime dispatch to the best
// target). A row is n contiguous values; sums run in vector lanes of the row's type, folded
// into double every 1024 elements, so float rows of any length keep float-level error.
#include <cstdint>

namespace tessera::cpu {

/// mean and rstd = 1 / sqrt(biased var + eps) of the row (two passes: the sum, then the
/// squared deviations from the mean, the row being in cache by then), and
/// y = (x - mean) * rstd * w + b (w and b may be null; b only with w).
void simd_layer_norm_row_f32(const float* x, int64_t n, double eps, const float* w, const float* b,
                             float* y, float* mean, float* rstd);
void simd_layer_norm_row_f64(const double* x, int64_t n, double eps, const double* w,
                             const double* b, double* y, double* mean, double* rstd);

/// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w (dy when w is null) and
/// xhat = (x - mean) * rstd; when dw is not null, also dw += dy * xhat and db += dy (the
/// caller's accumulators for the weight and bias gradients).
void simd_layer_norm_backward_row_f32(const float* dy, const float* x, int64_t n, float mean,
                                      float rstd, const float* w, float* dx, float* dw, float* db);
void simd_layer_norm_backward_row_f64(const double* dy, const double* x, int64_t n, double mean,
                                      double rstd, const double* w, double* dx, double* dw,
                                      double* db);

}  // namespace tessera::cpu
