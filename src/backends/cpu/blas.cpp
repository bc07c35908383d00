// BLAS vendor facts for `tessera info`.
#include <cblas.h>

#include <string>

namespace tessera {

std::string blas_runtime_config() {
#ifdef OPENBLAS_VERSION
  return std::string(openblas_get_config());
#else
  return "CBLAS (vendor unknown)";
#endif
}

}  // namespace tessera
