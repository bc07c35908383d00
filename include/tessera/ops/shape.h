#pragma once
// Shape ops that copy data: joining, splitting, reordering, padding, triangular masks.
// (View ops are Tensor methods: reshape, permute, slice, expand, ...)
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

/// The broadcast shape of two shapes (ShapeError naming op when incompatible).
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op = "broadcast");
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
/// Pieces of `size` along dim (the last may be smaller); views.
std::vector<Tensor> split(const Tensor& x, int64_t size, int64_t dim = 0);
/// Pieces with the given sizes (must sum to the dim's size); views.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
Tensor flip(const Tensor& x, const std::vector<int64_t>& dims);
/// Rolls along dims (flattened when dims is empty).
Tensor roll(const Tensor& x, const std::vector<int64_t>& shifts,
            const std::vector<int64_t>& dims = {});
/// torch.Tensor.repeat: repeats.size() >= ndim.
Tensor repeat(const Tensor& x, const std::vector<int64_t>& repeats);
/// numpy.tile: pads repeats or the shape with leading ones.
Tensor tile(const Tensor& x, const std::vector<int64_t>& reps);
/// pads = (left_last, right_last, left_2nd_last, right_2nd_last, ...) like torch.nn.functional.pad;
/// mode "constant", "reflect" or "replicate".
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, std::string_view mode = "constant",
           double value = 0.0);
/// Moves dim `from` to position `to`, keeping the order of the others (a view).
Tensor movedim(const Tensor& x, int64_t from, int64_t to);
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);

}  // namespace tessera
