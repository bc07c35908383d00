#include "io/format_util.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <limits>

namespace tessera::io::detail {

std::optional<uint64_t> checked_nbytes(const Shape& shape, DType dtype) {
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) empty = true;
    if (d > 1 && __builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  int64_t bytes = 0;
  if (__builtin_mul_overflow(n, static_cast<int64_t>(itemsize(dtype)), &bytes)) return std::nullopt;
  return empty ? 0 : static_cast<uint64_t>(bytes);
}

size_t alignment_of(DType dtype) {
  return visit_dtype(dtype, [](auto tag) { return alignof(typename decltype(tag)::type); });
}

bool valid_bools(const Tensor& t) {
  const auto* p = static_cast<const uint8_t*>(t.raw_data());
  return std::all_of(p, p + t.numel(), [](uint8_t b) { return b <= 1; });
}

Tensor host_contiguous(const Tensor& t) { return t.detach().to(Device::cpu()).contiguous(); }

uint32_t crc32_of(std::span<const uint8_t> b, uint32_t crc) {
  for (size_t i = 0; i < b.size(); i += UINT_MAX) {  // zlib counts in uInt
    auto n = static_cast<uInt>(std::min<size_t>(b.size() - i, UINT_MAX));
    crc = static_cast<uint32_t>(crc32(crc, b.data() + i, n));
  }
  return crc;
}

void byteswap_inplace(Tensor& t) {
  size_t k = itemsize(to_real_dtype(t.dtype()));  // complex: swap real and imaginary separately
  auto* p = static_cast<uint8_t*>(t.raw_data());
  size_t n = t.nbytes();
  for (size_t i = 0; k > 1 && i < n; i += k) std::reverse(p + i, p + i + k);
}

}  // namespace tessera::io::detail
