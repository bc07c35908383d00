// GEMM over our thread pool with single-threaded BLAS calls (gemm.h).
#include "gemm.h"

#include <algorithm>

#include "backends/cpu/onednn/onednn.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {
namespace {

// One single-threaded BLAS call per type. float goes to oneDNN's sgemm when it is built and the
// product is not tiny: its AVX-512 kernels run about twice OpenBLAS's AVX2 ones on one core, and
// OpenBLAS keeps to AVX2 wherever OPENBLAS_CORETYPE says so (docs/design/onednn.md).
void blas(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  if (onednn::built() && int64_t{m} * n * k >= onednn::kSgemmMinWork)
    onednn::sgemm(ta != CblasNoTrans, tb != CblasNoTrans, m, n, k, a, lda, b, ldb, beta, c, ldc);
  else
    cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, 1.f, a, lda, b, ldb, beta, c, ldc);
}
void blas(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc);
}
void blas(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, const Complex64* a, int lda,
          const Complex64* b, int ldb, Complex64 beta, Complex64* c, int ldc) {
  const Complex64 one(1.f, 0.f);
  cblas_cgemm(CblasRowMajor, ta, tb, m, n, k, &one, a, lda, b, ldb, &beta, c, ldc);
}

int as_int(int64_t v) { return static_cast<int>(v); }

bool blas_single_threaded() {
#ifdef OPENBLAS_VERSION
  return openblas_get_num_threads() == 1;
#else
  return false;  // another vendor threads each call itself
#endif
}

template <class T>
void split_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const T* a,
                int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const bool by_rows = m >= n;
  const int64_t extent = by_rows ? m : n, threads = num_threads();
  // Split only when every thread gets a worthwhile share (even a memory-bound 1 x 1024 x 1024
  // product gains from two threads).
  if (threads < 2 || extent < 32 || m * n * k < kGemmSplitWork || !blas_single_threaded()) {
    blas(ta, tb, as_int(m), as_int(n), as_int(k), a, as_int(lda), b, as_int(ldb), beta, c,
         as_int(ldc));
    return;
  }
  parallel_for(extent, (extent + threads - 1) / threads, [&](int64_t lo, int64_t hi) {
    if (by_rows)  // row i of op(A) starts at i * lda (NoTrans) or at i (Trans)
      blas(ta, tb, as_int(hi - lo), as_int(n), as_int(k), a + (ta == CblasNoTrans ? lo * lda : lo),
           as_int(lda), b, as_int(ldb), beta, c + lo * ldc, as_int(ldc));
    else  // column j of op(B) starts at j (NoTrans) or at j * ldb (Trans)
      blas(ta, tb, as_int(m), as_int(hi - lo), as_int(k), a, as_int(lda),
           b + (tb == CblasNoTrans ? lo : lo * ldb), as_int(ldb), beta, c + lo, as_int(ldc));
  });
}

}  // namespace

void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  split_gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  split_gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}
void gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k,
          const Complex64* a, int64_t lda, const Complex64* b, int64_t ldb, Complex64 beta,
          Complex64* c, int64_t ldc) {
  split_gemm(ta, tb, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

void use_single_threaded_blas() {
#ifdef OPENBLAS_VERSION
  openblas_set_num_threads(1);
#endif
}

}  // namespace tessera::cpu
