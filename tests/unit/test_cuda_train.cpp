// What training a classifier on a GPU needs beyond the elementwise ops, reductions and matmul:
// integer comparisons and logical ops, any/all, gather / scatter_add / index_select /
// masked_fill (cross_entropy's target pick and its backward), argmax (accuracy), the fused
// SGD / Adam / AdamW steps, and an MLP trained for 20 steps on cuda:0 against the same
// training on the CPU. Every result is compared with the CPU's (float64 where it matters).
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <cmath>
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

// Exact equality of a GPU result with the CPU's (integers, bools, selections).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<double> g = values(got), w = values(want);
  for (size_t i = 0; i < g.size(); ++i)
    if (!(g[i] == w[i] || (std::isnan(g[i]) && std::isnan(w[i])))) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
      return;
    }
}

// ---- comparisons of integers, logical ops, any / all ---------------------------------------

TEST(CudaIndexing, IntegerComparisonsAndLogicalOpsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(11);
  const Tensor a = randint(-3, 4, {5, 9}), b = randint(-3, 4, {9});
  for (DType dt : {kInt64, kInt32, kInt8, kUInt8, kBool}) {
    const Tensor x = a.to(dt), y = b.to(dt), xg = x.to(kGpu), yg = y.to(kGpu);
    const std::string n(dtype_name(dt));
    expect_same(eq(xg, yg), eq(x, y), "eq " + n);
    expect_same(ne(xg, yg), ne(x, y), "ne " + n);
    expect_same(lt(xg, yg), lt(x, y), "lt " + n);
    expect_same(le(xg, yg), le(x, y), "le " + n);
    expect_same(gt(xg, yg), gt(x, y), "gt " + n);
    expect_same(ge(xg, yg), ge(x, y), "ge " + n);
    expect_same(logical_and(xg, yg), logical_and(x, y), "logical_and " + n);
    expect_same(logical_or(xg, yg), logical_or(x, y), "logical_or " + n);
    expect_same(logical_xor(xg, yg), logical_xor(x, y), "logical_xor " + n);
    expect_same(logical_not(xg), logical_not(x), "logical_not " + n);
    expect_same(ne(xg, 2), ne(x, 2), "ne scalar " + n);
  }
  // Floats: NaN is true for the logical ops (x != 0).
  const Tensor f = tensor<float>({0.f, 1.5f, std::nanf(""), -0.f, 2.f, 0.f});
  expect_same(logical_not(f.to(kGpu)), logical_not(f), "logical_not float");
  const Tensor r = flip(f, {0});
  expect_same(logical_and(f.to(kGpu), r.to(kGpu)), logical_and(f, r), "logical_and float");
}

TEST(CudaIndexing, AnyAllMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(12);
  const Tensor x = randint(0, 2, {6, 4, 5}).to(kBool);
  for (const Dims& dims : std::vector<Dims>{{}, {0}, {1}, {2}, {0, 2}}) {
    for (bool keep : {false, true}) {
      expect_same(any(x.to(kGpu), dims, keep), any(x, dims, keep), "any bool");
      expect_same(all(x.to(kGpu), dims, keep), all(x, dims, keep), "all bool");
    }
  }
  const Tensor i = randint(-1, 2, {7, 3});  // int64 with zeros
  expect_same(any(i.to(kGpu), {1}), any(i, {1}), "any int64");
  expect_same(all(i.to(kGpu), {0}), all(i, {0}), "all int64");
  const Tensor empty = zeros({3, 0}, kFloat32);
  expect_same(any(empty.to(kGpu), {1}), any(empty, {1}), "any empty");
  expect_same(all(empty.to(kGpu), {1}), all(empty, {1}), "all empty");
}

// ---- gather, scatter_add, index_select, masked_fill -------------------------------------------

TEST(CudaIndexing, GatherScatterAddIndexSelectMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(13);
  for (DType dt : {kFloat32, kFloat64}) {
    const Tensor x = randn({6, 9}, kFloat64).to(dt);
    for (int64_t d : {0, 1}) {
      const int64_t n = x.size(d);
      const Tensor idx = randint(0, n, {4, 5});
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(d);
      expect_same(gather(x.to(kGpu), d, idx.to(kGpu)), gather(x, d, idx), "gather " + what);
      // A strided (transposed) input.
      const Tensor xt = x.t();
      expect_same(gather(xt.to(kGpu).t().t(), d, idx.to(kGpu)), gather(xt, d, idx),
                  "gather transposed " + what);
      // scatter_add with repeated indices (atomics: float sums may differ in the last bits).
      const Tensor src = randn({4, 5}, kFloat64).to(dt);
      const double rtol = dt == kFloat32 ? 1e-6 : 1e-14;
      expect_close(scatter_add(x.to(kGpu), d, idx.to(kGpu), src.to(kGpu)),
                   scatter_add(x, d, idx, src), rtol, rtol, "scatter_add " + what);
      const Tensor sel = randint(0, n, {7});
      expect_same(index_select(x.to(kGpu), d, sel.to(kGpu)), index_select(x, d, sel),
                  "index_select " + what);
    }
  }
  // int64 scatter_add (atomic adds of 64-bit integers).
  const Tensor xi = randint(-50, 50, {3, 8});
  const Tensor ii = randint(0, 8, {3, 20});
  const Tensor si = randint(-50, 50, {3, 20});
  expect_same(scatter_add(xi.to(kGpu), 1, ii.to(kGpu), si.to(kGpu)), scatter_add(xi, 1, ii, si),
              "scatter_add int64");
  // masked_fill with a broadcast mask, every width.
  const Tensor mask = randint(0, 2, {1, 9}).to(kBool);
  for (DType dt : {kFloat32, kFloat64, kFloat16, kInt64, kBool}) {
    const Tensor x = randint(0, 5, {6, 9}).to(dt);
    expect_same(masked_fill(x.to(kGpu), mask.to(kGpu), 1), masked_fill(x, mask, 1),
                "masked_fill " + std::string(dtype_name(dt)));
  }
}

TEST(CudaIndexing, GatherGradientIsScatterAdd) {
  SKIP_WITHOUT_GPU();
  manual_seed(14);
  const Tensor x = randn({5, 4}, kFloat64);
  const Tensor idx = randint(0, 4, {5, 3});
  const Tensor w = randn({5, 3}, kFloat64);
  Tensor xc = x.clone().requires_grad_(), xg = x.to(kGpu).requires_grad_();
  (gather(xc, 1, idx) * w).sum().backward();
  (gather(xg, 1, idx.to(kGpu)) * w.to(kGpu)).sum().backward();
  expect_close(xg.grad(), xc.grad(), 1e-14, 1e-14, "d gather / dx");
}

TEST(CudaIndexing, OutOfRangeIndexIsAnIndexErrorAtTheNextSynchronization) {
  SKIP_WITHOUT_GPU();
  const Tensor x = arange(10, kFloat32).reshape({2, 5}).to(kGpu);
  const Tensor bad = tensor<int64_t>({0, 9, 1, -1}, Shape{2, 2}).to(kGpu);
  Tensor y;
  EXPECT_NO_THROW(y = gather(x, 1, bad));  // queued: the check runs on the device
  try {
    cuda::synchronize();
    ADD_FAILURE() << "no IndexError";
  } catch (const IndexError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("gather"), std::string::npos) << msg;
    EXPECT_NE(msg.find("out of bounds for a dim of size 5"), std::string::npos) << msg;
  }
  // The context is still usable and the fault was cleared; good elements were written.
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_EQ(values(y)[0], 0.0);
  EXPECT_EQ(values(y)[2], 6.0);
  const Tensor src = ones({2, 2}, kFloat32).to(kGpu);
  (void)scatter_add(x, 1, bad, src);
  EXPECT_THROW((void)values(x), IndexError);  // a host copy synchronizes too
  const Tensor ok = gather(x, 1, tensor<int64_t>({4, 0}, Shape{2, 1}).to(kGpu));
  EXPECT_EQ(values(ok), (std::vector<double>{4.0, 5.0}));
}

// An empty result still has its indices checked, as the CPU does: index_select of a tensor
// with another dim of size 0, scatter_add into a dim of size 0 (every index out of range).
TEST(CudaIndexing, EmptyResultsStillCheckTheirIndices) {
  SKIP_WITHOUT_GPU();
  const auto expect_raise = cuda_test::expect_index_error_at_sync;
  const Tensor x = zeros({0, 5}, kFloat32), bad = tensor<int64_t>({1, 7});
  EXPECT_THROW((void)index_select(x, 1, bad), IndexError);  // the CPU
  Tensor y;
  EXPECT_NO_THROW(y = index_select(x.to(kGpu), 1, bad.to(kGpu)));  // checked on the device
  EXPECT_EQ(y.shape(), (Shape{0, 2}));
  expect_raise("index_select", "5");
  (void)index_select(x.to(kGpu), 1, tensor<int64_t>({4, 0}).to(kGpu));
  EXPECT_NO_THROW(cuda::synchronize());  // good indices: no error
  const Tensor z = zeros({2, 0}, kFloat32), i = zeros({2, 1}, kInt64), src = ones({2, 1});
  EXPECT_THROW((void)scatter_add(z, 1, i, src), IndexError);  // the CPU
  Tensor w;
  EXPECT_NO_THROW(w = scatter_add(z.to(kGpu), 1, i.to(kGpu), src.to(kGpu)));
  EXPECT_EQ(w.shape(), (Shape{2, 0}));
  expect_raise("scatter_add", "0");
}

// ---- argmax / argmin ------------------------------------------------------------------------

TEST(CudaIndexing, ArgmaxArgminMatchTheCpuWithTiesAndNaN) {
  SKIP_WITHOUT_GPU();
  manual_seed(15);
  // Few distinct values: many ties (the first index wins), and a NaN in some rows.
  Tensor base = randint(0, 4, {7, 300}).to(kFloat64).contiguous();
  base.data_ptr<double>()[2 * 300 + 17] = std::numeric_limits<double>::quiet_NaN();
  base.data_ptr<double>()[5 * 300 + 250] = std::numeric_limits<double>::quiet_NaN();
  for (DType dt : {kFloat32, kFloat64, kFloat16}) {
    const Tensor x = base.to(dt);
    for (const Tensor& v : {x, x.t()}) {
      for (std::optional<int64_t> d :
           {std::optional<int64_t>{}, std::optional<int64_t>{0}, std::optional<int64_t>{1}}) {
        for (bool keep : {false, true}) {
          const std::string what = std::string(dtype_name(dt)) + " " + shape_str(v.shape()) +
                                   (d ? " dim " + std::to_string(*d) : " all");
          expect_same(argmax(v.to(kGpu), d, keep), argmax(v, d, keep), "argmax " + what);
          expect_same(argmin(v.to(kGpu), d, keep), argmin(v, d, keep), "argmin " + what);
        }
      }
    }
  }
}

// ---- optimizers -----------------------------------------------------------------------------

// Runs `steps` updates of make(params) on a CPU and a GPU copy of the same parameters with the
// same gradients (one strided parameter included), then compares parameters.
template <class Make>
void compare_optimizer(const std::string& what, DType dt, Make make, int steps = 5) {
  manual_seed(21);
  const Tensor p0 = randn({33, 17}, kFloat64).to(dt);
  const Tensor q0 = randn({17, 9}, kFloat64).to(dt);
  std::vector<Tensor> cpu = {p0.clone().requires_grad_(), q0.t().clone().requires_grad_()};
  std::vector<Tensor> gpu = {p0.to(kGpu).requires_grad_(), q0.to(kGpu).t().requires_grad_()};
  auto opt_c = make(cpu), opt_g = make(gpu);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < cpu.size(); ++i) {
      const Tensor g = randn(cpu[i].shape(), kFloat64).to(dt);
      cpu[i].set_grad(g);
      gpu[i].set_grad(g.to(kGpu));
    }
    opt_c->step();
    opt_g->step();
  }
  // Bit for bit: the kernels do the CPU loops' operations in order (optim_rules.cuh).
  for (size_t i = 0; i < cpu.size(); ++i)
    cuda_test::expect_bits(gpu[i].detach(), cpu[i].detach(), what + " param " + std::to_string(i));
}

TEST(CudaOptim, SgdMatchesTheCpuForEveryOption) {
  SKIP_WITHOUT_GPU();
  const std::vector<optim::SGDOptions> cases = {
      {0.1, 0, 0, 0, false, false},        {0.1, 0.9, 0, 0, false, false},
      {0.1, 0.9, 0.1, 1e-2, false, false}, {0.05, 0.9, 0, 1e-2, true, false},
      {0.1, 0.5, 0, 0, false, true},
  };
  for (DType dt : {kFloat32, kFloat64})
    for (size_t c = 0; c < cases.size(); ++c)
      compare_optimizer("SGD case " + std::to_string(c), dt, [&](std::vector<Tensor> ps) {
        return std::make_unique<optim::SGD>(ps, cases[c]);
      });
}

TEST(CudaOptim, AdamAndAdamWMatchTheCpuForEveryOption) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kFloat32, kFloat64}) {
    for (bool amsgrad : {false, true}) {
      for (bool maximize : {false, true}) {
        for (double wd : {0.0, 0.05}) {
          const std::string what = std::string(dtype_name(dt)) + (amsgrad ? " amsgrad" : "") +
                                   (maximize ? " maximize" : "") + " wd " + std::to_string(wd);
          compare_optimizer("Adam " + what, dt, [&](std::vector<Tensor> ps) {
            return std::make_unique<optim::Adam>(
                ps, optim::AdamOptions{1e-2, 0.9, 0.99, 1e-8, wd, amsgrad, maximize});
          });
          compare_optimizer("AdamW " + what, dt, [&](std::vector<Tensor> ps) {
            return std::make_unique<optim::AdamW>(
                ps, optim::AdamWOptions{1e-2, 0.9, 0.99, 1e-8, wd, amsgrad, maximize});
          });
        }
      }
    }
  }
}

// RMSprop, Adagrad, LBFGS and gradient clipping: test_cuda_optim_more.cpp.

// ---- the user story: an MLP classifier trained on cuda:0 ---------------------------------------

struct Mlp {
  std::shared_ptr<nn::Sequential> net;
  Tensor x, y;
};

Mlp make_mlp(Device device) {
  manual_seed(31);  // the same weights and data on both devices
  auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(12, 32),
                                              std::make_shared<nn::ReLU>(),
                                              std::make_shared<nn::Linear>(32, 5));
  Tensor x = randn({64, 12});
  Tensor y = randint(0, 5, {64});
  net->to(device);
  return {net, x.to(device), y.to(device)};
}

// Losses and accuracies of `steps` training steps.
template <class MakeOpt>
std::pair<std::vector<double>, std::vector<double>> train(Device device, MakeOpt make_opt,
                                                          int steps) {
  Mlp m = make_mlp(device);
  auto opt = make_opt(m.net->parameters());
  std::vector<double> losses, accuracies;
  for (int s = 0; s < steps; ++s) {
    opt->zero_grad();
    const Tensor logits = m.net->forward(m.x);
    const Tensor loss = nn::functional::cross_entropy(logits, m.y);
    loss.backward();
    opt->step();
    losses.push_back(loss.item<double>());
    accuracies.push_back(eq(argmax(logits, 1), m.y).to(kFloat32).mean().item<double>());
  }
  return {losses, accuracies};
}

template <class MakeOpt>
void expect_same_training(const std::string& what, MakeOpt make_opt) {
  constexpr int kSteps = 20;
  const auto [cpu_loss, cpu_acc] = train(Device::cpu(), make_opt, kSteps);
  const auto [gpu_loss, gpu_acc] = train(kGpu, make_opt, kSteps);
  ASSERT_EQ(gpu_loss.size(), cpu_loss.size());
  for (size_t s = 0; s < cpu_loss.size(); ++s) {
    EXPECT_NEAR(gpu_loss[s], cpu_loss[s], 1e-4 * std::abs(cpu_loss[s])) << what << " step " << s;
    EXPECT_NEAR(gpu_acc[s], cpu_acc[s], 1.0 / 64 + 1e-9) << what << " step " << s;
  }
  EXPECT_LT(cpu_loss.back(), cpu_loss.front()) << what << ": the CPU run did not learn";
}

TEST(CudaTrain, MlpClassifierTrainsLikeOnTheCpu) {
  SKIP_WITHOUT_GPU();
  expect_same_training("SGD momentum", [](std::vector<Tensor> ps) {
    return std::make_unique<optim::SGD>(ps, optim::SGDOptions{0.1, 0.9, 0, 1e-4, true, false});
  });
  expect_same_training("AdamW", [](std::vector<Tensor> ps) {
    return std::make_unique<optim::AdamW>(ps, optim::AdamWOptions{1e-2});
  });
}

TEST(CudaTrain, OutOfRangeTargetIsAnIndexError) {
  SKIP_WITHOUT_GPU();
  const Tensor logits = randn({3, 4}).to(kGpu);
  const Tensor target = tensor<int64_t>({1, 4, 0}).to(kGpu);
  try {
    (void)nn::functional::cross_entropy(logits, target);
    ADD_FAILURE() << "no IndexError";
  } catch (const IndexError& e) {
    EXPECT_NE(std::string(e.what()).find("target 4 is out of bounds for 4 classes"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tessera
