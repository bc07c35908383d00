// Bindings for tessera.ops (being written).
#include "bind.h"

namespace tessera::py {

void init_ops(nb::module_& m, nb::class_<Tensor>& cls) {
  (void)m;
  (void)cls;
}

}  // namespace tessera::py
