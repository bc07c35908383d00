// Bindings for tessera.optim (being written).
#include "bind.h"

namespace tessera::py {

void init_optim(nb::module_& m) { (void)m; }

}  // namespace tessera::py
