#pragma once
// safetensors files (Hugging Face's format): an 8-byte little-endian header size N, N bytes of
// JSON {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the tensor bytes.
//
//   io::save_safetensors("model.safetensors", module_state, {{"epoch", "3"}});
//   StateDict sd = io::load_safetensors("model.safetensors");
//
// Loading validates the whole header (dtypes, shapes, offsets, full coverage of the data) before
// it reads any tensor byte, and raises IOError naming the file and the problem. Large files are
// memory-mapped (copy-on-write, so in-place ops on a loaded tensor never touch the file); the
// mapping lives as long as any tensor viewing it. Replacing a mapped file is safe (every save
// here writes a new file and renames it), but truncating it in place while its tensors live
// makes reading them fault (SIGBUS), as with any mapping.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "tessera/io/state_dict.h"

namespace tessera::io {

/// Free-form string annotations stored in the header's "__metadata__".
using Metadata = std::map<std::string, std::string>;

/// How tensor bytes get into memory. Map: tensors view a private mapping of the file. Read: each
/// tensor gets its own buffer. Auto: Map for files of at least kMapThreshold bytes.
enum class LoadMode { Auto, Map, Read };
inline constexpr uint64_t kMapThreshold = uint64_t{1} << 20;

/// Everything a safetensors file holds.
struct SafetensorsFile {
  StateDict tensors;
  Metadata metadata;
};

/// Writes tensors (any device, any strides; copied to contiguous CPU bytes) and metadata. The
/// file is written to a temporary name and renamed over path, so readers never see half a file.
/// Dtypes: bool, u8, i8, i16, i32, i64, f16, bf16, f32, f64, c64 (C64 needs safetensors >= 0.6).
void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const Metadata& metadata = {});
/// The tensors of a safetensors file.
StateDict load_safetensors(const std::filesystem::path& path, LoadMode mode = LoadMode::Auto);
/// Tensors and metadata of a safetensors file.
SafetensorsFile read_safetensors(const std::filesystem::path& path, LoadMode mode = LoadMode::Auto);
/// Only the metadata (reads and validates the header, not the tensor bytes).
Metadata load_safetensors_metadata(const std::filesystem::path& path);

}  // namespace tessera::io
