// Autodiff rules (vjp, jvp, vmap batching) for the sort primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_sort_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
