// Bindings for tessera.data (being written).
#include "bind.h"

namespace tessera::py {

void init_data(nb::module_& m) { (void)m; }

}  // namespace tessera::py
