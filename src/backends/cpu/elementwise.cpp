// Registers every CPU elementwise kernel; the kernels live in elementwise_{unary,binary,compare}
// .cpp (generic loops) and elementwise_simd.cpp (Highway fast path).
#include "backends/cpu/elementwise.h"

namespace tessera::cpu {

void register_elementwise_kernels(Registry& r) {
  ew::register_unary_kernels(r);
  ew::register_binary_kernels(r);
  ew::register_compare_kernels(r);
}

}  // namespace tessera::cpu
