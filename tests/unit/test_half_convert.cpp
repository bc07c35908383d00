// Casts between float32/float64 and float16/bfloat16. Contiguous casts take the Highway path
// (backends/cpu/convert_simd.cpp), strided ones the scalar loop; both must give bitwise the
// scalar Half/BFloat16 conversion of tessera/core/half.h: round to nearest even, overflow to
// inf, float16 subnormals, -0.0, and the scalar NaN rules (payload handling included).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "half_test_util.h"
#include "tessera/core/half.h"
#include "tessera/tessera.h"

namespace tessera::test {
namespace {

float f32_of(uint32_t b) { return std::bit_cast<float>(b); }

template <class T>
std::vector<T> raw(const Tensor& t) {
  Tensor c = t.contiguous();
  std::vector<T> v(static_cast<size_t>(c.numel()));
  if (!v.empty()) std::memcpy(v.data(), c.raw_data(), v.size() * sizeof(T));  // no null args
  return v;
}
Tensor f32_tensor(const std::vector<float>& v) { return tensor(v); }

// Counts mismatches of got against to_16 over xs, printing the first few.
int64_t check_to16(const std::vector<float>& xs, const std::vector<uint16_t>& got, DType dt,
                   const char* what) {
  int64_t bad = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const uint16_t want = to_16(xs[i], dt);
    if (got[i] != want && ++bad <= 5)
      ADD_FAILURE() << what << " " << dtype_name(dt) << ": float bits 0x" << std::hex
                    << std::bit_cast<uint32_t>(xs[i]) << " -> 0x" << got[i] << ", want 0x" << want;
  }
  return bad;
}

// Every rounding boundary of the 16-bit format: each representable value, the midpoint to its
// successor and the floats on either side of that midpoint, both signs; the overflow
// threshold; NaNs with assorted payloads; float subnormals.
std::vector<float> boundary_floats(DType dt) {
  std::vector<float> xs;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t b = static_cast<uint16_t>(h);
    const float v = to_f32(b, dt);
    xs.push_back(v);
    if (std::isnan(v) || std::isinf(v)) continue;
    const float next = to_f32(static_cast<uint16_t>(b + 1), dt);  // away from zero
    if (std::isnan(next)) continue;
    // Consecutive same-sign values: the exact midpoint fits in a float (<= 12 significant bits).
    const float mid = std::isinf(next) ? (dt == kFloat16 ? std::copysign(65520.f, v)
                                                         : std::copysign(0x1.ffp127f, v))
                                       : static_cast<float>((double(v) + double(next)) / 2);
    xs.push_back(mid);
    xs.push_back(std::nextafter(mid, 0.f));
    xs.push_back(std::nextafter(mid, std::copysign(INFINITY, v)));
  }
  for (uint32_t b : {0x7f800001u, 0x7f800fffu, 0x7f801000u, 0x7f802000u, 0x7fa00000u, 0x7fbfffffu,
                     0x7fc00000u, 0x7fc00001u, 0x7fffffffu, 0x7f80ffffu, 0x7f810000u, 0x00000001u,
                     0x007fffffu, 0x00800000u, 0x33000000u, 0x33000001u, 0x337fffffu, 0x477fefffu,
                     0x477ff000u, 0x7f7fffffu, 0x7f7f7fffu, 0x7f7f8000u, 0x7f800000u})
    for (uint32_t s : {0u, 0x80000000u}) xs.push_back(f32_of(b | s));
  return xs;
}

TEST(HalfConvert, Every16BitPatternToFloat32AndBack) {
  std::vector<uint16_t> all(0x10000);
  for (uint32_t i = 0; i < 0x10000; ++i) all[i] = static_cast<uint16_t>(i);
  for (DType dt : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor h = tensor16(all, dt);
    const auto f = raw<float>(h.to(kFloat32));
    const auto d = raw<double>(h.to(kFloat64));
    const auto round_trip = bits16(h.to(kFloat32).to(dt));
    const DType other = dt == kFloat16 ? kBFloat16 : kFloat16;
    const auto cross = bits16(h.to(other));
    int64_t bad = 0;
    for (uint32_t i = 0; i < 0x10000; ++i) {
      const float want = to_f32(all[i], dt);
      const bool ok =
          std::bit_cast<uint32_t>(f[i]) == std::bit_cast<uint32_t>(want) &&
          std::bit_cast<uint64_t>(d[i]) == std::bit_cast<uint64_t>(static_cast<double>(want)) &&
          round_trip[i] == to_16(want, dt) && cross[i] == to_16(want, other);
      if (!ok && ++bad <= 5) ADD_FAILURE() << "16-bit pattern 0x" << std::hex << i;
    }
    EXPECT_EQ(bad, 0);
    // Non-NaN values survive the round trip; the strided (scalar) path agrees bitwise.
    for (uint32_t i = 0; i < 0x10000; ++i)
      if (!std::isnan(f[i])) {
        ASSERT_EQ(round_trip[i], all[i]) << std::hex << i;
      }
    const Tensor strided = tensor16(all, dt).reshape({256, 256}).t();
    EXPECT_EQ(raw<uint32_t>(strided.to(kFloat32)),
              raw<uint32_t>(strided.contiguous().to(kFloat32)));
  }
}

TEST(HalfConvert, Float32To16BitAtEveryRoundingBoundary) {
  for (DType dt : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    std::vector<float> xs = boundary_floats(dt);
    std::mt19937 rng(7);
    for (int i = 0; i < (1 << 20); ++i) xs.push_back(f32_of(static_cast<uint32_t>(rng())));
    EXPECT_EQ(check_to16(xs, bits16(f32_tensor(xs).to(dt)), dt, "cast"), 0);
    // copy_ into a 16-bit tensor takes the same path.
    Tensor dst = Tensor::empty({static_cast<int64_t>(xs.size())}, dt);
    dst.copy_(f32_tensor(xs));
    EXPECT_EQ(check_to16(xs, bits16(dst), dt, "copy_"), 0);
    // Every length and start offset up to a few vectors (tails, unaligned rows), and the
    // strided scalar loop, on the first boundary values.
    const Tensor all = f32_tensor(xs);
    for (int64_t off = 0; off < 3; ++off)
      for (int64_t n = 0; n <= 70; ++n) {
        const auto got = bits16(all.narrow(0, off, n).to(dt));
        const std::vector<float> part(xs.begin() + off, xs.begin() + off + n);
        ASSERT_EQ(check_to16(part, got, dt, "row"), 0) << "offset " << off << " length " << n;
      }
    const Tensor strided = all.narrow(0, 0, 1 << 16).reshape({256, 256}).t();
    EXPECT_EQ(bits16(strided.to(dt)), bits16(strided.contiguous().to(dt)));
  }
}

TEST(HalfConvert, Float64To16BitRoundsThroughFloat32) {
  // The scalar cast is Half(static_cast<float>(d)): double rounding included.
  std::vector<double> ds;
  for (float f : boundary_floats(kFloat16)) {
    const double d = f;
    ds.push_back(d);
    ds.push_back(std::nextafter(d, 0.0));
    ds.push_back(std::nextafter(d, INFINITY));
  }
  for (double d :
       {1e300, -1e300, 3.4028235677973366e38, 3.402823669209385e38, 3.4028236e38, 1e-50, -1e-320,
        std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
        std::bit_cast<double>(uint64_t{0x7ff0000000000001}),
        std::bit_cast<double>(uint64_t{0xfff8000000000123}),
        std::bit_cast<double>(uint64_t{0x7ff4000020000000})})
    ds.push_back(d);
  std::mt19937_64 rng(11);
  for (int i = 0; i < (1 << 18); ++i) ds.push_back(std::bit_cast<double>(rng()));
  std::uniform_real_distribution<double> u(-70000, 70000);
  for (int i = 0; i < (1 << 18); ++i) ds.push_back(u(rng));
  const Tensor t = tensor(ds);
  for (DType dt : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const auto got = bits16(t.to(dt));
    int64_t bad = 0;
    for (size_t i = 0; i < ds.size(); ++i) {
      const uint16_t want = to_16(static_cast<float>(ds[i]), dt);
      if (got[i] != want && ++bad <= 5)
        ADD_FAILURE() << "double bits 0x" << std::hex << std::bit_cast<uint64_t>(ds[i]) << " -> 0x"
                      << got[i] << ", want 0x" << want;
    }
    EXPECT_EQ(bad, 0);
  }
}

// All 2^32 float32 patterns: about a minute on a shared 2-core machine, so opt-in
// (--gtest_also_run_disabled_tests). The boundary test above covers every rounding boundary.
TEST(HalfConvert, DISABLED_EveryFloat32PatternTo16Bit) {
  constexpr int64_t kChunk = int64_t{1} << 24;
  Tensor src = Tensor::empty({kChunk}, kFloat32);
  auto* p = static_cast<uint32_t*>(src.raw_data());
  for (DType dt : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    Tensor dst = Tensor::empty({kChunk}, dt);
    int64_t bad = 0;
    for (uint64_t base = 0; base < (uint64_t{1} << 32); base += kChunk) {
      for (int64_t i = 0; i < kChunk; ++i) p[i] = static_cast<uint32_t>(base + i);
      dst.copy_(src);
      const auto* q = static_cast<const uint16_t*>(dst.raw_data());
      for (int64_t i = 0; i < kChunk; ++i) {
        const uint16_t want = to_16(std::bit_cast<float>(p[i]), dt);
        if (q[i] != want && ++bad <= 5)
          ADD_FAILURE() << "float bits 0x" << std::hex << p[i] << " -> 0x" << q[i] << ", want 0x"
                        << want;
      }
    }
    EXPECT_EQ(bad, 0);
  }
}

}  // namespace
}  // namespace tessera::test
