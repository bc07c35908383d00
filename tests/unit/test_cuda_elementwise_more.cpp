// The CUDA elementwise kernels beyond the float basics, each against the CPU's result: asin,
// acos, atan, sinh, cosh, softplus, sign, isnan / isinf / isfinite, bitwise_not; integer and
// bool arithmetic (wrapping, INT_MIN included), pow, floor_divide and remainder with Python's
// sign rules (negative operands, -0, infinities, NaN, integer division by zero raising
// ValueError at the next synchronization), bitwise ops, clamp and lerp with every operand
// broadcast, over contiguous and strided inputs, and gradients where the ops are
// differentiable. Rules that are exact on the device (everything but the transcendental
// functions) are compared bit for bit. Every test skips (GTEST_SKIP) without a GPU; the same
// rules are checked on the host, without one, by test_cuda_functors.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

const Device kCpu = Device::cpu();

// Bit-for-bit equality of a GPU result with the CPU's: integers exactly (as int64), floats
// with NaN equal to NaN and -0 distinct from +0.
void expect_exact(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  int bad = 0;
  if (!is_floating(want.dtype())) {
    const std::vector<int64_t> g = got.to_vector<int64_t>(), w = want.to_vector<int64_t>();
    for (size_t i = 0; i < g.size() && bad < 5; ++i)
      if (g[i] != w[i]) {
        ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
        ++bad;
      }
    return;
  }
  const std::vector<double> g = values(got), w = values(want);
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const bool same = (std::isnan(g[i]) && std::isnan(w[i])) ||
                      (g[i] == w[i] && std::signbit(g[i]) == std::signbit(w[i]));
    if (!same) {
      ADD_FAILURE() << what << ": element " << i << " is " << g[i] << ", CPU gives " << w[i];
      ++bad;
    }
  }
}

struct Tol {
  DType dtype;
  double rtol, atol;
};
// Device libm and the CPU's differ by an ulp or two; 16-bit results by one rounding step.
const std::vector<Tol> kFloatTols = {{kFloat32, 4e-6, 1e-6},
                                     {kFloat64, 1e-13, 1e-14},
                                     {kFloat16, 2e-3, 1e-3},
                                     {kBFloat16, 1.6e-2, 1e-2}};
const std::vector<DType> kFloats = {kFloat32, kFloat64, kFloat16, kBFloat16};
const std::vector<DType> kInts = {kUInt8, kInt8, kInt16, kInt32, kInt64};

// Views of a 2-d tensor: as it is (contiguous), transposed (strided) and offset by one element
// (unaligned). Each is made on the CPU and, separately, on the GPU: a view moved to the GPU
// would arrive packed.
using View = std::function<Tensor(const Tensor&)>;
const std::vector<std::pair<std::string, View>> kLayouts = {
    {"contiguous", [](const Tensor& t) { return t; }},
    {"transposed", [](const Tensor& t) { return t.t(); }},
    {"unaligned", [](const Tensor& t) { return t.reshape({-1}).slice(0, 1, std::nullopt); }},
};

// Integers of every magnitude for dtype dt, the extremes and small negatives included (as the
// dtype's own values: narrower types wrap the int64 list).
Tensor int_values(DType dt, bool zero = true) {
  std::vector<int64_t> v = {1,         2,         3,         5,         7,         100,
                            127,       -128,      255,       -1,        -2,        -3,
                            -7,        -100,      INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN,
                            INT64_MAX, INT64_MIN, 1234567,   -7654321,  40000,     -40000};
  v.push_back(0);
  const Tensor t = dt == kInt64 ? tensor<int64_t>(v) : tensor<int64_t>(v).to(dt);
  if (zero) return t;
  std::vector<int64_t> nz;  // without the values that became 0 in dt, too
  for (int64_t x : t.to_vector<int64_t>())
    if (x != 0) nz.push_back(x);
  return tensor<int64_t>(nz).to(dt);  // the conversion wraps like a cast
}

// Floats with the special values: signed zeros, infinities, NaN, halves (ties), tiny and huge.
Tensor float_values(DType dt) {
  const double inf = std::numeric_limits<double>::infinity();
  return tensor<double>({0.0, -0.0, 1.0,          -1.0,  0.5,   -0.5,   1.5,  -2.5,
                         3.0, -3.0, 7.25,         -7.25, 1e-30, -1e-30, 1e30, -1e30,
                         inf, -inf, std::nan(""), 0.1,   -0.1,  123.75, 2e4,  -6e4})
      .to(dt);
}

// ---- coverage (no GPU needed) ---------------------------------------------------------------

// Every elementwise primitive has a CUDA kernel for exactly the real dtypes the CPU accepts: a
// dtype the CPU refuses stays "no cuda kernel", and none the CPU takes is missing. Checks the
// registered kernels' dtype predicates, so it runs wherever CUDA is built, GPU or not.
TEST(CudaElementwiseMore, EveryRealDtypeTheCpuTakesHasACudaKernel) {
  if (!cuda::is_built()) GTEST_SKIP() << "not built with CUDA";
  const std::vector<DType> real = {kBool,  kUInt8,   kInt8,     kInt16,   kInt32,
                                   kInt64, kFloat16, kBFloat16, kFloat32, kFloat64};
  int checked = 0;
  for (const Primitive& p : registry().all()) {
    if (p.kind != PrimKind::Unary && p.kind != PrimKind::Binary && p.kind != PrimKind::Ternary)
      continue;
    const size_t n = p.kind == PrimKind::Unary ? 1 : p.kind == PrimKind::Binary ? 2 : 3;
    for (DType dt : real) {
      std::vector<Tensor> in(n, zeros({2}, dt));
      if (p.name == "where") in[0] = zeros({2}, kBool);
      (void)cuda_test::expect_cuda_kernel_iff_cpu_takes(
          p, in, {}, std::string(p.name) + " " + std::string(dtype_name(dt)));
      ++checked;
    }
  }
  EXPECT_GT(checked, 500);
}

// ---- unary float ops -------------------------------------------------------------------------

Tensor sample(const std::string& op, const Shape& shape) {
  manual_seed(5);
  if (op == "asin" || op == "acos") return rand(shape) * 1.98 - 0.99;
  return randn(shape) * 2.5;
}

TEST(CudaElementwiseMore, TrigAndHyperbolicOpsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"asin", "acos", "atan", "sinh", "cosh"}) {
    const Primitive& p = prim(name);
    for (const Tol& tol : kFloatTols) {
      const std::string what = std::string(name) + " " + std::string(dtype_name(tol.dtype));
      const Tensor x = sample(name, {33, 65}).to(tol.dtype), gx = x.to(kGpu);
      for (const auto& [how, view] : kLayouts)
        expect_close(dispatch1(p, {view(gx)}), dispatch1(p, {view(x)}).to(kGpu), tol.rtol, tol.atol,
                     what + " " + how);
      // Out of the domain (asin(2) is NaN), infinities, NaN, -0 (asin(-0) = -0).
      const Tensor s = float_values(tol.dtype);
      expect_close(dispatch1(p, {s.to(kGpu)}), dispatch1(p, {s}).to(kGpu), tol.rtol, tol.atol,
                   what + " special values");
    }
  }
  const Tensor z = tensor<double>({-0.0, 0.0});
  expect_exact(asin(z.to(kGpu)), asin(z), "asin keeps the sign of zero");
  expect_exact(atan(z.to(kGpu)), atan(z), "atan keeps the sign of zero");
}

TEST(CudaElementwiseMore, SoftplusMatchesTheCpuOnBothSidesOfItsThreshold) {
  SKIP_WITHOUT_GPU();
  for (const Tol& tol : kFloatTols) {
    const Tensor x = (randn({17, 40}) * 10.0).to(tol.dtype);
    for (auto [beta, threshold] : std::vector<std::pair<double, double>>{
             {1.0, 20.0}, {2.0, 5.0}, {0.5, 1.0}, {-1.0, 20.0}, {3.0, 0.0}}) {
      const std::string what = "softplus beta " + std::to_string(beta) + " threshold " +
                               std::to_string(threshold) + " " + std::string(dtype_name(tol.dtype));
      for (const auto& [how, view] : kLayouts)
        expect_close(softplus(view(x.to(kGpu)), beta, threshold),
                     softplus(view(x), beta, threshold).to(kGpu), tol.rtol, tol.atol,
                     what + " " + how);
      const Tensor s = float_values(tol.dtype);
      expect_close(softplus(s.to(kGpu), beta, threshold), softplus(s, beta, threshold).to(kGpu),
                   tol.rtol, tol.atol, what + " special values");
    }
  }
}

TEST(CudaElementwiseMore, SignAndPredicatesAreExactForEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    const std::string n(dtype_name(dt));
    const Tensor s = float_values(dt).reshape({4, 6}), gs = s.to(kGpu);
    for (const auto& [how, view] : kLayouts) {
      const Tensor x = view(s), g = view(gs);
      expect_exact(sign(g), sign(x), "sign " + n + " " + how);
      expect_exact(isnan(g), isnan(x), "isnan " + n + " " + how);
      expect_exact(isinf(g), isinf(x), "isinf " + n + " " + how);
      expect_exact(isfinite(g), isfinite(x), "isfinite " + n + " " + how);
    }
  }
  for (DType dt : {kBool, kUInt8, kInt8, kInt16, kInt32, kInt64}) {
    const std::string n(dtype_name(dt));
    const Tensor x = int_values(dt).reshape({5, 5}), gx = x.to(kGpu);
    for (const auto& [how, view] : kLayouts) {
      const Tensor v = view(x), g = view(gx);
      expect_exact(sign(g), sign(v), "sign " + n + " " + how);
      expect_exact(isnan(g), isnan(v), "isnan " + n + " " + how);
      expect_exact(isinf(g), isinf(v), "isinf " + n + " " + how);
      expect_exact(isfinite(g), isfinite(v), "isfinite " + n + " " + how);
      expect_exact(bitwise_not(g), bitwise_not(v), "bitwise_not " + n + " " + how);
    }
  }
}

// ---- integers --------------------------------------------------------------------------------

TEST(CudaElementwiseMore, IntegerUnaryOpsWrapLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kInts) {
    const std::string n(dtype_name(dt));
    const Tensor x = int_values(dt).reshape({5, 5}), gx = x.to(kGpu);
    for (const auto& [how, view] : kLayouts) {
      const Tensor v = view(x), g = view(gx);
      const std::string s = n + " " + how;
      expect_exact(neg(g), neg(v), "neg " + s);  // INT_MIN stays INT_MIN
      expect_exact(abs(g), abs(v), "abs " + s);
      expect_exact(relu(g), relu(v), "relu " + s);
      expect_exact(square(g), square(v), "square " + s);
      expect_exact(floor(g), floor(v), "floor " + s);
      expect_exact(ceil(g), ceil(v), "ceil " + s);
      expect_exact(round(g), round(v), "round " + s);
      expect_exact(trunc(g), trunc(v), "trunc " + s);
    }
  }
}

// Every pair (a[i], b[j]) three ways, each view made on the CPU and separately on the GPU:
// broadcast ([n, 1] with [1, m]), the pairs materialized and transposed (strided operands), and
// an expanded operand (stride 0) sliced. check(a, b, a on the GPU, b on the GPU, how).
template <class F>
void each_pair(const Tensor& a, const Tensor& b, F&& check) {
  const Shape s = {a.numel(), b.numel()};
  const auto col = [](const Tensor& t) { return t.reshape({-1, 1}); };
  const auto row = [](const Tensor& t) { return t.reshape({1, -1}); };
  const auto col_t = [&](const Tensor& t) { return col(t).expand(s).contiguous().t(); };
  const auto row_t = [&](const Tensor& t) { return row(t).expand(s).contiguous().t(); };
  const auto col_x = [&](const Tensor& t) { return col(t).expand(s).slice(0, 1, std::nullopt); };
  const Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  check(col(a), row(b), col(ga), row(gb), "broadcast");
  check(col_t(a), row_t(b), col_t(ga), row_t(gb), "transposed");
  check(col_x(a), row(b), col_x(ga), row(gb), "expanded");
}

TEST(CudaElementwiseMore, IntegerBinaryOpsMatchTheCpuOnEveryPair) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kInts) {
    const std::string n(dtype_name(dt));
    const Tensor v = int_values(dt), nz = int_values(dt, /*zero=*/false);
    each_pair(v, v,
              [&](const Tensor& a, const Tensor& b, const Tensor& ga, const Tensor& gb,
                  const std::string& how) {
                const std::string s = " " + n + " " + how;
                expect_exact(add(ga, gb), add(a, b), "add" + s);
                expect_exact(add(ga, gb, Scalar(int64_t{-3})), add(a, b, Scalar(int64_t{-3})),
                             "alpha" + s);
                expect_exact(add(ga, gb, Scalar(int64_t{300})), add(a, b, Scalar(int64_t{300})),
                             "alpha 300" + s);
                expect_exact(sub(ga, gb), sub(a, b), "sub" + s);
                expect_exact(mul(ga, gb), mul(a, b), "mul" + s);
                expect_exact(maximum(ga, gb), maximum(a, b), "maximum" + s);
                expect_exact(minimum(ga, gb), minimum(a, b), "minimum" + s);
                expect_exact(bitwise_and(ga, gb), bitwise_and(a, b), "bitwise_and" + s);
                expect_exact(bitwise_or(ga, gb), bitwise_or(a, b), "bitwise_or" + s);
                expect_exact(bitwise_xor(ga, gb), bitwise_xor(a, b), "bitwise_xor" + s);
              });
    // Divisors without zero (the CPU raises on zero; see the next test), INT_MIN / -1 included.
    each_pair(v, nz,
              [&](const Tensor& a, const Tensor& b, const Tensor& ga, const Tensor& gb,
                  const std::string& how) {
                const std::string s = " " + n + " " + how;
                expect_exact(floor_divide(ga, gb), floor_divide(a, b), "floor_divide" + s);
                expect_exact(remainder(ga, gb), remainder(a, b), "remainder" + s);
              });
    // Exponents: small, past the width (wrapping), negative.
    const Tensor e = tensor<int64_t>({0, 1, 2, 3, 7, 8, 15, 31, 63, 64, -1, -2, -3}).to(dt);
    each_pair(v, e,
              [&](const Tensor& a, const Tensor& b, const Tensor& ga, const Tensor& gb,
                  const std::string& how) {
                expect_exact(pow(ga, gb), pow(a, b), "pow " + n + " " + how);
              });
  }
  // Scalars meet integer tensors on the GPU as 0-d tensors.
  const Tensor i = arange(-6, 7, 1, kInt32);
  expect_exact(add(i.to(kGpu), 5), add(i, 5), "int32 + 5");
  expect_exact(mul(i.to(kGpu), -3), mul(i, -3), "int32 * -3");
  expect_exact(sub(i.to(kGpu), 2), sub(i, 2), "int32 - 2");
}

TEST(CudaElementwiseMore, BoolOpsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor v = tensor<bool>({false, true});
  each_pair(v, v,
            [&](const Tensor& a, const Tensor& b, const Tensor& ga, const Tensor& gb,
                const std::string& how) {
              expect_exact(add(ga, gb), add(a, b), "add bool " + how);
              expect_exact(add(ga, gb, Scalar(false)), add(a, b, Scalar(false)),
                           "add alpha false " + how);
              expect_exact(mul(ga, gb), mul(a, b), "mul bool " + how);
              expect_exact(maximum(ga, gb), maximum(a, b), "maximum bool " + how);
              expect_exact(minimum(ga, gb), minimum(a, b), "minimum bool " + how);
              expect_exact(bitwise_and(ga, gb), bitwise_and(a, b), "bitwise_and bool " + how);
              expect_exact(bitwise_or(ga, gb), bitwise_or(a, b), "bitwise_or bool " + how);
              expect_exact(bitwise_xor(ga, gb), bitwise_xor(a, b), "bitwise_xor bool " + how);
            });
  // What the CPU refuses for bool, the GPU refuses too (the op layer's dtype check).
  EXPECT_THROW((void)sub(v.to(kGpu), v.to(kGpu)), DTypeError);
  EXPECT_THROW((void)neg(v.to(kGpu)), DTypeError);
}

TEST(CudaElementwiseMore, IntegerDivisionByZeroRaisesAtTheNextSynchronization) {
  SKIP_WITHOUT_GPU();
  cuda::synchronize();
  for (DType dt : {kInt32, kInt64, kUInt8, kInt16}) {
    const std::string n(dtype_name(dt));
    const Tensor a = tensor<int64_t>({7, -7, 9, -9, 5, 0}).to(dt);
    const Tensor b = tensor<int64_t>({2, 0, -4, 3, 0, 3}).to(dt);
    EXPECT_THROW((void)floor_divide(a, b), ValueError) << "the CPU raises (" << n << ")";
    for (bool fd : {true, false}) {
      const Tensor y =
          fd ? floor_divide(a.to(kGpu), b.to(kGpu)) : remainder(a.to(kGpu), b.to(kGpu));
      try {
        (void)y.to(kCpu);
        ADD_FAILURE() << "expected ValueError for a zero divisor (" << n << ")";
      } catch (const ValueError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find(fd ? "[floor_divide] integer division by zero"
                              : "[remainder] integer division by zero"),
                  std::string::npos)
            << msg;
        EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
      }
      // The fault is cleared, the context usable, and every other element is the CPU's.
      const Tensor ones = full({6}, Scalar(1), dt);
      const Tensor safe_b = where(b == 0, ones, b);
      const Tensor want =
          where(b == 0, zeros({6}, dt), fd ? floor_divide(a, safe_b) : remainder(a, safe_b));
      expect_exact(y, want, std::string(fd ? "floor_divide" : "remainder") + " after the fault");
      cuda::synchronize();  // nothing pending
    }
  }
  // Float division by zero is no error: inf, -inf and NaN, as on the CPU.
  const Tensor f = tensor<float>({1.f, -1.f, 0.f, 2.5f}), z = zeros({4});
  expect_exact(floor_divide(f.to(kGpu), z.to(kGpu)), floor_divide(f, z), "float // 0");
  expect_exact(remainder(f.to(kGpu), z.to(kGpu)), remainder(f, z), "float % 0");
  cuda::synchronize();
}

// ---- floats: floor_divide, remainder -------------------------------------------------------

TEST(CudaElementwiseMore, FloatFloorDivideAndRemainderAreTheCpusBitForBit) {
  SKIP_WITHOUT_GPU();
  for (DType dt : kFloats) {
    const std::string n(dtype_name(dt));
    const Tensor v = float_values(dt);
    each_pair(v, v,
              [&](const Tensor& a, const Tensor& b, const Tensor& ga, const Tensor& gb,
                  const std::string& how) {
                expect_exact(floor_divide(ga, gb), floor_divide(a, b),
                             "floor_divide " + n + " " + how);
                expect_exact(remainder(ga, gb), remainder(a, b), "remainder " + n + " " + how);
                expect_exact(maximum(ga, gb), maximum(a, b), "maximum " + n + " " + how);
              });
    manual_seed(3);
    const Tensor a = (randn({1000}) * 100.0).to(dt), b = (randn({1000}) * 7.0).to(dt);
    expect_exact(floor_divide(a.to(kGpu), b.to(kGpu)), floor_divide(a, b), "random // " + n);
    expect_exact(remainder(a.to(kGpu), b.to(kGpu)), remainder(a, b), "random % " + n);
  }
  // alpha * b is rounded before the add, like the CPU (no FMA).
  manual_seed(4);
  const Tensor a = randn({4096}), b = randn({4096});
  expect_exact(add(a.to(kGpu), b.to(kGpu), 0.1), add(a, b, 0.1), "add alpha 0.1 float32");
}

// ---- ternary -----------------------------------------------------------------------------------

TEST(CudaElementwiseMore, ClampBroadcastsAllOperandsLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(8);
  for (DType dt :
       {kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8, kUInt8}) {
    const std::string n(dtype_name(dt));
    const Tensor x = (randn({4, 1, 9}) * 40.0).to(dt);
    const Tensor lo = (randn({5, 1}) * 20.0 - 10.0).to(dt);  // sometimes above hi
    const Tensor hi = (randn({9}) * 20.0 + 10.0).to(dt);
    expect_exact(clamp(x.to(kGpu), lo.to(kGpu), hi.to(kGpu)), clamp(x, lo, hi),
                 "clamp tensors " + n);
    // Strided views made on each side: x transposed, lo expanded (stride 0), hi sliced.
    const Tensor x2 = (randn({5, 7}) * 40.0).to(dt);
    const auto strided = [](const Tensor& x, const Tensor& l, const Tensor& h) {
      return clamp(x.t(), l.reshape({1, 5}).expand({7, 5}), h.slice(0, 2, 7));
    };
    expect_exact(strided(x2.to(kGpu), lo.to(kGpu), hi.to(kGpu)), strided(x2, lo, hi),
                 "clamp strided " + n);
    expect_exact(clamp(x.to(kGpu), Scalar(-5), Scalar(7)), clamp(x, Scalar(-5), Scalar(7)),
                 "clamp scalars " + n);
    expect_exact(clamp(x.to(kGpu), Scalar(3), std::nullopt), clamp(x, Scalar(3), std::nullopt),
                 "clamp min " + n);
    expect_exact(clamp(x.to(kGpu), std::nullopt, Scalar(3)), clamp(x, std::nullopt, Scalar(3)),
                 "clamp max " + n);
    expect_exact(clamp(x.to(kGpu), Scalar(7), Scalar(-5)), clamp(x, Scalar(7), Scalar(-5)),
                 "clamp lo > hi " + n);
  }
  // NaN anywhere gives NaN; infinite bounds; -0.
  const Tensor s = float_values(kFloat32);
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{
           {-1, 1}, {0, 0}, {-0.0, 2}, {nan, 1}, {-1, nan}, {-inf, inf}}) {
    const Tensor l = full({}, Scalar(lo), kFloat32), h = full({}, Scalar(hi), kFloat32);
    expect_exact(clamp(s.to(kGpu), l.to(kGpu), h.to(kGpu)), clamp(s, l, h),
                 "clamp special [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

TEST(CudaElementwiseMore, LerpIsTheCpusTwoSidedFormula) {
  SKIP_WITHOUT_GPU();
  manual_seed(9);
  for (DType dt : kFloats) {
    const std::string n(dtype_name(dt));
    const Tensor a = (randn({6, 1, 11}) * 10.0).to(dt), b = (randn({7, 11}) * 10.0).to(dt);
    const Tensor w = (rand({6, 7, 1}) * 3.0 - 1.0).to(dt);  // both formulas, extrapolation too
    // Exact: the device is kept from fusing the multiply-add the CPU rounds twice.
    expect_exact(lerp(a.to(kGpu), b.to(kGpu), w.to(kGpu)), lerp(a, b, w), "lerp tensors " + n);
    expect_exact(lerp(a.to(kGpu), b.to(kGpu), Scalar(0.3)), lerp(a, b, Scalar(0.3)),
                 "lerp scalar " + n);
    const Tensor at = (randn({11, 7}) * 10.0).to(dt), bt = (randn({7}) * 10.0).to(dt);
    const auto strided = [](const Tensor& x, const Tensor& y) {
      return lerp(x.t(), y.reshape({7, 1}).expand({7, 11}), Scalar(0.75));
    };
    expect_exact(strided(at.to(kGpu), bt.to(kGpu)), strided(at, bt), "lerp strided " + n);
    const Tensor s = float_values(dt);
    for (double wv : {0.0, 0.5, 1.0, -1.0, 2.0}) {
      const Tensor ww = full({}, Scalar(wv), dt);
      each_pair(s, s,
                [&](const Tensor& x, const Tensor& y, const Tensor& gx, const Tensor& gy,
                    const std::string& how) {
                  expect_exact(lerp(gx, gy, ww.to(kGpu)), lerp(x, y, ww),
                               "lerp special w=" + std::to_string(wv) + " " + n + " " + how);
                });
    }
  }
}

// ---- gradients -----------------------------------------------------------------------------

// Gradients of sum(f(inputs) * ct) on dev with respect to every input.
template <class F>
std::vector<Tensor> grads(Device dev, const std::vector<Tensor>& inputs, const Tensor& ct, F f) {
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) xs.push_back(t.to(dev).detach().requires_grad_());
  (f(xs) * ct.to(dev)).sum().backward();
  std::vector<Tensor> g;
  for (const Tensor& x : xs) g.push_back(x.grad());
  return g;
}

template <class F>
void expect_same_grads(const std::vector<Tensor>& inputs, const Shape& out_shape, F f, double rtol,
                       const std::string& what) {
  manual_seed(21);
  const Tensor ct = randn(out_shape).to(inputs[0].dtype());
  const std::vector<Tensor> gpu = grads(kGpu, inputs, ct, f), cpu = grads(kCpu, inputs, ct, f);
  for (size_t i = 0; i < gpu.size(); ++i)
    expect_close(gpu[i], cpu[i].to(kGpu), rtol, rtol,
                 what + ": grad of input " + std::to_string(i));
}

TEST(CudaElementwiseMore, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  for (auto [dt, rtol] :
       std::vector<std::pair<DType, double>>{{kFloat64, 1e-12}, {kFloat32, 2e-5}}) {
    const std::string n(dtype_name(dt));
    manual_seed(13);
    const Tensor x = (rand({5, 8}) * 1.8 - 0.9).to(dt);  // inside asin's domain
    using V = std::vector<Tensor>;
    expect_same_grads(
        {x}, {5, 8}, [](const V& v) { return asin(v[0]); }, rtol, "asin " + n);
    expect_same_grads(
        {x}, {5, 8}, [](const V& v) { return acos(v[0]); }, rtol, "acos " + n);
    expect_same_grads(
        {x}, {5, 8}, [](const V& v) { return atan(v[0]); }, rtol, "atan " + n);
    expect_same_grads(
        {x}, {5, 8}, [](const V& v) { return sinh(v[0]); }, rtol, "sinh " + n);
    expect_same_grads(
        {x}, {5, 8}, [](const V& v) { return cosh(v[0]); }, rtol, "cosh " + n);
    const Tensor y = (randn({5, 8}) * 4.0).to(dt);
    expect_same_grads(
        {y}, {5, 8}, [](const V& v) { return softplus(v[0], 2.0, 3.0); }, rtol, "softplus " + n);
    // clamp: x, lo and hi all broadcast and all differentiable (lo > hi in places).
    const Tensor cx = (randn({4, 1, 6}) * 3.0).to(dt), lo = (randn({3, 1}) - 1.0).to(dt),
                 hi = (randn({6}) + 1.0).to(dt);
    expect_same_grads(
        {cx, lo, hi}, {4, 3, 6}, [](const V& v) { return clamp(v[0], v[1], v[2]); }, rtol,
        "clamp " + n);
    expect_same_grads(
        {cx}, {4, 1, 6}, [](const V& v) { return clamp(v[0], Scalar(-1.0), Scalar(1.0)); }, rtol,
        "clamp scalars " + n);
    // lerp: start, end and weight broadcast.
    const Tensor a = randn({4, 1, 6}).to(dt), b = randn({3, 6}).to(dt),
                 w = (rand({4, 3, 1}) * 2.0 - 0.5).to(dt);
    expect_same_grads(
        {a, b, w}, {4, 3, 6}, [](const V& v) { return lerp(v[0], v[1], v[2]); }, rtol, "lerp " + n);
    // remainder: 1 for a, -floor(a / b) for b.
    const Tensor ra = (randn({5, 8}) * 10.0).to(dt), rb = (rand({8}) * 3.0 + 0.5).to(dt);
    expect_same_grads(
        {ra, rb}, {5, 8}, [](const V& v) { return remainder(v[0], v[1]); }, rtol, "remainder " + n);
  }
}

// A dtype the CPU takes but CUDA has no kernel for is named, never run on the CPU behind the
// caller's back. Every elementwise primitive covers the CPU's dtypes (the coverage test above)
// and complex64 cumsum has a kernel now, so the example is integer matmul (the CPU's builtin
// kernel only).
TEST(CudaElementwiseMore, UnsupportedDtypesAreNamed) {
  SKIP_WITHOUT_GPU();
  const Tensor c = ones({2, 2}, kInt16).to(kGpu);
  try {
    (void)matmul(c, c);
    ADD_FAILURE() << "expected NotImplementedError";
  } catch (const NotImplementedError& e) {
    EXPECT_NE(std::string(e.what()).find("[matmul] no cuda:0 kernel for inputs of dtype (int16, "
                                         "int16)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(values(cumsum(ones({3}, kComplex64).to(kGpu), 0)),  // the real parts
            (std::vector<double>{1, 2, 3}))
      << "complex64 cumsum has a CUDA kernel";
}

}  // namespace
}  // namespace tessera
