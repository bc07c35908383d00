// The per-element rules of the CUDA elementwise kernels (src/backends/cuda/functors.cuh),
// compiled here for the host, against the CPU kernels on many values: integer wrapping (INT_MIN
// included), Python's floor division and modulo (negative operands, -0, infinities, NaN, a zero
// float divisor), integer powers, NaN-propagating extrema, clamp, lerp, softplus, sign, the
// predicates and add's alpha. Bit for bit: the host's libm is the one the CPU kernels call. This
// runs without a GPU; what it cannot check is the device's own libm (asin, exp, log1p: a few
// ulp) and that mul_rn keeps nvcc from fusing lerp's multiply-add, which
// test_cuda_elementwise_more.cpp checks on a device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/cuda/functors.cuh"
#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace fn = cuda::fn;

// A fixed pseudo-random stream (no dependence on the library's generator).
uint64_t next(uint64_t& s) {
  s = s * 6364136223846793005ull + 1442695040888963407ull;
  return s >> 11;
}

template <class T>
std::vector<T> int_values() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {
      0, 1, 2, 3, 5, 7, 100, L::max(), T(L::max() - 1), T(L::max() / 2), L::min(), T(L::min() + 1)};
  if constexpr (std::is_signed_v<T>)
    for (T x : {-1, -2, -3, -5, -7, -100}) v.push_back(x);
  uint64_t s = 7;
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<T>(next(s)));
  return v;
}

template <class T>
std::vector<T> float_values() {
  using L = std::numeric_limits<T>;
  std::vector<T> v = {0,
                      -T(0),
                      1,
                      -1,
                      0.5,
                      -0.5,
                      1.5,
                      -1.5,
                      2.5,
                      -2.5,
                      3,
                      -3,
                      7.25,
                      -7.25,
                      1e-30f,
                      -1e-30f,
                      1e30f,
                      -1e30f,
                      L::infinity(),
                      -L::infinity(),
                      L::quiet_NaN(),
                      L::denorm_min(),
                      L::max(),
                      L::lowest(),
                      T(0.1),
                      T(-0.1),
                      T(1e-7),
                      T(123456.75)};
  uint64_t s = 11;
  for (int i = 0; i < 8; ++i) v.push_back(static_cast<T>((double(next(s) % 2000001) - 1e6) / 997));
  return v;
}

// Equal bits (NaN payloads aside): -0 and +0 differ.
template <class T>
bool same(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return std::memcmp(&a, &b, sizeof(T)) == 0;
  } else {
    return a == b;
  }
}

template <class T>
std::string str(T v) {
  if constexpr (std::is_same_v<T, bool>)
    return v ? "true" : "false";
  else if constexpr (std::is_floating_point_v<T>)
    return std::to_string(v) + (std::signbit(v) ? " (neg)" : "");
  else
    return std::to_string(static_cast<int64_t>(v));
}

// The host functor f against the CPU op on every element of x.
template <class T, class Cpu, class F>
void check_unary(const std::vector<T>& x, Cpu cpu, F f, const std::string& what) {
  const Tensor want = cpu(tensor<T>(x));
  using O = decltype(f(x[0]));
  const std::vector<O> w = want.to_vector<O>();
  ASSERT_EQ(w.size(), x.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < x.size() && bad < 5; ++i) {
    const T xi = x[i];
    const O got = f(xi), wi = w[i];
    if (!same(got, wi)) {
      ADD_FAILURE() << what << "(" << str(xi) << "): functor " << str(got) << ", CPU " << str(wi);
      ++bad;
    }
  }
}

// The host functor f against the CPU op on every pair (x[i], y[j]), except those `skip` names.
template <class T, class Cpu, class F, class Skip>
void check_binary(const std::vector<T>& x, const std::vector<T>& y, Cpu cpu, F f, Skip skip,
                  const std::string& what) {
  std::vector<T> a, b;
  for (T u : x)
    for (T v : y)
      if (!skip(u, v)) {
        a.push_back(u);
        b.push_back(v);
      }
  const std::vector<T> w = cpu(tensor<T>(a), tensor<T>(b)).template to_vector<T>();
  ASSERT_EQ(w.size(), a.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < a.size() && bad < 5; ++i) {
    const T ai = a[i], bi = b[i], wi = w[i];
    const T got = f(ai, bi);
    if (!same(got, wi)) {
      ADD_FAILURE() << what << "(" << str(ai) << ", " << str(bi) << "): functor " << str(got)
                    << ", CPU " << str(wi);
      ++bad;
    }
  }
}
constexpr auto kNoSkip = [](auto, auto) { return false; };

template <class T>
void check_integer_ops() {
  const std::string n(dtype_name(dtype_v<T>));
  const std::vector<T> v = int_values<T>();
  check_unary(
      v, [](const Tensor& t) { return neg(t); }, [](T x) { return fn::wrap_neg(x); }, "neg " + n);
  check_unary(
      v, [](const Tensor& t) { return abs(t); }, [](T x) { return fn::abs_of(x); }, "abs " + n);
  check_unary(
      v, [](const Tensor& t) { return relu(t); }, [](T x) { return fn::relu_of(x); }, "relu " + n);
  check_unary(
      v, [](const Tensor& t) { return sign(t); }, [](T x) { return fn::sign_of(x); }, "sign " + n);
  check_unary(
      v, [](const Tensor& t) { return square(t); }, [](T x) { return fn::wrap_mul(x, x); },
      "square " + n);
  check_unary(
      v, [](const Tensor& t) { return bitwise_not(t); }, [](T x) { return fn::bit_not(x); },
      "bitwise_not " + n);

  for (int64_t alpha : {1, -1, 3, 300, -129}) {
    check_binary(
        v, v, [&](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(alpha)); },
        [&](T a, T b) { return fn::add_of(a, b, static_cast<T>(alpha)); }, kNoSkip,
        "add alpha " + std::to_string(alpha) + " " + n);
  }
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return sub(a, b); },
      [](T a, T b) { return fn::wrap_sub(a, b); }, kNoSkip, "sub " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return mul(a, b); },
      [](T a, T b) { return fn::mul_of(a, b); }, kNoSkip, "mul " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
      [](T a, T b) { return fn::max_of(a, b); }, kNoSkip, "maximum " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
      [](T a, T b) { return fn::min_of(a, b); }, kNoSkip, "minimum " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_and(a, b); },
      [](T a, T b) { return fn::bit_and(a, b); }, kNoSkip, "bitwise_and " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_or(a, b); },
      [](T a, T b) { return fn::bit_or(a, b); }, kNoSkip, "bitwise_or " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_xor(a, b); },
      [](T a, T b) { return fn::bit_xor(a, b); }, kNoSkip, "bitwise_xor " + n);
  // A zero divisor raises on the CPU (the device records a fault instead: checked on a GPU).
  const auto zero = [](T, T b) { return b == 0; };
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return floor_divide(a, b); },
      [](T a, T b) { return fn::floor_div_of(a, b); }, zero, "floor_divide " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return remainder(a, b); },
      [](T a, T b) { return fn::remainder_of(a, b); }, zero, "remainder " + n);
  std::vector<T> e = {0, 1, 2, 3, 7, 8, 15, 31, 63, 64, std::numeric_limits<T>::max()};
  if constexpr (std::is_signed_v<T>)
    for (T x : {T(-1), T(-2), T(-3), std::numeric_limits<T>::min()}) e.push_back(x);
  check_binary(
      v, e, [](const Tensor& a, const Tensor& b) { return pow(a, b); },
      [](T a, T b) { return fn::pow_of(a, b); }, kNoSkip, "pow " + n);

  // clamp with tensor bounds, lo > hi included (hi wins).
  const std::vector<T> bounds = {
      0, 1, 7, std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), T(100)};
  for (T lo : bounds)
    for (T hi : bounds)
      check_unary(
          v,
          [&](const Tensor& t) {
            return clamp(t, full({}, Scalar(int64_t{lo}), dtype_v<T>),
                         full({}, Scalar(int64_t{hi}), dtype_v<T>));
          },
          [&](T x) { return fn::clamp_of(x, lo, hi); },
          "clamp [" + str(lo) + ", " + str(hi) + "] " + n);
}

TEST(CudaFunctorsOnTheHost, IntegerRulesMatchTheCpuKernels) {
  check_integer_ops<uint8_t>();
  check_integer_ops<int8_t>();
  check_integer_ops<int16_t>();
  check_integer_ops<int32_t>();
  check_integer_ops<int64_t>();
}

TEST(CudaFunctorsOnTheHost, BoolRulesMatchTheCpuKernels) {
  const std::vector<bool> v = {false, true};
  for (bool alpha : {false, true})
    check_binary(
        v, v, [&](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(alpha)); },
        [&](bool a, bool b) { return fn::add_of(a, b, alpha); }, kNoSkip, "add bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return mul(a, b); },
      [](bool a, bool b) { return fn::mul_of(a, b); }, kNoSkip, "mul bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
      [](bool a, bool b) { return fn::max_of(a, b); }, kNoSkip, "maximum bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
      [](bool a, bool b) { return fn::min_of(a, b); }, kNoSkip, "minimum bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_and(a, b); },
      [](bool a, bool b) { return fn::bit_and(a, b); }, kNoSkip, "bitwise_and bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_or(a, b); },
      [](bool a, bool b) { return fn::bit_or(a, b); }, kNoSkip, "bitwise_or bool");
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return bitwise_xor(a, b); },
      [](bool a, bool b) { return fn::bit_xor(a, b); }, kNoSkip, "bitwise_xor bool");
  check_unary(
      v, [](const Tensor& t) { return bitwise_not(t); }, [](bool x) { return fn::bit_not(x); },
      "bitwise_not bool");
  check_unary(
      v, [](const Tensor& t) { return sign(t); }, [](bool x) { return fn::sign_of(x); },
      "sign bool");
}

template <class T>
void check_float_ops() {
  const std::string n(dtype_name(dtype_v<T>));
  const std::vector<T> v = float_values<T>();
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return floor_divide(a, b); },
      [](T a, T b) { return fn::floor_div_of(a, b); }, kNoSkip, "floor_divide " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return remainder(a, b); },
      [](T a, T b) { return fn::remainder_of(a, b); }, kNoSkip, "remainder " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return maximum(a, b); },
      [](T a, T b) { return fn::max_of(a, b); }, kNoSkip, "maximum " + n);
  check_binary(
      v, v, [](const Tensor& a, const Tensor& b) { return minimum(a, b); },
      [](T a, T b) { return fn::min_of(a, b); }, kNoSkip, "minimum " + n);
  for (double alpha : {1.0, -1.0, 2.5, 0.1}) {
    check_binary(
        v, v, [&](const Tensor& a, const Tensor& b) { return add(a, b, Scalar(alpha)); },
        [&](T a, T b) { return a + fn::mul_rn(static_cast<T>(alpha), b); }, kNoSkip,
        "add alpha " + std::to_string(alpha) + " " + n);
  }
  // lerp: each weight, every (start, end) pair; both formulas and their switch at |w| = 0.5.
  for (T w : {T(0), T(0.25), T(0.4999999), T(0.5), T(0.75), T(1), T(-1), T(2), T(-0.5), T(1e-20),
              std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity()}) {
    check_binary(
        v, v,
        [&](const Tensor& a, const Tensor& b) {
          return lerp(a, b, full({}, Scalar(w), dtype_v<T>));
        },
        [&](T a, T b) { return fn::lerp_of(a, b, w); }, kNoSkip, "lerp w=" + str(w) + " " + n);
  }
  // clamp: NaN in any operand gives NaN; lo > hi gives hi.
  for (T lo : {T(-1), T(0), -T(0), T(2.5), std::numeric_limits<T>::quiet_NaN(),
               -std::numeric_limits<T>::infinity()})
    for (T hi : {T(-1), T(0), T(3), std::numeric_limits<T>::quiet_NaN(),
                 std::numeric_limits<T>::infinity()})
      check_unary(
          v,
          [&](const Tensor& t) {
            return clamp(t, full({}, Scalar(lo), dtype_v<T>), full({}, Scalar(hi), dtype_v<T>));
          },
          [&](T x) { return fn::clamp_of(x, lo, hi); },
          "clamp [" + str(lo) + ", " + str(hi) + "] " + n);
  const std::vector<std::pair<double, double>> params = {
      {1.0, 20.0}, {2.0, 5.0}, {0.5, 1.0}, {-1.0, 20.0}};
  for (auto [beta, threshold] : params)
    check_unary(
        v, [&](const Tensor& t) { return softplus(t, beta, threshold); },
        [&](T x) { return fn::softplus_of(x, static_cast<T>(beta), static_cast<T>(threshold)); },
        "softplus " + std::to_string(beta) + " " + n);
  check_unary(
      v, [](const Tensor& t) { return sign(t); }, [](T x) { return fn::sign_of(x); }, "sign " + n);
  check_unary(
      v, [](const Tensor& t) { return isnan(t); }, [](T x) { return fn::isnan_of(x); },
      "isnan " + n);
  check_unary(
      v, [](const Tensor& t) { return isinf(t); }, [](T x) { return fn::isinf_of(x); },
      "isinf " + n);
  check_unary(
      v, [](const Tensor& t) { return isfinite(t); }, [](T x) { return fn::isfinite_of(x); },
      "isfinite " + n);
  check_unary(
      v, [](const Tensor& t) { return asin(t); }, [](T x) { return fn::f_asin(x); }, "asin " + n);
  check_unary(
      v, [](const Tensor& t) { return acos(t); }, [](T x) { return fn::f_acos(x); }, "acos " + n);
  check_unary(
      v, [](const Tensor& t) { return atan(t); }, [](T x) { return fn::f_atan(x); }, "atan " + n);
  check_unary(
      v, [](const Tensor& t) { return sinh(t); }, [](T x) { return fn::f_sinh(x); }, "sinh " + n);
  check_unary(
      v, [](const Tensor& t) { return cosh(t); }, [](T x) { return fn::f_cosh(x); }, "cosh " + n);
}

TEST(CudaFunctorsOnTheHost, FloatRulesMatchTheCpuKernels) {
  check_float_ops<float>();
  check_float_ops<double>();
}

// The functors must be the CPU's rules, not merely agree with some values: spot-check the
// documented cases directly too.
TEST(CudaFunctorsOnTheHost, DocumentedEdgeCases) {
  EXPECT_EQ(fn::floor_div_of<int32_t>(INT32_MIN, -1), INT32_MIN);  // wraps
  EXPECT_EQ(fn::remainder_of<int32_t>(INT32_MIN, -1), 0);
  EXPECT_EQ(fn::floor_div_of<int64_t>(-7, 2), -4);
  EXPECT_EQ(fn::remainder_of<int64_t>(-7, 2), 1);
  EXPECT_EQ(fn::remainder_of<int64_t>(7, -2), -1);
  EXPECT_EQ(fn::abs_of<int8_t>(-128), -128);
  EXPECT_EQ(fn::pow_of<int32_t>(-1, -3), -1);
  EXPECT_EQ(fn::pow_of<int32_t>(2, -1), 0);
  EXPECT_EQ(fn::pow_of<uint8_t>(2, 9), 0);  // 512 wraps
  EXPECT_TRUE(std::signbit(fn::floor_div_of(-0.0, 5.0)));
  EXPECT_TRUE(std::isinf(fn::floor_div_of(1.0, 0.0)));
  EXPECT_EQ(fn::remainder_of(-1.0, 3.0), 2.0);
  EXPECT_FALSE(std::signbit(fn::sign_of(-0.0)));  // +0, as the CPU
  EXPECT_EQ(fn::sign_of(std::nan("")), 0.0);
  EXPECT_EQ(fn::lerp_of(1.0, 3.0, 1.0), 3.0);
  EXPECT_TRUE(std::isnan(fn::clamp_of(std::nan(""), 0.0, 1.0)));
  EXPECT_EQ(fn::clamp_of(5, 7, 3), 3);
}

}  // namespace
}  // namespace tessera
