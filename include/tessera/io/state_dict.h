#pragma once
// A state dict: named tensors, the one exchange format between modules, optimizers, LR
// schedulers, checkpoints and safetensors files. Scalar state (a learning rate, a step count)
// is a 0-d tensor (float64 or int64), so everything round-trips through safetensors.
#include <map>
#include <string>

#include "tessera/core/tensor.h"

namespace tessera {

using StateDict = std::map<std::string, Tensor>;

}  // namespace tessera
