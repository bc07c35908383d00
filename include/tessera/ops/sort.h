#pragma once
// Sorting and selection.
#include <tuple>

#include "tessera/core/tensor.h"

namespace tessera {

/// (values, indices) sorted along dim; stable; NaN sorts last (first when descending).
std::tuple<Tensor, Tensor> sort(const Tensor& x, int64_t dim = -1, bool descending = false);
Tensor argsort(const Tensor& x, int64_t dim = -1, bool descending = false);
/// The k largest (or smallest) along dim, sorted.
std::tuple<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true);
/// Sorted unique values of the flattened input; optionally inverse indices and counts.
struct UniqueResult {
  Tensor values, inverse, counts;
};
UniqueResult unique(const Tensor& x, bool return_inverse = false, bool return_counts = false);

}  // namespace tessera
