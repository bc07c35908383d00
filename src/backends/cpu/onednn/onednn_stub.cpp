// Stands in for onednn.cpp when Tessera is built without oneDNN (onednn.h).
#include "backends/cpu/onednn/onednn.h"

#include "tessera/core/error.h"

namespace tessera::cpu::onednn {

bool built() { return false; }

std::string version() { return "not built"; }

void sgemm(bool, bool, int64_t, int64_t, int64_t, const float*, int64_t, const float*, int64_t,
           float, float*, int64_t) {
  throw NotBuiltError("[onednn] sgemm: Tessera was built without oneDNN");
}

}  // namespace tessera::cpu::onednn
