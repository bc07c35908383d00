// Bindings for tessera.autograd (being written).
#include "bind.h"

namespace tessera::py {

void init_autograd(nb::module_& m) { (void)m; }

}  // namespace tessera::py
