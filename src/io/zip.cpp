// Zip reading and writing for .npz. Every offset and size read from the archive is checked
// against the file before it is used, so a malformed archive fails with IOError.
#include "io/zip.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <set>

#include "io/format_util.h"
#include "tessera/core/error.h"

namespace tessera::io::detail {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kZip64EndSig = 0x06064b50, kZip64LocatorSig = 0x07064b50;
constexpr uint64_t kMax32 = 0xffffffffu;
constexpr size_t kEndSize = 22, kCentralSize = 46, kLocalSize = 30;
constexpr uint16_t kUtf8Flag = 0x800, kDosDate1980 = 0x21;
// Deflate cannot compress better than about 1032:1; a larger claimed size is a lie.
constexpr uint64_t kMaxDeflateRatio = 1032;

template <class... Args>
[[noreturn]] void bad(const InputFile& f, fmt::format_string<Args...> fmt, Args&&... args) {
  fail<IOError>(f.op(), "{}: {}", f.name(), fmt::format(fmt, std::forward<Args>(args)...));
}

// Reads little-endian fields from a buffer, failing instead of running past its end.
class Cursor {
 public:
  Cursor(const InputFile& f, std::span<const uint8_t> b, const char* what)
      : f_(f), b_(b), what_(what) {}
  uint64_t le(int nbytes) {
    need(nbytes);
    uint64_t v = load_le(b_.data() + pos_, nbytes);
    pos_ += nbytes;
    return v;
  }
  std::string str(size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  std::span<const uint8_t> bytes(size_t n) {
    need(n);
    pos_ += n;
    return b_.subspan(pos_ - n, n);
  }
  void skip(size_t n) { bytes(n); }
  size_t pos() const { return pos_; }

 private:
  void need(size_t n) const {
    if (n > b_.size() - pos_) bad(f_, "{} is truncated", what_);
  }
  const InputFile& f_;
  std::span<const uint8_t> b_;
  const char* what_;
  size_t pos_ = 0;
};

struct EndRecord {
  uint64_t entries = 0, cd_size = 0, cd_offset = 0;
  uint64_t position = 0;  // where the (zip64) end record starts: the directory ends before it
};

// The end record sits in the last 22 + 65535 bytes (its comment can be that long).
EndRecord find_end_record(const InputFile& f) {
  if (f.size() < kEndSize) bad(f, "file has {} bytes, too few for a zip archive", f.size());
  uint64_t tail = std::min<uint64_t>(f.size(), kEndSize + 0xffff);
  std::vector<uint8_t> buf(tail);
  f.read_at(f.size() - tail, buf.data(), tail);
  for (size_t i = tail - kEndSize + 1; i-- > 0;) {
    if (load_le(&buf[i], 4) != kEndSig || i + kEndSize + load_le(&buf[i + 20], 2) != tail) continue;
    Cursor c(f, std::span(buf).subspan(i), "end-of-central-directory record");
    c.skip(4);
    if (c.le(2) != 0 || c.le(2) != 0) bad(f, "multi-volume zip archives are not supported");
    EndRecord r;
    c.skip(2);
    r.entries = c.le(2);
    r.cd_size = c.le(4);
    r.cd_offset = c.le(4);
    r.position = f.size() - tail + i;
    return r;
  }
  bad(f, "not a zip archive (no end-of-central-directory record)");
}

// Fields saturated at 0xffff/0xffffffff live in the zip64 end record, found via its locator.
void read_zip64_end(const InputFile& f, EndRecord& r) {
  if (r.position < 20) bad(f, "zip64 end-of-directory locator is missing");
  uint8_t loc[20];
  f.read_at(r.position - 20, loc, 20);
  if (load_le(loc, 4) != kZip64LocatorSig) bad(f, "zip64 end-of-directory locator is missing");
  uint64_t at = load_le(loc + 8, 8);
  if (at > r.position - 20 || r.position - 20 - at < 56)
    bad(f, "zip64 end-of-directory record offset {} is out of range", at);
  uint8_t rec[56];
  f.read_at(at, rec, 56);
  if (load_le(rec, 4) != kZip64EndSig) bad(f, "zip64 end-of-directory record is missing");
  r.entries = load_le(rec + 32, 8);
  r.cd_size = load_le(rec + 40, 8);
  r.cd_offset = load_le(rec + 48, 8);
  r.position = at;
}

// Replaces saturated sizes and offset with the zip64 extra field's values (in this order).
void apply_zip64_extra(const InputFile& f, std::span<const uint8_t> extra, ZipEntry& e,
                       uint64_t& local_offset) {
  Cursor c(f, extra, "zip64 extra field");
  while (c.pos() + 4 <= extra.size()) {
    uint64_t id = c.le(2), len = c.le(2);
    auto data = c.bytes(len);
    if (id != 1) continue;
    Cursor z(f, data, "zip64 extra field");
    if (e.usize == kMax32) e.usize = z.le(8);
    if (e.csize == kMax32) e.csize = z.le(8);
    if (local_offset == kMax32) local_offset = z.le(8);
  }
}

ZipEntry read_central_entry(const InputFile& f, Cursor& c, uint64_t& local_offset) {
  if (c.le(4) != kCentralSig) bad(f, "central directory entry has a bad signature");
  c.skip(4);
  uint64_t flags = c.le(2);
  ZipEntry e;
  e.method = static_cast<uint16_t>(c.le(2));
  c.skip(4);
  e.crc = static_cast<uint32_t>(c.le(4));
  e.csize = c.le(4);
  e.usize = c.le(4);
  uint64_t name_len = c.le(2), extra_len = c.le(2), comment_len = c.le(2);
  c.skip(8);
  local_offset = c.le(4);
  e.name = c.str(name_len);
  apply_zip64_extra(f, c.bytes(extra_len), e, local_offset);
  c.skip(comment_len);
  if (flags & 1) bad(f, "member '{}' is encrypted", e.name);
  if (e.method != 0 && e.method != 8)
    bad(f, "member '{}' uses compression method {} (only stored and deflate are supported)", e.name,
        e.method);
  return e;
}

// The local header repeats the name and has its own extra field; the data follows it and must
// end before the central directory.
void locate_data(const InputFile& f, ZipEntry& e, uint64_t local_offset, uint64_t cd_offset) {
  if (local_offset > cd_offset || cd_offset - local_offset < kLocalSize)
    bad(f, "member '{}' has local header offset {} outside the archive", e.name, local_offset);
  uint8_t h[kLocalSize];
  f.read_at(local_offset, h, kLocalSize);
  if (load_le(h, 4) != kLocalSig) bad(f, "member '{}' has a bad local header", e.name);
  uint64_t name_len = load_le(h + 26, 2), extra_len = load_le(h + 28, 2);
  e.data_offset = local_offset + kLocalSize + name_len + extra_len;
  if (e.data_offset > cd_offset || e.csize > cd_offset - e.data_offset)
    bad(f, "member '{}' ({} bytes at offset {}) runs into the central directory", e.name, e.csize,
        e.data_offset);
  std::string local_name(name_len, '\0');
  f.read_at(local_offset + kLocalSize, local_name.data(), name_len);
  if (local_name != e.name)
    bad(f, "member '{}' is called '{}' in its local header", e.name, local_name);
}

std::vector<uint8_t> inflate_raw(const InputFile& f, const ZipEntry& e,
                                 std::span<const uint8_t> in) {
  if (e.usize > e.csize * kMaxDeflateRatio + 1024)
    bad(f, "member '{}' claims {} bytes from {} compressed ones, more than deflate can give",
        e.name, e.usize, e.csize);
  std::vector<uint8_t> out(e.usize + 1);  // one spare byte exposes output beyond the claim
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) bad(f, "zlib failed to initialise");
  size_t in_pos = 0, out_pos = 0;
  int rc = Z_OK;
  while (rc == Z_OK) {
    uInt ai = static_cast<uInt>(std::min<size_t>(in.size() - in_pos, UINT_MAX));
    uInt ao = static_cast<uInt>(std::min<size_t>(out.size() - out_pos, UINT_MAX));
    zs.next_in = const_cast<Bytef*>(in.data() + in_pos);
    zs.avail_in = ai;
    zs.next_out = out.data() + out_pos;
    zs.avail_out = ao;
    rc = inflate(&zs, Z_NO_FLUSH);
    in_pos += ai - zs.avail_in;
    out_pos += ao - zs.avail_out;
  }
  std::string msg = zs.msg ? zs.msg : "truncated stream";
  inflateEnd(&zs);
  if (rc != Z_STREAM_END && out_pos == out.size())
    bad(f, "member '{}' inflates to more than the {} bytes its directory entry says", e.name,
        e.usize);
  if (rc != Z_STREAM_END) bad(f, "member '{}' has corrupt deflate data ({})", e.name, msg);
  if (out_pos != e.usize)
    bad(f, "member '{}' inflates to {} bytes, its directory entry says {}", e.name, out_pos,
        e.usize);
  out.resize(e.usize);
  return out;
}

}  // namespace

std::vector<ZipEntry> read_zip_directory(const InputFile& f) {
  EndRecord r = find_end_record(f);
  if (r.entries == 0xffff || r.cd_size == kMax32 || r.cd_offset == kMax32) read_zip64_end(f, r);
  if (r.cd_offset > r.position || r.cd_size != r.position - r.cd_offset)
    bad(f, "central directory [{}, +{}) does not end where the end record begins ({})", r.cd_offset,
        r.cd_size, r.position);
  if (r.entries > r.cd_size / kCentralSize)
    bad(f, "{} entries cannot fit a {}-byte central directory", r.entries, r.cd_size);
  std::vector<uint8_t> cd(r.cd_size);
  f.read_at(r.cd_offset, cd.data(), cd.size());
  Cursor c(f, cd, "central directory");
  std::vector<ZipEntry> entries;
  std::set<std::string> names;
  for (uint64_t i = 0; i < r.entries; ++i) {
    uint64_t local_offset = 0;
    ZipEntry e = read_central_entry(f, c, local_offset);
    locate_data(f, e, local_offset, r.cd_offset);
    if (!names.insert(e.name).second) bad(f, "member '{}' appears twice", e.name);
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<uint8_t> read_zip_entry(const InputFile& f, const ZipEntry& e) {
  std::vector<uint8_t> raw(e.csize);
  f.read_at(e.data_offset, raw.data(), raw.size());
  if (e.method == 0 && e.csize != e.usize)
    bad(f, "stored member '{}' has size {} but {} compressed bytes", e.name, e.usize, e.csize);
  std::vector<uint8_t> out = e.method == 8 ? inflate_raw(f, e, raw) : std::move(raw);
  if (crc32_of(out) != e.crc) bad(f, "member '{}' fails its CRC check (corrupted data)", e.name);
  return out;
}

void ZipWriter::check_fits(uint64_t v, std::string_view what) const {
  if (v >= kMax32)
    fail<NotImplementedError>(op_, "{} of {} bytes needs zip64, which is not written yet", what, v);
}

void ZipWriter::add(const std::string& name, std::span<const std::span<const uint8_t>> parts) {
  uint64_t size = 0;
  uint32_t crc = 0;
  for (auto p : parts) {
    size += p.size();
    crc = crc32_of(p, crc);
  }
  check_fits(size, "a member");
  check_fits(out_.written(), "an archive");
  if (name.size() > 0xffff)
    fail<ValueError>(op_, "member name of {} bytes is too long", name.size());
  members_.push_back({name, crc, size, out_.written()});
  bool ascii = std::all_of(name.begin(), name.end(), [](char ch) { return ch >= 0; });
  uint8_t h[kLocalSize] = {};
  store_le(h, kLocalSig, 4);
  store_le(h + 4, 20, 2);  // version needed: 2.0
  store_le(h + 6, ascii ? 0 : kUtf8Flag, 2);
  store_le(h + 12, kDosDate1980, 2);
  store_le(h + 14, crc, 4);
  store_le(h + 18, size, 4);
  store_le(h + 22, size, 4);
  store_le(h + 26, name.size(), 2);
  out_.write(h, sizeof h);
  out_.write(name.data(), name.size());
  for (auto p : parts) out_.write(p.data(), p.size());
}

void ZipWriter::finish() {
  uint64_t cd_offset = out_.written();
  check_fits(cd_offset, "an archive");
  if (members_.size() >= 0xffff)
    fail<NotImplementedError>(op_, "{} members need zip64, which is not written yet",
                              members_.size());
  for (const Member& m : members_) {
    bool ascii = std::all_of(m.name.begin(), m.name.end(), [](char ch) { return ch >= 0; });
    uint8_t h[kCentralSize] = {};
    store_le(h, kCentralSig, 4);
    store_le(h + 4, 20, 2);
    store_le(h + 6, 20, 2);
    store_le(h + 8, ascii ? 0 : kUtf8Flag, 2);
    store_le(h + 14, kDosDate1980, 2);
    store_le(h + 16, m.crc, 4);
    store_le(h + 20, m.size, 4);
    store_le(h + 24, m.size, 4);
    store_le(h + 28, m.name.size(), 2);
    store_le(h + 42, m.offset, 4);
    out_.write(h, sizeof h);
    out_.write(m.name.data(), m.name.size());
  }
  uint64_t cd_size = out_.written() - cd_offset;
  check_fits(out_.written(), "an archive");
  uint8_t end[kEndSize] = {};
  store_le(end, kEndSig, 4);
  store_le(end + 8, members_.size(), 2);
  store_le(end + 10, members_.size(), 2);
  store_le(end + 12, cd_size, 4);
  store_le(end + 16, cd_offset, 4);
  out_.write(end, sizeof end);
}

}  // namespace tessera::io::detail
