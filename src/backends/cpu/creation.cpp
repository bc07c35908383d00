// CPU kernels for creation and random primitives. Random element i always draws from
// Philox counter (offset + i), so results are independent of the thread count.
#include <cmath>
#include <numbers>

#include "loops.h"
#include "tessera/core/generator.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu {
namespace {

// Runs f(i) -> T for every element of a contiguous output, in parallel when large.
template <class F>
void generate(const Tensor& out, F&& f) {
  visit_dtype(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(out.raw_data());
    parallel_for(out.numel(), kParallelGrain / 4, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = f(i, TypeTag<T>{});
    });
  });
}

void fill_kernel(Inputs, Outputs out, const Attrs& a) {
  const Scalar& v = a.get<Scalar>("value");
  visit_dtype(out[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T x =
        convert<T>(v.to<std::conditional_t<std::is_same_v<T, Complex64>, Complex64, double>>());
    T* p = static_cast<T*>(out[0].raw_data());
    std::fill(p, p + out[0].numel(), x);
  });
}

void arange_kernel(Inputs, Outputs out, const Attrs& a) {
  const Scalar &start = a.get<Scalar>("start"), &step = a.get<Scalar>("step");
  const bool ints = start.is_integral() && step.is_integral();
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    if (ints) return convert<T>(start.to<int64_t>() + i * step.to<int64_t>());
    return convert<T>(start.to<double>() + static_cast<double>(i) * step.to<double>());
  });
}

void linspace_kernel(Inputs, Outputs out, const Attrs& a) {
  const double s = a.get<double>("start"), e = a.get<double>("end");
  const int64_t n = out[0].numel();
  const double step = n > 1 ? (e - s) / static_cast<double>(n - 1) : 0;
  // Symmetric evaluation from both ends (as PyTorch) so the last value is exactly `end`.
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    double v = i < (n + 1) / 2 ? s + step * static_cast<double>(i)
                               : e - step * static_cast<double>(n - 1 - i);
    return convert<T>(v);
  });
}

void eye_kernel(Inputs, Outputs out, const Attrs&) {
  const int64_t m = out[0].shape()[1];
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    return convert<T>(static_cast<int64_t>(i / m == i % m));
  });
}

// Uniform in [0, 1) with 24 (float) or 53 (double) random bits.
inline double unit24(uint32_t w) { return static_cast<double>(w >> 8) * 0x1p-24; }
inline double unit53(uint32_t a, uint32_t b) {
  return static_cast<double>((static_cast<uint64_t>(a) << 21) ^ (b >> 11)) * 0x1p-53;
}

struct Draw {
  uint64_t seed, offset;
  explicit Draw(const Attrs& a)
      : seed(static_cast<uint64_t>(a.get<int64_t>("seed"))),
        offset(static_cast<uint64_t>(a.get<int64_t>("offset"))) {}
  std::array<uint32_t, 4> at(int64_t i) const {
    return philox_at(seed, offset + static_cast<uint64_t>(i));
  }
};

void uniform_kernel(Inputs, Outputs out, const Attrs& a) {
  Draw d(a);
  const double lo = a.get<double>("low"), hi = a.get<double>("high");
  const bool wide = out[0].dtype() == kFloat64;
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    auto w = d.at(i);
    double u = wide ? unit53(w[0], w[1]) : unit24(w[0]);
    double v = lo + (hi - lo) * u;
    // Rounding to a narrow float may reach `high`; keep the interval half-open.
    T r = convert<T>(v);
    if (hi > lo && static_cast<double>(convert<double>(r)) >= hi) r = convert<T>(lo);
    return r;
  });
}

void normal_kernel(Inputs, Outputs out, const Attrs& a) {
  Draw d(a);
  const double mean = a.get<double>("mean"), sd = a.get<double>("std");
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    auto w = d.at(i);
    double u1 = 1.0 - unit53(w[0], w[1]);  // (0, 1]: log stays finite
    double u2 = unit53(w[2], w[3]);
    double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
    return convert<T>(mean + sd * z);
  });
}

void randint_kernel(Inputs, Outputs out, const Attrs& a) {
  Draw d(a);
  const int64_t lo = a.get<int64_t>("low");
  const auto range = static_cast<uint64_t>(a.get<int64_t>("high") - lo);
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    auto w = d.at(i);
    uint64_t r = (static_cast<uint64_t>(w[0]) << 32 | w[1]) % range;  // bias < range / 2^64
    return convert<T>(lo + static_cast<int64_t>(r));
  });
}

void bernoulli_kernel(Inputs in, Outputs out, const Attrs& a) {
  Draw d(a);
  Tensor p = in[0].contiguous().to(kFloat64);
  const double* pp = p.data_ptr<double>();
  for (int64_t i = 0; i < p.numel(); ++i)
    if (!(pp[i] >= 0 && pp[i] <= 1))
      fail<ValueError>("bernoulli", "probability {} at flat index {} is outside [0, 1]", pp[i], i);
  generate(out[0], [&](int64_t i, auto tag) {
    using T = typename decltype(tag)::type;
    auto w = d.at(i);
    return convert<T>(static_cast<int64_t>(unit53(w[0], w[1]) < pp[i]));
  });
}

}  // namespace

void register_creation_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"fill", fill_kernel},
                         {"arange", arange_kernel},
                         {"linspace", linspace_kernel},
                         {"eye", eye_kernel},
                         {"uniform", uniform_kernel},
                         {"normal", normal_kernel},
                         {"randint", randint_kernel},
                         {"bernoulli", bernoulli_kernel}})
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
}

}  // namespace tessera::cpu
