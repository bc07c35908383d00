#pragma once
// Table-driven data movement shared by the indexing and shape kernels. An operand is a base
// pointer plus one byte-offset table per logical dim: element (i_0, ..., i_n-1) lives at
// base + table[0][i_0] + ... + table[n-1][i_n-1]. Strided tensors, flips, rolls, repeats,
// reflect/replicate pads, index_select and advanced indexing are all just different tables,
// so one move loop (dispatched on item size, never on dtype) serves them all.
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"

namespace tessera::cpu {

/// A source offset meaning "write the fill value here" (constant padding).
inline constexpr int64_t kFillOffset = INT64_MIN;

struct TableSide {
  char* base = nullptr;
  std::vector<std::vector<int64_t>> tables;  ///< per dim, byte offsets
};

/// Tables of a strided operand: tables[d][i] = i * strides[d] * itemsize.
TableSide strided_side(char* base, const Shape& shape, const Strides& strides, int64_t itemsize);
TableSide strided_side(const Tensor& t);
/// Byte offsets of every element of (shape, strides) in row-major order.
std::vector<int64_t> flat_offsets(const Shape& shape, const Strides& strides, int64_t itemsize);
/// Byte offsets idx[k] * stride_bytes for an int64 contiguous index tensor, each index checked
/// against [0, size) (or [-size, size) wrapped when allow_negative). Errors name op and dim.
std::vector<int64_t> index_offsets(const Tensor& idx, int64_t size, int64_t stride_bytes,
                                   bool allow_negative, std::string_view op, int64_t dim);

/// dst[e] = src[e] for every element e of shape (kFillOffset source entries get *fill).
/// parallel=false keeps the writes in order (scatters with repeated destinations).
void table_move(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t itemsize,
                bool parallel = true, const void* fill = nullptr);
/// dst[e] += src[e] in dtype arithmetic, in element order (repeated destinations accumulate).
void table_accumulate(const Shape& shape, const TableSide& dst, const TableSide& src, DType dtype);
/// Copies src into dst (same shape and dtype, any strides).
void strided_copy(const Tensor& src, const Tensor& dst);
/// The bytes of value converted to dtype (for fills).
std::array<char, 16> fill_bytes(DType dtype, const Scalar& value);

}  // namespace tessera::cpu
