#pragma once
// Reductions over any set of dims (empty dims = all), scans, softmax and layer_norm.
#include <optional>
#include <tuple>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera {

using Dims = std::vector<int64_t>;

/// Sum (bool/int inputs accumulate in int64, like PyTorch).
Tensor sum(const Tensor& x, Dims dims = {}, bool keepdim = false, std::optional<DType> dtype = {});
Tensor mean(const Tensor& x, Dims dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, Dims dims = {}, bool keepdim = false);
/// Max/min over all elements (throws on empty input).
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
/// (values, indices) along one dim.
std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim = false);
std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim = false);
/// Max/min over several dims (values only).
Tensor amax(const Tensor& x, Dims dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, Dims dims = {}, bool keepdim = false);
/// Index of the first max/min (flattened when dim is absent).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = {}, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = {}, bool keepdim = false);
/// Variance / standard deviation with Welford's algorithm; correction 1 = unbiased.
Tensor var(const Tensor& x, Dims dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor std(const Tensor& x, Dims dims = {}, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& x, Dims dims, bool keepdim = false);
/// p-norm for p = 1, 2 or inf (std::numeric_limits<double>::infinity()).
Tensor norm(const Tensor& x, double p = 2.0, Dims dims = {}, bool keepdim = false);
Tensor all(const Tensor& x, Dims dims = {}, bool keepdim = false);
Tensor any(const Tensor& x, Dims dims = {}, bool keepdim = false);
Tensor cumsum(const Tensor& x, int64_t dim);
Tensor cumprod(const Tensor& x, int64_t dim);
/// Softmax that stays finite for large inputs and handles -inf (a row of all -inf gives NaN,
/// like PyTorch).
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
/// Layer normalization over the last normalized_ndim dims, fused (one read of x, one write):
/// (y, mean, rstd) with y = (x - mean) * rstd * weight + bias, rstd = 1 / sqrt(var + eps)
/// (biased variance), like PyTorch's native_layer_norm. weight and bias (shaped like the
/// normalized dims, x's dtype) are optional; mean and rstd are shaped like x with the
/// normalized dims as 1, float32 for 16-bit floats. nn::functional::layer_norm checks the
/// shapes first and returns y.
std::tuple<Tensor, Tensor, Tensor> native_layer_norm(const Tensor& x, int64_t normalized_ndim,
                                                     const Tensor& weight = {},
                                                     const Tensor& bias = {}, double eps = 1e-5);

}  // namespace tessera
