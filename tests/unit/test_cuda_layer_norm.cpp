// The CUDA layer_norm and layer_norm_backward against the CPU's results: short rows (a warp
// each) and long ones (a block each, cached in shared memory or, past 48 KB, read again),
// lengths that are and are not multiples of the 16-byte vector, unaligned and strided inputs,
// one and two normalized dims, with and without weight and bias, special values and empty
// shapes, and the gradients of nn::LayerNorm through autograd on the GPU.
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "backends/cuda/layer_norm_kernels.h"
#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
namespace F = nn::functional;

struct Tol {
  DType dtype;
  double rtol, atol;
};
// Both devices compute in float32 (float64 for float64) but sum in different orders; 16-bit
// results may then differ by a rounding step.
const std::vector<Tol> kTols = {{kFloat32, 1e-5, 1e-5},
                                {kFloat64, 1e-12, 1e-12},
                                {kFloat16, 2e-3, 2e-3},
                                {kBFloat16, 1.6e-2, 1.6e-2}};

struct Shape2 {
  Shape shape;
  int64_t k;  // normalized dims
};
// Warp rows (<= 1024), block rows cached (4096) and not (20000 > 48 KB of float32), lengths
// off the vector width, and two normalized dims.
const std::vector<Shape2> kShapes = {{{5, 1}, 1},    {{7, 3}, 1},     {{9, 32}, 1},
                                     {{33, 100}, 1}, {{4, 1024}, 1},  {{3, 1025}, 1},
                                     {{2, 4096}, 1}, {{3, 5000}, 1},  {{2, 20000}, 1},
                                     {{3, 4, 6}, 2}, {{2, 64, 64}, 2}};

Shape row_of(const Shape& s, int64_t k) { return Shape(s.end() - k, s.end()); }

// Layouts, applied on each device to the same values: as is, a view whose data starts one
// element into its storage (not 16-byte aligned: the scalar path), and strided (transposed
// storage: the host code packs it).
Tensor offset_view(const Tensor& x) {
  Tensor flat = empty({x.numel() + 1}, TensorOptions(x.dtype(), x.device()));
  flat.slice(0, 1, std::nullopt).copy_(x.reshape({-1}));
  return flat.slice(0, 1, std::nullopt).view(x.shape());
}
Tensor strided(const Tensor& x) {
  return x.dim() < 2 ? x : x.transpose(0, 1).contiguous().transpose(0, 1);
}
Tensor as_is(const Tensor& x) { return x; }
using Layout = std::pair<const char*, Tensor (*)(const Tensor&)>;
const Layout kLayouts[] = {{"contiguous", as_is}, {"unaligned", offset_view}, {"strided", strided}};

std::string what(const char* op, const Tol& t, const Shape2& s, const char* layout,
                 const char* affine) {
  return std::string(op) + " " + std::string(dtype_name(t.dtype)) + " " + shape_str(s.shape) +
         " k=" + std::to_string(s.k) + " " + layout + " " + affine;
}

TEST(CudaLayerNorm, ForwardMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(21);
  for (const Shape2& s : kShapes) {
    const Tensor x64 = randn(s.shape, kFloat64) * 3 + 1;
    const Tensor w64 = rand(row_of(s.shape, s.k), kFloat64) + 0.5;
    const Tensor b64 = randn(row_of(s.shape, s.k), kFloat64);
    for (const Tol& tol : kTols) {
      const Tensor xc = x64.to(tol.dtype), w = w64.to(tol.dtype), b = b64.to(tol.dtype);
      for (const auto& [layout, make] : kLayouts)
        for (int affine = 0; affine < 3; ++affine) {
          const char* names[] = {"plain", "weight", "weight+bias"};
          const Tensor wa = affine > 0 ? w : Tensor(), ba = affine > 1 ? b : Tensor();
          auto [y, m, r] = native_layer_norm(make(xc), s.k, wa, ba);
          auto [yg, mg, rg] =
              native_layer_norm(make(xc.to(kGpu)), s.k, affine > 0 ? wa.to(kGpu) : Tensor(),
                                affine > 1 ? ba.to(kGpu) : Tensor());
          const std::string label = what("layer_norm", tol, s, layout, names[affine]);
          expect_close(yg, y, tol.rtol, tol.atol, label + " y");
          // The statistics are float32 (float64) on both sides, from the same rounded inputs.
          const double st = tol.dtype == kFloat64 ? 1e-12 : 1e-5;
          expect_close(mg, m, st, st, label + " mean");
          expect_close(rg, r, st, st, label + " rstd");
        }
    }
  }
}

TEST(CudaLayerNorm, BackwardMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(22);
  const Primitive& bw = prim("layer_norm_backward");
  for (const Shape2& s : kShapes) {
    const Tensor x64 = randn(s.shape, kFloat64) * 2 - 1, dy64 = randn(s.shape, kFloat64);
    const Tensor w64 = rand(row_of(s.shape, s.k), kFloat64) + 0.5;
    int64_t rows = 1;
    for (size_t d = 0; d + static_cast<size_t>(s.k) < s.shape.size(); ++d) rows *= s.shape[d];
    for (const Tol& tol : kTols) {
      const Tensor x = x64.to(tol.dtype), dy = dy64.to(tol.dtype), w = w64.to(tol.dtype);
      auto [y, mean, rstd] = native_layer_norm(x, s.k, w);
      for (const auto& [layout, make] : kLayouts)
        for (int weight = 0; weight < 3; ++weight) {
          const char* names[] = {"no weight", "weight", "weight grads"};
          std::vector<Tensor> args{make(dy), make(x), mean, rstd};
          std::vector<Tensor> gpu_args{make(dy.to(kGpu)), make(x.to(kGpu)), mean.to(kGpu),
                                       rstd.to(kGpu)};
          if (weight > 0) {
            args.push_back(w);
            gpu_args.push_back(w.to(kGpu));
          }
          const Attrs a{{"ndim", s.k}, {"weight_grads", weight == 2}};
          const std::vector<Tensor> want = dispatch(bw, args, a), got = dispatch(bw, gpu_args, a);
          ASSERT_EQ(got.size(), want.size());
          const std::string label = what("layer_norm_backward", tol, s, layout, names[weight]);
          expect_close(got[0], want[0], tol.rtol * 4, tol.atol * 4, label + " dx");
          // Column sums over the rows, added in other orders.
          const double sums = tol.atol * 4 * std::sqrt(static_cast<double>(rows));
          for (size_t o = 1; o < got.size(); ++o)
            expect_close(got[o], want[o], tol.rtol * 4, sums, label + (o == 1 ? " dw" : " db"));
        }
    }
  }
}

TEST(CudaLayerNorm, SpecialValuesAndEmptyShapesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  // Rows: ordinary, constant (var 0), with a NaN, with an inf, with both infinities, huge.
  const Tensor x64 = tensor<double>(
      {1, 2, 3, 4, 5, 5, 5, 5, 1, nan, 3, 4, 1, inf, 3, 4, -inf, inf, 0, 0, 1e30, -1e30, 2e30, 0},
      Shape{6, 4});
  for (const Tol& tol : kTols) {
    const Tensor x = x64.to(tol.dtype);
    auto [y, m, r] = native_layer_norm(x, 1);
    auto [yg, mg, rg] = native_layer_norm(x.to(kGpu), 1);
    const std::string label = std::string("special ") + std::string(dtype_name(tol.dtype));
    expect_close(yg, y, tol.rtol, tol.atol, label + " y");
    expect_close(mg, m, tol.rtol, tol.atol, label + " mean");
    expect_close(rg, r, tol.rtol, tol.atol, label + " rstd");
  }
  // Rows of no elements (NaN statistics) and no rows (zero weight gradients).
  auto [ye, me, re] = native_layer_norm(zeros({3, 0}).to(kGpu), 1);
  EXPECT_EQ(ye.shape(), (Shape{3, 0}));
  for (double v : cuda_test::values(me)) EXPECT_TRUE(std::isnan(v));
  for (double v : cuda_test::values(re)) EXPECT_TRUE(std::isnan(v));
  const Tensor x0 = zeros({0, 8}).to(kGpu), w = ones({8}).to(kGpu);
  auto [y0, m0, r0] = native_layer_norm(x0, 1, w);
  const auto g0 = dispatch(prim("layer_norm_backward"), std::vector<Tensor>{x0, x0, m0, r0, w},
                           {{"ndim", int64_t{1}}, {"weight_grads", true}});
  EXPECT_EQ(g0[0].shape(), (Shape{0, 8}));
  for (size_t o = 1; o < 3; ++o)
    for (double v : cuda_test::values(g0[o])) EXPECT_EQ(v, 0.0);
}

// Block rows whose cached bytes reach the 48 KB a block may use without an opt-in: the block
// kernels' own shared memory (their warp partial sums) counts against the same 48 KB, so rows
// that fill it exactly (12288 float32 forward, 6144 float32 backward, ...) must not be cached:
// the launch would fail with cudaErrorInvalidValue ("invalid argument").
TEST(CudaLayerNorm, RowsAtTheSharedMemoryLimitMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(24);
  const Primitive& bw = prim("layer_norm_backward");
  // Exactly 48 KB of one array (forward) or two (backward) per dtype, and just below it.
  const std::vector<std::pair<DType, std::vector<int64_t>>> lengths = {
      {kFloat32, {6144, 6130, 12288, 12260}},
      {kFloat64, {3072, 3060, 6144, 6120}},
      {kFloat16, {12288, 12260, 24576, 24520}},
      {kBFloat16, {12288, 24576}}};
  for (const auto& [dt, ns] : lengths) {
    const Tol& tol = *std::find_if(kTols.begin(), kTols.end(),
                                   [dt = dt](const Tol& t) { return t.dtype == dt; });
    for (int64_t n : ns) {
      const Shape2 s{{2, n}, 1};
      const Tensor x = (randn(s.shape, kFloat64) * 2 + 1).to(dt), dy = randn(s.shape).to(dt);
      const Tensor w = (rand({n}, kFloat64) + 0.5).to(dt), b = randn({n}, kFloat64).to(dt);
      auto [y, mean, rstd] = native_layer_norm(x, 1, w, b);
      auto [yg, mg, rg] = native_layer_norm(x.to(kGpu), 1, w.to(kGpu), b.to(kGpu));
      const std::string label = what("layer_norm", tol, s, "contiguous", "weight, bias");
      expect_close(yg, y, tol.rtol, tol.atol, label + " y");
      expect_close(mg, mean, tol.rtol, tol.atol, label + " mean");
      expect_close(rg, rstd, tol.rtol, tol.atol, label + " rstd");
      const Attrs a{{"ndim", int64_t{1}}, {"weight_grads", true}};
      const std::vector<Tensor> want = dispatch(bw, std::vector<Tensor>{dy, x, mean, rstd, w}, a);
      const std::vector<Tensor> got = dispatch(
          bw,
          std::vector<Tensor>{dy.to(kGpu), x.to(kGpu), mean.to(kGpu), rstd.to(kGpu), w.to(kGpu)},
          a);
      ASSERT_EQ(got.size(), want.size());
      expect_close(got[0], want[0], tol.rtol * 4, tol.atol * 4, label + " dx");
      for (size_t o = 1; o < got.size(); ++o)
        expect_close(got[o], want[o], tol.rtol * 4, tol.atol * 8, label + " dw/db");
    }
  }
}

// The launch plan on the host: whatever a block caches, with the kernel's own shared memory,
// stays within the 48 KB a launch may use without an opt-in (runs without a GPU).
TEST(CudaLayerNormOnTheHost, LaunchesStayWithinTheSharedMemoryLimit) {
  for (int elem : {2, 4, 8})
    for (int arrays : {1, 2})
      for (bool aligned : {false, true})
        for (int64_t n = 1; n <= 40000; ++n) {
          const int acc = elem == 8 ? 8 : 4;
          const cuda::k::LayerNormRowLaunch l =
              cuda::k::layer_norm_row_launch(3, n, elem, acc, aligned, arrays);
          const std::string at = "elem " + std::to_string(elem) + " arrays " +
                                 std::to_string(arrays) + " n " + std::to_string(n);
          ASSERT_LE(l.smem + l.static_smem, cuda::k::kLayerNormSharedLimit) << at;
          ASSERT_EQ(l.warp, n <= cuda::k::kLayerNormWarpRow) << at;
          ASSERT_EQ(l.static_smem, l.warp ? 0 : 32 * acc) << at;
          ASSERT_EQ(l.cache, l.smem > 0) << at;
          // Rows are cached whenever they fit, so the plan loses nothing it need not.
          const int64_t rows_per_block = l.warp ? cuda::k::kLayerNormWarpRowsPerBlock : 1;
          ASSERT_EQ(l.cache, rows_per_block * arrays * n * elem + l.static_smem <=
                                 cuda::k::kLayerNormSharedLimit)
              << at;
          ASSERT_TRUE(l.threads >= 32 && l.threads <= 1024 && l.threads % 32 == 0) << at;
          ASSERT_GE(l.blocks, 1u) << at;
        }
  // The lengths of RowsAtTheSharedMemoryLimitMatchTheCpu are not cached at 48 KB exactly.
  EXPECT_FALSE(cuda::k::layer_norm_row_launch(2, 12288, 4, 4, true, 1).cache);
  EXPECT_FALSE(cuda::k::layer_norm_row_launch(2, 6144, 4, 4, true, 2).cache);
  EXPECT_TRUE(cuda::k::layer_norm_row_launch(2, 12256, 4, 4, true, 1).cache);
  EXPECT_EQ(cuda::k::layer_norm_row_launch(2, 12256, 4, 4, true, 1).smem + 128, 48 * 1024);
}

// nn::LayerNorm forward and backward on the GPU (autograd: the fused backward, its weight
// gradients, and a second derivative through the composite vjp) against the CPU.
TEST(CudaLayerNorm, ModuleGradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(23);
  for (DType dt : {kFloat32, kFloat64}) {
    const double tol = dt == kFloat32 ? 1e-4 : 1e-10;
    auto cpu = std::make_shared<nn::LayerNorm>(nn::Ints{48});
    auto gpu = std::make_shared<nn::LayerNorm>(nn::Ints{48});
    cpu->to(dt);
    {
      autograd::NoGradGuard ng;
      cpu->weight.copy_(rand({48}, dt) + 0.5);
      cpu->bias.copy_(randn({48}, dt));
    }
    gpu->to(dt);
    gpu->to(kGpu);
    {
      autograd::NoGradGuard ng;
      gpu->weight.copy_(cpu->weight.to(kGpu));
      gpu->bias.copy_(cpu->bias.to(kGpu));
    }
    const Tensor x = randn({16, 48}, dt), r = randn({16, 48}, dt);
    const Tensor xc = x.clone().requires_grad_(), xg = x.to(kGpu).requires_grad_();
    const Tensor yc = (*cpu)(xc), yg = (*gpu)(xg);
    expect_close(yg, yc, tol, tol, "LayerNorm y");
    const auto gc =
        autograd::grad({(yc * r).sum()}, {xc, cpu->weight, cpu->bias}, {}, {.create_graph = true});
    const auto gg = autograd::grad({(yg * r.to(kGpu)).sum()}, {xg, gpu->weight, gpu->bias}, {},
                                   {.create_graph = true});
    const char* names[] = {"dx", "dweight", "dbias"};
    for (size_t i = 0; i < 3; ++i) expect_close(gg[i], gc[i], tol, tol, names[i]);
    const Tensor hc = autograd::grad({(gc[0] * gc[0]).sum()}, {xc})[0];
    const Tensor hg = autograd::grad({(gg[0] * gg[0]).sum()}, {xg})[0];
    expect_close(hg, hc, tol * 10, tol * 10, "second derivative");
  }
}

}  // namespace
}  // namespace tessera
