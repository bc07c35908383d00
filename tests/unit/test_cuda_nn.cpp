// The CUDA convolution (cuDNN) and pooling kernels against the CPU's results on the same
// inputs: each primitive over 1-d, 2-d and 3-d geometries (stride, padding, dilation, groups,
// ceil_mode, count_include_pad, strided inputs, ties and NaNs), their gradients through
// autograd, and ten training steps of LeNet-5 on cuda:0 against the same steps on the CPU.
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false; the convolution and
// LeNet tests also in a build without cuDNN (no CUDA convolutions).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/autograd/autograd.h"
#include "tessera/nn/nn.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;
using Ints = std::vector<int64_t>;

// cuDNN and the CPU's GEMM sum in different orders: float32 agrees to a few units of
// rounding of the sums' magnitude (inputs are O(1), sums of up to ~150 terms).
struct ConvTol {
  DType dtype;
  double rtol, atol;
};
const std::vector<ConvTol> kConvTols = {{kFloat32, 1e-4, 1e-4}, {kFloat64, 1e-11, 1e-11}};

struct ConvCase {
  Shape x;  // (N, C, *spatial)
  Shape w;  // conv: (O, C / groups, *k); conv_transpose: (C, O / groups, *k)
  Ints stride, padding, dilation;
  int64_t groups;
  Ints output_padding;  // conv_transpose only
  std::string name;
};

const std::vector<ConvCase> kConvCases = {
    {{2, 3, 17}, {4, 3, 3}, {1}, {0}, {1}, 1, {0}, "1d"},
    {{2, 4, 20}, {6, 2, 5}, {2}, {2}, {2}, 2, {1}, "1d stride 2 pad 2 dilation 2 groups 2"},
    {{2, 3, 9, 11}, {5, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, {0, 0}, "2d pad 1"},
    {{3, 4, 12, 10}, {8, 2, 3, 2}, {2, 1}, {1, 0}, {1, 2}, 2, {1, 0}, "2d stride/dilation mixed"},
    {{2, 6, 8, 8}, {6, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 6, {1, 1}, "2d depthwise stride 2"},
    {{1, 2, 6, 6}, {3, 2, 1, 1}, {1, 1}, {0, 0}, {1, 1}, 1, {0, 0}, "2d 1x1"},
    {{2, 2, 5, 6, 7}, {4, 2, 3, 3, 2}, {1, 2, 1}, {1, 0, 1}, {1, 1, 2}, 1, {0, 1, 0}, "3d"},
};

std::string label(const std::string& what, const ConvCase& c, DType dt) {
  return what + " " + c.name + " " + std::string(dtype_name(dt));
}

Tensor cpu_randn(const Shape& s, DType dt) { return randn(s, kFloat64).to(dt); }

// A new leaf requiring grad with t's values, on device d.
Tensor leaf(const Tensor& t, Device d) { return t.to(d).detach().requires_grad_(); }

TEST(CudaConv, ForwardMatchesTheCpu) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(11);
  for (const ConvTol& tol : kConvTols)
    for (const ConvCase& c : kConvCases) {
      const Tensor x = cpu_randn(c.x, tol.dtype), w = cpu_randn(c.w, tol.dtype);
      const Tensor b = cpu_randn({c.w[0]}, tol.dtype);
      const Tensor want = conv(x, w, b, c.stride, c.padding, c.dilation, c.groups);
      const Tensor got =
          conv(x.to(kGpu), w.to(kGpu), b.to(kGpu), c.stride, c.padding, c.dilation, c.groups);
      expect_close(got, want, tol.rtol, tol.atol, label("conv", c, tol.dtype));
      // Without bias.
      expect_close(conv(x.to(kGpu), w.to(kGpu), {}, c.stride, c.padding, c.dilation, c.groups),
                   conv(x, w, {}, c.stride, c.padding, c.dilation, c.groups), tol.rtol, tol.atol,
                   label("conv without bias", c, tol.dtype));
    }
}

TEST(CudaConv, StridedInputsArePackedFirst) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(12);
  // Views made on each device: x with H and W swapped, w and b sliced.
  const Tensor xb = randn({2, 3, 10, 9}, kFloat32), wb = randn({4, 3, 3, 5}, kFloat32);
  const Tensor bb = randn({8}, kFloat32);
  const Tensor want = conv2d(xb.transpose(2, 3), wb.slice(3, 1, 4), bb.slice(0, 0, 8, 2), {2}, {1});
  const Tensor got = conv2d(xb.to(kGpu).transpose(2, 3), wb.to(kGpu).slice(3, 1, 4),
                            bb.to(kGpu).slice(0, 0, 8, 2), {2}, {1});
  expect_close(got, want, 1e-4, 1e-4, "conv2d of views");
}

TEST(CudaConv, TransposeMatchesTheCpu) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(13);
  for (const ConvTol& tol : kConvTols)
    for (const ConvCase& c : kConvCases) {
      // The transposed call takes the conv's output side as input: x (N, O, *grid).
      Shape xs = c.x;
      xs[1] = c.w[0];
      Shape ws = c.w;  // (C_in = O, C_out / groups, *k)
      ws[1] = c.x[1] / c.groups;
      const Tensor x = cpu_randn(xs, tol.dtype), w = cpu_randn(ws, tol.dtype);
      const Tensor b = cpu_randn({c.x[1]}, tol.dtype);
      const Tensor want =
          conv_transpose(x, w, b, c.stride, c.padding, c.output_padding, c.groups, c.dilation);
      const Tensor got = conv_transpose(x.to(kGpu), w.to(kGpu), b.to(kGpu), c.stride, c.padding,
                                        c.output_padding, c.groups, c.dilation);
      expect_close(got, want, tol.rtol, tol.atol, label("conv_transpose", c, tol.dtype));
    }
}

// output_padding >= stride (allowed when the dilation is larger): the grid side is a prefix
// of the whole convolution output, which the kernel pads with zeros for cuDNN.
TEST(CudaConv, TransposeWithOutputPaddingPastTheStride) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(14);
  const Tensor x = randn({2, 3, 6, 5}, kFloat64), w = randn({3, 2, 3, 3}, kFloat64);
  const Tensor want = conv_transpose2d(x, w, {}, {1}, {1}, {2, 1}, 1, {3, 2});
  const Tensor xg = leaf(x, kGpu), wg = leaf(w, kGpu);
  const Tensor got = conv_transpose2d(xg, wg, {}, {1}, {1}, {2, 1}, 1, {3, 2});
  expect_close(got, want, 1e-11, 1e-11, "conv_transpose2d output_padding 2 > stride 1");
  // Its weight gradient is conv_weight_grad with a prefix gradient.
  const Tensor xc = leaf(x, Device::cpu()), wc = leaf(w, Device::cpu());
  const Tensor r = randn(want.shape(), kFloat64);
  (conv_transpose2d(xc, wc, {}, {1}, {1}, {2, 1}, 1, {3, 2}) * r).sum().backward();
  (got * r.to(kGpu)).sum().backward();
  expect_close(xg.grad(), xc.grad(), 1e-11, 1e-11, "dx");
  expect_close(wg.grad(), wc.grad(), 1e-11, 1e-11, "dw");
}

// conv's vjp calls conv_transpose (dx) and conv_weight_grad (dw), and sums dy for the bias.
TEST(CudaConv, GradientsMatchTheCpu) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(15);
  for (const ConvTol& tol : kConvTols)
    for (const ConvCase& c : kConvCases) {
      const Tensor x = cpu_randn(c.x, tol.dtype), w = cpu_randn(c.w, tol.dtype);
      const Tensor b = cpu_randn({c.w[0]}, tol.dtype);
      const Tensor xc = leaf(x, Device::cpu()), wc = leaf(w, Device::cpu()),
                   bc = leaf(b, Device::cpu());
      const Tensor y = conv(xc, wc, bc, c.stride, c.padding, c.dilation, c.groups);
      const Tensor r = cpu_randn(y.shape(), tol.dtype);
      (y * r).sum().backward();
      const Tensor xg = leaf(x, kGpu), wg = leaf(w, kGpu), bg = leaf(b, kGpu);
      (conv(xg, wg, bg, c.stride, c.padding, c.dilation, c.groups) * r.to(kGpu)).sum().backward();
      // The weight gradient sums over batch and positions too: a looser absolute bound.
      expect_close(xg.grad(), xc.grad(), tol.rtol, tol.atol, label("dx", c, tol.dtype));
      expect_close(wg.grad(), wc.grad(), tol.rtol, 10 * tol.atol, label("dw", c, tol.dtype));
      expect_close(bg.grad(), bc.grad(), tol.rtol, 10 * tol.atol, label("db", c, tol.dtype));
    }
}

// Zero input channels or an empty batch: sums over nothing (cuDNN refuses those shapes, the
// kernels write zeros and add the bias).
TEST(CudaConv, EmptySums) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(17);
  const Tensor b = randn({4}, kFloat32);
  const Tensor x0 = randn({2, 0, 5, 5}, kFloat32), w0 = randn({4, 0, 3, 3}, kFloat32);
  expect_close(conv2d(x0.to(kGpu), w0.to(kGpu), b.to(kGpu)), conv2d(x0, w0, b), 0, 0,
               "conv2d without input channels");
  const Tensor xt = randn({2, 0, 5, 5}, kFloat32), wt = randn({0, 4, 3, 3}, kFloat32);
  expect_close(conv_transpose2d(xt.to(kGpu), wt.to(kGpu), b.to(kGpu)), conv_transpose2d(xt, wt, b),
               0, 0, "conv_transpose2d without input channels");
  const Tensor xn = randn({0, 3, 6, 6}, kFloat32), wn = randn({4, 3, 3, 3}, kFloat32);
  const Tensor xg = leaf(xn, kGpu), wg = leaf(wn, kGpu);
  conv2d(xg, wg).sum().backward();
  expect_close(wg.grad(), zeros({4, 3, 3, 3}, kFloat32), 0, 0, "weight gradient of no items");
}

TEST(CudaConv, Tf32IsOffUnlessAllowed) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(16);
  // Large enough that TF32 (10-bit mantissa) would miss the float32 tolerance by far.
  const Tensor x = randn({4, 64, 16, 16}, kFloat32), w = randn({64, 64, 3, 3}, kFloat32);
  const bool before = cuda::allow_tf32();
  cuda::set_allow_tf32(false);
  expect_close(conv2d(x.to(kGpu), w.to(kGpu), {}, {1}, {1}), conv2d(x, w, {}, {1}, {1}), 1e-4, 2e-4,
               "conv2d 64 -> 64 channels without TF32");
  cuda::set_allow_tf32(before);
}

// ---- pooling ---------------------------------------------------------------------------------

struct PoolCase {
  Shape x;
  Ints kernel, stride, padding, dilation;
  bool ceil_mode;
  std::string name;
};

const std::vector<PoolCase> kPoolCases = {
    {{2, 3, 15}, {3}, {2}, {1}, {1}, false, "1d k3 s2 p1"},
    {{2, 3, 16}, {4}, {3}, {2}, {2}, true, "1d dilation 2 ceil"},
    {{2, 3, 8, 8}, {2, 2}, {}, {0, 0}, {1, 1}, false, "2d 2x2"},
    {{2, 4, 11, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true, "2d k3 s2 p1 ceil"},
    {{1, 2, 10, 12}, {3, 2}, {1, 2}, {1, 0}, {2, 1}, false, "2d dilation"},
    {{2, 2, 5, 7, 6}, {2, 3, 2}, {2, 1, 2}, {1, 1, 0}, {1, 1, 1}, true, "3d"},
};

const std::vector<DType> kFloatTypes = {kFloat32, kFloat64, kFloat16, kBFloat16};

std::string label(const std::string& what, const PoolCase& c, DType dt) {
  return what + " " + c.name + " " + std::string(dtype_name(dt));
}

// Small integers (many ties inside a window), a NaN and -inf: the index rule's hard cases.
Tensor pool_input(const Shape& s, DType dt) {
  Tensor x = randint(-3, 4, s, kFloat64);
  std::vector<double> v = x.to_vector<double>();
  v[3] = std::numeric_limits<double>::quiet_NaN();
  v[v.size() / 2] = -std::numeric_limits<double>::infinity();
  return tensor(v, s).to(dt);
}

TEST(CudaPool, MaxPoolValuesAndIndicesAreTheCpus) {
  SKIP_WITHOUT_GPU();
  manual_seed(21);
  for (DType dt : kFloatTypes)
    for (const PoolCase& c : kPoolCases) {
      const Tensor x = pool_input(c.x, dt);
      auto [v, i] =
          max_pool_with_indices(x, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
      auto [vg, ig] =
          max_pool_with_indices(x.to(kGpu), c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode);
      expect_close(vg, v, 0, 0, label("max_pool values", c, dt));
      ASSERT_EQ(ig.dtype(), kInt64);
      EXPECT_EQ(ig.to(Device::cpu()).to_vector<int64_t>(), i.to_vector<int64_t>())
          << label("max_pool indices", c, dt);
    }
}

TEST(CudaPool, AvgPoolMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(22);
  for (DType dt : kFloatTypes)
    for (const PoolCase& c : kPoolCases)
      for (bool include_pad : {true, false}) {
        const Tensor x = cpu_randn(c.x, dt);
        const double tol = dt == kFloat64 ? 1e-14 : dt == kFloat32 ? 1e-6 : 1e-2;
        expect_close(avg_pool(x.to(kGpu), c.kernel, c.stride, c.padding, c.ceil_mode, include_pad),
                     avg_pool(x, c.kernel, c.stride, c.padding, c.ceil_mode, include_pad), tol, tol,
                     label(include_pad ? "avg_pool incl" : "avg_pool excl", c, dt));
      }
}

TEST(CudaPool, StridedInputs) {
  SKIP_WITHOUT_GPU();
  manual_seed(23);
  // (2, 3, 10, 9) views of a (2, 9, 3, 10) tensor, made on each device.
  const Tensor base = randn({2, 9, 3, 10}, kFloat32);
  const Tensor x = base.permute({0, 2, 3, 1}), xg = base.to(kGpu).permute({0, 2, 3, 1});
  auto [v, i] = max_pool2d_with_indices(x, {3}, {2}, {1});
  auto [vg, ig] = max_pool2d_with_indices(xg, {3}, {2}, {1});
  expect_close(vg, v, 0, 0, "max_pool2d of a view");
  EXPECT_EQ(ig.to(Device::cpu()).to_vector<int64_t>(), i.to_vector<int64_t>());
  expect_close(avg_pool2d(xg, {2}, {1}, {1}, false, false),
               avg_pool2d(x, {2}, {1}, {1}, false, false), 1e-6, 1e-6, "avg_pool2d of a view");
}

// max_pool's vjp is max_pool_backward (a gather on the GPU, a scatter on the CPU; both sum in
// window order, so ties collect every window's gradient the same way), avg_pool's is
// avg_pool_backward. The cotangent r is an expanded (stride 0) view in one variant.
TEST(CudaPool, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(24);
  for (DType dt : {kFloat32, kFloat64})
    for (const PoolCase& c : kPoolCases) {
      const Tensor x = cpu_randn(c.x, dt);
      // Ties: the same value repeated, so several windows pick one element.
      const Tensor xr = round(x * 2.0);
      for (bool is_max : {true, false}) {
        auto pool = [&](const Tensor& t) {
          if (is_max)
            return std::get<0>(
                max_pool_with_indices(t, c.kernel, c.stride, c.padding, c.dilation, c.ceil_mode));
          return avg_pool(t, c.kernel, c.stride, c.padding, c.ceil_mode, false);
        };
        const Tensor xc = leaf(xr, Device::cpu());
        const Tensor y = pool(xc);
        const Tensor r = cpu_randn(y.shape(), dt);
        (y * r).sum().backward();
        const Tensor xg = leaf(xr, kGpu);
        (pool(xg) * r.to(kGpu)).sum().backward();
        const double tol = dt == kFloat64 ? 1e-13 : 1e-5;
        expect_close(xg.grad(), xc.grad(), tol, tol,
                     label(is_max ? "max_pool grad" : "avg_pool grad", c, dt));
        // A constant cotangent (sum's gradient: an expanded view) reaches the kernel strided.
        const Tensor xc2 = leaf(xr, Device::cpu()), xg2 = leaf(xr, kGpu);
        pool(xc2).sum().backward();
        pool(xg2).sum().backward();
        expect_close(xg2.grad(), xc2.grad(), tol, tol,
                     label(is_max ? "max_pool grad of sum" : "avg_pool grad of sum", c, dt));
      }
    }
}

TEST(CudaPool, HalfGradients) {
  SKIP_WITHOUT_GPU();
  manual_seed(25);
  for (DType dt : {kFloat16, kBFloat16}) {
    const Tensor x = randn({2, 3, 9, 9}, kFloat32).to(dt);
    const Tensor xc = leaf(x, Device::cpu()), xg = leaf(x, kGpu);
    (max_pool2d(xc, {3}, {2}, {1}) + avg_pool2d(xc, {3}, {2}, {1})).sum().backward();
    (max_pool2d(xg, {3}, {2}, {1}) + avg_pool2d(xg, {3}, {2}, {1})).sum().backward();
    expect_close(xg.grad(), xc.grad(), 1e-2, 1e-2,
                 std::string("pool grads ") + std::string(dtype_name(dt)));
  }
}

// ---- LeNet-5 -----------------------------------------------------------------------------------

std::shared_ptr<nn::Sequential> lenet() {
  using namespace nn;
  return std::make_shared<Sequential>(
      std::make_shared<Conv2d>(1, 6, Ints{5}, ConvOptions{.padding = 2}), std::make_shared<ReLU>(),
      std::make_shared<MaxPool2d>(Ints{2}), std::make_shared<Conv2d>(6, 16, Ints{5}),
      std::make_shared<ReLU>(), std::make_shared<MaxPool2d>(Ints{2}), std::make_shared<Flatten>(),
      std::make_shared<Linear>(400, 120), std::make_shared<ReLU>(),
      std::make_shared<Linear>(120, 84), std::make_shared<ReLU>(),
      std::make_shared<Linear>(84, 10));
}

// Cross entropy against one-hot targets and a plain SGD step written with tensor ops, so
// every op of the step has a CUDA kernel (class-index targets need gather; the fused
// optimizers run on the CPU).
std::vector<double> train(nn::Sequential& net, const Tensor& images, const Tensor& onehot,
                          int steps, double lr) {
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    net.zero_grad();
    const Tensor logp = log_softmax(net.forward(images), 1);
    const Tensor loss = -(logp * onehot).sum(Dims{1}).mean();
    loss.backward();
    losses.push_back(values(loss)[0]);
    autograd::NoGradGuard no_grad;
    for (Tensor& p : net.parameters()) p.sub_(p.grad() * lr);
  }
  return losses;
}

TEST(CudaLeNet, TenTrainingStepsMatchTheCpu) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(31);
  auto cpu_net = lenet();
  auto gpu_net = lenet();
  gpu_net->load_state_dict(cpu_net->state_dict());
  gpu_net->to(kGpu);
  const Tensor images = randn({32, 1, 28, 28}, kFloat32);
  std::vector<double> hot(32 * 10, 0.0);
  const std::vector<int64_t> labels = randint(0, 10, {32}).to_vector<int64_t>();
  for (size_t i = 0; i < labels.size(); ++i) hot[i * 10 + static_cast<size_t>(labels[i])] = 1.0;
  const Tensor onehot = tensor(hot, Shape{32, 10}).to(kFloat32);

  const std::vector<double> want = train(*cpu_net, images, onehot, 10, 0.05);
  const std::vector<double> got = train(*gpu_net, images.to(kGpu), onehot.to(kGpu), 10, 0.05);
  ASSERT_EQ(got.size(), want.size());
  for (size_t s = 0; s < want.size(); ++s)
    EXPECT_NEAR(got[s], want[s], 1e-3 * std::abs(want[s]) + 1e-4) << "step " << s;
  EXPECT_LT(want.back(), want.front()) << "the CPU run does not learn";
  // The trained weights too.
  const auto cp = cpu_net->named_parameters(), gp = gpu_net->named_parameters();
  for (size_t i = 0; i < cp.size(); ++i)
    expect_close(gp[i].second, cp[i].second, 1e-3, 1e-4, "parameter " + cp[i].first);
}

}  // namespace
}  // namespace tessera
