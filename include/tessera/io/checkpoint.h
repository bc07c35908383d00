#pragma once
// Training checkpoints: model, optimizer, scheduler and gradient scaler state, the RNG state and
// the step, in ONE safetensors file with prefixed keys ("model.", "optim.", "sched.",
// "scaler.", "rng.seed", "rng.offset", "step").
//
//   io::Checkpoint ck{model.state_dict(), opt.state_dict(), sched.state_dict(),
//                     io::capture_rng(), step};
//   io::save_checkpoint("run/last.safetensors", ck);  // atomic: old file or new, never half
//   io::Checkpoint back = io::load_checkpoint("run/last.safetensors");
//   io::restore_rng(back.rng);
//
// Saving writes a temporary file in the target's folder, fsyncs it, renames it over the target
// and fsyncs the folder, so a crash at any moment leaves the previous checkpoint loadable (a
// crash can leave a stray "<name>.tmp.*" file next to it, which loading ignores). The metadata
// holds a CRC-32 of every key, dtype, shape and byte, so flipped bits in the data are caught.
#include <cstdint>
#include <filesystem>

#include "tessera/core/generator.h"
#include "tessera/io/safetensors.h"
#include "tessera/io/state_dict.h"

namespace tessera::io {

/// The whole state of a Philox generator.
struct RngState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool operator==(const RngState&) const = default;
};

/// The state of gen (default: the process-wide generator).
RngState capture_rng(const Generator& gen = default_generator());
/// Puts gen (default: the process-wide generator) back into state s.
void restore_rng(const RngState& s, Generator& gen = default_generator());

struct Checkpoint {
  StateDict model;
  StateDict optimizer;
  StateDict scheduler;
  RngState rng;
  int64_t step = 0;
  /// Free-form annotations; keys starting with "tessera." are reserved.
  Metadata metadata;
  /// A mixed-precision run's optim::GradScaler::state_dict() (empty otherwise).
  StateDict scaler;
};

/// Writes ck to path atomically (see above).
void save_checkpoint(const std::filesystem::path& path, const Checkpoint& ck);
/// Reads a checkpoint written by save_checkpoint; a truncated, corrupted or foreign file raises
/// IOError.
Checkpoint load_checkpoint(const std::filesystem::path& path, LoadMode mode = LoadMode::Auto);

}  // namespace tessera::io
