// The per-element updates of the CUDA SGD, Adam / AdamW, RMSprop and Adagrad kernels
// (src/backends/cuda/optim_rules.cuh), compiled here for the host and run step after step beside the CPU
// optimizers on the same gradients, for every option and both dtypes: parameters and state must
// agree bit for bit after every step. They can, because both sides do the same IEEE operations
// in the same order (products rounded separately, never fused; sqrt and division correctly
// rounded), with coefficients cast from the same doubles. This runs everywhere, without a GPU;
// what it cannot show is that nvcc keeps those roundings on the device (mul_rn is what stops
// it from fusing), which test_cuda_optim_more.cpp checks on a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/optim_rules.cuh"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace fn = cuda::fn;

constexpr int64_t kN = 203;
constexpr int kSteps = 30;

// The gradient of step s: normal values with zeros, tiny, huge and negative ones mixed in, a NaN
// (element 0) from step 7 and an infinity (element 1) at step 11, so special values flow
// through every state buffer too.
template <class T>
std::vector<T> gradient(int s, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  std::vector<T> g(kN);
  for (int64_t i = 0; i < kN; ++i) g[i] = T(normal(rng));
  g[2] = 0;
  g[3] = T(1e-30);
  g[4] = T(-3e4);
  g[5] = T(s % 2 ? 1e-3 : -1e-3);
  if (s >= 7) g[0] = std::numeric_limits<T>::quiet_NaN();
  if (s == 11) g[1] = std::numeric_limits<T>::infinity();
  return g;
}

template <class T>
std::vector<T> initial_param() {
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  std::vector<T> p(kN);
  for (T& x : p) x = T(normal(rng));
  return p;
}

// Bitwise equality (any NaN matching any NaN) of a CPU tensor with host values.
template <class T>
void expect_bits(const Tensor& got, const std::vector<T>& want, const std::string& what) {
  const std::vector<T> g = got.detach().contiguous().to_vector<T>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) {
    const bool same =
        std::memcmp(&g[i], &want[i], sizeof(T)) == 0 || (std::isnan(g[i]) && std::isnan(want[i]));
    if (!same) {
      ADD_FAILURE() << what << ": element " << i << " CPU " << g[i] << ", rule " << want[i]
                    << std::hexfloat << " (" << g[i] << " vs " << want[i] << ")";
      return;
    }
  }
}

template <class T>
constexpr DType dtype_of() {
  return std::is_same_v<T, float> ? kFloat32 : kFloat64;
}

template <class T>
void check_sgd(const optim::SGDOptions& o, const std::string& what) {
  std::vector<T> p = initial_param<T>(), buf(kN, 0);
  Tensor param = tensor(p).requires_grad_();
  optim::SGD opt({param}, o);
  std::mt19937_64 rng(13);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<T> g = gradient<T>(s, rng);
    param.set_grad(tensor(g));
    opt.step();
    // SGD::update's argument struct: the first step's buffer is the gradient.
    const fn::SgdRule<T> rule(cuda::k::SgdArgs{o.lr, o.momentum, o.dampening, o.weight_decay,
                                               o.nesterov, o.maximize, s == 0});
    for (int64_t i = 0; i < kN; ++i)
      rule(i, p.data(), g.data(), o.momentum != 0 ? buf.data() : nullptr);
    const std::string at = what + " step " + std::to_string(s);
    expect_bits(param, p, at + " param");
    if (o.momentum != 0) expect_bits(opt.state(param).at("momentum_buffer"), buf, at + " buffer");
    if (::testing::Test::HasFailure()) return;
  }
}

// Adam (decoupled = false) or AdamW (true) with options o.
template <class T, class Opt, class Options>
void check_adam(const Options& o, bool decoupled, const std::string& what) {
  std::vector<T> p = initial_param<T>(), m(kN, 0), v(kN, 0), vmax(kN, 0);
  Tensor param = tensor(p).requires_grad_();
  Opt opt({param}, o);
  std::mt19937_64 rng(23);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<T> g = gradient<T>(s, rng);
    param.set_grad(tensor(g));
    opt.step();
    // adam_update's host coefficients for step s + 1.
    const double t = s + 1;
    const double step_size = o.lr / (1 - std::pow(o.beta1, t));
    const double bc2_sqrt = std::sqrt(1 - std::pow(o.beta2, t));
    const fn::AdamRule<T> rule(cuda::k::AdamArgs{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay,
                                                 step_size, bc2_sqrt, decoupled, o.maximize});
    for (int64_t i = 0; i < kN; ++i)
      rule(i, p.data(), g.data(), m.data(), v.data(), o.amsgrad ? vmax.data() : nullptr);
    const std::string at = what + " step " + std::to_string(s);
    expect_bits(param, p, at + " param");
    const StateDict& st = opt.state(param);
    expect_bits(st.at("exp_avg"), m, at + " exp_avg");
    expect_bits(st.at("exp_avg_sq"), v, at + " exp_avg_sq");
    if (o.amsgrad) expect_bits(st.at("max_exp_avg_sq"), vmax, at + " max_exp_avg_sq");
    if (::testing::Test::HasFailure()) return;
  }
}

template <class T>
void check_rmsprop(const optim::RMSpropOptions& o, const std::string& what) {
  std::vector<T> p = initial_param<T>(), sq(kN, 0), ga(kN, 0), buf(kN, 0);
  Tensor param = tensor(p).requires_grad_();
  ASSERT_EQ(param.dtype(), dtype_of<T>());
  optim::RMSprop opt({param}, o);
  // The kernel's argument struct, filled as RMSprop::update fills it.
  const cuda::k::RmspropArgs args{o.lr,       o.alpha,    o.eps,     o.weight_decay,
                                  o.momentum, o.centered, o.maximize};
  const fn::RmspropRule<T> rule(args);
  std::mt19937_64 rng(17);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<T> g = gradient<T>(s, rng);
    param.set_grad(tensor(g));
    opt.step();
    for (int64_t i = 0; i < kN; ++i)
      rule(i, p.data(), g.data(), sq.data(), o.centered ? ga.data() : nullptr,
           o.momentum > 0 ? buf.data() : nullptr);
    const std::string at = what + " step " + std::to_string(s);
    expect_bits(param, p, at + " param");
    const StateDict& st = opt.state(param);
    expect_bits(st.at("square_avg"), sq, at + " square_avg");
    if (o.centered) expect_bits(st.at("grad_avg"), ga, at + " grad_avg");
    if (o.momentum > 0) expect_bits(st.at("momentum_buffer"), buf, at + " momentum_buffer");
    if (::testing::Test::HasFailure()) return;
  }
}

template <class T>
void check_adagrad(const optim::AdagradOptions& o, const std::string& what) {
  std::vector<T> p = initial_param<T>(), sum(kN, T(o.initial_accumulator_value));
  Tensor param = tensor(p).requires_grad_();
  optim::Adagrad opt({param}, o);
  std::mt19937_64 rng(19);
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<T> g = gradient<T>(s, rng);
    param.set_grad(tensor(g));
    opt.step();
    // Adagrad::update's host coefficient for step s + 1.
    const double clr = o.lr / (1 + static_cast<double>(s) * o.lr_decay);
    const fn::AdagradRule<T> rule(cuda::k::AdagradArgs{clr, o.weight_decay, o.eps, o.maximize});
    for (int64_t i = 0; i < kN; ++i) rule(i, p.data(), g.data(), sum.data());
    const std::string at = what + " step " + std::to_string(s);
    expect_bits(param, p, at + " param");
    expect_bits(opt.state(param).at("sum"), sum, at + " sum");
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(CudaOptimRules, SgdMatchesTheCpuBitForBit) {
  for (double momentum : {0.0, 0.9})
    for (double dampening : {0.0, 0.3})
      for (double wd : {0.0, 0.05})
        for (bool nesterov : {false, true})
          for (bool maximize : {false, true}) {
            if (nesterov && (momentum == 0 || dampening != 0)) continue;  // SGD refuses these
            const optim::SGDOptions o{0.05, momentum, dampening, wd, nesterov, maximize};
            const std::string what = "momentum " + std::to_string(momentum) + " dampening " +
                                     std::to_string(dampening) + " wd " + std::to_string(wd) +
                                     " nesterov " + std::to_string(nesterov) + " maximize " +
                                     std::to_string(maximize);
            check_sgd<float>(o, "float32 " + what);
            check_sgd<double>(o, "float64 " + what);
          }
}

TEST(CudaOptimRules, AdamAndAdamWMatchTheCpuBitForBit) {
  for (double wd : {0.0, 0.05})
    for (bool amsgrad : {false, true})
      for (bool maximize : {false, true})
        for (auto [beta1, beta2] : {std::pair{0.9, 0.999}, std::pair{0.3, 0.6}}) {
          const std::string what = "wd " + std::to_string(wd) + " amsgrad " +
                                   std::to_string(amsgrad) + " maximize " +
                                   std::to_string(maximize) + " beta1 " + std::to_string(beta1);
          const optim::AdamOptions a{1e-2, beta1, beta2, 1e-8, wd, amsgrad, maximize};
          check_adam<float, optim::Adam>(a, false, "Adam float32 " + what);
          check_adam<double, optim::Adam>(a, false, "Adam float64 " + what);
          const optim::AdamWOptions w{1e-2, beta1, beta2, 1e-8, wd, amsgrad, maximize};
          check_adam<float, optim::AdamW>(w, true, "AdamW float32 " + what);
          check_adam<double, optim::AdamW>(w, true, "AdamW float64 " + what);
        }
}

TEST(CudaOptimRules, RmspropMatchesTheCpuBitForBit) {
  for (bool centered : {false, true})
    for (double momentum : {0.0, 0.9})
      for (double wd : {0.0, 0.05})
        for (bool maximize : {false, true})
          for (auto [alpha, eps] : {std::pair{0.99, 1e-8}, std::pair{0.5, 1e-3}}) {
            const optim::RMSpropOptions o{1e-2, alpha, eps, wd, momentum, centered, maximize};
            const std::string what = "centered " + std::to_string(centered) + " momentum " +
                                     std::to_string(momentum) + " wd " + std::to_string(wd) +
                                     " maximize " + std::to_string(maximize) + " alpha " +
                                     std::to_string(alpha);
            check_rmsprop<float>(o, "float32 " + what);
            check_rmsprop<double>(o, "float64 " + what);
          }
}

TEST(CudaOptimRules, AdagradMatchesTheCpuBitForBit) {
  for (double lr_decay : {0.0, 0.05})
    for (double wd : {0.0, 0.05})
      for (double init : {0.0, 0.3})
        for (double eps : {1e-10, 1e-2})
          for (bool maximize : {false, true}) {
            const optim::AdagradOptions o{0.1, lr_decay, wd, init, eps, maximize};
            const std::string what = "lr_decay " + std::to_string(lr_decay) + " wd " +
                                     std::to_string(wd) + " init " + std::to_string(init) +
                                     " eps " + std::to_string(eps) + " maximize " +
                                     std::to_string(maximize);
            check_adagrad<float>(o, "float32 " + what);
            check_adagrad<double>(o, "float64 " + what);
          }
}

}  // namespace
}  // namespace tessera
