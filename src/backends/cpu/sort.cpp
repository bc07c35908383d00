#include "tessera/ops/primitive.h"

namespace tessera::cpu {
void register_sort_kernels(Registry&) {}
}  // namespace tessera::cpu
