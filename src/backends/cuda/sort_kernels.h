#pragma once
// The interface of the sort and advanced-indexing device code (sort.cu, index_adv.cu), in the
// style of kernels.h: pointers, sizes and strides only, no Tensor and no CUDA header. The
// per-element rules (sort keys, wrapping indices, accumulating adds) are in sort_keys.cuh.
#include <cstddef>
#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

// The launchers of sort.cu return the first CUDA error they met (0: none) for the host to raise.

/// Device scratch memory for the launchers: get(ctx, bytes) returns `bytes` on the current
/// device, valid for the work queued on the current stream (the host hands out blocks of the
/// caching allocator and frees them after the call: stream order keeps that safe).
struct Scratch {
  void* (*get)(void* ctx, size_t bytes) = nullptr;
  void* ctx = nullptr;
  template <class T>
  T* take(int64_t n) const {
    return static_cast<T*>(get(ctx, static_cast<size_t>(n) * sizeof(T)));
  }
};

/// How a dtype's bits become an unsigned key of the same width whose order is the CPU's sort
/// order (sort_key in sort_keys.cuh).
enum KeyKind : int { kKeyUnsigned, kKeySigned, kKeyFloat };
struct KeyCode {
  int width = 4;  ///< bytes: 1, 2, 4 or 8
  int kind = kKeyUnsigned;
  uint64_t inf = 0;  ///< kKeyFloat: the bits of +inf (larger magnitudes are NaN)
};

/// count lines of len elements along the sort dim. Line l starts at outer(l): operand 0 in x,
/// 1 in the values output, 2 in the indices output; element j of a line is j * step further.
struct SortLines {
  Geometry outer;
  int64_t count = 0, len = 0, k = 0;
  int64_t x_step = 0, v_step = 0, i_step = 0;
};
/// Sorts every line stably by key (descending: the keys complemented, so NaN comes first and
/// ties keep their order) and writes the first k of each: values (may be null: argsort) and
/// positions in the line. All lines go through one device-wide radix sort, each key carrying
/// its line in the bits above it (8-byte keys: a second stable pass by line).
int sort_lines(const KeyCode& key, bool descending, const void* x, void* values, int64_t* indices,
               const SortLines& l, const Scratch& s, void* stream);

/// unique, first phase, over the n elements of x (g: x's shape, operand 0; flat row-major
/// order): pos = the positions sorted by key (stable), group[j] = the number of groups among
/// sorted elements 0..j (a new group where the key changes, and at every NaN: NaN != NaN).
/// The group count is group[n - 1], which the host reads back.
int unique_sort(const KeyCode& key, const void* x, const Geometry& g, int64_t n, int64_t* pos,
                int64_t* group, const Scratch& s, void* stream);
/// unique, second phase: values[g] = x at the first sorted element of group g (the first in
/// input order: the sort is stable), inverse[p] = the group of flat position p, counts[g].
int unique_write(int width, const void* x, const Geometry& g, int64_t n, int64_t groups,
                 const int64_t* pos, const int64_t* group, void* values, int64_t* inverse,
                 int64_t* counts, const Scratch& s, void* stream);

/// nonzero, first phase: scan[i] = how many of the flat (row-major) elements 0..i of x have
/// (bits & mask) != 0 (mask drops the sign bit of floats: -0.0 is zero, NaN is not).
int nonzero_scan(int width, uint64_t mask, const void* x, const Geometry& g, int64_t* scan,
                 const Scratch& s, void* stream);
/// The sizes of a tensor's dims (nonzero's coordinates).
struct Dims {
  int n = 0;
  int64_t size[kMaxDims] = {};
};
/// nonzero, second phase: row r of out (count, dims.n) = the coordinates of the r-th hit.
int nonzero_write(const int64_t* scan, int64_t n, const Dims& dims, int64_t* out, void* stream);

/// winner[i] = 1 when item i has the last (largest) i among the items with its key, else 0;
/// items whose key is `invalid` (all keys are <= invalid) never win. Deterministic: the
/// sequential order of the CPU's writes, where the last write to an element stays.
int last_of_keys(const uint64_t* keys, int64_t n, uint64_t invalid, uint8_t* winner,
                 const Scratch& s, void* stream);

// ---- advanced indexing (index_adv.cu) ---------------------------------------------------------

/// Fault codes of these kernels (kernels.h's IndexOp numbers the others).
enum AdvIndexOp : int32_t { kIndex = 16, kIndexPut, kIndexPutInplace, kScatter };

/// k index tensors (int64, contiguous, n items each) selecting along k dims of a tensor of
/// those sizes and element strides; lin: the row-major multipliers of those dims (keys).
struct AdvIndex {
  int k = 0;
  int32_t op = 0;
  const int64_t* idx[kMaxDims] = {};
  int64_t size[kMaxDims] = {}, stride[kMaxDims] = {}, lin[kMaxDims] = {};
};

/// out (operand 0) = x (operand 1, zero strides on the indexed result dims) moved by the index
/// item of operand 2: x[o1 + sum_j wrap(idx_j[o2]) * stride_j]; a negative index counts from
/// the end once. Out of range: 0 is written and the index recorded.
void index_gather(int width, const void* x, void* out, const Geometry& g, const AdvIndex& a,
                  IndexFault* fault, void* stream);
/// dst (operand 0, zero strides on the result dims of the index) at the item o2's position
/// gets values (operand 1): added atomically (accumulate, any dtype code incl. kC64), or
/// stored where winner[o2] != 0 (winner null: every item). Out of range: skipped, recorded.
void index_put(int code, int width, bool accumulate, const void* values, void* dst,
               const Geometry& g, const AdvIndex& a, const uint8_t* winner, IndexFault* fault,
               void* stream);
/// keys[i] = sum_j wrap(idx_j[i]) * lin_j for the n index items; `invalid` (and a recorded
/// fault) for an out-of-range one. keys null: only checks the indices.
void index_keys(const AdvIndex& a, int64_t n, uint64_t invalid, uint64_t* keys, IndexFault* fault,
                void* stream);

/// scatter: out (operand 0, stride along dim zeroed) [o0 + idx[o2] * dim_stride] = src
/// (operand 1) for flat items i with winner[i] != 0 (null: all). Out of range: skipped.
void scatter(int width, const void* src, const int64_t* idx, void* out, const Geometry& g,
             int64_t dim_stride, int64_t dim_size, const uint8_t* winner, IndexFault* fault,
             void* stream);
/// scatter's keys: keys[i] = o0 + idx[o2] * dim_lin (operand 0: out's row-major strides with
/// dim zeroed), `invalid` for an index outside [0, dim_size).
void scatter_keys(const int64_t* idx, const Geometry& g, int64_t dim_lin, int64_t dim_size,
                  uint64_t invalid, uint64_t* keys, IndexFault* fault, void* stream);

}  // namespace tessera::cuda::k
