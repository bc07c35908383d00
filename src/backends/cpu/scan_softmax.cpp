// CPU kernels of the reduce family, part 3: operations along one dim whose output is shaped
// like the input: cumsum, cumprod, softmax, log_softmax. Each "lane" (all elements along the
// dim for one position of the other dims) is processed by one call; lanes run in parallel.
#include <cmath>
#include <limits>

#include "backends/cpu/reduce_driver.h"

namespace tessera::cpu {
namespace {

struct Lane {
  const char* in;
  char* out;
  int64_t in_stride, out_stride, n;  // strides in bytes
};

// Calls f(Lane) for every lane of x along dim, writing into out (same shape).
template <class F>
void for_each_lane(const Tensor& x, const Tensor& out, int64_t dim, std::string_view op, F&& f) {
  const int64_t d = wrap_dim(dim, x.dim(), op);
  Shape shape = x.shape();
  int64_t n = 1, is = 0, os = 0;
  const auto ii = static_cast<int64_t>(x.itemsize()), oi = static_cast<int64_t>(out.itemsize());
  if (x.dim() > 0) {
    n = shape[d];
    is = x.strides()[d] * ii;
    os = out.strides()[d] * oi;
    shape[d] = 1;  // the plan iterates over lane starts
  }
  auto plan =
      make_plan<2>(shape, {static_cast<char*>(out.raw_data()), static_cast<char*>(x.raw_data())},
                   {out.strides().data(), x.strides().data()}, {oi, ii}, op);
  if (n == 0 || plan.numel == 0) return;
  parallel_for(plan.numel, std::max<int64_t>(1, kParallelGrain / n), [&](int64_t b, int64_t e) {
    run_plan(plan, b, e, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t rows) {
      for (int64_t i = 0; i < rows; ++i) f(Lane{p[1] + i * s[1], p[0] + i * s[0], is, os, n});
    });
  });
}

template <class T>
inline T at(const Lane& l, int64_t i) {
  return *reinterpret_cast<const T*>(l.in + i * l.in_stride);
}
template <class O>
inline O& out_at(const Lane& l, int64_t i) {
  return *reinterpret_cast<O*>(l.out + i * l.out_stride);
}

// Running sum/product in the wide accumulator (wrapping for ints, double for floats).
template <bool kProd>
void scan_kernel(Inputs in, Outputs out, const Attrs& a) {
  const std::string_view op = kProd ? "cumprod" : "cumsum";
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using O = std::conditional_t<std::is_integral_v<T>, int64_t, T>;
    if (out[0].dtype() != dtype_v<O>)
      fail<DTypeError>(op, "output dtype {} does not match input dtype {}",
                       dtype_name(out[0].dtype()), dtype_name(in[0].dtype()));
    for_each_lane(in[0], out[0], a.get<int64_t>("dim"), op, [](const Lane& l) {
      SumAcc<T> acc{kProd ? 1 : 0};
      for (int64_t i = 0; i < l.n; ++i) {
        if constexpr (kProd)
          acc *= widen(at<T>(l, i));
        else
          acc += widen(at<T>(l, i));
        out_at<O>(l, i) = convert<O>(narrow<T>(acc));
      }
    });
  });
}

// Max-subtracted softmax in double. Special values follow from plain arithmetic exactly as in
// PyTorch: a lane of all -inf gives (-inf) - (-inf) = NaN; +inf likewise gives NaN; a NaN max
// makes the lane NaN.
template <bool kLog>
void softmax_kernel(Inputs in, Outputs out, const Attrs& a) {
  const std::string_view op = kLog ? "log_softmax" : "softmax";
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_integral_v<T> || kComplex<T>) {
      fail<DTypeError>(op, "expects a floating point input, got {}", dtype_name(in[0].dtype()));
    } else {
      for_each_lane(in[0], out[0], a.get<int64_t>("dim"), op, [](const Lane& l) {
        auto val = [&](int64_t i) {
          return static_cast<double>(static_cast<compute_t<T>>(at<T>(l, i)));
        };
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t i = 0; i < l.n; ++i) {
          const double v = val(i);
          if (std::isnan(v) || v > m) m = v;
        }
        double s = 0;
        for (int64_t i = 0; i < l.n; ++i) s += std::exp(val(i) - m);
        if constexpr (kLog) {
          const double ls = std::log(s);
          for (int64_t i = 0; i < l.n; ++i) out_at<T>(l, i) = convert<T>(val(i) - m - ls);
        } else {
          const double inv = 1.0 / s;
          for (int64_t i = 0; i < l.n; ++i)
            out_at<T>(l, i) = convert<T>(std::exp(val(i) - m) * inv);
        }
      });
    }
  });
}

}  // namespace

void register_scan_softmax_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"cumsum", scan_kernel<false>},
                         {"cumprod", scan_kernel<true>},
                         {"softmax", softmax_kernel<false>},
                         {"log_softmax", softmax_kernel<true>}})
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
}

}  // namespace tessera::cpu
