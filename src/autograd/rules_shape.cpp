// Autodiff rules (vjp, jvp, vmap batching) for the shape primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_shape_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
