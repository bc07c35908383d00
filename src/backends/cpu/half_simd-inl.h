// Highway conversions between float32 vectors and float16/bfloat16 lanes, bitwise identical to
// the scalar Half/BFloat16 of tessera/core/half.h: round to nearest even, overflow to inf,
// float16 subnormals, -0.0, and the scalar NaN rules (f32 -> f16 gives sign | 0x7e00 with no
// payload; f16 -> f32 keeps the payload and does not quiet a signalling NaN; f32 -> bf16
// truncates the payload and sets the quiet bit). The integer-lane versions are the scalar
// algorithm lane by lane; float16 uses F16C where it can, with the NaN differences patched (see
// below). The AVX512-BF16 instruction is not used: it flushes subnormals. Plus LoadAs/StoreAs:
// a row of any storage type (float, double, Half, BFloat16) read into / written from compute
// vectors. Included by the SIMD .cpp files after foreach_target, once per target (the guard
// toggles per target, Highway's convention). Change half.h and this file together; the tests
// (test_half_convert.cpp) compare them over every rounding boundary.
#if defined(TESSERA_CPU_HALF_SIMD_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef TESSERA_CPU_HALF_SIMD_INL_H_
#undef TESSERA_CPU_HALF_SIMD_INL_H_
#else
#define TESSERA_CPU_HALF_SIMD_INL_H_
#endif

#include <hwy/highway.h>
#include <type_traits>

#include "tessera/core/half.h"

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::half_simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <class S>
inline constexpr bool is_16bit_v = std::is_same_v<S, Half> || std::is_same_v<S, BFloat16>;

/// float16 lanes (as uint16) -> float32: Half::to_float, in integer lanes.
template <class DF>
HWY_INLINE hn::Vec<DF> F16ToF32Emulated(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
  const hn::RebindToSigned<DF> di;
  const auto x = hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<DF>(), h));
  const auto sign = hn::ShiftLeft<16>(hn::And(x, hn::Set(di, 0x8000)));
  const auto em = hn::And(x, hn::Set(di, 0x7fff));  // exponent and mantissa
  const auto body = hn::ShiftLeft<13>(em);
  const auto normal = hn::Add(body, hn::Set(di, 112 << 23));
  const auto inf_nan = hn::Or(body, hn::Set(di, 0x7f800000));  // payload kept, not quieted
  // Subnormals: the mantissa times 2^-24, exact in float32.
  const auto sub =
      hn::BitCast(di, hn::Mul(hn::ConvertTo(df, em), hn::Set(df, 5.9604644775390625e-8f)));
  const auto r = hn::IfThenElse(hn::Lt(em, hn::Set(di, 0x400)), sub,
                                hn::IfThenElse(hn::Lt(em, hn::Set(di, 0x7c00)), normal, inf_nan));
  return hn::BitCast(df, hn::Or(r, sign));
}

/// bfloat16 lanes -> float32: the top half of the float.
template <class DF>
HWY_INLINE hn::Vec<DF> BF16ToF32(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
  return hn::BitCast(df, hn::ShiftLeft<16>(hn::PromoteTo(hn::RebindToUnsigned<DF>(), h)));
}

/// float32 -> float16 lanes: Half::from_float, in integer lanes.
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToF16Emulated(DF df, hn::Vec<DF> f) {
  const hn::RebindToSigned<DF> di;
  const auto x = hn::BitCast(di, f);
  const auto sign = hn::And(hn::ShiftRight<16>(x), hn::Set(di, 0x8000));
  const auto ax = hn::And(x, hn::Set(di, 0x7fffffff));  // non-negative: signed compares work
  const auto inf_nan =
      hn::IfThenElse(hn::Gt(ax, hn::Set(di, 0x7f800000)), hn::Set(di, 0x7e00), hn::Set(di, 0x7c00));
  // Subnormal or zero in half: adding 0.5 aligns to the 2^-24 grid, rounded by the FPU (RNE).
  const auto sub = hn::Sub(hn::BitCast(di, hn::Add(hn::BitCast(df, ax), hn::Set(df, 0.5f))),
                           hn::Set(di, 0x3f000000));
  // Normal: rebias the exponent (-112 << 23) and round to nearest even, in wrapping arithmetic.
  const hn::RebindToUnsigned<DF> du;
  const auto uax = hn::BitCast(du, ax);
  const auto odd = hn::And(hn::ShiftRight<13>(uax), hn::Set(du, 1u));
  const auto normal =
      hn::BitCast(di, hn::ShiftRight<13>(hn::Add(hn::Add(uax, hn::Set(du, 0xc8000fffu)), odd)));
  auto r = hn::IfThenElse(hn::Lt(ax, hn::Set(di, 0x38800000)), sub, normal);
  r = hn::IfThenElse(hn::Lt(ax, hn::Set(di, 0x477ff000)), r, hn::Set(di, 0x7c00));  // to inf
  r = hn::IfThenElse(hn::Lt(ax, hn::Set(di, 0x7f800000)), r, inf_nan);
  return hn::DemoteTo(hn::Rebind<uint16_t, DF>(), hn::Or(r, sign));  // every lane fits 16 bits
}

// x86 targets with F16C (AVX2 and up) convert in one instruction, rounding to nearest even
// whatever MXCSR says, and exactly like the scalar code except for NaNs: vcvtps2ph keeps
// payload bits (the scalar code gives sign | 0x7e00) and vcvtph2ps quiets signalling NaNs (the
// scalar code keeps them). Below, NaNs are made canonical before the demotion, and a vector
// holding an inf or signalling NaN takes the integer path. Highway emulates these conversions
// on the other x86 targets, flushing float16 subnormals, so those use the integer path too.
#if (HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL) && \
    !defined(HWY_DISABLE_F16C)
template <class DF>
HWY_INLINE hn::Vec<DF> F16ToF32(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
  const hn::Rebind<uint16_t, DF> d16;
  // Exponent all ones (inf or NaN): only signalling NaNs would convert differently, but the
  // wider test is cheaper and all of these are rare.
  const auto special = hn::Eq(hn::And(h, hn::Set(d16, 0x7c00)), hn::Set(d16, 0x7c00));
  if (HWY_UNLIKELY(!hn::AllFalse(d16, special))) return F16ToF32Emulated(df, h);
  return hn::PromoteTo(df, hn::BitCast(hn::Rebind<hwy::float16_t, DF>(), h));
}
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToF16(DF df, hn::Vec<DF> f) {
  const hn::RebindToUnsigned<DF> du;
  // A NaN becomes sign | 0x7fc00000, which converts to sign | 0x7e00.
  const auto canonical =
      hn::And(hn::Or(hn::BitCast(du, f), hn::Set(du, 0x7fc00000u)), hn::Set(du, 0xffc00000u));
  const auto g = hn::IfThenElse(hn::IsNaN(f), hn::BitCast(df, canonical), f);
  return hn::BitCast(hn::Rebind<uint16_t, DF>(), hn::DemoteTo(hn::Rebind<hwy::float16_t, DF>(), g));
}
#else
template <class DF>
HWY_INLINE hn::Vec<DF> F16ToF32(DF df, hn::Vec<hn::Rebind<uint16_t, DF>> h) {
  return F16ToF32Emulated(df, h);
}
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToF16(DF df, hn::Vec<DF> f) {
  return F32ToF16Emulated(df, f);
}
#endif

/// float32 -> bfloat16 lanes: BFloat16::from_float.
template <class DF>
HWY_INLINE hn::Vec<hn::Rebind<uint16_t, DF>> F32ToBF16(DF /*df*/, hn::Vec<DF> f) {
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const auto x = hn::BitCast(du, f);
  const auto hi = hn::ShiftRight<16>(x);
  const auto is_nan =
      hn::Gt(hn::BitCast(di, hn::And(x, hn::Set(du, 0x7fffffffu))), hn::Set(di, 0x7f800000));
  const auto rounded =
      hn::ShiftRight<16>(hn::Add(x, hn::Add(hn::Set(du, 0x7fffu), hn::And(hi, hn::Set(du, 1u)))));
  const auto r =
      hn::IfThenElse(hn::RebindMask(du, is_nan), hn::Or(hi, hn::Set(du, 0x40u)), rounded);
  return hn::DemoteTo(hn::Rebind<uint16_t, DF>(), hn::BitCast(di, r));
}

// ---- rows of a storage type S, as vectors of the compute tag D ----
// D is float for float32 and the 16-bit types, double for float64; a float64 row read with a
// float D is rounded to float32 (as static_cast<float>), a float written to one is widened.

template <class S, class D>
HWY_INLINE hn::Vec<D> LoadAs(D d, const S* p) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    return hn::LoadU(d, p);
  } else if constexpr (std::is_same_v<S, double>) {
#if HWY_TARGET == HWY_EMU128 || HWY_TARGET == HWY_SCALAR
    // The emulated DemoteTo saturates inf and overflow to the largest float: cast per lane.
    HWY_ALIGN float buf[HWY_MAX_BYTES / sizeof(float)];
    for (size_t i = 0; i < hn::Lanes(d); ++i) buf[i] = static_cast<float>(p[i]);
    return hn::Load(d, buf);
#else
    return hn::DemoteTo(d, hn::LoadU(hn::Rebind<double, D>(), p));
#endif
  } else {
    const auto h = hn::LoadU(hn::Rebind<uint16_t, D>(), reinterpret_cast<const uint16_t*>(p));
    if constexpr (std::is_same_v<S, Half>)
      return F16ToF32(d, h);
    else
      return BF16ToF32(d, h);
  }
}

template <class S, class D>
HWY_INLINE void StoreAs(D d, hn::Vec<D> v, S* p) {
  if constexpr (std::is_same_v<S, hn::TFromD<D>>) {
    hn::StoreU(v, d, p);
  } else if constexpr (std::is_same_v<S, double>) {
    const hn::Rebind<double, D> d64;
    hn::StoreU(hn::PromoteTo(d64, v), d64, p);
  } else {
    const hn::Rebind<uint16_t, D> d16;
    auto* q = reinterpret_cast<uint16_t*>(p);
    if constexpr (std::is_same_v<S, Half>)
      hn::StoreU(F32ToF16(d, v), d16, q);
    else
      hn::StoreU(F32ToBF16(d, v), d16, q);
  }
}

}  // namespace tessera::cpu::half_simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // TESSERA_CPU_HALF_SIMD_INL_H_
