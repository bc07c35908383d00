// Highway fast path of the elementwise kernels for float16 and bfloat16 rows: each row is
// promoted to float32 lanes, computed by the float32 functors and rounded once into 16 bits
// (elementwise_simd-inl.h, half_simd-inl.h), bitwise what the scalar loop computes for the
// correctly rounded ops. Before this path, 16-bit elementwise ops ran the scalar loop at a
// thirtieth of the float32 speed. Compiled once per ISA, chosen at run time.
// clang-format off
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "backends/cpu/elementwise_simd16.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "backends/cpu/elementwise_simd-inl.h"
// clang-format on

HWY_BEFORE_NAMESPACE();
namespace tessera::cpu::ew::HWY_NAMESPACE {

void FillSimdTable16(SimdTable& t) { FillSimdSlots<Half, BFloat16>(t); }

}  // namespace tessera::cpu::ew::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tessera::cpu::ew {

HWY_EXPORT(FillSimdTable16);

void fill_simd_table16(SimdTable& t) { HWY_DYNAMIC_DISPATCH(FillSimdTable16)(t); }

}  // namespace tessera::cpu::ew
#endif
