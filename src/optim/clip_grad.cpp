// Gradient clipping by total norm and by value (torch.nn.utils' formulas).
#include "tessera/optim/clip_grad.h"

#include <algorithm>
#include <cmath>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::optim {
namespace {

std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) out.push_back(p.grad());
  return out;
}

// The p-norm of one gradient, computed in its dtype.
double grad_norm(const Tensor& g, double p) {
  if (g.numel() == 0) return 0.0;
  if (std::isinf(p)) return abs(g).max().item<double>();
  if (p == 1.0 || p == 2.0) return norm(g, p).item<double>();
  return std::pow(pow(abs(g), p).sum().item<double>(), 1.0 / p);
}

// The norm of the per-gradient norms (PyTorch: vector_norm(stack(norms), p)).
double total_norm(const std::vector<double>& norms, double p) {
  if (std::isinf(p)) {
    double m = 0;
    for (double n : norms) m = (std::isnan(n) || n > m) ? n : m;
    return m;
  }
  double sum = 0;
  for (double n : norms) sum += p == 1.0 ? n : p == 2.0 ? n * n : std::pow(n, p);
  return p == 1.0 ? sum : p == 2.0 ? std::sqrt(sum) : std::pow(sum, 1.0 / p);
}

}  // namespace

Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  const char* op = "clip_grad_norm_";
  TS_CHECK(norm_type > 0, ValueError, op, "norm_type must be positive (or infinity), got {}",
           norm_type);
  TS_CHECK(max_norm >= 0, ValueError, op, "max_norm must be >= 0, got {}", max_norm);
  autograd::NoGradGuard no_grad;
  const std::vector<Tensor> grads = grads_of(params);
  std::vector<double> norms;
  for (const Tensor& g : grads) norms.push_back(grad_norm(g, norm_type));
  const double total = total_norm(norms, norm_type);
  TS_CHECK(!error_if_nonfinite || std::isfinite(total), ValueError, op,
           "the total norm of order {} of the gradients is {}, so they cannot be clipped; "
           "pass error_if_nonfinite = false to clip anyway",
           norm_type, total);
  // Like PyTorch, always multiply (a coefficient of 1 changes nothing; NaN spreads).
  const double coef = std::min(max_norm / (total + 1e-6), 1.0);
  for (Tensor g : grads) g.mul_(coef);
  return scalar_tensor(total, kFloat64);
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  TS_CHECK(clip_value >= 0, ValueError, "clip_grad_value_", "clip_value must be >= 0, got {}",
           clip_value);
  autograd::NoGradGuard no_grad;
  for (Tensor g : grads_of(params)) g.clamp_(-clip_value, clip_value);
}

}  // namespace tessera::optim
