// The one list of op families, backend kernel sets and autodiff rules, registered in this order.
#include "tessera/ops/primitive.h"

namespace tessera {

// Each family defines its primitives (ops/) and each backend adds kernels (backends/).
// View primitives have no kernels: they only build new strides over the same storage.
#define TS_KERNEL_FAMILIES(X) \
  X(copy) X(creation) X(elementwise) X(reduce) X(shape) X(indexing) X(linalg) X(sort) X(nn)
#define TS_FAMILIES(X) X(view) TS_KERNEL_FAMILIES(X)

#define TS_DECLARE(f) void register_##f##_prims(Registry&);
TS_FAMILIES(TS_DECLARE)
namespace cpu {
#define TS_DECLARE_CPU(f) void register_##f##_kernels(Registry&);
TS_KERNEL_FAMILIES(TS_DECLARE_CPU)
}  // namespace cpu
namespace cuda {
void register_kernels(Registry&);  // backends/cuda (nothing in its stub)
}  // namespace cuda
namespace rules {
#define TS_RULE_FAMILIES(X) \
  X(copy) X(view) X(elementwise) X(reduce) X(shape) X(indexing) X(linalg) X(sort) X(nn)
#define TS_DECLARE_RULES(f) void register_##f##_rules(Registry&);
TS_RULE_FAMILIES(TS_DECLARE_RULES)
void register_vjp_skips(Registry&);
}  // namespace rules

void register_all(Registry& r) {
#define TS_PRIMS(f) register_##f##_prims(r);
#define TS_CPU(f) cpu::register_##f##_kernels(r);
  TS_FAMILIES(TS_PRIMS)
  TS_KERNEL_FAMILIES(TS_CPU)
  cuda::register_kernels(r);
  // Autodiff rules last: a rule may refer to any primitive.
#define TS_RULES(f) rules::register_##f##_rules(r);
  TS_RULE_FAMILIES(TS_RULES)
  rules::register_vjp_skips(r);
}

}  // namespace tessera
