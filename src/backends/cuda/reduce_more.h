#pragma once
// The launchers of the reductions and scans beyond sum / mean / amax / amin of floats
// (reduce_int.cu, reduce_stats.cu, argreduce.cu, scan.cu), in the style of kernels.h: pointers,
// sizes and geometries only, no Tensor and no CUDA header. Rows of a reduction are the
// [outer, reduced] view of k::reduce: row o starts at offset `outer`(o) of `in`, its element j
// at `inner`(j) from there; results go to out[o] (contiguous).
#include <algorithm>
#include <cstdint>

#include "backends/cuda/kernels.h"
#include "backends/cuda/reduce_plan.h"

namespace tessera::cuda::k {

/// Workspace bytes per part of a split row (the largest accumulator, rounded up).
inline constexpr int64_t kPartBytes = 32;

/// Whether a code is bool or an integer (the integer kernels' dtypes).
inline bool int_or_bool_code(int code) { return code >= kBool && code <= kI64; }

enum IntReduceOp : int { kISum, kIProd, kIMax, kIMin, kNumIntReduce };
/// Reductions of bool and integer inputs with the CPU's rules: sum and prod accumulate in
/// wrapping 64-bit and write int64; max and min compare as int64 and write the input's dtype.
/// `plan`: k::plan_reduce(outer, inner); `work`: plan.work * kPartBytes bytes (see k::reduce).
void reduce_int(int op, int code, const void* in, void* out, const Geometry& outer,
                const Geometry& inner, int64_t n_out, int64_t n_red, const ReducePlan& plan,
                void* work, void* stream);

enum StatOp : int { kSProd, kSVar, kSStd, kSLogSumExp, kSNorm, kNumStat };
/// prod, var / std (param: the correction), logsumexp, norm (param: p) of float inputs (kF16 ...
/// kF64), written in the input's dtype; accumulation in double as on the CPU (see
/// reduce_ops.cuh). `plan` and `work` as for reduce_int.
void reduce_stat(int op, int code, const void* in, void* out, const Geometry& outer,
                 const Geometry& inner, int64_t n_out, int64_t n_red, double param,
                 const ReducePlan& plan, void* work, void* stream);

enum ComplexReduceOp : int { kZSum, kZMean, kZProd, kZNorm, kNumComplexReduce };
/// sum, mean, prod (complex64 out) and norm (param: p; float32 out) of complex64 inputs,
/// accumulated in complex<double> (norm: double) as on the CPU (complex_reduce_ops.cuh).
/// `plan` and `work` as for reduce_int.
void reduce_complex(int op, const void* in, void* out, const Geometry& outer, const Geometry& inner,
                    int64_t n_out, int64_t n_red, double param, const ReducePlan& plan, void* work,
                    void* stream);

/// max / min along the reduced dims with the index of the first extreme (a NaN is the
/// extreme), every real dtype: `values` (the input's dtype; null: argmax / argmin only) and
/// `indices` (int64). Rows must not be empty.
void extreme_dim(bool max, int code, const void* in, void* values, int64_t* indices,
                 const Geometry& outer, const Geometry& inner, int64_t n_out, int64_t n_red,
                 void* stream);

/// How a scan of n_lanes lanes of n elements runs (a function of the shape only, so results
/// are reproducible):
/// - kScanColumns: a thread per lane, in order (the CPU's order exactly), when lanes lie side by
///   side in memory (the scanned dim is not the innermost one: coalesced loads) and are many
///   enough to fill a GPU with threads (fewer, each thread's sequential loop would dominate);
/// - kScanBlocks: a block per lane (parts == 1), or per part of a long lane (parts > 1: part
///   totals, then their running values, then each part scanned from its carry).
enum ScanPath : int { kScanColumns, kScanBlocks };
struct ScanPlan {
  int path = kScanBlocks;
  int parts = 1;
  int64_t chunk = 0;  ///< elements per part
};
inline constexpr int64_t kColumnLanes = 16384;
inline constexpr int64_t kScanSplit = int64_t{1} << 15;
inline constexpr int64_t kScanPart = int64_t{1} << 14;
inline constexpr int64_t kScanTargetBlocks = 2048;

/// side_by_side: adjacent lanes are adjacent elements in the input and the output.
inline ScanPlan scan_plan(int64_t n_lanes, int64_t n, bool side_by_side) {
  ScanPlan p;
  p.chunk = n;
  if (side_by_side && n_lanes >= kColumnLanes) {
    p.path = kScanColumns;
    return p;
  }
  if (n >= kScanSplit && n_lanes < kScanTargetBlocks / 2) {
    const int64_t by_length = (n + kScanPart - 1) / kScanPart;
    p.parts = static_cast<int>(std::min(
        by_length, std::max<int64_t>(1, kScanTargetBlocks / std::max<int64_t>(n_lanes, 1))));
    p.chunk = (n + p.parts - 1) / p.parts;
    p.parts = static_cast<int>((n + p.chunk - 1) / p.chunk);  // no empty trailing part
  }
  return p;
}

/// cumsum (or cumprod when prod) along lanes: lane r starts at offsets `lanes`(r) (operand 0:
/// out, 1: in) and steps by out_stride / in_stride. Bool and integers accumulate in wrapping
/// 64-bit and write int64; floats accumulate in double and write the input's dtype (the CPU's
/// rules); complex64 (code kC64) accumulates in complex<double> and writes complex64.
/// `work`: n_lanes * plan.parts accumulators (8 bytes each, 16 for complex64) when
/// plan.parts > 1.
void scan(bool prod, int code, const void* in, void* out, const Geometry& lanes, int64_t n,
          int64_t in_stride, int64_t out_stride, const ScanPlan& plan, void* work, void* stream);

}  // namespace tessera::cuda::k
