// NumPy .npy and .npz. The .npy header is a Python dict literal, parsed here by a small
// recursive-descent reader that accepts exactly what NumPy writes: strings, True/False and
// tuples of non-negative integers.
#include "tessera/io/npy.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <optional>

#include "io/file.h"
#include "io/format_util.h"
#include "io/zip.h"
#include "tessera/core/error.h"

namespace tessera::io {
namespace {

using detail::ByteSource;

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicLen = 6;
constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 20;  // NumPy's own limit is 10000

struct NpyCode {
  std::string_view code;
  DType dtype;
};
constexpr NpyCode kCodes[] = {
    {"b1", kBool},  {"u1", kUInt8},   {"i1", kInt8},    {"i2", kInt16},   {"i4", kInt32},
    {"i8", kInt64}, {"f2", kFloat16}, {"f4", kFloat32}, {"f8", kFloat64}, {"c8", kComplex64}};

struct NpyHeader {
  DType dtype = kFloat32;
  bool big_endian = false;
  bool fortran = false;
  Shape shape;
  uint64_t data_start = 0;
};

template <class... Args>
[[noreturn]] void bad(const ByteSource& src, std::string_view op, fmt::format_string<Args...> fmt,
                      Args&&... args) {
  fail<IOError>(op, "{}: {}", src.name(), fmt::format(fmt, std::forward<Args>(args)...));
}

// One value of the header dict.
struct PyValue {
  enum Kind { Str, Bool, Tuple } kind;
  std::string str;
  bool flag = false;
  Shape tuple;
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const ByteSource& src, std::string_view op)
      : s_(text), src_(src), op_(op) {}

  NpyHeader parse() {
    std::optional<PyValue> descr, fortran, shape;
    expect('{');
    while (skip_ws() != '}') {
      std::string key = parse_string();
      expect(':');
      PyValue v = parse_value();
      auto* slot = key == "descr"           ? &descr
                   : key == "fortran_order" ? &fortran
                   : key == "shape"         ? &shape
                                            : nullptr;
      if (!slot) error("unexpected key '{}'", key);
      if (*slot) error("key '{}' appears twice", key);
      *slot = std::move(v);
      if (skip_ws() != ',') break;
      ++i_;
    }
    expect('}');
    if (skip_ws() != '\0') error("unexpected text after the dict");
    return finish(descr, fortran, shape);
  }

 private:
  template <class... Args>
  [[noreturn]] void error(fmt::format_string<Args...> fmt, Args&&... args) const {
    std::string_view shown = s_.substr(0, std::min<size_t>(s_.find_last_not_of(" \n") + 1, 200));
    bad(src_, op_, "bad header {}: {}", shown, fmt::format(fmt, std::forward<Args>(args)...));
  }
  char skip_ws() {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
    while (i_ < s_.size() && space(s_[i_])) ++i_;
    return i_ < s_.size() ? s_[i_] : '\0';
  }
  void expect(char c) {
    if (skip_ws() != c) error("expected '{}' at offset {}", c, i_);
    ++i_;
  }
  bool accept_word(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  std::string parse_string() {
    char q = skip_ws();
    if (q != '\'' && q != '"') error("expected a string at offset {}", i_);
    size_t end = s_.find(q, ++i_);
    if (end == std::string_view::npos) error("unterminated string");
    std::string out(s_.substr(i_, end - i_));
    i_ = end + 1;
    return out;
  }
  int64_t parse_int() {
    size_t start = i_;
    int64_t v = 0;
    for (; i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9'; ++i_)
      if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s_[i_] - '0', &v))
        error("dimension too large");
    if (i_ == start) error("expected a non-negative integer at offset {}", i_);
    accept_word("L");  // Python 2 longs
    return v;
  }
  PyValue parse_tuple() {
    PyValue v{PyValue::Tuple};
    expect('(');
    while (skip_ws() != ')') {
      v.tuple.push_back(parse_int());
      if (skip_ws() != ',') break;
      ++i_;
    }
    expect(')');
    return v;
  }
  PyValue parse_value() {
    char c = skip_ws();
    if (c == '\'' || c == '"') return {PyValue::Str, parse_string()};
    if (c == '(') return parse_tuple();
    if (accept_word("True")) return {PyValue::Bool, {}, true};
    if (accept_word("False")) return {PyValue::Bool, {}, false};
    if (c == '[') error("lists (structured dtypes) are not supported");
    error("unexpected value at offset {}", i_);
  }
  NpyHeader finish(const std::optional<PyValue>& descr, const std::optional<PyValue>& fortran,
                   const std::optional<PyValue>& shape) const {
    if (!descr || !fortran || !shape) error("'descr', 'fortran_order' and 'shape' are required");
    if (descr->kind != PyValue::Str) error("'descr' is not a string");
    if (fortran->kind != PyValue::Bool) error("'fortran_order' is not True or False");
    if (shape->kind != PyValue::Tuple) error("'shape' is not a tuple");
    NpyHeader h;
    std::tie(h.dtype, h.big_endian) = parse_descr(descr->str);
    h.fortran = fortran->flag;
    h.shape = shape->tuple;
    return h;
  }
  std::pair<DType, bool> parse_descr(const std::string& d) const {
    bool has_order = !d.empty() && std::string_view("<>|=").find(d[0]) != std::string_view::npos;
    std::string_view code = std::string_view(d).substr(has_order ? 1 : 0);
    for (const auto& c : kCodes)
      if (c.code == code) return {c.dtype, has_order && d[0] == '>'};
    bad(src_, op_, "dtype '{}' is not supported (bool, u1, i1, i2, i4, i8, f2, f4, f8, c8 are)", d);
  }

  std::string_view s_;
  size_t i_ = 0;
  const ByteSource& src_;
  std::string_view op_;
};

NpyHeader read_header(const ByteSource& src, std::string_view op) {
  uint8_t pre[12] = {};
  if (src.size() < 10) bad(src, op, "file has {} bytes, too few for a .npy header", src.size());
  src.read_at(0, pre, 10);
  if (std::memcmp(pre, kMagic, kMagicLen) != 0) bad(src, op, "not a .npy file (bad magic bytes)");
  int major = pre[6], minor = pre[7];
  if (major < 1 || major > 3 || minor != 0)
    bad(src, op, "unsupported .npy format version {}.{}", major, minor);
  uint64_t prefix = major == 1 ? 10 : 12;
  if (src.size() < prefix) bad(src, op, "file has {} bytes, too few for a .npy header", src.size());
  src.read_at(10, pre + 10, prefix - 10);
  uint64_t len = detail::load_le(pre + 8, major == 1 ? 2 : 4);
  if (len > src.size() - prefix)
    bad(src, op, "header length {} runs past the end of the file ({} bytes)", len, src.size());
  if (len > kMaxHeaderBytes)
    bad(src, op, "header length {} exceeds {} bytes", len, kMaxHeaderBytes);
  std::string text(len, '\0');
  src.read_at(prefix, text.data(), len);
  NpyHeader h = HeaderParser(text, src, op).parse();
  h.data_start = prefix + len;
  return h;
}

// The data must fill the rest of the file exactly: less is truncation, more is corruption.
uint64_t check_data_size(const ByteSource& src, std::string_view op, const NpyHeader& h) {
  auto need = detail::checked_nbytes(h.shape, h.dtype);
  if (!need)
    bad(src, op, "shape {} of {} has more bytes than int64 can count", shape_str(h.shape),
        dtype_name(h.dtype));
  uint64_t have = src.size() - h.data_start;
  if (have < *need)
    bad(src, op, "data is truncated: shape {} of {} needs {} bytes, the file has {}",
        shape_str(h.shape), dtype_name(h.dtype), *need, have);
  if (have > *need)
    bad(src, op, "{} unexpected bytes follow the {} bytes of data", have - *need, *need);
  return *need;
}

Tensor parse_npy(const ByteSource& src, std::string_view op) {
  detail::require_little_endian_host(op);
  NpyHeader h = read_header(src, op);
  uint64_t nbytes = check_data_size(src, op, h);
  // Fortran order is C order of the reversed shape, transposed back afterwards.
  Shape stored = h.shape;
  if (h.fortran) std::reverse(stored.begin(), stored.end());
  Tensor t = Tensor::empty(stored, h.dtype);
  src.read_at(h.data_start, t.raw_data(), nbytes);
  if (h.big_endian) detail::byteswap_inplace(t);
  if (h.dtype == kBool && !detail::valid_bools(t))
    bad(src, op, "bool data holds bytes other than 0 and 1");
  if (!h.fortran || t.dim() < 2) return t;
  std::vector<int64_t> perm(t.dim());
  std::iota(perm.rbegin(), perm.rend(), 0);
  return t.permute(perm).contiguous();
}

std::string_view npy_code(DType t, std::string_view op) {
  for (const auto& c : kCodes)
    if (c.dtype == t) return c.code;
  fail<DTypeError>(op, "NumPy has no {} dtype; convert the tensor first (e.g. .to(kFloat32))",
                   dtype_name(t));
}

std::string py_tuple(const Shape& s) {
  if (s.size() == 1) return fmt::format("({},)", s[0]);
  return fmt::format("({})", fmt::join(s, ", "));
}

// Magic, version, header length, then the dict padded with spaces and a newline so that the
// data starts at a multiple of 64 bytes, as NumPy does.
std::string npy_header(const Tensor& t, std::string_view op) {
  std::string_view code = npy_code(t.dtype(), op);
  std::string dict = fmt::format("{{'descr': '{}{}', 'fortran_order': False, 'shape': {}, }}",
                                 t.itemsize() == 1 ? '|' : '<', code, py_tuple(t.shape()));
  auto padded = [&](size_t prefix) { return (prefix + dict.size() + 1 + 63) / 64 * 64; };
  size_t prefix = padded(10) - 10 <= 0xffff ? 10 : 12;  // version 2.0 only when 1.0 cannot
  size_t total = padded(prefix);
  std::string out(kMagic, kMagicLen);
  out += static_cast<char>(prefix == 10 ? 1 : 2);
  out += '\0';
  uint8_t len[4];
  detail::store_le(len, total - prefix, static_cast<int>(prefix - 8));
  out.append(reinterpret_cast<const char*>(len), prefix - 8);
  out += dict;
  out.append(total - out.size() - 1, ' ');
  out += '\n';
  return out;
}

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
std::span<const uint8_t> bytes_of(const Tensor& t) {
  return {static_cast<const uint8_t*>(t.raw_data()), t.nbytes()};
}

}  // namespace

void save_npy(const std::filesystem::path& path, const Tensor& t) {
  detail::require_little_endian_host("save_npy");
  if (!t.defined()) fail<ValueError>("save_npy", "tensor is undefined");
  std::string header = npy_header(t, "save_npy");
  Tensor c = detail::host_contiguous(t);
  detail::AtomicWriter w(path, "save_npy");
  w.write(header.data(), header.size());
  w.write(c.raw_data(), c.nbytes());
  w.commit();
}

Tensor load_npy(const std::filesystem::path& path) {
  detail::InputFile f(path, "load_npy");
  return parse_npy(f, "load_npy");
}

void save_npz(const std::filesystem::path& path, const StateDict& arrays) {
  detail::require_little_endian_host("save_npz");
  for (const auto& [name, t] : arrays)  // check everything before creating the file
    if (!t.defined()) fail<ValueError>("save_npz", "array '{}' is undefined", name);
  detail::AtomicWriter w(path, "save_npz");
  detail::ZipWriter zip(w, "save_npz");
  for (const auto& [name, t] : arrays) {
    std::string header = npy_header(t, "save_npz");
    Tensor c = detail::host_contiguous(t);
    std::span<const uint8_t> parts[] = {bytes_of(header), bytes_of(c)};
    zip.add(name + ".npy", parts);
  }
  zip.finish();
  w.commit();
}

StateDict load_npz(const std::filesystem::path& path) {
  detail::InputFile f(path, "load_npz");
  StateDict out;
  for (const detail::ZipEntry& e : detail::read_zip_directory(f)) {
    if (e.name.size() < 4 || e.name.substr(e.name.size() - 4) != ".npy")
      fail<IOError>("load_npz", "{}: member '{}' is not a .npy file", f.name(), e.name);
    std::vector<uint8_t> bytes = detail::read_zip_entry(f, e);
    detail::MemorySource member(bytes, f.name() + ":" + e.name, "load_npz");
    out.emplace(e.name.substr(0, e.name.size() - 4), parse_npy(member, "load_npz"));
  }
  return out;
}

}  // namespace tessera::io
