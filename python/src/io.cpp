// Bindings for tessera.io (being written).
#include "bind.h"

namespace tessera::py {

void init_io(nb::module_& m) { (void)m; }

}  // namespace tessera::py
