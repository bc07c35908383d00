#pragma once
// File plumbing shared by the io formats: bounds-checked reads, private mappings, atomic writes.
// Every failure is an IOError "[op] <file>: <problem>".
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace tessera::io::detail {

/// Something bytes can be read from at offsets: a file or a buffer in memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  /// Copies exactly n bytes at offset into dst; IOError when they are not all there.
  virtual void read_at(uint64_t offset, void* dst, size_t n) const = 0;
  /// How messages name the source (a path, or "archive.npz:member.npy").
  virtual const std::string& name() const = 0;
};

/// A private, copy-on-write mapping of a whole file: tensors may view it and even write to it
/// without changing the file. Unmapped when the last holder goes away.
class Mapping {
 public:
  Mapping(void* data, size_t size) : data_(static_cast<uint8_t*>(data)), size_(size) {}
  ~Mapping();
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  uint8_t* data_;
  size_t size_;
};

/// A file opened for reading.
class InputFile : public ByteSource {
 public:
  InputFile(const std::filesystem::path& path, std::string_view op);
  ~InputFile() override;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, void* dst, size_t n) const override;
  const std::string& name() const override { return name_; }
  std::string_view op() const { return op_; }
  /// Maps the whole file (see Mapping).
  std::shared_ptr<Mapping> map() const;

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string name_;
  std::string op_;
};

/// A buffer in memory seen as a ByteSource (a decompressed .npz member).
class MemorySource : public ByteSource {
 public:
  MemorySource(std::span<const uint8_t> bytes, std::string name, std::string_view op)
      : bytes_(bytes), name_(std::move(name)), op_(op) {}
  uint64_t size() const override { return bytes_.size(); }
  void read_at(uint64_t offset, void* dst, size_t n) const override;
  const std::string& name() const override { return name_; }

 private:
  std::span<const uint8_t> bytes_;
  std::string name_;
  std::string op_;
};

/// Writes a file atomically: bytes go to a fresh temporary file next to the target ("<name>.tmp.
/// <pid>.<n>"); commit() fsyncs it, renames it over the target and fsyncs the folder. Until then
/// the target is untouched; destroying an uncommitted writer removes the temporary file.
class AtomicWriter {
 public:
  AtomicWriter(const std::filesystem::path& target, std::string_view op);
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t n);
  uint64_t written() const { return written_; }
  void commit();
  const std::filesystem::path& temp_path() const { return temp_; }

 private:
  [[noreturn]] void fail_errno(std::string_view what, int err) const;
  std::filesystem::path target_, temp_;
  std::string op_;
  int fd_ = -1;
  uint64_t written_ = 0;
  bool committed_ = false;
};

/// Little-endian integer encoding and decoding (the formats are all little-endian).
uint64_t load_le(const uint8_t* p, int nbytes);
void store_le(uint8_t* p, uint64_t v, int nbytes);

/// The host must be little-endian (every format here stores little-endian data).
void require_little_endian_host(std::string_view op);

}  // namespace tessera::io::detail
