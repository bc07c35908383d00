#include "tessera/runtime/info.h"

#include <fmt/format.h>
#include <hwy/targets.h>

#include <fstream>
#include <thread>

#include "backends/cpu/onednn/onednn.h"
#include "tessera/runtime/parallel.h"

#ifndef TESSERA_VERSION
#define TESSERA_VERSION "0.0.0"
#endif
#ifndef TESSERA_BLAS_VENDOR
#define TESSERA_BLAS_VENDOR "none"
#endif

namespace tessera {

std::string blas_runtime_config();  // backends/cpu/blas.cpp

BuildInfo build_info() {
  BuildInfo b;
  b.version = TESSERA_VERSION;
  b.compiler = fmt::format("{} {}", "g++", __VERSION__);
  b.blas_vendor = blas_runtime_config();
  b.onednn = cpu::onednn::version();
  b.backends = {"cpu"};
  b.cuda_built = cuda::is_built();
  if (b.cuda_built) b.backends.push_back("cuda");
  return b;
}

std::string simd_target() { return hwy::TargetName(hwy::SupportedAndGeneratedTargets()[0]); }

std::string cpu_description() {
  std::string model = "unknown CPU";
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return fmt::format("{} ({} hardware threads, {} used by kernels)", model,
                     std::thread::hardware_concurrency(), num_threads());
}

}  // namespace tessera
