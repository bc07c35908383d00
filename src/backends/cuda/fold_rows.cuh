#pragma once
// The reduction driver of reduce_int.cu and reduce_stats.cu, for any op of reduce_ops.cuh: one
// block per row of an [outer, reduced] view (reduce.cu's layout), each thread folding the
// elements j = threadIdx.x + k * blockDim.x, then a shuffle-down tree in each warp and across
// the warps. Long rows are cut into `splits` fixed parts folded into a workspace and combined
// by a second launch, so results depend on the shape only.
#include <cstring>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/reduce_more.h"
#include "backends/cuda/reduce_ops.cuh"

namespace tessera::cuda::k {

/// An element as the op's value type: integers exactly as long long, floats as double, complex64
/// as itself.
template <class V, class T>
__device__ __forceinline__ V value_of(T x) {
  if constexpr (std::is_same_v<V, T>)
    return x;
  else if constexpr (std::is_integral_v<T>)
    return static_cast<V>(x);
  else
    return static_cast<V>(Io<T>::up(x));
}

/// A result in the output dtype (16-bit floats round once from float32, as on the CPU).
template <class O, class R>
__device__ __forceinline__ O store_as(R r) {
  return Io<O>::down(static_cast<typename Io<O>::C>(r));
}

/// __shfl_down_sync (kUp: __shfl_up_sync) of any trivially copyable value, 8 bytes at a time.
template <bool kUp = false, class A>
__device__ __forceinline__ A shfl_down(A v, int d) {
  if constexpr (std::is_arithmetic_v<A>) {
    return kUp ? __shfl_up_sync(0xffffffffu, v, d) : __shfl_down_sync(0xffffffffu, v, d);
  } else {
    static_assert(sizeof(A) % 8 == 0 && std::is_trivially_copyable_v<A>);
    unsigned long long w[sizeof(A) / 8];
    memcpy(w, &v, sizeof(A));
#pragma unroll
    for (size_t k = 0; k < sizeof(A) / 8; ++k)
      w[k] = kUp ? __shfl_up_sync(0xffffffffu, w[k], d) : __shfl_down_sync(0xffffffffu, w[k], d);
    memcpy(&v, w, sizeof(A));
    return v;
  }
}
template <class A>
__device__ __forceinline__ A shfl_up(A v, int d) {
  return shfl_down<true>(v, d);
}

/// The block's combined value in thread 0 (blockDim.x a multiple of 32, at most kThreads);
/// `id` pads the warp-0 lanes past the number of warps.
template <class Op, class A>
__device__ __forceinline__ A block_combine(const Op& op, A v, A id) {
  __shared__ A part[kThreads / 32];
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v = op.combine(v, shfl_down(v, d));
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < static_cast<int>(blockDim.x / 32) ? part[lane] : id;
#pragma unroll
    for (int d = 16; d > 0; d /= 2) v = op.combine(v, shfl_down(v, d));
  }
  __syncthreads();  // part is reused by the block's next row
  return v;
}

/// Elements a thread of a row with one stride loads before folding them (one load at a time
/// leaves the memory bus mostly idle; the fold order, and so the result, is the same).
inline constexpr int kFoldUnroll = 8;

// Block b folds part b % splits of row b / splits: the result to out[b] (splits == 1) or the
// accumulator to work[b]. Thread t folds elements begin + t, begin + t + blockDim.x, ... in order.
template <class T, class O, class Op>
__global__ void fold_rows(const T* in, O* out, typename Op::A* work, Geometry outer, Geometry inner,
                          int64_t n_out, int64_t n_red, int splits, Op op) {
  using A = typename Op::A;
  using V = typename Op::V;
  const int64_t chunk = (n_red + splits - 1) / splits;
  for (int64_t b = blockIdx.x; b < n_out * splits; b += gridDim.x) {
    int64_t base[1], off[1];
    offsets<1>(outer, b / splits, base);
    const T* row = in + base[0];
    const A id = op.init(n_red > 0 ? value_of<V>(row[0]) : V{});
    const int64_t begin = (b % splits) * chunk;
    const int64_t end = begin + chunk < n_red ? begin + chunk : n_red;
    A acc = id;
    int64_t j = begin + threadIdx.x;
    const int64_t step = blockDim.x;
    if (inner.ndim <= 1) {  // one stride: kFoldUnroll loads in flight, folded in the same order
      const int64_t st = inner.ndim == 1 ? inner.strides[0][0] : 0;
      for (; j + (kFoldUnroll - 1) * step < end; j += kFoldUnroll * step) {
        T v[kFoldUnroll];
#pragma unroll
        for (int u = 0; u < kFoldUnroll; ++u) v[u] = row[(j + u * step) * st];
#pragma unroll
        for (int u = 0; u < kFoldUnroll; ++u) acc = op.fold(acc, value_of<V>(v[u]));
      }
    }
    for (; j < end; j += step) {
      offsets<1>(inner, j, off);
      acc = op.fold(acc, value_of<V>(row[off[0]]));
    }
    acc = block_combine(op, acc, id);
    if (threadIdx.x == 0) {
      if (splits > 1)
        work[b] = acc;
      else
        out[b] = store_as<O>(op.finish(acc));
    }
  }
}

// Row o's `splits` accumulators (contiguous in work) combined and finished into out[o].
template <class O, class Op>
__global__ void combine_parts(const typename Op::A* work, O* out, int64_t n_out, int splits,
                              Op op) {
  using A = typename Op::A;
  const A id = op.init(typename Op::V{});
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    A acc = id;
    for (int p = threadIdx.x; p < splits; p += blockDim.x)
      acc = op.combine(acc, work[o * splits + p]);
    acc = block_combine(op, acc, id);
    if (threadIdx.x == 0) out[o] = store_as<O>(op.finish(acc));
  }
}

inline unsigned fold_threads(int64_t n) { return n <= 32 ? 32 : n <= 128 ? 128 : kThreads; }
inline unsigned fold_grid(int64_t blocks) {
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

/// One reduction with op: one launch, or two for split rows (work: n_out * splits of Op::A).
template <class T, class O, class Op>
void fold(const Op& op, const void* in, void* out, const Geometry& outer, const Geometry& inner,
          int64_t n_out, int64_t n_red, int splits, void* work, cudaStream_t s) {
  using A = typename Op::A;
  static_assert(sizeof(A) <= kPartBytes);
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<O*>(out);
  auto* w = static_cast<A*>(work);
  if (splits == 1) {
    fold_rows<T, O, Op><<<fold_grid(n_out), fold_threads(n_red), 0, s>>>(
        x, y, nullptr, outer, inner, n_out, n_red, 1, op);
    return;
  }
  fold_rows<T, O, Op><<<fold_grid(n_out * splits), kThreads, 0, s>>>(x, y, w, outer, inner, n_out,
                                                                     n_red, splits, op);
  combine_parts<O, Op><<<fold_grid(n_out), fold_threads(splits), 0, s>>>(w, y, n_out, splits, op);
}

}  // namespace tessera::cuda::k
