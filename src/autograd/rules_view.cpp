// Autodiff rules (vjp, jvp, vmap batching) for the view primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_view_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
