// tessera._C: the extension module. Each part of the API lives in its own binding file; the
// pure-Python package (python/tessera) arranges the public names.
#include "bind.h"

NB_MODULE(_C, m) {
  using namespace tessera::py;
  m.doc() = "Tessera's C++ core (use the `tessera` package, not this module directly)";
  // Python callables kept by the C++ autograd graph (hooks, custom functions) can form cycles
  // through C++ that Python's collector cannot see; objects still in such a cycle at exit
  // would be reported as "leaked" although nothing grows. Leaks that grow are caught by
  // python/tests/test_memory.py instead.
  nb::set_leak_warnings(false);
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
  init_cuda(m, tensor);
  init_amp(m);
}
