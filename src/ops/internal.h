#pragma once
// Declarations shared between op families inside the library (not installed).
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::detail {

/// Python-style read: x[idx...] (views for ints/slices/None/Ellipsis; a copy with tensors).
Tensor index_expr(const Tensor& x, const std::vector<TensorIndex>& idx);
/// Python-style write: x[idx...] = value (value broadcast), in place.
void index_put_expr(Tensor& x, const std::vector<TensorIndex>& idx, const Tensor& value);
/// Whether a value of dtype `from` may be written into a tensor of dtype `to` in place
/// (PyTorch's can_cast: no float->int, complex->real, or non-bool->bool).
bool can_cast(DType from, DType to);

}  // namespace tessera::detail
