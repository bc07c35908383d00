#pragma once
// GEMM for the CPU kernels (matmul, convolution). OpenBLAS runs single-threaded: its worker
// threads keep spinning after each call and take the cores from our pool's next op. A large
// product is instead cut into row blocks (column blocks when it is wider than tall), one
// single-threaded BLAS call per thread of our pool.
#include <cblas.h>

#include <cstdint>

#include "tessera/core/dtype.h"

namespace tessera::cpu {

/// C (m x n, row stride ldc) = op(A) @ op(B) + beta * C, row-major as cblas_?gemm (leading
/// dimensions at least 1). Sizes and leading dimensions must fit in an int.
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
          const Complex64* a, int64_t lda, const Complex64* b, int64_t ldb, Complex64 beta,
          Complex64* c, int64_t ldc);

/// From this many multiply-adds gemm() splits one product over the threads; callers with many
/// smaller products (a batch) run those in parallel instead.
inline constexpr int64_t kGemmSplitWork = int64_t{1} << 20;

/// Makes OpenBLAS single-threaded (once, when the CPU kernels are registered).
void use_single_threaded_blas();

}  // namespace tessera::cpu
