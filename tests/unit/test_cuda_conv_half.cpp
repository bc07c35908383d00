// Native float16 / bfloat16 convolutions on CUDA (cuDNN with 16-bit tensors, float32
// accumulation, tensor-op math) against float64 references computed on the CPU from the same
// 16-bit values: conv, conv_transpose and conv_weight_grad over 1-d, 2-d and 3-d geometries with
// stride, padding, dilation and groups, with and without bias, with cuda::set_cudnn_benchmark
// off (heuristics) and on (timed search); the cache of chosen algorithms (a repeat call runs the
// remembered algorithm and gives the same bits; deterministic mode chooses deterministic
// algorithms); autocast on CUDA producing 16-bit outputs; benchmark mode in float32 / float64.
// Every test skips (GTEST_SKIP) without a CUDA device or in a build without cuDNN; they compile
// wherever the project does.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "backends/cuda/cudnn/algo_cache.h"
#include "cuda_test_util.h"
#include "ops/nn_geometry.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/dispatch.h"
#include "tessera/runtime/scheduler.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;
using Ints = std::vector<int64_t>;
namespace cd = cuda::cudnn;

struct Case {
  Shape x;  // (N, C, *spatial)
  Shape w;  // conv: (O, C / groups, *k)
  Ints stride, padding, dilation;
  int64_t groups;
  Ints output_padding;  // conv_transpose
  std::string name;
};

const std::vector<Case> kCases = {
    {{2, 3, 17}, {4, 3, 3}, {1}, {0}, {1}, 1, {0}, "1d"},
    {{2, 4, 20}, {6, 2, 5}, {2}, {2}, {2}, 2, {1}, "1d stride 2 pad 2 dilation 2 groups 2"},
    {{2, 3, 9, 11}, {5, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, {0, 0}, "2d pad 1"},
    {{3, 4, 12, 10}, {8, 2, 3, 2}, {2, 1}, {1, 0}, {1, 2}, 2, {1, 0}, "2d stride/dilation"},
    {{2, 8, 8, 8}, {8, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1}, 8, {1, 1}, "2d depthwise stride 2"},
    {{2, 16, 10, 10}, {32, 16, 3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, {0, 0}, "2d 16 -> 32 channels"},
    {{2, 2, 5, 6, 7}, {4, 2, 3, 3, 2}, {1, 2, 1}, {1, 0, 1}, {1, 1, 2}, 1, {0, 1, 0}, "3d"},
    {{1, 4, 6, 7, 5}, {4, 2, 2, 3, 3}, {2, 1, 1}, {0, 1, 1}, {1, 2, 1}, 2, {1, 0, 0}, "3d groups"},
};
// The case whose channels suit tensor cores: every GPU from Ampere on has a native 16-bit
// algorithm for it, in both dtypes.
const Case& tensor_core_case() { return kCases[5]; }

Attrs conv_attrs(const Case& c) {
  return {{"stride", c.stride},
          {"padding", c.padding},
          {"dilation", c.dilation},
          {"groups", c.groups},
          {"output_padding", c.output_padding}};
}

Ints kernel_of(const Case& c) { return Ints(c.w.begin() + 2, c.w.end()); }

// Tolerances for 16-bit results against float64. The inputs are 16-bit values, so the float64
// reference is exact to ~1e-16. cuDNN accumulates in float32 and rounds once into 16 bits; a
// bias is added to that rounded result and rounded again; algorithms that transform their
// operands (Winograd, FFT) may keep transformed values in 16 bits. With u the unit roundoff
// (2^-11 for float16, 2^-8 for bfloat16) and S the same convolution of absolute values
// (|x| * |w| + |b|), the error is within 2u |ref| + 8u S: loose for the implicit-GEMM
// algorithms (about u |ref|), but a wrong geometry or a wrong dtype (errors of order S) fails.
double unit_roundoff(DType dt) {
  return dt == kFloat16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
}

void expect_near_reference(const Tensor& got, const Tensor& ref, const Tensor& scale, DType dt,
                           const std::string& what) {
  ASSERT_EQ(got.dtype(), dt) << what;
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.shape(), ref.shape()) << what;
  const double u = unit_roundoff(dt);
  const std::vector<double> g = values(got), r = values(ref), s = values(scale);
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i)
    if (!(std::abs(g[i] - r[i]) <= 2 * u * std::abs(r[i]) + 8 * u * s[i])) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", float64 gives " << r[i]
                    << " (scale " << s[i] << ")";
      ++bad;
    }
}

// Float64 values of a 16-bit draw, on the CPU: the draw itself is t.to(dt).
Tensor draw(const Shape& s, DType dt) { return randn(s, kFloat64).to(dt).to(kFloat64); }

struct BenchmarkMode {
  bool before = cuda::cudnn_benchmark();
  explicit BenchmarkMode(bool on) { cuda::set_cudnn_benchmark(on); }
  ~BenchmarkMode() { cuda::set_cudnn_benchmark(before); }
};
struct DeterministicMode {
  bool before = deterministic();
  explicit DeterministicMode(bool on) { set_deterministic(on); }
  ~DeterministicMode() { set_deterministic(before); }
};

std::string label(const std::string& what, const Case& c, DType dt, bool bench) {
  return what + " " + c.name + " " + std::string(dtype_name(dt)) +
         (bench ? " benchmark" : " heuristics");
}

Tensor weight_grad(const Tensor& x, const Tensor& dy, const Case& c) {
  Attrs a = conv_attrs(c);
  a.set("kernel", kernel_of(c));
  return dispatch1(prim("conv_weight_grad"), {x, dy}, a);
}

// The choice remembered for a call (nullopt: none yet).
std::optional<cd::AlgoChoice> remembered(cd::ConvPass pass, const detail::ConvGeom& g, DType dt,
                                         bool bench, bool det) {
  const cd::MathType math = cd::conv_types(dt, cuda::allow_tf32())->math;
  return cd::conv_algo_cache().find(cd::conv_algo_key(0, pass, dt, math, g, bench, det));
}

TEST(CudaConvHalf, ConvMatchesFloat64) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(41);
  int native = 0, calls = 0;
  for (DType dt : {kFloat16, kBFloat16})
    for (const Case& c : kCases) {
      const Tensor x = draw(c.x, dt), w = draw(c.w, dt) * 0.5, b = draw({c.w[0]}, dt);
      const Tensor ref = conv(x, w, b, c.stride, c.padding, c.dilation, c.groups);
      const Tensor ref0 = conv(x, w, {}, c.stride, c.padding, c.dilation, c.groups);
      const Tensor scale = conv(abs(x), abs(w), abs(b), c.stride, c.padding, c.dilation, c.groups);
      const Tensor scale0 = conv(abs(x), abs(w), {}, c.stride, c.padding, c.dilation, c.groups);
      const Tensor xg = x.to(dt).to(kGpu), wg = w.to(dt).to(kGpu), bg = b.to(dt).to(kGpu);
      for (bool bench : {false, true}) {
        BenchmarkMode mode(bench);
        expect_near_reference(conv(xg, wg, bg, c.stride, c.padding, c.dilation, c.groups), ref,
                              scale, dt, label("conv", c, dt, bench));
        expect_near_reference(conv(xg, wg, {}, c.stride, c.padding, c.dilation, c.groups), ref0,
                              scale0, dt, label("conv without bias", c, dt, bench));
        const detail::ConvGeom g = detail::conv_geometry("conv", xg, wg, nullptr, conv_attrs(c));
        const auto choice = remembered(cd::ConvPass::kForward, g, dt, bench, deterministic());
        ASSERT_TRUE(choice.has_value()) << label("no remembered choice for", c, dt, bench);
        native += choice->algo != cd::AlgoChoice::kNone;
        ++calls;
        if (&c == &tensor_core_case() && cuda::device_properties(0).major >= 8) {
          EXPECT_NE(choice->algo, cd::AlgoChoice::kNone)
              << label("no native algorithm", c, dt, bench);
        }
      }
    }
  RecordProperty("native_16bit_forward_calls",
                 std::to_string(native) + "/" + std::to_string(calls));
}

TEST(CudaConvHalf, TransposeMatchesFloat64) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(42);
  for (DType dt : {kFloat16, kBFloat16})
    for (const Case& c : kCases) {
      // The transposed call takes the conv's output side: x (N, O, *spatial), w (O, C / groups,
      // *k).
      Shape xs = c.x;
      xs[1] = c.w[0];
      Shape ws = c.w;
      ws[1] = c.x[1] / c.groups;
      const Tensor x = draw(xs, dt), w = draw(ws, dt) * 0.5, b = draw({c.x[1]}, dt);
      auto tr = [&](const Tensor& xi, const Tensor& wi, const Tensor& bi) {
        return conv_transpose(xi, wi, bi, c.stride, c.padding, c.output_padding, c.groups,
                              c.dilation);
      };
      const Tensor ref = tr(x, w, b), ref0 = tr(x, w, {});
      const Tensor scale = tr(abs(x), abs(w), abs(b)), scale0 = tr(abs(x), abs(w), {});
      const Tensor xg = x.to(dt).to(kGpu), wg = w.to(dt).to(kGpu), bg = b.to(dt).to(kGpu);
      for (bool bench : {false, true}) {
        BenchmarkMode mode(bench);
        expect_near_reference(tr(xg, wg, bg), ref, scale, dt,
                              label("conv_transpose", c, dt, bench));
        expect_near_reference(tr(xg, wg, {}), ref0, scale0, dt,
                              label("conv_transpose without bias", c, dt, bench));
      }
    }
}

TEST(CudaConvHalf, WeightGradMatchesFloat64) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(43);
  for (DType dt : {kFloat16, kBFloat16})
    for (const Case& c : kCases) {
      const Shape dys = conv(zeros(c.x, kFloat64), zeros(c.w, kFloat64), {}, c.stride, c.padding,
                             c.dilation, c.groups)
                            .shape();
      const Tensor x = draw(c.x, dt), dy = draw(dys, dt) * 0.5;
      const Tensor ref = weight_grad(x, dy, c), scale = weight_grad(abs(x), abs(dy), c);
      const Tensor xg = x.to(dt).to(kGpu), dyg = dy.to(dt).to(kGpu);
      for (bool bench : {false, true}) {
        BenchmarkMode mode(bench);
        expect_near_reference(weight_grad(xg, dyg, c), ref, scale, dt,
                              label("conv_weight_grad", c, dt, bench));
      }
    }
}

// A shape no other test uses, so its keys are new here (unless the test repeats).
const Case kRepeatCase = {{3, 8, 13, 11}, {16, 4, 3, 3}, {1, 2}, {1, 1}, {2, 1}, 2,
                          {0, 0},         "2d repeat"};

// Runs f twice; the second call must find the choice the first remembered (the cache does not
// grow) and, the algorithms being deterministic, give the same bits.
template <class F>
std::optional<cd::AlgoChoice> expect_repeatable(F&& f, cd::ConvPass pass, const detail::ConvGeom& g,
                                                DType dt, bool bench, const std::string& what) {
  const bool known = remembered(pass, g, dt, bench, true).has_value();
  const size_t before = cd::conv_algo_cache().size();
  const Tensor first = f();
  const std::optional<cd::AlgoChoice> choice = remembered(pass, g, dt, bench, true);
  EXPECT_TRUE(choice.has_value()) << what;
  const size_t after = cd::conv_algo_cache().size();
  // One new entry, unless it was known or the call had to go through float32 (a second key).
  if (!known && choice && choice->algo != cd::AlgoChoice::kNone) {
    EXPECT_EQ(after, before + 1) << what;
  }
  const Tensor second = f();
  EXPECT_EQ(cd::conv_algo_cache().size(), after) << what << ": the repeat call chose again";
  EXPECT_EQ(values(first), values(second)) << what << ": the repeat call differs";
  return choice;
}

TEST(CudaConvHalf, RepeatCallsUseTheRememberedDeterministicAlgorithm) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(44);
  const Case& c = kRepeatCase;
  DeterministicMode det(true);
  for (DType dt : {kFloat16, kBFloat16})
    for (bool bench : {false, true}) {
      BenchmarkMode mode(bench);
      const Tensor x = randn(c.x, kFloat32).to(dt).to(kGpu);
      const Tensor w = randn(c.w, kFloat32).to(dt).to(kGpu),
                   b = randn({16}, kFloat32).to(dt).to(kGpu);
      const detail::ConvGeom g = detail::conv_geometry("conv", x, w, &b, conv_attrs(c));
      const std::string what = label("", c, dt, bench);
      expect_repeatable([&] { return conv(x, w, b, c.stride, c.padding, c.dilation, c.groups); },
                        cd::ConvPass::kForward, g, dt, bench, "conv" + what);
      // conv's output side: (13 + 2 - 2 * 2 - 1) / 1 + 1 = 11 rows, (11 + 2 - 2 - 1) / 2 + 1 = 6.
      const Tensor dy = randn({3, 16, 11, 6}, kFloat32).to(dt).to(kGpu);
      const Tensor wt = randn({16, 4, 3, 3}, kFloat32).to(dt).to(kGpu);
      const detail::ConvGeom gt =
          detail::conv_transpose_geometry("conv_transpose", dy, wt, nullptr, conv_attrs(c));
      const auto data = expect_repeatable(
          [&] {
            return conv_transpose(dy, wt, {}, c.stride, c.padding, {0, 0}, c.groups, c.dilation);
          },
          cd::ConvPass::kBackwardData, gt, dt, bench, "conv_transpose" + what);
      Attrs wa = conv_attrs(c);
      wa.set("kernel", Ints{3, 3});
      const detail::ConvGeom gw = detail::conv_weight_grad_geometry("conv_weight_grad", x, dy, wa);
      const auto filter =
          expect_repeatable([&] { return weight_grad(x, dy, c); }, cd::ConvPass::kBackwardFilter,
                            gw, dt, bench, "conv_weight_grad" + what);
      // cuDNN's non-deterministic backward algorithms: BWD_DATA_ALGO_0, BWD_FILTER_ALGO_0 and 3.
      if (data && data->algo != cd::AlgoChoice::kNone) {
        EXPECT_NE(data->algo, 0) << what;
      }
      if (filter && filter->algo != cd::AlgoChoice::kNone) {
        EXPECT_NE(filter->algo, 0) << what;
        EXPECT_NE(filter->algo, 3) << what;
      }
    }
}

TEST(CudaConvHalf, BenchmarkModeInFloat32AndFloat64MatchesTheCpu) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(45);
  BenchmarkMode mode(true);
  ASSERT_FALSE(cuda::allow_tf32());  // a timed search must not pick TF32 algorithms either
  for (DType dt : {kFloat32, kFloat64}) {
    const double tol = dt == kFloat32 ? 1e-4 : 1e-11;
    for (const Case& c : kCases) {
      const Tensor x = randn(c.x, dt), w = randn(c.w, dt), b = randn({c.w[0]}, dt);
      const Tensor xc = x.detach().requires_grad_(), wc = w.detach().requires_grad_();
      const Tensor y = conv(xc, wc, b, c.stride, c.padding, c.dilation, c.groups);
      const Tensor r = randn(y.shape(), dt);
      (y * r).sum().backward();
      const Tensor xg = x.to(kGpu).detach().requires_grad_(),
                   wg = w.to(kGpu).detach().requires_grad_();
      const Tensor yg = conv(xg, wg, b.to(kGpu), c.stride, c.padding, c.dilation, c.groups);
      (yg * r.to(kGpu)).sum().backward();
      const std::string what = " " + c.name + " " + std::string(dtype_name(dt));
      expect_close(yg, y, tol, tol, "conv" + what);
      expect_close(xg.grad(), xc.grad(), tol, tol, "dx" + what);
      expect_close(wg.grad(), wc.grad(), tol, 10 * tol, "dw" + what);
    }
  }
}

// Under autocast, conv on CUDA runs in the autocast dtype (natively: the forward's remembered
// choice is an algorithm), and the float32 parameters get float32 gradients.
TEST(CudaConvHalf, AutocastConvRunsIn16Bits) {
  SKIP_WITHOUT_CUDNN();
  manual_seed(46);
  const Case& c = tensor_core_case();
  for (DType dt : {kFloat16, kBFloat16}) {
    const Tensor x = draw(c.x, dt), w = draw(c.w, dt) * 0.25, b = draw({c.w[0]}, dt);
    const Tensor xg = x.to(kFloat32).to(kGpu).requires_grad_(),
                 wg = w.to(kFloat32).to(kGpu).requires_grad_(),
                 bg = b.to(kFloat32).to(kGpu).requires_grad_();
    Tensor y;
    {
      amp::Autocast guard({.device = DeviceType::CUDA, .dtype = dt});
      y = conv(xg, wg, bg, c.stride, c.padding, c.dilation, c.groups);
    }
    ASSERT_EQ(y.dtype(), dt);
    const Tensor ref = conv(x, w, b, c.stride, c.padding, c.dilation, c.groups);
    const Tensor scale = conv(abs(x), abs(w), abs(b), c.stride, c.padding, c.dilation, c.groups);
    expect_near_reference(y, ref, scale, dt, "autocast conv " + std::string(dtype_name(dt)));
    if (cuda::device_properties(0).major >= 8) {
      const detail::ConvGeom g =
          detail::conv_geometry("conv", x.to(dt), w.to(dt), nullptr, conv_attrs(c));
      const auto choice =
          remembered(cd::ConvPass::kForward, g, dt, cuda::cudnn_benchmark(), deterministic());
      ASSERT_TRUE(choice.has_value());
      EXPECT_NE(choice->algo, cd::AlgoChoice::kNone) << "autocast conv went through float32";
    }
    (y.to(kFloat32) * 0.5).sum().backward();
    EXPECT_EQ(xg.grad().dtype(), kFloat32);
    EXPECT_EQ(wg.grad().dtype(), kFloat32);
    EXPECT_EQ(bg.grad().dtype(), kFloat32);
    // dx = conv_transpose(dy, w) with dy = 0.5 (exact in 16 bits): against float64.
    const Tensor xr = x.detach().requires_grad_(), wr = w.detach().requires_grad_();
    (conv(xr, wr, b, c.stride, c.padding, c.dilation, c.groups) * 0.5).sum().backward();
    const Tensor xa = abs(x).requires_grad_(), wa = abs(w).requires_grad_();
    (conv(xa, wa, {}, c.stride, c.padding, c.dilation, c.groups) * 0.5).sum().backward();
    expect_near_reference(xg.grad().to(dt), xr.grad(), xa.grad(), dt, "autocast dx");
    expect_near_reference(wg.grad().to(dt), wr.grad(), wa.grad(), dt, "autocast dw");
  }
}

}  // namespace
}  // namespace tessera
