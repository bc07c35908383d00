// The CUDA reductions beyond the float sum / mean / amax / amin (prod, var, std, logsumexp, norm,
// max / min with indices, integer and bool inputs), the scans (cumsum, cumprod) and what they
// unblock (BatchNorm, LayerNorm, GroupNorm), each against the CPU: every dim set, keepdim,
// contiguous / permuted / sliced inputs, long rows and lanes (the split paths), empty
// reductions, special values, dtypes, and gradients through autograd.
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace F = nn::functional;
using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

const double kInf = std::numeric_limits<double>::infinity();
const double kNan = std::numeric_limits<double>::quiet_NaN();

// Exact equality (integers, selections, counts).
void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  expect_close(got, want, 0, 0, what);
}

// The kernels accumulate in double like the CPU: float32 results are the CPU's up to the last
// bit or two, 16-bit results up to a rounding step of the output.
struct Tol {
  DType dtype;
  double rtol, atol;
};
const std::vector<Tol> kTols = {{kFloat32, 2e-6, 1e-7},
                                {kFloat64, 1e-12, 1e-13},
                                {kFloat16, 2e-3, 1e-4},
                                {kBFloat16, 1.6e-2, 1e-3}};

std::string label(const std::string& op, DType dt, const Tensor& x, const Dims& dims, bool keep) {
  std::string s = op + " " + std::string(dtype_name(dt)) + " " + shape_str(x.shape()) + " dims {";
  for (int64_t d : dims) s += std::to_string(d) + ",";
  return s + "}" + (keep ? " keepdim" : "");
}

const std::vector<Dims> kDimSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};

// Contiguous, permuted (strided rows) and a sliced view of base.
std::vector<Tensor> layouts(const Tensor& base) {
  return {base, base.permute({2, 0, 1}), base.slice(2, 3, 100)};
}

// ---- float statistics ------------------------------------------------------------------------

TEST(CudaReduceMore, VarStdLogsumexpNormProdMatchTheCpuOverAnyDims) {
  SKIP_WITHOUT_GPU();
  manual_seed(21);
  const Tensor base64 = randn({6, 37, 129}, kFloat64);
  const Tensor near_one = rand({6, 37, 129}, kFloat64) * 0.2 + 0.9;  // products stay in range
  for (const Tol& t : kTols) {
    const std::vector<Tensor> xs = layouts(base64.to(t.dtype)), ps = layouts(near_one.to(t.dtype));
    for (size_t v = 0; v < xs.size(); ++v) {
      const Tensor& x = xs[v];
      const Tensor xg = x.to(kGpu), pg = ps[v].to(kGpu);
      for (const Dims& dims : kDimSets) {
        for (bool keep : {false, true}) {
          for (int64_t c : {0, 1}) {
            expect_close(var(xg, dims, c, keep), var(x, dims, c, keep), t.rtol, t.atol,
                         label("var c=" + std::to_string(c), t.dtype, x, dims, keep));
            expect_close(tessera::std(xg, dims, c, keep), tessera::std(x, dims, c, keep), t.rtol,
                         t.atol, label("std c=" + std::to_string(c), t.dtype, x, dims, keep));
          }
          if (!dims.empty()) {
            expect_close(logsumexp(xg, dims, keep), logsumexp(x, dims, keep), t.rtol, t.atol,
                         label("logsumexp", t.dtype, x, dims, keep));
          }
          for (double p : {2.0, 1.0, 0.0, kInf, -kInf, 0.5, 3.0, -1.0}) {
            expect_close(norm(xg, p, dims, keep), norm(x, p, dims, keep), t.rtol, t.atol,
                         label("norm p=" + std::to_string(p), t.dtype, x, dims, keep));
          }
          expect_close(prod(pg, dims, keep), prod(ps[v], dims, keep), t.rtol, 1e-30,
                       label("prod", t.dtype, x, dims, keep));
        }
      }
    }
  }
}

TEST(CudaReduceMore, LongRowsAreSplitAndCombinedLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(22);
  // 300000 elements in one row, in 3 rows (parts in a workspace), and a column reduction.
  const Tensor x64 = randn({3, 100000}, kFloat64) * 3.0 + 100.0;
  for (const Tol& t : kTols) {
    const Tensor x = x64.to(t.dtype), xg = x.to(kGpu);
    for (const Dims& dims : {Dims{}, Dims{1}}) {
      expect_close(var(xg, dims), var(x, dims), t.rtol, t.atol, label("var", t.dtype, x, dims, 0));
      expect_close(tessera::std(xg, dims, 0), tessera::std(x, dims, 0), t.rtol, t.atol,
                   label("std", t.dtype, x, dims, false));
      expect_close(logsumexp(xg, {1}), logsumexp(x, {1}), t.rtol, t.atol,
                   label("logsumexp", t.dtype, x, {1}, false));
      for (double p : {2.0, 1.0, kInf, 0.5})
        expect_close(norm(xg, p, dims), norm(x, p, dims), t.rtol, t.atol,
                     label("norm p=" + std::to_string(p), t.dtype, x, dims, false));
    }
    expect_close(var(xg.t(), {0}), var(x.t(), {0}), t.rtol, t.atol, "var of columns");
    const Tensor p = (x64 * 1e-6 + 1.0).to(t.dtype);  // rows multiply to about e^10
    expect_close(prod(p.to(kGpu), {1}), prod(p, {1}), t.rtol, 0, "prod of long rows");
  }
  // Same shape, same result: the split depends on the shape only.
  const Tensor g = x64.to(kFloat32).to(kGpu);
  EXPECT_EQ(values(var(g)), values(var(g)));
}

// Rows with one stride load eight elements per thread at once (fold_rows.cuh); rows whose dims
// do not merge take the general loop. Each thread folds the same elements in the same order on
// both, so a padded copy of the same values (dims [100, 300] with a row stride of 301) gives
// the same bits, split (3 rows) or not (1500 rows), for every op of the driver.
TEST(CudaReduceMore, OneStrideRowsGiveTheGeneralLoopsBits) {
  SKIP_WITHOUT_GPU();
  manual_seed(25);
  const auto padded_copy = [](const Tensor& x) {
    Tensor p = empty({x.size(0), 100, 301}, TensorOptions(x.dtype(), kGpu)).slice(2, 0, 300);
    p.copy_(x);
    return p;
  };
  const Dims dims{1, 2};
  for (int64_t rows : {3, 1500}) {
    const Tensor x64 = randn({rows, 100, 300}, kFloat64) + 2.0;
    for (DType dt : {kFloat32, kFloat64, kBFloat16}) {
      const Tensor x = x64.to(dt).to(kGpu), p = padded_copy(x);
      const std::string at = label("", dt, x, dims, false);
      cuda_test::expect_bits(var(p, dims), var(x, dims).to(Device::cpu()), "var" + at);
      cuda_test::expect_bits(logsumexp(p, dims), logsumexp(x, dims).to(Device::cpu()),
                             "logsumexp" + at);
      cuda_test::expect_bits(norm(p, 3.0, dims), norm(x, 3.0, dims).to(Device::cpu()), "norm" + at);
      const Tensor q = (x * 1e-4 + 1.0).to(dt), qp = padded_copy(q);
      cuda_test::expect_bits(prod(qp, dims), prod(q, dims).to(Device::cpu()), "prod" + at);
    }
    const Tensor i = (x64 * 1000).to(kInt32).to(kGpu), ip = padded_copy(i);
    cuda_test::expect_bits(sum(ip, dims), sum(i, dims).to(Device::cpu()), "int sum");
    cuda_test::expect_bits(amax(ip, dims), amax(i, dims).to(Device::cpu()), "int amax");
    const Tensor z = x64.to(kComplex64).to(kGpu), zp = padded_copy(z);
    cuda_test::expect_bits(sum(zp, dims), sum(z, dims).to(Device::cpu()), "complex sum");
  }
}

TEST(CudaReduceMore, SpecialValuesAndEmptyReductionsLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor rows =
      tensor<double>({1,     kNan, 3,     1, kInf, 3, 1, -kInf, 3, kInf, kInf, 1,    -kInf, -kInf,
                      -kInf, kInf, -kInf, 0, 2,    2, 2, 0,     0, 0,    1e30, 1e30, 1e-30},
                     Shape{9, 3});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    const Tensor c = rows.to(dt), g = c.to(kGpu);
    const std::string n(dtype_name(dt));
    for (const Dims& dims : {Dims{1}, Dims{0}}) {
      for (int64_t corr : {0, 1, 3, 5})
        expect_close(var(g, dims, corr), var(c, dims, corr), 1e-6, 0, "var special " + n);
      expect_close(tessera::std(g, dims), tessera::std(c, dims), 1e-6, 0, "std special " + n);
      expect_close(logsumexp(g, dims), logsumexp(c, dims), 1e-6, 0, "logsumexp special " + n);
      for (double p : {2.0, 1.0, 0.0, kInf, -kInf, 0.5, -0.5})
        expect_close(norm(g, p, dims), norm(c, p, dims), 1e-6, 0, "norm special " + n);
      expect_close(prod(g, dims), prod(c, dims), 1e-6, 0, "prod special " + n);
    }
  }
  // One element: var / std with correction 1 divide 0 by 0 (NaN), as on the CPU.
  const Tensor one = tensor<float>({4.5f}, Shape{1}), one_g = one.to(kGpu);
  EXPECT_TRUE(std::isnan(values(var(one_g))[0]));
  expect_close(var(one_g), var(one), 0, 0, "var of one element");
  expect_close(tessera::std(one_g, {}, 0), tessera::std(one, {}, 0), 0, 0, "std of one, c=0");
  // Empty reductions: var NaN, logsumexp -inf, norm 0, prod 1; max over an empty dim raises.
  const Tensor e = zeros({0, 4}), eg = e.to(kGpu);
  expect_close(var(eg, {0}), var(e, {0}), 0, 0, "var over an empty dim");
  expect_close(logsumexp(eg, {0}), logsumexp(e, {0}), 0, 0, "logsumexp over an empty dim");
  expect_close(norm(eg, 2.0, {0}), norm(e, 2.0, {0}), 0, 0, "norm over an empty dim");
  expect_close(prod(eg, {0}), prod(e, {0}), 0, 0, "prod over an empty dim");
  EXPECT_EQ(var(eg, {1}).shape(), (Shape{0}));
  EXPECT_THROW((void)max(eg, 0), IndexError);
  EXPECT_THROW((void)norm(eg, kInf), ValueError);
  // 0-d inputs.
  const Tensor s = tensor<double>({-2.5}, Shape{});
  expect_close(norm(s.to(kGpu), 3.0), norm(s, 3.0), 1e-15, 0, "0-d norm");
  expect_close(logsumexp(s.to(kGpu), {}), logsumexp(s, {}), 1e-15, 0, "0-d logsumexp");
}

TEST(CudaReduceMore, LogsumexpOfIntegersIsFloat32LikeTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor x = randint(-50, 50, {7, 33});
  for (DType dt : {kInt64, kInt32, kInt8, kUInt8, kBool}) {
    const Tensor c = x.to(dt), g = c.to(kGpu);
    const Tensor got = logsumexp(g, {1}), want = logsumexp(c, {1});
    EXPECT_EQ(got.dtype(), want.dtype());
    expect_close(got, want, 1e-6, 0, "logsumexp of " + std::string(dtype_name(dt)));
  }
}

// ---- integers and bool -----------------------------------------------------------------------

TEST(CudaReduceMore, IntegerSumProdAmaxAminMatchTheCpuExactly) {
  SKIP_WITHOUT_GPU();
  manual_seed(23);
  const Tensor base = randint(-100, 100, {6, 37, 129});
  const Tensor small = randint(-2, 3, {6, 37, 129});  // products that stay in range
  for (DType dt : {kInt64, kInt32, kInt16, kInt8, kUInt8, kBool}) {
    const std::vector<Tensor> xs = layouts(base.to(dt)), ps = layouts(small.to(dt));
    for (size_t v = 0; v < xs.size(); ++v) {
      const Tensor& x = xs[v];
      const Tensor xg = x.to(kGpu);
      for (const Dims& dims : kDimSets) {
        for (bool keep : {false, true}) {
          expect_same(sum(xg, dims, keep), sum(x, dims, keep), label("sum", dt, x, dims, keep));
          expect_same(amax(xg, dims, keep), amax(x, dims, keep), label("amax", dt, x, dims, keep));
          expect_same(amin(xg, dims, keep), amin(x, dims, keep), label("amin", dt, x, dims, keep));
          expect_same(prod(ps[v].to(kGpu), dims, keep), prod(ps[v], dims, keep),
                      label("prod", dt, x, dims, keep));
          expect_same(any(xg, dims, keep), any(x, dims, keep), label("any", dt, x, dims, keep));
          expect_same(all(xg, dims, keep), all(x, dims, keep), label("all", dt, x, dims, keep));
        }
      }
    }
  }
  // int64 wraps like the CPU's; a requested dtype; long rows (the split path); empty sums.
  const Tensor big = tensor<int64_t>({std::numeric_limits<int64_t>::max(), 5, 7}, Shape{3});
  expect_same(sum(big.to(kGpu)), sum(big), "wrapping sum");
  expect_same(prod(big.to(kGpu)), prod(big), "wrapping prod");
  const Tensor i8 = base.to(kInt8);
  expect_same(sum(i8.to(kGpu), {1}, false, kInt32), sum(i8, {1}, false, kInt32), "sum dtype=");
  const Tensor long_rows = randint(-1000, 1000, {3, 100000}).to(kInt32);
  expect_same(sum(long_rows.to(kGpu)), sum(long_rows), "long sum");
  expect_same(sum(long_rows.to(kGpu), {1}), sum(long_rows, {1}), "long row sums");
  expect_same(amax(long_rows.to(kGpu), {1}), amax(long_rows, {1}), "long row amax");
  expect_same(any(long_rows.to(kGpu) > Scalar(998), {1}), any(long_rows > Scalar(998), {1}),
              "long any");
  const Tensor e = zeros({0, 3}, kInt32);
  expect_same(sum(e.to(kGpu), {0}), sum(e, {0}), "empty int sum");
  expect_same(prod(e.to(kGpu), {0}), prod(e, {0}), "empty int prod");
  expect_same(all(e.to(kGpu), {0}), all(e, {0}), "empty all");
  // Floats with NaN count as true for any / all.
  const Tensor f = tensor<double>({0, kNan, 0, 0, 1, 2}, Shape{2, 3}).to(kFloat32);
  expect_same(any(f.to(kGpu), {1}), any(f, {1}), "any with NaN");
  expect_same(all(f.to(kGpu), {0}), all(f, {0}), "all with NaN");
}

// ---- max / min with indices ------------------------------------------------------------------

TEST(CudaReduceMore, MaxMinAlongADimGiveTheCpuValuesAndFirstIndices) {
  SKIP_WITHOUT_GPU();
  manual_seed(24);
  // Rounded values: many ties; NaNs and infinities sprinkled in.
  Tensor base = round(randn({5, 40, 300}, kFloat64) * 2.0);
  base = where(rand({5, 40, 300}, kFloat64) < 0.01, full({}, kNan, kFloat64), base);
  base = where(rand({5, 40, 300}, kFloat64) < 0.01, full({}, -kInf, kFloat64), base);
  const Tensor ints = round(randn({5, 40, 300}, kFloat64) * 2.0);
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt8, kUInt8, kBool}) {
    const Tensor src = (is_floating(dt) ? base : ints).to(dt);
    for (const Tensor& x : {src, src.permute({2, 0, 1}), src.slice(2, 7, 250)}) {
      const Tensor xg = x.to(kGpu);
      for (int64_t dim : {0, 1, 2, -1}) {
        for (bool keep : {false, true}) {
          const auto [gv, gi] = max(xg, dim, keep);
          const auto [cv, ci] = max(x, dim, keep);
          expect_same(gv, cv, label("max values", dt, x, {dim}, keep));
          expect_same(gi, ci, label("max indices", dt, x, {dim}, keep));
          const auto [hv, hi] = min(xg, dim, keep);
          const auto [dv, di] = min(x, dim, keep);
          expect_same(hv, dv, label("min values", dt, x, {dim}, keep));
          expect_same(hi, di, label("min indices", dt, x, {dim}, keep));
          expect_same(argmax(xg, dim, keep), argmax(x, dim, keep),
                      label("argmax", dt, x, {dim}, 0));
          expect_same(argmin(xg, dim, keep), argmin(x, dim, keep),
                      label("argmin", dt, x, {dim}, 0));
        }
      }
      expect_same(argmax(xg), argmax(x), label("argmax all", dt, x, {}, false));
    }
  }
  const Tensor s = tensor<double>({3.0}, Shape{});
  const auto [sv, si] = max(s.to(kGpu), 0);
  expect_same(sv, std::get<0>(max(s, 0)), "0-d max");
  expect_same(si, std::get<1>(max(s, 0)), "0-d index");
}

// ---- scans -----------------------------------------------------------------------------------

TEST(CudaScan, CumsumCumprodMatchTheCpuAlongAnyDim) {
  SKIP_WITHOUT_GPU();
  manual_seed(25);
  const Tensor base = randn({7, 300, 5}, kFloat64);
  const Tensor near_one = rand({7, 300, 5}, kFloat64) * 0.1 + 0.95;
  for (const Tol& t : kTols) {
    const Tensor x = base.to(t.dtype), p = near_one.to(t.dtype);
    for (const Tensor& v : {x, x.transpose(0, 2), x.slice(1, 5, 290), p, p.transpose(1, 2)}) {
      for (int64_t dim : {0, 1, 2, -1}) {
        const std::string what = std::string(dtype_name(t.dtype)) + " " + shape_str(v.shape()) +
                                 " dim " + std::to_string(dim);
        // Double sums rounded to the dtype: the CPU's values but for rare rounding ties.
        expect_close(cumsum(v.to(kGpu), dim), cumsum(v, dim), t.rtol, t.atol * 10,
                     "cumsum " + what);
        expect_close(cumprod(v.to(kGpu), dim), cumprod(v, dim), t.rtol, t.atol, "cumprod " + what);
      }
    }
  }
  const Tensor ints = randint(-1000, 1000, {7, 300, 5}), tiny = randint(-2, 3, {7, 30, 5});
  for (DType dt : {kInt64, kInt32, kInt16, kInt8, kUInt8, kBool}) {
    for (int64_t dim : {0, 1, 2}) {
      const Tensor v = ints.to(dt), w = tiny.to(dt);
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      expect_same(cumsum(v.to(kGpu), dim), cumsum(v, dim), "cumsum " + what);
      expect_same(cumsum(v.transpose(0, 1).to(kGpu), dim), cumsum(v.transpose(0, 1), dim),
                  "cumsum transposed " + what);
      expect_same(cumprod(w.to(kGpu), dim), cumprod(w, dim), "cumprod " + what);
    }
  }
  // Special values propagate as in the CPU's running sum.
  const Tensor s = tensor<double>({1, 2, kInf, 3, -kInf, 4, kNan, 5}, Shape{8});
  for (DType dt : {kFloat32, kFloat64})
    expect_close(cumsum(s.to(dt).to(kGpu), 0), cumsum(s.to(dt), 0), 0, 0, "cumsum special");
  const Tensor z = tensor<double>({2, 0, 3, kInf, kNan}, Shape{5});
  expect_close(cumprod(z.to(kGpu), 0), cumprod(z, 0), 0, 0, "cumprod special");
  const Tensor sc = tensor<float>({3}, Shape{});
  expect_close(cumsum(sc.to(kGpu), 0), cumsum(sc, 0), 0, 0, "0-d cumsum");
  EXPECT_EQ(cumsum(zeros({0, 3}).to(kGpu), 0).shape(), (Shape{0, 3}));
}

TEST(CudaScan, EveryPathMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(26);
  // Columns (20000 lanes side by side), a block per lane (lanes side by side but too few for
  // columns, and contiguous lanes), and long lanes in parts (one lane, a few lanes, strided
  // lanes), for float32 and float64 (double accumulation) and int64 (exact).
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{50, 20000}, 0}, {{300, 4096}, 0}, {{4096, 50}, 1},   {{1, 1000003}, 1},
      {{3, 200000}, 1}, {{200000, 3}, 0}, {{600, 40000}, 1}, {{2, 7, 70000}, 2}};
  for (const auto& [shape, dim] : cases) {
    const Tensor f = randn(shape, kFloat64);
    const std::string what = shape_str(shape) + " dim " + std::to_string(dim);
    for (DType dt : {kFloat32, kFloat64}) {
      const Tensor x = f.to(dt);
      // Long float32 lanes: |error| relative to the running magnitude, not to a partial sum
      // that passes near 0.
      // Both accumulate in double, in different orders: float32 results are the CPU's but for
      // rare rounding ties; float64 ones differ by the rounding of the partial sums (which grows
      // like the square root of the lane's length, so near a partial sum of 0 it is absolute).
      const double atol = dt == kFloat32 ? 1e-6 : 1e-10;
      expect_close(cumsum(x.to(kGpu), dim), cumsum(x, dim), dt == kFloat32 ? 1e-6 : 1e-11, atol,
                   std::string(dtype_name(dt)) + " cumsum " + what);
    }
    const Tensor i = randint(-1000000, 1000000, shape);
    expect_same(cumsum(i.to(kGpu), dim), cumsum(i, dim), "int64 cumsum " + what);
    const Tensor p = (f * 1e-5 + 1.0);
    expect_close(cumprod(p.to(kGpu), dim), cumprod(p, dim), 1e-10, 0, "cumprod " + what);
  }
  const Tensor a = randn({1, 1000003}).to(kGpu);
  EXPECT_EQ(values(cumsum(a, 1)), values(cumsum(a, 1))) << "reproducible";
}

// ---- gradients -------------------------------------------------------------------------------

// d(sum(f(x) * w))/dx on the GPU and on the CPU, in float64.
void expect_grad(const std::function<Tensor(const Tensor&)>& f, const Tensor& x0,
                 const std::string& what, double rtol = 1e-10) {
  auto grad = [&](Device dev) {
    Tensor x = x0.to(dev).detach().requires_grad_();
    const Tensor y = f(x);
    manual_seed(99);
    const Tensor w = randn(y.shape(), kFloat64).to(dev);
    (y * w).sum().backward();
    return x.grad();
  };
  const Tensor g = grad(kGpu), c = grad(Device::cpu());
  ASSERT_TRUE(g.defined()) << what;
  expect_close(g, c, rtol, 1e-12, what);
}

TEST(CudaReduceMore, GradientsThroughAutogradMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(27);
  const Tensor x = randn({5, 6, 7}, kFloat64);
  for (const Dims& dims : {Dims{}, Dims{1}, Dims{0, 2}}) {
    expect_grad([&](const Tensor& t) { return var(t, dims); }, x, "var grad");
    expect_grad([&](const Tensor& t) { return tessera::std(t, dims, 0); }, x, "std grad");
    expect_grad([&](const Tensor& t) { return norm(t, 2.0, dims); }, x, "norm p=2 grad");
    expect_grad([&](const Tensor& t) { return norm(t, 0.0, dims); }, x, "norm p=0 grad");
  }
  expect_grad([](const Tensor& t) { return logsumexp(t, {1}); }, x, "logsumexp grad");
  expect_grad([](const Tensor& t) { return std::get<0>(max(t, 1)); }, x, "max_dim grad");
  expect_grad([](const Tensor& t) { return std::get<0>(min(t, -1)); }, x, "min_dim grad");
  expect_grad([](const Tensor& t) { return amax(t, {0, 2}); }, round(x), "amax grad (ties)");
  for (int64_t dim : {0, 1, 2}) {
    expect_grad([dim](const Tensor& t) { return cumsum(t, dim); }, x, "cumsum grad");
    // Zeros exercise the exact rule of cumprod's gradient.
    const Tensor xz = where(rand({5, 6, 7}, kFloat64) < 0.1, zeros({}, kFloat64), x);
    expect_grad([dim](const Tensor& t) { return cumprod(t, dim); }, xz, "cumprod grad", 1e-9);
  }
}

// prod's gradient counts zeros with integer arithmetic and norm's p = 1 / inf gradients take
// sign(x): those need integer sub and sign kernels on the GPU, which this change does not add.
TEST(CudaReduceMore, GradientsNeedingIntegerAndSignKernelsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(28);
  const Tensor x =
      where(rand({4, 9}, kFloat64) < 0.15, zeros({}, kFloat64), randn({4, 9}, kFloat64));
  const Tensor one = ones({2}, kInt64).to(kGpu);
  try {
    (void)sub(one, one);
    (void)sign(ones({2}, kFloat64).to(kGpu));
  } catch (const NotImplementedError& e) {
    GTEST_SKIP() << "needs CUDA kernels outside this change: " << e.what();
  }
  expect_grad([](const Tensor& t) { return prod(t, {1}); }, x, "prod grad (zeros)");
  expect_grad([](const Tensor& t) { return prod(t); }, x, "prod grad (all)");
  expect_grad([](const Tensor& t) { return norm(t, 1.0, {1}); }, x, "norm p=1 grad");
  expect_grad([](const Tensor& t) { return norm(t, kInf, {1}); }, x, "norm p=inf grad");
  expect_grad([](const Tensor& t) { return norm(t, 3.0, {0}); }, x, "norm p=3 grad");
}

// ---- what var unblocks: the normalization layers ---------------------------------------------

struct NormResult {
  Tensor y, dx, dw, db, running_mean, running_var;
};

void expect_norm_close(const NormResult& g, const NormResult& c, double rtol, double atol,
                       const std::string& what) {
  expect_close(g.y, c.y, rtol, atol, what + " output");
  expect_close(g.dx, c.dx, rtol, atol, what + " input grad");
  expect_close(g.dw, c.dw, rtol, atol, what + " weight grad");
  expect_close(g.db, c.db, rtol, atol, what + " bias grad");
  if (c.running_mean.defined()) {
    expect_close(g.running_mean, c.running_mean, rtol, atol, what + " running_mean");
    expect_close(g.running_var, c.running_var, rtol, atol, what + " running_var");
  }
}

TEST(CudaReduceMore, BatchLayerGroupNormForwardAndBackwardMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(29);
  const Tensor x0 = randn({8, 6, 5, 4}, kFloat64) * 2.0 + 1.0, w0 = randn({6}, kFloat64),
               b0 = randn({6}, kFloat64), g0 = randn({8, 6, 5, 4}, kFloat64);
  const Tensor lw0 = randn({5, 4}, kFloat64), lb0 = randn({5, 4}, kFloat64);
  for (DType dt : {kFloat32, kFloat64}) {
    const double rtol = dt == kFloat32 ? 1e-4 : 1e-10, atol = dt == kFloat32 ? 1e-5 : 1e-12;
    const std::string n(dtype_name(dt));
    auto run = [&](Device dev, int which, bool training) {
      Tensor x = x0.to(dt).to(dev).detach().requires_grad_();
      const bool layer = which == 1;
      Tensor w = (layer ? lw0 : w0).to(dt).to(dev).detach().requires_grad_();
      Tensor b = (layer ? lb0 : b0).to(dt).to(dev).detach().requires_grad_();
      NormResult r;
      Tensor y;
      if (which == 0) {
        r.running_mean = zeros({6}, dt).to(dev);
        r.running_var = ones({6}, dt).to(dev);
        y = F::batch_norm(x, r.running_mean, r.running_var, w, b, training, 0.1, 1e-5);
      } else if (which == 1) {
        y = F::layer_norm(x, {5, 4}, w, b, 1e-5);
      } else {
        y = F::group_norm(x, 3, w, b, 1e-5);
      }
      (y * g0.to(dt).to(dev)).sum().backward();
      r.y = y.detach();
      r.dx = x.grad();
      r.dw = w.grad();
      r.db = b.grad();
      return r;
    };
    expect_norm_close(run(kGpu, 0, true), run(Device::cpu(), 0, true), rtol, atol,
                      "batch_norm training " + n);
    expect_norm_close(run(kGpu, 0, false), run(Device::cpu(), 0, false), rtol, atol,
                      "batch_norm eval " + n);
    expect_norm_close(run(kGpu, 1, true), run(Device::cpu(), 1, true), rtol, atol,
                      "layer_norm " + n);
    expect_norm_close(run(kGpu, 2, true), run(Device::cpu(), 2, true), rtol, atol,
                      "group_norm " + n);
  }
  // The layers themselves (modules holding their parameters and running statistics).
  nn::BatchNorm2d bn(6);
  const Tensor x = x0.to(kFloat32);
  const Tensor want = bn.forward(x);
  nn::BatchNorm2d bn_gpu(6);
  bn_gpu.to(kGpu);
  expect_close(bn_gpu.forward(x.to(kGpu)), want, 1e-4, 1e-5, "BatchNorm2d module");
}

// ---- errors ----------------------------------------------------------------------------------

TEST(CudaReduceMore, UnsupportedDtypesSayThereIsNoCudaKernel) {
  SKIP_WITHOUT_GPU();
  // complex64 norm / prod / cumsum have kernels now (test_cuda_complex_reduce.cpp); what the
  // CPU refuses for complex64 is refused with the CPU's error.
  const Tensor c = zeros({4}, kComplex64).to(kGpu);
  EXPECT_THROW((void)var(c), NotImplementedError);
  EXPECT_THROW((void)amax(c), DTypeError);
  EXPECT_THROW((void)var(zeros({4}, kInt32).to(kGpu)), DTypeError);
}

}  // namespace
}  // namespace tessera
