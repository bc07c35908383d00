// Built when cuDNN was not found: the convolution primitives get no CUDA kernel, so the
// scheduler answers NotImplementedError("[conv] no cuda:0 kernel ...").
#include "backends/cuda/ops.h"

namespace tessera::cuda {

void register_conv_kernels(Registry&) {}

}  // namespace tessera::cuda
