// The per-element rules of the CUDA complex64 kernels (src/backends/cuda/complex_rules.cuh),
// compiled here for the host, against the CPU kernels (libstdc++'s std::complex<float> over
// libgcc and glibc) on every pair of real and imaginary parts from a list of special and
// ordinary floats: signed zeros, subnormals, 1 +- ulp, values where exp overflows float and
// where it overflows double, huge, infinite and NaN parts.
//
// Arithmetic (add, add with alpha, sub, neg, mul, div, reciprocal, square), abs and the
// comparisons and predicates must be the CPU's bits. exp, log, sqrt, sin, cos evaluate the
// finite cases in double and round once, glibc in float: each part within 4 ulps of the CPU's
// (3 seen), with every infinity, NaN and signed zero of the CPU's (Annex G's) special values.
// pow is exp(w log x) as glibc computes it, so a last-bit difference in log x is multiplied by
// |w log x|: checked where that product is moderate, relative to the result's modulus. Runs without
// a GPU; the device's own double libm (an ulp of double, invisible after rounding to float nearly
// always) and the kernels themselves are checked on a GPU by test_cuda_complex.cpp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <complex>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "backends/cuda/complex_rules.cuh"
#include "cuda_test_util.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace fn = cuda::fn;
using cuda_test::same_bits;
using cuda_test::ulp_distance;
using fn::Cf;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr double kEps = FLT_EPSILON;

// Parts for the complex values: specials first, then a fixed pseudo-random spread of
// magnitudes 2^-30 ... 2^30 of both signs.
std::vector<float> parts(int random) {
  std::vector<float> v = {0.0f,    -0.0f,      1.0f,        -1.0f,       0.5f,         -2.0f,
                          3.0f,    1e-45f,     -1e-40f,     FLT_MIN,     1e-20f,       1e-8f,
                          3e-4f,   1.0000001f, 0.99999994f, 1.5f,        0.70710677f,  -1e10f,
                          3e38f,   -FLT_MAX,   88.0f,       89.0f,       -104.0f,      710.0f,
                          -800.0f, 1500.0f,    3.14159274f, 1.57079637f, -1.57079637f, 1e5f,
                          kInf,    -kInf,      kNan};
  uint64_t s = 12345;
  for (int i = 0; i < random; ++i) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    const double u = static_cast<double>(s >> 11) / 9007199254740992.0;
    v.push_back(
        static_cast<float>((u * 2 - 1) * std::ldexp(1.0, static_cast<int>((s >> 3) % 60) - 30)));
  }
  return v;
}

std::vector<Complex64> grid(const std::vector<float>& p) {
  std::vector<Complex64> z;
  for (float re : p)
    for (float im : p) z.emplace_back(re, im);
  return z;
}

Cf cf(Complex64 z) { return {z.real(), z.imag()}; }
std::string str(Complex64 z) {
  return "(" + std::to_string(z.real()) + (std::signbit(z.real()) ? "[-]" : "") + ", " +
         std::to_string(z.imag()) + (std::signbit(z.imag()) ? "[-]" : "") + ")";
}
std::string str(Cf z) { return str(Complex64(z.re, z.im)); }

// Each part within `ulps` of the CPU's, with the CPU's infinities, NaNs and signed zeros.
bool close_parts(Complex64 want, Cf got, double ulps) {
  for (int k = 0; k < 2; ++k) {
    const float w = k ? want.imag() : want.real(), g = k ? got.im : got.re;
    if (!std::isfinite(w) || !std::isfinite(g)) {
      if (!same_bits(w, g)) return false;
    } else if ((w == 0 && g == 0 && std::signbit(w) != std::signbit(g)) ||
               ulp_distance(w, g) > ulps) {
      return false;
    }
  }
  return true;
}

// Within `ulps` float epsilons of the result's modulus (for pow, whose parts can cancel), the
// parts' infinities and NaNs exactly.
bool close_modulus(Complex64 want, Cf got, double ulps) {
  const double m = std::hypot(static_cast<double>(want.real()), static_cast<double>(want.imag()));
  for (int k = 0; k < 2; ++k) {
    const float w = k ? want.imag() : want.real(), g = k ? got.im : got.re;
    if (!std::isfinite(w) || !std::isfinite(g)) {
      if (!same_bits(w, g)) return false;
      continue;
    }
    // Beside an infinite part the modulus is infinite: the finite part on its own scale.
    const double scale = std::isfinite(m) ? m : std::abs(static_cast<double>(w));
    if (std::abs(static_cast<double>(w) - g) > ulps * kEps * scale + 2 * FLT_TRUE_MIN) return false;
  }
  return true;
}

// fn(z) against cpu(tensor) for every z.
template <class Cpu, class F>
void check_unary(const std::vector<Complex64>& z, Cpu cpu, F f, double ulps,
                 const std::string& what) {
  const std::vector<Complex64> w = cpu(tensor<Complex64>(z)).template to_vector<Complex64>();
  ASSERT_EQ(w.size(), z.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < z.size() && bad < 5; ++i) {
    const Cf got = f(cf(z[i]));
    const bool ok = ulps == 0 ? same_bits(got.re, w[i].real()) && same_bits(got.im, w[i].imag())
                              : close_parts(w[i], got, ulps);
    if (!ok) {
      ADD_FAILURE() << what << str(z[i]) << ": rule " << str(got) << ", CPU " << str(w[i]);
      ++bad;
    }
  }
}

// A real- or bool-valued rule against the CPU, bit for bit.
template <class T, class Cpu, class F>
void check_real(const std::vector<Complex64>& z, Cpu cpu, F f, const std::string& what) {
  const std::vector<T> w = cpu(tensor<Complex64>(z)).template to_vector<T>();
  int bad = 0;
  for (size_t i = 0; i < z.size() && bad < 5; ++i) {
    const T got = f(cf(z[i]));
    bool ok;
    if constexpr (std::is_same_v<T, float>)
      ok = same_bits(got, w[i]);
    else
      ok = got == w[i];
    if (!ok) {
      ADD_FAILURE() << what << str(z[i]) << ": rule " << got << ", CPU " << w[i];
      ++bad;
    }
  }
}

struct Pairs {
  std::vector<Complex64> a, b;
};
Pairs pairs(const std::vector<Complex64>& x, const std::vector<Complex64>& y,
            const std::function<bool(Complex64, Complex64)>& keep) {
  Pairs p;
  for (Complex64 u : x)
    for (Complex64 v : y)
      if (keep(u, v)) {
        p.a.push_back(u);
        p.b.push_back(v);
      }
  return p;
}
const auto kAll = [](Complex64, Complex64) { return true; };

// fn(a, b) against cpu(a, b) for every pair: bit for bit, or within `ulps(i)` epsilons of the
// modulus.
template <class Cpu, class F>
void check_binary(const Pairs& p, Cpu cpu, F f, const std::function<double(size_t)>& ulps,
                  const std::string& what) {
  const std::vector<Complex64> w =
      cpu(tensor<Complex64>(p.a), tensor<Complex64>(p.b)).template to_vector<Complex64>();
  ASSERT_EQ(w.size(), p.a.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < w.size() && bad < 5; ++i) {
    const Cf got = f(cf(p.a[i]), cf(p.b[i]));
    const double u = ulps(i);
    const bool ok = u == 0 ? same_bits(got.re, w[i].real()) && same_bits(got.im, w[i].imag())
                           : close_modulus(w[i], got, u);
    if (!ok) {
      ADD_FAILURE() << what << str(p.a[i]) << ", " << str(p.b[i]) << ": rule " << str(got)
                    << ", CPU " << str(w[i]);
      ++bad;
    }
  }
}
const auto kExact = [](size_t) { return 0.0; };

TEST(CudaComplexRulesOnTheHost, ArithmeticIsTheCpusBits) {
  const std::vector<Complex64> z = grid(parts(16));
  check_unary(
      z, [](const Tensor& t) { return neg(t); }, fn::c_neg, 0, "neg");
  check_unary(
      z, [](const Tensor& t) { return reciprocal(t); }, fn::c_reciprocal, 0, "reciprocal");
  check_unary(
      z, [](const Tensor& t) { return square(t); }, fn::c_square, 0, "square");
  check_real<float>(
      z, [](const Tensor& t) { return abs(t); }, fn::c_abs, "abs");
  check_real<bool>(
      z, [](const Tensor& t) { return isnan(t); }, fn::c_isnan, "isnan");
  check_real<bool>(
      z, [](const Tensor& t) { return isinf(t); }, fn::c_isinf, "isinf");
  check_real<bool>(
      z, [](const Tensor& t) { return isfinite(t); }, fn::c_isfinite, "isfinite");

  // Every pair of a smaller grid (1e8 pairs of a larger one were checked when this was written).
  const std::vector<Complex64> y = grid(parts(0));
  const Pairs p = pairs(y, y, kAll);
  check_binary(
      p, [](const Tensor& a, const Tensor& b) { return add(a, b); }, fn::c_add, kExact, "add");
  check_binary(
      p, [](const Tensor& a, const Tensor& b) { return sub(a, b); }, fn::c_sub, kExact, "sub");
  check_binary(
      p, [](const Tensor& a, const Tensor& b) { return mul(a, b); }, fn::c_mul, kExact, "mul");
  check_binary(
      p, [](const Tensor& a, const Tensor& b) { return div(a, b); }, fn::c_div, kExact, "div");
  for (Complex64 alpha : {Complex64(1, 0), Complex64(2, -0.5f), Complex64(0, 1), Complex64(-3, 0)})
    check_binary(
        p, [&](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(alpha)); },
        [&](Cf a, Cf b) { return fn::c_add(a, fn::c_mul(cf(alpha), b)); }, kExact,
        "add alpha " + str(alpha));
  const std::vector<bool> eq_cpu =
      eq(tensor<Complex64>(p.a), tensor<Complex64>(p.b)).to_vector<bool>();
  const std::vector<bool> ne_cpu =
      ne(tensor<Complex64>(p.a), tensor<Complex64>(p.b)).to_vector<bool>();
  int bad = 0;
  for (size_t i = 0; i < p.a.size() && bad < 5; ++i)
    if (fn::c_eq(cf(p.a[i]), cf(p.b[i])) != eq_cpu[i] ||
        !fn::c_eq(cf(p.a[i]), cf(p.b[i])) != ne_cpu[i]) {
      ADD_FAILURE() << "eq / ne " << str(p.a[i]) << ", " << str(p.b[i]);
      ++bad;
    }
}

TEST(CudaComplexRulesOnTheHost, FunctionsAreWithinUlpsWithTheCpusSpecialValues) {
  const std::vector<Complex64> z = grid(parts(40));
  check_unary(
      z, [](const Tensor& t) { return exp(t); }, fn::c_exp, 4, "exp");
  check_unary(
      z, [](const Tensor& t) { return log(t); }, fn::c_log, 4, "log");
  check_unary(
      z, [](const Tensor& t) { return sqrt(t); }, fn::c_sqrt, 4, "sqrt");
  check_unary(
      z, [](const Tensor& t) { return sin(t); }, fn::c_sin, 4, "sin");
  check_unary(
      z, [](const Tensor& t) { return cos(t); }, fn::c_cos, 4, "cos");

  // pow: glibc rounds log x and w log x to float before the exp, as the rule does, so the
  // results differ by the exp of a last-bit difference in w log x: |w log x| ulps of the
  // modulus (plus a few), where |w log x| < 60 (beyond it sin and cos of the imaginary part
  // are noise in float). Zero signs of parts that underflow are that noise too.
  const std::vector<Complex64> y = grid(parts(4));
  const Pairs p = pairs(y, y, [](Complex64 a, Complex64 b) {
    const std::complex<double> e = std::complex<double>(b) * std::log(std::complex<double>(a));
    return !(std::abs(e) >= 60);  // NaN included: special values
  });
  check_binary(
      p, [](const Tensor& a, const Tensor& b) { return pow(a, b); }, fn::c_pow,
      [&](size_t i) {
        const std::complex<double> e =
            std::complex<double>(p.b[i]) * std::log(std::complex<double>(p.a[i]));
        return 8 + 4 * (std::isfinite(std::abs(e)) ? std::abs(e) : 0.0);
      },
      "pow");
  EXPECT_GT(p.a.size(), 100000u);
}

// The cases the C standard fixes (Annex G), spelled out, so the rules stay right on their own.
TEST(CudaComplexRulesOnTheHost, AnnexGSpecialValues) {
  const auto is = [](Cf z, float re, float im) {
    return same_bits(z.re, re) && same_bits(z.im, im);
  };
  EXPECT_TRUE(std::isinf(fn::c_mul({kInf, kNan}, {1, 0}).re));  // inf * 1 is infinite
  EXPECT_TRUE(is(fn::c_div({1, 0}, {0, 0}), kInf, kNan));       // nonzero / 0: infinite
  EXPECT_TRUE(is(fn::c_div({1, 1}, {kInf, 0}), 0, 0));          // finite / inf: 0
  EXPECT_TRUE(is(fn::c_exp({-kInf, 2}), -0.0f, 0.0f));          // cos 2 < 0, sin 2 > 0
  EXPECT_TRUE(is(fn::c_exp({kInf, 0}), kInf, 0));
  EXPECT_TRUE(is(fn::c_exp({1000, 0}), kInf, 0));  // past double's exp: the zero stays
  EXPECT_TRUE(is(fn::c_exp({kNan, -0.0f}), kNan, -0.0f));
  EXPECT_TRUE(is(fn::c_log({-0.0f, 0}), -kInf, 3.14159274f));
  EXPECT_TRUE(is(fn::c_log({kNan, -kInf}), kInf, kNan));
  EXPECT_TRUE(is(fn::c_log({1, 0}), 0, 0));
  EXPECT_TRUE(is(fn::c_sqrt({-4, -0.0f}), 0, -2));
  EXPECT_TRUE(is(fn::c_sqrt({kNan, kInf}), kInf, kInf));
  EXPECT_TRUE(is(fn::c_sqrt({-kInf, 1}), 0, kInf));
  EXPECT_TRUE(is(fn::c_sin({-0.0f, kNan}), -0.0f, kNan));
  EXPECT_TRUE(is(fn::c_sin({0, 1000}), 0, kInf));  // sinh overflows, sin 0 stays 0
  EXPECT_TRUE(is(fn::c_cos({0, -0.0f}), 1, 0));
  EXPECT_EQ(fn::c_abs({kNan, -kInf}), kInf);
  EXPECT_FLOAT_EQ(fn::c_abs({3e38f, 3e38f}),  // no overflow inside
                  static_cast<float>(std::sqrt(2.0) * static_cast<double>(3e38f)));
  // alpha = 1 is still a product: (1 + 0i) * (inf + 0i) = inf + NaN i, as on the CPU.
  const Cf one_times = fn::c_mul({1, 0}, {kInf, 0});
  EXPECT_TRUE(std::isinf(one_times.re) && std::isnan(one_times.im));
}

}  // namespace
}  // namespace tessera
