#pragma once
// Gather/scatter-style indexing. Python-style index expressions are Tensor::index/index_put_.
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
/// out[i][j] = x[index[i][j]][j] for dim 0 (torch.gather).
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
/// A copy of x with src written at index along dim (torch.scatter).
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor scatter(const Tensor& x, int64_t dim, const Tensor& index, const Scalar& value);
/// A copy of x with src added at index along dim (repeated indices accumulate).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Scalar& value);
/// Coordinates of non-zero elements: shape (count, ndim), int64.
Tensor nonzero(const Tensor& x);
/// x[indices] where each entry is an integer tensor (or undefined = full slice) per dim,
/// broadcast together (advanced indexing, torch.index).
Tensor index(const Tensor& x, const std::vector<Tensor>& indices);
/// A copy of x with values written (or added, when accumulate) at indices.
Tensor index_put(const Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                 bool accumulate = false);
/// In-place index_put: writes (or adds) values into x (a view writes through to its base).
Tensor& index_put_(Tensor& x, const std::vector<Tensor>& indices, const Tensor& values,
                   bool accumulate = false);
/// Elements of x where mask is true, as a 1-d tensor.
Tensor masked_select(const Tensor& x, const Tensor& mask);

}  // namespace tessera
