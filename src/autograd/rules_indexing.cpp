// Autodiff rules (vjp, jvp, vmap batching) for the indexing primitives. Conventions: rules.h.
#include "autograd/rules.h"

namespace tessera::rules {

void register_indexing_rules(Registry& r) { (void)r; }

}  // namespace tessera::rules
