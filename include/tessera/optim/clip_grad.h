#pragma once
// Gradient clipping (torch.nn.utils.clip_grad_norm_ / clip_grad_value_), in place on .grad.
//
//   loss.backward();
//   Tensor norm = optim::clip_grad_norm_(params, 1.0);  // before clipping
//   opt.step();
#include <limits>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::optim {

/// Scales all gradients by min(1, max_norm / (total_norm + 1e-6)), where total_norm is the
/// norm_type norm (p > 0, or infinity) of all gradients together; returns total_norm (0-d
/// float64, on the first gradient's device; a CPU 0 without gradients). Parameters without a
/// gradient are skipped. With error_if_nonfinite, a NaN or infinite total raises ValueError and
/// leaves the gradients alone (the one place the host reads the total: a GPU is waited for
/// then, and only then).
Tensor clip_grad_norm_(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                       bool error_if_nonfinite = false);

/// Clamps every gradient element into [-clip_value, clip_value] (clip_value >= 0).
void clip_grad_value_(const std::vector<Tensor>& params, double clip_value);

}  // namespace tessera::optim
