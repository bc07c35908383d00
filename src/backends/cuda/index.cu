// gather and scatter_add along one dim (index_select and index_add are the same kernels with
// an index broadcast over the other dims). An index outside [0, size) is never dereferenced:
// the first one is recorded in an IndexFault (mapped host memory) that the host checks at the
// next synchronization, and the element is skipped (gather writes 0).
#include <array>

#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

__device__ __forceinline__ void atomic_add(int* p, int v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
// No int64_t overload: two's complement sums wrap the same as unsigned ones.
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

template <class W>
__global__ void gather_kernel(int op, const W* x, const int64_t* idx, W* out, Geometry g,
                              int64_t dim_stride, int64_t dim_size, IndexFault* fault) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    if (v < 0 || v >= dim_size) {
      record_fault(fault, op, v, dim_size);
      out[o[0]] = W(0);
      continue;
    }
    out[o[0]] = x[o[1] + v * dim_stride];
  }
}

template <class T>
__global__ void scatter_add_kernel(int op, const T* src, const int64_t* idx, T* out, Geometry g,
                                   int64_t dim_stride, int64_t dim_size, IndexFault* fault) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    if (v < 0 || v >= dim_size) {
      record_fault(fault, op, v, dim_size);
      continue;
    }
    atomic_add(out + o[0] + v * dim_stride, src[o[1]]);
  }
}

template <class W>
void launch_gather(int op, const void* x, const int64_t* idx, void* out, const Geometry& g,
                   int64_t dim_stride, int64_t dim_size, IndexFault* fault, cudaStream_t s) {
  gather_kernel<W><<<blocks_for(g.numel), kThreads, 0, s>>>(
      op, static_cast<const W*>(x), idx, static_cast<W*>(out), g, dim_stride, dim_size, fault);
}
using GatherLaunch = void (*)(int, const void*, const int64_t*, void*, const Geometry&, int64_t,
                              int64_t, IndexFault*, cudaStream_t);
// Indexed by log2 of the element width.
constexpr std::array<GatherLaunch, 4> kGathers = {&launch_gather<uint8_t>, &launch_gather<uint16_t>,
                                                  &launch_gather<uint32_t>,
                                                  &launch_gather<uint64_t>};

template <class T>
void launch_scatter_add(int op, const void* src, const int64_t* idx, void* out, const Geometry& g,
                        int64_t dim_stride, int64_t dim_size, IndexFault* fault, cudaStream_t s) {
  scatter_add_kernel<T><<<blocks_for(g.numel), kThreads, 0, s>>>(
      op, static_cast<const T*>(src), idx, static_cast<T*>(out), g, dim_stride, dim_size, fault);
}

}  // namespace

void gather(int op, int width, const void* x, const int64_t* idx, void* out, const Geometry& g,
            int64_t dim_stride, int64_t dim_size, IndexFault* fault, void* stream) {
  const size_t w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
  kGathers[w](op, x, idx, out, g, dim_stride, dim_size, fault, static_cast<cudaStream_t>(stream));
}

void scatter_add(int op, int code, const void* src, const int64_t* idx, void* out,
                 const Geometry& g, int64_t dim_stride, int64_t dim_size, IndexFault* fault,
                 void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  switch (code) {
    case kI32:
      return launch_scatter_add<int>(op, src, idx, out, g, dim_stride, dim_size, fault, s);
    case kI64:
      return launch_scatter_add<int64_t>(op, src, idx, out, g, dim_stride, dim_size, fault, s);
    case kF32:
      return launch_scatter_add<float>(op, src, idx, out, g, dim_stride, dim_size, fault, s);
    default:
      return launch_scatter_add<double>(op, src, idx, out, g, dim_stride, dim_size, fault, s);
  }
}

}  // namespace tessera::cuda::k
