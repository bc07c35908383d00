#pragma once
// Private to the CUDA backend's host code: what the kernel files share (dtype codes, the
// geometry of a strided call, same-device copies) and the registrars of each family.
#include <span>
#include <string_view>

#include "backends/cuda/kernels.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {

/// The kernels' code of a dtype (its DType value), or -1 for complex64.
int dtype_code(DType dt);

/// The iteration space of `shape` over operands with these element strides (0 = broadcast;
/// operand 0 is the output), dims merged where every operand walks memory uniformly.
/// Throws NotImplementedError naming op beyond k::kMaxDims unmergeable dims.
k::Geometry make_geometry(const Shape& shape, std::span<const int64_t* const> strides,
                          std::span<const void* const> ptrs, std::string_view op);

/// The launch geometry of y = op(x) (operand 0: y, 1: x), y and x of one shape.
k::Geometry unary_geometry(const Tensor& x, const Tensor& y, const char* op);
/// The launch geometry of y = op(x, w), x and w broadcast to y's shape (operands y, x, w).
k::Geometry binary_geometry(const Tensor& x, const Tensor& w, const Tensor& y, const char* op);
/// The launch geometry of y = op(a, b, c), all broadcast to y's shape (operands y, a, b, c).
k::Geometry ternary_geometry(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& y,
                             const char* op);

/// dst = src converted to dst's dtype and broadcast to its shape; both on dst's CUDA device,
/// queued on the current stream. `op` (a static name) is named in errors.
void convert_into(const Tensor& src, const Tensor& dst, const char* op);

/// The bit pattern of v converted to dt with the CPU's rules (for k::fill).
uint64_t fill_bits(const Scalar& v, DType dt);

void register_elementwise_kernels(Registry& r);
void register_more_elementwise_kernels(Registry& r);  // elementwise.cpp
void register_complex_kernels(Registry& r);           // complex.cpp: complex64 elementwise
void register_matmul_kernels(Registry& r);
void register_reduce_kernels(Registry& r);
void register_pool_kernels(Registry& r);  // pool.cpp
void register_conv_kernels(Registry& r);  // cudnn/conv.cpp, or its stub without cuDNN
void register_index_kernels(Registry& r);
void register_random_kernels(Registry& r);  // random.cpp: random draws, arange, linspace, eye
void register_shape_kernels(Registry& r);   // shape.cpp: cat, flip, roll, repeat, pad, tril, triu
void register_sort_kernels(Registry& r);    // sort.cpp: sort, argsort, topk, unique, nonzero
void register_advanced_index_kernels(Registry& r);  // index_adv.cpp: index, index_put(_), scatter
void register_layer_norm_kernels(Registry& r);      // layer_norm.cpp

}  // namespace tessera::cuda
