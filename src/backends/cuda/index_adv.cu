// Advanced indexing (index, index_put, index_put_) and scatter, a thread per element. An index
// outside its dim is never dereferenced: the first one is recorded in the device's IndexFault
// (as in index.cu) and the element skipped. Stores with repeated targets write only the item
// that last_of_keys (sort.cu) chose, the CPU's last write; accumulating puts add atomically, in
// every dtype (atomic_add.cuh, shared with scatter_add).
#include <array>
#include <utility>

#include "backends/cuda/atomic_add.cuh"
#include "backends/cuda/device.cuh"
#include "backends/cuda/sort_keys.cuh"

namespace tessera::cuda::k {
namespace {

// ---- kernels ----------------------------------------------------------------------------------

template <class W>
__global__ void gather_adv(const W* x, W* out, Geometry g, AdvIndex a, IndexFault* f) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3], off, bad, size;
    offsets<3>(g, i, o);
    if (!adv_offset(a, o[2], off, bad, size)) {
      record_fault(f, a.op, bad, size);
      out[o[0]] = W(0);
      continue;
    }
    out[o[0]] = x[o[1] + off];
  }
}

template <class W>
__global__ void store_adv(const W* v, W* dst, Geometry g, AdvIndex a, const uint8_t* winner,
                          IndexFault* f) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3], off, bad, size;
    offsets<3>(g, i, o);
    if (!adv_offset(a, o[2], off, bad, size)) {
      record_fault(f, a.op, bad, size);
      continue;
    }
    if (winner == nullptr || winner[o[2]] != 0) dst[o[0] + off] = v[o[1]];
  }
}

template <class T>
__global__ void accumulate_adv(int code, const T* v, T* dst, Geometry g, AdvIndex a,
                               IndexFault* f) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3], off, bad, size;
    offsets<3>(g, i, o);
    if (!adv_offset(a, o[2], off, bad, size)) {
      record_fault(f, a.op, bad, size);
      continue;
    }
    atomic_acc(dst + o[0] + off, v[o[1]], code);
  }
}

__global__ void keys_adv(AdvIndex a, int64_t n, uint64_t invalid, uint64_t* keys, IndexFault* f) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    uint64_t key = invalid;
    int64_t bad, size;
    if (!adv_key(a, i, key, bad, size)) {
      record_fault(f, a.op, bad, size);
      key = invalid;
    }
    if (keys) keys[i] = key;
  }
}

template <class W>
__global__ void scatter_kernel(const W* src, const int64_t* idx, W* out, Geometry g,
                               int64_t dim_stride, int64_t dim_size, const uint8_t* winner,
                               IndexFault* f) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    if (v < 0 || v >= dim_size) {
      record_fault(f, kScatter, v, dim_size);
      continue;
    }
    if (winner == nullptr || winner[i] != 0) out[o[0] + v * dim_stride] = src[o[1]];
  }
}

__global__ void scatter_keys_kernel(const int64_t* idx, Geometry g, int64_t dim_lin,
                                    int64_t dim_size, uint64_t invalid, uint64_t* keys,
                                    IndexFault* f) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    const int64_t v = idx[o[2]];
    const bool ok = v >= 0 && v < dim_size;
    if (!ok) record_fault(f, kScatter, v, dim_size);
    keys[i] = ok ? static_cast<uint64_t>(o[0] + v * dim_lin) : invalid;
  }
}

// ---- launch tables ----------------------------------------------------------------------------

size_t slot(int width) { return width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3; }

template <class W>
void launch_gather(const void* x, void* out, const Geometry& g, const AdvIndex& a, IndexFault* f,
                   cudaStream_t s) {
  gather_adv<W><<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const W*>(x),
                                                         static_cast<W*>(out), g, a, f);
}
using GatherFn = void (*)(const void*, void*, const Geometry&, const AdvIndex&, IndexFault*,
                          cudaStream_t);
constexpr std::array<GatherFn, 4> kGathers = {&launch_gather<uint8_t>, &launch_gather<uint16_t>,
                                              &launch_gather<uint32_t>, &launch_gather<uint64_t>};

template <class W>
void launch_store(const void* v, void* dst, const Geometry& g, const AdvIndex& a,
                  const uint8_t* winner, IndexFault* f, cudaStream_t s) {
  store_adv<W><<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const W*>(v),
                                                        static_cast<W*>(dst), g, a, winner, f);
}
using StoreFn = void (*)(const void*, void*, const Geometry&, const AdvIndex&, const uint8_t*,
                         IndexFault*, cudaStream_t);
constexpr std::array<StoreFn, 4> kStores = {&launch_store<uint8_t>, &launch_store<uint16_t>,
                                            &launch_store<uint32_t>, &launch_store<uint64_t>};

template <class T>
void launch_accumulate(int code, const void* v, void* dst, const Geometry& g, const AdvIndex& a,
                       IndexFault* f, cudaStream_t s) {
  accumulate_adv<T><<<blocks_for(g.numel), kThreads, 0, s>>>(code, static_cast<const T*>(v),
                                                             static_cast<T*>(dst), g, a, f);
}
using AccumulateFn = void (*)(int, const void*, void*, const Geometry&, const AdvIndex&,
                              IndexFault*, cudaStream_t);
template <int... Code>
constexpr std::array<AccumulateFn, sizeof...(Code)> accumulate_table(
    std::integer_sequence<int, Code...>) {
  return {&launch_accumulate<typename AtomicType<Code>::T>...};
}
// Indexed by dtype code (kBool ... kF64, then kC64).
constexpr auto kAccumulates = accumulate_table(std::make_integer_sequence<int, kC64 + 1>{});

template <class W>
void launch_scatter(const void* src, const int64_t* idx, void* out, const Geometry& g,
                    int64_t dim_stride, int64_t dim_size, const uint8_t* winner, IndexFault* f,
                    cudaStream_t s) {
  scatter_kernel<W><<<blocks_for(g.numel), kThreads, 0, s>>>(
      static_cast<const W*>(src), idx, static_cast<W*>(out), g, dim_stride, dim_size, winner, f);
}
using ScatterFn = void (*)(const void*, const int64_t*, void*, const Geometry&, int64_t, int64_t,
                           const uint8_t*, IndexFault*, cudaStream_t);
constexpr std::array<ScatterFn, 4> kScatters = {&launch_scatter<uint8_t>, &launch_scatter<uint16_t>,
                                                &launch_scatter<uint32_t>,
                                                &launch_scatter<uint64_t>};

}  // namespace

void index_gather(int width, const void* x, void* out, const Geometry& g, const AdvIndex& a,
                  IndexFault* fault, void* stream) {
  kGathers[slot(width)](x, out, g, a, fault, static_cast<cudaStream_t>(stream));
}

void index_put(int code, int width, bool accumulate, const void* values, void* dst,
               const Geometry& g, const AdvIndex& a, const uint8_t* winner, IndexFault* fault,
               void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (accumulate)
    kAccumulates[static_cast<size_t>(code)](code, values, dst, g, a, fault, s);
  else
    kStores[slot(width)](values, dst, g, a, winner, fault, s);
}

void index_keys(const AdvIndex& a, int64_t n, uint64_t invalid, uint64_t* keys, IndexFault* fault,
                void* stream) {
  keys_adv<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(a, n, invalid, keys,
                                                                              fault);
}

void scatter(int width, const void* src, const int64_t* idx, void* out, const Geometry& g,
             int64_t dim_stride, int64_t dim_size, const uint8_t* winner, IndexFault* fault,
             void* stream) {
  kScatters[slot(width)](src, idx, out, g, dim_stride, dim_size, winner, fault,
                         static_cast<cudaStream_t>(stream));
}

void scatter_keys(const int64_t* idx, const Geometry& g, int64_t dim_lin, int64_t dim_size,
                  uint64_t invalid, uint64_t* keys, IndexFault* fault, void* stream) {
  scatter_keys_kernel<<<blocks_for(g.numel), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      idx, g, dim_lin, dim_size, invalid, keys, fault);
}

}  // namespace tessera::cuda::k
