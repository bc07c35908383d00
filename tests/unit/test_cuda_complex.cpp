// The CUDA complex64 kernels against the CPU's results: every elementwise primitive the CPU
// takes complex64 for (neg, abs, exp, log, sqrt, sin, cos, reciprocal, square, isnan, isinf,
// isfinite, add with and without alpha, sub, mul, div, pow, eq, ne, the logical ops, where)
// and the conversions between complex64 and every real dtype, over contiguous (16-byte vector
// path), transposed and unaligned (strided path), broadcast and scalar operands, special
// values (signed zeros, subnormals, huge parts, infinities, NaN) and empty tensors.
// Arithmetic, abs, comparisons, predicates and conversions are compared bit for bit; exp, log,
// sqrt, sin, cos within 4 ulps per part (the device evaluates them in double, glibc in float),
// with the CPU's infinities, NaNs and signed zeros; pow relative to the result's modulus where
// it is well conditioned. Complex autograd is not implemented on the CPU either
// (requires_grad_ refuses complex64), so there are no complex gradients to compare. Every test
// but the first skips without a GPU; the rules themselves are checked on the host, without
// one, by test_cuda_complex_rules.cpp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
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

using cuda_test::kGpu;
using cuda_test::same_bits;
using cuda_test::ulp_distance;

const Device kCpu = Device::cpu();
constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();

// ---- coverage (no GPU needed) ---------------------------------------------------------------

// Every elementwise primitive has a CUDA kernel for complex64 exactly when the CPU takes it.
TEST(CudaComplex, EveryElementwisePrimitiveTheCpuTakesComplexForHasACudaKernel) {
  if (!cuda::is_built()) GTEST_SKIP() << "not built with CUDA";
  int checked = 0, cuda_kernels = 0;
  for (const Primitive& p : registry().all()) {
    if (p.kind != PrimKind::Unary && p.kind != PrimKind::Binary && p.kind != PrimKind::Ternary)
      continue;
    const size_t n = p.kind == PrimKind::Unary ? 1 : p.kind == PrimKind::Binary ? 2 : 3;
    std::vector<Tensor> in(n, zeros({2}, kComplex64));
    if (p.name == "where") in[0] = zeros({2}, kBool);
    const bool gpu =
        cuda_test::expect_cuda_kernel_iff_cpu_takes(p, in, {}, std::string(p.name) + " complex64");
    ++checked;
    cuda_kernels += gpu;
  }
  EXPECT_GT(checked, 50);
  // 12 unary (abs, the predicates ...), 7 binary, logical_and / or / xor / not, where.
  EXPECT_EQ(cuda_kernels, 24);
}

// ---- values and comparisons -----------------------------------------------------------------

// Real and imaginary parts: specials, then a fixed spread of magnitudes 2^-30 ... 2^30.
std::vector<float> parts(int random) {
  std::vector<float> v = {0.0f,        -0.0f,       1.0f,    -1.0f,       0.5f,   -2.0f,
                          3.0f,        1e-45f,      -1e-40f, FLT_MIN,     1e-8f,  3e-4f,
                          1.0000001f,  0.99999994f, 1.5f,    0.70710677f, -1e10f, 3e38f,
                          -FLT_MAX,    88.0f,       89.0f,   -104.0f,     710.0f, -800.0f,
                          3.14159274f, 1.57079637f, kInf,    -kInf,       kNan};
  uint64_t s = 99;
  for (int i = 0; i < random; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(s >> 11) / 9007199254740992.0;
    v.push_back(
        static_cast<float>((u * 2 - 1) * std::ldexp(1.0, static_cast<int>((s >> 3) % 60) - 30)));
  }
  return v;
}

// A [n, n] tensor of every (re, im) pair of parts(random), on the CPU.
Tensor grid(int random) {
  const std::vector<float> p = parts(random);
  std::vector<Complex64> z;
  for (float re : p)
    for (float im : p) z.emplace_back(re, im);
  const auto n = static_cast<int64_t>(p.size());
  return tensor<Complex64>(z, Shape{n, n});
}

std::vector<Complex64> host(const Tensor& t) {
  return t.to(kCpu).contiguous().to_vector<Complex64>();
}

// Each part within `ulps` (0: the same bits), the CPU's infinities, NaNs and signed zeros.
bool part_close(float w, float g, double ulps) {
  if (ulps == 0 || !std::isfinite(w) || !std::isfinite(g)) return same_bits(w, g);
  if (w == 0 && g == 0) return std::signbit(w) == std::signbit(g);
  return ulp_distance(w, g) <= ulps;
}
std::string str(Complex64 z) {
  return "(" + std::to_string(z.real()) + (std::signbit(z.real()) ? "[-]" : "") + ", " +
         std::to_string(z.imag()) + (std::signbit(z.imag()) ? "[-]" : "") + ")";
}

// A complex64 GPU result against the CPU's, part by part.
void expect_complex(const Tensor& got, const Tensor& want, double ulps, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), kComplex64) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const std::vector<Complex64> g = host(got), w = host(want);
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i)
    if (!part_close(w[i].real(), g[i].real(), ulps) ||
        !part_close(w[i].imag(), g[i].imag(), ulps)) {
      ADD_FAILURE() << what << ": element " << i << " is " << str(g[i]) << ", CPU gives "
                    << str(w[i]);
      ++bad;
    }
}

// Any dtype, bit for bit (NaN payloads aside).
void expect_bits(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  if (want.dtype() == kComplex64) return expect_complex(got, want, 0, what);
  const Tensor g = got.to(kCpu).contiguous().to(kFloat64), w = want.contiguous().to(kFloat64);
  const std::vector<double> gv = g.to_vector<double>(), wv = w.to_vector<double>();
  int bad = 0;
  for (size_t i = 0; i < gv.size() && bad < 5; ++i) {
    const bool same = (std::isnan(gv[i]) && std::isnan(wv[i])) ||
                      (gv[i] == wv[i] && std::signbit(gv[i]) == std::signbit(wv[i]));
    if (!same) {
      ADD_FAILURE() << what << ": element " << i << " is " << gv[i] << ", CPU gives " << wv[i];
      ++bad;
    }
  }
}

// Views of a 2-d tensor made on its own device: as it is (the vector path), transposed and
// offset by one element (8 bytes: not 16-byte aligned), both the strided path.
using View = std::function<Tensor(const Tensor&)>;
const std::vector<std::pair<std::string, View>> kLayouts = {
    {"contiguous", [](const Tensor& t) { return t; }},
    {"transposed", [](const Tensor& t) { return t.t(); }},
    {"unaligned", [](const Tensor& t) { return t.reshape({-1}).slice(0, 1, std::nullopt); }},
};

struct UnaryCase {
  const char* name;
  std::function<Tensor(const Tensor&)> f;
  double ulps;  ///< 0: bit for bit
};
const std::vector<UnaryCase> kUnary = {
    {"neg", [](const Tensor& t) { return neg(t); }, 0},
    {"reciprocal", [](const Tensor& t) { return reciprocal(t); }, 0},
    {"square", [](const Tensor& t) { return square(t); }, 0},
    {"exp", [](const Tensor& t) { return exp(t); }, 4},
    {"log", [](const Tensor& t) { return log(t); }, 4},
    {"sqrt", [](const Tensor& t) { return sqrt(t); }, 4},
    {"sin", [](const Tensor& t) { return sin(t); }, 4},
    {"cos", [](const Tensor& t) { return cos(t); }, 4},
};

// ---- unary ----------------------------------------------------------------------------------

TEST(CudaComplex, UnaryOpsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor x = grid(20), gx = x.to(kGpu);
  for (const UnaryCase& c : kUnary)
    for (const auto& [how, view] : kLayouts)
      expect_complex(c.f(view(gx)), c.f(view(x)), c.ulps, std::string(c.name) + " " + how);
}

TEST(CudaComplex, AbsAndPredicatesMatchTheCpuBitForBit) {
  SKIP_WITHOUT_GPU();
  const Tensor x = grid(20), gx = x.to(kGpu);
  for (const auto& [how, view] : kLayouts) {
    const Tensor a = abs(view(gx));
    EXPECT_EQ(a.dtype(), kFloat32);
    expect_bits(a, abs(view(x)), "abs " + how);
    expect_bits(isnan(view(gx)), isnan(view(x)), "isnan " + how);
    expect_bits(isinf(view(gx)), isinf(view(x)), "isinf " + how);
    expect_bits(isfinite(view(gx)), isfinite(view(x)), "isfinite " + how);
    expect_bits(logical_not(view(gx)), logical_not(view(x)), "logical_not " + how);
  }
}

TEST(CudaComplex, EmptyAndZeroDimTensors) {
  SKIP_WITHOUT_GPU();
  const Tensor e = zeros({0, 3}, kComplex64);
  for (const UnaryCase& c : kUnary) expect_complex(c.f(e.to(kGpu)), c.f(e), 0, c.name);
  expect_bits(abs(e.to(kGpu)), abs(e), "abs of an empty tensor");
  expect_complex(add(e.to(kGpu), e.to(kGpu)), add(e, e), 0, "add of empty tensors");
  const Tensor s = full({}, Scalar(Complex64(-0.5f, 2.0f)), kComplex64);
  for (const UnaryCase& c : kUnary)
    expect_complex(c.f(s.to(kGpu)), c.f(s), c.ulps, std::string(c.name) + " 0-d");
}

// ---- binary ---------------------------------------------------------------------------------

struct BinaryCase {
  const char* name;
  std::function<Tensor(const Tensor&, const Tensor&)> f;
};
const std::vector<BinaryCase> kExactBinary = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); }},
    {"add alpha 1", [](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(1.0)); }},
    {"add alpha 2-0.5i",
     [](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(Complex64(2, -0.5f))); }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); }},
    {"eq", [](const Tensor& a, const Tensor& b) { return eq(a, b); }},
    {"ne", [](const Tensor& a, const Tensor& b) { return ne(a, b); }},
    {"logical_and", [](const Tensor& a, const Tensor& b) { return logical_and(a, b); }},
    {"logical_or", [](const Tensor& a, const Tensor& b) { return logical_or(a, b); }},
    {"logical_xor", [](const Tensor& a, const Tensor& b) { return logical_xor(a, b); }},
};

// Every pair of values: a [n*n, 1] column against a [1, n*n] row (a broadcast of both), then
// the same pairs flattened (the vector path) and read through transposed views.
TEST(CudaComplex, BinaryOpsMatchTheCpuBitForBit) {
  SKIP_WITHOUT_GPU();
  const Tensor v = grid(0).reshape({-1});
  const int64_t n = v.numel();
  const Tensor a = v.reshape({n, 1}), b = v.reshape({1, n});
  const Tensor ga = a.to(kGpu), gb = b.to(kGpu);
  const Tensor fa = a.expand({n, n}).contiguous(), fb = b.expand({n, n}).contiguous();
  const Tensor gfa = fa.to(kGpu), gfb = fb.to(kGpu);
  for (const BinaryCase& c : kExactBinary) {
    expect_bits(c.f(ga, gb), c.f(a, b), std::string(c.name) + " broadcast");
    expect_bits(c.f(gfa, gfb), c.f(fa, fb), std::string(c.name) + " contiguous");
    expect_bits(c.f(gfa.t(), gfb.t()), c.f(fa.t(), fb.t()), std::string(c.name) + " transposed");
    // A scalar beside a tensor (the vector path's broadcast operand), both sides.
    const Tensor s = full({}, Scalar(Complex64(0.75f, -3.0f)), kComplex64);
    expect_bits(c.f(gfa, s.to(kGpu)), c.f(fa, s), std::string(c.name) + " tensor, scalar");
    expect_bits(c.f(s.to(kGpu), gfb), c.f(s, fb), std::string(c.name) + " scalar, tensor");
  }
  // Python numbers become 0-d tensors on the GPU: z * 2, z + (1 + 2i).
  expect_bits(mul(gfa, Scalar(2.0)), mul(fa, Scalar(2.0)), "complex * 2");
  expect_bits(add(gfa, Scalar(Complex64(1, 2))), add(fa, Scalar(Complex64(1, 2))),
              "complex + (1 + 2i)");
}

// pow = exp(w log x): compared where |w log x| < 30, to the modulus of the result, which is as
// close as glibc's own float roundings in between allow; and its special values exactly.
TEST(CudaComplex, PowMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  const std::vector<Complex64> v = grid(6).reshape({-1}).to_vector<Complex64>();
  std::vector<Complex64> xs, ws;
  for (Complex64 x : v)
    for (Complex64 w : v) {
      const std::complex<double> e = std::complex<double>(w) * std::log(std::complex<double>(x));
      if (!(std::abs(e) >= 30)) {
        xs.push_back(x);
        ws.push_back(w);
      }
    }
  const Tensor x = tensor<Complex64>(xs), w = tensor<Complex64>(ws);
  const std::vector<Complex64> got = host(pow(x.to(kGpu), w.to(kGpu))), want = host(pow(x, w));
  int bad = 0;
  for (size_t i = 0; i < got.size() && bad < 5; ++i) {
    const double m = std::abs(std::complex<double>(want[i]));
    bool ok = true;
    for (int k = 0; k < 2; ++k) {
      const float gp = k ? got[i].imag() : got[i].real(), wp = k ? want[i].imag() : want[i].real();
      if (!std::isfinite(gp) || !std::isfinite(wp))
        ok &= same_bits(gp, wp);
      else
        ok &= std::abs(static_cast<double>(gp) - wp) <=
              130 * FLT_EPSILON * (std::isfinite(m) ? m : std::abs(wp)) + 2 * FLT_TRUE_MIN;
    }
    if (!ok) {
      ADD_FAILURE() << "pow" << str(xs[i]) << ", " << str(ws[i]) << ": " << str(got[i])
                    << ", CPU gives " << str(want[i]);
      ++bad;
    }
  }
  EXPECT_GT(got.size(), 50000u);
}

// where selects complex64 elements (the bytes of either operand, broadcast).
TEST(CudaComplex, WhereSelectsComplexElements) {
  SKIP_WITHOUT_GPU();
  const Tensor a = grid(0), b = neg(a).t();
  const Tensor c = isfinite(a);
  expect_bits(where(c.to(kGpu), a.to(kGpu), b.to(kGpu)), where(c, a, b), "where");
  const Tensor row = a.narrow(0, 3, 1);
  expect_bits(where(c.to(kGpu), row.to(kGpu), b.to(kGpu)), where(c, row, b), "where broadcast");
}

// ---- conversions ----------------------------------------------------------------------------

// complex64 -> every real dtype (the real part with the CPU's float32 rules: NaN -> 0 and
// saturation for integers; bool: either part nonzero) and back ((x, 0) through float32), on
// the device, bit for bit.
TEST(CudaComplex, ConversionsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor z = grid(10);
  const Tensor gz = z.to(kGpu);
  for (DType dt :
       {kBool, kUInt8, kInt8, kInt16, kInt32, kInt64, kFloat16, kBFloat16, kFloat32, kFloat64}) {
    const std::string n(dtype_name(dt));
    expect_bits(gz.to(dt), z.to(dt), "complex64 -> " + n);
    expect_bits(gz.t().to(dt), z.t().to(dt), "complex64 (transposed) -> " + n);
    // Real values of the dtype (from the complex parts and from integers past float32's 2^24).
    Tensor r = z.to(kFloat64).to(dt);
    if (dt == kInt64) r = tensor<int64_t>({INT64_MAX, INT64_MIN, (int64_t{1} << 24) + 1, -7});
    if (dt == kInt32) r = tensor<int32_t>({INT32_MAX, INT32_MIN, (1 << 24) + 1, -7});
    expect_bits(r.to(kGpu).to(kComplex64), r.to(kComplex64), n + " -> complex64");
  }
  // A broadcast copy into a complex64 view with a conversion.
  Tensor dst = zeros({4, 6}, {kComplex64, kGpu});
  const Tensor src = tensor<double>({1.5, -0.0, 1e300, std::nan("")}, Shape{4, 1});
  dst.t().copy_(src.to(kGpu).t().expand({6, 4}));
  Tensor want = zeros({4, 6}, kComplex64);
  want.t().copy_(src.t().expand({6, 4}));
  expect_bits(dst, want, "copy_ float64 -> complex64 view, broadcast");
}

}  // namespace
}  // namespace tessera
