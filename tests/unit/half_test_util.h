#pragma once
// 16-bit float tensors as raw bit patterns, and the scalar conversions the CPU kernels use:
// shared by the conversion and elementwise tests of the 16-bit SIMD paths.
#include <bit>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tessera/core/half.h"
#include "tessera/tessera.h"

namespace tessera::test {

/// A 1-d float16/bfloat16 tensor holding exactly these bit patterns.
inline Tensor tensor16(const std::vector<uint16_t>& bits, DType dt) {
  Tensor t = Tensor::empty({static_cast<int64_t>(bits.size())}, dt);
  if (!bits.empty()) std::memcpy(t.raw_data(), bits.data(), bits.size() * 2);  // no null args
  return t;
}

/// The bit patterns of a 16-bit tensor, in row-major order.
inline std::vector<uint16_t> bits16(const Tensor& t) {
  Tensor c = t.contiguous();
  std::vector<uint16_t> v(static_cast<size_t>(c.numel()));
  if (!v.empty()) std::memcpy(v.data(), c.raw_data(), v.size() * 2);  // no null args
  return v;
}

/// The scalar 16-bit -> float32 conversion (exact).
inline float to_f32(uint16_t h, DType dt) {
  return dt == kFloat16 ? Half::to_float(h) : std::bit_cast<float>(uint32_t{h} << 16);
}

/// The scalar float32 -> 16-bit conversion (round to nearest even, the CPU's NaN rules).
inline uint16_t to_16(float f, DType dt) {
  return dt == kFloat16 ? Half::from_float(f) : BFloat16::from_float(f);
}

}  // namespace tessera::test
