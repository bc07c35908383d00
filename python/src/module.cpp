// tessera._C: the extension module. Each part of the API lives in its own binding file; the
// pure-Python package (python/tessera) arranges the public names.
#include "bind.h"

NB_MODULE(_C, m) {
  using namespace tessera::py;
  m.doc() = "Tessera's C++ core (use the `tessera` package, not this module directly)";
  init_errors(m);
  init_dtype_device(m);
  auto tensor = init_tensor(m);
  init_interop(m, tensor);
  init_ops(m, tensor);
  init_autograd(m);
  init_nn(m);
  init_optim(m);
  init_data(m);
  init_io(m);
  init_runtime(m);
}
