// Host side of the fused optimizer steps (optim.cu): checks the tensors and launches one
// kernel per parameter on the current stream.
#include "backends/cuda/optim.h"

#include <initializer_list>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "tessera/core/error.h"

namespace tessera::cuda {
namespace {

// The kernels walk n contiguous elements of one dtype on one device.
void check_operands(const char* op, const Tensor& param, std::initializer_list<Tensor> others) {
  TS_CHECK(param.device().is_cuda(), DeviceError, op, "parameter is on {}, not a CUDA device",
           param.device().str());
  TS_CHECK(param.dtype() == kFloat32 || param.dtype() == kFloat64, DTypeError, op,
           "CUDA parameters must be float32 or float64, got {}", dtype_name(param.dtype()));
  TS_CHECK(param.is_contiguous(), ValueError, op, "parameter must be contiguous here");
  for (const Tensor& t : others) {
    if (!t.defined()) continue;
    TS_CHECK(t.device() == param.device() && t.dtype() == param.dtype() &&
                 t.shape() == param.shape() && t.is_contiguous(),
             ValueError, op, "state {} {} on {} does not fit the parameter {} {} on {}",
             shape_str(t.shape()), dtype_name(t.dtype()), t.device().str(),
             shape_str(param.shape()), dtype_name(param.dtype()), param.device().str());
  }
}

void* ptr_or_null(const Tensor& t) { return t.defined() ? t.raw_data() : nullptr; }

}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
              const k::SgdArgs& args) {
  check_operands("SGD", param, {grad, momentum_buffer});
  if (param.numel() == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  k::sgd(dtype_code(param.dtype()), param.raw_data(), grad.raw_data(), ptr_or_null(momentum_buffer),
         param.numel(), args, current_stream(dev));
  launched(dev, "SGD");
}

void adam_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
               const Tensor& exp_avg_sq, const Tensor& max_exp_avg_sq, const k::AdamArgs& args) {
  const char* op = args.decoupled ? "AdamW" : "Adam";
  check_operands(op, param, {grad, exp_avg, exp_avg_sq, max_exp_avg_sq});
  TS_CHECK(exp_avg.defined() && exp_avg_sq.defined(), ValueError, op,
           "exp_avg and exp_avg_sq must be defined");
  if (param.numel() == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  k::adam(dtype_code(param.dtype()), param.raw_data(), grad.raw_data(), exp_avg.raw_data(),
          exp_avg_sq.raw_data(), ptr_or_null(max_exp_avg_sq), param.numel(), args,
          current_stream(dev));
  launched(dev, op);
}

void rmsprop_step(const Tensor& param, const Tensor& grad, const Tensor& square_avg,
                  const Tensor& grad_avg, const Tensor& momentum_buffer,
                  const k::RmspropArgs& args) {
  const char* op = "RMSprop";
  check_operands(op, param, {grad, square_avg, grad_avg, momentum_buffer});
  TS_CHECK(square_avg.defined() && grad_avg.defined() == args.centered &&
               momentum_buffer.defined() == (args.momentum > 0),
           ValueError, op,
           "square_avg must be defined, grad_avg exactly when centered, momentum_buffer exactly "
           "when momentum > 0 (centered = {}, momentum = {})",
           args.centered, args.momentum);
  if (param.numel() == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  k::rmsprop(dtype_code(param.dtype()), param.raw_data(), grad.raw_data(), square_avg.raw_data(),
             ptr_or_null(grad_avg), ptr_or_null(momentum_buffer), param.numel(), args,
             current_stream(dev));
  launched(dev, op);
}

void adagrad_step(const Tensor& param, const Tensor& grad, const Tensor& sum,
                  const k::AdagradArgs& args) {
  const char* op = "Adagrad";
  check_operands(op, param, {grad, sum});
  TS_CHECK(sum.defined(), ValueError, op, "the sum state must be defined");
  if (param.numel() == 0) return;
  const int dev = param.device().index;
  DeviceGuard guard(dev);
  k::adagrad(dtype_code(param.dtype()), param.raw_data(), grad.raw_data(), sum.raw_data(),
             param.numel(), args, current_stream(dev));
  launched(dev, op);
}

}  // namespace tessera::cuda
