#pragma once
// The part of the zip format .npz files need: reading stored and deflate members (zip64 too, as
// NumPy writes it) with CRC checks, and writing stored members.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/file.h"

namespace tessera::io::detail {

/// One member, as the central directory describes it (offsets already checked against the file).
struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc = 0;
  uint64_t csize = 0, usize = 0;
  uint64_t data_offset = 0;  // first byte of the (compressed) data in the file
};

/// The members of the archive; IOError for anything malformed or unsupported.
std::vector<ZipEntry> read_zip_directory(const InputFile& f);
/// The uncompressed bytes of one member, CRC-checked.
std::vector<uint8_t> read_zip_entry(const InputFile& f, const ZipEntry& e);

/// Writes a zip of stored (uncompressed) members into an AtomicWriter.
class ZipWriter {
 public:
  ZipWriter(AtomicWriter& out, std::string_view op) : out_(out), op_(op) {}
  /// Adds a member whose bytes are the concatenation of parts.
  void add(const std::string& name, std::span<const std::span<const uint8_t>> parts);
  /// Writes the central directory and the end record.
  void finish();

 private:
  struct Member {
    std::string name;
    uint32_t crc;
    uint64_t size, offset;
  };
  void check_fits(uint64_t v, std::string_view what) const;
  AtomicWriter& out_;
  std::string op_;
  std::vector<Member> members_;
};

}  // namespace tessera::io::detail
