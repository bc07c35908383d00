// Built when Tessera is configured without CUDA: every CUDA request is a clean NotBuiltError.
#include "tessera/core/allocator.h"
#include "tessera/core/error.h"
#include "tessera/runtime/info.h"

namespace tessera::cuda {

bool is_built() { return false; }
int device_count() { fail<NotBuiltError>("cuda", "not built with CUDA"); }
bool is_available() { return false; }
Allocator& allocator(int device) {
  fail<NotBuiltError>("cuda", "not built with CUDA (requested cuda:{})", device);
}

}  // namespace tessera::cuda
