#pragma once
// How a row-major BLAS call (CPU BLAS, or cuBLAS through the transpose trick) can read a
// rows x cols matrix with strides (rs, cs) in place: as stored (row-major, leading dimension
// rs) or transposed (column-major, leading dimension cs). A dim of size 1 has no meaningful
// stride, so it never disqualifies a layout. Shared by the CPU and CUDA matmul kernels.
#include <algorithm>
#include <cstdint>
#include <optional>

#include "tessera/core/tensor.h"

namespace tessera {

struct MatrixLayout {
  bool transposed;  ///< column-major: pass with Trans
  int64_t ld;       ///< leading dimension, at least 1
};

inline std::optional<MatrixLayout> matrix_layout(int64_t rows, int64_t cols, int64_t rs,
                                                 int64_t cs) {
  if ((cols == 1 || cs == 1) && (rows == 1 || rs >= std::max<int64_t>(1, cols)))
    return MatrixLayout{false, rows == 1 ? std::max<int64_t>(1, cols) : rs};
  if ((rows == 1 || rs == 1) && (cols == 1 || cs >= std::max<int64_t>(1, rows)))
    return MatrixLayout{true, cols == 1 ? std::max<int64_t>(1, rows) : cs};
  return std::nullopt;
}

/// Element strides of a matmul operand t (its last two dims are the matrix) along each dim of
/// the broadcast batch shape: 0 where t has no such dim or has size 1 there.
inline Strides matmul_batch_strides(const Tensor& t, const Shape& batch) {
  Strides s(batch.size(), 0);
  const size_t own = static_cast<size_t>(t.dim()) - 2, lead = batch.size() - own;
  for (size_t i = 0; i < own; ++i)
    if (t.shape()[i] != 1) s[lead + i] = t.strides()[i];
  return s;
}

}  // namespace tessera
