// Mixed precision on cuda:0: autocast lowers matmul (cuBLAS in 16 bits) and the convolutions
// (cuDNN natively in 16 bits) and upcasts softmax and reductions exactly as on the CPU,
// gradients of float32 parameters come back float32, and the GradScaler's inf/NaN probe (mul,
// sum, add, ne on the device) gives the CPU's scale sequence. Every result is compared with the
// same computation on the CPU. Every test skips (GTEST_SKIP) without a CUDA device (the
// convolution test also in a build without cuDNN).
#include <gtest/gtest.h>

#include <limits>

#include "cuda_test_util.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;

namespace F = nn::functional;

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat32, &g);
}

Tensor leaf(const Tensor& t, Device d) { return t.to(d).detach().requires_grad_(true); }

// logits and gradients of a two-layer MLP under autocast on device d.
std::vector<Tensor> mlp_run(Device d, DType dt, DType& logits_dtype) {
  const Tensor x = rnd({8, 12}, 1).to(d);
  const Tensor y = tensor<int64_t>({0, 1, 2, 3, 0, 1, 2, 3}).to(d);
  std::vector<Tensor> p = {leaf(rnd({16, 12}, 2) * 0.3, d), leaf(rnd({16}, 3) * 0.1, d),
                           leaf(rnd({4, 16}, 4) * 0.3, d), leaf(rnd({4}, 5) * 0.1, d)};
  Tensor loss;
  {
    amp::Autocast guard({.device = d.type, .dtype = dt});
    const Tensor logits = F::linear(relu(F::linear(x, p[0], p[1])), p[2], p[3]);
    logits_dtype = logits.dtype();
    loss = F::cross_entropy(logits, y);
  }
  EXPECT_EQ(loss.dtype(), kFloat32);
  std::vector<Tensor> out = autograd::grad({loss}, p);
  out.insert(out.begin(), loss);
  return out;
}

TEST(CudaAutocast, MlpMatchesCpuAutocast) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat16, kBFloat16}) {
    DType gpu_dtype = kFloat32, cpu_dtype = kFloat32;
    const auto gpu = mlp_run(kGpu, dt, gpu_dtype);
    const auto cpu = mlp_run(Device::cpu(), dt, cpu_dtype);
    EXPECT_EQ(gpu_dtype, dt);
    EXPECT_EQ(cpu_dtype, dt);
    const double tol = dt == kFloat16 ? 1e-2 : 5e-2;  // 16-bit roundings in other orders
    for (size_t i = 0; i < gpu.size(); ++i) {
      EXPECT_EQ(gpu[i].dtype(), kFloat32) << i;
      expect_close(gpu[i], cpu[i], tol, tol, "mlp output " + std::to_string(i));
    }
  }
}

TEST(CudaAutocast, ConvolutionsAndSoftmax) {
  SKIP_WITHOUT_CUDNN();
  const Tensor img = rnd({2, 3, 9, 9}, 10), w = rnd({4, 3, 3, 3}, 11) * 0.3, b = rnd({4}, 12);
  for (DType dt : {kFloat16, kBFloat16}) {
    Tensor yg, sg;
    {
      amp::Autocast guard({.device = DeviceType::CUDA, .dtype = dt});
      yg = conv2d(img.to(kGpu), w.to(kGpu), b.to(kGpu), {2}, {1});
      sg = softmax(yg.flatten(1), 1);
    }
    EXPECT_EQ(yg.dtype(), dt);
    EXPECT_EQ(sg.dtype(), kFloat32);
    const Tensor yc = conv2d(img.to(dt), w.to(dt), b.to(dt), {2}, {1});
    expect_close(yg, yc, 1e-2, 1e-2, "conv2d");
    expect_close(sg, softmax(yc.to(kFloat32).flatten(1), 1), 1e-5, 1e-6, "softmax");
  }
}

TEST(CudaAutocast, ScopesFollowTheDeviceType) {
  SKIP_WITHOUT_GPU();
  const Tensor a = rnd({4, 5}, 20).to(kGpu), b = rnd({5, 3}, 21).to(kGpu);
  {
    amp::Autocast cpu_only({.device = DeviceType::CPU});
    EXPECT_EQ(matmul(a, b).dtype(), kFloat32);
  }
  amp::Autocast guard({.device = DeviceType::CUDA});
  EXPECT_EQ(matmul(a, b).dtype(), kFloat16);  // CUDA's default autocast dtype
}

// The scale after each update with inf/NaN injected at steps 1, 2 and 6 (interval 3).
std::vector<double> scale_sequence(Device d) {
  constexpr double inf = std::numeric_limits<double>::infinity();
  Tensor p = tensor<float>({1, 2, 3}).to(d).requires_grad_(true);
  optim::SGD opt({p}, {.lr = 0.125});
  optim::GradScaler scaler({.growth_interval = 3});
  std::vector<double> scales;
  for (int step = 0; step < 10; ++step) {
    std::vector<double> c{0.5, -1.0, 2.0};
    if (step == 1 || step == 2) c[1] = inf;
    if (step == 6) c[2] = std::numeric_limits<double>::quiet_NaN();
    opt.zero_grad();
    scaler.scale((p * tensor(c).to(kFloat32).to(d)).sum()).backward();
    scaler.step(opt);
    scaler.update();
    scales.push_back(scaler.get_scale());
  }
  return scales;
}

TEST(CudaGradScaler, SequenceMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<double> want = {65536, 32768, 16384, 16384, 16384,
                                    32768, 16384, 16384, 16384, 32768};
  EXPECT_EQ(scale_sequence(Device::cpu()), want);
  EXPECT_EQ(scale_sequence(kGpu), want);
}

}  // namespace
}  // namespace tessera
