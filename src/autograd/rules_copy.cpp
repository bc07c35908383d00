// Autodiff rules (vjp, jvp, vmap batching) for the copy primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_copy_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
