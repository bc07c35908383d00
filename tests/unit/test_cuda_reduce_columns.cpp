// The column path of the CUDA reductions (reduce_plan.h, fold_tiles.cuh): reductions over dims
// outside the innermost kept one, such as x of shape (B, C) summed over dim 0 (every Linear
// layer's bias gradient), take blocks of adjacent outputs so that warps read memory coalesced.
// CudaReducePlanOnTheHost checks the plan (when the path applies, block shape, grid, parts,
// workspace) without a GPU; the other tests compare every op that takes the path with the CPU
// over column-shaped reductions and skip (GTEST_SKIP) when no CUDA device is available.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backends/cuda/reduce_plan.h"
#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace k = cuda::k;
using cuda_test::expect_bits;
using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

// ---- the plan, on the host -------------------------------------------------------------------

// A one-operand geometry of already merged dims (sizes, element strides).
k::Geometry geo(const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides) {
  k::Geometry g;
  g.ndim = static_cast<int>(sizes.size());
  g.numel = 1;
  for (size_t d = 0; d < sizes.size(); ++d) {
    g.sizes[d] = sizes[d];
    g.strides[0][d] = strides[d];
    g.numel *= sizes[d];
  }
  return g;
}

bool pow2(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

// The invariants the kernel relies on, for any plan.
void expect_valid(const k::ReducePlan& p, int64_t n_out, int64_t n_red, const std::string& what) {
  ASSERT_TRUE(pow2(p.bx) && pow2(p.by)) << what;
  ASSERT_LE(int64_t{p.bx} * p.by, k::kPlanThreads) << what;
  ASSERT_GE(p.grid_x, 1u) << what;
  ASSERT_LE(p.grid_x, k::kMaxGrid) << what;
  ASSERT_GE(p.splits, 1) << what;
  ASSERT_LE(p.splits, k::kMaxGrid) << what;  // gridDim.y
  ASSERT_LE(p.splits, k::kTargetBlocks) << what;
  ASSERT_EQ(p.work, p.splits > 1 ? n_out * p.splits : 0) << what;
  ASSERT_GE(p.chunk * p.splits, n_red) << what;
  if (p.splits > 1) {
    ASSERT_LT((p.splits - 1) * p.chunk, n_red) << what;  // no empty part
  }
  if (p.columns) {
    ASSERT_GE(p.bx, 2u) << what;
    ASSERT_LE(p.by, k::pow2_at_least(n_red)) << what;  // no thread without elements
    ASSERT_LE(p.bx, k::pow2_at_least(n_out)) << what;  // no tile of idle outputs
    // Every tile is reachable: launched, or covered by the grid-stride loop.
    ASSERT_GE(int64_t{p.grid_x} * p.bx, std::min(n_out, k::kMaxGrid * p.bx)) << what;
    if (p.splits > 1) {
      ASSERT_GE(p.chunk, int64_t{p.by} * k::kColumnPerThread) << what;
    }
  } else {
    ASSERT_EQ(p.bx, 1u) << what;
    ASSERT_EQ(p.by % 32, 0u) << what;  // the warp-shuffle tree needs whole warps
  }
}

TEST(CudaReducePlanOnTheHost, ColumnsWhenTheKeptDimsEndInAContiguousRun) {
  // (B, C) contiguous over dim 0: outer (C) stride 1, inner (B) stride C.
  EXPECT_TRUE(k::column_layout(geo({64}, {1}), geo({1000}, {64})));
  // Over dim 1: the reduced dim is the contiguous one (rows).
  EXPECT_FALSE(k::column_layout(geo({1000}, {64}), geo({64}, {1})));
  // Everything reduced: one output (rows).
  EXPECT_FALSE(k::column_layout(geo({}, {}), geo({64000}, {1})));
  // A permuted (C, B) base read as (B, C) over dim 1: outer (B) stride 1, inner (C) stride B.
  EXPECT_TRUE(k::column_layout(geo({400}, {1}), geo({37}, {400})));
  // A sliced (B, C + 3) tensor over dim 0: kept stride 1, reduced stride C + 3.
  EXPECT_TRUE(k::column_layout(geo({37}, {1}), geo({300}, {40})));
  // Two reduced dims that do not merge (a slice), the innermost strided.
  EXPECT_TRUE(k::column_layout(geo({33}, {1}), geo({40, 9}, {420, 35})));
  // (N, C, L) over (0, 2): kept C has stride L, the reduced L is contiguous (rows).
  EXPECT_FALSE(k::column_layout(geo({5}, {9}), geo({7, 9}, {45, 1})));
  // Kept dims strided (every other column): rows, as before.
  EXPECT_FALSE(k::column_layout(geo({30}, {2}), geo({200}, {60})));
  // One reduced element (a size-1 dim: no inner dims) and expanded inputs (stride 0).
  EXPECT_TRUE(k::column_layout(geo({3500}, {1}), geo({}, {})));
  EXPECT_TRUE(k::column_layout(geo({40}, {1}), geo({500}, {0})));
  // Empty reductions still write every output; empty outputs never launch.
  EXPECT_TRUE(k::column_layout(geo({40}, {1}), geo({0}, {40})));
  EXPECT_FALSE(k::column_layout(geo({0}, {1}), geo({40}, {0})));
  // plan_reduce follows column_layout.
  EXPECT_TRUE(k::plan_reduce(geo({64}, {1}), geo({1000}, {64})).columns);
  EXPECT_FALSE(k::plan_reduce(geo({1000}, {64}), geo({64}, {1})).columns);
}

TEST(CudaReducePlanOnTheHost, ColumnBlocksGridsAndParts) {
  // The bandwidth case: a (65536, 1024) float32 column sum. 32 adjacent outputs per warp, 8
  // threads per output, 32 tiles: split into 64 parts of 1024 rows (2048 blocks, 128 loads
  // per thread), combined from a workspace of 64 partials per output.
  k::ReducePlan p = k::column_plan(1024, 1024, 65536);
  EXPECT_EQ(p.bx, 32u);
  EXPECT_EQ(p.by, 8u);
  EXPECT_EQ(p.grid_x, 32u);
  EXPECT_EQ(p.splits, 64);
  EXPECT_EQ(p.chunk, 1024);
  EXPECT_EQ(p.work, 1024 * 64);
  // A Linear bias gradient: (512, 4096) over dim 0. Short columns: one pass, no workspace.
  p = k::column_plan(4096, 4096, 512);
  EXPECT_EQ(p.bx, 32u);
  EXPECT_EQ(p.by, 8u);
  EXPECT_EQ(p.grid_x, 128u);
  EXPECT_EQ(p.splits, 1);
  EXPECT_EQ(p.work, 0);
  // Four columns of a million rows: a warp reads 8 rows of 4 (one contiguous piece).
  p = k::column_plan(4, 4, 1000000);
  EXPECT_EQ(p.bx, 4u);
  EXPECT_EQ(p.by, 64u);
  EXPECT_EQ(p.grid_x, 1u);
  EXPECT_EQ(p.splits, 244);  // 2048 blocks would leave parts under 64 rows per thread
  EXPECT_EQ(p.chunk, 4099);
  EXPECT_EQ(p.work, 4 * 244);
  // Short columns: threads go to outputs. One row (n_red 1), two rows, three rows.
  p = k::column_plan(3500, 70, 1);
  EXPECT_EQ(p.bx, 256u);
  EXPECT_EQ(p.by, 1u);
  EXPECT_EQ(p.grid_x, 14u);
  p = k::column_plan(100, 100, 2);
  EXPECT_EQ(p.bx, 128u);
  EXPECT_EQ(p.by, 2u);
  p = k::column_plan(33, 33, 3);
  EXPECT_EQ(p.bx, 64u);
  EXPECT_EQ(p.by, 4u);
  // An empty reduction: one pass writing the ops' empty results.
  p = k::column_plan(40, 40, 0);
  EXPECT_EQ(p.splits, 1);
  EXPECT_EQ(p.by, 1u);
  // More tiles than a grid dim holds: the grid-stride loop covers the rest.
  p = k::column_plan(9000000, 9000000, 2);
  EXPECT_EQ(p.bx, 128u);
  EXPECT_EQ(p.grid_x, 65535u);
  // The contiguous run sets the width a warp reads: runs of 3 take tiles of 4.
  p = k::column_plan(3000, 3, 5000);
  EXPECT_EQ(p.bx, 4u);
  EXPECT_EQ(p.by, 64u);
}

TEST(CudaReducePlanOnTheHost, RowsKeepTheirSplitRule) {
  // A block per row: 32, 128 or 256 threads by length; rows of at least 32768 elements with
  // fewer than 1024 outputs split into parts of about 16384, about 2048 blocks.
  EXPECT_EQ(k::row_plan(10, 20).by, 32u);
  EXPECT_EQ(k::row_plan(10, 100).by, 128u);
  EXPECT_EQ(k::row_plan(10, 1000).by, 256u);
  k::ReducePlan p = k::row_plan(3, 100000);
  EXPECT_EQ(p.splits, 7);
  EXPECT_EQ(p.by, 256u);
  EXPECT_EQ(p.chunk, 14286);
  EXPECT_EQ(p.work, 21);
  EXPECT_EQ(k::row_plan(1, 1 << 30).splits, 2048);
  EXPECT_EQ(k::row_plan(2000, 40000).splits, 1);  // many outputs: one pass
  EXPECT_EQ(k::row_plan(3, 32767).splits, 1);
  EXPECT_EQ(k::row_plan(100000, 5).grid_x, 65535u);
  // reduce.cu's second pass reads the [n_out, splits] workspace as rows: one pass.
  p = k::plan_reduce(geo({3}, {7}), geo({7}, {1}));
  EXPECT_FALSE(p.columns);
  EXPECT_EQ(p.splits, 1);
}

TEST(CudaReducePlanOnTheHost, EveryPlanIsLaunchable) {
  const std::vector<int64_t> sizes = {1,
                                      2,
                                      3,
                                      5,
                                      8,
                                      31,
                                      32,
                                      33,
                                      64,
                                      100,
                                      255,
                                      257,
                                      1000,
                                      4096,
                                      65535,
                                      65537,
                                      100000,
                                      300000,
                                      999999,
                                      4 << 20,
                                      1 << 24,
                                      1 << 27,
                                      int64_t{1} << 33};
  for (int64_t n_out : sizes)
    for (int64_t n_red : sizes) {
      if (n_out > (1 << 24) && n_red > (1 << 24)) continue;
      const std::string what = std::to_string(n_out) + " outputs of " + std::to_string(n_red);
      expect_valid(k::row_plan(n_out, n_red), n_out, n_red, "rows " + what);
      if (n_out < 2) continue;
      for (int64_t run : {int64_t{2}, int64_t{3}, int64_t{17}, int64_t{32}, n_out})
        if (run <= n_out)
          expect_valid(k::column_plan(n_out, run, n_red), n_out, n_red,
                       "columns (run " + std::to_string(run) + ") " + what);
    }
  // A pure function of the shape: the same plan every time.
  const k::ReducePlan a = k::column_plan(1000, 1000, 50000), b = k::column_plan(1000, 1000, 50000);
  EXPECT_EQ(a.splits, b.splits);
  EXPECT_EQ(a.chunk, b.chunk);
  EXPECT_EQ(a.bx, b.bx);
  EXPECT_EQ(a.by, b.by);
}

// ---- on a GPU: every op over column-shaped reductions, against the CPU ------------------------

struct Tol {
  DType dtype;
  double rtol, atol, acc_eps;
};
// sum / mean accumulate in float32 (float64 for float64), as on the row path.
const std::vector<Tol> kTols = {{kFloat32, 1e-5, 1e-6, 6e-8},
                                {kFloat64, 1e-13, 1e-14, 1.1e-16},
                                {kFloat16, 2e-3, 1e-3, 6e-8},
                                {kBFloat16, 1.6e-2, 1e-2, 6e-8}};
// prod, var, std, logsumexp and norm accumulate in double, like the CPU.
const std::vector<Tol> kStatTols = {{kFloat32, 2e-6, 1e-7, 0},
                                    {kFloat64, 1e-12, 1e-13, 0},
                                    {kFloat16, 2e-3, 1e-4, 0},
                                    {kBFloat16, 1.6e-2, 1e-3, 0}};

std::string label(const std::string& op, DType dt, const Tensor& x, const Dims& dims) {
  std::string s = op + " " + std::string(dtype_name(dt)) + " " + shape_str(x.shape()) +
                  (x.is_contiguous() ? "" : " strided") + " dims {";
  for (int64_t d : dims) s += std::to_string(d) + ",";
  return s + "}";
}

int64_t reduced_count(const Tensor& x, const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= x.shape()[static_cast<size_t>((d + x.dim()) % x.dim())];
  return n;
}

// Inputs (views of base's values) whose reduction over `dims` is column-shaped: contiguous
// (B, C) over {0} with 1, 31, 33 and 65537 outputs, (N, C, L) over {0}, a permuted base over its
// last dim, a sliced view, every other row, two reduced dims that do not merge, an expanded row,
// one element per output; from 1 row to lengths that split into parts.
struct Column {
  Tensor x;
  Dims dims;
};
std::vector<Column> column_inputs(const Tensor& base) {
  const auto make = [&](const Shape& shape) {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return base.narrow(0, 0, n).reshape(shape);
  };
  std::vector<Column> c;
  for (int64_t b : {1, 5, 1000})
    for (int64_t n : {1, 31, 33, 65537})
      if (b * n <= base.numel()) c.push_back({make({b, n}), {0}});
  c.push_back({make({20000, 31}), {0}});  // split into parts
  c.push_back({make({70001, 3}), {0}});   // split, 3 outputs
  c.push_back({make({9, 7, 130}), {0}});  // (N, C, L): C * L outputs
  c.push_back({make({9, 7, 130}), {0, 1}});
  c.push_back({make({33, 400}).t(), {1}});                    // permuted: (400, 33) over dim 1
  c.push_back({make({300, 40}).slice(1, 0, 37), {0}});        // sliced rows
  c.push_back({make({2000, 33}).slice(0, 0, 2000, 2), {0}});  // every other row
  c.push_back({make({40, 9, 33}).slice(1, 0, 8), {0, 1}});    // reduced dims that do not merge
  c.push_back({make({1, 45}).expand({600, 45}), {0}});        // stride 0
  c.push_back({make({50, 1, 70}), {1}});                      // one element per output
  return c;
}

TEST(CudaReduceColumns, SumMeanAmaxAminMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(31);
  const Tensor base64 = randn({5000000}, kFloat64);
  for (const Tol& t : kTols) {
    for (const Column& c : column_inputs(base64.to(t.dtype))) {
      const Tensor xg = c.x.to(kGpu);
      const double acc = t.atol + t.acc_eps * static_cast<double>(reduced_count(c.x, c.dims));
      for (bool keep : {false, true}) {
        expect_close(sum(xg, c.dims, keep), sum(c.x, c.dims, keep), t.rtol, acc,
                     label("sum", t.dtype, c.x, c.dims));
        expect_close(mean(xg, c.dims, keep), mean(c.x, c.dims, keep), t.rtol, acc,
                     label("mean", t.dtype, c.x, c.dims));
      }
      // Selections: exactly the CPU's element.
      expect_bits(amax(xg, c.dims), amax(c.x, c.dims), label("amax", t.dtype, c.x, c.dims));
      expect_bits(amin(xg, c.dims), amin(c.x, c.dims), label("amin", t.dtype, c.x, c.dims));
    }
  }
}

TEST(CudaReduceColumns, IntegerAndBoolReductionsAreExact) {
  SKIP_WITHOUT_GPU();
  manual_seed(32);
  const Tensor base = (randn({5000000}, kFloat64) * 1000).to(kInt64);
  for (const Column& c : column_inputs(base)) {
    const Tensor xg = c.x.to(kGpu);
    expect_bits(sum(xg, c.dims), sum(c.x, c.dims), label("sum", kInt64, c.x, c.dims));
    expect_bits(prod(xg, c.dims), prod(c.x, c.dims), label("prod", kInt64, c.x, c.dims));
    expect_bits(amax(xg, c.dims), amax(c.x, c.dims), label("amax", kInt64, c.x, c.dims));
    expect_bits(amin(xg, c.dims), amin(c.x, c.dims), label("amin", kInt64, c.x, c.dims));
    const Tensor b = c.x > int64_t{500};
    expect_bits(any(b.to(kGpu), c.dims), any(b, c.dims), label("any", kBool, c.x, c.dims));
    expect_bits(all(b.to(kGpu), c.dims), all(b, c.dims), label("all", kBool, c.x, c.dims));
  }
  // Narrow integers: int32 and uint8 sums (written as int64), int16 extremes.
  const Tensor i32 = (randn({3000, 33}, kFloat64) * 1e6).to(kInt32);
  expect_bits(sum(i32.to(kGpu), {0}), sum(i32, {0}), "sum int32 (3000, 33) dims {0}");
  const Tensor u8 = (rand({70001, 3}, kFloat64) * 255).to(kUInt8);
  expect_bits(sum(u8.to(kGpu), {0}), sum(u8, {0}), "sum uint8 (70001, 3) dims {0}");
  const Tensor i16 = (randn({1000, 65}, kFloat64) * 1e4).to(kInt16);
  expect_bits(amax(i16.to(kGpu), {0}), amax(i16, {0}), "amax int16 (1000, 65) dims {0}");
}

TEST(CudaReduceColumns, StatisticsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(33);
  const Tensor base64 = randn({5000000}, kFloat64) * 3.0 + 1.0;
  const Tensor near_one = rand({5000000}, kFloat64) * 0.02 + 0.99;  // products stay in range
  const double inf = std::numeric_limits<double>::infinity();
  for (const Tol& t : kStatTols) {
    const std::vector<Column> xs = column_inputs(base64.to(t.dtype));
    const std::vector<Column> ps = column_inputs(near_one.to(t.dtype));
    for (size_t i = 0; i < xs.size(); ++i) {
      const Tensor& x = xs[i].x;
      const Dims& dims = xs[i].dims;
      const Tensor xg = x.to(kGpu);
      for (int64_t corr : {0, 1}) {
        expect_close(var(xg, dims, corr), var(x, dims, corr), t.rtol, t.atol,
                     label("var c=" + std::to_string(corr), t.dtype, x, dims));
        expect_close(tessera::std(xg, dims, corr), tessera::std(x, dims, corr), t.rtol, t.atol,
                     label("std c=" + std::to_string(corr), t.dtype, x, dims));
      }
      expect_close(logsumexp(xg, dims), logsumexp(x, dims), t.rtol, t.atol,
                   label("logsumexp", t.dtype, x, dims));
      for (double p : {2.0, 1.0, 0.0, inf, -inf, 3.0})
        expect_close(norm(xg, p, dims), norm(x, p, dims), t.rtol, t.atol,
                     label("norm p=" + std::to_string(p), t.dtype, x, dims));
      expect_close(prod(ps[i].x.to(kGpu), dims), prod(ps[i].x, dims), t.rtol, 1e-30,
                   label("prod", t.dtype, ps[i].x, dims));
    }
  }
}

TEST(CudaReduceColumns, ComplexSumsAreExactOnSmallIntegers) {
  SKIP_WITHOUT_GPU();
  // Integer parts: every partial sum is exact in complex<double>, so the bits are the CPU's.
  std::vector<Complex64> v(1000 * 33);
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = Complex64(static_cast<float>(static_cast<int>(i * 7 % 19) - 9),
                     static_cast<float>(static_cast<int>(i * 5 % 23) - 11));
  const Tensor z = tensor<Complex64>(v, Shape{1000, 33});
  expect_bits(sum(z.to(kGpu), {0}), sum(z, {0}), "complex64 sum (1000, 33) dims {0}");
  expect_bits(sum(z.t().to(kGpu), {1}), sum(z.t(), {1}), "complex64 sum of a transpose");
  expect_close(norm(z.to(kGpu), 2.0, {0}), norm(z, 2.0, {0}), 1e-6, 0, "complex64 norm");
}

TEST(CudaReduceColumns, SpecialValuesAndEmptyColumnsLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  // Columns holding a NaN, +inf twice, +inf and -inf, and plain numbers; read over dim 0, and
  // through a transpose over dim 1 (columns of stride 1 both ways).
  const Tensor x = tensor<double>({1, nan, inf, inf, 2, 3, 4, 1, -inf, -inf, 5, 6}, Shape{3, 4});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    for (const auto& [c, dims] : {std::pair{x.to(dt), Dims{0}}, std::pair{x.to(dt).t(), Dims{1}}}) {
      const Tensor g = c.to(kGpu);
      expect_close(sum(g, dims), sum(c, dims), 0, 0, "sum special columns");
      expect_close(mean(g, dims), mean(c, dims), 1e-6, 0, "mean special columns");
      expect_close(amax(g, dims), amax(c, dims), 0, 0, "amax special columns");
      expect_close(amin(g, dims), amin(c, dims), 0, 0, "amin special columns");
      expect_close(logsumexp(g, dims), logsumexp(c, dims), 1e-6, 0, "logsumexp special columns");
      expect_close(var(g, dims), var(c, dims), 1e-6, 0, "var special columns");
      expect_close(prod(g, dims), prod(c, dims), 1e-6, 0, "prod special columns");
    }
  }
  // Empty columns: sum 0, mean NaN, prod 1, norm 0, as on the CPU.
  const Tensor e = zeros({0, 40}), eg = e.to(kGpu);
  expect_close(sum(eg, {0}), sum(e, {0}), 0, 0, "sum over an empty dim");
  expect_close(mean(eg, {0}), mean(e, {0}), 0, 0, "mean over an empty dim");
  expect_close(prod(eg, {0}), prod(e, {0}), 0, 0, "prod over an empty dim");
  expect_close(norm(eg, 2.0, {0}), norm(e, 2.0, {0}), 0, 0, "norm over an empty dim");
}

TEST(CudaReduceColumns, SplitsDependOnTheShapeOnly) {
  SKIP_WITHOUT_GPU();
  manual_seed(34);
  // 200000 rows of 33: split into parts of a workspace and a second pass.
  const Tensor x = randn({2000, 100, 33}).to(kGpu);
  const Dims dims{0, 1};
  const std::vector<double> a = values(sum(x, dims));
  EXPECT_EQ(values(sum(x, dims)), a);
  EXPECT_EQ(values(var(x, dims)), values(var(x, dims)));
  // The same values in a padded copy (reduced dims that no longer merge: the general loop
  // instead of the one-stride one) give the same bits: each thread folds the same elements in
  // the same order either way.
  Tensor padded = empty({2000, 101, 33}, TensorOptions(kFloat32, kGpu)).slice(1, 0, 100);
  padded.copy_(x);
  EXPECT_EQ(values(sum(padded, dims)), a);
  EXPECT_EQ(values(amax(padded, dims)), values(amax(x, dims)));
  expect_close(sum(x, dims), sum(x.to(Device::cpu()), dims), 1e-5, 1e-3, "split column sums");
}

TEST(CudaReduceColumns, BiasGradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(35);
  const Tensor a0 = randn({512, 96}), b0 = randn({96}), w0 = randn({512, 96});
  auto grad = [&](Device dev) {
    Tensor a = a0.to(dev).detach().requires_grad_();
    Tensor b = b0.to(dev).detach().requires_grad_();
    // The backward of a broadcast add sums the cotangent over the batch dim: a column sum.
    ((a + b) * w0.to(dev)).sum().backward();
    return b.grad();
  };
  expect_close(grad(kGpu), grad(Device::cpu()), 1e-5, 1e-4, "bias gradient");
}

}  // namespace
}  // namespace tessera
