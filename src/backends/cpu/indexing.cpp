#include "tessera/ops/primitive.h"

namespace tessera::cpu {
void register_indexing_kernels(Registry&) {}
}  // namespace tessera::cpu
