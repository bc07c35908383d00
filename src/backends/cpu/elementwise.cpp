#include "tessera/ops/primitive.h"

namespace tessera::cpu {
void register_elementwise_kernels(Registry&) {}
}  // namespace tessera::cpu
