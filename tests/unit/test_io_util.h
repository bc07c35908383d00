#pragma once
// Helpers shared by the io tests: temporary folders, raw file bytes, IOError expectations, and
// tensors of every dtype with values given by simple per-element formulas (the Python interop
// test uses the same formulas on the NumPy side).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "tessera/tessera.h"

namespace tessera::iotest {

namespace fs = std::filesystem;

/// A fresh folder, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            fmt::format("tessera_io_{}_{}", ::getpid(), counter.fetch_add(1));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  fs::path operator/(const std::string& name) const { return path_ / name; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Replaces p's content. Removing it first avoids ext4's flush on truncate-and-rewrite, which
/// costs milliseconds per file in the loops that write hundreds of damaged copies.
inline void write_bytes(const fs::path& p, const std::string& bytes) {
  fs::remove(p);
  std::ofstream(p, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// n bytes of v, little-endian.
inline std::string le_bytes(uint64_t v, int n) {
  std::string s(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i) s[static_cast<size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}

inline uint64_t read_le(const std::string& s, size_t at, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(s.at(at + i));
  return v;
}

inline void put_le(std::string& s, size_t at, uint64_t v, int n) {
  s.replace(at, static_cast<size_t>(n), le_bytes(v, n));
}

/// Runs f and checks it throws IOError whose message starts with "[op]" and contains every
/// fragment. Returns the message (empty when nothing or something else was thrown).
template <class F>
std::string expect_io_error(F&& f, const std::string& op,
                            std::initializer_list<std::string> fragments) {
  try {
    f();
  } catch (const IOError& e) {
    std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[" + op + "]", 0), 0u) << msg;
    for (const auto& frag : fragments) EXPECT_NE(msg.find(frag), std::string::npos) << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected IOError, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected IOError from [" << op << "]";
  return {};
}

/// Element i of the reference tensor of dtype t (see the Python side in test_io_python.cpp).
inline double ref_real(DType t, int64_t i) {
  switch (t) {
    case kBool:
      return i % 3 == 0;
    case kUInt8:
      return (i * 37) % 256;
    case kInt8:
      return (i * 37) % 256 - 128;
    case kInt16:
      return static_cast<double>(i * 1000 - 5000);
    case kInt32:
      return static_cast<double>(i * 100000 - 7);
    case kFloat16:
      return static_cast<double>(i - 3) * 0.25;
    case kBFloat16:
      return static_cast<double>(i - 3) * 0.5;
    default:  // f32, f64, c64 real part
      return (static_cast<double>(i) - 3) * 0.1;
  }
}

/// A contiguous tensor of dtype t whose element i (flat, C order) is ref_real(t, i), built from
/// a host vector so that it does not depend on any op under test. int64 uses i * 10^12 - 3 and
/// complex64 (i * 0.5, -i * 0.25).
inline Tensor ref_tensor(DType t, const Shape& shape) {
  int64_t n = checked_numel(shape, "ref_tensor");
  return visit_dtype(t, [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::vector<T> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, Complex64>)
        v[i] = Complex64(static_cast<float>(i * 0.5), static_cast<float>(i * -0.25));
      else if constexpr (std::is_same_v<T, int64_t>)
        v[i] = i * 1000000000000 - 3;
      else if constexpr (std::is_same_v<T, bool>)
        v[i] = ref_real(t, i) != 0;
      else
        v[i] = static_cast<T>(ref_real(t, i));
    }
    return tensor<T>(v, shape);
  });
}

/// The bytes of a tensor in C order.
inline std::string tensor_bytes(const Tensor& t) {
  Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

/// Same dtype, shape and bytes.
inline void expect_same(const Tensor& got, const Tensor& want, const std::string& what = {}) {
  ASSERT_TRUE(got.defined()) << what;
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(got.shape(), want.shape()) << what;
  if (got.dtype() == want.dtype() && got.shape() == want.shape()) {
    EXPECT_TRUE(tensor_bytes(got) == tensor_bytes(want)) << what << ": values differ";
  }
}

inline constexpr DType kAllDTypes[] = {kBool,    kUInt8,    kInt8,    kInt16,   kInt32,    kInt64,
                                       kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};

}  // namespace tessera::iotest
