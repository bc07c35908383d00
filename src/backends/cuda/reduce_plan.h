#pragma once
// How a reduction runs on CUDA (reduce.cu and the fold_rows.cuh driver of reduce_int.cu,
// reduce_stats.cu, reduce_complex.cu), as plain C++ (no CUDA header) so that a host test checks
// it. The input is the [outer, reduced] view of k::reduce: n_out outputs, output o starting at
// offset outer(o), its element j at inner(j) from there. The plan is a function of these
// geometries alone (never of the device or of timing), so results are reproducible.
//
// One kernel (fold_tiles.cuh) runs both shapes of block: bx x by threads cover a tile of bx
// consecutive outputs (threadIdx.x) with by threads each (threadIdx.y); thread (x, y) folds
// elements begin + y, begin + y + by, ... of its part in order, then the block combines each
// output's by partials in a fixed order.
// - Rows (bx = 1, by = 32, 128 or 256): a block per output, its threads along the reduced
//   elements. Coalesced when the reduced dims are innermost in memory.
// - Columns (bx >= 2): when the innermost kept dim has input stride 1 and the innermost reduced
//   dim does not (x of shape (B, C) summed over dim 0: every Linear layer's bias gradient).
//   Along a row, a warp would read 32 elements a row apart (32 memory sectors per load); here
//   a warp reads bx adjacent outputs at 32 / bx adjacent reduced positions (bx < 32), or 32
//   adjacent outputs: one contiguous piece for a dense (B, C) input with C <= 32.
//
// Long reductions with few blocks are cut into `splits` parts (gridDim.y) of `chunk` elements;
// part p of output o leaves its accumulator in work[o * splits + p] (both paths: the same
// second pass, a block per output, combines them in a fixed order).
#include <algorithm>
#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

/// Threads per block of both paths (device.cuh's kThreads).
inline constexpr int64_t kPlanThreads = 256;
/// Rows at least this long, with few outputs, are split into parts of kPartLength.
inline constexpr int64_t kSplitRow = int64_t{1} << 15;
inline constexpr int64_t kPartLength = int64_t{1} << 14;
/// Blocks a split reduction aims at (enough loads in flight to fill a large GPU).
inline constexpr int64_t kTargetBlocks = 2048;
/// Fewest elements per thread in a part of a split column reduction (the row path's parts
/// give 64 too: 16384 elements over 256 threads); columns shorter than two parts stay whole.
inline constexpr int64_t kColumnPerThread = 64;
/// Largest gridDim.x / gridDim.y a plan asks for.
inline constexpr int64_t kMaxGrid = 65535;

struct ReducePlan {
  bool columns = false;
  int splits = 1;       ///< parts of each output's reduced elements
  int64_t chunk = 0;    ///< reduced elements per part (the last part may be shorter)
  unsigned bx = 1;      ///< outputs per block (threadIdx.x), a power of two; 1 for rows
  unsigned by = 32;     ///< threads per output (threadIdx.y), a power of two
  unsigned grid_x = 1;  ///< tiles launched (gridDim.x; a grid-stride loop covers the rest)
  int64_t work = 0;     ///< accumulators of the workspace: n_out * splits when split, else 0
};

/// The smallest power of two >= n (1 for n <= 1).
inline int64_t pow2_at_least(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

/// Parts of a row on the row path: rows of at least kSplitRow elements with fewer than
/// kTargetBlocks / 2 outputs, in parts of about kPartLength, about kTargetBlocks blocks in all.
inline int row_splits(int64_t n_out, int64_t n_red) {
  if (n_red < kSplitRow || n_out >= kTargetBlocks / 2) return 1;
  const int64_t by_length = (n_red + kPartLength - 1) / kPartLength;
  return static_cast<int>(std::min(by_length, std::max<int64_t>(1, kTargetBlocks / n_out)));
}

/// Threads of a row's block: the row path's classes (a multiple of 32, for the shuffle tree).
inline int64_t row_threads(int64_t n_red) { return n_red <= 32 ? 32 : n_red <= 128 ? 128 : 256; }

/// Whether the column path applies: the kept dims end in a contiguous run (input stride 1)
/// that the reduced dims stride over (their innermost stride is not 1; none for one element).
inline bool column_layout(const Geometry& outer, const Geometry& inner) {
  if (outer.numel < 2 || outer.strides[0][outer.ndim - 1] != 1) return false;
  return inner.ndim == 0 || inner.strides[0][inner.ndim - 1] != 1;
}

/// The row path's plan: a block of row_threads(n_red) threads per output, or of kPlanThreads
/// per part of a split row.
inline ReducePlan row_plan(int64_t n_out, int64_t n_red) {
  ReducePlan p;
  p.splits = row_splits(n_out, n_red);
  p.chunk = (n_red + p.splits - 1) / p.splits;
  p.bx = 1;
  p.by = static_cast<unsigned>(p.splits > 1 ? kPlanThreads : row_threads(n_red));
  p.grid_x = static_cast<unsigned>(std::clamp<int64_t>(n_out, 1, kMaxGrid));
  p.work = p.splits > 1 ? n_out * p.splits : 0;
  return p;
}

/// The column path's plan for n_out outputs whose innermost kept dim has `run` elements
/// (input stride 1), each of n_red elements.
inline ReducePlan column_plan(int64_t n_out, int64_t run, int64_t n_red) {
  ReducePlan p;
  p.columns = true;
  // A warp's width of the contiguous run, then the reduced positions a block takes (no more
  // than there are), then outputs to fill the block (no more than there are).
  const int64_t width = std::min<int64_t>(32, pow2_at_least(run));
  const int64_t by = std::min(kPlanThreads / width, pow2_at_least(n_red));
  const int64_t bx = std::min(kPlanThreads / by, pow2_at_least(n_out));
  const int64_t tiles = (n_out + bx - 1) / bx;
  // Few tiles and long columns: parts of at least kColumnPerThread elements per thread, about
  // kTargetBlocks blocks in all.
  int64_t splits = 1;
  if (tiles < kTargetBlocks / 2 && n_red >= 2 * by * kColumnPerThread)
    splits = std::min(n_red / (by * kColumnPerThread), (kTargetBlocks + tiles - 1) / tiles);
  p.chunk = (n_red + splits - 1) / splits;
  p.splits = static_cast<int>(p.chunk > 0 ? (n_red + p.chunk - 1) / p.chunk : 1);  // none empty
  p.bx = static_cast<unsigned>(bx);
  p.by = static_cast<unsigned>(by);
  p.grid_x = static_cast<unsigned>(std::clamp<int64_t>(tiles, 1, kMaxGrid));
  p.work = p.splits > 1 ? n_out * p.splits : 0;
  return p;
}

/// The plan of a reduction (the column path where column_layout says so).
inline ReducePlan plan_reduce(const Geometry& outer, const Geometry& inner) {
  if (!column_layout(outer, inner)) return row_plan(outer.numel, inner.numel);
  return column_plan(outer.numel, outer.sizes[outer.ndim - 1], inner.numel);
}

}  // namespace tessera::cuda::k
