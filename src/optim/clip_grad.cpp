// Gradient clipping by total norm and by value (torch.nn.utils' formulas).
#include "tessera/optim/clip_grad.h"

#include <cmath>
#include <optional>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::optim {
namespace {

std::vector<Tensor> grads_of(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params)
    if (p.defined() && p.grad().defined()) out.push_back(p.grad());
  return out;
}

// The p-norm of one gradient, computed in its dtype, as a 0-d float64 tensor on `device` (the
// first gradient's): the value the host would compute, left on the device unread.
Tensor grad_norm(const Tensor& g, double p, const Device& device) {
  Tensor n;
  if (g.numel() == 0)
    n = zeros({}, TensorOptions(kFloat64, g.device()));
  else if (std::isinf(p))
    n = abs(g).max().to(kFloat64);
  else if (p == 1.0 || p == 2.0)
    n = norm(g, p).to(kFloat64);
  else
    n = pow(pow(abs(g), p).sum().to(kFloat64), 1.0 / p);
  return n.to(device);
}

// The norm of the per-gradient norms (PyTorch: vector_norm(stack(norms), p)), in float64.
Tensor total_norm(const Tensor& norms, double p) {
  if (std::isinf(p)) return norms.max();  // NaN propagates; the norms are >= 0
  if (p == 1.0) return norms.sum();
  if (p == 2.0) return sqrt(square(norms).sum());
  return pow(pow(norms, p).sum(), 1.0 / p);
}

}  // namespace

// Tensor ops on the gradients' device throughout: nothing is read back to the host (and so
// nothing waits on a GPU) except the total once, for error_if_nonfinite.
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  const char* op = "clip_grad_norm_";
  TS_CHECK(norm_type > 0, ValueError, op, "norm_type must be positive (or infinity), got {}",
           norm_type);
  TS_CHECK(max_norm >= 0, ValueError, op, "max_norm must be >= 0, got {}", max_norm);
  autograd::NoGradGuard no_grad;
  const std::vector<Tensor> grads = grads_of(params);
  if (grads.empty()) return scalar_tensor(0.0, kFloat64);
  const Device device = grads[0].device();
  std::vector<Tensor> norms;
  for (const Tensor& g : grads) norms.push_back(grad_norm(g, norm_type, device));
  const Tensor total = total_norm(stack(norms), norm_type);
  if (error_if_nonfinite) {
    const double t = total.item<double>();
    TS_CHECK(std::isfinite(t), ValueError, op,
             "the total norm of order {} of the gradients is {}, so they cannot be clipped; "
             "pass error_if_nonfinite = false to clip anyway",
             norm_type, t);
  }
  // Like PyTorch, always multiply (a coefficient of 1 changes nothing; NaN spreads). The
  // float64 coefficient is rounded to each gradient's dtype, as a number would be.
  const Tensor coef = clamp(max_norm / (total + 1e-6), std::nullopt, 1.0);
  for (Tensor g : grads) g.mul_(coef.to(g.device()));
  return total;
}

void clip_grad_value_(const std::vector<Tensor>& params, double clip_value) {
  TS_CHECK(clip_value >= 0, ValueError, "clip_grad_value_", "clip_value must be >= 0, got {}",
           clip_value);
  autograd::NoGradGuard no_grad;
  for (Tensor g : grads_of(params)) g.clamp_(-clip_value, clip_value);
}

}  // namespace tessera::optim
