// safetensors reading and writing. Reading validates the complete header before touching any
// tensor byte, so a hostile file can at worst cost an allocation bounded by its own size.
#include "tessera/io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "io/file.h"
#include "io/format_util.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::io {
namespace {

using detail::InputFile;
using nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// The format's dtype codes with a Tessera dtype, and those without one (known, but refused).
struct DTypeCode {
  std::string_view code;
  DType dtype;
};
constexpr DTypeCode kCodes[] = {{"BOOL", kBool},   {"U8", kUInt8},      {"I8", kInt8},
                                {"I16", kInt16},   {"I32", kInt32},     {"I64", kInt64},
                                {"F16", kFloat16}, {"BF16", kBFloat16}, {"F32", kFloat32},
                                {"F64", kFloat64}, {"C64", kComplex64}};
constexpr std::string_view kForeignCodes[] = {"U16",     "U32",     "U64",         "F8_E4M3",
                                              "F8_E5M2", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
                                              "F4",      "F6_E2M3", "F6_E3M2"};

std::string_view code_of(DType t) {
  for (const auto& c : kCodes)
    if (c.dtype == t) return c.code;
  fail<DTypeError>("save_safetensors", "dtype {} has no safetensors code", dtype_name(t));
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data buffer
};

struct Header {
  std::vector<Entry> entries;  // sorted by data offset
  Metadata metadata;
  uint64_t data_start = 0;  // 8 + header size
  uint64_t data_size = 0;
};

template <class... Args>
[[noreturn]] void bad(const InputFile& f, fmt::format_string<Args...> fmt, Args&&... args) {
  fail<IOError>(f.op(), "{}: {}", f.name(), fmt::format(fmt, std::forward<Args>(args)...));
}

// Parses the header text, refusing duplicate top-level names (JSON itself allows them).
json parse_json(const InputFile& f, const std::string& text) {
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 &&
        !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb);
  } catch (const json::parse_error& e) {
    bad(f, "header is not valid JSON: {}", e.what());
  }
  if (!duplicate.empty()) bad(f, "header names '{}' twice", duplicate);
  if (!j.is_object()) bad(f, "header is JSON but not an object");
  return j;
}

Metadata parse_metadata(const InputFile& f, const json& v) {
  if (!v.is_object()) bad(f, "\"__metadata__\" is not an object");
  Metadata m;
  for (const auto& [k, s] : v.items()) {
    if (!s.is_string()) bad(f, "\"__metadata__\" value of '{}' is not a string", k);
    m[k] = s.get<std::string>();
  }
  return m;
}

DType parse_dtype(const InputFile& f, const std::string& name, const json& v) {
  if (!v.is_string()) bad(f, "tensor '{}': \"dtype\" is missing or not a string", name);
  auto code = v.get<std::string>();
  for (const auto& c : kCodes)
    if (c.code == code) return c.dtype;
  if (std::find(std::begin(kForeignCodes), std::end(kForeignCodes), code) !=
      std::end(kForeignCodes))
    bad(f, "tensor '{}': dtype {} has no Tessera equivalent", name, code);
  bad(f, "tensor '{}': unknown dtype '{}'", name, code);
}

Shape parse_shape(const InputFile& f, const std::string& name, const json& v) {
  if (!v.is_array()) bad(f, "tensor '{}': \"shape\" is missing or not an array", name);
  Shape s;
  for (const auto& d : v) {
    if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{INT64_MAX})
      bad(f, "tensor '{}': shape {} holds {}, not a non-negative int64", name, v.dump(), d.dump());
    s.push_back(d.get<int64_t>());
  }
  return s;
}

std::pair<uint64_t, uint64_t> parse_offsets(const InputFile& f, const std::string& name,
                                            const json& v) {
  if (!v.is_array() || v.size() != 2 || !v[0].is_number_unsigned() || !v[1].is_number_unsigned())
    bad(f, "tensor '{}': \"data_offsets\" must be two non-negative integers, got {}", name,
        v.is_null() ? std::string("nothing") : v.dump());
  return {v[0].get<uint64_t>(), v[1].get<uint64_t>()};
}

// Checks the entry's own consistency: a forward range inside the buffer, as long as its shape.
Entry parse_entry(const InputFile& f, const Header& h, const std::string& name, const json& v) {
  if (!v.is_object()) bad(f, "entry '{}' is not an object", name);
  auto field = [&](const char* key) { return v.contains(key) ? v.at(key) : json(); };
  Entry e{name, parse_dtype(f, name, field("dtype")), parse_shape(f, name, field("shape"))};
  std::tie(e.begin, e.end) = parse_offsets(f, name, field("data_offsets"));
  if (e.begin > e.end)
    bad(f, "tensor '{}': data_offsets [{}, {}] go backwards", name, e.begin, e.end);
  if (e.end > h.data_size)
    bad(f, "tensor '{}': data_offsets [{}, {}] run past the data buffer ({} bytes)", name, e.begin,
        e.end, h.data_size);
  auto need = detail::checked_nbytes(e.shape, e.dtype);
  if (!need)
    bad(f, "tensor '{}': shape {} of {} has more bytes than int64 can count", name,
        shape_str(e.shape), dtype_name(e.dtype));
  if (*need != e.end - e.begin)
    bad(f, "tensor '{}': shape {} of {} needs {} bytes but data_offsets [{}, {}] hold {}", name,
        shape_str(e.shape), dtype_name(e.dtype), *need, e.begin, e.end, e.end - e.begin);
  return e;
}

// The spec wants the buffer fully indexed: ranges in offset order, each starting where the
// previous one ended, the last one ending at the end of the file.
void check_coverage(const InputFile& f, Header& h) {
  std::sort(h.entries.begin(), h.entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  uint64_t pos = 0;
  const Entry* prev = nullptr;
  for (const Entry& e : h.entries) {
    if (e.begin < pos)
      bad(f, "tensor '{}' [{}, {}] overlaps tensor '{}' [{}, {}]", e.name, e.begin, e.end,
          prev->name, prev->begin, prev->end);
    if (e.begin > pos)
      bad(f, "bytes [{}, {}) of the data buffer belong to no tensor (a gap before '{}')", pos,
          e.begin, e.name);
    pos = e.end;
    prev = &e;
  }
  if (pos != h.data_size)
    bad(f, "bytes [{}, {}) at the end of the data buffer belong to no tensor", pos, h.data_size);
}

Header read_header(const InputFile& f) {
  if (f.size() < 8) bad(f, "file has {} bytes, fewer than the 8-byte header size", f.size());
  uint8_t prefix[8];
  f.read_at(0, prefix, 8);
  uint64_t n = detail::load_le(prefix, 8);
  if (n > f.size() - 8)
    bad(f, "header size {} runs past the end of the file ({} bytes)", n, f.size());
  if (n > kMaxHeaderBytes) bad(f, "header size {} exceeds the {} byte limit", n, kMaxHeaderBytes);
  if (n < 2) bad(f, "header size {} is too small for a JSON object", n);
  std::string text(n, '\0');
  f.read_at(8, text.data(), n);
  json j = parse_json(f, text);
  Header h;
  h.data_start = 8 + n;
  h.data_size = f.size() - h.data_start;
  for (const auto& [name, v] : j.items()) {
    if (name == "__metadata__")
      h.metadata = parse_metadata(f, v);
    else
      h.entries.push_back(parse_entry(f, h, name, v));
  }
  check_coverage(f, h);
  return h;
}

bool use_mapping(LoadMode mode, uint64_t size) {
  return mode == LoadMode::Map || (mode == LoadMode::Auto && size >= kMapThreshold);
}

// A tensor viewing the mapping when the bytes are aligned for the dtype; a copy otherwise (the
// format does not promise alignment and misaligned loads are undefined behaviour).
Tensor tensor_from_mapping(const std::shared_ptr<detail::Mapping>& m, const Header& h,
                           const Entry& e) {
  uint8_t* p = m->data() + h.data_start + e.begin;
  if (e.end == e.begin) return Tensor::empty(e.shape, e.dtype);
  if (reinterpret_cast<uintptr_t>(p) % detail::alignment_of(e.dtype) != 0)
    return from_buffer_copy(p, e.shape, e.dtype);
  return from_blob(p, e.shape, e.dtype, {}, [keep = m](void*) {});
}

Tensor tensor_from_read(const InputFile& f, const Header& h, const Entry& e) {
  Tensor t = Tensor::empty(e.shape, e.dtype);
  f.read_at(h.data_start + e.begin, t.raw_data(), e.end - e.begin);
  return t;
}

SafetensorsFile load(const std::filesystem::path& path, LoadMode mode) {
  detail::require_little_endian_host("load_safetensors");
  InputFile f(path, "load_safetensors");
  Header h = read_header(f);
  SafetensorsFile out{{}, h.metadata};
  std::shared_ptr<detail::Mapping> m = use_mapping(mode, f.size()) ? f.map() : nullptr;
  for (const Entry& e : h.entries) {
    Tensor t = m ? tensor_from_mapping(m, h, e) : tensor_from_read(f, h, e);
    if (e.dtype == kBool && !detail::valid_bools(t))
      bad(f, "tensor '{}' (bool) holds bytes other than 0 and 1", e.name);
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

struct Item {
  const std::string* name;
  Tensor t;
  std::string_view code;
};

std::vector<Item> save_items(const StateDict& tensors) {
  std::vector<Item> items;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) fail<ValueError>("save_safetensors", "tensor '{}' is undefined", name);
    if (name == "__metadata__")
      fail<ValueError>("save_safetensors", "'__metadata__' is reserved and cannot name a tensor");
    items.push_back({&name, t, code_of(t.dtype())});
  }
  // Widest elements first: with the header padded to 8 bytes every tensor is then aligned.
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.t.itemsize() > b.t.itemsize(); });
  return items;
}

std::string header_text(const std::vector<Item>& items, const Metadata& metadata) {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (const Item& it : items) {
    uint64_t end = off + it.t.nbytes();
    h[*it.name] = {{"dtype", it.code}, {"shape", it.t.shape()}, {"data_offsets", {off, end}}};
    off = end;
  }
  std::string text;
  try {
    text = h.dump();
  } catch (const nlohmann::ordered_json::type_error& e) {
    fail<ValueError>("save_safetensors", "names and metadata must be valid UTF-8 ({})", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  return text;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path, const StateDict& tensors,
                      const Metadata& metadata) {
  detail::require_little_endian_host("save_safetensors");
  std::vector<Item> items = save_items(tensors);
  std::string text = header_text(items, metadata);
  detail::AtomicWriter w(path, "save_safetensors");
  uint8_t size_le[8];
  detail::store_le(size_le, text.size(), 8);
  w.write(size_le, 8);
  w.write(text.data(), text.size());
  for (const Item& it : items) {
    Tensor c = detail::host_contiguous(it.t);  // one tensor at a time: no second full copy
    w.write(c.raw_data(), c.nbytes());
  }
  w.commit();
}

SafetensorsFile read_safetensors(const std::filesystem::path& path, LoadMode mode) {
  return load(path, mode);
}

StateDict load_safetensors(const std::filesystem::path& path, LoadMode mode) {
  return load(path, mode).tensors;
}

Metadata load_safetensors_metadata(const std::filesystem::path& path) {
  InputFile f(path, "load_safetensors_metadata");
  return read_header(f).metadata;
}

}  // namespace tessera::io
