// Bindings for tessera.nn (being written).
#include "bind.h"

namespace tessera::py {

void init_nn(nb::module_& m) { (void)m; }

}  // namespace tessera::py
