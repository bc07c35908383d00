// Highway kernel for 2 x 2 max pooling (pool_simd.h). Compiled once per SIMD target
// (foreach_target re-includes it); keep it small.
#include "backends/cpu/pool_simd.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/pool_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Windows [0, n) one at a time: rows narrower than the narrowest vector, and the scalar target.
void ScalarRow(const float* r0, const float* r1, int64_t n, int64_t first, int32_t w, float* out,
               int64_t* index) {
  for (int64_t j = 0; j < n; ++j) {
    const float v[4] = {r0[2 * j], r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
    const int64_t offset[4] = {0, 1, w, w + 1};
    int k_best = 0;
    for (int k = 1; k < 4; ++k)
      if (v[k] > v[k_best] || v[k] != v[k]) k_best = k;
    out[j] = v[k_best];
    index[j] = first + 2 * j + offset[k_best];
  }
}

#if HWY_TARGET != HWY_SCALAR
// Windows [j, j + lanes): lanes are windows, the even and odd columns of both rows are the
// four taps, taken in order. The winner's offset from the window's first tap (0, 1, w, w + 1)
// is kept in int32 lanes and widened to the int64 plane index half a vector at a time.
template <class D>
void Windows(D d, const float* r0, const float* r1, int64_t j, int64_t first, int32_t w, float* out,
             int64_t* index) {
  const hn::RebindToSigned<D> di;
  const hn::Half<decltype(di)> dh;
  const hn::Rebind<int64_t, decltype(dh)> d64;
  hn::Vec<D> v[4];
  hn::LoadInterleaved2(d, r0 + 2 * j, v[0], v[1]);
  hn::LoadInterleaved2(d, r1 + 2 * j, v[2], v[3]);
  const int32_t offset[4] = {0, 1, w, w + 1};
  auto best = v[0];
  auto rel = hn::Zero(di);
  for (int k = 1; k < 4; ++k) {
    const auto take = hn::Or(hn::Gt(v[k], best), hn::IsNaN(v[k]));
    best = hn::IfThenElse(take, v[k], best);
    rel = hn::IfThenElse(hn::RebindMask(di, take), hn::Set(di, offset[k]), rel);
  }
  hn::StoreU(best, d, out + j);
  rel = hn::Add(rel, hn::ShiftLeft<1>(hn::Iota(di, 0)));  // window j + i starts 2i further on
  const auto base = hn::Set(d64, first + 2 * j);
  hn::StoreU(hn::Add(base, hn::PromoteTo(d64, hn::LowerHalf(dh, rel))), d64, index + j);
  hn::StoreU(hn::Add(base, hn::PromoteTo(d64, hn::UpperHalf(dh, rel))), d64,
             index + j + static_cast<int64_t>(hn::Lanes(dh)));
}

// A row of n >= lanes windows; the last vector overlaps the one before instead of leaving a
// scalar tail (windows are independent, so computing one twice is harmless).
template <class D>
void Row(D d, const float* r0, const float* r1, int64_t n, int64_t first, int32_t w, float* out,
         int64_t* index) {
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  int64_t j = 0;
  for (; j + lanes <= n; j += lanes) Windows(d, r0, r1, j, first, w, out, index);
  if (j < n) Windows(d, r0, r1, n - lanes, first, w, out, index);
}

#endif  // HWY_TARGET != HWY_SCALAR

// Pooled rows are short (14 and 5 windows in LeNet-5), so the widest vector that fits is used.
void MaxPool2x2F32(const float* r0, const float* r1, int64_t n, int64_t first, int32_t w,
                   float* out, int64_t* index) {
#if HWY_TARGET != HWY_SCALAR
  const hn::ScalableTag<float> d;
  const hn::CappedTag<float, 8> d8;
  const hn::CappedTag<float, 4> d4;
  if (n >= static_cast<int64_t>(hn::Lanes(d))) return Row(d, r0, r1, n, first, w, out, index);
  if (n >= static_cast<int64_t>(hn::Lanes(d8))) return Row(d8, r0, r1, n, first, w, out, index);
  if (n >= static_cast<int64_t>(hn::Lanes(d4))) return Row(d4, r0, r1, n, first, w, out, index);
#endif
  ScalarRow(r0, r1, n, first, w, out, index);
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {
HWY_EXPORT(MaxPool2x2F32);

void simd_max_pool_2x2_f32(const float* r0, const float* r1, int64_t n, int64_t first, int32_t w,
                           float* out, int64_t* index) {
  HWY_DYNAMIC_DISPATCH(MaxPool2x2F32)(r0, r1, n, first, w, out, index);
}
}  // namespace tessera::cpu
#endif
