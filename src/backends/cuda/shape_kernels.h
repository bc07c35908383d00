#pragma once
// The interface of the shape kernels (shape.cu), in the style of kernels.h: flip, roll,
// repeat, pad, tril and triu are one gather, each output element reading the source element its
// per-dim map names (or the fill value). No Tensor and no CUDA header.
#include <cstdint>

#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

/// How output coordinate c of a dim maps to the source coordinate (n: the source size,
/// p: the dim's parameter). The pad modes follow cpu/shape.cpp's kPadMaps.
enum MoveMode : int32_t {
  kKeep,          ///< c
  kFlip,          ///< n - 1 - c
  kRoll,          ///< (c - p) mod n, p in [0, n)
  kRepeat,        ///< c mod n
  kPadConstant,   ///< c - p, or the fill value outside [0, n)
  kPadReflect,    ///< c - p reflected at both ends without repeating the edge
  kPadReplicate,  ///< c - p clamped to [0, n)
};
/// tril keeps column j of row i when j <= i + diagonal, triu when j >= i + diagonal (on the
/// last two dims of the map, which are never merged); other elements are zero.
enum TriMode : int32_t { kNoTri, kTril, kTriu };

struct MoveMap {
  int ndim = 0;
  int64_t numel = 0;
  int64_t size[kMaxDims] = {};        ///< output sizes
  int64_t out_stride[kMaxDims] = {};  ///< elements
  int64_t src_stride[kMaxDims] = {};  ///< elements
  int64_t src_size[kMaxDims] = {};
  int64_t param[kMaxDims] = {};
  int32_t mode[kMaxDims] = {};
  int32_t tri = kNoTri;
  int64_t diagonal = 0;
  uint64_t fill = 0;  ///< the fill value's bits (pad's constant)
};

/// out[map] = src[map] for elements of `width` bytes (1, 2, 4, 8; complex64 included).
void move(int width, const void* src, void* out, const MoveMap& m, void* stream);

}  // namespace tessera::cuda::k
