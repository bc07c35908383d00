#pragma once
// The per-element rules of the elementwise kernels that are more than one expression: integer
// arithmetic that wraps (computed unsigned, as the CPU does), Python's floor division and
// modulo, integer powers, NaN-propagating extrema, clamp, lerp, softplus, sign and the float
// predicates. They are the CPU kernels' formulas (src/backends/cpu/elementwise_*.cpp) written
// once for both sides: nvcc compiles them for the device, and g++ (or nvcc's host pass) for
// the host, where tests/unit/test_cuda_functors.cpp checks them against the CPU kernels on many
// values without a GPU. No CUDA header: plain templates over the compute type C (float for the
// 16-bit floats, the type itself otherwise).
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "backends/cuda/host_device.h"

namespace tessera::cuda::fn {
inline namespace TS_FN_NS {

// ---- float math in the compute type (the C library on the host, CUDA's on the device) ----
#define TS_FN_MATH1(name, f32, f64)            \
  TS_HD float name(float x) { return f32(x); } \
  TS_HD double name(double x) { return f64(x); }
TS_FN_MATH1(f_abs, fabsf, fabs)
TS_FN_MATH1(f_floor, floorf, floor)
TS_FN_MATH1(f_exp, expf, exp)
TS_FN_MATH1(f_log1p, log1pf, log1p)
TS_FN_MATH1(f_asin, asinf, asin)
TS_FN_MATH1(f_acos, acosf, acos)
TS_FN_MATH1(f_atan, atanf, atan)
TS_FN_MATH1(f_sinh, sinhf, sinh)
TS_FN_MATH1(f_cosh, coshf, cosh)
#undef TS_FN_MATH1
TS_HD float f_fmod(float a, float b) { return fmodf(a, b); }
TS_HD double f_fmod(double a, double b) { return fmod(a, b); }
TS_HD float f_copysign(float a, float b) { return copysignf(a, b); }
TS_HD double f_copysign(double a, double b) { return copysign(a, b); }

/// a * b rounded once and never fused into a following add: the device would otherwise
/// contract a + w * d into an FMA, while the CPU build (no -mfma) rounds twice.
TS_HD float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
TS_HD double mul_rn(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// ---- integers: wrap like the CPU (and PyTorch), never signed-overflow UB ----
template <class C>
inline constexpr bool is_int_v = std::is_integral_v<C> && !std::is_same_v<C, bool>;
// Unsigned and wide enough that the usual promotions never turn it back into a signed int.
template <class C>
using wide_u = std::conditional_t<(sizeof(C) < 4), uint32_t, std::make_unsigned_t<C>>;

template <class C>
TS_HD C wrap_add(C a, C b) {
  return static_cast<C>(static_cast<wide_u<C>>(a) + static_cast<wide_u<C>>(b));
}
template <class C>
TS_HD C wrap_sub(C a, C b) {
  return static_cast<C>(static_cast<wide_u<C>>(a) - static_cast<wide_u<C>>(b));
}
template <class C>
TS_HD C wrap_mul(C a, C b) {
  return static_cast<C>(static_cast<wide_u<C>>(a) * static_cast<wide_u<C>>(b));
}
template <class C>
TS_HD C wrap_neg(C a) {
  return static_cast<C>(wide_u<C>{0} - static_cast<wide_u<C>>(a));
}

/// a + alpha * b; for bool, a || (alpha && b).
template <class C>
TS_HD C add_of(C a, C b, C alpha) {
  if constexpr (std::is_same_v<C, bool>)
    return a || (alpha && b);
  else
    return wrap_add(a, wrap_mul(alpha, b));
}
/// a * b; for bool, a && b.
template <class C>
TS_HD C mul_of(C a, C b) {
  if constexpr (std::is_same_v<C, bool>)
    return a && b;
  else
    return wrap_mul(a, b);
}
template <class C>
TS_HD C abs_of(C x) {
  if constexpr (std::is_signed_v<C>)
    return x < 0 ? wrap_neg(x) : x;  // INT_MIN stays INT_MIN
  else
    return x;
}
template <class C>
TS_HD C relu_of(C x) {
  if constexpr (std::is_unsigned_v<C>)
    return x;
  else
    return x < C(0) ? C(0) : x;  // NaN stays NaN
}
/// -1, 0 or 1; NaN gives 0 and -0 gives +0, like the CPU.
template <class C>
TS_HD C sign_of(C x) {
  if constexpr (std::is_same_v<C, bool>)
    return x;
  else if constexpr (std::is_unsigned_v<C>)
    return static_cast<C>(x > 0);
  else
    return static_cast<C>((C(0) < x) - (x < C(0)));
}

/// Integer power by squaring, wrapping; a negative exponent gives 0 except for bases 1, -1.
template <class C>
TS_HD C pow_of(C a, C b) {
  if constexpr (std::is_signed_v<C>) {
    if (b < 0) return a == 1 ? C(1) : a == -1 ? static_cast<C>((b & 1) ? -1 : 1) : C(0);
  }
  wide_u<C> r = 1, base = static_cast<wide_u<C>>(a);
  for (auto e = static_cast<wide_u<C>>(b); e != 0; e >>= 1) {
    if (e & 1) r = static_cast<wide_u<C>>(r * base);
    base = static_cast<wide_u<C>>(base * base);
  }
  return static_cast<C>(r);
}

/// Python's floor division. Integers: b != 0 (the kernel handles zero before calling), and
/// INT_MIN // -1 wraps. Floats: PyTorch's formula, exact for representable quotients.
template <class C>
TS_HD C floor_div_of(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    if constexpr (std::is_signed_v<C>) {
      if (b == -1) return wrap_neg(a);
      const C q = static_cast<C>(a / b);
      return (a % b != 0 && ((a < 0) != (b < 0))) ? static_cast<C>(q - 1) : q;
    } else {
      return static_cast<C>(a / b);
    }
  } else {
    if (b == 0) return a / b;
    const C mod = f_fmod(a, b);
    C div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return f_copysign(C(0), a / b);
    C fl = f_floor(div);
    if (div - fl > C(0.5)) fl += 1;
    return fl;
  }
}

/// Python's modulo: the result takes the divisor's sign. Integers: b != 0 (see floor_div_of).
template <class C>
TS_HD C remainder_of(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    if constexpr (std::is_signed_v<C>) {
      if (b == -1) return 0;  // INT_MIN % -1 would trap on the CPU
      const C r = static_cast<C>(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? static_cast<C>(r + b) : r;
    } else {
      return static_cast<C>(a % b);
    }
  } else {
    C mod = f_fmod(a, b);
    if (mod != 0 && (b < 0) != (mod < 0)) mod += b;
    return mod;
  }
}

/// NaN-propagating extrema (PyTorch's maximum / minimum); plain for integers and bool.
template <class C>
TS_HD C max_of(C a, C b) {
  if constexpr (std::is_floating_point_v<C>)
    if (a != a || b != b) return a + b;
  return a > b ? a : b;
}
template <class C>
TS_HD C min_of(C a, C b) {
  if constexpr (std::is_floating_point_v<C>)
    if (a != a || b != b) return a + b;
  return a < b ? a : b;
}
/// min(max(x, lo), hi): hi wins when lo > hi; a NaN anywhere gives NaN.
template <class C>
TS_HD C clamp_of(C x, C lo, C hi) {
  return min_of(max_of(x, lo), hi);
}

template <class C>
TS_HD C bit_and(C a, C b) {
  return static_cast<C>(a & b);
}
template <class C>
TS_HD C bit_or(C a, C b) {
  return static_cast<C>(a | b);
}
template <class C>
TS_HD C bit_xor(C a, C b) {
  return static_cast<C>(a ^ b);
}
template <class C>
TS_HD C bit_not(C x) {
  if constexpr (std::is_same_v<C, bool>)
    return !x;
  else
    return static_cast<C>(~x);
}

// ---- floats ----
/// PyTorch's two-sided lerp: exact at both ends (w = 0 gives a, w = 1 gives b).
template <class C>
TS_HD C lerp_of(C a, C b, C w) {
  return f_abs(w) < C(0.5) ? a + mul_rn(w, b - a) : b - mul_rn(b - a, C(1) - w);
}
/// log(1 + exp(beta x)) / beta, linear above the threshold (where it would equal x anyway).
template <class C>
TS_HD C softplus_of(C x, C beta, C threshold) {
  return x * beta > threshold ? x : f_log1p(f_exp(x * beta)) / beta;
}
template <class C>
TS_HD bool isnan_of(C x) {
  return x != x;
}
template <class C>
TS_HD bool isinf_of(C x) {
  return f_abs(x) == C(INFINITY);
}
template <class C>
TS_HD bool isfinite_of(C x) {
  return f_abs(x) < C(INFINITY);  // false for NaN
}

}  // namespace TS_FN_NS
}  // namespace tessera::cuda::fn

