// Highway kernels for the convolutions' im2col and col2im (im2col_simd.h). Compiled once per SIMD
// target (foreach_target re-includes it); keep it small.
#include "backends/cpu/im2col_simd.h"

#include <algorithm>
#include <vector>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/im2col_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET != HWY_SCALAR
// Copies `rows` runs of n >= lanes floats, src runs `step` apart, dst runs back to back; the
// last vector of a run overlaps the one before instead of a scalar tail.
template <class D>
bool CopyRunsWith(D d, const float* src, int64_t step, float* dst, int64_t rows, int64_t n) {
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  if (n < lanes) return false;
  for (int64_t r = 0; r < rows; ++r, src += step, dst += n) {
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) hn::StoreU(hn::LoadU(d, src + i), d, dst + i);
    if (i < n) hn::StoreU(hn::LoadU(d, src + n - lanes), d, dst + n - lanes);
  }
  return true;
}
#endif

// Runs are one output row long (28 and 10 floats in LeNet-5), so the widest vector that fits
// is used.
void CopyRuns(const float* src, int64_t step, float* dst, int64_t rows, int64_t n) {
#if HWY_TARGET != HWY_SCALAR
  if (CopyRunsWith(hn::ScalableTag<float>(), src, step, dst, rows, n) ||
      CopyRunsWith(hn::CappedTag<float, 8>(), src, step, dst, rows, n) ||
      CopyRunsWith(hn::CappedTag<float, 4>(), src, step, dst, rows, n))
    return;
#endif
  for (int64_t r = 0; r < rows; ++r) std::copy(src + r * step, src + r * step + n, dst + r * n);
}

#if HWY_TARGET != HWY_SCALAR
// dst[r * step + i] += src[r * n + i] for `rows` runs of n >= lanes floats; the last vector
// overlaps the one before with its already-added lanes zeroed.
template <class D>
bool AddRunsWith(D d, const float* src, float* dst, int64_t step, int64_t rows, int64_t n) {
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  if (n < lanes) return false;
  for (int64_t r = 0; r < rows; ++r, src += n, dst += step) {
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes)
      hn::StoreU(hn::Add(hn::LoadU(d, dst + i), hn::LoadU(d, src + i)), d, dst + i);
    if (i < n) {
      const int64_t at = n - lanes;
      const auto fresh = hn::Not(hn::FirstN(d, static_cast<size_t>(i - at)));
      hn::StoreU(hn::Add(hn::LoadU(d, dst + at), hn::IfThenElseZero(fresh, hn::LoadU(d, src + at))),
                 d, dst + at);
    }
  }
  return true;
}
#endif

void AddRuns(const float* src, float* dst, int64_t step, int64_t rows, int64_t n) {
#if HWY_TARGET != HWY_SCALAR
  if (AddRunsWith(hn::ScalableTag<float>(), src, dst, step, rows, n) ||
      AddRunsWith(hn::CappedTag<float, 8>(), src, dst, step, rows, n) ||
      AddRunsWith(hn::CappedTag<float, 4>(), src, dst, step, rows, n))
    return;
#endif
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < n; ++i) dst[r * step + i] += src[r * n + i];
}

// The channels c0..c1 of an image with its zero padding written out, so every run of the
// column matrix is a plain copy (im2col) or add (col2im): no bounds checks or fills per run.
struct PaddedImage {
  int64_t cs, rs;
  int64_t h, w, ph, pw, channels;

  explicit PaddedImage(const ColGeom& g)
      : cs((g.h + 2 * g.ph) * (g.w + 2 * g.pw)),
        rs(g.w + 2 * g.pw),
        h(g.h),
        w(g.w),
        ph(g.ph),
        pw(g.pw),
        channels(g.c1 - g.c0) {}
  size_t size() const { return static_cast<size_t>(channels * cs); }
  // Element (c, y, x) of the unpadded image.
  int64_t at(int64_t c, int64_t y, int64_t x) const { return c * cs + (y + ph) * rs + x + pw; }
};

// The column matrix's runs: row (c * kh + i) * kw + j reads (or writes) oh runs of ow floats
// from padded row y * sh + i * dh, column j.
template <class Fn>
void EachRowOfRuns(const ColGeom& g, const PaddedImage& p, Fn&& fn) {
  for (int64_t c = g.c0; c < g.c1; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j)
        fn((c - g.c0) * p.cs + i * g.dh * p.rs + j, g.sh * p.rs,
           ((c * g.kh + i) * g.kw + j) * g.ld);
}

void Im2ColF32(const ColGeom& g, const float* img, float* cols) {
  const float* base = img + g.c0 * g.cs;
  PaddedImage p(g);
  thread_local std::vector<float> buf;
  if (g.ph != 0 || g.pw != 0) {
    buf.assign(p.size(), 0.f);
    for (int64_t c = 0; c < p.channels; ++c)
      for (int64_t y = 0; y < g.h; ++y)
        std::copy(base + c * g.cs + y * g.rs, base + c * g.cs + y * g.rs + g.w,
                  buf.data() + p.at(c, y, 0));
    base = buf.data();
  } else {
    p.cs = g.cs, p.rs = g.rs;  // the image itself
  }
  EachRowOfRuns(g, p, [&](int64_t from, int64_t step, int64_t row) {
    CopyRuns(base + from, step, cols + row, g.oh, g.ow);
  });
}

void Col2ImF32(const ColGeom& g, const float* cols, float* img) {
  PaddedImage p(g);
  thread_local std::vector<float> buf;
  buf.assign(p.size(), 0.f);
  EachRowOfRuns(g, p, [&](int64_t to, int64_t step, int64_t row) {
    AddRuns(cols + row, buf.data() + to, step, g.oh, g.ow);
  });
  for (int64_t c = 0; c < p.channels; ++c)
    for (int64_t y = 0; y < g.h; ++y) {
      float* out = img + (g.c0 + c) * g.cs + y * g.rs;
      const float* in = buf.data() + p.at(c, y, 0);
      for (int64_t x = 0; x < g.w; ++x) out[x] += in[x];
    }
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {
HWY_EXPORT(Im2ColF32);
HWY_EXPORT(Col2ImF32);

void simd_im2col_f32(const ColGeom& g, const float* img, float* cols) {
  HWY_DYNAMIC_DISPATCH(Im2ColF32)(g, img, cols);
}
void simd_col2im_f32(const ColGeom& g, const float* cols, float* img) {
  HWY_DYNAMIC_DISPATCH(Col2ImF32)(g, cols, img);
}
}  // namespace tessera::cpu
#endif
