// The CUDA complex64 reductions, scans and matmul against the CPU: sum, mean, prod, norm, any,
// all over every dim set, keepdim, contiguous / permuted / sliced inputs, long rows (the split
// path), empty and one-element reductions, special values; cumsum / cumprod along every dim
// through each scan path; matmul in every layout and batch form. One test runs without a GPU
// where CUDA is built: CUDA has a complex64 kernel for exactly the reduction, scan and matmul
// primitives the CPU takes complex64 for.
//
// Tolerances, and why: both sides accumulate sums and products in complex<double> and round
// each part to float once, but in different orders (the CPU folds in order, or in chunks of
// 65536; the GPU in a strided tree), so a sum part may differ by an ulp of the result plus
// double's roundings (n 2^-53 S for S = sum |z|); a product by an ulp plus n 2^-53 of its
// modulus. Both are far below float32's own rounding, so a wrong term would still fail. The columns scan path folds in the CPU's
// order, so there the bits must match. norm's modulus is sqrt(x^2 + y^2) in double where the
// CPU calls hypot (within an ulp of double), so its float32 result is compared within 1e-6.
// matmul is cuBLAS's cgemm against OpenBLAS's, both accumulating in float32 (TF32 is off by
// default): within k 2^-22 of (|A| |B|), the bound for two float32 sums of k products.
#include <gtest/gtest.h>

#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::kGpu;
using cuda_test::same_bits;

const Device kCpu = Device::cpu();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// ---- coverage (no GPU needed) ---------------------------------------------------------------

// A reduction, scan or matmul primitive has a CUDA kernel for complex64 exactly when the CPU
// takes complex64 for it (its inference accepts it; the CPU kernels follow the same rules).
TEST(CudaComplexReduce, EveryReductionScanAndMatmulTheCpuTakesComplexForHasACudaKernel) {
  if (!cuda::is_built()) GTEST_SKIP() << "not built with CUDA";
  std::vector<std::string> with_kernel;
  int checked = 0;
  for (const Primitive& p : registry().all()) {
    if (p.kind != PrimKind::Reduction && p.kind != PrimKind::Scan && p.kind != PrimKind::Matmul)
      continue;
    std::vector<Tensor> in(p.kind == PrimKind::Matmul ? 2 : 1, zeros({2, 2}, kComplex64));
    Attrs a;
    if (p.kind == PrimKind::Scan) a.set("dim", int64_t{0});
    if (p.name == "norm") a.set("p", 2.0);
    ++checked;
    if (cuda_test::expect_cuda_kernel_iff_cpu_takes(p, in, a, std::string(p.name) + " complex64"))
      with_kernel.push_back(std::string(p.name));
  }
  EXPECT_GT(checked, 15);
  // sum, mean, prod, norm, any, all, cumsum, cumprod, matmul.
  EXPECT_EQ(with_kernel.size(), 9u) << ::testing::PrintToString(with_kernel);
}

// ---- helpers --------------------------------------------------------------------------------

// Deterministic complex64 values with parts in [lo, hi), plus center on the real part.
Tensor crand(const Shape& shape, float lo, float hi, uint64_t seed, float center = 0) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<Complex64> v(static_cast<size_t>(n));
  auto next = [&] {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return lo +
           (hi - lo) * static_cast<float>(static_cast<double>(seed >> 11) / 9007199254740992.0);
  };
  for (Complex64& z : v) {
    const float re = center + next();
    z = Complex64(re, next());
  }
  return tensor<Complex64>(v, shape);
}

std::vector<Complex64> host(const Tensor& t) {
  return t.to(kCpu).contiguous().to_vector<Complex64>();
}
std::vector<double> host_f64(const Tensor& t) { return cuda_test::values(t); }

// g within tol of w; infinities, NaNs (and, when tol is 0, every bit) the CPU's.
bool part_ok(float g, float w, double tol) {
  if (tol == 0 || !std::isfinite(w) || !std::isfinite(g)) return same_bits(g, w);
  return std::abs(static_cast<double>(g) - w) <= tol;
}

// A complex64 GPU result against the CPU's: part i within rel * |part| + scale[i] (scale: one
// per element, or empty for 0). rel = 0 and no scale: bit for bit.
void expect_complex(const Tensor& got, const Tensor& want, double rel,
                    const std::vector<double>& scale, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), kComplex64) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<Complex64> g = host(got), w = host(want);
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const double s = scale.empty() ? 0 : scale[i];
    const bool exact = rel == 0 && s == 0;
    auto tol = [&](float part) { return exact ? 0 : rel * std::abs(part) + s + 1e-300; };
    if (!part_ok(g[i].real(), w[i].real(), tol(w[i].real())) ||
        !part_ok(g[i].imag(), w[i].imag(), tol(w[i].imag()))) {
      ADD_FAILURE() << what << ": element " << i << " is (" << g[i].real() << ", " << g[i].imag()
                    << "), CPU gives (" << w[i].real() << ", " << w[i].imag() << ")";
      ++bad;
    }
  }
}

std::string label(const std::string& op, const Tensor& x, const Dims& dims, bool keep) {
  std::string s = op + " " + shape_str(x.shape()) + " dims {";
  for (int64_t d : dims) s += std::to_string(d) + ",";
  return s + "}" + (keep ? " keepdim" : "");
}

const std::vector<Dims> kDimSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};

// Contiguous, permuted (strided rows) and a sliced view of base.
std::vector<Tensor> layouts(const Tensor& base) {
  return {base, base.permute({2, 0, 1}), base.slice(2, 3, 100)};
}

// A sum's bound per element: 2^-23 of the result part (an ulp, two roundings) plus 1e-12 of
// S = sum |z| over the reduced elements (n 2^-53 S bounds double's roundings in any order, for
// n up to 300000 here).
void expect_sum(const Tensor& got, const Tensor& want, const Tensor& x, const Dims& dims, bool keep,
                double divisor, const std::string& what) {
  std::vector<double> s = host_f64(sum(abs(x), dims, keep));
  for (double& v : s) v = 1e-12 * v / divisor;
  expect_complex(got, want, 1.2e-7, s, what);
}
// A product's bound: an ulp of the part plus 1e-10 of the modulus (n 2^-53 per part, any order,
// for n up to 100000 here).
void expect_prod(const Tensor& got, const Tensor& want, const std::string& what) {
  std::vector<double> s = host_f64(abs(want));
  for (double& v : s) v *= 1e-10;
  expect_complex(got, want, 1.2e-7, s, what);
}

// ---- reductions -----------------------------------------------------------------------------

TEST(CudaComplexReduce, SumMeanProdNormMatchTheCpuOverAnyDims) {
  SKIP_WITHOUT_GPU();
  const Tensor base = crand({6, 37, 129}, -2.0f, 2.0f, 1);
  // Products of parts near (1, 0) stay in range over 6 * 37 * 129 elements.
  const Tensor near_one = crand({6, 37, 129}, -0.004f, 0.004f, 2, 1.0f);
  const std::vector<Tensor> xs = layouts(base), ps = layouts(near_one);
  for (size_t v = 0; v < xs.size(); ++v) {
    const Tensor &x = xs[v], &p = ps[v];
    const Tensor xg = x.to(kGpu), pg = p.to(kGpu);
    for (const Dims& dims : kDimSets) {
      int64_t n = 1;
      std::vector<bool> reduced(3, dims.empty());
      for (int64_t d : dims) reduced[static_cast<size_t>((d + 3) % 3)] = true;
      for (size_t d = 0; d < 3; ++d) n *= reduced[d] ? x.size(static_cast<int64_t>(d)) : 1;
      for (bool keep : {false, true}) {
        expect_sum(sum(xg, dims, keep), sum(x, dims, keep), x, dims, keep, 1,
                   label("sum", x, dims, keep));
        expect_sum(mean(xg, dims, keep), mean(x, dims, keep), x, dims, keep, static_cast<double>(n),
                   label("mean", x, dims, keep));
        expect_prod(prod(pg, dims, keep), prod(p, dims, keep), label("prod", x, dims, keep));
        for (double q :
             {2.0, 1.0, 0.0, static_cast<double>(kInf), -static_cast<double>(kInf), 0.5, 3.0, -1.0})
          cuda_test::expect_close(norm(xg, q, dims, keep), norm(x, q, dims, keep), 1e-6, 1e-30,
                                  label("norm p=" + std::to_string(q), x, dims, keep));
        cuda_test::expect_close(any(xg, dims, keep), any(x, dims, keep), 0, 0,
                                label("any", x, dims, keep));
        cuda_test::expect_close(all(xg, dims, keep), all(x, dims, keep), 0, 0,
                                label("all", x, dims, keep));
      }
    }
  }
}

TEST(CudaComplexReduce, LongRowsAreSplitAndCombinedLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  // 300000 elements in one row and in 3 rows (parts in a workspace), and a column reduction.
  const Tensor x = crand({3, 100000}, -3.0f, 5.0f, 3), xg = x.to(kGpu);
  for (const Dims& dims : {Dims{}, Dims{1}}) {
    expect_sum(sum(xg, dims), sum(x, dims), x, dims, false, 1, label("sum", x, dims, false));
    expect_sum(mean(xg, dims), mean(x, dims), x, dims, false,
               static_cast<double>(dims.empty() ? 300000 : 100000), label("mean", x, dims, false));
    for (double q : {2.0, 1.0, static_cast<double>(kInf), 0.5})
      cuda_test::expect_close(norm(xg, q, dims), norm(x, q, dims), 1e-6, 0,
                              label("norm p=" + std::to_string(q), x, dims, false));
  }
  expect_sum(sum(xg.t(), {0}), sum(x.t(), {0}), x.t(), {0}, false, 1, "sum of columns");
  const Tensor p = crand({3, 100000}, -1e-5f, 1e-5f, 4, 1.0f);
  expect_prod(prod(p.to(kGpu), {1}), prod(p, {1}), "prod of long rows");
  // Same shape, same result: the split depends on the shape only.
  EXPECT_EQ(host(sum(xg)), host(sum(xg)));
}

TEST(CudaComplexReduce, SpecialValuesEmptyAndOneElementReductions) {
  SKIP_WITHOUT_GPU();
  // Rows of three: NaN parts, infinities of both signs, an infinity times zero (prod's Annex G
  // recovery), huge parts whose squares overflow float but not double, subnormals, signed zeros.
  const std::vector<Complex64> v = {{1, 2},           {kNan, 0},      {3, 4},        {kInf, 0},
                                    {0, 1},           {2, 2},         {kInf, 1},     {-kInf, 2},
                                    {1, 1},           {kInf, kNan},   {1, 0},        {2, 0},
                                    {0, 0},           {kInf, 0},      {1, 1},        {3e38f, 3e38f},
                                    {3e38f, -3e38f},  {1, 1},         {1e-45f, 0},   {0, -1e-45f},
                                    {1e-40f, 1e-40f}, {-0.0f, -0.0f}, {-0.0f, 0.0f}, {-0.0f, -0.0f},
                                    {kNan, kInf},     {1, 1},         {2, 2}};
  const Tensor rows = tensor<Complex64>(v, Shape{9, 3}), g = rows.to(kGpu);
  for (const Dims& dims : {Dims{1}, Dims{0}}) {
    const std::string d = dims[0] ? " along rows" : " along columns";
    expect_sum(sum(g, dims), sum(rows, dims), rows, dims, false, 1, "sum" + d);
    expect_sum(mean(g, dims), mean(rows, dims), rows, dims, false, rows.size(dims[0]), "mean" + d);
    expect_prod(prod(g, dims), prod(rows, dims), "prod" + d);
    for (double q : {2.0, 1.0, 0.0, static_cast<double>(kInf), -static_cast<double>(kInf), 0.5})
      cuda_test::expect_close(norm(g, q, dims), norm(rows, q, dims), 1e-6, 0,
                              "norm p=" + std::to_string(q) + d);
    cuda_test::expect_close(any(g, dims), any(rows, dims), 0, 0, "any" + d);
    cuda_test::expect_close(all(g, dims), all(rows, dims), 0, 0, "all" + d);
  }
  // Empty reductions: sum 0, prod 1, mean NaN + NaN i, norm 0, any false, all true.
  const Tensor e = zeros({4, 0}, kComplex64), eg = e.to(kGpu);
  expect_complex(sum(eg, {1}), sum(e, {1}), 0, {}, "empty sum");
  expect_complex(prod(eg, {1}), prod(e, {1}), 0, {}, "empty prod");
  expect_complex(mean(eg, {1}), mean(e, {1}), 0, {}, "empty mean");
  expect_complex(sum(eg), sum(e), 0, {}, "sum of an empty tensor");
  cuda_test::expect_close(norm(eg, 2.0, {1}), norm(e, 2.0, {1}), 0, 0, "empty norm");
  cuda_test::expect_close(any(eg, {1}), any(e, {1}), 0, 0, "empty any");
  cuda_test::expect_close(all(eg, {1}), all(e, {1}), 0, 0, "empty all");
  EXPECT_EQ(sum(zeros({0, 4}, kComplex64).to(kGpu), {1}).numel(), 0);
  // One element: the element itself (mean: divided by 1), bit for bit.
  for (const Complex64 z : v) {
    const Tensor one = tensor<Complex64>({z}, Shape{1, 1}), og = one.to(kGpu);
    expect_complex(sum(og, {1}), sum(one, {1}), 0, {}, "one-element sum");
    expect_complex(mean(og), mean(one), 0, {}, "one-element mean");
    expect_complex(prod(og, {0}), prod(one, {0}), 0, {}, "one-element prod");
    cuda_test::expect_close(norm(og, 2.0), norm(one, 2.0), 0, 0, "one-element norm");
  }
  // A strided (non-contiguous) output through a 0-d and keepdim result.
  expect_complex(sum(g, {0, 1}, true), sum(rows, {0, 1}, true), 1.2e-7, {}, "keepdim of all");
}

// ---- scans ----------------------------------------------------------------------------------

TEST(CudaComplexReduce, CumsumCumprodMatchTheCpuThroughEveryPath) {
  SKIP_WITHOUT_GPU();
  const Tensor base = crand({6, 37, 129}, -2.0f, 2.0f, 5);
  const Tensor near_one = crand({6, 37, 129}, -0.01f, 0.01f, 6, 1.0f);
  const std::vector<Tensor> xs = layouts(base), ps = layouts(near_one);
  for (size_t v = 0; v < xs.size(); ++v) {
    for (int64_t d : {0, 1, 2, -1}) {
      const Tensor &x = xs[v], &p = ps[v];
      const std::string what = label("scan", x, {d}, false);
      // The running sum at i is bounded by the sum of |z| up to i.
      std::vector<double> s = host_f64(cumsum(abs(x), d));
      for (double& e : s) e *= 1e-12;
      expect_complex(cumsum(x.to(kGpu), d), cumsum(x, d), 1.2e-7, s, "cumsum " + what);
      expect_prod(cumprod(p.to(kGpu), d), cumprod(p, d), "cumprod " + what);
    }
  }
  // The columns path (a thread per lane, lanes side by side, the CPU's order): bit for bit.
  const Tensor cols = crand({40, 20000}, -2.0f, 2.0f, 7);
  expect_complex(cumsum(cols.to(kGpu), 0), cumsum(cols, 0), 0, {}, "cumsum columns");
  const Tensor pcols = crand({40, 20000}, -0.01f, 0.01f, 8, 1.0f);
  expect_complex(cumprod(pcols.to(kGpu), 0), cumprod(pcols, 0), 0, {}, "cumprod columns");
  // Long lanes: parts, their running totals, each part from its carry.
  const Tensor lane = crand({2, 100000}, -1.0f, 3.0f, 9);
  std::vector<double> s = host_f64(cumsum(abs(lane), 1));
  for (double& e : s) e *= 1e-12;
  expect_complex(cumsum(lane.to(kGpu), 1), cumsum(lane, 1), 1.2e-7, s, "cumsum long lanes");
  const Tensor plane = crand({2, 100000}, -1e-5f, 1e-5f, 10, 1.0f);
  expect_prod(cumprod(plane.to(kGpu), 1), cumprod(plane, 1), "cumprod long lanes");
  // Special values and empty lanes.
  const std::vector<Complex64> sv = {{1, 2},     {kInf, 0}, {0, 0},    {kNan, 1},
                                     {-kInf, 1}, {2, -1},   {0, kInf}, {3e38f, 3e38f}};
  const Tensor sp = tensor<Complex64>(sv, Shape{8});
  expect_complex(cumsum(sp.to(kGpu), 0), cumsum(sp, 0), 0, {}, "cumsum specials");
  expect_complex(cumprod(sp.to(kGpu), 0), cumprod(sp, 0), 0, {}, "cumprod specials");
  EXPECT_EQ(cumsum(zeros({3, 0}, kComplex64).to(kGpu), 1).numel(), 0);
}

// ---- matmul ---------------------------------------------------------------------------------

// got (GPU) against the CPU's a @ b within k 2^-22 (|a| @ |b|) per part.
void expect_matmul(const Tensor& a, const Tensor& b, const std::string& what) {
  const Tensor want = matmul(a, b);
  const Tensor got = matmul(a.to(kGpu), b.to(kGpu));
  std::vector<double> s = host_f64(matmul(abs(a).to(kFloat64), abs(b).to(kFloat64)));
  const double k = static_cast<double>(a.size(-1));
  for (double& e : s) e *= k * 2.4e-7;
  expect_complex(got, want, 0, s, what);
}

TEST(CudaComplexReduce, MatmulMatchesTheCpuInEveryLayoutAndBatchForm) {
  SKIP_WITHOUT_GPU();
  ASSERT_FALSE(cuda::allow_tf32());
  const Tensor a = crand({5, 7}, -1.0f, 1.0f, 11), b = crand({7, 3}, -1.0f, 1.0f, 12);
  expect_matmul(a, b, "row-major");
  // Column-major operands are read as transposes: no conjugate (a transpose of a, then back).
  expect_matmul(a.t().contiguous().t(), b, "a column-major");
  expect_matmul(a, b.t().contiguous().t(), "b column-major");
  expect_matmul(a.t().contiguous().t(), b.t().contiguous().t(), "both column-major");
  expect_matmul(crand({10, 14}, -1.0f, 1.0f, 13).slice(0, 0, 10, 2).slice(1, 0, 14, 2), b,
                "strided a (packed)");
  expect_matmul(crand({7}, -1.0f, 1.0f, 14).reshape({1, 7}), b, "a row vector");
  expect_matmul(a, crand({7}, -1.0f, 1.0f, 15).reshape({7, 1}), "b column vector");
  // Batches: uniform strides, a broadcast operand, batch dims needing a pack.
  const Tensor ba = crand({2, 3, 5, 7}, -1.0f, 1.0f, 16), bb = crand({2, 3, 7, 4}, -1.0f, 1.0f, 17);
  expect_matmul(ba, bb, "batched");
  expect_matmul(ba, crand({7, 4}, -1.0f, 1.0f, 18), "b broadcast over the batch");
  expect_matmul(crand({1, 3, 5, 7}, -1.0f, 1.0f, 19), bb, "a broadcast over a batch dim");
  expect_matmul(ba.transpose(0, 1), bb.transpose(0, 1), "permuted batch dims");
  expect_matmul(ba.transpose(-1, -2).contiguous().transpose(-1, -2), bb, "batched column-major a");
  // Larger, past cuBLAS's small-matrix kernels.
  expect_matmul(crand({130, 257}, -1.0f, 1.0f, 20), crand({257, 66}, -1.0f, 1.0f, 21), "large");
  // 1-d operands through the public matmul.
  const Tensor v = crand({7}, -1.0f, 1.0f, 22);
  expect_complex(matmul(v.to(kGpu), b.to(kGpu)), matmul(v, b), 0,
                 std::vector<double>(3, 7 * 2.4e-7 * 7), "vector @ matrix");
  // k = 0: zeros; an empty batch.
  expect_complex(matmul(zeros({3, 0}, kComplex64).to(kGpu), zeros({0, 4}, kComplex64).to(kGpu)),
                 zeros({3, 4}, kComplex64), 0, {}, "k = 0");
  EXPECT_EQ(
      matmul(zeros({0, 3, 4}, kComplex64).to(kGpu), zeros({4, 2}, kComplex64).to(kGpu)).numel(), 0);
  // Special values: an infinity meets a zero (NaN on both sides), a NaN spreads along its row.
  const Tensor sa = tensor<Complex64>({{kInf, 0}, {1, 1}, {kNan, 0}, {2, 0}}, Shape{2, 2});
  const Tensor sb = tensor<Complex64>({{0, 0}, {1, 0}, {1, 0}, {0, 1}}, Shape{2, 2});
  const std::vector<Complex64> w = host(matmul(sa, sb)),
                               gsp = host(matmul(sa.to(kGpu), sb.to(kGpu)));
  for (size_t i = 0; i < w.size(); ++i) {
    EXPECT_EQ(std::isnan(gsp[i].real()), std::isnan(w[i].real())) << i;
    EXPECT_EQ(std::isnan(gsp[i].imag()), std::isnan(w[i].imag())) << i;
  }
}

}  // namespace
}  // namespace tessera
