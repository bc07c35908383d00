#include "tessera/ops/primitive.h"

namespace tessera::cpu {
void register_shape_kernels(Registry&) {}
}  // namespace tessera::cpu
