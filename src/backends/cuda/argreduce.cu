// argmax / argmin and max / min along a dim with indices: one block per row of an
// [outer, reduced] view (the geometries of reduce.cu), each thread keeping its best
// (value, index) pair, combined by warp shuffles. Ties and NaNs follow the CPU: the first index
// of the extreme wins, and a NaN is the extreme. Integers compare exactly as int64, floats in
// their compute type (float32 for the 16-bit floats: exact).
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/reduce_more.h"
#include "backends/cuda/reduce_ops.cuh"

namespace tessera::cuda::k {
namespace {

// The compared value: long long for bool and the integers, the compute type for floats.
template <class T>
using Cmp = std::conditional_t<std::is_integral_v<T>, long long, typename Io<T>::C>;

template <bool kMax, class T>
__global__ void arg_rows(const T* in, T* values, int64_t* out, Geometry outer, Geometry inner,
                         int64_t n_out, int64_t n_red) {
  using A = Cmp<T>;
  __shared__ A part_v[kThreads / 32];
  __shared__ int64_t part_i[kThreads / 32];
  for (int64_t r = blockIdx.x; r < n_out; r += gridDim.x) {
    int64_t base[1], off[1];
    offsets<1>(outer, r, base);
    A best = A(0);
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < n_red; j += blockDim.x) {
      offsets<1>(inner, j, off);
      const A v = static_cast<A>(Io<T>::up(in[base[0] + off[0]]));
      if (ops::better<kMax>(v, j, best, bi)) {
        best = v;
        bi = j;
      }
    }
#pragma unroll
    for (int d = 16; d > 0; d /= 2) {
      const A ov = __shfl_down_sync(0xffffffffu, best, d);
      const int64_t oi = __shfl_down_sync(0xffffffffu, bi, d);
      if (ops::better<kMax>(ov, oi, best, bi)) {
        best = ov;
        bi = oi;
      }
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
    if (lane == 0) {
      part_v[warp] = best;
      part_i[warp] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nw; ++w)
        if (ops::better<kMax>(part_v[w], part_i[w], part_v[0], part_i[0])) {
          part_v[0] = part_v[w];
          part_i[0] = part_i[w];
        }
      out[r] = part_i[0];
      if (values) values[r] = Io<T>::down(static_cast<typename Io<T>::C>(part_v[0]));
    }
    __syncthreads();  // the parts are reused by the block's next row
  }
}

template <bool kMax, class T>
void launch(const void* in, void* values, int64_t* out, const Geometry& outer,
            const Geometry& inner, int64_t n_out, int64_t n_red, cudaStream_t s) {
  const unsigned threads = n_red <= 32 ? 32 : n_red <= 128 ? 128 : kThreads;
  const auto grid = static_cast<unsigned>(n_out < 65535 ? n_out : 65535);
  arg_rows<kMax, T><<<grid, threads, 0, s>>>(static_cast<const T*>(in), static_cast<T*>(values),
                                             out, outer, inner, n_out, n_red);
}

template <bool kMax>
void dispatch(int code, const void* in, void* values, int64_t* out, const Geometry& outer,
              const Geometry& inner, int64_t n_out, int64_t n_red, cudaStream_t s) {
  switch (code) {
    case kBool:
    case kU8:
      return launch<kMax, uint8_t>(in, values, out, outer, inner, n_out, n_red, s);
    case kI8:
      return launch<kMax, int8_t>(in, values, out, outer, inner, n_out, n_red, s);
    case kI16:
      return launch<kMax, int16_t>(in, values, out, outer, inner, n_out, n_red, s);
    case kI32:
      return launch<kMax, int32_t>(in, values, out, outer, inner, n_out, n_red, s);
    case kI64:
      return launch<kMax, int64_t>(in, values, out, outer, inner, n_out, n_red, s);
    case kF16:
      return launch<kMax, __half>(in, values, out, outer, inner, n_out, n_red, s);
    case kBF16:
      return launch<kMax, __nv_bfloat16>(in, values, out, outer, inner, n_out, n_red, s);
    case kF32:
      return launch<kMax, float>(in, values, out, outer, inner, n_out, n_red, s);
    default:
      return launch<kMax, double>(in, values, out, outer, inner, n_out, n_red, s);
  }
}

}  // namespace

void extreme_dim(bool max, int code, const void* in, void* values, int64_t* indices,
                 const Geometry& outer, const Geometry& inner, int64_t n_out, int64_t n_red,
                 void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (max)
    dispatch<true>(code, in, values, indices, outer, inner, n_out, n_red, s);
  else
    dispatch<false>(code, in, values, indices, outer, inner, n_out, n_red, s);
}

void arg_reduce(bool max, int code, const void* in, int64_t* out, const Geometry& outer,
                const Geometry& inner, int64_t n_out, int64_t n_red, void* stream) {
  extreme_dim(max, code, in, nullptr, out, outer, inner, n_out, n_red, stream);
}

}  // namespace tessera::cuda::k
