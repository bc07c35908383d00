// CUDA kernels of gather, scatter_add, index_select and masked_fill. Host code only: it builds
// the strided geometry (the indexed dim's stride zeroed, so the kernel adds index * stride)
// and calls the launchers of index.cu, or where() of compare.cu for masked_fill.
//
// Bounds: the index tensor lives on the device, so checking it on the host would cost a
// copy and a synchronization per call. The kernels check every index instead, skip an
// out-of-range one (gather writes 0) and record the first in the device's IndexFault; the
// next synchronization (a host copy, item(), cuda::synchronize) raises IndexError naming the op,
// the index and the dim size. Memory outside a tensor is never touched.
#include <array>

#include "backends/cpu/loops.h"
#include "backends/cuda/common.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

struct Along {
  k::Geometry g;
  int64_t dim_stride, dim_size;
};

// The geometry of a gather-like walk over `shape`: operand 0 `a` and operand 1 `b` (one of
// them the indexed tensor, whose stride along dim is zeroed), operand 2 the index.
Along along(const Shape& shape, const Tensor& a, const Tensor& b, const Strides& idx_strides,
            const Tensor& indexed, int64_t dim, const char* op) {
  const auto d = static_cast<size_t>(dim);
  Strides sa = a.strides(), sb = b.strides();
  (a.is_same(indexed) ? sa : sb)[d] = 0;
  const std::array<const int64_t*, 3> strides{sa.data(), sb.data(), idx_strides.data()};
  const std::array<const void*, 3> ptrs{a.raw_data(), b.raw_data(), nullptr};
  return {make_geometry(shape, strides, ptrs, op), indexed.strides()[d], indexed.shape()[d]};
}

void gather_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1], &y = out[0];
  if (y.numel() == 0) return;
  const int64_t dim = a.get<int64_t>("dim");
  const Along w = along(y.shape(), y, x, idx.strides(), x, dim, "gather");
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::gather(k::kGather, static_cast<int>(y.itemsize()), x.raw_data(), idx.data_ptr<int64_t>(),
            y.raw_data(), w.g, w.dim_stride, w.dim_size, index_fault(dev), current_stream(dev));
  launched(dev, "gather");
}

// index_select is gather with the 1-d index broadcast over the other dims. An empty result
// (another dim of x is 0) still has its indices checked, as on the CPU: gather's check-only
// mode walks the index alone and reads nothing.
void index_select_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1], &y = out[0];
  const int64_t dim = a.get<int64_t>("dim");
  if (y.numel() == 0) {
    if (idx.numel() == 0) return;
    const Strides none{0}, si{idx.strides()[0]};
    const std::array<const int64_t*, 3> strides{none.data(), none.data(), si.data()};
    const std::array<const void*, 3> ptrs{nullptr, nullptr, nullptr};
    const k::Geometry g = make_geometry(idx.shape(), strides, ptrs, "index_select");
    const int dev = y.device().index;
    DeviceGuard guard(dev);
    k::gather(k::kIndexSelect, static_cast<int>(y.itemsize()), nullptr, idx.data_ptr<int64_t>(),
              nullptr, g, 0, x.shape()[static_cast<size_t>(dim)], index_fault(dev),
              current_stream(dev));
    launched(dev, "index_select");
    return;
  }
  Strides si(y.shape().size(), 0);
  si[static_cast<size_t>(dim)] = idx.strides()[0];
  const Along w = along(y.shape(), y, x, si, x, dim, "index_select");
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::gather(k::kIndexSelect, static_cast<int>(y.itemsize()), x.raw_data(), idx.data_ptr<int64_t>(),
            y.raw_data(), w.g, w.dim_stride, w.dim_size, index_fault(dev), current_stream(dev));
  launched(dev, "index_select");
}

// out = x, then out[.. idx ..] += src over index's shape, in every dtype (atomic adds: the
// order of the adds into one element varies, so float sums can differ from the CPU's in the
// last bits; float16 and bfloat16 add in 16 bits, one rounding per add, as the CPU does).
// An empty y with a nonempty index has a dim of size 0 along `dim` (the index fits inside y
// elsewhere): every index is out of range and recorded, nothing is written, as the CPU raises.
void scatter_add_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1], &src = in[2], &y = out[0];
  convert_into(x, y, "scatter_add");
  if (idx.numel() == 0) return;
  const int64_t dim = a.get<int64_t>("dim");
  const Along w = along(idx.shape(), y, src, idx.strides(), y, dim, "scatter_add");
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::scatter_add(k::kScatterAdd, static_cast<int>(y.dtype()), src.raw_data(),
                 idx.data_ptr<int64_t>(), y.raw_data(), w.g, w.dim_stride, w.dim_size,
                 index_fault(dev), current_stream(dev));
  launched(dev, "scatter_add");
}

// masked_fill(x, mask, v) = where(mask, v, x), v a one-element device buffer.
void masked_fill_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &mask = in[1], &y = out[0];
  if (y.numel() == 0) return;
  const int dev = y.device().index;
  const Tensor v = Tensor::empty({}, y.dtype(), y.device());
  const Strides sm = cpu::broadcast_strides(mask, y.shape(), "masked_fill");
  const Strides sv(y.shape().size(), 0);
  const std::array<const int64_t*, 4> strides{y.strides().data(), sm.data(), sv.data(),
                                              x.strides().data()};
  const std::array<const void*, 4> ptrs{y.raw_data(), mask.raw_data(), v.raw_data(), x.raw_data()};
  const k::Geometry g = make_geometry(y.shape(), strides, ptrs, "masked_fill");
  DeviceGuard guard(dev);
  const int width = static_cast<int>(y.itemsize());
  k::fill(v.raw_data(), 1, width, fill_bits(a.get<Scalar>("value"), y.dtype()),
          current_stream(dev));
  k::where(width, mask.raw_data(), v.raw_data(), x.raw_data(), y.raw_data(), g,
           current_stream(dev));
  launched(dev, "masked_fill");
}

}  // namespace

void register_index_kernels(Registry& r) {
  r.add_kernel("gather", {DeviceType::CUDA, "cuda", gather_kernel});
  r.add_kernel("index_select", {DeviceType::CUDA, "cuda", index_select_kernel});
  r.add_kernel("scatter_add", {DeviceType::CUDA, "cuda", scatter_add_kernel});
  r.add_kernel("masked_fill", {DeviceType::CUDA, "cuda", masked_fill_kernel});
}

}  // namespace tessera::cuda
