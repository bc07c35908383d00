#pragma once
// Counter-based random numbers (Philox4x32-10). Element i of a draw depends only on
// (seed, offset + i), so results do not depend on thread count or device.
#include <array>
#include <cstdint>
#include <mutex>

namespace tessera {

/// Philox4x32 with 10 rounds: four 32-bit outputs per (counter, key).
std::array<uint32_t, 4> philox4x32(std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) : seed_(seed) {}
  void manual_seed(uint64_t seed);
  uint64_t seed() const { return seed_; }
  /// Reserves n counters for one draw and returns the first; thread-safe.
  uint64_t reserve(uint64_t n);
  /// Current position in the stream (with the seed, the whole state).
  uint64_t offset() const { return offset_; }
  void set_offset(uint64_t off) { offset_ = off; }

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
  std::mutex mu_;
};

/// The process-wide default generator.
Generator& default_generator();
/// Seeds the default generator.
void manual_seed(uint64_t seed);

/// The 4 random words for counter c of a draw (seed, offset).
inline std::array<uint32_t, 4> philox_at(uint64_t seed, uint64_t counter) {
  return philox4x32({static_cast<uint32_t>(counter), static_cast<uint32_t>(counter >> 32), 0, 0},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
}

}  // namespace tessera
