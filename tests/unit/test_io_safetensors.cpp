// safetensors: round trips for every dtype and shape, the exact file layout, hand-written files
// (unaligned, unordered), memory mapping and its lifetime, and a corpus of malformed files that
// must each raise a precise IOError (plus every truncation and byte flips of a valid file).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_io_util.h"

namespace tessera {
namespace {

using namespace iotest;
using nlohmann::json;

const Shape kShapes[] = {{}, {0}, {5}, {2, 3}, {2, 0, 3}, {3, 1, 4}};

std::string shape_key(const Shape& s) { return fmt::format("{}", fmt::join(s, "x")); }

// A file from header text and data bytes; header_size overrides the 8-byte size field.
std::string st_file(const std::string& header, const std::string& data,
                    std::optional<uint64_t> header_size = {}) {
  return le_bytes(header_size.value_or(header.size()), 8) + header + data;
}

bool is_mapped(const fs::path& p) {
  std::string maps = read_bytes("/proc/self/maps");
  return maps.find(fs::canonical(p).string()) != std::string::npos;
}

TEST(IoSafetensors, RoundTripEveryDTypeAndShape) {
  TempDir dir;
  StateDict sd;
  for (DType t : kAllDTypes)
    for (const Shape& s : kShapes)
      sd[fmt::format("{}.{}", dtype_name(t), shape_key(s))] = ref_tensor(t, s);
  io::save_safetensors(dir / "all.safetensors", sd);
  for (io::LoadMode mode : {io::LoadMode::Read, io::LoadMode::Map, io::LoadMode::Auto}) {
    StateDict back = io::load_safetensors(dir / "all.safetensors", mode);
    ASSERT_EQ(back.size(), sd.size());
    for (const auto& [name, t] : sd) expect_same(back.at(name), t, name);
  }
}

TEST(IoSafetensors, FileLayoutFollowsTheSpec) {
  TempDir dir;
  StateDict sd{{"a", tensor<int32_t>({1, -2, 3})},
               {"b", tensor<double>({0.5})},
               {"c", tensor<uint8_t>({7})}};
  io::save_safetensors(dir / "x.safetensors", sd, {{"origin", "tessera"}, {"note", "héllo"}});
  std::string bytes = read_bytes(dir / "x.safetensors");
  uint64_t n = read_le(bytes, 0, 8);
  EXPECT_EQ((8 + n) % 8, 0u) << "the data buffer starts 8-byte aligned";
  json h = json::parse(bytes.substr(8, n));
  EXPECT_EQ(h["__metadata__"], json({{"origin", "tessera"}, {"note", "héllo"}}));
  // Widest dtype first, so every tensor is aligned: b [0, 8), a [8, 20), c [20, 21).
  EXPECT_EQ(h["b"], json({{"dtype", "F64"}, {"shape", {1}}, {"data_offsets", {0, 8}}}));
  EXPECT_EQ(h["a"], json({{"dtype", "I32"}, {"shape", {3}}, {"data_offsets", {8, 20}}}));
  EXPECT_EQ(h["c"], json({{"dtype", "U8"}, {"shape", {1}}, {"data_offsets", {20, 21}}}));
  std::string want = le_bytes(0x3fe0000000000000, 8) + le_bytes(1, 4) +
                     le_bytes(static_cast<uint32_t>(-2), 4) + le_bytes(3, 4) + "\x07";
  EXPECT_EQ(bytes.substr(8 + n), want);
}

TEST(IoSafetensors, EmptyDictAndNoMetadata) {
  TempDir dir;
  io::save_safetensors(dir / "e.safetensors", {});
  std::string bytes = read_bytes(dir / "e.safetensors");
  EXPECT_EQ(json::parse(bytes.substr(8)), json::object());
  auto f = io::read_safetensors(dir / "e.safetensors");
  EXPECT_TRUE(f.tensors.empty());
  EXPECT_TRUE(f.metadata.empty());
}

// Written by hand: unpadded header, entries not in data order, a 0-d and an empty tensor, and an
// f32 at an odd offset (the reader must copy it rather than read it misaligned).
TEST(IoSafetensors, ReadsHandWrittenFile) {
  TempDir dir;
  std::string header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[1,9]},)"
                       R"("b":{"dtype":"BOOL","shape":[],"data_offsets":[0,1]},)"
                       R"("e":{"dtype":"I64","shape":[0,5],"data_offsets":[9,9]},)"
                       R"("h":{"dtype":"BF16","shape":[1,1],"data_offsets":[9,11]},)"
                       R"("__metadata__":{"k":"v"}})";
  std::string data = std::string("\x01") + le_bytes(0x3fc00000, 4) /* 1.5f */ +
                     le_bytes(0xc0200000, 4) /* -2.5f */ + le_bytes(0x4040, 2) /* bf16 3.0 */;
  write_bytes(dir / "h.safetensors", st_file(header, data));
  for (io::LoadMode mode : {io::LoadMode::Read, io::LoadMode::Map}) {
    auto f = io::read_safetensors(dir / "h.safetensors", mode);
    EXPECT_EQ(f.metadata, (io::Metadata{{"k", "v"}}));
    EXPECT_EQ(f.tensors.at("w").to_vector<float>(), (std::vector<float>{1.5f, -2.5f}));
    EXPECT_EQ(f.tensors.at("b").dim(), 0);
    EXPECT_TRUE(f.tensors.at("b").item<bool>());
    EXPECT_EQ(f.tensors.at("e").shape(), (Shape{0, 5}));
    EXPECT_EQ(f.tensors.at("e").dtype(), kInt64);
    EXPECT_EQ(f.tensors.at("h").shape(), (Shape{1, 1}));
    EXPECT_EQ(f.tensors.at("h").item<float>(), 3.0f);
  }
}

TEST(IoSafetensors, ViewsAreSavedAsTheirValues) {
  TempDir dir;
  Tensor base = ref_tensor(kFloat64, {2, 3});  // element (i, j) = (3i + j - 3) * 0.1
  io::save_safetensors(
      dir / "v.safetensors",
      {{"t", base.t()}, {"row", base.select(0, 1)}, {"step", base.slice(1, 0, 3, 2)}});
  StateDict back = io::load_safetensors(dir / "v.safetensors");
  auto v = [](int64_t i, int64_t j) { return (3.0 * i + j - 3) * 0.1; };
  EXPECT_EQ(back.at("t").to_vector<double>(),
            (std::vector<double>{v(0, 0), v(1, 0), v(0, 1), v(1, 1), v(0, 2), v(1, 2)}));
  EXPECT_EQ(back.at("row").to_vector<double>(), (std::vector<double>{v(1, 0), v(1, 1), v(1, 2)}));
  EXPECT_EQ(back.at("step").to_vector<double>(),
            (std::vector<double>{v(0, 0), v(0, 2), v(1, 0), v(1, 2)}));
}

TEST(IoSafetensors, TensorsThatRequireGradSaveTheirValues) {
  TempDir dir;
  Tensor w = ref_tensor(kFloat32, {3});
  w.requires_grad_();
  Tensor y = w * 2.0;  // a non-leaf with history
  io::save_safetensors(dir / "g.safetensors", {{"w", w}, {"y", y}});
  StateDict back = io::load_safetensors(dir / "g.safetensors");
  expect_same(back.at("w"), ref_tensor(kFloat32, {3}));
  EXPECT_FALSE(back.at("w").requires_grad());
  std::vector<float> want;
  for (int i = 0; i < 3; ++i) want.push_back(static_cast<float>((i - 3) * 0.1) * 2.0f);
  EXPECT_EQ(back.at("y").to_vector<float>(), want);
}

TEST(IoSafetensors, MappingLivesWhileATensorUsesIt) {
  TempDir dir;
  fs::path p = dir / "m.safetensors";
  io::save_safetensors(p, {{"a", ref_tensor(kFloat32, {64})}, {"b", ref_tensor(kInt64, {8})}});
  std::string before = read_bytes(p);
  Tensor a;
  {
    StateDict sd = io::load_safetensors(p, io::LoadMode::Map);
    EXPECT_TRUE(is_mapped(p));
    a = sd.at("a");
  }
  EXPECT_TRUE(is_mapped(p)) << "a still views the mapping";
  // Copy-on-write: writing through the mapping never changes the file.
  a.add_(1.0);
  EXPECT_EQ(a.to_vector<float>()[3], 1.0f);  // element 3 was (3 - 3) * 0.1 = 0
  EXPECT_EQ(read_bytes(p), before);
  expect_same(io::load_safetensors(p, io::LoadMode::Read).at("a"), ref_tensor(kFloat32, {64}));
  a = Tensor();
  EXPECT_FALSE(is_mapped(p)) << "the last tensor is gone, so is the mapping";
}

TEST(IoSafetensors, AutoMapsOnlyLargeFiles) {
  TempDir dir;
  io::save_safetensors(dir / "small.safetensors", {{"a", ref_tensor(kFloat32, {16})}});
  io::save_safetensors(dir / "large.safetensors",
                       {{"a", ref_tensor(kFloat32, {int64_t{io::kMapThreshold} / 4})}});
  StateDict small = io::load_safetensors(dir / "small.safetensors");
  StateDict large = io::load_safetensors(dir / "large.safetensors");
  EXPECT_FALSE(is_mapped(dir / "small.safetensors"));
  EXPECT_TRUE(is_mapped(dir / "large.safetensors"));
  expect_same(large.at("a"), ref_tensor(kFloat32, {int64_t{io::kMapThreshold} / 4}));
}

TEST(IoSafetensors, SaveErrorsLeaveNothingBehind) {
  TempDir dir;
  EXPECT_THROW(io::save_safetensors(dir / "u.safetensors", {{"x", Tensor()}}), ValueError);
  EXPECT_THROW(io::save_safetensors(dir / "m.safetensors", {{"__metadata__", ones({1})}}),
               ValueError);
  EXPECT_THROW(io::save_safetensors(dir / "n.safetensors", {{"bad\xff", ones({1})}}), ValueError);
  EXPECT_TRUE(fs::is_empty(dir.path()));
  expect_io_error([&] { io::save_safetensors(dir / "no" / "such" / "dir.st", {}); },
                  "save_safetensors", {"cannot create", "No such file"});
}

TEST(IoSafetensors, OpenErrors) {
  TempDir dir;
  expect_io_error([&] { io::load_safetensors(dir / "missing.safetensors"); }, "load_safetensors",
                  {"missing.safetensors", "cannot open"});
  expect_io_error([&] { io::load_safetensors(dir.path()); }, "load_safetensors",
                  {"is a directory"});
}

struct BadFile {
  const char* what;
  std::string bytes;
  std::vector<std::string> fragments;
};

std::vector<BadFile> bad_files() {
  auto f32x2 = [](const char* offsets) {
    return fmt::format(R"({{"dtype":"F32","shape":[2],"data_offsets":{}}})", offsets);
  };
  std::string d8(8, '\0'), d12(12, '\0');
  return {
      {"empty file", "", {"0 bytes, fewer than the 8-byte header size"}},
      {"short file", std::string("\x10\0\0", 3), {"3 bytes"}},
      {"header size past the end", st_file("{}", "", 1000), {"header size 1000 runs past"}},
      {"header size near 2^64", st_file("{}", "", ~uint64_t{0}), {"runs past the end"}},
      {"header size zero", st_file("", "{}", 0), {"header size 0 is too small"}},
      {"bad JSON", st_file("{\"a\": [1,", ""), {"not valid JSON"}},
      {"invalid UTF-8", st_file("{\"\xff\":1}", ""), {"not valid JSON"}},
      {"JSON array", st_file("[1, 2]", ""), {"not an object"}},
      {"duplicate name",
       st_file(R"({"a":)" + f32x2("[0,8]") + R"(,"a":)" + f32x2("[0,8]") + "}", d8),
       {"names 'a' twice"}},
      {"deeply nested JSON",
       st_file("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", ""),
       {"entry 'a' is not an object"}},
      {"entry not an object", st_file(R"({"a":3})", ""), {"entry 'a' is not an object"}},
      {"unknown dtype",
       st_file(R"({"a":{"dtype":"F128","shape":[],"data_offsets":[0,16]}})", d8 + d8),
       {"tensor 'a'", "unknown dtype 'F128'"}},
      {"dtype without a Tessera type",
       st_file(R"({"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}})", "\0\0"),
       {"dtype U16 has no Tessera equivalent"}},
      {"missing dtype",
       st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", "\0\0\0\0"),
       {"\"dtype\" is missing"}},
      {"negative shape",
       st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
       {"not a non-negative int64"}},
      {"fractional shape",
       st_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", d8),
       {"holds 2.5"}},
      {"shape not an array",
       st_file(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", d8),
       {"\"shape\" is missing or not an array"}},
      {"offsets of the wrong arity",
       st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}})", d8),
       {"two non-negative integers, got [8]"}},
      {"offsets past the buffer",
       st_file(R"({"a":)" + f32x2("[0,100]") + "}", d8),
       {"[0, 100] run past the data buffer (8 bytes)"}},
      {"offsets backwards",
       st_file(R"({"a":)" + f32x2("[8,0]") + "}", d8),
       {"[8, 0] go backwards"}},
      {"shape/length mismatch",
       st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8),
       {"shape (3,) of float32 needs 12 bytes but data_offsets [0, 8] hold 8"}},
      {"element count overflow",
       st_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", d8),
       {"more bytes than int64 can count"}},
      {"overlapping ranges",
       st_file(R"({"a":)" + f32x2("[0,8]") + R"(,"b":)" + f32x2("[4,12]") + "}", d12),
       {"tensor 'b' [4, 12] overlaps tensor 'a' [0, 8]"}},
      {"empty tensor inside another",
       st_file(R"({"a":)" + f32x2("[0,8]") +
                   R"(,"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
               d8),
       {"tensor 'e' [4, 4] overlaps tensor 'a'"}},
      {"gap between tensors",
       st_file(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
           d12),
       {"bytes [4, 8) of the data buffer belong to no tensor", "before 'b'"}},
      {"gap at the start",
       st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8),
       {"bytes [0, 4)"}},
      {"uncovered tail",
       st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8),
       {"bytes [4, 8) at the end of the data buffer belong to no tensor"}},
      {"metadata not an object",
       st_file(R"({"__metadata__":[1]})", ""),
       {"\"__metadata__\" is not an object"}},
      {"metadata value not a string",
       st_file(R"({"__metadata__":{"k":1}})", ""),
       {"value of 'k' is not a string"}},
      {"bool byte other than 0/1",
       st_file(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})",
               std::string("\x01\x02", 2)),
       {"tensor 'b' (bool) holds bytes other than 0 and 1"}},
  };
}

TEST(IoSafetensors, MalformedFilesRaisePreciseIOErrors) {
  TempDir dir;
  for (const BadFile& b : bad_files()) {
    SCOPED_TRACE(b.what);
    fs::path p = dir / "bad.safetensors";
    write_bytes(p, b.bytes);
    for (io::LoadMode mode : {io::LoadMode::Read, io::LoadMode::Map}) {
      std::string msg = expect_io_error([&] { io::load_safetensors(p, mode); }, "load_safetensors",
                                        {"bad.safetensors: "});
      for (const auto& frag : b.fragments) EXPECT_NE(msg.find(frag), std::string::npos) << msg;
    }
  }
}

TEST(IoSafetensors, HeaderSizeAboveTheLimitIsRefused) {
  TempDir dir;
  fs::path p = dir / "huge.safetensors";
  write_bytes(p, le_bytes(150'000'000, 8) + "{}");
  fs::resize_file(p, 160'000'000);  // sparse: no disk used, but the header "fits" the file
  expect_io_error([&] { io::load_safetensors(p); }, "load_safetensors",
                  {"header size 150000000 exceeds the 100000000 byte limit"});
}

// Cutting a valid file anywhere must be detected: the buffer must be covered exactly.
TEST(IoSafetensors, EveryTruncationIsDetected) {
  TempDir dir;
  io::save_safetensors(dir / "ok.safetensors",
                       {{"a", ref_tensor(kFloat32, {3})}, {"b", ref_tensor(kInt16, {2})}},
                       {{"k", "v"}});
  std::string full = read_bytes(dir / "ok.safetensors");
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE(len);
    write_bytes(dir / "cut.safetensors", full.substr(0, len));
    expect_io_error([&] { io::load_safetensors(dir / "cut.safetensors", io::LoadMode::Map); },
                    "load_safetensors", {});
  }
}

// Flipping any header byte gives either a valid file or an IOError, never anything else.
TEST(IoSafetensors, HeaderByteFlipsNeverCrash) {
  TempDir dir;
  io::save_safetensors(dir / "ok.safetensors",
                       {{"a", ref_tensor(kFloat32, {3})}, {"b", ref_tensor(kBool, {2})}});
  std::string full = read_bytes(dir / "ok.safetensors");
  size_t header_end = 8 + read_le(full, 0, 8);
  int errors = 0;
  for (size_t i = 0; i < header_end; ++i) {
    for (uint8_t mask : {0x01, 0x10, 0x80}) {
      std::string b = full;
      b[i] = static_cast<char>(b[i] ^ mask);
      write_bytes(dir / "flip.safetensors", b);
      try {
        io::load_safetensors(dir / "flip.safetensors", io::LoadMode::Map);
      } catch (const IOError&) {
        ++errors;
      }
    }
  }
  EXPECT_GT(errors, static_cast<int>(header_end));  // most flips break it
}

TEST(IoSafetensors, MetadataOnly) {
  TempDir dir;
  io::save_safetensors(dir / "m.safetensors", {{"a", ones({2})}}, {{"epoch", "3"}});
  EXPECT_EQ(io::load_safetensors_metadata(dir / "m.safetensors"), (io::Metadata{{"epoch", "3"}}));
  write_bytes(dir / "bad.safetensors", st_file("{\"a\":", ""));
  expect_io_error([&] { io::load_safetensors_metadata(dir / "bad.safetensors"); },
                  "load_safetensors_metadata", {"not valid JSON"});
}

}  // namespace
}  // namespace tessera
