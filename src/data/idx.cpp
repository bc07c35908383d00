// IDX (the MNIST format): magic 0 0 <type> <ndim>, ndim big-endian uint32 dims, then the
// big-endian data. Every size is checked against the file before a tensor is made.
#include <bit>
#include <cstring>
#include <optional>

#include "data/file.h"
#include "tessera/core/error.h"
#include "tessera/data/readers.h"

namespace tessera::data {
namespace {

struct IdxType {
  uint8_t code;
  DType dtype;
};
constexpr IdxType kIdxTypes[] = {{0x08, kUInt8}, {0x09, kInt8},    {0x0B, kInt16},
                                 {0x0C, kInt32}, {0x0D, kFloat32}, {0x0E, kFloat64}};

std::optional<DType> idx_dtype(uint8_t code) {
  for (const auto& t : kIdxTypes) {
    if (t.code == code) return t.dtype;
  }
  return std::nullopt;
}

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Copies n big-endian elements of `size` bytes into native order.
void copy_from_big_endian(unsigned char* dst, const unsigned char* src, size_t n, size_t size) {
  if (size == 1 || std::endian::native == std::endian::big) {
    std::memcpy(dst, src, n * size);
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    for (size_t b = 0; b < size; ++b) dst[i * size + b] = src[i * size + size - 1 - b];
  }
}

}  // namespace

Tensor read_idx(const std::string& path) {
  const std::string bytes = detail::read_all(path, "read_idx");
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  const size_t size = bytes.size();
  TS_CHECK(size >= 4, IOError, "read_idx", "{}: {} bytes is too short for the 4-byte magic", path,
           size);
  TS_CHECK(p[0] == 0 && p[1] == 0, IOError, "read_idx",
           "{}: bad magic {:02x} {:02x} {:02x} {:02x} (an IDX file starts with 00 00)", path, p[0],
           p[1], p[2], p[3]);
  const std::optional<DType> dtype = idx_dtype(p[2]);
  TS_CHECK(dtype.has_value(), IOError, "read_idx",
           "{}: unknown type code 0x{:02x} (expected 08, 09, 0b, 0c, 0d or 0e)", path, p[2]);
  const size_t ndim = p[3];
  const size_t header = 4 + 4 * ndim;
  TS_CHECK(size >= header, IOError, "read_idx",
           "{}: {} dims need a {}-byte header but the file has "
           "{} bytes",
           path, ndim, header, size);
  Shape shape;
  uint64_t count = 1;
  for (size_t d = 0; d < ndim; ++d) {
    shape.push_back(read_be32(p + 4 + 4 * d));
    // Dims are < 2^32, so the product overflows only past 2^32 * 2^32; check each step.
    TS_CHECK(!__builtin_mul_overflow(count, static_cast<uint64_t>(shape.back()), &count) &&
                 count < (uint64_t{1} << 56),
             IOError, "read_idx", "{}: dims {} are too large", path, shape_str(shape));
  }
  const size_t item = itemsize(*dtype);
  TS_CHECK(size - header == count * item, IOError, "read_idx",
           "{}: dims {} of {} need {} data bytes but the file has {}", path, shape_str(shape),
           dtype_name(*dtype), count * item, size - header);
  Tensor out = Tensor::empty(shape, *dtype);
  copy_from_big_endian(static_cast<unsigned char*>(out.raw_data()), p + header, count, item);
  return out;
}

}  // namespace tessera::data
