// The optimizers that test_cuda_train.cpp does not cover, on cuda:0 against the CPU: RMSprop
// and Adagrad (fused kernels) for every option, a strided parameter included; their state
// dicts (and Adam's) keeping the state on the parameter's device across save and load; LBFGS
// (tensor ops only) on a small least-squares problem with and without its line search; and
// clip_grad_norm_ / clip_grad_value_ on CUDA gradients. Every test skips (GTEST_SKIP) when
// tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

// Bit-for-bit equality of a GPU tensor with the CPU's (any NaN matching any NaN).
void expect_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = values(got), w = values(want);  // exact for float32 too
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::memcmp(&g[i], &w[i], sizeof(double)) == 0 ||
          (std::isnan(g[i]) && std::isnan(w[i])))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
      return;
    }
}

using Make = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

struct Pair {
  std::vector<Tensor> cpu, gpu;
};

// The same parameters on both devices: a contiguous one, a transposed one (strided: the step
// runs on a contiguous copy written back) and an empty one.
Pair make_params(DType dt) {
  manual_seed(21);
  const Tensor p0 = randn({33, 17}, kFloat64).to(dt);
  const Tensor q0 = randn({17, 9}, kFloat64).to(dt);
  const Tensor e0 = Tensor::empty({0, 3}, dt);
  return {
      {p0.clone().requires_grad_(), q0.t().clone().requires_grad_(), e0.clone().requires_grad_()},
      {p0.to(kGpu).requires_grad_(), q0.to(kGpu).t().requires_grad_(),
       e0.to(kGpu).requires_grad_()}};
}

// `steps` updates of both optimizers with the same gradients.
void run(optim::Optimizer& c, optim::Optimizer& g, const Pair& ps, int steps, uint64_t seed) {
  manual_seed(seed);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < ps.cpu.size(); ++i) {
      const Tensor grad = randn(ps.cpu[i].shape(), kFloat64).to(ps.cpu[i].dtype());
      Tensor(ps.cpu[i]).set_grad(grad);
      Tensor(ps.gpu[i]).set_grad(grad.to(kGpu));
    }
    c.step();
    g.step();
  }
}

// Parameters and every state buffer, bit for bit: every kernel does the CPU loop's operations in
// its order (optim_rules.cuh: products never fused, IEEE sqrt and division).
void expect_same_state(const optim::Optimizer& c, const optim::Optimizer& g,
                       const std::vector<Tensor>& pc, const std::vector<Tensor>& pg,
                       const std::string& what) {
  ASSERT_EQ(pc.size(), pg.size()) << what;
  const auto same = [](const Tensor& got, const Tensor& want, const std::string& w) {
    expect_bits(got, want, w);
  };
  for (size_t i = 0; i < pc.size(); ++i) {
    const std::string pi = what + " param " + std::to_string(i);
    same(pg[i].detach(), pc[i].detach(), pi);
    const StateDict &sc = c.state(pc[i]), &sg = g.state(pg[i]);
    ASSERT_EQ(sc.size(), sg.size()) << pi;
    for (const auto& [name, t] : sc) {
      ASSERT_TRUE(sg.count(name)) << pi << " " << name;
      if (name == "step") {
        EXPECT_EQ(sg.at(name).device(), Device::cpu()) << pi;  // a host counter, as for Adam
        EXPECT_EQ(sg.at(name).item<int64_t>(), t.item<int64_t>()) << pi;
      } else {
        same(sg.at(name), t, pi + " " + name);
      }
    }
  }
}

void compare(const std::string& what, DType dt, const Make& make, int steps = 6) {
  const Pair ps = make_params(dt);
  auto c = make(ps.cpu), g = make(ps.gpu);
  run(*c, *g, ps, steps, 7);
  expect_same_state(*c, *g, ps.cpu, ps.gpu, what);
}

TEST(CudaOptimMore, RmspropMatchesTheCpuForEveryOption) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat32, kFloat64})
    for (bool centered : {false, true})
      for (double momentum : {0.0, 0.9})
        for (double wd : {0.0, 0.05})
          for (bool maximize : {false, true}) {
            const optim::RMSpropOptions o{1e-2, 0.9, 1e-6, wd, momentum, centered, maximize};
            compare("RMSprop " + std::string(dtype_name(dt)) + " centered " +
                        std::to_string(centered) + " momentum " + std::to_string(momentum) +
                        " wd " + std::to_string(wd) + " maximize " + std::to_string(maximize),
                    dt, [&](std::vector<Tensor> ps) {
                      return std::make_unique<optim::RMSprop>(ps, o);
                    });
          }
}

TEST(CudaOptimMore, AdagradMatchesTheCpuForEveryOption) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat32, kFloat64})
    for (double lr_decay : {0.0, 0.1})
      for (double wd : {0.0, 0.05})
        for (double init : {0.0, 0.25})
          for (bool maximize : {false, true}) {
            const optim::AdagradOptions o{0.1, lr_decay, wd, init, 1e-10, maximize};
            compare("Adagrad " + std::string(dtype_name(dt)) + " lr_decay " +
                        std::to_string(lr_decay) + " wd " + std::to_string(wd) + " init " +
                        std::to_string(init) + " maximize " + std::to_string(maximize),
                    dt, [&](std::vector<Tensor> ps) {
                      return std::make_unique<optim::Adagrad>(ps, o);
                    });
          }
}

// ---- state dicts ----------------------------------------------------------------------------

std::vector<Tensor> copies(const std::vector<Tensor>& ps) {
  std::vector<Tensor> out;
  for (const Tensor& p : ps) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

// Saved on the GPU, the buffers stay there (copies) and the step count on the host. Loaded into
// a fresh optimizer over GPU parameters, from the GPU's save or from the CPU's, every buffer
// lands on the GPU, and three more steps give what three more CPU steps give.
void check_state_dict(const std::string& what, const Make& make) {
  const Pair ps = make_params(kFloat32);
  auto c = make(ps.cpu), g = make(ps.gpu);
  run(*c, *g, ps, 3, 7);
  const StateDict from_gpu = g->state_dict(), from_cpu = c->state_dict();
  int buffers = 0;
  for (const auto& [key, t] : from_gpu) {
    if (key.rfind("state.", 0) != 0) continue;
    const bool count = key.size() > 5 && key.compare(key.size() - 5, 5, ".step") == 0;
    EXPECT_EQ(t.device(), count ? Device::cpu() : kGpu) << what << " " << key;
    buffers += !count;
  }
  EXPECT_GT(buffers, 0) << what;
  for (const StateDict* sd : {&from_gpu, &from_cpu}) {
    const std::string w = what + (sd == &from_gpu ? " (GPU save)" : " (CPU save)");
    const Pair again{copies(ps.cpu), copies(ps.gpu)};
    auto c2 = make(again.cpu), g2 = make(again.gpu);
    c2->load_state_dict(from_cpu);
    g2->load_state_dict(*sd);
    for (const Tensor& p : again.gpu)
      for (const auto& [name, t] : g2->state(p))
        EXPECT_EQ(t.device(), name == "step" ? Device::cpu() : kGpu) << w << " " << name;
    run(*c2, *g2, again, 3, 8);
    expect_same_state(*c2, *g2, again.cpu, again.gpu, w);
  }
}

TEST(CudaOptimMore, StateDictsKeepTheStateOnTheParametersDevice) {
  SKIP_WITHOUT_GPU();
  check_state_dict(
      "RMSprop",
      [](std::vector<Tensor> ps) {
        return std::make_unique<optim::RMSprop>(
            ps, optim::RMSpropOptions{1e-2, 0.9, 1e-6, 0.01, 0.9, true, false});
      });
  check_state_dict(
      "Adagrad",
      [](std::vector<Tensor> ps) {
        return std::make_unique<optim::Adagrad>(
            ps, optim::AdagradOptions{0.1, 0.05, 0.01, 0.1, 1e-10, false});
      });
  check_state_dict(
      "Adam",
      [](std::vector<Tensor> ps) {
        return std::make_unique<optim::Adam>(
            ps, optim::AdamOptions{1e-2, 0.9, 0.99, 1e-8, 0.0, true, false});
      });
}

// ---- LBFGS ----------------------------------------------------------------------------------

// 0.5 |A x - b|^2 over x = (x1, x2); `unused` never gets a gradient (LBFGS gathers zeros for it
// on its device).
struct LeastSquares {
  Tensor a, b;
  Tensor loss(const std::vector<Tensor>& xs) const {
    const Tensor x = cat({xs[0].reshape({-1}), xs[1].reshape({-1})});
    const Tensor r = matmul(a, x) - b;
    return 0.5 * (r * r).sum();
  }
};

struct LbfgsRun {
  std::vector<Tensor> xs;
  std::unique_ptr<optim::LBFGS> opt;
  LeastSquares ls;
  double first_loss = 0;
  Tensor step() {
    return opt->step([this] {
      opt->zero_grad();
      Tensor l = ls.loss(xs);
      l.backward();
      return l;
    });
  }
};

LbfgsRun make_lbfgs(Device device, DType dt, const optim::LBFGSOptions& o) {
  manual_seed(41);
  const Tensor a = randn({12, 5}, kFloat64).to(dt), b = randn({12}, kFloat64).to(dt);
  const Tensor x1 = randn({3}, kFloat64).to(dt), x2 = randn({2, 1}, kFloat64).to(dt);
  const Tensor unused = randn({4}, kFloat64).to(dt);
  LbfgsRun r;
  r.xs = {x1.to(device).requires_grad_(), x2.to(device).requires_grad_(),
          unused.to(device).requires_grad_()};
  r.ls = {a.to(device), b.to(device)};
  r.opt = std::make_unique<optim::LBFGS>(r.xs, o);
  return r;
}

TEST(CudaOptimMore, LbfgsSolvesLeastSquaresLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat64, kFloat32})
    for (const char* search : {"", "strong_wolfe"}) {
      const std::string what = std::string(dtype_name(dt)) + " line search '" + search + "'";
      const optim::LBFGSOptions o{.lr = 1,
                                  .max_iter = 25,
                                  .tolerance_grad = 1e-10,
                                  .tolerance_change = 1e-14,
                                  .history_size = 3,  // the history fills and rolls over
                                  .line_search_fn = search};
      LbfgsRun cpu = make_lbfgs(Device::cpu(), dt, o), gpu = make_lbfgs(kGpu, dt, o);
      for (int s = 0; s < 2; ++s) {
        const Tensor lc = cpu.step(), lg = gpu.step();
        EXPECT_EQ(lg.device(), kGpu) << what;
        EXPECT_NEAR(lg.item<double>(), lc.item<double>(), 1e-5 * std::abs(lc.item<double>()))
            << what << " step " << s;
      }
      const double tol = dt == kFloat64 ? 1e-9 : 2e-3;
      for (size_t i = 0; i < cpu.xs.size(); ++i)
        expect_close(gpu.xs[i].detach(), cpu.xs[i].detach(), tol, tol,
                     what + " x" + std::to_string(i));
      EXPECT_EQ(values(gpu.xs[2]), values(cpu.xs[2])) << what << ": the unused one moved";
      // The state: flat vectors on the GPU, scalars and counts on the host.
      const StateDict& st = gpu.opt->state(gpu.xs[0]);
      ASSERT_TRUE(st.count("d")) << what;
      EXPECT_EQ(st.at("d").device(), kGpu) << what;
      EXPECT_EQ(st.at("prev_flat_grad").device(), kGpu) << what;
      EXPECT_EQ(st.at("old_dirs.0").device(), kGpu) << what;
      EXPECT_EQ(st.at("t").device(), Device::cpu()) << what;
      EXPECT_EQ(st.at("n_iter").device(), Device::cpu()) << what;
      if (dt == kFloat64) {
        // Solved: the normal equations' residual A^T (A x - b) is tiny.
        const Tensor x = cat({gpu.xs[0].detach().reshape({-1}), gpu.xs[1].detach().reshape({-1})});
        const Tensor g = matmul(gpu.ls.a.t(), matmul(gpu.ls.a, x) - gpu.ls.b);
        EXPECT_LT(abs(g).max().item<double>(), 1e-6) << what;
      }
    }
}

TEST(CudaOptimMore, LbfgsStateDictRoundTripOnTheGpu) {
  SKIP_WITHOUT_GPU();
  const optim::LBFGSOptions o{.max_iter = 3, .history_size = 4, .line_search_fn = "strong_wolfe"};
  LbfgsRun straight = make_lbfgs(kGpu, kFloat64, o), first = make_lbfgs(kGpu, kFloat64, o);
  for (int i = 0; i < 4; ++i) straight.step();
  for (int i = 0; i < 2; ++i) first.step();
  const StateDict saved = first.opt->state_dict();
  EXPECT_EQ(saved.at("state.0.d").device(), kGpu);
  EXPECT_EQ(saved.at("state.0.old_dirs.0").device(), kGpu);
  EXPECT_EQ(saved.at("state.0.H_diag").device(), Device::cpu());
  LbfgsRun resumed = make_lbfgs(kGpu, kFloat64, o);
  for (size_t i = 0; i < resumed.xs.size(); ++i)
    Tensor(resumed.xs[i]).detach().copy_(first.xs[i].detach());
  resumed.opt->load_state_dict(saved);
  EXPECT_EQ(resumed.opt->state(resumed.xs[0]).at("old_stps.0").device(), kGpu);
  for (int i = 0; i < 2; ++i) resumed.step();
  for (size_t i = 0; i < resumed.xs.size(); ++i)
    EXPECT_EQ(values(resumed.xs[i]), values(straight.xs[i])) << "x" << i;
}

TEST(CudaOptimMore, LbfgsRefusesParametersOnTwoDevices) {
  SKIP_WITHOUT_GPU();
  const std::vector<Tensor> ps = {randn({3}).requires_grad_(),
                                  randn({2}).to(kGpu).requires_grad_()};
  try {
    optim::LBFGS opt(ps);
    ADD_FAILURE() << "no DeviceError";
  } catch (const DeviceError& e) {
    EXPECT_NE(std::string(e.what()).find("all parameters must be on one device (got cpu and "
                                         "cuda:0)"),
              std::string::npos)
        << e.what();
  }
}

// ---- gradient clipping ----------------------------------------------------------------------

// Gradients on both devices: a matrix, a transposed (strided) one, a vector, an empty one, and a
// parameter without a gradient (last).
Pair clip_params(DType dt, double scale) {
  manual_seed(51);
  const Tensor m = randn({7, 5}, kFloat64) * scale, base = randn({6, 4}, kFloat64) * scale;
  const Tensor v = randn({40}, kFloat64) * scale, e = Tensor::empty({0}, kFloat64);
  Pair ps;
  auto add = [&](const Tensor& gc, const Tensor& gg) {
    Tensor pc = zeros(gc.shape(), dt).requires_grad_();
    Tensor pg = zeros(gc.shape(), dt).to(kGpu).requires_grad_();
    pc.set_grad(gc);
    pg.set_grad(gg);
    ps.cpu.push_back(pc);
    ps.gpu.push_back(pg);
  };
  // Fresh CPU copies (to(dt) may return the tensor itself), then the GPU's.
  add(m.to(dt).clone(), m.to(dt).to(kGpu));
  add(base.to(dt).clone().t(), base.to(dt).to(kGpu).t());  // [4, 6] views of [6, 4] storage
  add(v.to(dt).clone(), v.to(dt).to(kGpu));
  add(e.to(dt).clone(), e.to(dt).to(kGpu));
  ps.cpu.push_back(zeros({3}, dt).requires_grad_());
  ps.gpu.push_back(zeros({3}, dt).to(kGpu).requires_grad_());
  return ps;
}

TEST(CudaOptimMore, ClipGradNormMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const double inf = std::numeric_limits<double>::infinity();
  for (DType dt : {kFloat32, kFloat64})
    for (double p : {2.0, 1.0, inf, 3.0, 0.5})
      for (double max_norm : {1.5, 1e6}) {  // clipped, and left (times 1)
        const std::string what = std::string(dtype_name(dt)) + " p " + std::to_string(p) +
                                 " max_norm " + std::to_string(max_norm);
        const Pair ps = clip_params(dt, 3.0);
        ASSERT_FALSE(ps.gpu[1].grad().is_contiguous()) << what;
        const Tensor tc = optim::clip_grad_norm_(ps.cpu, max_norm, p);
        const Tensor tg = optim::clip_grad_norm_(ps.gpu, max_norm, p, /*error_if_nonfinite=*/true);
        EXPECT_EQ(tg.device(), kGpu) << what;
        EXPECT_EQ(tg.dtype(), kFloat64) << what;
        const double rtol = dt == kFloat32 ? 1e-5 : 1e-12;
        expect_close(tg, tc, rtol, 0, what + " total");
        for (size_t i = 0; i + 1 < ps.cpu.size(); ++i)
          expect_close(ps.gpu[i].grad(), ps.cpu[i].grad(), rtol, rtol,
                       what + " grad " + std::to_string(i));
        EXPECT_FALSE(ps.gpu.back().grad().defined()) << what;
      }
}

TEST(CudaOptimMore, ClipGradNormNonFiniteAndMixedDevices) {
  SKIP_WITHOUT_GPU();
  Tensor a = zeros({3}).to(kGpu).requires_grad_();
  a.set_grad(tensor<float>({1.f, std::nanf(""), 2.f}).to(kGpu));
  try {
    optim::clip_grad_norm_({a}, 1.0, 2.0, true);
    ADD_FAILURE() << "no ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("the total norm of order 2 of the gradients is nan"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(values(a.grad())[2], 2.0);  // left alone
  EXPECT_TRUE(std::isnan(optim::clip_grad_norm_({a}, 1.0).item<double>()));
  EXPECT_TRUE(std::isnan(values(a.grad())[0]));  // NaN spreads, as in PyTorch

  // A CPU and a GPU gradient: the total is on the first one's device, and is the CPU's.
  Tensor c = zeros({2}, kFloat64).requires_grad_(), g = zeros({2}, kFloat64).to(kGpu);
  g.requires_grad_();
  c.set_grad(tensor<double>({3.0, 0.0}));
  g.set_grad(tensor<double>({0.0, 4.0}).to(kGpu));
  const Tensor total = optim::clip_grad_norm_({g, c}, 2.5);
  EXPECT_EQ(total.device(), kGpu);
  EXPECT_DOUBLE_EQ(total.item<double>(), 5.0);
  EXPECT_NEAR(values(g.grad())[1], 2.0, 1e-6);
  EXPECT_NEAR(c.grad().to_vector<double>()[0], 1.5, 1e-6);
}

TEST(CudaOptimMore, ClipGradValueMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat32, kFloat64}) {
    const Pair ps = clip_params(dt, 3.0);
    optim::clip_grad_value_(ps.cpu, 0.75);
    optim::clip_grad_value_(ps.gpu, 0.75);
    for (size_t i = 0; i + 1 < ps.cpu.size(); ++i)
      expect_bits(ps.gpu[i].grad(), ps.cpu[i].grad(), "clip_grad_value_ " + std::to_string(i));
  }
}

}  // namespace
}  // namespace tessera
