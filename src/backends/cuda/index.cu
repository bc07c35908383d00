// gather and scatter_add along one dim (index_select and index_add are the same kernels with
// an index broadcast over the other dims). An index outside [0, size) is never dereferenced:
// the first one is recorded in an IndexFault (mapped host memory) that the host checks at the
// next synchronization, and the element is skipped (gather writes 0). scatter_add adds
// atomically in every dtype (atomic_add.cuh: the CPU's add per element, 16-bit floats in 16
// bits), so the gradients of gather, sort and topk work in float16 and bfloat16 too.
#include <array>
#include <utility>

#include "backends/cuda/atomic_add.cuh"
#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

template <class W>
__global__ void gather_kernel(int op, const W* x, const int64_t* idx, W* out, Geometry g,
                              int64_t dim_stride, int64_t dim_size, IndexFault* fault) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    if (v < 0 || v >= dim_size) {
      record_fault(fault, op, v, dim_size);
      if (out != nullptr) out[o[0]] = W(0);
      continue;
    }
    if (out != nullptr) out[o[0]] = x[o[1] + v * dim_stride];
  }
}

template <class T>
__global__ void scatter_add_kernel(int op, int code, const T* src, const int64_t* idx, T* out,
                                   Geometry g, int64_t dim_stride, int64_t dim_size,
                                   IndexFault* fault) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    if (v < 0 || v >= dim_size) {
      record_fault(fault, op, v, dim_size);
      continue;
    }
    atomic_acc(out + o[0] + v * dim_stride, src[o[1]], code);
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
void launch_scatter_add(int op, int code, const void* src, const int64_t* idx, void* out,
                        const Geometry& g, int64_t dim_stride, int64_t dim_size, IndexFault* fault,
                        cudaStream_t s) {
  scatter_add_kernel<T><<<blocks_for(g.numel), kThreads, 0, s>>>(
      op, code, static_cast<const T*>(src), idx, static_cast<T*>(out), g, dim_stride, dim_size,
      fault);
}
using ScatterAddLaunch = void (*)(int, int, const void*, const int64_t*, void*, const Geometry&,
                                  int64_t, int64_t, IndexFault*, cudaStream_t);
template <int... Code>
constexpr std::array<ScatterAddLaunch, sizeof...(Code)> scatter_add_table(
    std::integer_sequence<int, Code...>) {
  return {&launch_scatter_add<typename AtomicType<Code>::T>...};
}
// Indexed by dtype code (kBool ... kF64, then kC64).
constexpr auto kScatterAdds = scatter_add_table(std::make_integer_sequence<int, kC64 + 1>{});

}  // namespace

void gather(int op, int width, const void* x, const int64_t* idx, void* out, const Geometry& g,
            int64_t dim_stride, int64_t dim_size, IndexFault* fault, void* stream) {
  const size_t w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
  kGathers[w](op, x, idx, out, g, dim_stride, dim_size, fault, static_cast<cudaStream_t>(stream));
}

void scatter_add(int op, int code, const void* src, const int64_t* idx, void* out,
                 const Geometry& g, int64_t dim_stride, int64_t dim_size, IndexFault* fault,
                 void* stream) {
  kScatterAdds[static_cast<size_t>(code)](op, code, src, idx, out, g, dim_stride, dim_size, fault,
                                          static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
