// Highway fast path of the elementwise kernels for float32 and float64 rows (and rows against
// a broadcast scalar), compiled once per ISA and chosen at run time; float16/bfloat16 rows are
// in elementwise_simd16.cpp, a separate file so that the two compile in parallel. The functors
// and loops are in elementwise_simd-inl.h.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/elementwise_simd.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "backends/cpu/elementwise_simd-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::ew::HWY_NAMESPACE {

SimdTable GetSimdTable() {
  SimdTable t{};
  FillSimdSlots<float, double>(t);
  return t;
}

}  // namespace tessera::cpu::ew::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::ew {

HWY_EXPORT(GetSimdTable);

const SimdTable& simd_table() {
  // Resolved once: the per-call cost is a static guard check and an indirect call.
  static const SimdTable t = [] {
    SimdTable s = HWY_DYNAMIC_DISPATCH(GetSimdTable)();
    fill_simd_table16(s);
    return s;
  }();
  return t;
}

}  // namespace tessera::cpu::ew
#endif
