// Transforms (values against hand-computed references) and readers (CSV, IDX, images) on small
// files written by the tests, including malformed ones, plus the committed gzip fixtures.
#include <cmath>
#include <cstring>
#include <set>

#include "test_data_util.h"

// The test writes its PNG/JPEG fixtures itself; static so it cannot clash with libstb.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace tessera::test {
namespace {

using namespace tessera::data;

// ---- transforms -----------------------------------------------------------------------------

// A uint8 (H, W, C) image with pixel (h, w, c) = 10 h + 3 w + c.
Tensor hwc_image(int64_t h, int64_t w, int64_t c) {
  std::vector<uint8_t> v;
  for (int64_t i = 0; i < h; ++i)
    for (int64_t j = 0; j < w; ++j)
      for (int64_t k = 0; k < c; ++k) v.push_back(static_cast<uint8_t>(10 * i + 3 * j + k));
  return tensor(v, Shape{h, w, c});
}

TEST(DataTransforms, ToTensorIsChwInUnitRange) {
  Tensor img = hwc_image(2, 3, 2);
  Tensor t = to_tensor()(img);
  EXPECT_EQ(t.dtype(), kFloat32);
  EXPECT_EQ(t.shape(), (Shape{2, 2, 3}));
  auto v = t.to_vector<float>();
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t h = 0; h < 2; ++h)
      for (int64_t w = 0; w < 3; ++w)
        EXPECT_EQ(v[static_cast<size_t>(c * 6 + h * 3 + w)],
                  static_cast<float>(10 * h + 3 * w + c) / 255.f);
  Tensor gray = to_tensor()(tensor<uint8_t>({0, 255, 51, 102}, Shape{2, 2}));
  EXPECT_EQ(gray.shape(), (Shape{1, 2, 2}));
  EXPECT_EQ(gray.to_vector<float>(), (std::vector<float>{0.f, 1.f, 0.2f, 0.4f}));
  EXPECT_THROW(to_tensor()(zeros({2, 2, 3})), DTypeError);
  EXPECT_THROW(to_tensor()(zeros({4}, kUInt8)), ShapeError);
}

TEST(DataTransforms, NormalizePerChannel) {
  Tensor x = arange(8, kFloat64).reshape({2, 2, 2});  // channel 0: 0..3, channel 1: 4..7
  auto v = normalize({1.0, 2.0}, {2.0, 0.5})(x).to_vector<double>();
  for (int i = 0; i < 4; ++i) {
    EXPECT_DOUBLE_EQ(v[i], (i - 1.0) / 2.0);
    EXPECT_DOUBLE_EQ(v[4 + i], (4 + i - 2.0) / 0.5);
  }
  // Batched input (N, C, H, W) and one value for every channel.
  Tensor batch = ones({3, 2, 1, 1}, kFloat32);
  EXPECT_EQ(normalize({1.0, 0.0}, {1.0, 4.0})(batch).to_vector<float>(),
            (std::vector<float>{0, 0.25f, 0, 0.25f, 0, 0.25f}));
  EXPECT_EQ(normalize({0.5}, {0.25})(ones({5})).to_vector<float>(), std::vector<float>(5, 2.f));
  std::string msg = error_of<ShapeError>([] { normalize({0, 0, 0}, {1, 1, 1})(zeros({2, 4, 4})); });
  EXPECT_NE(msg.find("[normalize] 3 channel values for a tensor of shape (2, 4, 4)"),
            std::string::npos)
      << msg;
  EXPECT_THROW(normalize({0}, {0}), ValueError);
  EXPECT_THROW(normalize({0, 1}, {1}), ValueError);
  EXPECT_THROW(normalize({0}, {1})(zeros({2}, kUInt8)), DTypeError);
}

// Element (r, c) of the image x (H, W) after zero-padding by p.
double padded_at(const std::vector<float>& x, int64_t h, int64_t w, int64_t p, int64_t r,
                 int64_t c) {
  r -= p;
  c -= p;
  return (r < 0 || c < 0 || r >= h || c >= w) ? 0.0 : x[static_cast<size_t>(r * w + c)];
}

TEST(DataTransforms, RandomCropIsAWindowOfThePaddedImage) {
  Tensor x = arange(1, 10, 1, kFloat32).reshape({1, 3, 3});
  auto xs = x.to_vector<float>();
  Generator g(17);
  Transform crop = random_crop({3, 3}, 1, &g);
  std::set<std::pair<int64_t, int64_t>> offsets;
  for (int trial = 0; trial < 200; ++trial) {
    Tensor y = crop(x);
    ASSERT_EQ(y.shape(), (Shape{1, 3, 3}));
    auto ys = y.to_vector<float>();
    // Find the window of the padded 5x5 image that y is (exactly one matches, as the values
    // 1..9 are distinct and the padding is 0).
    int matches = 0;
    for (int64_t top = 0; top <= 2; ++top)
      for (int64_t left = 0; left <= 2; ++left) {
        bool same = true;
        for (int64_t r = 0; r < 3; ++r)
          for (int64_t c = 0; c < 3; ++c)
            same = same &&
                   ys[static_cast<size_t>(r * 3 + c)] == padded_at(xs, 3, 3, 1, top + r, left + c);
        if (same) {
          ++matches;
          offsets.insert({top, left});
        }
      }
    ASSERT_EQ(matches, 1);
  }
  EXPECT_EQ(offsets.size(), 9u) << "every offset is reachable";
  // Same seed, same crops; without padding a full-size crop is the identity.
  Generator a(5), b(5);
  EXPECT_EQ(random_crop({2}, 2, &a)(x).to_vector<float>(),
            random_crop({2}, 2, &b)(x).to_vector<float>());
  EXPECT_EQ(random_crop({3, 3}, 0, &a)(x).to_vector<float>(), xs);
  std::string msg = error_of<ShapeError>([&] { random_crop({4, 2}, 0, &a)(x); });
  EXPECT_NE(msg.find("crop (4, 2) is larger than the padded image (3, 3)"), std::string::npos)
      << msg;
  EXPECT_THROW(random_crop({0, 2}), ValueError);
  EXPECT_THROW(random_crop({2, 2}, -1), ValueError);
}

TEST(DataTransforms, RandomHorizontalFlip) {
  Tensor x = arange(6, kFloat32).reshape({2, 3});
  Generator g(8);
  EXPECT_EQ(random_horizontal_flip(1.0, &g)(x).to_vector<float>(),
            (std::vector<float>{2, 1, 0, 5, 4, 3}));
  EXPECT_EQ(random_horizontal_flip(0.0, &g)(x).to_vector<float>(), x.to_vector<float>());
  Transform half = random_horizontal_flip(0.3, &g);
  int flipped = 0;
  for (int k = 0; k < 2000; ++k) flipped += half(x).to_vector<float>()[0] == 2.f;
  EXPECT_NEAR(flipped / 2000.0, 0.3, 0.04);  // sd ~ 0.01
  Generator a(9), b(9);
  for (int k = 0; k < 20; ++k) {
    EXPECT_EQ(random_horizontal_flip(0.5, &a)(x).to_vector<float>(),
              random_horizontal_flip(0.5, &b)(x).to_vector<float>());
  }
  EXPECT_THROW(random_horizontal_flip(1.5), ValueError);
}

TEST(DataTransforms, ComposeAppliesInOrder) {
  Compose t({to_tensor(), normalize({0.5}, {0.5})});
  Tensor img = tensor<uint8_t>({0, 51, 255}, Shape{1, 3, 1});
  auto v = t(img).to_vector<float>();
  ASSERT_EQ(v.size(), 3u);
  EXPECT_FLOAT_EQ(v[0], -1.f);
  EXPECT_FLOAT_EQ(v[1], (0.2f - 0.5f) / 0.5f);
  EXPECT_FLOAT_EQ(v[2], 1.f);
  EXPECT_THROW(Compose({Transform{}}), ValueError);
}

// ---- CSV ------------------------------------------------------------------------------------

TEST(DataCsv, ReadsNumbersWithOptions) {
  ScratchDir dir;
  write_bytes(dir.file("a.csv"), "x,y,z\r\n1, 2.5,-3e2\r\n\r\n+4,nan,0.1\r\n");
  Tensor t = read_csv(dir.file("a.csv"), {.skip_rows = 1, .dtype = kFloat64});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dtype(), kFloat64);
  auto v = t.to_vector<double>();
  EXPECT_EQ(v[0], 1.0);
  EXPECT_EQ(v[1], 2.5);
  EXPECT_EQ(v[2], -300.0);
  EXPECT_EQ(v[3], 4.0);
  EXPECT_TRUE(std::isnan(v[4]));
  EXPECT_EQ(v[5], 0.1);  // exactly the double nearest 0.1
  write_bytes(dir.file("b.tsv"), "1;2\n3;4");
  Tensor f = read_csv(dir.file("b.tsv"), {.delimiter = ';'});
  EXPECT_EQ(f.dtype(), kFloat32);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{1, 2, 3, 4}));
  write_bytes(dir.file("empty.csv"), "\n\n");
  EXPECT_EQ(read_csv(dir.file("empty.csv")).shape(), (Shape{0, 0}));
  EXPECT_THROW(read_csv(dir.file("b.tsv"), {.dtype = kInt32}), DTypeError);
}

TEST(DataCsv, MalformedFilesNameLineAndColumn) {
  ScratchDir dir;
  auto read_error = [&](const std::string& text, CsvOptions opt = {}) {
    write_bytes(dir.file("bad.csv"), text);
    return error_of<IOError>([&] { read_csv(dir.file("bad.csv"), opt); });
  };
  std::string msg = read_error("1,2,3\n4,5,6\n7,8\n");
  EXPECT_NE(msg.find("line 3 has 2 columns but line 1 has 3"), std::string::npos) << msg;
  msg = read_error("1,2\n3,abc\n");
  EXPECT_NE(msg.find("line 2, column 2: 'abc' is not a number"), std::string::npos) << msg;
  msg = read_error("a,b\n1,2\n");
  EXPECT_NE(msg.find("line 1, column 1: 'a' is not a number (a header? use skip_rows)"),
            std::string::npos)
      << msg;
  msg = read_error("1,,3\n");
  EXPECT_NE(msg.find("line 1, column 2: empty field"), std::string::npos) << msg;
  msg = read_error("1.5x\n");
  EXPECT_NE(msg.find("'1.5x' is not a number"), std::string::npos) << msg;
  msg = read_error("1e999\n");
  EXPECT_NE(msg.find("out of the float64 range"), std::string::npos) << msg;
  msg = error_of<IOError>([&] { read_csv(dir.file("missing.csv")); });
  EXPECT_NE(msg.find("missing.csv: cannot open"), std::string::npos) << msg;
  EXPECT_THROW(read_csv(dir.path().string()), IOError);
}

TEST(DataCsv, GzipRoundTripAndFixture) {
  ScratchDir dir;
  Tensor t = tensor<double>({0.1, -2.0, 1e-30, 3.25, 1e300, -0.0}, Shape{3, 2});
  for (const char* name : {"t.csv", "t.csv.gz"}) {
    write_csv(dir.file(name), t);
    Tensor back = read_csv(dir.file(name), {.dtype = kFloat64});
    EXPECT_EQ(back.shape(), (Shape{3, 2}));
    EXPECT_EQ(back.to_vector<double>(), t.to_vector<double>()) << name;
  }
  // The .gz file really is compressed: it starts with the gzip magic.
  std::ifstream in(dir.file("t.csv.gz"), std::ios::binary);
  EXPECT_EQ(in.get(), 0x1f);
  EXPECT_EQ(in.get(), 0x8b);
  write_csv(dir.file("col.csv"), tensor<int64_t>({1, 2, 3}));
  EXPECT_EQ(read_csv(dir.file("col.csv")).shape(), (Shape{3, 1}));
  // Shortest text per dtype: float32 0.1 is "0.1", integers are exact past 2^53.
  write_csv(dir.file("f.csv"), tensor<float>({0.1f, 2.5f}, Shape{1, 2}), ';');
  write_csv(dir.file("i.csv"), tensor<int64_t>({9007199254740993}));
  auto text = [&](const std::string& name) {
    std::ifstream f(dir.file(name));
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(text("f.csv"), "0.1;2.5\n");
  EXPECT_EQ(text("i.csv"), "9007199254740993\n");
  EXPECT_THROW(write_csv(dir.file("x.csv"), zeros({2, 2, 2})), ShapeError);

  Tensor fixture = read_csv((fixture_dir() / "small.csv.gz").string(), {.skip_rows = 1});
  EXPECT_EQ(fixture.shape(), (Shape{2, 3}));
  EXPECT_EQ(fixture.to_vector<float>(), (std::vector<float>{1.5f, 2, 3, -4, 0.5f, 6}));

  // A gzip stream cut short is an error, not a silently shorter table.
  std::ifstream whole(fixture_dir() / "small.csv.gz", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(whole)), std::istreambuf_iterator<char>());
  write_bytes(dir.file("cut.csv.gz"), bytes.substr(0, bytes.size() - 10));
  EXPECT_THROW(read_csv(dir.file("cut.csv.gz"), {.skip_rows = 1}), IOError);
}

// ---- IDX ------------------------------------------------------------------------------------

// An IDX file: magic, big-endian dims, then the big-endian bytes of each value.
template <class T>
std::string idx_bytes(uint8_t code, const std::vector<uint32_t>& dims, const std::vector<T>& v) {
  std::string s = {0, 0, static_cast<char>(code), static_cast<char>(dims.size())};
  auto put_be = [&](const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (size_t k = 0; k < n; ++k) s.push_back(static_cast<char>(b[n - 1 - k]));  // host is LE
  };
  for (uint32_t d : dims) put_be(&d, 4);
  for (const T& x : v) put_be(&x, sizeof(T));
  return s;
}

template <class T>
void expect_idx_round_trip(const ScratchDir& dir, uint8_t code, DType dtype, std::vector<T> v) {
  write_bytes(dir.file("x.idx"), idx_bytes<T>(code, {2, 1, 3}, v));
  Tensor t = read_idx(dir.file("x.idx"));
  EXPECT_EQ(t.dtype(), dtype);
  EXPECT_EQ(t.shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(t.to_vector<T>(), v) << dtype_name(dtype);
}

TEST(DataIdx, EveryTypeCode) {
  ScratchDir dir;
  expect_idx_round_trip<uint8_t>(dir, 0x08, kUInt8, {0, 1, 127, 128, 254, 255});
  expect_idx_round_trip<int8_t>(dir, 0x09, kInt8, {-128, -1, 0, 1, 100, 127});
  expect_idx_round_trip<int16_t>(dir, 0x0B, kInt16, {-32768, -2, 0, 258, 1000, 32767});
  expect_idx_round_trip<int32_t>(dir, 0x0C, kInt32, {-2147483647 - 1, -70000, 0, 1, 65536, 7});
  expect_idx_round_trip<float>(dir, 0x0D, kFloat32, {1.5f, -0.1f, 0.f, 3e38f, 1e-40f, -2.f});
  expect_idx_round_trip<double>(dir, 0x0E, kFloat64, {0.1, -1e300, 0, 5e-324, 2.5, -3});
  // By hand for one value: int16 -2 is stored as FF FE.
  write_bytes(dir.file("m.idx"), std::string("\x00\x00\x0b\x01\x00\x00\x00\x01\xff\xfe", 10));
  EXPECT_EQ(read_idx(dir.file("m.idx")).to_vector<int16_t>(), (std::vector<int16_t>{-2}));
  // MNIST-style 1-d labels and a gzipped fixture.
  write_bytes(dir.file("labels.idx"), idx_bytes<uint8_t>(0x08, {4}, {7, 2, 1, 0}));
  EXPECT_EQ(read_idx(dir.file("labels.idx")).shape(), (Shape{4}));
  Tensor fx = read_idx((fixture_dir() / "tiny-idx2-int16.gz").string());
  EXPECT_EQ(fx.shape(), (Shape{2, 3}));
  EXPECT_EQ(fx.to_vector<int16_t>(), (std::vector<int16_t>{1, -2, 300, -32768, 32767, 0}));
}

TEST(DataIdx, MalformedFilesRaiseIOError) {
  ScratchDir dir;
  auto idx_error = [&](const std::string& bytes) {
    write_bytes(dir.file("bad.idx"), bytes);
    return error_of<IOError>([&] { read_idx(dir.file("bad.idx")); });
  };
  const std::string good = idx_bytes<uint8_t>(0x08, {2, 3}, {1, 2, 3, 4, 5, 6});
  std::string msg = idx_error(good.substr(0, good.size() - 1));
  EXPECT_NE(msg.find("dims (2, 3) of uint8 need 6 data bytes but the file has 5"),
            std::string::npos)
      << msg;
  msg = idx_error(good + "x");
  EXPECT_NE(msg.find("need 6 data bytes but the file has 7"), std::string::npos) << msg;
  std::string bad_magic = good;
  bad_magic[0] = 1;
  msg = idx_error(bad_magic);
  EXPECT_NE(msg.find("bad magic 01 00 08 02"), std::string::npos) << msg;
  std::string bad_type = good;
  bad_type[2] = 0x0A;
  msg = idx_error(bad_type);
  EXPECT_NE(msg.find("unknown type code 0x0a"), std::string::npos) << msg;
  msg = idx_error(good.substr(0, 9));  // the header needs 4 + 2 * 4 bytes
  EXPECT_NE(msg.find("2 dims need a 12-byte header but the file has 9 bytes"), std::string::npos)
      << msg;
  msg = idx_error(std::string("\x00\x00", 2));
  EXPECT_NE(msg.find("too short"), std::string::npos) << msg;
  // Huge dims are caught before any allocation.
  msg = idx_error(idx_bytes<uint8_t>(0x0D, {0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF}, {}));
  EXPECT_NE(msg.find("too large"), std::string::npos) << msg;
  EXPECT_THROW(read_idx(dir.file("nope.idx")), IOError);
}

// ---- images ---------------------------------------------------------------------------------

// A w x h RGB PNG whose pixel (y, x) = (base + x, base + 10 y, 200).
std::vector<uint8_t> write_png(const std::string& path, int w, int h, int base) {
  std::vector<uint8_t> px;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int v : {base + x, base + 10 * y, 200}) px.push_back(static_cast<uint8_t>(v));
  EXPECT_NE(stbi_write_png(path.c_str(), w, h, 3, px.data(), w * 3), 0);
  return px;
}

TEST(DataImage, ReadImageChannels) {
  ScratchDir dir;
  auto px = write_png(dir.file("a.png"), 3, 2, 5);
  Tensor img = read_image(dir.file("a.png"));
  EXPECT_EQ(img.shape(), (Shape{2, 3, 3}));
  EXPECT_EQ(img.dtype(), kUInt8);
  EXPECT_EQ(img.to_vector<uint8_t>(), px);
  EXPECT_EQ(read_image(dir.file("a.png"), 4).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(read_image(dir.file("a.png"), 4).index({1, 2, 3}).item<int64_t>(), 255);  // alpha
  std::vector<uint8_t> gray = {0, 50, 100, 150};
  ASSERT_NE(stbi_write_png(dir.file("g.png").c_str(), 2, 2, 1, gray.data(), 2), 0);
  EXPECT_EQ(read_image(dir.file("g.png"), 0).shape(), (Shape{2, 2, 1}));
  Tensor rgb = read_image(dir.file("g.png"), 3);  // gray replicated into R, G, B
  EXPECT_EQ(rgb.index({1, 1}).to_vector<uint8_t>(), (std::vector<uint8_t>{150, 150, 150}));
  write_bytes(dir.file("broken.png"), "\x89PNG not really");
  std::string msg = error_of<IOError>([&] { read_image(dir.file("broken.png")); });
  EXPECT_NE(msg.find("broken.png: cannot decode"), std::string::npos) << msg;
  EXPECT_THROW(read_image(dir.file("none.png")), IOError);
  EXPECT_THROW(read_image(dir.file("a.png"), 5), ValueError);
}

TEST(DataImage, ImageFolderClassesSamplesAndValues) {
  ScratchDir dir;
  const auto root = dir.path() / "train";
  std::filesystem::create_directories(root / "dog" / "more");
  std::filesystem::create_directories(root / "cat");
  auto b = write_png((root / "cat" / "b.png").string(), 2, 2, 20);
  auto a = write_png((root / "cat" / "a.PNG").string(), 2, 2, 10);
  write_png((root / "dog" / "z.png").string(), 2, 2, 30);
  write_png((root / "dog" / "more" / "y.png").string(), 2, 2, 40);
  write_bytes((root / "dog" / "notes.txt").string(), "not an image");
  // A uniform JPEG decodes close to its colour (JPEG is lossy).
  std::vector<uint8_t> blue(2 * 2 * 3);
  for (size_t k = 0; k < blue.size(); ++k) blue[k] = k % 3 == 2 ? 250 : 10;
  ASSERT_NE(stbi_write_jpg((root / "dog" / "w.jpg").string().c_str(), 2, 2, 3, blue.data(), 95), 0);

  auto folder = std::make_shared<ImageFolder>(root.string());
  EXPECT_EQ(folder->classes(), (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(folder->size(), 5);
  std::vector<std::string> names;
  std::vector<int64_t> labels;
  for (const auto& [path, label] : folder->samples()) {
    names.push_back(std::filesystem::path(path).filename().string());
    labels.push_back(label);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a.PNG", "b.png", "y.png", "w.jpg", "z.png"}));
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 0, 1, 1, 1}));

  Example e = folder->get(1);  // cat/b.png
  EXPECT_EQ(e[0].shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(e[1].item<int64_t>(), 0);
  auto v = e[0].to_vector<float>();
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < 4; ++p)
      EXPECT_EQ(v[static_cast<size_t>(c * 4 + p)], b[static_cast<size_t>(p * 3 + c)] / 255.f);
  auto jpg = folder->get(3)[0].to_vector<float>();
  for (int p = 0; p < 4; ++p) {
    EXPECT_NEAR(jpg[static_cast<size_t>(p)], 10 / 255.f, 0.03);
    EXPECT_NEAR(jpg[static_cast<size_t>(8 + p)], 250 / 255.f, 0.03);
  }

  // Through a loader: images stack into (B, 3, 2, 2), labels into (B).
  DataLoader loader(folder, {.batch_size = 2, .num_workers = 2});
  std::vector<int64_t> seen;
  for (const Example& batch : loader) {
    EXPECT_EQ(batch[0].size(1), 3);
    EXPECT_EQ(batch[0].dim(), 4);
    auto l = batch[1].to_vector<int64_t>();
    seen.insert(seen.end(), l.begin(), l.end());
  }
  EXPECT_EQ(seen, labels);
  // A transform applies to the image only.
  ImageFolder flipped(root.string(), {.transform = random_horizontal_flip(1.0)});
  auto f = flipped.get(0)[0].to_vector<float>();
  EXPECT_EQ(f[0], a[3] / 255.f);  // (0, 0) of the flipped red plane is pixel (0, 1)
}

TEST(DataImage, ImageFolderErrors) {
  ScratchDir dir;
  std::string msg = error_of<IOError>([&] { ImageFolder(dir.file("missing")); });
  EXPECT_NE(msg.find("not a directory"), std::string::npos) << msg;
  msg = error_of<IOError>([&] { ImageFolder(dir.path().string()); });
  EXPECT_NE(msg.find("no class folders"), std::string::npos) << msg;
  std::filesystem::create_directories(dir.path() / "a");
  std::filesystem::create_directories(dir.path() / "b");
  write_png(dir.file("a/x.png"), 1, 1, 0);
  msg = error_of<IOError>([&] { ImageFolder(dir.path().string()); });
  EXPECT_NE(msg.find("class 'b' has no image"), std::string::npos) << msg;
  write_bytes(dir.file("b/y.png"), "garbage");
  ImageFolder folder(dir.path().string());
  msg = error_of<IOError>([&] { folder.get(1); });
  EXPECT_NE(msg.find("y.png: cannot decode"), std::string::npos) << msg;
  EXPECT_THROW(folder.get(2), IndexError);
}

}  // namespace
}  // namespace tessera::test
