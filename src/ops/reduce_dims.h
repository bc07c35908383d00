#pragma once
// Reduced-dim bookkeeping shared by the reduce family's inference (ops/) and kernels (backends/).
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::detail {

/// Which dims of an ndim-d tensor a reduction covers: `dims` wrapped (a 0-d tensor accepts 0
/// and -1), empty = all. Throws IndexError for an out-of-range dim, ValueError for a repeat.
inline std::vector<bool> reduce_mask(int64_t ndim, const std::vector<int64_t>& dims,
                                     std::string_view op) {
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(ndim, 1)), false);
  for (int64_t d : dims) {
    const auto w = static_cast<size_t>(wrap_dim(d, ndim, op));
    if (seen[w]) fail<ValueError>(op, "dim {} appears multiple times in the list of dims", d);
    seen[w] = true;
  }
  std::vector<bool> mask(static_cast<size_t>(ndim), dims.empty());
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = mask[i] || seen[i];
  return mask;
}

/// The output shape of a reduction: reduced dims dropped, or kept with size 1.
inline Shape reduced_shape(const Shape& in, const std::vector<bool>& mask, bool keepdim) {
  Shape out;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!mask[i])
      out.push_back(in[i]);
    else if (keepdim)
      out.push_back(1);
  }
  return out;
}

}  // namespace tessera::detail
