// The float16/bfloat16 rows of the elementwise family on the SIMD path, against the scalar
// float32 expression rounded once (the table and focused tests: test_elementwise.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "half_test_util.h"
#include "tessera/core/half.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"
#include "tessera/tessera.h"

namespace tessera::test {

// 16-bit rows on the SIMD path: the CPU computes float16/bfloat16 in float32 and rounds once.
// For the correctly rounded ops that is bitwise the scalar float32 expression rounded once;
// for exp/log/tanh/sigmoid it is the float32 SIMD result rounded once (within one 16-bit ulp
// of the exact value where the float32 result is a normal number).
namespace {

// Operands: random bit patterns (every class: NaNs with payloads, infs, subnormals), values in
// [-4, 4], and specials; ties of the 16-bit rounding come from the sums and products.
std::vector<uint16_t> operands16(DType dt, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-4, 4);
  const std::vector<uint16_t> specials =
      dt == kFloat16 ? std::vector<uint16_t>{0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01,
                                             0x7d23, 0x0001, 0x8001, 0x03ff, 0x0400, 0x7bff, 0xfbff,
                                             0x3c00, 0x3c01, 0x1400, 0x1000, 0x7800, 0x0200}
                     : std::vector<uint16_t>{0x0000, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x7f81,
                                             0x7fa3, 0x0001, 0x8001, 0x007f, 0x0080, 0x7f7f, 0xff7f,
                                             0x3f80, 0x3f81, 0x3b80, 0x3b00, 0x7f00, 0x0040};
  std::vector<uint16_t> v(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t k = rng() % 4;
    v[i] = k == 0   ? static_cast<uint16_t>(rng())
           : k == 1 ? specials[rng() % specials.size()]
                    : to_16(u(rng), dt);
  }
  return v;
}
bool is_nan16(uint16_t h, DType dt) { return std::isnan(to_f32(h, dt)); }

struct Unary16 {
  const char* name;
  Tensor (*op)(const Tensor&);
  float (*f)(float);  // null: float32 SIMD op, checked against `exact`
  double (*exact)(double);
};
struct Binary16 {
  const char* name;
  Tensor (*op)(const Tensor&, const Tensor&);
  float (*f)(float, float);
};

Tensor relu_backward16(const Tensor& g, const Tensor& y) {
  static const Primitive& p = prim("relu_backward");
  return dispatch1(p, {g, y});
}

const Unary16 kUnary16[] = {
    {"neg", neg, [](float x) { return -x; }, nullptr},
    {"abs", abs, [](float x) { return std::fabs(x); }, nullptr},
    {"relu", relu, [](float x) { return x < 0.f ? 0.f : x; }, nullptr},
    {"sqrt", sqrt, [](float x) { return std::sqrt(x); }, nullptr},
    {"exp", exp, nullptr, [](double x) { return std::exp(x); }},
    {"log", log, nullptr, [](double x) { return std::log(x); }},
    {"tanh", tanh, nullptr, [](double x) { return std::tanh(x); }},
    {"sigmoid", sigmoid, nullptr, [](double x) { return 1 / (1 + std::exp(-x)); }},
};
// Operand NaNs never coincide below, so which NaN a + b returns does not depend on the order
// the compiler gives the operands.
const Binary16 kBinary16[] = {
    {"add", add, [](float a, float b) { return a + b; }},
    {"sub", sub, [](float a, float b) { return a - b; }},
    {"mul", mul, [](float a, float b) { return a * b; }},
    {"div", div, [](float a, float b) { return a / b; }},
    {"maximum", maximum,
     [](float a, float b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }},
    {"minimum", minimum,
     [](float a, float b) { return (a != a || b != b) ? a + b : (a < b ? a : b); }},
    {"relu_backward", relu_backward16, [](float a, float b) { return b > 0.f ? a : 0.f; }},
};

// Row lengths around the vector sizes of every target (4, 8, 16 float lanes, two per step),
// and one large enough to be split across threads at unaligned points.
const int64_t kLengths16[] = {1,  2,  3,  7,  8,  9,  15, 16,  17,  31,   32,
                              33, 47, 48, 49, 63, 64, 65, 100, 257, 70001};

// Ordered distance of two same-class 16-bit values (1 = neighbours).
int64_t ulps16(uint16_t a, uint16_t b) {
  auto key = [](uint16_t h) { return (h & 0x8000) ? -int64_t{h & 0x7fff} : int64_t{h}; };
  return std::abs(key(a) - key(b));
}

}  // namespace

TEST(Elementwise, Half16SimdUnaryExact) {
  for (DType dt : {kFloat16, kBFloat16}) {
    const auto all = operands16(dt, 70002, 5);
    const Tensor x_all = tensor16(all, dt);
    for (const Unary16& u : kUnary16) {
      SCOPED_TRACE(std::string(u.name) + " " + std::string(dtype_name(dt)));
      for (int64_t n : kLengths16) {
        for (int64_t off : {0, 1}) {
          const Tensor x = x_all.narrow(0, off, n);  // contiguous; off = 1 is unaligned
          const auto got = bits16(u.op(x));
          ASSERT_EQ(static_cast<int64_t>(got.size()), n);
          if (u.f) {
            for (int64_t i = 0; i < n; ++i) {
              const uint16_t want = to_16(u.f(to_f32(all[off + i], dt)), dt);
              ASSERT_EQ(got[i], want) << "x bits 0x" << std::hex << all[off + i] << std::dec
                                      << " n " << n << " i " << i;
            }
            continue;
          }
          // Bitwise the float32 SIMD op rounded once, and within one 16-bit ulp of the exact
          // value rounded (subnormal and overflowing results included).
          const auto via32 = bits16(u.op(x.to(kFloat32)).to(dt));
          ASSERT_EQ(got, via32) << "n " << n;
          for (int64_t i = 0; i < n; ++i) {
            const double e = u.exact(to_f32(all[off + i], dt));
            const uint16_t want = to_16(static_cast<float>(e), dt);
            if (std::isnan(e)) {
              EXPECT_TRUE(is_nan16(got[i], dt)) << std::hex << all[off + i];
            } else {
              EXPECT_LE(ulps16(got[i], want), 1) << "x bits 0x" << std::hex << all[off + i]
                                                 << " got 0x" << got[i] << " want 0x" << want;
            }
          }
        }
      }
      // The strided (scalar) loop: bitwise equal for the correctly rounded ops, within one
      // 16-bit ulp for the others (std::exp against Highway's exp in float32).
      const Tensor xs = x_all.narrow(0, 0, 4096).reshape({64, 64}).t();
      const auto scalar = bits16(u.op(xs)), simd = bits16(u.op(xs.contiguous()));
      if (u.f) {
        EXPECT_EQ(scalar, simd);
      } else {
        for (size_t i = 0; i < simd.size(); ++i) {
          if (is_nan16(simd[i], dt)) {
            EXPECT_TRUE(is_nan16(scalar[i], dt));
          } else {
            EXPECT_LE(ulps16(scalar[i], simd[i]), 1) << std::hex << scalar[i] << " " << simd[i];
          }
        }
      }
    }
  }
}

TEST(Elementwise, Half16SimdBinaryExact) {
  for (DType dt : {kFloat16, kBFloat16}) {
    auto av = operands16(dt, 70002, 6);
    auto bv = operands16(dt, 70002, 7);
    for (size_t i = 0; i < av.size(); ++i)
      if (is_nan16(av[i], dt) && is_nan16(bv[i], dt)) bv[i] = to_16(1.5f, dt);
    // Exact ties of the 16-bit rounding: 1 + half an ulp, and an odd neighbour + half an ulp.
    const float half_ulp = dt == kFloat16 ? 0x1p-11f : 0x1p-8f;
    const uint16_t one = to_16(1.f, dt), tie = to_16(half_ulp, dt);
    for (size_t i = 0; i < 64; i += 2) {
      av[i] = one;
      av[i + 1] = static_cast<uint16_t>(one + 1);
      bv[i] = bv[i + 1] = tie;
    }
    const Tensor a_all = tensor16(av, dt), b_all = tensor16(bv, dt);
    for (const Binary16& op : kBinary16) {
      SCOPED_TRACE(std::string(op.name) + " " + std::string(dtype_name(dt)));
      for (int64_t n : kLengths16) {
        for (int64_t off : {0, 1}) {
          const Tensor a = a_all.narrow(0, off, n), b = b_all.narrow(0, off, n);
          const auto got = bits16(op.op(a, b));
          for (int64_t i = 0; i < n; ++i) {
            const uint16_t want = to_16(op.f(to_f32(av[off + i], dt), to_f32(bv[off + i], dt)), dt);
            ASSERT_EQ(got[i], want) << "a 0x" << std::hex << av[off + i] << " b 0x" << bv[off + i]
                                    << std::dec << " n " << n << " i " << i;
          }
          // A broadcast scalar on either side (0-d and one-element operands).
          const uint16_t s = bv[n % 7];
          const Tensor s0 = tensor16({s}, dt).reshape({}), s1 = tensor16({s}, dt);
          const auto right = bits16(op.op(a, s0)), left = bits16(op.op(s1, a));
          for (int64_t i = 0; i < n; ++i) {
            if (is_nan16(av[off + i], dt) && is_nan16(s, dt)) continue;
            const float x = to_f32(av[off + i], dt), y = to_f32(s, dt);
            ASSERT_EQ(right[i], to_16(op.f(x, y), dt)) << "i " << i << " n " << n;
            ASSERT_EQ(left[i], to_16(op.f(y, x), dt)) << "i " << i << " n " << n;
          }
        }
      }
      // The strided (scalar) loop gives the same bits.
      const Tensor as = a_all.narrow(0, 0, 4096).reshape({64, 64}).t(),
                   bs = b_all.narrow(0, 0, 4096).reshape({64, 64}).t();
      EXPECT_EQ(bits16(op.op(as, bs)), bits16(op.op(as.contiguous(), bs.contiguous())));
    }
  }
}

}  // namespace tessera::test
