#include "tessera/ops/primitive.h"

namespace tessera::cpu {
void register_linalg_kernels(Registry&) {}
}  // namespace tessera::cpu
