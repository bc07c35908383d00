// softmax / log_softmax along one dim: one block per lane, max-subtracted, three passes over
// the lane (max, sum of exp, write). Computes in float32 for the 16-bit floats and float32,
// float64 for float64. Special values follow plain arithmetic as on the CPU: a lane of all
// -inf gives (-inf) - (-inf) = NaN, a NaN anywhere makes the lane NaN.
//
// Two kernels: lanes contiguous in memory, of whole aligned 16-byte vectors and at most
// 4 * 1024 vectors (softmax_plan.h), are loaded once into registers, four vectors per thread
// issued together, so the lane crosses the memory bus once each way (rows of 4096 float32 at
// close to copy bandwidth); any other lane is read three times, an element at a time. The
// register path's per-thread passes are __host__ __device__ and see only (tid, size), so a host
// harness can run them thread by thread (their loops have constant trip counts, which nvcc
// unrolls without a pragma: the vectors stay in registers).
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/softmax_plan.h"

namespace tessera::cuda::k {
namespace {

template <class A>
__host__ __device__ __forceinline__ A nan_max(A a, A b) {
  if (a != a) return a;
  if (b != b) return b;
  return b > a ? b : a;
}

/// Every thread gets the block's combination (max when kMax, else sum); up to 1024 threads.
template <bool kMax, class A>
__device__ __forceinline__ A block_all(A v) {
  __shared__ A part[kSoftmaxMaxThreads / 32];
#pragma unroll
  for (int d = 16; d > 0; d /= 2) {
    const A o = __shfl_xor_sync(0xffffffffu, v, d);
    v = kMax ? nan_max(v, o) : v + o;
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = part[0];
  for (int w = 1; w < nw; ++w) v = kMax ? nan_max(v, part[w]) : v + part[w];
  __syncthreads();  // part is reused by the next call
  return v;
}

template <class T, bool kLog>
__global__ void softmax_rows(const T* in, T* out, Geometry rows, int64_t n, int64_t si,
                             int64_t so) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  for (int64_t r = blockIdx.x; r < rows.numel; r += gridDim.x) {
    int64_t o[2];
    offsets<2>(rows, r, o);
    const T* x = in + o[1];
    T* y = out + o[0];
    A m = A(-INFINITY);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      m = nan_max(m, static_cast<A>(Io<T>::up(x[i * si])));
    m = block_all<true>(m);
    A s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
      s += m_exp(static_cast<A>(Io<T>::up(x[i * si])) - m);
    s = block_all<false>(s);
    const A k = kLog ? m_log(s) : A(1) / s;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      const A d = static_cast<A>(Io<T>::up(x[i * si])) - m;
      const A v = kLog ? d - k : m_exp(d) * k;
      y[i * so] = Io<T>::down(static_cast<typename Io<T>::C>(v));
    }
  }
}

// ---- the register path: thread tid of `size` holds vectors c = tid + k * size, k < kV ----

template <class T>
__host__ __device__ __forceinline__ auto up(T x) {
  if constexpr (std::is_same_v<T, __half>)
    return __half2float(x);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(x);
  else
    return x;
}
template <class T, class A>
__host__ __device__ __forceinline__ T down(A x) {
  if constexpr (std::is_same_v<T, __half>)
    return __float2half_rn(x);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __float2bfloat16_rn(x);
  else
    return x;
}
__host__ __device__ __forceinline__ float hd_exp(float x) { return expf(x); }
__host__ __device__ __forceinline__ double hd_exp(double x) { return exp(x); }
__host__ __device__ __forceinline__ float hd_log(float x) { return logf(x); }
__host__ __device__ __forceinline__ double hd_log(double x) { return log(x); }

/// Loads the thread's vectors of the lane (all loads issued before any use).
template <class T, int kV>
__host__ __device__ __forceinline__ void lane_load(const Vec<T>* x, int64_t nv, int tid, int size,
                                                   Vec<T> (&v)[kV]) {
  for (int k = 0; k < kV; ++k) {
    const int64_t c = tid + static_cast<int64_t>(k) * size;
    if (c < nv) v[k] = x[c];
  }
}
/// The NaN-propagating max of the thread's elements (-inf for none).
template <class A, class T, int kV>
__host__ __device__ __forceinline__ A lane_max(const Vec<T> (&v)[kV], int64_t nv, int tid,
                                               int size) {
  A m = A(-INFINITY);
  for (int k = 0; k < kV; ++k) {
    if (tid + static_cast<int64_t>(k) * size >= nv) continue;
    for (int j = 0; j < Vec<T>::kN; ++j) m = nan_max(m, static_cast<A>(up(v[k].v[j])));
  }
  return m;
}
/// The sum of exp(x - m) over the thread's elements.
template <class A, class T, int kV>
__host__ __device__ __forceinline__ A lane_sum(const Vec<T> (&v)[kV], int64_t nv, int tid, int size,
                                               A m) {
  A s = 0;
  for (int k = 0; k < kV; ++k) {
    if (tid + static_cast<int64_t>(k) * size >= nv) continue;
    for (int j = 0; j < Vec<T>::kN; ++j) s += hd_exp(static_cast<A>(up(v[k].v[j])) - m);
  }
  return s;
}
/// Writes the thread's outputs: exp(x - m) * kk (softmax, kk = 1 / sum) or x - m - kk
/// (log_softmax, kk = log(sum)), the general kernel's formulas.
template <bool kLog, class A, class T, int kV>
__host__ __device__ __forceinline__ void lane_write(Vec<T>* y, const Vec<T> (&v)[kV], int64_t nv,
                                                    int tid, int size, A m, A kk) {
  for (int k = 0; k < kV; ++k) {
    const int64_t c = tid + static_cast<int64_t>(k) * size;
    if (c >= nv) continue;
    Vec<T> o;
    for (int j = 0; j < Vec<T>::kN; ++j) {
      const A d = static_cast<A>(up(v[k].v[j])) - m;
      o.v[j] = down<T>(kLog ? d - kk : hd_exp(d) * kk);
    }
    y[c] = o;
  }
}

// One block per lane of nv vectors, blockDim.x * kSoftmaxVecsPerThread >= nv.
template <class T, bool kLog>
__global__ void __launch_bounds__(kSoftmaxMaxThreads)
    softmax_rows_vec(const T* in, T* out, Geometry rows, int64_t nv) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  constexpr int kV = kSoftmaxVecsPerThread;
  const int tid = static_cast<int>(threadIdx.x), size = static_cast<int>(blockDim.x);
  for (int64_t r = blockIdx.x; r < rows.numel; r += gridDim.x) {
    int64_t o[2];
    offsets<2>(rows, r, o);
    Vec<T> v[kV];
    lane_load<T, kV>(reinterpret_cast<const Vec<T>*>(in + o[1]), nv, tid, size, v);
    const A m = block_all<true>(lane_max<A, T, kV>(v, nv, tid, size));
    const A s = block_all<false>(lane_sum<A, T, kV>(v, nv, tid, size, m));
    const A kk = kLog ? hd_log(s) : A(1) / s;
    lane_write<kLog, A, T, kV>(reinterpret_cast<Vec<T>*>(out + o[0]), v, nv, tid, size, m, kk);
  }
}

using Launch = void (*)(const void*, void*, const Geometry&, int64_t, int64_t, int64_t,
                        cudaStream_t);

template <class T, bool kLog>
void launch(const void* in, void* out, const Geometry& rows, int64_t n, int64_t si, int64_t so,
            cudaStream_t s) {
  const int64_t b = rows.numel;
  const unsigned grid = static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
  constexpr int kElem = static_cast<int>(sizeof(T));
  if (const unsigned vt =
          softmax_vector_threads(n, kElem, si, so, softmax_starts_aligned(rows, in, out, kElem))) {
    softmax_rows_vec<T, kLog>
        <<<grid, vt, 0, s>>>(static_cast<const T*>(in), static_cast<T*>(out), rows, n / Vec<T>::kN);
    return;
  }
  const unsigned threads = n <= 32 ? 32 : n <= 128 ? 128 : kThreads;
  softmax_rows<T, kLog>
      <<<grid, threads, 0, s>>>(static_cast<const T*>(in), static_cast<T*>(out), rows, n, si, so);
}

using Row = std::array<Launch, 4>;  // kF16, kBF16, kF32, kF64
template <bool kLog>
constexpr Row row() {
  return {&launch<__half, kLog>, &launch<__nv_bfloat16, kLog>, &launch<float, kLog>,
          &launch<double, kLog>};
}
constexpr std::array<Row, 2> kTable = {row<false>(), row<true>()};

}  // namespace

void softmax(bool log, int code, const void* in, void* out, const Geometry& rows, int64_t n,
             int64_t in_stride, int64_t out_stride, void* stream) {
  kTable[log ? 1 : 0][static_cast<size_t>(code - kF16)](in, out, rows, n, in_stride, out_stride,
                                                        static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
