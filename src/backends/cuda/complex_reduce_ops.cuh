#pragma once
// The per-element logic of the complex64 reductions (reduce_complex.cu) and scans (scan.cu), in
// the shape of reduce_ops.cuh's ops. The CPU (backends/cpu/reduce.cpp, scan_softmax.cpp,
// reduce_driver.h) accumulates complex64 in std::complex<double> and rounds each part to float
// once at the end, so these do too:
//
// - sums add the parts in double; mean divides the double sum by n (complex<double> / double
//   divides each part; 0 / 0 gives NaN + NaN i for an empty mean);
// - products are g++'s complex<double> product: the plain formula, and libgcc's __muldc3
//   recovery of Annex G's infinities when both parts come out NaN (complex_rules.cuh's c_mul,
//   in double);
// - norm takes |z| in double (the CPU's abs of a complex<double>, glibc's hypot: an infinite
//   part gives +inf even beside a NaN) and then reduce_ops.cuh's Norm, the CPU's NormOp.
//
// Host-compilable like reduce_ops.cuh (with the CUDA include dir), so the ops can be checked
// against std::complex<double> on the host.
#include "backends/cuda/complex_rules.cuh"
#include "backends/cuda/reduce_ops.cuh"

namespace tessera::cuda::k::ops {

/// complex<double>, the CPU's accumulator (16 bytes: shuffled as two 8-byte words).
struct alignas(16) Zd {
  double re, im;
};

TS_HD Zd z_widen(fn::Cf z) { return {static_cast<double>(z.re), static_cast<double>(z.im)}; }
TS_HD fn::Cf z_narrow(Zd a) { return {static_cast<float>(a.re), static_cast<float>(a.im)}; }
TS_HD Zd z_add(Zd a, Zd b) { return {a.re + b.re, a.im + b.im}; }

TS_HD bool d_isnan(double x) { return x != x; }
TS_HD bool d_isinf(double x) { return x == INFINITY || x == -INFINITY; }
/// Annex G's "box" of an infinite operand's part (+-1 or +-0) and its NaN -> +-0.
TS_HD double d_box(double v) { return copysign(d_isinf(v) ? 1.0 : 0.0, v); }
TS_HD double d_nan_to_zero(double v) { return d_isnan(v) ? copysign(0.0, v) : v; }

/// z * w as g++ computes a complex<double> product: each product rounded on its own (never
/// fused; the CPU build has no FMA contraction), and __muldc3's recovery when both parts are NaN.
TS_HD Zd z_mul(Zd z, Zd w) {
  double a = z.re, b = z.im, c = w.re, d = w.im;
  const double ac = fn::mul_rn(a, c), bd = fn::mul_rn(b, d), ad = fn::mul_rn(a, d),
               bc = fn::mul_rn(b, c);
  double x = ac - bd, y = ad + bc;
  if (!(d_isnan(x) && d_isnan(y))) return {x, y};
  bool recalc = false;
  if (d_isinf(a) || d_isinf(b)) {  // z infinite: box it, NaNs of w become 0
    a = d_box(a);
    b = d_box(b);
    c = d_nan_to_zero(c);
    d = d_nan_to_zero(d);
    recalc = true;
  }
  if (d_isinf(c) || d_isinf(d)) {  // w infinite: likewise
    c = d_box(c);
    d = d_box(d);
    a = d_nan_to_zero(a);
    b = d_nan_to_zero(b);
    recalc = true;
  }
  if (!recalc && (d_isinf(ac) || d_isinf(bd) || d_isinf(ad) || d_isinf(bc))) {
    a = d_nan_to_zero(a);  // the products overflowed: NaNs become 0
    b = d_nan_to_zero(b);
    c = d_nan_to_zero(c);
    d = d_nan_to_zero(d);
    recalc = true;
  }
  if (recalc) {
    x = INFINITY * (fn::mul_rn(a, c) - fn::mul_rn(b, d));
    y = INFINITY * (fn::mul_rn(a, d) + fn::mul_rn(b, c));
  }
  return {x, y};
}

/// |z| in double: the squares of float parts are exact in double and cannot overflow or
/// underflow, so sqrt(x^2 + y^2) rounds twice where hypot rounds once (within an ulp of double,
/// far below the float32 output's rounding). Infinity wins over NaN, as in hypot.
TS_HD double z_abs(fn::Cf z) {
  const double x = z.re, y = z.im;
  if (d_isinf(x) || d_isinf(y)) return INFINITY;
  return sqrt(fn::mul_rn(x, x) + fn::mul_rn(y, y));  // NaN stays NaN
}

/// sum (mean: divided by n) of complex64, written as complex64.
struct ZSum {
  using V = fn::Cf;
  using A = Zd;
  bool mean;
  double n;
  TS_HD A init(V) const { return {0.0, 0.0}; }
  TS_HD A fold(A a, V x) const { return z_add(a, z_widen(x)); }
  TS_HD A combine(A a, A b) const { return z_add(a, b); }
  TS_HD fn::Cf finish(A a) const { return z_narrow(mean ? Zd{a.re / n, a.im / n} : a); }
};

/// prod of complex64 (complex multiplication commutes bit for bit, so the order of the partial
/// products changes only their roundings).
struct ZProd {
  using V = fn::Cf;
  using A = Zd;
  TS_HD A init(V) const { return {1.0, 0.0}; }
  TS_HD A fold(A a, V x) const { return z_mul(a, z_widen(x)); }
  TS_HD A combine(A a, A b) const { return z_mul(a, b); }
  TS_HD fn::Cf finish(A a) const { return z_narrow(a); }
};

/// p-norm of the moduli, Norm's rules (written as float32 by the kernel).
struct ZNorm {
  using V = fn::Cf;
  using A = double;
  Norm norm;
  TS_HD A init(V) const { return norm.init(0.0); }
  TS_HD A fold(A a, V x) const { return norm.add(a, z_abs(x)); }
  TS_HD A combine(A a, A b) const { return norm.combine(a, b); }
  TS_HD double finish(A a) const { return norm.finish(a); }
};

/// cumsum / cumprod of complex64: scan.cu's accumulator rules for complex<double>.
template <bool kProd>
struct Scan<Zd, kProd> {
  TS_HD static Zd identity() { return {kProd ? 1.0 : 0.0, 0.0}; }
  TS_HD static Zd op(Zd a, Zd b) { return kProd ? z_mul(a, b) : z_add(a, b); }
};

}  // namespace tessera::cuda::k::ops

