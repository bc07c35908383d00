#pragma once
// The fused optimizer steps on CUDA parameters, for src/optim (host code that must not see a
// CUDA header). Defined in optim.cpp when CUDA is built; stub.cpp's versions raise
// NotBuiltError. Every tensor is contiguous, on the parameter's device and of its dtype
// (float32 or float64); the step is queued on the device's current stream.
#include "backends/cuda/kernels.h"
#include "tessera/core/tensor.h"

namespace tessera::cuda {

/// One SGD step; momentum_buffer is undefined without momentum.
void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
              const k::SgdArgs& args);
/// One Adam / AdamW step; max_exp_avg_sq is undefined without amsgrad.
void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const k::AdamArgs& args);
/// One RMSprop step; grad_avg is defined exactly when centered, momentum_buffer exactly when
/// momentum > 0.
void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                  const Tensor& grad_avg, const Tensor& momentum_buffer,
                  const k::RmspropArgs& args);
/// One Adagrad step.
void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum,
                  const k::AdagradArgs& args);

}  // namespace tessera::cuda
