#pragma once
// The kernel of the reductions (reduce.cu; reduce_int.cu, reduce_stats.cu and reduce_complex.cu
// through fold_rows.cuh), for any op in the shape of reduce_ops.cuh's (reduce.cu adapts its
// own). reduce_plan.h chooses its block shape from the shape of the reduction alone:
// - rows (bx == 1): a block per output, its threads along the reduced elements, a warp-shuffle
//   tree in each warp and across the warps;
// - columns (bx > 1): bx consecutive outputs per block (threadIdx.x) with by threads each
//   (threadIdx.y), combined by a fixed tree over threadIdx.y in shared memory.
// Either way thread (x, y) folds elements begin + y, begin + y + by, ... of its part in order,
// several loads in flight, so the result depends on the shape only, never on timing.
#include <cstring>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/reduce_plan.h"

namespace tessera::cuda::k {

static_assert(kPlanThreads == kThreads);

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

/// The block's combined value in its thread 0 (threads numbered x fastest; their count a
/// multiple of 32, at most kThreads); `id` pads the warp-0 lanes past the number of warps.
template <class Op, class A>
__device__ __forceinline__ A block_combine(const Op& op, A v, A id) {
  __shared__ A part[kThreads / 32];
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v = op.combine(v, shfl_down(v, d));
  const unsigned me = threadIdx.y * blockDim.x + threadIdx.x;
  const unsigned lane = me % 32, warp = me / 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x * blockDim.y / 32 ? part[lane] : id;
#pragma unroll
    for (int d = 16; d > 0; d /= 2) v = op.combine(v, shfl_down(v, d));
  }
  __syncthreads();  // part is reused by the block's next row
  return v;
}

/// Elements a thread with one reduced stride loads before folding them (one load at a time
/// leaves the memory bus mostly idle; the fold order, and so the result, is the same).
inline constexpr int kFoldUnroll = 8;

// Block (tile, p) folds part p of outputs tile * bx ... tile * bx + bx - 1: the results to
// out[o] (splits == 1) or the accumulators to work[o * splits + p].
template <class T, class O, class Op>
__global__ void __launch_bounds__(kThreads)
    fold_tiles(const T* in, O* out, typename Op::A* work, Geometry outer, Geometry inner,
               int64_t n_out, int64_t n_red, int64_t chunk, int splits, Op op) {
  using A = typename Op::A;
  using V = typename Op::V;
  __shared__ A part[kThreads];  // columns: partials, thread (x, y) at x + bx * y
  const int64_t bx = blockDim.x, by = blockDim.y;
  const unsigned me = threadIdx.y * blockDim.x + threadIdx.x;
  const int64_t begin = blockIdx.y * chunk;
  const int64_t end = begin + chunk < n_red ? begin + chunk : n_red;
  const int64_t st = inner.ndim == 1 ? inner.strides[0][0] : 0;  // 0: one element, or none
  for (int64_t tile = blockIdx.x; tile * bx < n_out; tile += gridDim.x) {
    const int64_t o = tile * bx + threadIdx.x;
    const bool live = o < n_out;  // the same for every y
    A acc{}, id{};
    if (live) {
      int64_t base[1], off[1];
      offsets<1>(outer, o, base);
      const T* src = in + base[0];
      acc = id = op.init(n_red > 0 ? value_of<V>(src[0]) : V{});
      int64_t j = begin + threadIdx.y;
      if (inner.ndim <= 1) {  // one stride: kFoldUnroll loads in flight, folded in order
        for (; j + (kFoldUnroll - 1) * by < end; j += kFoldUnroll * by) {
          T v[kFoldUnroll];
#pragma unroll
          for (int u = 0; u < kFoldUnroll; ++u) v[u] = src[(j + u * by) * st];
#pragma unroll
          for (int u = 0; u < kFoldUnroll; ++u) acc = op.fold(acc, value_of<V>(v[u]));
        }
      }
      for (; j < end; j += by) {
        offsets<1>(inner, j, off);
        acc = op.fold(acc, value_of<V>(src[off[0]]));
      }
    }
    if (bx == 1) {  // a row (always live): by is 32, 128 or 256
      acc = block_combine(op, acc, id);
    } else {
      if (live) part[me] = acc;
      __syncthreads();
      for (unsigned h = blockDim.y / 2; h > 0; h /= 2) {
        if (live && threadIdx.y < h) part[me] = op.combine(part[me], part[me + h * blockDim.x]);
        __syncthreads();
      }
      if (live) acc = part[me];
      __syncthreads();  // part is reused by the next tile
    }
    if (live && threadIdx.y == 0) {
      if (splits > 1)
        work[o * splits + blockIdx.y] = acc;
      else
        out[o] = store_as<O>(op.finish(acc));
    }
  }
}

/// The pass of plan p over the input: results to out, or accumulators to work when split.
template <class T, class O, class Op>
void fold_pass(const Op& op, const T* in, O* out, typename Op::A* work, const Geometry& outer,
               const Geometry& inner, int64_t n_out, int64_t n_red, const ReducePlan& p,
               cudaStream_t s) {
  const dim3 grid(p.grid_x, static_cast<unsigned>(p.splits)), block(p.bx, p.by);
  fold_tiles<T, O, Op>
      <<<grid, block, 0, s>>>(in, out, work, outer, inner, n_out, n_red, p.chunk, p.splits, op);
}

}  // namespace tessera::cuda::k
