#pragma once
// Products: matmul with batch broadcasting, dot, outer, einsum.
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

/// numpy.matmul semantics: 1-d operands are promoted and the added dim removed; batch dims
/// broadcast. GEMM through BLAS for float32/float64/complex64.
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor dot(const Tensor& a, const Tensor& b);
Tensor outer(const Tensor& a, const Tensor& b);
/// Einstein summation ("ij,jk->ik", "bij,bjk->bik", "ii->i", implicit output, "...").
Tensor einsum(std::string_view equation, const std::vector<Tensor>& operands);

}  // namespace tessera
