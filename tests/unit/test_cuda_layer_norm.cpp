// The CUDA layer_norm and layer_norm_backward against the CPU's results: short rows (a warp
// each) and long ones (a block each, cached in shared memory or, past 48 KB, read again),
// lengths that are and are not multiples of the 16-byte vector, unaligned and strided inputs,
// one and two normalized dims, with and without weight and bias, special values and empty
// shapes, and the gradients of nn::LayerNorm through autograd on the GPU.
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

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
