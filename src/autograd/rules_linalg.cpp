// Autodiff rules (vjp, jvp, vmap batching) for the linalg primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_linalg_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
