// Highway kernels for the reduce family's hot paths. This file is compiled once per SIMD
// target (foreach_target re-includes it); keep it small.
#include "backends/cpu/reduce_simd.h"

#include <algorithm>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/reduce_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Four independent accumulators hide the add latency so the loop runs at memory speed.
template <class T>
T SumBlock(const T* p, int64_t& i, int64_t end) {
  const hn::ScalableTag<T> d;
  const auto lanes = static_cast<int64_t>(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  for (; i + 4 * lanes <= end; i += 4 * lanes) {
    a0 = hn::Add(a0, hn::LoadU(d, p + i));
    a1 = hn::Add(a1, hn::LoadU(d, p + i + lanes));
    a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * lanes));
    a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * lanes));
  }
  return hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
}

double SumF32(const float* p, int64_t n) {
  constexpr int64_t kBlock = 1024;  // 1024 / (4 accumulators x lanes) adds per lane, then double
  double total = 0;
  int64_t i = 0;
  while (i < n) {
    const int64_t end = std::min(n, i + kBlock);
    total += static_cast<double>(SumBlock(p, i, end));
    for (; i < end && end == n; ++i) total += static_cast<double>(p[i]);  // tail of the last block
  }
  return total;
}

double SumF64(const double* p, int64_t n) {
  int64_t i = 0;
  double total = SumBlock(p, i, n);
  for (; i < n; ++i) total += p[i];
  return total;
}

}  // namespace tessera::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu {
HWY_EXPORT(SumF32);
HWY_EXPORT(SumF64);

double simd_sum_f32(const float* p, int64_t n) { return HWY_DYNAMIC_DISPATCH(SumF32)(p, n); }
double simd_sum_f64(const double* p, int64_t n) { return HWY_DYNAMIC_DISPATCH(SumF64)(p, n); }
}  // namespace tessera::cpu
#endif
