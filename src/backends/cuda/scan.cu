// cumsum / cumprod along any dim, with the CPU's accumulators: wrapping 64-bit for bool and the
// integers (written as int64), double for the floats (written in the input's dtype),
// complex<double> for complex64 (complex_reduce_ops.cuh; written as complex64). Three
// shapes of work (k::scan_plan chooses from the shape alone, so results are reproducible):
// - columns: a thread per lane, in order, when adjacent lanes are adjacent in memory (coalesced;
//   the CPU's order exactly, so float results are the CPU's bits);
// - blocks: a block per lane, tiles of kItems * blockDim elements staged in shared memory, each
//   thread scanning kItems consecutive elements, a warp-shuffle scan of the threads' totals, and
//   the running total carried to the next tile;
// - parts: a long lane cut into fixed parts: each part's total (pass 1), the running values of
//   the totals (pass 2, a block scan in place), each part scanned from its carry (pass 3).
#include <array>
#include <type_traits>

#include "backends/cuda/complex_reduce_ops.cuh"
#include "backends/cuda/device.cuh"
#include "backends/cuda/fold_rows.cuh"
#include "backends/cuda/reduce_more.h"
#include "backends/cuda/reduce_ops.cuh"

namespace tessera::cuda::k {
namespace {

constexpr int kItems = 4;  // consecutive elements per thread in a tile

// An element as the accumulator (the CPU's widen); an accumulator (a part total) as itself.
template <class A, class T>
__device__ __forceinline__ A widen(T x) {
  if constexpr (std::is_same_v<T, A>)
    return x;
  else if constexpr (std::is_same_v<T, fn::Cf>)
    return ops::z_widen(x);
  else if constexpr (std::is_integral_v<T>)
    return static_cast<A>(static_cast<long long>(x));
  else
    return static_cast<A>(Io<T>::up(x));
}
template <class O, class A>
__device__ __forceinline__ O narrow(A a) {
  if constexpr (std::is_same_v<O, A>)
    return a;
  else if constexpr (std::is_same_v<A, ops::Zd>)
    return ops::z_narrow(a);
  else if constexpr (std::is_integral_v<A>)
    return static_cast<O>(static_cast<long long>(a));
  else
    return Io<O>::down(static_cast<typename Io<O>::C>(a));
}

/// Thread t's exclusive prefix of the values v of threads 0 .. t-1 (in thread order) and the
/// block's total (blockDim.x a multiple of 32).
template <class S, class A>
__device__ __forceinline__ A block_exclusive(A v, A& total) {
  __shared__ A warp_sum[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int nw = static_cast<int>(blockDim.x / 32);
#pragma unroll
  for (int d = 1; d < 32; d *= 2) {
    const A y = shfl_up(v, d);
    if (lane >= d) v = S::op(y, v);
  }
  A excl = shfl_up(v, 1);
  if (lane == 0) excl = S::identity();
  if (lane == 31) warp_sum[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A w = lane < nw ? warp_sum[lane] : S::identity();
#pragma unroll
    for (int d = 1; d < 32; d *= 2) {
      const A y = shfl_up(w, d);
      if (lane >= d) w = S::op(y, w);
    }
    if (lane < nw) warp_sum[lane] = w;  // running totals of the warps
  }
  __syncthreads();
  if (warp > 0) excl = S::op(warp_sum[warp - 1], excl);
  total = warp_sum[nw - 1];
  __syncthreads();  // warp_sum is reused by the next tile
  return excl;
}

// Block b scans part b % parts of lane b / parts, starting from the running value of the parts
// before it (carries[lane * parts + part - 1]). In place (in == out) is allowed.
template <class T, class O, class A, bool kProd>
__global__ void scan_segments(const T* in, O* out, Geometry lanes, int64_t n, int64_t si,
                              int64_t so, int64_t chunk, int parts, const A* carries) {
  using S = ops::Scan<A, kProd>;
  __shared__ A tile[kThreads * kItems];
  const int64_t span = static_cast<int64_t>(blockDim.x) * kItems;
  for (int64_t b = blockIdx.x; b < lanes.numel * parts; b += gridDim.x) {
    const int64_t lane = b / parts, c = b % parts;
    int64_t o[2];
    offsets<2>(lanes, lane, o);
    const T* x = in + o[1];
    O* y = out + o[0];
    const int64_t begin = c * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    A carry = c > 0 ? carries[lane * parts + c - 1] : S::identity();
    for (int64_t t0 = begin; t0 < end; t0 += span) {
      const int64_t m = end - t0 < span ? end - t0 : span;
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = k * static_cast<int64_t>(blockDim.x) + threadIdx.x;
        tile[i] = i < m ? widen<A>(x[(t0 + i) * si]) : S::identity();
      }
      __syncthreads();
      A run = S::identity();
      A local[kItems];
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        run = S::op(run, tile[threadIdx.x * kItems + k]);
        local[k] = run;
      }
      A total;
      const A excl = S::op(carry, block_exclusive<S>(run, total));
#pragma unroll
      for (int k = 0; k < kItems; ++k) tile[threadIdx.x * kItems + k] = S::op(excl, local[k]);
      carry = S::op(carry, total);
      __syncthreads();
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = k * static_cast<int64_t>(blockDim.x) + threadIdx.x;
        if (i < m) y[(t0 + i) * so] = narrow<O>(tile[i]);
      }
      __syncthreads();  // the tile is refilled next
    }
  }
}

// Pass 1 of the parts path: work[b] = the total of part b % parts of lane b / parts.
template <class T, class A, bool kProd>
__global__ void scan_totals(const T* in, A* work, Geometry lanes, int64_t n, int64_t si,
                            int64_t chunk, int parts) {
  using S = ops::Scan<A, kProd>;
  __shared__ A part[kThreads / 32];
  for (int64_t b = blockIdx.x; b < lanes.numel * parts; b += gridDim.x) {
    int64_t o[2];
    offsets<2>(lanes, b / parts, o);
    const T* x = in + o[1];
    const int64_t begin = (b % parts) * chunk;
    const int64_t end = begin + chunk < n ? begin + chunk : n;
    A acc = S::identity();
    for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x)
      acc = S::op(acc, widen<A>(x[i * si]));
#pragma unroll
    for (int d = 16; d > 0; d /= 2) acc = S::op(acc, shfl_down(acc, d));
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) part[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) acc = S::op(acc, part[w]);
      work[b] = acc;
    }
    __syncthreads();  // part is reused by the block's next part
  }
}

// A thread per lane, in order.
template <class T, class O, class A, bool kProd>
__global__ void scan_columns(const T* in, O* out, Geometry lanes, int64_t n, int64_t si,
                             int64_t so) {
  using S = ops::Scan<A, kProd>;
  for (int64_t r = first_index(); r < lanes.numel; r += grid_stride()) {
    int64_t o[2];
    offsets<2>(lanes, r, o);
    const T* x = in + o[1];
    O* y = out + o[0];
    A acc = S::identity();
    for (int64_t i = 0; i < n; ++i) {
      acc = S::op(acc, widen<A>(x[i * si]));
      y[i * so] = narrow<O>(acc);
    }
  }
}

unsigned scan_threads(int64_t n) {
  return n <= 32 * kItems ? 32 : n <= 128 * kItems ? 128 : kThreads;
}
unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535);
}

using Launch = void (*)(const void*, void*, const Geometry&, int64_t, int64_t, int64_t,
                        const ScanPlan&, void*, cudaStream_t);

template <class T, bool kProd>
void launch(const void* in, void* out, const Geometry& lanes, int64_t n, int64_t si, int64_t so,
            const ScanPlan& plan, void* work, cudaStream_t s) {
  using A = std::conditional_t<std::is_integral_v<T>, unsigned long long,
                               std::conditional_t<std::is_same_v<T, fn::Cf>, ops::Zd, double>>;
  using O = std::conditional_t<std::is_integral_v<T>, int64_t, T>;
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<O*>(out);
  if (plan.path == kScanColumns) {
    scan_columns<T, O, A, kProd>
        <<<blocks_for(lanes.numel), kThreads, 0, s>>>(x, y, lanes, n, si, so);
    return;
  }
  auto* w = static_cast<A*>(work);
  const int64_t blocks = lanes.numel * plan.parts;
  if (plan.parts > 1) {
    scan_totals<T, A, kProd>
        <<<grid_for(blocks), kThreads, 0, s>>>(x, w, lanes, n, si, plan.chunk, plan.parts);
    Geometry rows;  // the totals: lane r's at r * parts, contiguous
    rows.ndim = 1;
    rows.numel = rows.sizes[0] = lanes.numel;
    rows.strides[0][0] = rows.strides[1][0] = plan.parts;
    scan_segments<A, A, A, kProd><<<grid_for(lanes.numel), scan_threads(plan.parts), 0, s>>>(
        w, w, rows, plan.parts, 1, 1, plan.parts, 1, nullptr);
  }
  const unsigned threads = plan.parts == 1 ? scan_threads(n) : kThreads;
  scan_segments<T, O, A, kProd>
      <<<grid_for(blocks), threads, 0, s>>>(x, y, lanes, n, si, so, plan.chunk, plan.parts, w);
}

using Row = std::array<Launch, 11>;  // kBool ... kF64, kC64
template <bool kProd>
constexpr Row row() {
  return {&launch<uint8_t, kProd>, &launch<uint8_t, kProd>,       &launch<int8_t, kProd>,
          &launch<int16_t, kProd>, &launch<int32_t, kProd>,       &launch<int64_t, kProd>,
          &launch<__half, kProd>,  &launch<__nv_bfloat16, kProd>, &launch<float, kProd>,
          &launch<double, kProd>,  &launch<fn::Cf, kProd>};
}
constexpr std::array<Row, 2> kTable = {row<false>(), row<true>()};

}  // namespace

void scan(bool prod, int code, const void* in, void* out, const Geometry& lanes, int64_t n,
          int64_t in_stride, int64_t out_stride, const ScanPlan& plan, void* work, void* stream) {
  kTable[prod ? 1 : 0][static_cast<size_t>(code)](in, out, lanes, n, in_stride, out_stride, plan,
                                                  work, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
