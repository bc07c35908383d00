#pragma once
// Facts about the build and the machine, for `tessera info` and error messages.
#include <string>
#include <vector>

namespace tessera {

struct BuildInfo {
  std::string version;
  std::string compiler;
  std::string blas_vendor;            ///< e.g. "OpenBLAS 0.3.21" or "none"
  std::string onednn;                 ///< e.g. "oneDNN 2.6.3 (cpu runtime: OpenMP)" or "not built"
  std::vector<std::string> backends;  ///< built backends, e.g. {"cpu", "cuda"}
  bool cuda_built = false;
};
BuildInfo build_info();
/// CPU model name, SIMD target chosen at run time, cores, cache sizes.
std::string cpu_description();
/// The SIMD instruction set Highway dispatches to on this machine (e.g. "AVX2").
std::string simd_target();

namespace cuda {
/// Whether Tessera was compiled with CUDA.
bool is_built();
/// Number of visible CUDA devices (0 without a GPU). Throws NotBuiltError when not built.
int device_count();
/// Whether a CUDA device can be used now (false when not built or no device).
bool is_available();
}  // namespace cuda

}  // namespace tessera
