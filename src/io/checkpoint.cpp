// Checkpoints are one safetensors file: state dicts under prefixes, scalars as 0-d int64
// tensors, and a format marker in the metadata so foreign files are refused clearly.
#include "tessera/io/checkpoint.h"

#include <bit>

#include "io/format_util.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::io {
namespace {

constexpr std::string_view kFormatKey = "tessera.format", kFormat = "checkpoint";
constexpr std::string_view kVersionKey = "tessera.version", kVersion = "1";
constexpr std::string_view kCrcKey = "tessera.crc32";

// The prefix of each state dict inside the file, and where it lives in a Checkpoint.
struct Section {
  std::string_view prefix;
  StateDict Checkpoint::*dict;
};
constexpr Section kSections[] = {{"model.", &Checkpoint::model},
                                 {"optim.", &Checkpoint::optimizer},
                                 {"sched.", &Checkpoint::scheduler},
                                 {"scaler.", &Checkpoint::scaler}};

// A uint64 travels as the int64 with the same bits (Tessera has no uint64 dtype).
Tensor u64_tensor(uint64_t v) { return scalar_tensor(std::bit_cast<int64_t>(v), kInt64); }

int64_t int64_scalar(const SafetensorsFile& f, const std::filesystem::path& path,
                     const std::string& key) {
  auto it = f.tensors.find(key);
  if (it == f.tensors.end())
    fail<IOError>("load_checkpoint", "{}: missing '{}'", path.string(), key);
  const Tensor& t = it->second;
  if (t.dtype() != kInt64 || t.dim() != 0)
    fail<IOError>("load_checkpoint", "{}: '{}' must be a 0-d int64 tensor, got {} of shape {}",
                  path.string(), key, dtype_name(t.dtype()), shape_str(t.shape()));
  return t.item<int64_t>();
}

// safetensors has no checksum; a checkpoint with flipped bits in its tensor data must not load.
// CRC-32 over every key, dtype, shape and byte, in key order (independent of the file layout).
std::string digest(const StateDict& all) {
  uint32_t crc = 0;
  for (const auto& [key, t] : all) {
    std::string head =
        fmt::format("{}\n{}\n{}\n", key, dtype_name(t.dtype()), shape_str(t.shape()));
    crc = detail::crc32_of({reinterpret_cast<const uint8_t*>(head.data()), head.size()}, crc);
    Tensor c = detail::host_contiguous(t);
    crc = detail::crc32_of({static_cast<const uint8_t*>(c.raw_data()), c.nbytes()}, crc);
  }
  return fmt::format("{:08x}", crc);
}

void check_digest(const SafetensorsFile& f, const std::filesystem::path& path) {
  auto crc = f.metadata.find(std::string(kCrcKey));
  if (crc == f.metadata.end())
    fail<IOError>("load_checkpoint", "{}: no {} checksum in the metadata", path.string(), kCrcKey);
  if (crc->second != digest(f.tensors))
    fail<IOError>("load_checkpoint", "{}: checksum mismatch: the tensor data is corrupted",
                  path.string());
}

void check_format(const Metadata& m, const std::filesystem::path& path) {
  auto format = m.find(std::string(kFormatKey));
  if (format == m.end() || format->second != kFormat)
    fail<IOError>("load_checkpoint", "{}: not a Tessera checkpoint (no {}={} metadata)",
                  path.string(), kFormatKey, kFormat);
  auto version = m.find(std::string(kVersionKey));
  if (version == m.end() || version->second != kVersion)
    fail<IOError>("load_checkpoint", "{}: checkpoint version '{}' is not supported (expected {})",
                  path.string(), version == m.end() ? "none" : version->second, kVersion);
}

// Sorts one stored tensor into its section; scalars are read separately.
void place(Checkpoint& ck, const std::filesystem::path& path, const std::string& key,
           const Tensor& t) {
  for (const Section& s : kSections) {
    if (key.starts_with(s.prefix)) {
      (ck.*s.dict).emplace(key.substr(s.prefix.size()), t);
      return;
    }
  }
  if (key != "rng.seed" && key != "rng.offset" && key != "step")
    fail<IOError>("load_checkpoint", "{}: unexpected key '{}'", path.string(), key);
}

// The error with the operation the caller used in its "[op]" prefix.
IOError renamed(const IOError& e, std::string_view from, std::string_view to) {
  std::string msg = e.what(), prefix = fmt::format("[{}]", from);
  if (msg.starts_with(prefix)) msg.replace(0, prefix.size(), fmt::format("[{}]", to));
  return IOError(msg);
}

}  // namespace

RngState capture_rng(const Generator& gen) { return {gen.seed(), gen.offset()}; }

void restore_rng(const RngState& s, Generator& gen) {
  gen.manual_seed(s.seed);
  gen.set_offset(s.offset);
}

void save_checkpoint(const std::filesystem::path& path, const Checkpoint& ck) {
  StateDict all;
  for (const Section& s : kSections)
    for (const auto& [name, t] : ck.*s.dict) all.emplace(std::string(s.prefix) + name, t);
  all.emplace("rng.seed", u64_tensor(ck.rng.seed));
  all.emplace("rng.offset", u64_tensor(ck.rng.offset));
  all.emplace("step", scalar_tensor(ck.step, kInt64));
  Metadata meta = ck.metadata;
  for (const auto& [k, v] : meta)
    if (k.starts_with("tessera."))
      fail<ValueError>("save_checkpoint", "metadata key '{}' is reserved (prefix 'tessera.')", k);
  meta.emplace(kFormatKey, kFormat);
  meta.emplace(kVersionKey, kVersion);
  meta.emplace(kCrcKey, digest(all));
  try {
    save_safetensors(path, all, meta);  // atomic: temporary file, fsync, rename, fsync folder
  } catch (const IOError& e) {
    throw renamed(e, "save_safetensors", "save_checkpoint");
  }
}

Checkpoint load_checkpoint(const std::filesystem::path& path, LoadMode mode) {
  SafetensorsFile f = [&] {
    try {
      return read_safetensors(path, mode);
    } catch (const IOError& e) {
      throw renamed(e, "load_safetensors", "load_checkpoint");
    }
  }();
  check_format(f.metadata, path);
  Checkpoint ck;
  for (const auto& [key, t] : f.tensors) place(ck, path, key, t);
  ck.rng.seed = std::bit_cast<uint64_t>(int64_scalar(f, path, "rng.seed"));
  ck.rng.offset = std::bit_cast<uint64_t>(int64_scalar(f, path, "rng.offset"));
  ck.step = int64_scalar(f, path, "step");
  for (const auto& [k, v] : f.metadata)
    if (!k.starts_with("tessera.")) ck.metadata.emplace(k, v);
  check_digest(f, path);  // last: the errors above say more about a malformed file
  return ck;
}

}  // namespace tessera::io
