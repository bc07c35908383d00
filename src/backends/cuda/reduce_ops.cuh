#pragma once
// The per-element logic of the reductions in reduce_int.cu, reduce_stats.cu and the scans of
// scan.cu, as __host__ __device__ code free of CUDA intrinsics: the kernels only load, combine
// across threads and store, so these functions can be (and were) checked on the host against
// the CPU kernels (backends/cpu/reduce*.cpp), special values included.
//
// An op reduces values of type V (long long for bool and the integers, double for the floats:
// the CPU's exact widening) into an accumulator A (trivially constructible: it lives in shared
// memory and is shuffled word by word):
//   A init(V first)   the identity; `first` is the row's element 0 (0 for an empty row)
//   A fold(A, V)      one element
//   A combine(A, A)   two partial results (commutative here)
//   R finish(A)       the result, converted to the output dtype by the kernel
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "backends/cuda/host_device.h"

namespace tessera::cuda::k::ops {

TS_HD bool finite(double x) { return x - x == 0; }  // false for inf and NaN
TS_HD float ts_exp(float x) { return expf(x); }
TS_HD double ts_exp(double x) { return exp(x); }

// ---- bool and integers (the CPU's int64 accumulation, wrapping like its uint64) ----

struct IntSum {
  using V = long long;
  using A = unsigned long long;
  TS_HD A init(V) const { return 0; }
  TS_HD A fold(A a, V x) const { return a + static_cast<A>(x); }
  TS_HD A combine(A a, A b) const { return a + b; }
  TS_HD long long finish(A a) const { return static_cast<long long>(a); }
};
struct IntProd {
  using V = long long;
  using A = unsigned long long;
  TS_HD A init(V) const { return 1; }
  TS_HD A fold(A a, V x) const { return a * static_cast<A>(x); }
  TS_HD A combine(A a, A b) const { return a * b; }
  TS_HD long long finish(A a) const { return static_cast<long long>(a); }
};
/// amax / amin of integers, compared exactly as int64 (the result is one of the elements).
template <bool kMax>
struct IntExtreme {
  using V = long long;
  using A = long long;
  TS_HD A init(V) const { return kMax ? INT64_MIN : INT64_MAX; }
  TS_HD A fold(A a, V x) const { return (kMax ? x > a : x < a) ? x : a; }
  TS_HD A combine(A a, A b) const { return fold(a, b); }
  TS_HD long long finish(A a) const { return a; }
};

// ---- floats: accumulated in double, like the CPU ----

struct Prod {
  using V = double;
  using A = double;
  TS_HD A init(V) const { return 1; }
  TS_HD A fold(A a, V x) const { return a * x; }
  TS_HD A combine(A a, A b) const { return a * b; }
  TS_HD double finish(A a) const { return a; }
};

/// var / std: sums of x - shift and of its square in double, shift = the row's first element
/// (when finite), so the subtraction in finish loses nothing for data with a large mean: with
/// float inputs the terms are exact in double. Division-free per element, unlike Welford.
/// Any inf or NaN makes the result NaN (inf - inf), as the CPU's Welford does.
struct Var {
  using V = double;
  struct A {
    double n, s1, s2, shift;
  };
  double correction;
  bool take_sqrt;
  TS_HD A init(V first) const { return {0, 0, 0, finite(first) ? first : 0}; }
  TS_HD A fold(A a, V x) const {
    const double d = x - a.shift;
    return {a.n + 1, a.s1 + d, a.s2 + d * d, a.shift};
  }
  // Every partial of a row has the row's shift.
  TS_HD A combine(A a, A b) const { return {a.n + b.n, a.s1 + b.s1, a.s2 + b.s2, a.shift}; }
  // PyTorch's divisor max(0, N - correction): 0/0 gives NaN, x/0 inf.
  TS_HD double finish(A a) const {
    double m2 = a.n > 0 ? a.s2 - a.s1 * (a.s1 / a.n) : 0;
    if (m2 < 0) m2 = 0;  // rounding of nearly equal values; a NaN stays
    // Finite float64 data whose squares overflow (|x| > 1e154): inf, as the CPU's Welford gives.
    if (!finite(a.s2) && finite(a.s1)) m2 = INFINITY;
    const double den = a.n - correction;
    const double v = m2 / (den > 0 ? den : 0);
    return take_sqrt ? sqrt(v) : v;
  }
};

/// log(sum(exp(x))) as a running (max, sum of exp(x - max)) pair, merged as the CPU's
/// LogSumExpOp: -inf terms add nothing, an all -inf (or empty) row gives -inf, +inf gives +inf,
/// NaN wins. Sums in double; exp evaluated in E (float for the 16-bit floats and float32: each
/// term within an ulp of float, far below the output's rounding; double for float64).
template <class E>
struct LogSumExp {
  using V = double;
  struct A {
    double m, s;
    long long nan;
  };
  TS_HD static double ex(double d) { return static_cast<double>(ts_exp(static_cast<E>(d))); }
  TS_HD static A merge(A a, double m, double s) {
    if (s == 0) return a;
    if (m == a.m) {
      a.s += s;  // also covers equal infinities
    } else if (m > a.m) {
      a.s = a.s * ex(a.m - m) + s;
      a.m = m;
    } else {
      a.s += s * ex(m - a.m);
    }
    return a;
  }
  TS_HD A init(V) const { return {-INFINITY, 0, 0}; }
  TS_HD A fold(A a, V x) const {
    if (x != x) {
      a.nan = 1;
      return a;
    }
    return x == -INFINITY ? a : merge(a, x, 1.0);
  }
  TS_HD A combine(A a, A b) const {
    a.nan |= b.nan;
    return merge(a, b.m, b.s);
  }
  TS_HD double finish(A a) const {
    if (a.nan) return NAN;
    return finite(a.m) ? a.m + log(a.s) : a.m;
  }
};

/// The CPU's NormKind: p = 0 counts non-zeros (NaN counts), +-inf are max/min of |x| (NaN
/// wins), otherwise (sum |x|^p)^(1/p), all in double.
enum NormKind : int { kNormZero, kNormOne, kNormTwo, kNormInf, kNormNegInf, kNormGeneral };
inline NormKind norm_kind(double p) {
  if (p == 0) return kNormZero;
  if (p == 1) return kNormOne;
  if (p == 2) return kNormTwo;
  if (p == INFINITY) return kNormInf;
  if (p == -INFINITY) return kNormNegInf;
  return kNormGeneral;
}
struct Norm {
  using V = double;
  using A = double;
  int kind;
  double p;
  TS_HD A init(V) const {
    return kind == kNormInf ? -INFINITY : kind == kNormNegInf ? INFINITY : 0.0;
  }
  // m: a magnitude, or (combine) another partial.
  TS_HD A add(A a, double m) const {
    switch (kind) {
      case kNormZero:
        return a + (m != 0 ? 1 : 0);
      case kNormOne:
        return a + m;
      case kNormTwo:
        return a + m * m;
      case kNormInf:
        return (m != m || m > a) ? m : a;
      case kNormNegInf:
        return (m != m || m < a) ? m : a;
      default:
        return a + pow(m, p);
    }
  }
  TS_HD A fold(A a, V x) const { return add(a, fabs(x)); }
  TS_HD A combine(A a, A b) const {
    return kind == kNormInf || kind == kNormNegInf ? add(a, b) : a + b;
  }
  TS_HD double finish(A a) const {
    return kind == kNormTwo ? sqrt(a) : kind == kNormGeneral ? pow(a, 1.0 / p) : a;
  }
};

// ---- max / min with the first index (argreduce.cu) ----

template <class A>
TS_HD bool is_nan(A v) {
  if constexpr (std::is_floating_point_v<A>)
    return v != v;
  else
    return false;
}
/// Whether (v, i) beats (c, ci) (an index < 0 is "nothing yet"): a NaN beats any number, the
/// extreme wins, and among equals (NaNs too) the first index, the CPU's rule. Any order of
/// combination gives the same result.
template <bool kMax, class A>
TS_HD bool better(A v, int64_t i, A c, int64_t ci) {
  if (i < 0) return false;
  if (ci < 0) return true;
  const bool vn = is_nan(v), cn = is_nan(c);
  if (vn || cn) return vn && (!cn || i < ci);
  if (v == c) return i < ci;
  return kMax ? v > c : v < c;
}

// ---- scans: the CPU's accumulators (uint64 wrapping for integers, double for floats) ----

template <class A, bool kProd>
struct Scan {
  TS_HD static A identity() { return kProd ? A(1) : A(0); }
  TS_HD static A op(A a, A b) { return kProd ? a * b : a + b; }
};

}  // namespace tessera::cuda::k::ops
