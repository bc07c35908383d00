// NumPy .npy and .npz: round trips, the exact header NumPy writes, hand-written headers (Fortran
// order, big-endian, versions 2.0 and 3.0, Python-2 spellings), a NumPy-written compressed .npz,
// and malformed files that must each raise a precise IOError.
#include <gtest/gtest.h>

#include "test_io_util.h"

namespace tessera {
namespace {

using namespace iotest;

const Shape kShapes[] = {{}, {0}, {5}, {2, 3}, {2, 0, 3}, {3, 1, 4}};

// A .npy file from the header dict text and the data bytes.
std::string npy_file(const std::string& dict, const std::string& data, int major = 1) {
  std::string header = dict + "\n";
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  return out + le_bytes(header.size(), major == 1 ? 2 : 4) + header + data;
}

std::string be_bytes(uint64_t v, int n) {
  std::string s = le_bytes(v, n);
  return std::string(s.rbegin(), s.rend());
}

// np.savez_compressed(f, a=np.arange(6, dtype='<i4').reshape(2, 3), b=np.array([1.5, -2.0,
// 0.25])) with NumPy 2.4: deflate members whose local headers carry zip64 extra fields.
const std::string kNumpyCompressedNpz(
    "\x50\x4b\x03\x04\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\x50\xb4\x4d\x84\xff\xff\xff\xff\xff"
    "\xff"
    "\xff\xff\x05\x00\x14\x00\x61\x2e\x6e\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00\x00"
    "\x55"
    "\x00\x00\x00\x00\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a\x9c"
    "\x5c"
    "\xa4\x6e\xa5\xa0\x6e\x93\x69\xa2\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94\x92"
    "\x0a"
    "\x12\x77\x4b\xcc\x29\x4e\x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\x46\x3a\x0a\xc6\x9a\x3a\x0a"
    "\xb5"
    "\x0a\x64\x03\x2e\x06\x20\x60\x04\x62\x26\x20\x66\x06\x62\x16\x20\x66\x05\x62\x00\x50\x4b\x03"
    "\x04"
    "\x2d\x00\x00\x00\x08\x00\x00\x00\x21\x00\xd3\x4c\x42\xbc\xff\xff\xff\xff\xff\xff\xff\xff\x05"
    "\x00"
    "\x14\x00\x62\x2e\x6e\x70\x79\x01\x00\x10\x00\x98\x00\x00\x00\x00\x00\x00\x00\x50\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x9b\xec\x17\xea\x1b\x10\xc9\xc8\x50\xc6\x50\xad\x9e\x92\x5a\x9c\x5c\xa4\x6e\xa5"
    "\xa0"
    "\x6e\x93\x66\xa1\xae\xa3\xa0\x9e\x96\x5f\x54\x52\x94\x98\x17\x9f\x5f\x94\x92\x0a\x12\x77\x4b"
    "\xcc"
    "\x29\x4e\x05\x8a\x17\x67\x24\x16\xa4\x02\xf9\x1a\xc6\x3a\x9a\x3a\x0a\xb5\x0a\x14\x00\x2e\x06"
    "\x30"
    "\xf8\x61\x0f\xa1\x19\x0e\x40\xa8\x0b\xf6\x00\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00\x00\x08\x00"
    "\x00"
    "\x00\x21\x00\x50\xb4\x4d\x84\x55\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x80\x01\x00\x00\x00\x00\x61\x2e\x6e\x70\x79\x50\x4b\x01\x02\x2d\x03\x2d\x00\x00"
    "\x00"
    "\x08\x00\x00\x00\x21\x00\xd3\x4c\x42\xbc\x50\x00\x00\x00\x98\x00\x00\x00\x05\x00\x00\x00\x00"
    "\x00"
    "\x00\x00\x00\x00\x00\x00\x80\x01\x8c\x00\x00\x00\x62\x2e\x6e\x70\x79\x50\x4b\x05\x06\x00\x00"
    "\x00"
    "\x00\x02\x00\x02\x00\x66\x00\x00\x00\x13\x01\x00\x00\x00\x00",
    399);

TEST(IoNpy, RoundTripEveryNumpyDTypeAndShape) {
  TempDir dir;
  for (DType t : kAllDTypes) {
    if (t == kBFloat16) continue;
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(fmt::format("{} {}", dtype_name(t), shape_str(s)));
      io::save_npy(dir / "x.npy", ref_tensor(t, s));
      expect_same(io::load_npy(dir / "x.npy"), ref_tensor(t, s));
    }
  }
}

TEST(IoNpy, HeaderIsWhatNumPyWrites) {
  TempDir dir;
  struct Case {
    Tensor t;
    std::string dict;
  } cases[] = {
      {ref_tensor(kFloat32, {2, 3}), "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"},
      {ref_tensor(kInt64, {5}), "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"},
      {ref_tensor(kBool, {}), "{'descr': '|b1', 'fortran_order': False, 'shape': (), }"},
      {ref_tensor(kComplex64, {1, 0}),
       "{'descr': '<c8', 'fortran_order': False, 'shape': (1, 0), }"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.dict);
    io::save_npy(dir / "x.npy", c.t);
    std::string b = read_bytes(dir / "x.npy");
    ASSERT_GT(b.size(), 10u);
    EXPECT_EQ(b.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    size_t header_len = read_le(b, 8, 2);
    EXPECT_EQ((10 + header_len) % 64, 0u) << "data starts 64-byte aligned";
    std::string header = b.substr(10, header_len);
    EXPECT_EQ(header.substr(0, c.dict.size()), c.dict);
    EXPECT_EQ(header.back(), '\n');
    EXPECT_EQ(header.find_first_not_of(' ', c.dict.size()), header_len - 1) << "space padding";
    EXPECT_EQ(b.substr(10 + header_len), tensor_bytes(c.t));
  }
}

TEST(IoNpy, BFloat16HasNoNumpyDType) {
  TempDir dir;
  EXPECT_THROW(io::save_npy(dir / "x.npy", ones({2}, kBFloat16)), DTypeError);
  EXPECT_THROW(io::save_npz(dir / "x.npz", {{"a", ones({2})}, {"b", ones({2}, kBFloat16)}}),
               DTypeError);
  EXPECT_TRUE(fs::is_empty(dir.path())) << "failed saves leave no file";
}

TEST(IoNpy, ReadsFortranOrder) {
  TempDir dir;
  // [[0, 1, 2], [3, 4, 5]] stored column by column.
  std::string data;
  for (int v : {0, 3, 1, 4, 2, 5}) data += le_bytes(static_cast<uint32_t>(v), 4);
  write_bytes(dir / "f.npy",
              npy_file("{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }", data));
  Tensor t = io::load_npy(dir / "f.npy");
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  // 3-d: element (i, j, k) = 100i + 10j + k, first index fastest in the file.
  data.clear();
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 3; ++j)
      for (int i = 0; i < 2; ++i) data += le_bytes(static_cast<uint16_t>(100 * i + 10 * j + k), 2);
  write_bytes(dir / "f3.npy",
              npy_file("{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3, 4), }", data));
  std::vector<int16_t> want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) want.push_back(static_cast<int16_t>(100 * i + 10 * j + k));
  EXPECT_EQ(io::load_npy(dir / "f3.npy").to_vector<int16_t>(), want);
}

TEST(IoNpy, ReadsBigEndian) {
  TempDir dir;
  write_bytes(dir / "i.npy", npy_file("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }",
                                      be_bytes(1, 4) + be_bytes(static_cast<uint32_t>(-2), 4)));
  EXPECT_EQ(io::load_npy(dir / "i.npy").to_vector<int32_t>(), (std::vector<int32_t>{1, -2}));
  write_bytes(dir / "d.npy", npy_file("{'descr': '>f8', 'fortran_order': False, 'shape': (), }",
                                      be_bytes(0x3ff8000000000000, 8)));
  EXPECT_EQ(io::load_npy(dir / "d.npy").item<double>(), 1.5);
  write_bytes(dir / "h.npy", npy_file("{'descr': '>f2', 'fortran_order': False, 'shape': (1,), }",
                                      be_bytes(0xc000, 2)));
  EXPECT_EQ(io::load_npy(dir / "h.npy").item<float>(), -2.0f);
  // complex64: each half swapped on its own, real part first.
  write_bytes(dir / "c.npy", npy_file("{'descr': '>c8', 'fortran_order': False, 'shape': (1,), }",
                                      be_bytes(0x3f800000, 4) + be_bytes(0x40000000, 4)));
  EXPECT_EQ(io::load_npy(dir / "c.npy").to_vector<Complex64>()[0], Complex64(1.0f, 2.0f));
}

TEST(IoNpy, ReadsOtherVersionsAndSpellings) {
  TempDir dir;
  std::string data = le_bytes(0x3f800000, 4) + le_bytes(0x40400000, 4);  // 1.0f, 3.0f
  const char* dicts[] = {
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
      "{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"<f4\"}",
      "  { 'descr' : 'f4' ,'fortran_order':False,'shape':( 2 , ) }   ",
  };
  for (int major : {1, 2, 3}) {
    for (const char* d : dicts) {
      SCOPED_TRACE(fmt::format("v{} {}", major, d));
      write_bytes(dir / "v.npy", npy_file(d, data, major));
      EXPECT_EQ(io::load_npy(dir / "v.npy").to_vector<float>(), (std::vector<float>{1.0f, 3.0f}));
    }
  }
}

struct BadNpy {
  const char* what;
  std::string bytes;
  std::string fragment;
};

std::vector<BadNpy> bad_npys() {
  auto f4 = [](const std::string& shape) {
    return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  };
  std::string d8(8, '\0');
  std::string ok = npy_file(f4("(2,)"), d8);
  std::string wrong_magic = ok, v4 = ok, long_len = ok;
  wrong_magic[1] = 'X';
  v4[6] = 4;
  long_len[8] = '\xff';
  long_len[9] = '\x7f';
  return {
      {"tiny", "\x93NUM", "4 bytes, too few for a .npy header"},
      {"bad magic", wrong_magic, "not a .npy file"},
      {"version 4", v4, "unsupported .npy format version 4.0"},
      {"header past the end", long_len, "header length 32767 runs past the end"},
      {"truncated data", npy_file(f4("(3,)"), d8),
       "data is truncated: shape (3,) of float32 needs 12 bytes, the file has 8"},
      {"trailing bytes", npy_file(f4("(1,)"), d8), "4 unexpected bytes follow the 4 bytes of data"},
      {"missing key", npy_file("{'descr': '<f4', 'shape': (2,), }", d8),
       "'descr', 'fortran_order' and 'shape' are required"},
      {"unknown key",
       npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': True}", d8),
       "unexpected key 'x'"},
      {"repeated key",
       npy_file("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", d8),
       "key 'descr' appears twice"},
      {"unsupported dtype",
       npy_file("{'descr': '<u4', 'fortran_order': False, 'shape': (2,), }", d8),
       "dtype '<u4' is not supported"},
      {"object dtype", npy_file("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", d8),
       "dtype '|O' is not supported"},
      {"structured dtype",
       npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", d8),
       "lists (structured dtypes) are not supported"},
      {"negative dim", npy_file(f4("(-2,)"), d8), "expected a non-negative integer"},
      {"dim overflow", npy_file(f4("(99999999999999999999,)"), d8), "dimension too large"},
      {"shape overflow", npy_file(f4("(4611686018427387904, 4)"), d8),
       "more bytes than int64 can count"},
      {"shape not a tuple",
       npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': 'x', }", d8),
       "'shape' is not a tuple"},
      {"fortran_order not a bool",
       npy_file("{'descr': '<f4', 'fortran_order': 'no', 'shape': (2,), }", d8),
       "'fortran_order' is not True or False"},
      {"unterminated string", npy_file("{'descr: (2,)}", d8), "unterminated string"},
      {"text after the dict", npy_file(f4("(2,)") + " junk", d8), "unexpected text after the dict"},
      {"not a dict", npy_file("(2,)", d8), "expected '{'"},
      {"bool byte 7",
       npy_file("{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }", "\x01\x07"),
       "bool data holds bytes other than 0 and 1"},
  };
}

TEST(IoNpy, MalformedFilesRaisePreciseIOErrors) {
  TempDir dir;
  for (const BadNpy& b : bad_npys()) {
    SCOPED_TRACE(b.what);
    write_bytes(dir / "bad.npy", b.bytes);
    expect_io_error([&] { io::load_npy(dir / "bad.npy"); }, "load_npy", {"bad.npy: ", b.fragment});
  }
  expect_io_error([&] { io::load_npy(dir / "none.npy"); }, "load_npy", {"cannot open"});
}

TEST(IoNpy, EveryTruncationIsDetected) {
  TempDir dir;
  io::save_npy(dir / "ok.npy", ref_tensor(kFloat64, {2, 2}));
  std::string full = read_bytes(dir / "ok.npy");
  for (size_t len = 0; len < full.size(); ++len) {
    SCOPED_TRACE(len);
    write_bytes(dir / "cut.npy", full.substr(0, len));
    expect_io_error([&] { io::load_npy(dir / "cut.npy"); }, "load_npy", {});
  }
}

StateDict npz_sample() {
  return {{"weights", ref_tensor(kFloat32, {2, 3})},
          {"flag", ref_tensor(kBool, {})},
          {"empty", ref_tensor(kInt64, {0, 2})},
          {"z", ref_tensor(kComplex64, {3})}};
}

TEST(IoNpz, RoundTrip) {
  TempDir dir;
  io::save_npz(dir / "a.npz", npz_sample());
  StateDict back = io::load_npz(dir / "a.npz");
  ASSERT_EQ(back.size(), 4u);
  for (const auto& [k, v] : npz_sample()) expect_same(back.at(k), v, k);
  io::save_npz(dir / "e.npz", {});
  EXPECT_TRUE(io::load_npz(dir / "e.npz").empty());
  EXPECT_EQ(read_bytes(dir / "e.npz").size(), 22u) << "an empty zip is just its end record";
}

TEST(IoNpz, ZipLayout) {
  TempDir dir;
  io::save_npz(dir / "a.npz", {{"x", ref_tensor(kInt16, {3})}});
  std::string b = read_bytes(dir / "a.npz");
  EXPECT_EQ(read_le(b, 0, 4), 0x04034b50u);  // local header
  EXPECT_EQ(read_le(b, 8, 2), 0u);           // stored
  EXPECT_EQ(b.substr(30, 5), "x.npy");
  uint64_t size = read_le(b, 22, 4);
  EXPECT_EQ(b.substr(35 + size - 6, 6), tensor_bytes(ref_tensor(kInt16, {3})));  // data ends it
  size_t end = b.size() - 22;
  EXPECT_EQ(read_le(b, end, 4), 0x06054b50u);     // end of central directory
  EXPECT_EQ(read_le(b, end + 10, 2), 1u);         // one member
  EXPECT_EQ(read_le(b, end + 16, 4), 35 + size);  // the directory follows the member
}

TEST(IoNpz, ReadsNumpyCompressedArchive) {
  TempDir dir;
  write_bytes(dir / "np.npz", kNumpyCompressedNpz);
  StateDict d = io::load_npz(dir / "np.npz");
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d.at("a").shape(), (Shape{2, 3}));
  EXPECT_EQ(d.at("a").to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(d.at("b").dtype(), kFloat64);
  EXPECT_EQ(d.at("b").to_vector<double>(), (std::vector<double>{1.5, -2.0, 0.25}));
}

// Offsets of the first central directory entry and of the end record.
std::pair<size_t, size_t> directory_of(const std::string& zip) {
  size_t end = zip.size() - 22;
  return {read_le(zip, end + 16, 4), end};
}

TEST(IoNpz, MalformedArchivesRaisePreciseIOErrors) {
  TempDir dir;
  io::save_npz(dir / "ok.npz", {{"a", ref_tensor(kFloat32, {4})}, {"b", ref_tensor(kInt8, {3})}});
  const std::string ok = read_bytes(dir / "ok.npz");
  auto [cd, end] = directory_of(ok);
  auto check = [&](const char* what, std::string bytes, std::string fragment) {
    SCOPED_TRACE(what);
    write_bytes(dir / "bad.npz", bytes);
    expect_io_error([&] { io::load_npz(dir / "bad.npz"); }, "load_npz", {"bad.npz", fragment});
  };
  check("not a zip", "definitely not a zip archive, just text", "no end-of-central-directory");
  std::string b = ok;
  b[35 + 10 + read_le(ok, 35 + 8, 2) + 5] ^= 1;  // a data byte of a.npy (after its npy header)
  check("flipped data byte", b, "member 'a.npy' fails its CRC check");
  b = ok;
  put_le(b, cd + 10, 12, 2);
  check("unknown method", b, "compression method 12");
  b = ok;
  put_le(b, cd + 20, read_le(ok, cd + 20, 4) - 1, 4);
  check("stored sizes disagree", b, "stored member 'a.npy' has size");
  b = ok;
  put_le(b, end + 16, 1u << 30, 4);
  check("directory offset out of range", b, "central directory");
  b = ok;
  put_le(b, cd + 42, cd - 10, 4);
  check("local header offset wrong", b, "member 'a.npy'");
  b = ok;
  put_le(b, cd + 8, 1, 2);
  check("encrypted", b, "member 'a.npy' is encrypted");
  b = ok;
  for (size_t at = b.find("a.npy"); at != std::string::npos; at = b.find("a.npy", at + 1))
    b.replace(at, 5, "a.txt");
  check("not a .npy member", b, "member 'a.txt' is not a .npy file");
  b = kNumpyCompressedNpz;
  auto [ncd, nend] = directory_of(b);
  put_le(b, ncd + 24, 1u << 30, 4);
  check("impossible inflated size", b, "more than deflate can give");
  b = kNumpyCompressedNpz;
  put_le(b, ncd + 24, 151, 4);  // one byte less than the truth
  check("inflated size too small", b, "inflates to 152 bytes, its directory entry says 151");
  b = kNumpyCompressedNpz;
  b[60] ^= 0x55;  // inside a.npy's deflate stream
  check("corrupt deflate stream", b, "a.npy");
  (void)nend;
}

TEST(IoNpz, TruncationsAndByteFlipsNeverCrash) {
  TempDir dir;
  io::save_npz(dir / "ok.npz", {{"a", ref_tensor(kFloat32, {4})}, {"b", ref_tensor(kBool, {3})}});
  for (const std::string& full : {read_bytes(dir / "ok.npz"), kNumpyCompressedNpz}) {
    for (size_t len = 0; len < full.size(); ++len) {
      write_bytes(dir / "cut.npz", full.substr(0, len));
      expect_io_error([&] { io::load_npz(dir / "cut.npz"); }, "load_npz", {});
    }
    int errors = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      std::string b = full;
      b[i] = static_cast<char>(b[i] ^ 0x10);
      write_bytes(dir / "flip.npz", b);
      try {
        io::load_npz(dir / "flip.npz");
      } catch (const IOError&) {
        ++errors;
      }
    }
    EXPECT_GT(errors, static_cast<int>(full.size() / 2));
  }
}

}  // namespace
}  // namespace tessera
