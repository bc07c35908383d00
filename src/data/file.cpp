// gzread reads plain files transparently, so one path serves .csv and .csv.gz alike.
#include "data/file.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "tessera/core/error.h"

namespace tessera::data::detail {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzHandle = std::unique_ptr<gzFile_s, GzCloser>;

std::string gz_error(gzFile f) {
  int code = Z_OK;
  const char* msg = gzerror(f, &code);
  return code == Z_ERRNO ? std::strerror(errno) : std::string(msg);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::string read_all(const std::string& path, std::string_view op) {
  TS_CHECK(!std::filesystem::is_directory(path), IOError, op, "{}: is a directory", path);
  GzHandle f(gzopen(path.c_str(), "rb"));
  TS_CHECK(f != nullptr, IOError, op, "{}: cannot open ({})", path, std::strerror(errno));
  std::string out;
  constexpr unsigned kChunk = 1u << 20;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + kChunk);
    const int n = gzread(f.get(), out.data() + old, kChunk);
    TS_CHECK(n >= 0, IOError, op, "{}: read failed ({})", path, gz_error(f.get()));
    out.resize(old + static_cast<size_t>(n));
    if (n == 0) break;
  }
  // A truncated gzip stream ends early without a read error; gzerror reports it.
  int code = Z_OK;
  gzerror(f.get(), &code);
  TS_CHECK(code == Z_OK || code == Z_STREAM_END, IOError, op, "{}: read failed ({})", path,
           gz_error(f.get()));
  return out;
}

void write_all(const std::string& path, std::string_view bytes, std::string_view op) {
  // "T" writes without compression through the same interface.
  GzHandle f(gzopen(path.c_str(), ends_with(path, ".gz") ? "wb" : "wbT"));
  TS_CHECK(f != nullptr, IOError, op, "{}: cannot open for writing ({})", path,
           std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const auto n = static_cast<unsigned>(std::min<size_t>(bytes.size() - done, 1u << 30));
    const int wrote = gzwrite(f.get(), bytes.data() + done, n);
    TS_CHECK(wrote > 0, IOError, op, "{}: write failed ({})", path, gz_error(f.get()));
    done += static_cast<size_t>(wrote);
  }
  gzFile raw = f.release();
  TS_CHECK(gzclose(raw) == Z_OK, IOError, op, "{}: closing failed", path);
}

}  // namespace tessera::data::detail
