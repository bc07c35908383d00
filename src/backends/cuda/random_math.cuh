#pragma once
// The per-element maps of the random and creation kernels (random.cu), written once for the
// device and the host: Philox4x32-10, the maps from Philox words to values, the arange /
// linspace / eye formulas and the conversions to each element type. They are the formulas of
// the CPU kernels (src/backends/cpu/creation.cpp), so a seed gives the same numbers on both;
// compiled as plain C++ (g++ with the toolkit's include dir) they can be checked on the host
// against the CPU element by element.
//
// Device arithmetic on doubles goes through __dadd_rn / __dmul_rn: nvcc would otherwise
// contract a * b + c into one FMA (one rounding) where the CPU rounds twice.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "backends/cuda/host_device.h"
#include "backends/cuda/random_kernels.h"

namespace tessera::cuda::rng {

// ---- exact double arithmetic (two roundings, never an FMA) ----------------------------------
TS_HD double add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}
TS_HD double sub(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dsub_rn(a, b);
#else
  return a - b;
#endif
}
TS_HD double mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// ---- Philox4x32-10 (core/generator.cpp) ------------------------------------------------------
struct Words {
  uint32_t w[4];
};

TS_HD uint32_t mulhi(uint32_t a, uint32_t b) {
#ifdef __CUDA_ARCH__
  return __umulhi(a, b);
#else
  return static_cast<uint32_t>((static_cast<uint64_t>(a) * b) >> 32);
#endif
}

/// philox_at(seed, counter): the words of counter (lo, hi, 0, 0) under key (seed lo, seed hi).
TS_HD Words philox(uint64_t seed, uint64_t counter) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0,
           c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#ifdef __CUDA_ARCH__
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    const uint32_t hi0 = mulhi(kM0, c0), lo0 = kM0 * c0;
    const uint32_t hi1 = mulhi(kM1, c2), lo1 = kM1 * c2;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// ---- words -> values (cpu/creation.cpp) -------------------------------------------------------
/// Uniform in [0, 1) with 24 or 53 random bits (exact: an integer times a power of two).
TS_HD double unit24(uint32_t w) { return static_cast<double>(w >> 8) * 0x1p-24; }
TS_HD double unit53(uint32_t a, uint32_t b) {
  return static_cast<double>((static_cast<uint64_t>(a) << 21) ^ (b >> 11)) * 0x1p-53;
}

/// uniform before rounding to the element type: low + (high - low) * u, 53 bits for float64.
TS_HD double uniform_value(const Words& w, double low, double high, bool wide) {
  const double u = wide ? unit53(w.w[0], w.w[1]) : unit24(w.w[0]);
  return add(low, mul(sub(high, low), u));
}

/// Box-Muller in double: the device's log and cos (CUDA's math library) against the CPU's libm
/// are the only difference (sqrt is correctly rounded on both).
TS_HD double normal_value(const Words& w, double mean, double std) {
  const double u1 = sub(1.0, unit53(w.w[0], w.w[1]));  // (0, 1]: log stays finite
  const double u2 = unit53(w.w[2], w.w[3]);
  constexpr double kTwoPi = 2.0 * 3.14159265358979323846;
  const double z = mul(::sqrt(mul(-2.0, ::log(u1))), ::cos(mul(kTwoPi, u2)));
  return add(mean, mul(std, z));
}

/// randint: low + (64 random bits mod range); the sum wraps like the CPU's two's complement.
TS_HD int64_t randint_value(const Words& w, int64_t low, uint64_t range) {
  const uint64_t r = ((static_cast<uint64_t>(w.w[0]) << 32) | w.w[1]) % range;
  return static_cast<int64_t>(static_cast<uint64_t>(low) + r);
}

/// bernoulli: 1 when u < p (p already checked to be in [0, 1]).
TS_HD int64_t bernoulli_value(const Words& w, double p) {
  return unit53(w.w[0], w.w[1]) < p ? 1 : 0;
}

/// A probability the CPU accepts: in [0, 1], not NaN.
TS_HD bool valid_probability(double p) { return p >= 0.0 && p <= 1.0; }

// ---- creation formulas -------------------------------------------------------------------------
TS_HD double arange_value(int64_t i, double start, double step) {
  return add(start, mul(static_cast<double>(i), step));
}
TS_HD int64_t arange_int(int64_t i, int64_t start, int64_t step) {
  return static_cast<int64_t>(static_cast<uint64_t>(start) +
                              static_cast<uint64_t>(i) * static_cast<uint64_t>(step));
}
/// Symmetric from both ends (the CPU's and PyTorch's rule) so the last value is exactly `end`;
/// step = (end - start) / (n - 1) computed on the host.
TS_HD double linspace_value(int64_t i, int64_t n, double start, double end, double step) {
  return i < (n + 1) / 2 ? add(start, mul(step, static_cast<double>(i)))
                         : sub(end, mul(step, static_cast<double>(n - 1 - i)));
}
TS_HD int64_t eye_value(int64_t i, int64_t cols) { return i / cols == i % cols ? 1 : 0; }

// ---- conversions to the element type (cpu::convert) -------------------------------------------
/// complex64's layout: the real part, then the imaginary part.
struct Complex {
  float re, im;
};

/// From double: NaN -> 0 and saturation for integers, through float32 for the 16-bit floats.
template <class T>
TS_HD T from_double(double x) {
  if constexpr (std::is_same_v<T, bool>) {
    return x != 0.0;
  } else if constexpr (std::is_integral_v<T>) {
    if (!(x == x)) return T(0);
    // T's range without std::numeric_limits (host-only constexpr functions for nvcc).
    constexpr T lo =
        std::is_signed_v<T> ? static_cast<T>(uint64_t{1} << (8 * sizeof(T) - 1)) : T(0);
    constexpr T hi = static_cast<T>(~lo);
    if (x <= static_cast<double>(lo)) return lo;
    if (x >= static_cast<double>(hi)) return hi;
    return static_cast<T>(x);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<T, Complex>) {
    return {static_cast<float>(x), 0.f};
  } else {
    return static_cast<T>(x);
  }
}

/// From int64: integers wrap; floats round from it (16-bit floats through float32, as the CPU).
template <class T>
TS_HD T from_int(int64_t x) {
  if constexpr (std::is_same_v<T, bool>) {
    return x != 0;
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(x);
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(static_cast<float>(x));
  } else if constexpr (std::is_same_v<T, Complex>) {
    return {static_cast<float>(x), 0.f};
  } else {
    return static_cast<T>(x);
  }
}

/// A float element back to double (exact), for uniform's half-open rule.
template <class T>
TS_HD double to_double(T x) {
  if constexpr (std::is_same_v<T, __half>)
    return static_cast<double>(__half2float(x));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return static_cast<double>(__bfloat162float(x));
  else
    return static_cast<double>(x);
}

/// uniform in T: rounding to a narrow float may reach `high`, which gives `low` instead so the
/// interval stays half-open (the CPU's rule).
template <class T>
TS_HD T uniform_element(const Words& w, double low, double high, bool wide) {
  const T r = from_double<T>(uniform_value(w, low, high, wide));
  return high > low && to_double(r) >= high ? from_double<T>(low) : r;
}

// ---- whole elements (the kernels' bodies) ----------------------------------------------------
enum Kind : int { kUniformDraw, kNormalDraw, kRandintDraw };

struct RandomArgs {
  k::Draw d;
  double a, b;  ///< low / high or mean / std
  int64_t low;
  uint64_t range;
  bool wide;  ///< uniform: 53 random bits (float64)
};

/// Element i of a draw of kind K in T: counter offset + i.
template <class T, int K>
TS_HD T random_element(const RandomArgs& a, int64_t i) {
  const Words w = philox(a.d.seed, a.d.offset + static_cast<uint64_t>(i));
  if constexpr (K == kUniformDraw)
    return uniform_element<T>(w, a.a, a.b, a.wide);
  else if constexpr (K == kNormalDraw)
    return from_double<T>(normal_value(w, a.a, a.b));
  else
    return from_int<T>(randint_value(w, a.low, a.range));
}

/// Element i of bernoulli with probability p (checked by the caller).
template <class T>
TS_HD T bernoulli_element(k::Draw d, int64_t i, double p) {
  return from_int<T>(bernoulli_value(philox(d.seed, d.offset + static_cast<uint64_t>(i)), p));
}

enum Create : int { kArangeInt, kArangeDouble, kLinspace, kEye };

struct CreateArgs {
  int kind;
  int64_t istart, istep, cols;
  double start, end, step;
};

/// Element i of n of a creation primitive in T.
template <class T>
TS_HD T create_element(const CreateArgs& a, int64_t n, int64_t i) {
  switch (a.kind) {
    case kArangeInt:
      return from_int<T>(arange_int(i, a.istart, a.istep));
    case kArangeDouble:
      return from_double<T>(arange_value(i, a.start, a.step));
    case kLinspace:
      return from_double<T>(linspace_value(i, n, a.start, a.end, a.step));
    default:
      return from_int<T>(eye_value(i, a.cols));
  }
}

}  // namespace tessera::cuda::rng
