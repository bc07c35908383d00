// softmax / log_softmax along one dim: one block per lane, max-subtracted, three passes over
// the lane (max, sum of exp, write). Computes in float32 for the 16-bit floats and float32,
// float64 for float64. Special values follow plain arithmetic as on the CPU: a lane of all
// -inf gives (-inf) - (-inf) = NaN, a NaN anywhere makes the lane NaN.
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

template <class A>
__device__ __forceinline__ A nan_max(A a, A b) {
  if (a != a) return a;
  if (b != b) return b;
  return b > a ? b : a;
}

/// Every thread gets the block's combination (max when kMax, else sum).
template <bool kMax, class A>
__device__ __forceinline__ A block_all(A v) {
  __shared__ A part[kThreads / 32];
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

using Launch = void (*)(const void*, void*, const Geometry&, int64_t, int64_t, int64_t,
                        cudaStream_t);

template <class T, bool kLog>
void launch(const void* in, void* out, const Geometry& rows, int64_t n, int64_t si, int64_t so,
            cudaStream_t s) {
  const unsigned threads = n <= 32 ? 32 : n <= 128 ? 128 : kThreads;
  const int64_t b = rows.numel;
  const unsigned grid = static_cast<unsigned>(b < 65535 ? (b > 0 ? b : 1) : 65535);
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
