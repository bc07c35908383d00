// Highway conversions of contiguous rows between float32/float64 and float16/bfloat16. The
// lane arithmetic (half_simd-inl.h) is the scalar Half/BFloat16 algorithm, so results are
// bitwise those of the scalar loop; float64 goes through float32 as static_cast does (double
// rounding included). Compiled once per SIMD target: keep it small.
#include "backends/cpu/convert_simd.h"

#include <cstring>
#include <type_traits>

// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/convert_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "backends/cpu/half_simd-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using half_simd::HWY_NAMESPACE::LoadAs;
using half_simd::HWY_NAMESPACE::StoreAs;

template <class From, class To>
void ConvertRow(const void* vsrc, void* vdst, int64_t n64) {
  // float lanes; as many as double lanes when one side is float64.
  using D = std::conditional_t<std::is_same_v<From, double> || std::is_same_v<To, double>,
                               hn::Rebind<float, hn::ScalableTag<double>>, hn::ScalableTag<float>>;
  const D d;
  const auto* src = static_cast<const From*>(vsrc);
  auto* dst = static_cast<To*>(vdst);
  const auto n = static_cast<size_t>(n64);
  const size_t N = hn::Lanes(d);
  size_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    StoreAs(d, LoadAs(d, src + i), dst + i);
    StoreAs(d, LoadAs(d, src + i + N), dst + i + N);
  }
  for (; i + N <= n; i += N) StoreAs(d, LoadAs(d, src + i), dst + i);
  if (i == n) return;
  // Tail: through padded buffers, by the same vector code.
  HWY_ALIGN From in[HWY_MAX_BYTES / sizeof(float)] = {};
  HWY_ALIGN To out[HWY_MAX_BYTES / sizeof(float)] = {};
  std::memcpy(in, src + i, (n - i) * sizeof(From));
  StoreAs(d, LoadAs(d, in), out);
  std::memcpy(dst + i, out, (n - i) * sizeof(To));
}

ConvertTable GetConvertTable() {
  ConvertTable t{};
  t.fn[kF32ToF16] = &ConvertRow<float, Half>;
  t.fn[kF32ToBF16] = &ConvertRow<float, BFloat16>;
  t.fn[kF16ToF32] = &ConvertRow<Half, float>;
  t.fn[kBF16ToF32] = &ConvertRow<BFloat16, float>;
  t.fn[kF64ToF16] = &ConvertRow<double, Half>;
  t.fn[kF64ToBF16] = &ConvertRow<double, BFloat16>;
  t.fn[kF16ToF64] = &ConvertRow<Half, double>;
  t.fn[kBF16ToF64] = &ConvertRow<BFloat16, double>;
  t.fn[kF16ToBF16] = &ConvertRow<Half, BFloat16>;
  t.fn[kBF16ToF16] = &ConvertRow<BFloat16, Half>;
  return t;
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {

HWY_EXPORT(GetConvertTable);

ConvertRowFn simd_convert_fn(DType from, DType to) {
  static const ConvertTable t = HWY_DYNAMIC_DISPATCH(GetConvertTable)();
  struct Row {
    DType from, to;
    ConvertPair pair;
  };
  static constexpr Row kRows[] = {
      {kFloat32, kFloat16, kF32ToF16},   {kFloat32, kBFloat16, kF32ToBF16},
      {kFloat16, kFloat32, kF16ToF32},   {kBFloat16, kFloat32, kBF16ToF32},
      {kFloat64, kFloat16, kF64ToF16},   {kFloat64, kBFloat16, kF64ToBF16},
      {kFloat16, kFloat64, kF16ToF64},   {kBFloat16, kFloat64, kBF16ToF64},
      {kFloat16, kBFloat16, kF16ToBF16}, {kBFloat16, kFloat16, kBF16ToF16},
  };
  for (const Row& r : kRows)
    if (r.from == from && r.to == to) return t.fn[r.pair];
  return nullptr;
}

}  // namespace tessera::cpu
#endif
