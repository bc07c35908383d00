#pragma once
// oneDNN behind the CPU kernels (docs/design/onednn.md). This header names no oneDNN type, so
// the kernels include it whether or not oneDNN is built; without oneDNN, onednn_stub.cpp
// answers built() == false and every call throws NotBuiltError.
#include <cstdint>
#include <string>

namespace tessera::cpu::onednn {

/// Whether Tessera was compiled against oneDNN.
bool built();
/// "oneDNN 2.6.3 (cpu runtime: OpenMP)", or "not built".
std::string version();

/// From this many multiply-adds oneDNN's sgemm beats OpenBLAS's on the machines measured
/// (below it, oneDNN's per-call set-up dominates; benchmarks/README.md).
inline constexpr int64_t kSgemmMinWork = int64_t{1} << 14;

/// C (m x n, row stride ldc) = op(A) @ op(B) + beta * C, all row-major, on the calling thread
/// only (callers split large products over Tessera's pool; see gemm.h).
void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace tessera::cpu::onednn
