#pragma once
// Random draws for the data layer from a Philox generator (the default one when null).
#include <array>
#include <cstdint>

#include "tessera/core/generator.h"

namespace tessera::data::detail {

/// Four fresh random words: one counter reserved from gen.
inline std::array<uint32_t, 4> draw_words(Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  return philox_at(g.seed(), g.reserve(1));
}

/// A 64-bit integer from two words.
inline uint64_t to_u64(uint32_t hi, uint32_t lo) { return (uint64_t{hi} << 32) | lo; }

/// A double uniform in [0, 1) from 53 random bits.
inline double to_unit(uint32_t hi, uint32_t lo) {
  return static_cast<double>(to_u64(hi, lo) >> 11) * 0x1.0p-53;
}

}  // namespace tessera::data::detail
