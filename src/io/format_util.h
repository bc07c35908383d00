#pragma once
// Small helpers shared by the file formats.
#include <cstdint>
#include <optional>
#include <span>

#include "tessera/core/tensor.h"

namespace tessera::io::detail {

/// Bytes of a contiguous tensor of this shape and dtype; nullopt when int64 cannot count them
/// (the product of the non-zero sizes is checked, so views and strides of it never overflow).
std::optional<uint64_t> checked_nbytes(const Shape& shape, DType dtype);
/// Alignment a pointer needs to be read as dtype's C++ type.
size_t alignment_of(DType dtype);
/// True when every byte of a contiguous bool tensor is 0 or 1 (any other value is not a bool).
bool valid_bools(const Tensor& t);
/// t detached, on the CPU and C-contiguous (t itself when it already is).
Tensor host_contiguous(const Tensor& t);
/// CRC-32 (zip's) of b, continuing from crc.
uint32_t crc32_of(std::span<const uint8_t> b, uint32_t crc = 0);
/// Reverses the byte order of every scalar in a contiguous tensor (complex: each half).
void byteswap_inplace(Tensor& t);

}  // namespace tessera::io::detail
