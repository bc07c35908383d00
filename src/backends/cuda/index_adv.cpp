// CUDA kernels of index (advanced indexing), index_put, index_put_ and scatter: host code that
// builds the strided geometry over the indexing result (x's strides zeroed on the index's
// dims, the index item as operand 2) and calls index_adv.cu.
//
// Semantics are the CPU's (backends/cpu/indexing.cpp): index and index_put take negative
// indices from the end, scatter does not; out-of-range indices raise IndexError, here at the
// next synchronization (the IndexFault of index.cpp; the element is skipped). A store to a
// target named several times keeps the last value in the CPU's sequential order: the items'
// targets are sorted (stable, sort.cu) and only the last item of each target writes, so results
// and the gradients that replay the write with element ids (rules_indexing.cpp) match the CPU.
// Accumulating puts add atomically in every dtype: the order of the adds into one element
// varies, so float results can differ from the CPU's in the last bits.
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/scratch.h"
#include "backends/cuda/sort_kernels.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

// The index tensors of dims [start, start + k) of x, as the kernels see them.
k::AdvIndex adv_index(const Tensor& x, Inputs idx, int64_t start, int32_t op, const char* name) {
  const auto n = static_cast<int64_t>(idx.size());
  if (n > k::kMaxDims)
    fail<NotImplementedError>(name, "no CUDA kernel for more than {} index tensors (got {})",
                              k::kMaxDims, n);
  k::AdvIndex a;
  a.k = static_cast<int>(n);
  a.op = op;
  int64_t lin = 1;
  for (int64_t j = n - 1; j >= 0; --j) {
    a.idx[j] = idx[static_cast<size_t>(j)].data_ptr<int64_t>();
    a.size[j] = x.size(start + j);
    a.stride[j] = x.stride(start + j);
    a.lin[j] = lin;
    lin *= a.size[j];
  }
  return a;
}

// Strides over the result shape x[:start] + B + x[start+k:] of: x (zero on B), and the item
// index b (B's row-major strides, zero elsewhere).
struct ResultStrides {
  Strides x, item;
};
ResultStrides result_strides(const Tensor& x, const Shape& b, int64_t start, int64_t k) {
  ResultStrides r;
  for (int64_t d = 0; d < start; ++d) r.x.push_back(x.stride(d)), r.item.push_back(0);
  const Strides bs = contiguous_strides(b);
  for (size_t d = 0; d < b.size(); ++d) r.x.push_back(0), r.item.push_back(bs[d]);
  for (int64_t d = start + k; d < x.dim(); ++d) r.x.push_back(x.stride(d)), r.item.push_back(0);
  return r;
}

// Checks the indices alone (the CPU raises for a bad index even when nothing is moved).
void check_only(const k::AdvIndex& a, int64_t n, int dev, const char* op) {
  if (n == 0) return;
  DeviceGuard guard(dev);
  k::index_keys(a, n, 0, nullptr, index_fault(dev), current_stream(dev));
  launched(dev, op);
}

void index_kernel(Inputs in, Outputs out, const Attrs& attrs) {
  const Tensor &x = in[0], &y = out[0];
  const Inputs idx = in.subspan(1);
  const int64_t start = attrs.get<int64_t>("start");
  const k::AdvIndex a = adv_index(x, idx, start, k::kIndex, "index");
  const int dev = y.device().index;
  if (y.numel() == 0) return check_only(a, idx[0].numel(), dev, "index");
  const ResultStrides r = result_strides(x, idx[0].shape(), start, a.k);
  const std::array<const int64_t*, 3> strides{y.strides().data(), r.x.data(), r.item.data()};
  const std::array<const void*, 3> ptrs{y.raw_data(), x.raw_data(), nullptr};
  const k::Geometry g = make_geometry(y.shape(), strides, ptrs, "index");
  DeviceGuard guard(dev);
  k::index_gather(static_cast<int>(y.itemsize()), x.raw_data(), y.raw_data(), g, a,
                  index_fault(dev), current_stream(dev));
  launched(dev, "index");
}

// inputs: x (or the copy being written), values (the result shape), idx...; writes into dst.
void put_into(const Tensor& dst, Inputs in, const Attrs& attrs, int32_t op, const char* name) {
  const Tensor& v = in[1];
  const Inputs idx = in.subspan(2);
  const int64_t start = attrs.get<int64_t>("start"), n = idx[0].numel();
  const bool accumulate = attrs.get<bool>("accumulate");
  const k::AdvIndex a = adv_index(dst, idx, start, op, name);
  const int dev = dst.device().index;
  if (v.numel() == 0) return check_only(a, n, dev, name);
  const ResultStrides r = result_strides(dst, idx[0].shape(), start, a.k);
  const std::array<const int64_t*, 3> strides{r.x.data(), v.strides().data(), r.item.data()};
  const std::array<const void*, 3> ptrs{dst.raw_data(), v.raw_data(), nullptr};
  const k::Geometry g = make_geometry(v.shape(), strides, ptrs, name);
  DeviceGuard guard(dev);
  ScratchPool pool(dst.device());
  const uint8_t* winner = nullptr;
  if (!accumulate && n > 1) {  // targets named twice keep the last item's value
    uint64_t targets = 1;
    for (int j = 0; j < a.k; ++j) targets *= static_cast<uint64_t>(a.size[j]);
    auto* keys = static_cast<uint64_t*>(pool.tensor(n, kInt64).raw_data());
    k::index_keys(a, n, targets, keys, index_fault(dev), current_stream(dev));
    winner = last_writes(pool, keys, n, targets, dev, name);
  }
  k::index_put(static_cast<int>(dst.dtype()), static_cast<int>(dst.itemsize()), accumulate,
               v.raw_data(), dst.raw_data(), g, a, winner, index_fault(dev), current_stream(dev));
  launched(dev, name);
}

void index_put_kernel(Inputs in, Outputs out, const Attrs& a) {
  convert_into(in[0], out[0], "index_put");
  put_into(out[0], in, a, k::kIndexPut, "index_put");
}
void index_put_inplace_kernel(Inputs in, Outputs, const Attrs& a) {
  put_into(in[0], in, a, k::kIndexPutInplace, "index_put_");
}

// scatter: out = x, then out[... idx ...] = src over index's shape, the last write to a target
// winning. No negative indices (torch.scatter's rule, and the CPU's).
void scatter_kernel(Inputs in, Outputs out, const Attrs& attrs) {
  const Tensor &x = in[0], &idx = in[1], &src = in[2], &y = out[0];
  convert_into(x, y, "scatter");
  const int64_t n = idx.numel();
  if (n == 0) return;
  const auto dim = static_cast<size_t>(attrs.get<int64_t>("dim"));
  Strides sy = y.strides();
  sy[dim] = 0;
  const std::array<const int64_t*, 3> strides{sy.data(), src.strides().data(),
                                              idx.strides().data()};
  const std::array<const void*, 3> ptrs{y.raw_data(), src.raw_data(), nullptr};
  const k::Geometry g = make_geometry(idx.shape(), strides, ptrs, "scatter");
  const int64_t dim_stride = y.strides()[dim], dim_size = y.shape()[dim];
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  ScratchPool pool(y.device());
  const uint8_t* winner = nullptr;
  // The key of an item is its target's offset in y, which the funnel allocated contiguous.
  if (n > 1 && y.numel() > 0 && y.is_contiguous()) {
    const auto targets = static_cast<uint64_t>(y.numel());
    auto* keys = static_cast<uint64_t*>(pool.tensor(n, kInt64).raw_data());
    k::scatter_keys(idx.data_ptr<int64_t>(), g, dim_stride, dim_size, targets, keys,
                    index_fault(dev), current_stream(dev));
    winner = last_writes(pool, keys, n, targets, dev, "scatter");
  }
  k::scatter(static_cast<int>(y.itemsize()), src.raw_data(), idx.data_ptr<int64_t>(), y.raw_data(),
             g, dim_stride, dim_size, winner, index_fault(dev), current_stream(dev));
  launched(dev, "scatter");
}

}  // namespace

void register_advanced_index_kernels(Registry& r) {
  r.add_kernel("index", {DeviceType::CUDA, "cuda", index_kernel});
  r.add_kernel("index_put", {DeviceType::CUDA, "cuda", index_put_kernel});
  r.add_kernel("index_put_", {DeviceType::CUDA, "cuda", index_put_inplace_kernel});
  r.add_kernel("scatter", {DeviceType::CUDA, "cuda", scatter_kernel});
}

}  // namespace tessera::cuda
