// nn::init: in-place initializers drawing from the global generator.
#include "tessera/nn/init.h"

#include <cmath>
#include <vector>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::nn::init {
namespace {

// Writes values into t without recording the write (parameters require grad).
Tensor fill_from(Tensor t, const Tensor& values) {
  autograd::NoGradGuard no_grad;
  t.copy_(values);
  return t;
}

void check_floating(const Tensor& t, std::string_view op) {
  TS_CHECK(t.defined(), ValueError, op, "the tensor is undefined");
  TS_CHECK(is_floating(t.dtype()), DTypeError, op, "needs a floating-point tensor, got {}",
           dtype_name(t.dtype()));
}

// Draws in float32 at least (float16 draws would lose the distribution's tails), then casts.
TensorOptions draw_options(const Tensor& t) {
  return {t.dtype() == kFloat64 ? kFloat64 : kFloat32, t.device()};
}

int64_t fan(const Tensor& t, FanMode mode) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::FanIn ? in : out;
}

}  // namespace

double calculate_gain(std::string_view nl, double param) {
  static const std::vector<std::string_view> kLinear = {
      "linear",           "conv1d",           "conv2d",           "conv3d",
      "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid"};
  for (auto n : kLinear)
    if (nl == n) return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  fail<ValueError>("calculate_gain", "unsupported nonlinearity \"{}\"", nl);
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  TS_CHECK(t.dim() >= 2, ShapeError, "calculate_fan_in_and_fan_out",
           "fan in and fan out need a tensor with at least 2 dims, got {}", shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(Tensor t, double a, double b) {
  check_floating(t, "uniform_");
  return fill_from(t, uniform(a, b, t.shape(), draw_options(t)));
}

Tensor normal_(Tensor t, double mean, double std) {
  check_floating(t, "normal_");
  return fill_from(t, normal(mean, std, t.shape(), draw_options(t)));
}

Tensor trunc_normal_(Tensor t, double mean, double std, double a, double b) {
  check_floating(t, "trunc_normal_");
  TS_CHECK(a < b && std > 0, ValueError, "trunc_normal_",
           "needs a < b and std > 0, got a={}, b={}, std={}", a, b, std);
  Tensor v = normal(mean, std, t.shape(), draw_options(t));
  // Redraw the values outside [a, b]; each round keeps a constant fraction, so this ends fast
  // unless [a, b] holds almost no mass (then give up clearly rather than loop forever).
  for (int round = 0; round < 1000; ++round) {
    Tensor bad = logical_or(lt(v, a), gt(v, b));
    if (!any(bad).item<bool>()) return fill_from(t, v);
    v = where(bad, normal(mean, std, t.shape(), draw_options(t)), v);
  }
  fail<ValueError>("trunc_normal_", "[{}, {}] holds too little of N({}, {}) to sample from", a, b,
                   mean, std);
}

Tensor constant_(Tensor t, double value) {
  TS_CHECK(t.defined(), ValueError, "constant_", "the tensor is undefined");
  autograd::NoGradGuard no_grad;
  t.fill_(value);
  return t;
}
Tensor zeros_(Tensor t) { return constant_(std::move(t), 0.0); }
Tensor ones_(Tensor t) { return constant_(std::move(t), 1.0); }

Tensor xavier_uniform_(Tensor t, double gain) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  const double a = gain * std::sqrt(6.0 / static_cast<double>(in + out));
  return uniform_(std::move(t), -a, a);
}

Tensor xavier_normal_(Tensor t, double gain) {
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return normal_(std::move(t), 0.0, gain * std::sqrt(2.0 / static_cast<double>(in + out)));
}

Tensor kaiming_uniform_(Tensor t, double a, FanMode mode, std::string_view nonlinearity) {
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode)));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(std::move(t), -bound, bound);
}

Tensor kaiming_normal_(Tensor t, double a, FanMode mode, std::string_view nonlinearity) {
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(static_cast<double>(fan(t, mode)));
  return normal_(std::move(t), 0.0, std);
}

namespace {

// Q of the QR factorization of the row-major (m, n) matrix a, m >= n (modified Gram-Schmidt in
// float64, signs fixed so that R has a positive diagonal, which makes Q uniformly distributed).
std::vector<double> orthonormal_columns(std::vector<double> a, int64_t m, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t k = 0; k < j; ++k) {
      double d = 0;
      for (int64_t i = 0; i < m; ++i) d += a[i * n + k] * a[i * n + j];
      for (int64_t i = 0; i < m; ++i) a[i * n + j] -= d * a[i * n + k];
    }
    double norm = 0;
    for (int64_t i = 0; i < m; ++i) norm += a[i * n + j] * a[i * n + j];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < m; ++i) a[i * n + j] /= norm;
  }
  return a;
}

}  // namespace

Tensor orthogonal_(Tensor t, double gain) {
  check_floating(t, "orthogonal_");
  TS_CHECK(t.dim() >= 2, ShapeError, "orthogonal_", "needs at least 2 dims, got {}",
           shape_str(t.shape()));
  const int64_t rows = t.size(0), cols = t.numel() / rows;
  const bool wide = rows < cols;  // factor the transpose so the columns are the short side
  const int64_t m = wide ? cols : rows, n = wide ? rows : cols;
  Tensor g = randn({m, n}, kFloat64);
  Tensor q = tensor(orthonormal_columns(g.to_vector<double>(), m, n), Shape{m, n});
  if (wide) q = q.t();
  return fill_from(t, (q * gain).reshape(t.shape()));
}

}  // namespace tessera::nn::init
