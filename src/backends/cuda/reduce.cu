// Reduction kernels (sum/mean, amax, amin): one block per row of an [outer, reduced] view
// given by two strided geometries, a warp-shuffle tree inside the block. Long rows with few
// outputs are split into a fixed number of parts written to a workspace and combined by a
// second launch, so the result depends only on the shape, never on timing. Accumulation is in
// float32 for the 16-bit floats and float32, float64 for float64.
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

struct Sum {
  template <class A>
  __device__ __forceinline__ static A init() {
    return A(0);
  }
  template <class A>
  __device__ __forceinline__ static A add(A a, A b) {
    return a + b;
  }
  template <class A>
  __device__ __forceinline__ static A finish(A a, A scale) {
    return a * scale;
  }
};
// NaN-propagating like the CPU's amax/amin: a NaN, once seen, is the result.
template <bool kMax>
struct Extreme {
  template <class A>
  __device__ __forceinline__ static A init() {
    return kMax ? A(-INFINITY) : A(INFINITY);
  }
  template <class A>
  __device__ __forceinline__ static A add(A a, A b) {
    if (a != a) return a;
    if (b != b) return b;
    return (kMax ? b > a : b < a) ? b : a;
  }
  template <class A>
  __device__ __forceinline__ static A finish(A a, A) {
    return a;
  }
};

/// The block's combined value in thread 0 (blockDim.x a multiple of 32, at most kThreads).
template <class Op, class A>
__device__ __forceinline__ A block_reduce(A v) {
  __shared__ A warp_part[kThreads / 32];
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v = Op::add(v, __shfl_down_sync(0xffffffffu, v, d));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const int nw = blockDim.x / 32;
    v = lane < nw ? warp_part[lane] : Op::template init<A>();
#pragma unroll
    for (int d = 16; d > 0; d /= 2) v = Op::add(v, __shfl_down_sync(0xffffffffu, v, d));
  }
  __syncthreads();  // warp_part is reused by the block's next row
  return v;
}

// Loads issued together by a thread of a row with one stride (before the first add, so that
// many are in flight: one at a time leaves a GPU's memory bus mostly idle).
constexpr int kUnroll = 8;

// Block b reduces part b % splits of row b / splits and writes out[b]. Thread t adds elements
// begin + t, begin + t + blockDim.x, ... in that order on either path, so the result is the
// same bits whether or not the row has a single stride.
template <class T, class A, class O, class Op>
__global__ void reduce_rows(const T* in, O* out, Geometry outer, Geometry inner, int64_t n_out,
                            int64_t n_red, int splits, A scale) {
  const int64_t chunk = (n_red + splits - 1) / splits;
  const int64_t step = blockDim.x;
  for (int64_t b = blockIdx.x; b < n_out * splits; b += gridDim.x) {
    int64_t base[1], off[1];
    offsets<1>(outer, b / splits, base);
    const int64_t begin = (b % splits) * chunk;
    const int64_t end = begin + chunk < n_red ? begin + chunk : n_red;
    A acc = Op::template init<A>();
    int64_t j = begin + threadIdx.x;
    if (inner.ndim <= 1) {  // one stride (0 for a row of one element)
      const T* row = in + base[0];
      const int64_t st = inner.ndim == 1 ? inner.strides[0][0] : 0;
      for (; j + (kUnroll - 1) * step < end; j += kUnroll * step) {
        T v[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) v[u] = row[(j + u * step) * st];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) acc = Op::add(acc, static_cast<A>(Io<T>::up(v[u])));
      }
    }
    for (; j < end; j += step) {
      offsets<1>(inner, j, off);
      acc = Op::add(acc, static_cast<A>(Io<T>::up(in[base[0] + off[0]])));
    }
    acc = block_reduce<Op>(acc);
    if (threadIdx.x == 0)
      out[b] = Io<O>::down(static_cast<typename Io<O>::C>(Op::finish(acc, scale)));
  }
}

unsigned threads_for(int64_t n) { return n <= 32 ? 32 : n <= 128 ? 128 : kThreads; }
unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

using Launch = void (*)(const void*, void*, const Geometry&, const Geometry&, int64_t, int64_t,
                        double, int, void*, cudaStream_t);

template <class T, class Op>
void launch(const void* in, void* out, const Geometry& outer, const Geometry& inner, int64_t n_out,
            int64_t n_red, double scale, int splits, void* work, cudaStream_t s) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<T*>(out);
  if (splits == 1) {
    reduce_rows<T, A, T, Op><<<grid_for(n_out), threads_for(n_red), 0, s>>>(
        x, y, outer, inner, n_out, n_red, 1, static_cast<A>(scale));
    return;
  }
  // Pass 1: parts into the workspace, unscaled; pass 2: each row's parts (contiguous).
  auto* w = static_cast<A*>(work);
  reduce_rows<T, A, A, Op><<<grid_for(n_out * splits), kThreads, 0, s>>>(x, w, outer, inner, n_out,
                                                                         n_red, splits, A(1));
  Geometry rows, parts;
  rows.ndim = parts.ndim = 1;
  rows.numel = rows.sizes[0] = n_out;
  rows.strides[0][0] = splits;
  parts.numel = parts.sizes[0] = splits;
  parts.strides[0][0] = 1;
  reduce_rows<A, A, T, Op><<<grid_for(n_out), threads_for(splits), 0, s>>>(
      w, y, rows, parts, n_out, splits, 1, static_cast<A>(scale));
}

using Row = std::array<Launch, 4>;  // kF16, kBF16, kF32, kF64
template <class Op>
constexpr Row row() {
  return {&launch<__half, Op>, &launch<__nv_bfloat16, Op>, &launch<float, Op>, &launch<double, Op>};
}
// Indexed by ReduceOp.
constexpr std::array<Row, kNumReduce> kTable = {row<Sum>(), row<Extreme<true>>(),
                                                row<Extreme<false>>()};

}  // namespace

void reduce(int op, int code, const void* in, void* out, const Geometry& outer,
            const Geometry& inner, int64_t n_out, int64_t n_red, double scale, int splits,
            void* work, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      in, out, outer, inner, n_out, n_red, scale, splits, work, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
