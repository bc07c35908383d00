// Highway rows of layer_norm and its backward (layer_norm_simd.h). Compiled once per SIMD
// target (foreach_target re-includes it); keep it small.
#include "backends/cpu/layer_norm_simd.h"

#include <algorithm>
#include <cmath>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/layer_norm_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

constexpr int64_t kBlock = 1024;  // elements summed in lanes before the fold into double

// Sum over the row of the terms vec(i) (a vector of lanes at i) and, past the last whole
// vector, scalar(i). Four accumulators hide the add latency.
template <class D, class V, class S>
double RowSum(D d, int64_t n, V vec, S scalar) {
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  double total = 0;
  int64_t i = 0;
  while (i + lanes <= n) {
    const int64_t end = std::min(n, i + kBlock);
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (; i + 4 * lanes <= end; i += 4 * lanes) {
      a0 = hn::Add(a0, vec(i));
      a1 = hn::Add(a1, vec(i + lanes));
      a2 = hn::Add(a2, vec(i + 2 * lanes));
      a3 = hn::Add(a3, vec(i + 3 * lanes));
    }
    for (; i + lanes <= end; i += lanes) a0 = hn::Add(a0, vec(i));
    total += static_cast<double>(
        hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)))));
  }
  for (; i < n; ++i) total += static_cast<double>(scalar(i));
  return total;
}

// y = (x - mean) * rstd [* w] [+ b]: one loop per case, so the loop has no branch.
template <bool kW, bool kB, class T>
void Normalize(const T* x, int64_t n, T mean, T rstd, const T* w, const T* b, T* y) {
  const hn::ScalableTag<T> d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, mean), vr = hn::Set(d, rstd);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    auto v = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vm), vr);
    if constexpr (kW && kB)
      v = hn::MulAdd(v, hn::LoadU(d, w + i), hn::LoadU(d, b + i));
    else if constexpr (kW)
      v = hn::Mul(v, hn::LoadU(d, w + i));
    hn::StoreU(v, d, y + i);
  }
  for (; i < n; ++i) {
    T v = (x[i] - mean) * rstd;
    if constexpr (kW && kB)
      v = v * w[i] + b[i];
    else if constexpr (kW)
      v = v * w[i];
    y[i] = v;
  }
}

template <class T>
void LayerNormRow(const T* x, int64_t n, double eps, const T* w, const T* b, T* y, T* mean_out,
                  T* rstd_out) {
  const hn::ScalableTag<T> d;
  const double count = static_cast<double>(n);  // 0 gives NaN statistics, as 0 / 0 should
  const auto m = static_cast<T>(
      RowSum(
          d, n, [&](int64_t i) { return hn::LoadU(d, x + i); }, [&](int64_t i) { return x[i]; }) /
      count);
  const auto vm = hn::Set(d, m);
  const double ss = RowSum(
      d, n,
      [&](int64_t i) {
        const auto c = hn::Sub(hn::LoadU(d, x + i), vm);
        return hn::Mul(c, c);
      },
      [&](int64_t i) { return (x[i] - m) * (x[i] - m); });
  const auto r = static_cast<T>(1.0 / std::sqrt(ss / count + eps));
  *mean_out = m;
  *rstd_out = r;
  if (w && b)
    Normalize<true, true>(x, n, m, r, w, b, y);
  else if (w)
    Normalize<true, false>(x, n, m, r, w, b, y);
  else
    Normalize<false, false>(x, n, m, r, w, b, y);
}

// Pass 1 of a backward row: the sums of g and g * xhat (returned in sg, sgx) and, with kAcc,
// dw += dy * xhat and db += dy.
template <bool kW, bool kAcc, class T>
void BackwardSums(const T* dy, const T* x, int64_t n, T mean, T rstd, const T* w, T* dw, T* db,
                  double& sg, double& sgx) {
  const hn::ScalableTag<T> d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, mean), vr = hn::Set(d, rstd);
  sg = sgx = 0;
  int64_t i = 0;
  while (i + lanes <= n) {
    const int64_t end = std::min(n, i + kBlock);
    auto ag = hn::Zero(d), agx = hn::Zero(d);
    for (; i + lanes <= end; i += lanes) {
      const auto vdy = hn::LoadU(d, dy + i);
      const auto xh = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vm), vr);
      const auto g = kW ? hn::Mul(vdy, hn::LoadU(d, w + i)) : vdy;
      ag = hn::Add(ag, g);
      agx = hn::MulAdd(g, xh, agx);
      if constexpr (kAcc) {
        hn::StoreU(hn::MulAdd(vdy, xh, hn::LoadU(d, dw + i)), d, dw + i);
        hn::StoreU(hn::Add(hn::LoadU(d, db + i), vdy), d, db + i);
      }
    }
    sg += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, ag)));
    sgx += static_cast<double>(hn::GetLane(hn::SumOfLanes(d, agx)));
  }
  for (; i < n; ++i) {
    const T xh = (x[i] - mean) * rstd;
    const T g = kW ? dy[i] * w[i] : dy[i];
    sg += static_cast<double>(g);
    sgx += static_cast<double>(g * xh);
    if constexpr (kAcc) {
      dw[i] += dy[i] * xh;
      db[i] += dy[i];
    }
  }
}

// Pass 2: dx = rstd * (g - a - xhat * c).
template <bool kW, class T>
void BackwardDx(const T* dy, const T* x, int64_t n, T mean, T rstd, const T* w, T a, T c, T* dx) {
  const hn::ScalableTag<T> d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto vm = hn::Set(d, mean), vr = hn::Set(d, rstd), va = hn::Set(d, a), vc = hn::Set(d, c);
  int64_t i = 0;
  for (; i + lanes <= n; i += lanes) {
    const auto vdy = hn::LoadU(d, dy + i);
    const auto xh = hn::Mul(hn::Sub(hn::LoadU(d, x + i), vm), vr);
    const auto g = kW ? hn::Mul(vdy, hn::LoadU(d, w + i)) : vdy;
    hn::StoreU(hn::Mul(vr, hn::NegMulAdd(xh, vc, hn::Sub(g, va))), d, dx + i);
  }
  for (; i < n; ++i) {
    const T xh = (x[i] - mean) * rstd;
    const T g = kW ? dy[i] * w[i] : dy[i];
    dx[i] = rstd * (g - a - xh * c);
  }
}

template <bool kW, class T>
void BackwardRowW(const T* dy, const T* x, int64_t n, T mean, T rstd, const T* w, T* dx, T* dw,
                  T* db) {
  double sg = 0, sgx = 0;
  if (dw)
    BackwardSums<kW, true>(dy, x, n, mean, rstd, w, dw, db, sg, sgx);
  else
    BackwardSums<kW, false>(dy, x, n, mean, rstd, w, dw, db, sg, sgx);
  const double count = static_cast<double>(n);
  BackwardDx<kW>(dy, x, n, mean, rstd, w, static_cast<T>(sg / count), static_cast<T>(sgx / count),
                 dx);
}

template <class T>
void LayerNormBackwardRow(const T* dy, const T* x, int64_t n, T mean, T rstd, const T* w, T* dx,
                          T* dw, T* db) {
  if (w)
    BackwardRowW<true>(dy, x, n, mean, rstd, w, dx, dw, db);
  else
    BackwardRowW<false>(dy, x, n, mean, rstd, w, dx, dw, db);
}

void LayerNormRowF32(const float* x, int64_t n, double eps, const float* w, const float* b,
                     float* y, float* mean, float* rstd) {
  LayerNormRow(x, n, eps, w, b, y, mean, rstd);
}
void LayerNormRowF64(const double* x, int64_t n, double eps, const double* w, const double* b,
                     double* y, double* mean, double* rstd) {
  LayerNormRow(x, n, eps, w, b, y, mean, rstd);
}
void LayerNormBackwardRowF32(const float* dy, const float* x, int64_t n, float mean, float rstd,
                             const float* w, float* dx, float* dw, float* db) {
  LayerNormBackwardRow(dy, x, n, mean, rstd, w, dx, dw, db);
}
void LayerNormBackwardRowF64(const double* dy, const double* x, int64_t n, double mean, double rstd,
                             const double* w, double* dx, double* dw, double* db) {
  LayerNormBackwardRow(dy, x, n, mean, rstd, w, dx, dw, db);
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {
HWY_EXPORT(LayerNormRowF32);
HWY_EXPORT(LayerNormRowF64);
HWY_EXPORT(LayerNormBackwardRowF32);
HWY_EXPORT(LayerNormBackwardRowF64);

void simd_layer_norm_row_f32(const float* x, int64_t n, double eps, const float* w, const float* b,
                             float* y, float* mean, float* rstd) {
  HWY_DYNAMIC_DISPATCH(LayerNormRowF32)(x, n, eps, w, b, y, mean, rstd);
}
void simd_layer_norm_row_f64(const double* x, int64_t n, double eps, const double* w,
                             const double* b, double* y, double* mean, double* rstd) {
  HWY_DYNAMIC_DISPATCH(LayerNormRowF64)(x, n, eps, w, b, y, mean, rstd);
}
void simd_layer_norm_backward_row_f32(const float* dy, const float* x, int64_t n, float mean,
                                      float rstd, const float* w, float* dx, float* dw, float* db) {
  HWY_DYNAMIC_DISPATCH(LayerNormBackwardRowF32)(dy, x, n, mean, rstd, w, dx, dw, db);
}
void simd_layer_norm_backward_row_f64(const double* dy, const double* x, int64_t n, double mean,
                                      double rstd, const double* w, double* dx, double* dw,
                                      double* db) {
  HWY_DYNAMIC_DISPATCH(LayerNormBackwardRowF64)(dy, x, n, mean, rstd, w, dx, dw, db);
}
}  // namespace tessera::cpu
#endif
