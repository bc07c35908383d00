#include "io/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>

#include "tessera/core/error.h"

namespace tessera::io::detail {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Unique within the process (counter) and across processes (pid); O_EXCL catches the rest.
std::filesystem::path temp_name_for(const std::filesystem::path& target) {
  static std::atomic<uint64_t> counter{0};
  std::string name = target.filename().string() + ".tmp." + std::to_string(::getpid()) + "." +
                     std::to_string(counter.fetch_add(1));
  return target.parent_path() / name;
}

// Makes the rename itself durable; some file systems cannot fsync a folder, which is harmless.
void fsync_folder(const std::filesystem::path& folder) {
  std::string dir = folder.empty() ? std::string(".") : folder.string();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

Mapping::~Mapping() { ::munmap(data_, size_); }

InputFile::InputFile(const std::filesystem::path& path, std::string_view op)
    : name_(path.string()), op_(op) {
  fd_ = ::open(name_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) fail<IOError>(op_, "{}: cannot open: {}", name_, errno_text(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    if (S_ISDIR(st.st_mode)) fail<IOError>(op_, "{}: is a directory", name_);
    fail<IOError>(op_, "{}: not a regular file ({})", name_, errno_text(err));
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

void InputFile::read_at(uint64_t offset, void* dst, size_t n) const {
  if (offset > size_ || n > size_ - offset)
    fail<IOError>(op_, "{}: reading {} bytes at offset {} runs past the end ({} bytes)", name_, n,
                  offset, size_);
  auto* out = static_cast<char*>(dst);
  size_t done = 0;
  while (done < n) {
    ssize_t got = ::pread(fd_, out + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail<IOError>(op_, "{}: read failed: {}", name_, errno_text(errno));
    if (got == 0)  // the file shrank under us
      fail<IOError>(op_, "{}: file ended at byte {} (expected {})", name_, offset + done, size_);
    done += static_cast<size_t>(got);
  }
}

std::shared_ptr<Mapping> InputFile::map() const {
  if (size_ == 0) fail<IOError>(op_, "{}: cannot map an empty file", name_);
  void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
  if (p == MAP_FAILED) fail<IOError>(op_, "{}: mmap failed: {}", name_, errno_text(errno));
  return std::make_shared<Mapping>(p, size_);
}

void MemorySource::read_at(uint64_t offset, void* dst, size_t n) const {
  if (offset > bytes_.size() || n > bytes_.size() - offset)
    fail<IOError>(op_, "{}: reading {} bytes at offset {} runs past the end ({} bytes)", name_, n,
                  offset, bytes_.size());
  if (n > 0) std::memcpy(dst, bytes_.data() + offset, n);
}

AtomicWriter::AtomicWriter(const std::filesystem::path& target, std::string_view op)
    : target_(target), op_(op) {
  if (target.filename().empty()) fail<IOError>(op_, "'{}' is not a file path", target.string());
  for (int attempt = 0; fd_ < 0; ++attempt) {
    temp_ = temp_name_for(target_);
    fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0 && (errno != EEXIST || attempt > 100))
      fail<IOError>(op_, "{}: cannot create {}: {}", target_.string(), temp_.string(),
                    errno_text(errno));
  }
}

AtomicWriter::~AtomicWriter() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(temp_.c_str());
}

void AtomicWriter::fail_errno(std::string_view what, int err) const {
  fail<IOError>(op_, "{}: {} failed: {}", target_.string(), what, errno_text(err));
}

void AtomicWriter::write(const void* data, size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t put = ::write(fd_, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) fail_errno("write", errno);
    p += put;
    n -= static_cast<size_t>(put);
    written_ += static_cast<uint64_t>(put);
  }
}

void AtomicWriter::commit() {
  if (::fsync(fd_) != 0) fail_errno("fsync", errno);
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail_errno("close", errno);
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail_errno("rename", errno);
  committed_ = true;
  fsync_folder(target_.parent_path());
}

uint64_t load_le(const uint8_t* p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void store_le(uint8_t* p, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

void require_little_endian_host(std::string_view op) {
  if constexpr (std::endian::native != std::endian::little)
    fail<NotImplementedError>(op, "big-endian hosts are not supported");
}

}  // namespace tessera::io::detail
