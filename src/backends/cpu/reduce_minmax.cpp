// CPU kernels of the reduce family, part 2: amax/amin, max/min along a dim with indices,
// argmax/argmin, var/std (Welford) and logsumexp (online max-rescaled sum).
#include <cmath>
#include <limits>

#include "backends/cpu/reduce_driver.h"

namespace tessera::cpu {
namespace {

// Values of ordered types: ints compare exactly in int64, floats in double (both exact).
template <class T>
using Ordered = std::conditional_t<std::is_integral_v<T>, int64_t, double>;

template <class T>
inline Ordered<T> ordered(T v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(v);
  else
    return static_cast<double>(static_cast<compute_t<T>>(v));
}

template <class V>
inline bool is_nan(V v) {
  if constexpr (std::is_floating_point_v<V>)
    return std::isnan(v);
  else
    return false;
}

// Max or min with the index of its first occurrence. NaN wins (and stays), like PyTorch; ties
// keep the earlier index because only a strictly better value replaces the current one.
template <class T, bool kMax>
struct ExtremeOp {
  struct A {
    Ordered<T> v{};
    int64_t i = -1;  // -1 = nothing seen yet
  };
  OutWriter<Ordered<T>> values;  // base null: no values output
  int64_t* indices = nullptr;    // null: no index output

  static bool better(Ordered<T> v, Ordered<T> cur) {
    if constexpr (kMax)
      return v > cur || (is_nan(v) && !is_nan(cur));
    else
      return v < cur || (is_nan(v) && !is_nan(cur));
  }
  A init() const { return {}; }
  void add(A& a, T x, int64_t i) const {
    const Ordered<T> v = ordered(x);
    if (a.i < 0 || better(v, a.v)) a = {v, i};
  }
  void combine(A& a, const A& b) const {
    if (b.i >= 0 && (a.i < 0 || better(b.v, a.v))) a = b;
  }
  void finish(const A& a, int64_t o) const {
    if (values.base) values.put(o, a.v);
    if (indices) indices[o] = a.i;
  }
};

// Welford's running mean and sum of squared deviations, merged with Chan's formula: stable
// for data with a large mean (no catastrophic cancellation as in E[x^2] - E[x]^2). Values are
// also shifted by the slice's first value, so a mean of 1e8 costs no digits at all.
template <class T>
struct VarOp {
  struct A {
    double n = 0, mean = 0, m2 = 0, shift = 0;  // mean of (x - shift)
  };
  OutWriter<double> out;
  int64_t correction = 1;
  bool take_sqrt = false;

  A init() const { return {}; }
  void add(A& a, T x, int64_t) const {
    double v = static_cast<double>(static_cast<compute_t<T>>(x));
    if (a.n == 0 && std::isfinite(v)) a.shift = v;
    v -= a.shift;
    a.n += 1;
    const double d = v - a.mean;
    a.mean += d / a.n;
    a.m2 += d * (v - a.mean);
  }
  void combine(A& a, const A& b) const {
    if (b.n == 0) return;
    if (a.n == 0) {
      a = b;
      return;
    }
    const double n = a.n + b.n, d = (b.shift - a.shift) + (b.mean - a.mean);
    a.mean += d * b.n / n;
    a.m2 += b.m2 + d * d * a.n * b.n / n;
    a.n = n;
  }
  // PyTorch: divide by max(0, N - correction); 0/0 gives NaN, x/0 gives inf.
  void finish(const A& a, int64_t o) const {
    const double v = a.m2 / std::max(0.0, a.n - static_cast<double>(correction));
    out.put(o, take_sqrt ? std::sqrt(v) : v);
  }
};

// log(sum(exp(x))) as a running (max, sum of exp(x - max)) pair, so nothing overflows.
// -inf terms add nothing; an all -inf (or empty) slice gives -inf; +inf gives +inf; NaN wins.
template <class T>
struct LogSumExpOp {
  struct A {
    double m = -std::numeric_limits<double>::infinity();
    double s = 0;
    bool nan = false;
  };
  OutWriter<double> out;

  static void merge(A& a, double m, double s) {
    if (s == 0) return;
    if (m == a.m)
      a.s += s;  // also covers equal infinities
    else if (m > a.m) {
      a.s = a.s * std::exp(a.m - m) + s;
      a.m = m;
    } else {
      a.s += s * std::exp(m - a.m);
    }
  }
  A init() const { return {}; }
  void add(A& a, T x, int64_t) const {
    const double v = static_cast<double>(ordered(x));
    if (std::isnan(v))
      a.nan = true;
    else if (v != -std::numeric_limits<double>::infinity())
      merge(a, v, 1.0);
  }
  void combine(A& a, const A& b) const {
    a.nan = a.nan || b.nan;
    merge(a, b.m, b.s);
  }
  void finish(const A& a, int64_t o) const {
    double r = a.m;
    if (a.nan)
      r = std::numeric_limits<double>::quiet_NaN();
    else if (std::isfinite(a.m))
      r = a.m + std::log(a.s);
    out.put(o, r);
  }
};

template <bool kMax>
void extreme(Inputs in, Outputs out, const Attrs& a, std::string_view op, bool values,
             bool indices) {
  const ReduceGeom g = reduce_geom(in[0], a, op);
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, Complex64>) {
      fail<DTypeError>(op, "is not defined for complex input");
    } else {
      ExtremeOp<T, kMax> e;
      if (values) e.values = OutWriter<Ordered<T>>(out[0]);
      if (indices) e.indices = out[values ? 1 : 0].data_ptr<int64_t>();
      run_reduce<T>(g, e);
    }
  });
}

void amax_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<true>(in, out, a, "amax", true, false);
}
void amin_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<false>(in, out, a, "amin", true, false);
}
void max_dim_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<true>(in, out, a, "max_dim", true, true);
}
void min_dim_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<false>(in, out, a, "min_dim", true, true);
}
void argmax_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<true>(in, out, a, "argmax", false, true);
}
void argmin_kernel(Inputs in, Outputs out, const Attrs& a) {
  extreme<false>(in, out, a, "argmin", false, true);
}

void var_like(Inputs in, Outputs out, const Attrs& a, bool take_sqrt) {
  const std::string_view op = take_sqrt ? "std" : "var";
  const ReduceGeom g = reduce_geom(in[0], a, op);
  const int64_t correction = a.get_or<int64_t>("correction", 1);
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_integral_v<T> || std::is_same_v<T, Complex64>) {
      fail<NotImplementedError>(op, "{} input is not supported", dtype_name(in[0].dtype()));
    } else {
      run_reduce<T>(g, VarOp<T>{OutWriter<double>(out[0]), correction, take_sqrt});
    }
  });
}
void var_kernel(Inputs in, Outputs out, const Attrs& a) { var_like(in, out, a, false); }
void std_kernel(Inputs in, Outputs out, const Attrs& a) { var_like(in, out, a, true); }

void logsumexp_kernel(Inputs in, Outputs out, const Attrs& a) {
  const ReduceGeom g = reduce_geom(in[0], a, "logsumexp");
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, Complex64>) {
      fail<NotImplementedError>("logsumexp", "complex input is not supported yet");
    } else {
      run_reduce<T>(g, LogSumExpOp<T>{OutWriter<double>(out[0])});
    }
  });
}

}  // namespace

void register_reduce_minmax_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"amax", amax_kernel},
                         {"amin", amin_kernel},
                         {"max_dim", max_dim_kernel},
                         {"min_dim", min_dim_kernel},
                         {"argmax", argmax_kernel},
                         {"argmin", argmin_kernel},
                         {"var", var_kernel},
                         {"std", std_kernel},
                         {"logsumexp", logsumexp_kernel}})
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
}

}  // namespace tessera::cpu
