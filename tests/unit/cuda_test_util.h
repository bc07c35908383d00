#pragma once
// Shared by the CUDA device tests: skipping without a GPU and comparing a GPU result with the
// CPU's.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "tessera/ops/primitive.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

#define SKIP_WITHOUT_GPU()                                                                 \
  do {                                                                                     \
    if (!::tessera::cuda::is_available())                                                  \
      GTEST_SKIP() << "no CUDA device: "                                                   \
                   << (::tessera::cuda::is_built() ? ::tessera::cuda::unavailable_reason() \
                                                   : "not built");                         \
  } while (0)

/// Skips a test that needs the CUDA convolutions where they were not built: cuDNN is an optional
/// dependency (found next to the toolkit or under CUDNN_ROOT, cmake/Dependencies.cmake), and
/// without it the conv primitives have no CUDA kernel at all.
#define SKIP_WITHOUT_CUDNN()                                                                \
  do {                                                                                      \
    SKIP_WITHOUT_GPU();                                                                     \
    if (!::tessera::cuda_test::has_cuda_conv())                                             \
      GTEST_SKIP() << "built without cuDNN: the convolutions have no CUDA kernel (set "     \
                      "CUDNN_ROOT to a cuDNN with include/cudnn.h and lib/libcudnn.so and " \
                      "configure again)";                                                   \
  } while (0)

namespace tessera::cuda_test {

/// Whether conv has a CUDA kernel (a build with cuDNN).
inline bool has_cuda_conv() {
  for (const Kernel& k : prim("conv").kernels)
    if (k.device == DeviceType::CUDA) return true;
  return false;
}

inline const Device kGpu = Device::cuda(0);

/// The values as float64 on the host.
inline std::vector<double> values(const Tensor& t) {
  return t.to(Device::cpu()).to(kFloat64).contiguous().to_vector<double>();
}

/// |got - want| <= atol + rtol * |want| elementwise, NaNs and infinities matching; got on the
/// GPU, want on the CPU.
inline void expect_close(const Tensor& got, const Tensor& want, double rtol, double atol,
                         const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.device(), kGpu) << what;
  const std::vector<double> g = values(got), w = values(want);
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const bool same_special = (std::isnan(g[i]) && std::isnan(w[i])) || g[i] == w[i];
    if (!same_special && !(std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i]))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
      ++bad;
    }
  }
}

/// The same float bits, any NaN matching any NaN.
inline bool same_bits(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::memcmp(&a, &b, sizeof a) == 0;
}

/// Distance in ulps between two finite floats (adjacent floats are 1 apart, -0 and +0 are 0
/// apart, subnormals count like the others).
inline double ulp_distance(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, sizeof ia);
  std::memcpy(&ib, &b, sizeof ib);
  const auto key = [](int32_t i) { return i < 0 ? -static_cast<double>(i & 0x7fffffff) : i; };
  return std::abs(key(ia) - key(ib));
}

/// got (on the GPU) and want (on the CPU) hold the same bytes element for element: -0.0 is not
/// +0.0 and NaN payloads count (what sorts, gathers and exact sums must give).
inline void expect_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Tensor g = got.to(Device::cpu()).contiguous(), w = want.contiguous();
  const auto size = static_cast<size_t>(g.itemsize());
  const auto* pg = static_cast<const char*>(g.raw_data());
  const auto* pw = static_cast<const char*>(w.raw_data());
  for (int64_t i = 0; i < g.numel(); ++i)
    if (std::memcmp(pg + i * size, pw + i * size, size) != 0) {
      ADD_FAILURE() << what << ": element " << i << " differs (GPU "
                    << values(g.reshape({-1}).narrow(0, i, 1))[0] << ", CPU "
                    << values(w.reshape({-1}).narrow(0, i, 1))[0] << ")";
      return;
    }
}

/// Whether p has a CUDA kernel for these inputs (its kernels' dtype predicates: no GPU needed),
/// expecting that exactly when the CPU's inference accepts them (the CPU kernels follow the same
/// rules); `what` names the case in a failure. Returns whether CUDA has a kernel.
inline bool expect_cuda_kernel_iff_cpu_takes(const Primitive& p, const std::vector<Tensor>& in,
                                             const Attrs& a, const std::string& what) {
  bool cpu = true;
  try {
    (void)p.infer(in, a);
  } catch (const Error&) {
    cpu = false;
  }
  bool gpu = false;
  for (const Kernel& k : p.kernels)
    gpu |= k.device == DeviceType::CUDA && (!k.supports || k.supports(in, a));
  EXPECT_EQ(gpu, cpu) << what << ": the CPU " << (cpu ? "accepts" : "refuses") << " it, CUDA "
                      << (gpu ? "has a kernel" : "has none");
  return gpu;
}

/// The next synchronization raises the device fault record's IndexError for `op` and a dim of
/// `size`, and clears it (the one after raises nothing).
inline void expect_index_error_at_sync(const std::string& op, const std::string& size) {
  try {
    cuda::synchronize();
    ADD_FAILURE() << op << ": no IndexError";
  } catch (const IndexError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("out of bounds for a dim of size " + size), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(cuda::synchronize());  // cleared
}

}  // namespace tessera::cuda_test
