// Highway kernel for the convolutions' im2col (im2col_simd.h). Compiled once per SIMD target
// (foreach_target re-includes it); keep it small.
#include "backends/cpu/im2col_simd.h"

#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/im2col_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// Copies n >= lanes floats; the last vector overlaps the one before instead of a scalar tail.
template <class D>
bool CopyWith(D d, const float* src, float* dst, int64_t n) {
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  if (n < lanes) return false;
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) hn::StoreU(hn::LoadU(d, src + i), d, dst + i);
  if (i < n) hn::StoreU(hn::LoadU(d, src + n - lanes), d, dst + n - lanes);
  return true;
}
#endif

// Runs are one output row long (28 and 10 floats in LeNet-5), so the widest vector that fits
// is used.
void CopyRun(const float* src, float* dst, int64_t n) {
#if HWY_TARGET != HWY_SCALAR
  if (CopyWith(hn::ScalableTag<float>(), src, dst, n) ||
      CopyWith(hn::CappedTag<float, 8>(), src, dst, n) ||
      CopyWith(hn::CappedTag<float, 4>(), src, dst, n))
    return;
#endif
  std::copy(src, src + n, dst);
}

void Im2ColF32(const Im2ColRows& a) {
  for (int64_t c = a.c0; c < a.c1; ++c)
    for (int64_t i = 0; i < a.kh; ++i)
      for (int64_t j = 0; j < a.kw; ++j) {
        float* row = a.cols + ((c * a.kh + i) * a.kw + j) * a.ld;
        // Output columns [lo, hi) read the image; the others are padding.
        const int64_t lo = std::clamp<int64_t>(a.pw - j, 0, a.ow);
        const int64_t hi = std::clamp<int64_t>(a.w + a.pw - j, lo, a.ow);
        for (int64_t y = 0; y < a.oh; ++y) {
          float* out = row + y * a.ow;
          const int64_t ih = y * a.sh - a.ph + i * a.dh;
          if (ih < 0 || ih >= a.h) {
            std::fill(out, out + a.ow, 0.f);
            continue;
          }
          std::fill(out, out + lo, 0.f);
          CopyRun(a.img + c * a.cs + ih * a.rs + lo - a.pw + j, out + lo, hi - lo);
          std::fill(out + hi, out + a.ow, 0.f);
        }
      }
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {
HWY_EXPORT(Im2ColF32);

void simd_im2col_f32(const Im2ColRows& a) { HWY_DYNAMIC_DISPATCH(Im2ColF32)(a); }
}  // namespace tessera::cpu
#endif
