// The CUDA reductions (sum, mean, amax, amin) and softmax / log_softmax against the CPU's
// results, and autograd through broadcasting on the GPU (its backward pass reduces with sum).
// Every test skips (GTEST_SKIP) when tessera::cuda::is_available() is false.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "backends/cuda/softmax_plan.h"
#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

struct Tol {
  DType dtype;
  double rtol, atol;
  double acc_eps;  // unit roundoff of the accumulation (float32, or float64)
};
// 16-bit results may differ from the CPU's by a rounding step or two.
const std::vector<Tol> kTols = {{kFloat32, 1e-5, 1e-6, 6e-8},
                                {kFloat64, 1e-13, 1e-14, 1.1e-16},
                                {kFloat16, 2e-3, 1e-3, 6e-8},
                                {kBFloat16, 1.6e-2, 1e-2, 6e-8}};

std::string label(const char* op, const Tol& t, const Tensor& x, const Dims& dims, bool keep) {
  std::string s = std::string(op) + " " + std::string(dtype_name(t.dtype)) + " " +
                  shape_str(x.shape()) + " dims {";
  for (int64_t d : dims) s += std::to_string(d) + ",";
  return s + "}" + (keep ? " keepdim" : "");
}

// ---- reductions ------------------------------------------------------------------------------

TEST(CudaReduce, SumMeanAmaxAminMatchTheCpuOverAnyDims) {
  SKIP_WITHOUT_GPU();
  manual_seed(5);
  const Tensor base64 = randn({6, 37, 129}, kFloat64);
  const std::vector<Dims> dim_sets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (const Tol& tol : kTols) {
    const Tensor base = base64.to(tol.dtype);
    // Contiguous, permuted (strided rows) and a sliced view.
    for (const Tensor& x : {base, base.permute({2, 0, 1}), base.slice(2, 3, 100)}) {
      for (const Dims& dims : dim_sets) {
        for (bool keep : {false, true}) {
          const Tensor xg = x.to(kGpu);
          int64_t n_red = 1;
          for (int64_t d = 0; d < x.dim(); ++d) {
            bool reduced = dims.empty();
            for (int64_t r : dims) reduced |= (r + x.dim()) % x.dim() == d;
            if (reduced) n_red *= x.shape()[static_cast<size_t>(d)];
          }
          const double acc = tol.atol + tol.acc_eps * static_cast<double>(n_red);
          expect_close(sum(xg, dims, keep), sum(x, dims, keep), tol.rtol, acc,
                       label("sum", tol, x, dims, keep));
          expect_close(mean(xg, dims, keep), mean(x, dims, keep), tol.rtol, acc,
                       label("mean", tol, x, dims, keep));
          // A selection: exactly the CPU's element.
          expect_close(amax(xg, dims, keep), amax(x, dims, keep), 0, 0,
                       label("amax", tol, x, dims, keep));
          expect_close(amin(xg, dims, keep), amin(x, dims, keep), 0, 0,
                       label("amin", tol, x, dims, keep));
        }
      }
    }
  }
}

TEST(CudaReduce, LongRowsAreSplitAndCombined) {
  SKIP_WITHOUT_GPU();
  manual_seed(6);
  // 300000 elements in one row and in 3 rows: the two-pass path (parts in a workspace).
  const Tensor x64 = rand({3, 100000}, kFloat64) + 0.5;
  for (const Tol& tol : kTols) {
    const Tensor x = x64.to(tol.dtype), xg = x.to(kGpu);
    // Positive terms: a relative bound (a thread folds ~64 terms in order, then trees).
    const double rel = tol.rtol + 100 * tol.acc_eps;
    expect_close(xg.sum(), x.sum(), rel, tol.atol, label("sum", tol, x, {}, false));
    expect_close(mean(xg), mean(x), rel, tol.atol, label("mean", tol, x, {}, false));
    expect_close(sum(xg, {1}), sum(x, {1}), rel, tol.atol, label("sum", tol, x, {1}, false));
    expect_close(max(xg), max(x), 0, 0, label("max", tol, x, {}, false));
    expect_close(min(xg), min(x), 0, 0, label("min", tol, x, {}, false));
    expect_close(amax(xg.t(), {0}), amax(x.t(), {0}), 0, 0, label("amax", tol, x, {0}, false));
  }
  // Same shape, same result: the split does not depend on timing.
  const Tensor a = x64.to(kGpu);
  EXPECT_EQ(values(a.sum()), values(a.sum()));
}

// Rows with one stride load several elements per thread at once (reduce.cu's unrolled loop);
// rows whose dims do not merge take the general loop. Each thread adds the same elements in the
// same order on both, so a padded copy of the same values (dims [200, 200] with a row stride of
// 201: two dims) sums to the same bits, on one pass and on two (the split path), and the
// unrolled loop's remainders (lengths off a multiple of 8 * threads) lose nothing.
TEST(CudaReduce, OneStrideRowsGiveTheGeneralLoopsBits) {
  SKIP_WITHOUT_GPU();
  manual_seed(9);
  for (const Tol& tol : kTols)
    for (int64_t rows : {3, 2000}) {  // 3 rows of 40000: split; 2000: one pass
      const Tensor x = (rand({rows, 200, 200}, kFloat64) + 0.5).to(tol.dtype).to(kGpu);
      Tensor padded = empty({rows, 200, 201}, TensorOptions(tol.dtype, kGpu));
      padded = padded.slice(2, 0, 200);
      padded.copy_(x);
      for (const char* op : {"sum", "amax", "amin"}) {
        const auto run = [&](const Tensor& t) {
          const Dims dims{1, 2};
          return std::string(op) == "sum"    ? sum(t, dims)
                 : std::string(op) == "amax" ? amax(t, dims)
                                             : amin(t, dims);
        };
        cuda_test::expect_bits(run(padded), run(x).to(Device::cpu()),
                               label(op, tol, x, {1, 2}, false) + " padded");
      }
    }
  // Remainders: lengths around 8 * 256 elements per thread round.
  for (int64_t n : {2047, 2048, 2049, 4095, 4097, 16383}) {
    const Tensor x = rand({2, n}, kFloat64) + 0.5;
    expect_close(sum(x.to(kGpu), {1}), sum(x, {1}), 1e-12, 0,
                 "sum f64 length " + std::to_string(n));
  }
}

TEST(CudaReduce, SpecialValuesAndEmptyReductionsLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const Tensor x = tensor<double>({1, nan, 3, -inf, -inf, -inf, 2, inf, 5}, Shape{3, 3});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    const Tensor c = x.to(dt), g = c.to(kGpu);
    for (const Dims& dims : {Dims{}, Dims{0}, Dims{1}}) {
      expect_close(sum(g, dims), sum(c, dims), 0, 0, "sum special");
      expect_close(mean(g, dims), mean(c, dims), 1e-6, 0, "mean special");
      expect_close(amax(g, dims), amax(c, dims), 0, 0, "amax special");
      expect_close(amin(g, dims), amin(c, dims), 0, 0, "amin special");
    }
  }
  const Tensor e = zeros({0, 4}), eg = e.to(kGpu);
  expect_close(sum(eg, {0}), sum(e, {0}), 0, 0, "sum over an empty dim is 0");
  expect_close(mean(eg, {0}), mean(e, {0}), 0, 0, "mean over an empty dim is NaN");
  EXPECT_EQ(sum(eg, {1}).shape(), (Shape{0}));
  EXPECT_THROW((void)max(eg), ValueError);
}

// ---- softmax ---------------------------------------------------------------------------------

TEST(CudaSoftmax, SoftmaxAndLogSoftmaxMatchTheCpuAlongAnyDim) {
  SKIP_WITHOUT_GPU();
  manual_seed(7);
  const Tensor base64 = randn({5, 9, 300}, kFloat64) * 4.0;
  const std::vector<Tol> tols = {{kFloat32, 1e-5, 1e-6, 0},
                                 {kFloat64, 1e-12, 1e-14, 0},
                                 {kFloat16, 2e-3, 1e-3, 0},
                                 {kBFloat16, 1.6e-2, 1e-2, 0}};
  for (const Tol& tol : tols) {
    const Tensor base = base64.to(tol.dtype);
    for (const Tensor& x : {base, base.transpose(1, 2), base.slice(2, 1, 40)}) {
      for (int64_t dim : {-1, 0, 1}) {
        const std::string what = std::string(dtype_name(tol.dtype)) + " " + shape_str(x.shape()) +
                                 " dim " + std::to_string(dim);
        expect_close(softmax(x.to(kGpu), dim), softmax(x, dim), tol.rtol, tol.atol,
                     "softmax " + what);
        expect_close(log_softmax(x.to(kGpu), dim), log_softmax(x, dim), tol.rtol, tol.atol * 10,
                     "log_softmax " + what);
      }
    }
  }
  // -inf entries get probability 0; an all -inf row and a NaN row are NaN, as on the CPU.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  const Tensor s = tensor<double>({1, -inf, 2, -inf, -inf, -inf, 0, nan, 1}, Shape{3, 3});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    const Tensor c = s.to(dt);
    expect_close(softmax(c.to(kGpu), -1), softmax(c, -1), 1e-2, 1e-6, "softmax special");
    expect_close(log_softmax(c.to(kGpu), -1), log_softmax(c, -1), 1e-2, 1e-6,
                 "log_softmax special");
  }
  const Tensor scalar = tensor<float>({3}, Shape{});
  expect_close(softmax(scalar.to(kGpu), 0), softmax(scalar, 0), 0, 0, "0-d softmax");
}

// Lanes contiguous in memory, of whole 16-byte vectors starting aligned, take the register
// path (softmax_plan.h): a block of up to 1024 threads holding four vectors each. Its bounds
// (the largest lane per dtype, 1024 threads: 64 registers at most), lanes just past them and
// unaligned or padded lanes (the general kernel), more lanes than blocks, special values.
TEST(CudaSoftmax, RegisterPathAndItsBoundsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(8);
  const std::vector<Tol> tols = {{kFloat32, 1e-5, 1e-6, 0},
                                 {kFloat64, 1e-12, 1e-14, 0},
                                 {kFloat16, 2e-3, 1e-3, 0},
                                 {kBFloat16, 1.6e-2, 1e-2, 0}};
  for (const Tol& tol : tols) {
    const auto per_vec = static_cast<int64_t>(16 / itemsize(tol.dtype)), most = 4 * 1024 * per_vec;
    std::vector<Tensor> bases;
    for (int64_t n : {per_vec, 3 * per_vec, int64_t{4096}, most - per_vec, most, most + per_vec})
      bases.push_back((randn({3, n}, kFloat64) * 4).to(tol.dtype));
    bases.push_back((randn({70000, per_vec}, kFloat64) * 4).to(tol.dtype));  // > 65535 blocks
    const Tensor wide = (randn({5, 3 * per_vec}, kFloat64) * 4).to(tol.dtype);
    // Views made on each device.
    using View = std::function<Tensor(const Tensor&)>;
    std::vector<std::pair<Tensor, View>> cases;
    for (const Tensor& b : bases) cases.emplace_back(b, [](const Tensor& t) { return t; });
    // Padded rows on the vector grid (the register path); a length off the vector width and
    // rows starting one element into a vector (the general kernel).
    cases.emplace_back(wide, [=](const Tensor& t) { return t.slice(1, 0, 2 * per_vec); });
    cases.emplace_back(wide, [=](const Tensor& t) { return t.slice(1, 0, 3 * per_vec - 1); });
    cases.emplace_back(wide, [=](const Tensor& t) { return t.slice(1, 1, 1 + per_vec); });
    // A copy one element into its storage (unaligned: the general kernel).
    cases.emplace_back(bases[2], [](const Tensor& t) {
      Tensor flat = empty({t.numel() + 1}, TensorOptions(t.dtype(), t.device()));
      flat.slice(0, 1, std::nullopt).copy_(t.reshape({-1}));
      return flat.slice(0, 1, std::nullopt).view(t.shape());
    });
    for (const auto& [base, view] : cases) {
      const Tensor x = view(base), xg = view(base.to(kGpu));
      const std::string what = std::string(dtype_name(tol.dtype)) + " " + shape_str(x.shape());
      expect_close(softmax(xg, -1), softmax(x, -1), tol.rtol, tol.atol, "softmax " + what);
      expect_close(log_softmax(xg, -1), log_softmax(x, -1), tol.rtol, tol.atol * 10,
                   "log_softmax " + what);
    }
  }
  // Special values in vector lanes: -inf entries, an all -inf lane, a NaN lane.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  std::vector<double> v(3 * 8, 1.0);
  for (int j = 0; j < 8; ++j) v[static_cast<size_t>(8 + j)] = -inf;
  v[3] = -inf;
  v[16 + 5] = nan;
  const Tensor sp = tensor<double>(v, Shape{3, 8});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    const Tensor c = sp.to(dt);
    expect_close(softmax(c.to(kGpu), -1), softmax(c, -1), 1e-2, 1e-6, "softmax special vectors");
    expect_close(log_softmax(c.to(kGpu), -1), log_softmax(c, -1), 1e-2, 1e-6,
                 "log_softmax special vectors");
  }
}

// The register path's plan on the host (runs without a GPU): the smallest power-of-two block
// of 32 to 1024 threads whose four vectors each cover the lane, and only for contiguous lanes of
// whole vectors starting 16-byte aligned.
TEST(CudaSoftmaxOnTheHost, RegisterPathPlan) {
  using cuda::k::softmax_vector_threads;
  for (int elem : {2, 4, 8}) {
    const int64_t per_vec = 16 / elem;
    for (int64_t n = 1; n <= 4 * 1024 * per_vec + 64; ++n) {
      const unsigned t = softmax_vector_threads(n, elem, 1, 1, true);
      const int64_t vecs = n / per_vec;
      if (n % per_vec != 0 || vecs > 4 * 1024) {
        ASSERT_EQ(t, 0u) << "elem " << elem << " n " << n;
        continue;
      }
      ASSERT_TRUE(t >= 32 && t <= 1024 && (t & (t - 1)) == 0) << "elem " << elem << " n " << n;
      ASSERT_GE(int64_t{t} * 4, vecs) << "elem " << elem << " n " << n;
      if (t > 32) {
        ASSERT_LT(int64_t{t / 2} * 4, vecs) << "elem " << elem << " n " << n;
      }
    }
  }
  EXPECT_EQ(softmax_vector_threads(4096, 4, 1, 1, true), 256u);  // the benchmark's rows
  EXPECT_EQ(softmax_vector_threads(4096, 4, 2, 1, true), 0u);
  EXPECT_EQ(softmax_vector_threads(4096, 4, 1, 4096, true), 0u);
  EXPECT_EQ(softmax_vector_threads(4096, 4, 1, 1, false), 0u);
  EXPECT_EQ(softmax_vector_threads(0, 4, 1, 1, true), 0u);
  // Lane starts: base pointers and every stride of the starts' geometry, for both operands.
  alignas(16) static float buf[8];
  cuda::k::Geometry rows;
  rows.ndim = 1;
  rows.numel = rows.sizes[0] = 3;
  rows.strides[0][0] = rows.strides[1][0] = 8;
  EXPECT_TRUE(cuda::k::softmax_starts_aligned(rows, buf, buf, 4));
  EXPECT_FALSE(cuda::k::softmax_starts_aligned(rows, buf + 1, buf, 4));
  EXPECT_FALSE(cuda::k::softmax_starts_aligned(rows, buf, buf + 2, 4));
  EXPECT_TRUE(cuda::k::softmax_starts_aligned(rows, buf, buf, 8));
  rows.strides[1][0] = 6;
  EXPECT_FALSE(cuda::k::softmax_starts_aligned(rows, buf, buf, 4));
  EXPECT_TRUE(cuda::k::softmax_starts_aligned(rows, buf, buf, 8));
  rows.strides[1][0] = 0;  // one input lane broadcast to every output lane
  EXPECT_TRUE(cuda::k::softmax_starts_aligned(rows, buf, buf, 4));
}

// ---- comparisons ---------------------------------------------------------------------------

TEST(CudaCompare, ComparisonsMatchTheCpuWithBroadcastingAndNaN) {
  SKIP_WITHOUT_GPU();
  manual_seed(10);
  const double nan = std::nan("");
  // Rounded so that equal values occur; NaN compares unequal to everything.
  Tensor a = round(randn({4, 1, 33}) * 2.0), b = round(randn({5, 33}) * 2.0);
  a = where(a == 3.0, full({}, nan), a);
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16}) {
    const Tensor x = a.to(dt), y = b.to(dt), s = tensor<double>({1.0}, Shape{}).to(dt);
    const std::vector<std::pair<Tensor, Tensor>> cases = {
        {x, y}, {y, x}, {x, s}, {y.t(), y.t()}, {y.t(), s}};
    for (const char* name : {"eq", "ne", "lt", "le", "gt", "ge"}) {
      const Primitive& p = prim(name);
      for (const auto& [u, v] : cases) {
        const Tensor want = dispatch1(p, {u, v});
        const Tensor got = dispatch1(p, {u.to(kGpu), v.to(kGpu)});
        ASSERT_EQ(got.dtype(), kBool);
        ASSERT_EQ(got.device(), kGpu);
        EXPECT_EQ(values(got), values(want))
            << name << " " << dtype_name(dt) << " " << shape_str(u.shape()) << " with "
            << shape_str(v.shape());
      }
    }
  }
}

TEST(CudaCompare, WhereSelectsLikeTheCpuForEveryDtype) {
  SKIP_WITHOUT_GPU();
  manual_seed(12);
  const Tensor c = randn({4, 1, 33}) > 0.0, a = randn({5, 33}) * 10.0, b = randn({4, 5, 1});
  for (DType dt : {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kUInt8, kBool,
                   kComplex64}) {
    const Tensor x = a.to(dt), y = b.to(dt);
    const std::vector<std::vector<Tensor>> cases = {
        {c, x, y}, {c, y, x}, {c.slice(2, 1, 33), x.t().slice(0, 0, 32).t(), y}};
    for (const auto& in : cases) {
      const Tensor want = where(in[0], in[1], in[2]);
      const Tensor got = where(in[0].to(kGpu), in[1].to(kGpu), in[2].to(kGpu));
      ASSERT_EQ(got.device(), kGpu);
      ASSERT_EQ(got.shape(), want.shape());
      // A selection: the same bytes (complex64 and NaN payloads included).
      const Tensor g = got.to(Device::cpu()).contiguous(), w = want.contiguous();
      ASSERT_EQ(g.dtype(), w.dtype());
      EXPECT_EQ(std::memcmp(g.raw_data(), w.raw_data(), w.nbytes()), 0) << dtype_name(dt);
    }
  }
  // Scalars become 0-d tensors on the condition's device.
  const Tensor s = where(c.to(kGpu), 1.5, -2.0);
  EXPECT_EQ(values(s), values(where(c, 1.5, -2.0)));
}

// ---- gradients -------------------------------------------------------------------------------

TEST(CudaReduce, GradientsThroughBroadcastingMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(8);
  const Tensor a0 = randn({4, 5}), b0 = randn({5});
  auto grads = [&](Device dev) {
    Tensor a = a0.to(dev).detach().requires_grad_();
    Tensor b = b0.to(dev).detach().requires_grad_();
    // The backward of a broadcast add / mul sums the gradient over the broadcast dim.
    ((a + b) * (a * b)).sum().backward();
    return std::vector<Tensor>{a.grad(), b.grad()};
  };
  const std::vector<Tensor> gpu = grads(kGpu), cpu = grads(Device::cpu());
  ASSERT_TRUE(gpu[0].defined() && gpu[1].defined());
  expect_close(gpu[0], cpu[0], 1e-5, 1e-6, "grad of a");
  expect_close(gpu[1], cpu[1], 1e-5, 1e-6, "grad of the broadcast b");
  // (a + b_row).sum(): d/db is the number of rows.
  Tensor a = a0.to(kGpu).detach().requires_grad_(), b = b0.to(kGpu).detach().requires_grad_();
  (a + b).sum().backward();
  EXPECT_EQ(values(b.grad()), std::vector<double>(5, 4.0));
  EXPECT_EQ(values(a.grad()), std::vector<double>(20, 1.0));
}

TEST(CudaCompare, GradientsThroughWhereMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(13);
  const Tensor x0 = randn({3, 7}), r0 = randn({7});
  auto grads = [&](Device dev) {
    Tensor x = x0.to(dev).detach().requires_grad_();
    Tensor r = r0.to(dev).detach().requires_grad_();
    // A broadcast branch: its gradient is summed over the rows.
    where(x > 0.0, x * x, r).sum().backward();
    return std::vector<Tensor>{x.grad(), r.grad()};
  };
  const std::vector<Tensor> gpu = grads(kGpu), cpu = grads(Device::cpu());
  expect_close(gpu[0], cpu[0], 1e-6, 1e-7, "where grad of x");
  expect_close(gpu[1], cpu[1], 1e-6, 1e-7, "where grad of the broadcast branch");
}

TEST(CudaSoftmax, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(9);
  const Tensor x0 = randn({6, 11}), w0 = randn({6, 11});
  auto grad = [&](Device dev, bool log) {
    Tensor x = x0.to(dev).detach().requires_grad_();
    const Tensor w = w0.to(dev);
    ((log ? log_softmax(x, -1) : softmax(x, -1)) * w).mean().backward();
    return x.grad();
  };
  for (bool log : {false, true})
    expect_close(grad(kGpu, log), grad(Device::cpu(), log), 1e-5, 1e-7,
                 log ? "log_softmax grad" : "softmax grad");
}

}  // namespace
}  // namespace tessera
