#pragma once
// The per-element map of the shape kernels (shape.cu), written once for the device and the
// host so it can be checked against the CPU's tables (cpu/shape.cpp) as plain C++.
#include <cstdint>

#include "backends/cuda/host_device.h"
#include "backends/cuda/shape_kernels.h"

namespace tessera::cuda::shape {

/// The source coordinate of output coordinate c in a dim (-1: the fill value).
TS_HD int64_t source_index(int32_t mode, int64_t c, int64_t n, int64_t p) {
  const int64_t s = c - p;  // the pads' and roll's shifted coordinate
  switch (mode) {
    case k::kFlip:
      return n - 1 - c;
    case k::kRoll:
      return s < 0 ? s + n : s;
    case k::kRepeat:
      return c % n;
    case k::kPadConstant:
      return s >= 0 && s < n ? s : -1;
    case k::kPadReflect:
      return s < 0 ? -s : (s >= n ? 2 * (n - 1) - s : s);
    case k::kPadReplicate:
      return s < 0 ? 0 : (s >= n ? n - 1 : s);
    default:
      return c;
  }
}

/// Where element i (row-major over the output sizes) goes and what it reads.
struct Move {
  int64_t out, src;
  bool fill;  ///< the fill value (pad outside the source)
  bool zero;  ///< zero bits (outside tril / triu)
};

TS_HD Move element(const k::MoveMap& m, int64_t i) {
  Move e{0, 0, false, false};
  int64_t row = 0, col = 0;
  for (int d = m.ndim - 1; d >= 0; --d) {
    const int64_t c = i % m.size[d];
    i /= m.size[d];
    e.out += c * m.out_stride[d];
    const int64_t s = source_index(m.mode[d], c, m.src_size[d], m.param[d]);
    e.fill |= s < 0;
    e.src += s * m.src_stride[d];
    if (d == m.ndim - 1) col = c;
    if (d == m.ndim - 2) row = c;
  }
  if (m.tri == k::kTril) e.zero = col > row + m.diagonal;
  if (m.tri == k::kTriu) e.zero = col < row + m.diagonal;
  return e;
}

}  // namespace tessera::cuda::shape
