// scatter_add on CUDA in every dtype (float16 and bfloat16 included, added atomically in 16
// bits as on the CPU) and the gradients that use it (gather, sort, topk) in float16 and
// bfloat16, against the CPU. Values whose every partial sum is exact in the dtype make the
// order of the atomic adds invisible, so those results are compared bit for bit, with many
// duplicate indices; ordinary values are compared with the bound of one 16-bit rounding per
// add. index_put's accumulate shares the atomics (atomic_add.cuh): checked the same way. Every
// test skips without a GPU; the compare-and-swap add of the 16-bit path was checked on the
// host against the CPU's add when written.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::kGpu;
using cuda_test::expect_bits;
using cuda_test::values;

const Device kCpu = Device::cpu();
const std::vector<DType> kEvery = {kBool,    kUInt8,    kInt8,    kInt16,   kInt32,    kInt64,
                                   kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};

// Small integers (-3 ... 3; bool: 0 or 1) in dt: sums of up to 40 of them are exact in every
// dtype, float16 and bfloat16 included, whatever the order (integers wrap identically).
Tensor small_ints(DType dt, const Shape& s) {
  const Tensor i = randint(dt == kBool ? 0 : -3, dt == kBool ? 2 : 4, s);
  if (dt != kComplex64) return i.to(dt);
  return add(i.to(kComplex64), randint(-3, 4, s).to(kComplex64), Scalar(Complex64(0, 1)));
}

// ---- scatter_add ----------------------------------------------------------------------------

TEST(CudaScatterAdd, EveryDtypeWithManyDuplicatesIsTheCpusBits) {
  SKIP_WITHOUT_GPU();
  manual_seed(41);
  for (DType dt : kEvery) {
    for (int64_t d : {0, 1}) {
      const Tensor x = small_ints(dt, {6, 9});
      // 40 updates per index row into 6 or 9 targets: about 5 adds into every element.
      const Shape is = d == 0 ? Shape{40, 9} : Shape{6, 40};
      const Tensor idx = randint(0, x.size(d), is), src = small_ints(dt, is);
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(d);
      const Tensor want = scatter_add(x, d, idx, src);
      expect_bits(scatter_add(x.to(kGpu), d, idx.to(kGpu), src.to(kGpu)), want,
                  "scatter_add " + what);
      // Strided operands read in place: a transposed input and a transposed source.
      const Tensor gx = x.t().contiguous().to(kGpu).t(), gs = src.t().contiguous().to(kGpu).t();
      expect_bits(scatter_add(gx, d, idx.to(kGpu), gs), want, "scatter_add strided " + what);
    }
  }
}

// Every update into the first four elements: 16-bit elements 0 and 1 (and 2 and 3) share a
// 32-bit word, 1-byte elements 0 ... 3 one word, so the low and the high parts of a word are
// added into at once (the compare-and-swap path, and the hardware's 16-bit adds).
TEST(CudaScatterAdd, NeighboursInOneWordAddedTogether) {
  SKIP_WITHOUT_GPU();
  manual_seed(42);
  for (DType dt : {kFloat16, kBFloat16, kInt16, kInt8, kUInt8, kBool}) {
    // +1 and -1 alternately (bool: 0 and 1), n / 4 per target: every partial sum is an integer
    // of at most n / 4 in any order, exact in the dtype (bfloat16: up to 256).
    const int64_t n = dt == kBFloat16 ? 1000 : 4000;
    std::vector<int64_t> iv(static_cast<size_t>(n));
    std::vector<double> sv(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      iv[static_cast<size_t>(i)] = i % 4;
      sv[static_cast<size_t>(i)] =
          dt == kBool ? static_cast<double>((i / 4) % 2) : ((i / 4) % 2 ? -1.0 : 1.0);
    }
    const Tensor x = small_ints(dt, {5}), idx = tensor<int64_t>(iv),
                 src = tensor<double>(sv).to(dt);
    expect_bits(scatter_add(x.to(kGpu), 0, idx.to(kGpu), src.to(kGpu)), scatter_add(x, 0, idx, src),
                "scatter_add into shared words " + std::string(dtype_name(dt)));
  }
}

// Ordinary values: each add rounds to 16 bits, in an order the GPU does not fix, so each
// element may differ from the CPU's by one rounding per add of the largest partial sum
// (bounded by |x| + the sum of |src| added into it), on both sides.
TEST(CudaScatterAdd, SixteenBitRoundingStaysWithinOneRoundingPerAdd) {
  SKIP_WITHOUT_GPU();
  manual_seed(43);
  for (DType dt : {kFloat16, kBFloat16}) {
    const double eps = dt == kFloat16 ? std::ldexp(1.0, -10) : std::ldexp(1.0, -7);
    const Tensor x = randn({4, 16}).to(dt), idx = randint(0, 16, {4, 128});
    const Tensor src = randn({4, 128}).to(dt);
    const std::vector<double> got = values(scatter_add(x.to(kGpu), 1, idx.to(kGpu), src.to(kGpu)));
    const std::vector<double> cpu = values(scatter_add(x, 1, idx, src));
    // The exact sums and the bound, in float64.
    const Tensor adds = scatter_add(zeros({4, 16}, kFloat64), 1, idx, ones({4, 128}, kFloat64));
    const Tensor mass = scatter_add(abs(x.to(kFloat64)), 1, idx, abs(src.to(kFloat64)));
    const std::vector<double> exact = values(scatter_add(x.to(kFloat64), 1, idx, src.to(kFloat64)));
    const std::vector<double> k = values(adds), m = values(mass);
    for (size_t i = 0; i < got.size(); ++i) {
      const double bound = k[i] * eps * m[i];
      EXPECT_LE(std::abs(got[i] - exact[i]), bound) << dtype_name(dt) << " element " << i;
      EXPECT_LE(std::abs(got[i] - cpu[i]), 2 * bound) << dtype_name(dt) << " element " << i;
    }
  }
}

// index_put with accumulate shares the atomics: duplicates in every dtype, bit for bit.
TEST(CudaScatterAdd, IndexPutAccumulateWithDuplicatesIsTheCpusBits) {
  SKIP_WITHOUT_GPU();
  manual_seed(44);
  for (DType dt : kEvery) {
    const Tensor x = small_ints(dt, {7, 3});
    const Tensor rows = randint(-7, 7, {60});  // negative rows count from the end
    const Tensor v = small_ints(dt, {60, 3});
    expect_bits(index_put(x.to(kGpu), {rows.to(kGpu)}, v.to(kGpu), /*accumulate=*/true),
                index_put(x, {rows}, v, /*accumulate=*/true),
                "index_put accumulate " + std::string(dtype_name(dt)));
  }
}

// ---- gradients through scatter_add in 16 bits -----------------------------------------------

// d/dx of f on the GPU and on the CPU, x in dt.
std::pair<Tensor, Tensor> grads(const Tensor& x,
                                const std::function<Tensor(const Tensor&, const Device&)>& f) {
  Tensor xc = x.detach().clone().requires_grad_(), xg = x.to(kGpu).detach().requires_grad_();
  f(xc, kCpu).backward();
  f(xg, kGpu).backward();
  return {xg.grad(), xc.grad()};
}

// The cotangents are small integers (exact sums): gather's repeated indices add several into
// one element in 16 bits, in the GPU's order, and still give the CPU's bits; sort and topk
// scatter each element's cotangent once.
TEST(CudaScatterAdd, GatherSortTopkGradientsIn16BitMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(45);
  for (DType dt : {kBFloat16, kFloat16}) {
    const std::string n(dtype_name(dt));
    const Tensor x = randn({6, 8}).to(dt);
    const Tensor w = randint(-3, 4, {6, 8}).to(dt), w3 = randint(-3, 4, {3, 8}).to(dt);
    const Tensor idx = randint(0, 8, {6, 20});  // repeats along dim 1
    const Tensor wi = randint(-3, 4, {6, 20}).to(dt);
    const auto [g1, c1] = grads(x, [&](const Tensor& t, const Device& d) {
      return (gather(t, 1, idx.to(d)) * wi.to(d)).sum();
    });
    expect_bits(g1, c1, "d gather / dx " + n);
    for (bool desc : {false, true}) {
      const auto [g2, c2] = grads(x, [&](const Tensor& t, const Device& d) {
        return (std::get<0>(sort(t, 1, desc)) * w.to(d)).sum();
      });
      expect_bits(g2, c2, "d sort / dx " + n + (desc ? " descending" : ""));
    }
    const auto [g3, c3] = grads(x, [&](const Tensor& t, const Device& d) {
      return (std::get<0>(topk(t, 3, 0)) * w3.to(d)).sum();
    });
    expect_bits(g3, c3, "d topk / dx " + n);
  }
}

}  // namespace
}  // namespace tessera
