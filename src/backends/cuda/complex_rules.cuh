#pragma once
// The per-element rules of the complex64 kernels (complex.cu): the CPU kernels' results, which
// are libstdc++'s std::complex<float> as g++ builds it (backends/cpu/elementwise_*.cpp):
//
// - products and quotients are libgcc's __mulsc3 / __divsc3 (g++ calls them for every complex
//   float product whose plain formula gives NaN + NaN i, and for every quotient): here the
//   same operations, so finite results and the C11 Annex G special values are the CPU's bits;
// - exp, log, sqrt, sin, cos, abs and pow are glibc's cexpf, clogf, csqrtf, csinf, ccosf,
//   cabsf (hypotf) and cpowf (cexp(y * clog(x))): here glibc's case analysis (the special
//   values of Annex G, case by case) with the finite cases evaluated in double and rounded
//   once to float. Double cannot overflow or underflow on a float's square or exp(88), so
//   glibc's rescaling steps are not needed for finite results (kept only beyond double's
//   range, where they decide between a signed zero and an infinity); the results are within
//   an ulp or two of glibc's, which rounds in float.
//
// A hand-written pair of floats rather than cuda::std::complex: libcu++'s operator/ and its
// functions are libc++'s algorithms (logb scaling, exp(y log x) without glibc's cases), so
// they would differ from the CPU at the special values and in the last bits of quotients;
// and this header must also compile with g++ alone, without the CUDA headers, for
// tests/unit/test_cuda_complex_rules.cpp, which checks it against the CPU kernels without a GPU.
#include <float.h>
#include <math.h>

#include "backends/cuda/functors.cuh"


namespace tessera::cuda::fn {
inline namespace TS_FN_NS {

// Double math (the C library on the host, CUDA's on the device) beside functors.cuh's f_*.
TS_HD double d_log(double x) { return ::log(x); }
TS_HD double d_sqrt(double x) { return ::sqrt(x); }
TS_HD double d_sin(double x) { return ::sin(x); }
TS_HD double d_cos(double x) { return ::cos(x); }
TS_HD double d_atan2(double y, double x) { return ::atan2(y, x); }

/// complex64 as the kernels see it: std::complex<float>'s layout (real, then imaginary).
/// Aligned like the 8-byte words the copy kernels move it as.
struct alignas(8) Cf {
  float re, im;
};

TS_HD float f_inf() { return INFINITY; }
TS_HD float f_nan() {
#ifdef __CUDA_ARCH__
  return __int_as_float(0x7fc00000);
#else
  return NAN;
#endif
}
TS_HD bool f_isnan(float x) { return x != x; }
TS_HD bool f_isinf(float x) { return f_abs(x) == INFINITY; }
TS_HD bool f_isfinite(float x) { return f_abs(x) < INFINITY; }  // false for NaN
TS_HD bool f_signbit(float x) { return f_copysign(1.0f, x) < 0.0f; }
/// Rounds a pair computed in double to complex64 (once per part).
TS_HD Cf c_round(double re, double im) { return {static_cast<float>(re), static_cast<float>(im)}; }

// ---- arithmetic: exact rules, the CPU's bits ----
TS_HD Cf c_add(Cf a, Cf b) { return {a.re + b.re, a.im + b.im}; }
TS_HD Cf c_sub(Cf a, Cf b) { return {a.re - b.re, a.im - b.im}; }
TS_HD Cf c_neg(Cf a) { return {-a.re, -a.im}; }
TS_HD bool c_eq(Cf a, Cf b) { return a.re == b.re && a.im == b.im; }
TS_HD bool c_isnan(Cf z) { return f_isnan(z.re) || f_isnan(z.im); }
TS_HD bool c_isinf(Cf z) { return f_isinf(z.re) || f_isinf(z.im); }
TS_HD bool c_isfinite(Cf z) { return f_isfinite(z.re) && f_isfinite(z.im); }

/// Annex G's "box" of an operand: an infinite part becomes +-1, the other part +-0.
TS_HD float f_box(float v) { return f_copysign(f_isinf(v) ? 1.0f : 0.0f, v); }
TS_HD float f_nan_to_zero(float v) { return f_isnan(v) ? f_copysign(0.0f, v) : v; }

/// z * w: the plain formula, each product rounded on its own (mul_rn: the device would fuse
/// a product into the following add, the CPU build does not), and when both parts are NaN,
/// __mulsc3's recovery of the infinities Annex G asks for.
TS_HD Cf c_mul(Cf z, Cf w) {
  float a = z.re, b = z.im, c = w.re, d = w.im;
  const float ac = mul_rn(a, c), bd = mul_rn(b, d), ad = mul_rn(a, d), bc = mul_rn(b, c);
  float x = ac - bd, y = ad + bc;
  if (!(f_isnan(x) && f_isnan(y))) return {x, y};
  bool recalc = false;
  if (f_isinf(a) || f_isinf(b)) {  // z infinite: box it, NaNs of w become 0
    a = f_box(a);
    b = f_box(b);
    c = f_nan_to_zero(c);
    d = f_nan_to_zero(d);
    recalc = true;
  }
  if (f_isinf(c) || f_isinf(d)) {  // w infinite: likewise
    c = f_box(c);
    d = f_box(d);
    a = f_nan_to_zero(a);
    b = f_nan_to_zero(b);
    recalc = true;
  }
  if (!recalc && (f_isinf(ac) || f_isinf(bd) || f_isinf(ad) || f_isinf(bc))) {
    a = f_nan_to_zero(a);  // the products overflowed: NaNs become 0
    b = f_nan_to_zero(b);
    c = f_nan_to_zero(c);
    d = f_nan_to_zero(d);
    recalc = true;
  }
  if (recalc) {
    x = INFINITY * (mul_rn(a, c) - mul_rn(b, d));
    y = INFINITY * (mul_rn(a, d) + mul_rn(b, c));
  }
  return {x, y};
}

/// z / w: __divsc3 on a machine with double hardware (x86-64): the plain formula in double,
/// where the products of floats are exact (so a fused multiply-add rounds the same), each part
/// rounded to float once; then the recovery of Annex G's infinities and zeros.
TS_HD Cf c_div(Cf z, Cf w) {
  float a = z.re, b = z.im, c = w.re, d = w.im;
  const double aa = a, bb = b, cc = c, dd = d;
  const double denom = cc * cc + dd * dd;
  float x = static_cast<float>((aa * cc + bb * dd) / denom);
  float y = static_cast<float>((bb * cc - aa * dd) / denom);
  if (!(f_isnan(x) && f_isnan(y))) return {x, y};
  if (c == 0.0f && d == 0.0f && (!f_isnan(a) || !f_isnan(b))) {  // nonzero / zero
    x = f_copysign(INFINITY, c) * a;
    y = f_copysign(INFINITY, c) * b;
  } else if ((f_isinf(a) || f_isinf(b)) && f_isfinite(c) && f_isfinite(d)) {  // inf / finite
    a = f_box(a);
    b = f_box(b);
    x = INFINITY * (mul_rn(a, c) + mul_rn(b, d));
    y = INFINITY * (mul_rn(b, c) - mul_rn(a, d));
  } else if ((f_isinf(c) || f_isinf(d)) && f_isfinite(a) && f_isfinite(b)) {  // finite / inf
    c = f_box(c);
    d = f_box(d);
    // libgcc multiplies by the double 0.0: the float sum is widened, then rounded back.
    x = static_cast<float>(0.0 * static_cast<double>(mul_rn(a, c) + mul_rn(b, d)));
    y = static_cast<float>(0.0 * static_cast<double>(mul_rn(b, c) - mul_rn(a, d)));
  }
  return {x, y};
}

TS_HD Cf c_reciprocal(Cf z) { return c_div({1.0f, 0.0f}, z); }
TS_HD Cf c_square(Cf z) { return c_mul(z, z); }

// ---- functions: glibc's cases, finite values in double ----

/// |z|: glibc's hypotf, sqrt(x^2 + y^2) in double (exact squares, so the CPU's bits), an
/// infinite part giving +inf even beside a NaN.
TS_HD float c_abs(Cf z) {
  const float x = z.re, y = z.im;
  if (!f_isfinite(x) || !f_isfinite(y)) return (f_isinf(x) || f_isinf(y)) ? INFINITY : x + y;
  const double dx = x, dy = y;
  return static_cast<float>(d_sqrt(dx * dx + dy * dy));
}

// glibc's limit of one exp step for double ((DBL_MAX_EXP - 1) ln 2, as an int).
inline constexpr double kExpStep = 709.0;

/// (c, s) * e^r / k for r > kExpStep, beyond double's exp: glibc's steps (e^709 / k, then e^709
/// again, then DBL_MAX), so a zero factor stays a signed zero and the rest overflows.
TS_HD void grow(double r, double k, double& c, double& s) {
  const double step = f_exp(kExpStep);
  r -= kExpStep;
  c *= step / k;
  s *= step / k;
  if (r > kExpStep) {
    r -= kExpStep;
    c *= step;
    s *= step;
  }
  const double e = r > kExpStep ? DBL_MAX : f_exp(r);
  c *= e;
  s *= e;
}

/// e^z: glibc's cexp.
TS_HD Cf c_exp(Cf z) {
  const float x = z.re, y = z.im;
  if (f_isfinite(x)) {
    if (!f_isfinite(y)) return {f_nan(), f_nan()};
    double c = d_cos(static_cast<double>(y)), s = d_sin(static_cast<double>(y));
    if (x > kExpStep) {
      grow(x, 1.0, c, s);
    } else {
      const double e = f_exp(static_cast<double>(x));
      c *= e;
      s *= e;
    }
    return c_round(c, s);
  }
  if (f_isinf(x)) {
    if (f_isfinite(y)) {
      const double v = f_signbit(x) ? 0.0 : static_cast<double>(INFINITY);
      if (y == 0.0f) return {static_cast<float>(v), y};
      return c_round(f_copysign(v, d_cos(static_cast<double>(y))),
                     f_copysign(v, d_sin(static_cast<double>(y))));
    }
    if (!f_signbit(x)) return {INFINITY, y - y};
    return {0.0f, f_copysign(0.0f, y)};
  }
  return {f_nan(), y == 0.0f ? y : f_nan()};  // x is NaN
}

/// log z: glibc's clog; |z| near 1 through log1p of x^2 + y^2 - 1, which double holds exactly
/// enough (its terms are exact products of floats).
TS_HD Cf c_log(Cf z) {
  const float x = z.re, y = z.im;
  if (x == 0.0f && y == 0.0f)
    return {-INFINITY, f_copysign(f_signbit(x) ? 3.14159265358979323846f : 0.0f, y)};
  if (f_isnan(x) || f_isnan(y)) return {(f_isinf(x) || f_isinf(y)) ? INFINITY : f_nan(), f_nan()};
  double ax = f_abs(static_cast<double>(x)), ay = f_abs(static_cast<double>(y));
  if (ax < ay) {
    const double t = ax;
    ax = ay;
    ay = t;
  }
  double re;
  if (ax == 1.0)
    re = f_log1p(ay * ay) / 2;
  else if ((ax > 1.0 && ax < 2.0 && ay < 1.0) ||
           (ax < 1.0 && ax >= 0.5 && ax * ax + ay * ay >= 0.5))
    re = f_log1p((ax - 1.0) * (ax + 1.0) + ay * ay) / 2;
  else
    re = d_log(ax * ax + ay * ay) / 2;  // never overflows or underflows in double
  return c_round(re, d_atan2(static_cast<double>(y), static_cast<double>(x)));
}

/// sqrt z: glibc's csqrt (the principal root; the imaginary part takes y's sign).
TS_HD Cf c_sqrt(Cf z) {
  const float x = z.re, y = z.im;
  if (!f_isfinite(x) || !f_isfinite(y)) {
    if (f_isinf(y)) return {INFINITY, y};
    if (f_isinf(x)) {
      if (x < 0.0f) return {f_isnan(y) ? f_nan() : 0.0f, f_copysign(INFINITY, y)};
      return {x, f_isnan(y) ? f_nan() : f_copysign(0.0f, y)};
    }
    return {f_nan(), f_nan()};
  }
  if (y == 0.0f) {
    if (x < 0.0f) return {0.0f, f_copysign(static_cast<float>(d_sqrt(-static_cast<double>(x))), y)};
    return {f_abs(static_cast<float>(d_sqrt(static_cast<double>(x)))), f_copysign(0.0f, y)};
  }
  if (x == 0.0f) {
    const float r = static_cast<float>(d_sqrt(0.5 * f_abs(static_cast<double>(y))));
    return {r, f_copysign(r, y)};
  }
  // 2 Re Im = y avoids the cancellation in d -+ x.
  const double dx = x, dy = y, d = d_sqrt(dx * dx + dy * dy);
  double r, s;
  if (dx > 0) {
    r = d_sqrt(0.5 * (d + dx));
    s = 0.5 * (dy / r);
  } else {
    s = d_sqrt(0.5 * (d - dx));
    r = f_abs(0.5 * (dy / s));
  }
  return {static_cast<float>(r), f_copysign(static_cast<float>(s), y)};
}

/// cosh z: glibc's ccosh (cos z is cosh(i z), as glibc computes it).
TS_HD Cf c_cosh(Cf z) {
  const float x = z.re, y = z.im;
  if (f_isfinite(x)) {
    if (!f_isfinite(y)) return {y - y, x == 0.0f ? 0.0f : f_nan()};
    double s = d_sin(static_cast<double>(y)), c = d_cos(static_cast<double>(y));
    const double ax = f_abs(static_cast<double>(x));
    if (ax > kExpStep) {
      if (f_signbit(x)) s = -s;
      grow(ax, 2.0, c, s);
    } else {
      c *= f_cosh(static_cast<double>(x));
      s *= f_sinh(static_cast<double>(x));
    }
    return c_round(c, s);
  }
  if (f_isinf(x)) {
    if (f_isfinite(y) && y != 0.0f) {
      const double s = d_sin(static_cast<double>(y)), c = d_cos(static_cast<double>(y));
      return c_round(f_copysign(static_cast<double>(INFINITY), c),
                     f_copysign(static_cast<double>(INFINITY), s) * (f_signbit(x) ? -1.0 : 1.0));
    }
    if (y == 0.0f) return {INFINITY, y * f_copysign(1.0f, x)};
    return {INFINITY, y - y};
  }
  return {f_nan(), y == 0.0f ? y : f_nan()};  // x is NaN
}
TS_HD Cf c_cos(Cf z) { return c_cosh({-z.im, z.re}); }

/// sin z: glibc's csin.
TS_HD Cf c_sin(Cf z) {
  const bool negate = f_signbit(z.re);
  const float x = f_abs(z.re), y = z.im;
  if (f_isfinite(y)) {
    if (!f_isfinite(x)) {
      if (y == 0.0f) return {x - x, y};
      return {f_nan(), f_nan()};
    }
    double s = d_sin(static_cast<double>(x)), c = d_cos(static_cast<double>(x));
    if (negate) s = -s;
    const double ay = f_abs(static_cast<double>(y));
    if (ay > kExpStep) {
      if (f_signbit(y)) c = -c;
      grow(ay, 2.0, s, c);
    } else {
      s *= f_cosh(static_cast<double>(y));
      c *= f_sinh(static_cast<double>(y));
    }
    return c_round(s, c);
  }
  const float zero = negate ? -0.0f : 0.0f;
  if (f_isinf(y)) {
    if (x == 0.0f) return {zero, y};
    if (f_isfinite(x)) {
      const double s = d_sin(static_cast<double>(x)), c = d_cos(static_cast<double>(x));
      float re = static_cast<float>(f_copysign(static_cast<double>(INFINITY), s));
      float im = static_cast<float>(f_copysign(static_cast<double>(INFINITY), c));
      if (negate) re = -re;
      if (f_signbit(y)) im = -im;
      return {re, im};
    }
    return {x - x, INFINITY};
  }
  return {x == 0.0f ? zero : f_nan(), f_nan()};  // y is NaN
}

/// x^w: glibc's cpow, exp(w * log x), with its float roundings in between.
TS_HD Cf c_pow(Cf x, Cf w) { return c_exp(c_mul(w, c_log(x))); }

}  // namespace TS_FN_NS
}  // namespace tessera::cuda::fn

