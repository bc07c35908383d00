// CPU kernels of the reduce family, part 1: sum, mean, prod, norm, all, any (accumulating
// reductions). Min/max-like and statistical reductions live in reduce_minmax.cpp, scans and
// softmax in scan_softmax.cpp. All share the driver in reduce_driver.h.
#include <cmath>
#include <complex>
#include <limits>

#include "backends/cpu/reduce_driver.h"
#include "backends/cpu/reduce_simd.h"

namespace tessera::cpu {
namespace {

// sum and mean (mean divides by the slice length; an empty mean is 0/0 = NaN, like PyTorch).
template <class T>
struct SumOp {
  using A = SumAcc<T>;
  OutWriter<SumOut<T>> out;
  bool mean = false;
  int64_t n = 1;

  A init() const { return A{}; }
  void add(A& a, T v, int64_t) const { a += widen(v); }
  void combine(A& a, const A& b) const { a += b; }
  void row(A& a, const char* p, int64_t s, int64_t len, int64_t) const {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      if (s == static_cast<int64_t>(sizeof(T))) {
        const T* q = reinterpret_cast<const T*>(p);
        if constexpr (std::is_same_v<T, float>)
          a += simd_sum_f32(q, len);
        else
          a += simd_sum_f64(q, len);
        return;
      }
    }
    for (int64_t i = 0; i < len; ++i) a += widen(*reinterpret_cast<const T*>(p + i * s));
  }
  void finish(const A& a, int64_t o) const {
    if constexpr (std::is_integral_v<T>)
      out.put(o, narrow<T>(a));
    else
      out.put(o, narrow<T>(mean ? a / static_cast<double>(n) : a));
  }
};

template <class T>
struct ProdOp {
  using A = SumAcc<T>;
  OutWriter<SumOut<T>> out;

  A init() const { return A{1}; }
  void add(A& a, T v, int64_t) const { a *= widen(v); }
  void combine(A& a, const A& b) const { a *= b; }
  void finish(const A& a, int64_t o) const { out.put(o, narrow<T>(a)); }
};

template <class T>
inline bool nonzero(T v) {
  if constexpr (kComplex<T>)
    return v != Complex64(0, 0);
  else
    return static_cast<compute_t<T>>(v) != compute_t<T>(0);
}

// all (identity true) and any (identity false); NaN counts as non-zero.
template <class T>
struct LogicalOp {
  using A = bool;
  OutWriter<int64_t> out;
  bool is_all = true;

  A init() const { return is_all; }
  void add(A& a, T v, int64_t) const { a = is_all ? (a && nonzero(v)) : (a || nonzero(v)); }
  void combine(A& a, const A& b) const { a = is_all ? (a && b) : (a || b); }
  void finish(const A& a, int64_t o) const { out.put(o, a ? 1 : 0); }
};

// Vector p-norm of |x| (complex: modulus), computed in double.
enum class NormKind : uint8_t { Zero, One, Two, Inf, NegInf, General };

template <class T>
struct NormOp {
  using A = double;
  OutWriter<double> out;
  NormKind kind = NormKind::Two;
  double p = 2;

  static double mag(T v) {
    if constexpr (kComplex<T>)
      return std::abs(std::complex<double>(v.real(), v.imag()));
    else
      return std::abs(static_cast<double>(static_cast<compute_t<T>>(v)));
  }
  A init() const {
    if (kind == NormKind::Inf) return -std::numeric_limits<double>::infinity();
    if (kind == NormKind::NegInf) return std::numeric_limits<double>::infinity();
    return 0;
  }
  // max/min keep NaN once seen (NaN compares false, so it is never replaced).
  void fold(A& a, double m) const {
    switch (kind) {
      case NormKind::Zero:
        a += m != 0 ? 1 : 0;
        break;
      case NormKind::One:
        a += m;
        break;
      case NormKind::Two:
        a += m * m;
        break;
      case NormKind::Inf:
        a = (std::isnan(m) || m > a) ? m : a;
        break;
      case NormKind::NegInf:
        a = (std::isnan(m) || m < a) ? m : a;
        break;
      case NormKind::General:
        a += std::pow(m, p);
        break;
    }
  }
  void add(A& a, T v, int64_t) const { fold(a, mag(v)); }
  void combine(A& a, const A& b) const {
    if (kind == NormKind::Inf || kind == NormKind::NegInf)
      fold(a, b);
    else
      a += b;
  }
  void finish(const A& a, int64_t o) const {
    double r = a;
    if (kind == NormKind::Two)
      r = std::sqrt(a);
    else if (kind == NormKind::General)
      r = std::pow(a, 1.0 / p);
    out.put(o, r);
  }
};

NormKind norm_kind(double p) {
  if (p == 0) return NormKind::Zero;
  if (p == 1) return NormKind::One;
  if (p == 2) return NormKind::Two;
  if (std::isinf(p)) return p > 0 ? NormKind::Inf : NormKind::NegInf;
  return NormKind::General;
}

void sum_like(Inputs in, Outputs out, const Attrs& a, bool mean, std::string_view op) {
  const ReduceGeom g = reduce_geom(in[0], a, op);
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    run_reduce<T>(g, SumOp<T>{OutWriter<SumOut<T>>(out[0]), mean, g.n_red});
  });
}
void sum_kernel(Inputs in, Outputs out, const Attrs& a) { sum_like(in, out, a, false, "sum"); }
void mean_kernel(Inputs in, Outputs out, const Attrs& a) { sum_like(in, out, a, true, "mean"); }

void prod_kernel(Inputs in, Outputs out, const Attrs& a) {
  const ReduceGeom g = reduce_geom(in[0], a, "prod");
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    run_reduce<T>(g, ProdOp<T>{OutWriter<SumOut<T>>(out[0])});
  });
}

void logical_kernel(Inputs in, Outputs out, const Attrs& a, bool is_all) {
  const ReduceGeom g = reduce_geom(in[0], a, is_all ? "all" : "any");
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    run_reduce<T>(g, LogicalOp<T>{OutWriter<int64_t>(out[0]), is_all});
  });
}
void all_kernel(Inputs in, Outputs out, const Attrs& a) { logical_kernel(in, out, a, true); }
void any_kernel(Inputs in, Outputs out, const Attrs& a) { logical_kernel(in, out, a, false); }

void norm_kernel(Inputs in, Outputs out, const Attrs& a) {
  const ReduceGeom g = reduce_geom(in[0], a, "norm");
  const double p = a.get<double>("p");
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_integral_v<T>) {
      fail<DTypeError>("norm", "expects a floating point or complex input, got {}",
                       dtype_name(in[0].dtype()));
    } else {
      run_reduce<T>(g, NormOp<T>{OutWriter<double>(out[0]), norm_kind(p), p});
    }
  });
}

}  // namespace

void register_reduce_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"sum", sum_kernel},
                         {"mean", mean_kernel},
                         {"prod", prod_kernel},
                         {"all", all_kernel},
                         {"any", any_kernel},
                         {"norm", norm_kernel}})
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
  register_reduce_minmax_kernels(r);
  register_scan_softmax_kernels(r);
  register_layer_norm_kernels(r);
}

}  // namespace tessera::cpu
