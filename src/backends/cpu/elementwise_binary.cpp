// CPU kernels of the arithmetic binary primitives (add ... atan2, relu_backward) and of the ternary
// ones (where, clamp, lerp). Integer arithmetic wraps like PyTorch (computed unsigned); integer
// division by zero raises instead of trapping.
#include <cmath>
#include <complex>

#include "backends/cpu/elementwise.h"

namespace tessera::cpu::ew {
namespace {

struct BinaryBase {
  explicit BinaryBase(const Attrs&) {}
  template <class T>
  using Out = T;
  static constexpr int kSimd = -1;
};

#define TS_BINARY_FUNCTOR(Name, str, types, simd, ...) \
  template <class C>                                   \
  struct Name : BinaryBase {                           \
    using BinaryBase::BinaryBase;                      \
    static constexpr const char* kName = str;          \
    static constexpr uint32_t kTypes = types;          \
    static constexpr int kSimd = simd;                 \
    C operator()(C a, C b) const { __VA_ARGS__; }      \
  };

template <class C>
C add_of(C a, C b) {
  if constexpr (std::is_same_v<C, bool>)
    return a || b;
  else
    return wrap_add(a, b);
}
template <class C>
C mul_of(C a, C b) {
  if constexpr (std::is_same_v<C, bool>)
    return a && b;
  else
    return wrap_mul(a, b);
}

[[noreturn]] void int_div_by_zero(std::string_view op) {
  fail<ValueError>(op, "integer division by zero");
}

// Python's floor division; PyTorch's formula for floats (exact for representable quotients).
template <class C>
C floor_div_of(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    if (b == 0) int_div_by_zero("floor_divide");
    if constexpr (std::is_signed_v<C>) {
      if (b == -1) return wrap_neg(a);  // INT_MIN / -1 wraps
      const C q = static_cast<C>(a / b);
      return (a % b != 0 && ((a < 0) != (b < 0))) ? static_cast<C>(q - 1) : q;
    } else {
      return static_cast<C>(a / b);
    }
  } else {
    if (b == 0) return a / b;
    const C mod = std::fmod(a, b);
    C div = (a - mod) / b;
    if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;
    if (div == 0) return std::copysign(C(0), a / b);
    C fl = std::floor(div);
    if (div - fl > C(0.5)) fl += 1;
    return fl;
  }
}

// Python's modulo: the result takes the divisor's sign.
template <class C>
C remainder_of(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    if (b == 0) int_div_by_zero("remainder");
    if constexpr (std::is_signed_v<C>) {
      if (b == -1) return 0;  // INT_MIN % -1 would trap
      const C r = static_cast<C>(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? static_cast<C>(r + b) : r;
    } else {
      return static_cast<C>(a % b);
    }
  } else {
    C mod = std::fmod(a, b);
    if (mod != 0 && (b < 0) != (mod < 0)) mod += b;
    return mod;
  }
}

// Integer power by squaring, wrapping; negative exponents give 0 except for bases 1 and -1.
template <class C>
C pow_of(C a, C b) {
  if constexpr (std::is_integral_v<C>) {
    if constexpr (std::is_signed_v<C>) {
      if (b < 0) return a == 1 ? C(1) : a == -1 ? static_cast<C>((b & 1) ? -1 : 1) : C(0);
    }
    wide_u<C> r = 1, base = static_cast<wide_u<C>>(a);
    for (auto e = static_cast<wide_u<C>>(b); e != 0; e >>= 1) {
      if (e & 1) r = static_cast<wide_u<C>>(r * base);
      base = static_cast<wide_u<C>>(base * base);
    }
    return static_cast<C>(r);
  } else {
    return std::pow(a, b);
  }
}

// NaN-propagating max/min (PyTorch's maximum/minimum).
template <class C>
C max_of(C a, C b) {
  if constexpr (std::is_floating_point_v<C>)
    if (a != a || b != b) return a + b;
  return a > b ? a : b;
}
template <class C>
C min_of(C a, C b) {
  if constexpr (std::is_floating_point_v<C>)
    if (a != a || b != b) return a + b;
  return a < b ? a : b;
}

TS_BINARY_FUNCTOR(Add, "add", kAll, kSimdAdd, return add_of(a, b))
TS_BINARY_FUNCTOR(Sub, "sub", kI | kF | kC, kSimdSub, return wrap_sub(a, b))
TS_BINARY_FUNCTOR(Mul, "mul", kAll, kSimdMul, return mul_of(a, b))
TS_BINARY_FUNCTOR(Div, "div", kF | kC, kSimdDiv, return a / b)
TS_BINARY_FUNCTOR(FloorDivide, "floor_divide", kI | kF, -1, return floor_div_of(a, b))
TS_BINARY_FUNCTOR(Remainder, "remainder", kI | kF, -1, return remainder_of(a, b))
TS_BINARY_FUNCTOR(Pow, "pow", kI | kF | kC, -1, return pow_of(a, b))
TS_BINARY_FUNCTOR(Maximum, "maximum", kB | kI | kF, kSimdMax, return max_of(a, b))
TS_BINARY_FUNCTOR(Minimum, "minimum", kB | kI | kF, kSimdMin, return min_of(a, b))
TS_BINARY_FUNCTOR(Atan2, "atan2", kF, -1, return std::atan2(a, b))
// grad (a) where ReLU's output b > 0, else 0; a NaN b compares false and gives 0.
TS_BINARY_FUNCTOR(ReluBackward, "relu_backward", kF, kSimdReluBackward, return b > C(0) ? a : C(0))
#undef TS_BINARY_FUNCTOR

// a + alpha * b (no SIMD slot: alpha = 1 goes through Add).
template <class C>
struct AddAlpha : BinaryBase {
  static constexpr const char* kName = "add";
  static constexpr uint32_t kTypes = kAll;
  C alpha;
  explicit AddAlpha(const Attrs& at) : BinaryBase(at), alpha(at.get<Scalar>("alpha").to<C>()) {}
  C operator()(C a, C b) const { return add_of(a, mul_of(alpha, b)); }
};

void add_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (a.has("alpha"))
    binary_kernel<AddAlpha>(in, out, a);
  else
    binary_kernel<Add>(in, out, a);
}

// ---- ternary ----
template <class C>
struct Where {
  static constexpr const char* kName = "where";
  static constexpr uint32_t kTypes = kAll;
  template <class T>
  using First = bool;
  explicit Where(const Attrs&) {}
  C operator()(bool c, C a, C b) const { return c ? a : b; }
};

template <class C>
struct Clamp {
  static constexpr const char* kName = "clamp";
  static constexpr uint32_t kTypes = kI | kF;
  template <class T>
  using First = T;
  explicit Clamp(const Attrs&) {}
  C operator()(C x, C lo, C hi) const { return min_of(max_of(x, lo), hi); }
};

// PyTorch's two-sided formula: exact at both ends (w = 0 gives a, w = 1 gives b).
template <class C>
struct Lerp {
  static constexpr const char* kName = "lerp";
  static constexpr uint32_t kTypes = kF;
  template <class T>
  using First = T;
  explicit Lerp(const Attrs&) {}
  C operator()(C a, C b, C w) const {
    return std::abs(w) < C(0.5) ? a + w * (b - a) : b - (b - a) * (C(1) - w);
  }
};

}  // namespace

void register_binary_kernels(Registry& r) {
  struct Row {
    const char* name;
    KernelFn fn;
  };
  static constexpr Row kRows[] = {
      {"add", add_kernel},
      {"sub", binary_kernel<Sub>},
      {"mul", binary_kernel<Mul>},
      {"div", binary_kernel<Div>},
      {"floor_divide", binary_kernel<FloorDivide>},
      {"remainder", binary_kernel<Remainder>},
      {"pow", binary_kernel<Pow>},
      {"maximum", binary_kernel<Maximum>},
      {"minimum", binary_kernel<Minimum>},
      {"atan2", binary_kernel<Atan2>},
      {"relu_backward", binary_kernel<ReluBackward>},
      {"where", ternary_kernel<Where>},
      {"clamp", ternary_kernel<Clamp>},
      {"lerp", ternary_kernel<Lerp>},
  };
  for (const Row& row : kRows) r.add_kernel(row.name, {DeviceType::CPU, "builtin", row.fn});
}

}  // namespace tessera::cpu::ew
