// Highway fast path of the elementwise kernels: contiguous float32/float64 rows (and rows
// against a broadcast scalar), compiled once per ISA and chosen at run time. Transcendentals
// come from hwy/contrib/math; the masks below restore IEEE results where its valid range ends
// (overflow, zero/negative/subnormal logs, NaN inputs).
// foreach_target must come first, then highway, then the contrib headers.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/elementwise_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/cache_control.h>
// clang-format on

#include <cstring>
#include <limits>

#include "backends/cpu/elementwise.h"

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::ew::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class D>
HWY_INLINE hn::Vec<D> inf(D d) {
  return hn::Set(d, std::numeric_limits<hn::TFromD<D>>::infinity());
}

// ---- unary functors: (d, v) -> v ----
struct NegOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V x) const {
    return hn::Neg(x);
  }
};
struct AbsOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V x) const {
    return hn::Abs(x);
  }
};
struct ReluOp {  // NaN stays NaN, as in PyTorch
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    return hn::IfThenZeroElse(hn::Lt(x, hn::Zero(d)), x);
  }
};
struct SqrtOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V x) const {
    return hn::Sqrt(x);
  }
};
struct ExpOp {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    using T = hn::TFromD<D>;
    const V over =
        hn::Set(d, static_cast<T>(sizeof(T) == 4 ? 88.72283935546875 : 709.782712893384));
    V r;
    // float64 Exp is only valid up to 706: above, square the exponential of half the input.
    if (sizeof(T) == 8 && !hn::AllFalse(d, hn::Gt(x, hn::Set(d, static_cast<T>(700))))) {
      const V h = hn::Exp(d, hn::Mul(hn::Min(x, over), hn::Set(d, static_cast<T>(0.5))));
      r = hn::IfThenElse(hn::Gt(x, hn::Set(d, static_cast<T>(700))), hn::Mul(h, h),
                         hn::Exp(d, hn::Min(x, over)));
    } else {
      r = hn::Exp(d, hn::Min(x, over));
    }
    r = hn::IfThenElse(hn::Gt(x, over), inf(d), r);
    return hn::IfThenElse(hn::IsNaN(x), x, r);
  }
};
struct LogOp {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    using T = hn::TFromD<D>;
    constexpr bool f32 = sizeof(T) == 4;
    // Subnormals are scaled into the normal range first; Log assumes normal inputs.
    const auto small = hn::Lt(x, hn::Set(d, std::numeric_limits<T>::min()));
    const V scale =
        hn::IfThenElse(small, hn::Set(d, static_cast<T>(f32 ? 0x1p24 : 0x1p54)), hn::Set(d, T(1)));
    const V corr = hn::IfThenElseZero(
        small, hn::Set(d, static_cast<T>((f32 ? 24 : 54) * 0.69314718055994530942)));
    V r = hn::Sub(hn::Log(d, hn::Mul(x, scale)), corr);
    r = hn::IfThenElse(hn::Eq(x, hn::Zero(d)), hn::Neg(inf(d)), r);
    r = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Set(d, std::numeric_limits<T>::quiet_NaN()), r);
    r = hn::IfThenElse(hn::Eq(x, inf(d)), x, r);
    return hn::IfThenElse(hn::IsNaN(x), x, r);
  }
};
struct TanhOp {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    return hn::IfThenElse(hn::IsNaN(x), x, hn::Tanh(d, x));
  }
};
struct SigmoidOp {  // e = exp(-|x|) never overflows; 1/(1+e) or e/(1+e) by sign
  template <class D, class V>
  HWY_INLINE V operator()(D d, V x) const {
    using T = hn::TFromD<D>;
    const V one = hn::Set(d, T(1));
    const V e = hn::Exp(d, hn::Neg(hn::Abs(x)));
    const V s = hn::Div(one, hn::Add(one, e));
    const V r = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Mul(e, s), s);
    return hn::IfThenElse(hn::IsNaN(x), x, r);
  }
};

// ---- binary functors: (d, a, b) -> v ----
struct AddOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::Add(a, b);
  }
};
struct SubOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::Sub(a, b);
  }
};
struct MulOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::Mul(a, b);
  }
};
struct DivOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::Div(a, b);
  }
};
// Max/Min instructions drop NaNs; PyTorch's maximum/minimum propagate them (a + b is NaN).
struct MaxOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::IfThenElse(hn::Or(hn::IsNaN(a), hn::IsNaN(b)), hn::Add(a, b), hn::Max(a, b));
  }
};
struct MinOp {
  template <class D, class V>
  HWY_INLINE V operator()(D, V a, V b) const {
    return hn::IfThenElse(hn::Or(hn::IsNaN(a), hn::IsNaN(b)), hn::Add(a, b), hn::Min(a, b));
  }
};
// grad (a) where ReLU's output (b) > 0, else 0: Gt is false for NaN, so a NaN output gives 0.
struct ReluBackwardOp {
  template <class D, class V>
  HWY_INLINE V operator()(D d, V a, V b) const {
    return hn::IfThenElseZero(hn::Gt(b, hn::Zero(d)), a);
  }
};

// ---- loops ----
// Elements before `out` reaches vector alignment (non-temporal stores need aligned addresses).
template <class T, class D>
HWY_INLINE size_t head_count(D d, const T* out, size_t n) {
  const size_t vb = hn::Lanes(d) * sizeof(T);
  const auto addr = reinterpret_cast<uintptr_t>(out);
  return std::min(n, ((vb - addr % vb) % vb) / sizeof(T));
}

template <class T, class Op>
HWY_INLINE void unary_partial(const T* in, T* out, size_t m) {
  if (m == 0) return;
  const hn::ScalableTag<T> d;
  HWY_ALIGN_MAX T buf[HWY_MAX_BYTES / sizeof(T)] = {};
  std::memcpy(buf, in, m * sizeof(T));
  hn::Store(Op()(d, hn::Load(d, buf)), d, buf);
  std::memcpy(out, buf, m * sizeof(T));
}

template <class T, class Op>
void UnaryLoop(const void* vin, void* vout, int64_t n64, bool stream) {
  const hn::ScalableTag<T> d;
  const Op op;
  const auto* in = static_cast<const T*>(vin);
  auto* out = static_cast<T*>(vout);
  const auto n = static_cast<size_t>(n64);
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % sizeof(T) == 0) {
    i = head_count(d, out, n);
    unary_partial<T, Op>(in, out, i);
    for (; i + N <= n; i += N) hn::Stream(op(d, hn::LoadU(d, in + i)), d, out + i);
    hwy::FlushStream();
  } else {
    for (; i + 2 * N <= n; i += 2 * N) {
      hn::StoreU(op(d, hn::LoadU(d, in + i)), d, out + i);
      hn::StoreU(op(d, hn::LoadU(d, in + i + N)), d, out + i + N);
    }
    for (; i + N <= n; i += N) hn::StoreU(op(d, hn::LoadU(d, in + i)), d, out + i);
  }
  unary_partial<T, Op>(in + i, out + i, n - i);
}

// Operand access per mode: a row (LoadU at i) or a broadcast scalar.
template <int kMode, int kArg, class D, class T>
HWY_INLINE hn::Vec<D> operand(D d, const T* p, hn::Vec<D> splat, size_t i) {
  if constexpr ((kMode == kScalarA && kArg == 0) || (kMode == kScalarB && kArg == 1))
    return splat;
  else
    return hn::LoadU(d, p + i);
}

template <class T, class Op, int kMode>
HWY_INLINE void binary_partial(const T* a, const T* b, T* out, size_t m) {
  if (m == 0) return;
  const hn::ScalableTag<T> d;
  HWY_ALIGN_MAX T ba[HWY_MAX_BYTES / sizeof(T)] = {};
  HWY_ALIGN_MAX T bb[HWY_MAX_BYTES / sizeof(T)] = {};
  std::memcpy(ba, a, (kMode == kScalarA ? 1 : m) * sizeof(T));
  std::memcpy(bb, b, (kMode == kScalarB ? 1 : m) * sizeof(T));
  const auto va = kMode == kScalarA ? hn::Set(d, ba[0]) : hn::Load(d, ba);
  const auto vb = kMode == kScalarB ? hn::Set(d, bb[0]) : hn::Load(d, bb);
  hn::Store(Op()(d, va, vb), d, ba);
  std::memcpy(out, ba, m * sizeof(T));
}

template <class T, class Op, int kMode>
HWY_INLINE void binary_run(const T* a, const T* b, T* out, size_t n, bool stream) {
  const hn::ScalableTag<T> d;
  const Op op;
  const size_t N = hn::Lanes(d);
  const auto sa = hn::Set(d, kMode == kScalarA ? a[0] : T(0));
  const auto sb = hn::Set(d, kMode == kScalarB ? b[0] : T(0));
  // Shifts a row pointer by i (a scalar operand stays put).
  auto at = [](const T* p, size_t i, bool scalar) { return scalar ? p : p + i; };
  size_t i = 0;
  if (stream && reinterpret_cast<uintptr_t>(out) % sizeof(T) == 0) {
    i = head_count(d, out, n);
    binary_partial<T, Op, kMode>(a, b, out, i);
    for (; i + N <= n; i += N)
      hn::Stream(op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), d, out + i);
    hwy::FlushStream();
  } else {
    for (; i + 2 * N <= n; i += 2 * N) {
      hn::StoreU(op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), d, out + i);
      hn::StoreU(op(d, operand<kMode, 0>(d, a, sa, i + N), operand<kMode, 1>(d, b, sb, i + N)), d,
                 out + i + N);
    }
    for (; i + N <= n; i += N)
      hn::StoreU(op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), d, out + i);
  }
  binary_partial<T, Op, kMode>(at(a, i, kMode == kScalarA), at(b, i, kMode == kScalarB), out + i,
                               n - i);
}

template <class T, class Op>
void BinaryLoop(const void* va, const void* vb, void* vout, int64_t n, int mode, bool stream) {
  const auto* a = static_cast<const T*>(va);
  const auto* b = static_cast<const T*>(vb);
  auto* out = static_cast<T*>(vout);
  const auto m = static_cast<size_t>(n);
  if (mode == kScalarA)
    binary_run<T, Op, kScalarA>(a, b, out, m, stream);
  else if (mode == kScalarB)
    binary_run<T, Op, kScalarB>(a, b, out, m, stream);
  else
    binary_run<T, Op, kBothRows>(a, b, out, m, stream);
}

template <class Op>
void set_unary(SimdTable& t, int op) {
  t.unary[op][0] = &UnaryLoop<float, Op>;
  t.unary[op][1] = &UnaryLoop<double, Op>;
}
template <class Op>
void set_binary(SimdTable& t, int op) {
  t.binary[op][0] = &BinaryLoop<float, Op>;
  t.binary[op][1] = &BinaryLoop<double, Op>;
}

SimdTable GetSimdTable() {
  SimdTable t{};
  set_unary<NegOp>(t, kSimdNeg);
  set_unary<AbsOp>(t, kSimdAbs);
  set_unary<ReluOp>(t, kSimdRelu);
  set_unary<ExpOp>(t, kSimdExp);
  set_unary<LogOp>(t, kSimdLog);
  set_unary<SqrtOp>(t, kSimdSqrt);
  set_unary<TanhOp>(t, kSimdTanh);
  set_unary<SigmoidOp>(t, kSimdSigmoid);
  set_binary<AddOp>(t, kSimdAdd);
  set_binary<SubOp>(t, kSimdSub);
  set_binary<MulOp>(t, kSimdMul);
  set_binary<DivOp>(t, kSimdDiv);
  set_binary<MaxOp>(t, kSimdMax);
  set_binary<MinOp>(t, kSimdMin);
  set_binary<ReluBackwardOp>(t, kSimdReluBackward);
  return t;
}

}  // namespace tessera::cpu::ew::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::ew {

HWY_EXPORT(GetSimdTable);

const SimdTable& simd_table() {
  // Resolved once: the per-call cost is a static guard check and an indirect call.
  static const SimdTable t = HWY_DYNAMIC_DISPATCH(GetSimdTable)();
  return t;
}

}  // namespace tessera::cpu::ew
#endif
