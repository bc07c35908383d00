// The Highway elementwise functors and row loops, shared by elementwise_simd.cpp (float32 and
// float64 rows) and elementwise_simd16.cpp (float16/bfloat16 rows), which each compile them
// once per SIMD target. Transcendentals come from hwy/contrib/math; the masks below restore
// IEEE results where its valid range ends (overflow, zero/negative/subnormal logs, NaN inputs).
// A 16-bit row is promoted to float32 lanes, run through the float32 functor and rounded once
// (half_simd-inl.h), which is what the scalar loop computes element by element.
// Per-target include guard (Highway's convention): included after foreach_target.
#if defined(TESSERA_CPU_ELEMENTWISE_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TESSERA_CPU_ELEMENTWISE_SIMD_INL_H_
#undef TESSERA_CPU_ELEMENTWISE_SIMD_INL_H_
#else
#define TESSERA_CPU_ELEMENTWISE_SIMD_INL_H_
#endif

// clang-format off
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/cache_control.h>
#include "backends/cpu/half_simd-inl.h"
// clang-format on

#include <cstring>
#include <limits>
#include <type_traits>

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
// A row of storage type S (float, double, Half, BFloat16) computes in Compute<S>: the 16-bit
// types are promoted to float32 lanes, run through the float32 functor and rounded once on the
// store (half_simd-inl.h), which is what the scalar loop does element by element.
using half_simd::HWY_NAMESPACE::is_16bit_v;
using half_simd::HWY_NAMESPACE::LoadAs;
using half_simd::HWY_NAMESPACE::StoreAs;
template <class S>
using Compute = std::conditional_t<std::is_same_v<S, double>, double, float>;
// Non-temporal stores need full vectors; a 16-bit row is stored as half vectors.
template <class S>
inline constexpr bool kCanStream = !is_16bit_v<S>;

// Elements before `out` reaches vector alignment (non-temporal stores need aligned addresses).
template <class T, class D>
HWY_INLINE size_t head_count(D d, const T* out, size_t n) {
  const size_t vb = hn::Lanes(d) * sizeof(T);
  const auto addr = reinterpret_cast<uintptr_t>(out);
  return std::min(n, ((vb - addr % vb) % vb) / sizeof(T));
}

template <class S, class Op>
HWY_INLINE void unary_partial(const S* in, S* out, size_t m) {
  if (m == 0) return;
  const hn::ScalableTag<Compute<S>> d;
  HWY_ALIGN_MAX S buf[HWY_MAX_BYTES / sizeof(Compute<S>)] = {};
  std::memcpy(buf, in, m * sizeof(S));
  StoreAs(d, Op()(d, LoadAs(d, buf)), buf);
  std::memcpy(out, buf, m * sizeof(S));
}

template <class S, class Op>
void UnaryLoop(const void* vin, void* vout, int64_t n64, bool stream) {
  const hn::ScalableTag<Compute<S>> d;
  const Op op;
  const auto* in = static_cast<const S*>(vin);
  auto* out = static_cast<S*>(vout);
  const auto n = static_cast<size_t>(n64);
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  if constexpr (kCanStream<S>) {
    if (stream && reinterpret_cast<uintptr_t>(out) % sizeof(S) == 0) {
      i = head_count(d, out, n);
      unary_partial<S, Op>(in, out, i);
      for (; i + N <= n; i += N) hn::Stream(op(d, hn::LoadU(d, in + i)), d, out + i);
      hwy::FlushStream();
      unary_partial<S, Op>(in + i, out + i, n - i);
      return;
    }
  }
  for (; i + 2 * N <= n; i += 2 * N) {
    StoreAs(d, op(d, LoadAs(d, in + i)), out + i);
    StoreAs(d, op(d, LoadAs(d, in + i + N)), out + i + N);
  }
  for (; i + N <= n; i += N) StoreAs(d, op(d, LoadAs(d, in + i)), out + i);
  unary_partial<S, Op>(in + i, out + i, n - i);
}

// Operand access per mode: a row (loaded at i) or a broadcast scalar.
template <int kMode, int kArg, class D, class S>
HWY_INLINE hn::Vec<D> operand(D d, const S* p, hn::Vec<D> splat, size_t i) {
  if constexpr ((kMode == kScalarA && kArg == 0) || (kMode == kScalarB && kArg == 1))
    return splat;
  else
    return LoadAs(d, p + i);
}

template <class S, class Op, int kMode>
HWY_INLINE void binary_partial(const S* a, const S* b, S* out, size_t m) {
  if (m == 0) return;
  using T = Compute<S>;
  const hn::ScalableTag<T> d;
  HWY_ALIGN_MAX S ba[HWY_MAX_BYTES / sizeof(T)] = {};
  HWY_ALIGN_MAX S bb[HWY_MAX_BYTES / sizeof(T)] = {};
  std::memcpy(ba, a, (kMode == kScalarA ? 1 : m) * sizeof(S));
  std::memcpy(bb, b, (kMode == kScalarB ? 1 : m) * sizeof(S));
  const auto va = kMode == kScalarA ? hn::Set(d, static_cast<T>(ba[0])) : LoadAs(d, ba);
  const auto vb = kMode == kScalarB ? hn::Set(d, static_cast<T>(bb[0])) : LoadAs(d, bb);
  StoreAs(d, Op()(d, va, vb), ba);
  std::memcpy(out, ba, m * sizeof(S));
}

template <class S, class Op, int kMode>
HWY_INLINE void binary_run(const S* a, const S* b, S* out, size_t n, bool stream) {
  using T = Compute<S>;
  const hn::ScalableTag<T> d;
  const Op op;
  const size_t N = hn::Lanes(d);
  // A 16-bit scalar operand converts exactly as the lanes do (Half::to_float).
  const auto sa = hn::Set(d, kMode == kScalarA ? static_cast<T>(a[0]) : T(0));
  const auto sb = hn::Set(d, kMode == kScalarB ? static_cast<T>(b[0]) : T(0));
  // Shifts a row pointer by i (a scalar operand stays put).
  auto at = [](const S* p, size_t i, bool scalar) { return scalar ? p : p + i; };
  size_t i = 0;
  bool streamed = false;
  if constexpr (kCanStream<S>) {
    if (stream && reinterpret_cast<uintptr_t>(out) % sizeof(S) == 0) {
      i = head_count(d, out, n);
      binary_partial<S, Op, kMode>(a, b, out, i);
      for (; i + N <= n; i += N)
        hn::Stream(op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), d,
                   out + i);
      hwy::FlushStream();
      streamed = true;
    }
  }
  if (!streamed) {
    for (; i + 2 * N <= n; i += 2 * N) {
      StoreAs(d, op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), out + i);
      StoreAs(d, op(d, operand<kMode, 0>(d, a, sa, i + N), operand<kMode, 1>(d, b, sb, i + N)),
              out + i + N);
    }
    for (; i + N <= n; i += N)
      StoreAs(d, op(d, operand<kMode, 0>(d, a, sa, i), operand<kMode, 1>(d, b, sb, i)), out + i);
  }
  binary_partial<S, Op, kMode>(at(a, i, kMode == kScalarA), at(b, i, kMode == kScalarB), out + i,
                               n - i);
}

template <class S, class Op>
void BinaryLoop(const void* va, const void* vb, void* vout, int64_t n, int mode, bool stream) {
  const auto* a = static_cast<const S*>(va);
  const auto* b = static_cast<const S*>(vb);
  auto* out = static_cast<S*>(vout);
  const auto m = static_cast<size_t>(n);
  if (mode == kScalarA)
    binary_run<S, Op, kScalarA>(a, b, out, m, stream);
  else if (mode == kScalarB)
    binary_run<S, Op, kScalarB>(a, b, out, m, stream);
  else
    binary_run<S, Op, kBothRows>(a, b, out, m, stream);
}

// Fills the table slots of storage types S... (see kSimdSlot in elementwise.h).
template <class... S>
void FillSimdSlots(SimdTable& t) {
  auto unary = [&t]<class Op>(Op, int op) {
    ((t.unary[op][kSimdSlot<S>] = &UnaryLoop<S, Op>), ...);
  };
  auto binary = [&t]<class Op>(Op, int op) {
    ((t.binary[op][kSimdSlot<S>] = &BinaryLoop<S, Op>), ...);
  };
  unary(NegOp(), kSimdNeg);
  unary(AbsOp(), kSimdAbs);
  unary(ReluOp(), kSimdRelu);
  unary(ExpOp(), kSimdExp);
  unary(LogOp(), kSimdLog);
  unary(SqrtOp(), kSimdSqrt);
  unary(TanhOp(), kSimdTanh);
  unary(SigmoidOp(), kSimdSigmoid);
  binary(AddOp(), kSimdAdd);
  binary(SubOp(), kSimdSub);
  binary(MulOp(), kSimdMul);
  binary(DivOp(), kSimdDiv);
  binary(MaxOp(), kSimdMax);
  binary(MinOp(), kSimdMin);
  binary(ReluBackwardOp(), kSimdReluBackward);
}

}  // namespace tessera::cpu::ew::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // TESSERA_CPU_ELEMENTWISE_SIMD_INL_H_
