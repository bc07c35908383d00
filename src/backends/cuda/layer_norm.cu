// layer_norm and its backward over contiguous rows: a warp per row up to 1024 elements (eight
// rows per block), a block per row beyond. Each thread owns fixed elements of the row (16-byte
// vectors when every pointer is aligned and n a multiple of the vector), copies them to shared
// memory on the first pass when the rows fit (48 KB with the kernel's own shared memory: more
// needs an opt-in), and works from there: the row is read from global memory once, written
// once. The two statistics are exact two-pass sums (the mean, then the squared deviations), in
// float32 for the 16-bit floats and float32, float64 for float64. The weight and bias gradients
// are column sums over the rows, a kernel of their own.
//
// The per-thread passes are __host__ __device__ and see only (tid, size): a host harness can
// run them thread by thread to check the index logic and arithmetic without a GPU. (Their
// vector loops have a constant trip count, which nvcc unrolls without a pragma.)
#include <cstdint>

#include "backends/cuda/device.cuh"
#include "backends/cuda/layer_norm_kernels.h"

namespace tessera::cuda::k {
namespace {

template <class T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};
template <class T>
using Acc = typename AccOf<T>::type;

__host__ __device__ inline float up(__half v) { return __half2float(v); }
__host__ __device__ inline float up(__nv_bfloat16 v) { return __bfloat162float(v); }
__host__ __device__ inline float up(float v) { return v; }
__host__ __device__ inline double up(double v) { return v; }

template <class T>
__host__ __device__ inline T down(Acc<T> v) {
  return static_cast<T>(v);
}
template <>
__host__ __device__ inline __half down<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__host__ __device__ inline __nv_bfloat16 down<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__host__ __device__ inline float hd_sqrt(float v) { return sqrtf(v); }
__host__ __device__ inline double hd_sqrt(double v) { return sqrt(v); }

/// 16-byte vectors of T, and the T at element i of vector c.
template <class T>
__host__ __device__ inline const Vec<T>* vecs(const T* p) {
  return reinterpret_cast<const Vec<T>*>(p);
}
template <class T>
__host__ __device__ inline Vec<T>* vecs(T* p) {
  return reinterpret_cast<Vec<T>*>(p);
}

// ---- per-thread passes: thread tid of `size` owns vectors c = tid, tid + size, ... (or
// elements, without vectors). A pass reads `src`: the row in global memory, or its copy. ----

/// Sum of the thread's elements; copies them to `cache` when it is not null.
template <class T, class A>
__host__ __device__ A sum_pass(const T* x, T* cache, int64_t n, int tid, int size, bool vec) {
  A s = 0;
  if (vec) {
    constexpr int kN = Vec<T>::kN;
    for (int64_t c = tid; c < n / kN; c += size) {
      const Vec<T> v = vecs(x)[c];
      if (cache) vecs(cache)[c] = v;
      for (int j = 0; j < kN; ++j) s += up(v.v[j]);
    }
  } else {
    for (int64_t i = tid; i < n; i += size) {
      const T v = x[i];
      if (cache) cache[i] = v;
      s += up(v);
    }
  }
  return s;
}

/// Sum of squared deviations from mean of the thread's elements.
template <class T, class A>
__host__ __device__ A square_pass(const T* src, int64_t n, A mean, int tid, int size, bool vec) {
  A s = 0;
  if (vec) {
    constexpr int kN = Vec<T>::kN;
    for (int64_t c = tid; c < n / kN; c += size) {
      const Vec<T> v = vecs(src)[c];
      for (int j = 0; j < kN; ++j) {
        const A d = up(v.v[j]) - mean;
        s += d * d;
      }
    }
  } else {
    for (int64_t i = tid; i < n; i += size) {
      const A d = up(src[i]) - mean;
      s += d * d;
    }
  }
  return s;
}

template <class T, class A>
__host__ __device__ inline A normalized(T x, A mean, A rstd, const T* w, const T* b, int64_t i) {
  A v = (up(x) - mean) * rstd;
  if (w) v = v * up(w[i]);
  if (b) v = v + up(b[i]);
  return v;
}

/// y = (x - mean) * rstd * w + b for the thread's elements.
template <class T, class A>
__host__ __device__ void write_pass(const T* src, const T* w, const T* b, T* y, int64_t n, A mean,
                                    A rstd, int tid, int size, bool vec) {
  if (vec) {
    constexpr int kN = Vec<T>::kN;
    for (int64_t c = tid; c < n / kN; c += size) {
      const Vec<T> v = vecs(src)[c];
      Vec<T> o;
      for (int j = 0; j < kN; ++j)
        o.v[j] = down<T>(normalized(v.v[j], mean, rstd, w, b, c * kN + j));
      vecs(y)[c] = o;
    }
  } else {
    for (int64_t i = tid; i < n; i += size) y[i] = down<T>(normalized(src[i], mean, rstd, w, b, i));
  }
}

/// Backward, first pass: sums of g = dy * w and of g * xhat over the thread's elements (into
/// sg, sgx); dy and x copied to cdy, cx when they are not null.
template <class T, class A>
__host__ __device__ void backward_sum_pass(const T* dy, const T* x, const T* w, T* cdy, T* cx,
                                           int64_t n, A mean, A rstd, int tid, int size, bool vec,
                                           A& sg, A& sgx) {
  sg = 0;
  sgx = 0;
  auto add = [&](T d, T xv, int64_t i) {
    const A g = w ? up(d) * up(w[i]) : up(d);
    sg += g;
    sgx += g * ((up(xv) - mean) * rstd);
  };
  if (vec) {
    constexpr int kN = Vec<T>::kN;
    for (int64_t c = tid; c < n / kN; c += size) {
      const Vec<T> d = vecs(dy)[c], v = vecs(x)[c];
      if (cdy) {
        vecs(cdy)[c] = d;
        vecs(cx)[c] = v;
      }
      for (int j = 0; j < kN; ++j) add(d.v[j], v.v[j], c * kN + j);
    }
  } else {
    for (int64_t i = tid; i < n; i += size) {
      if (cdy) {
        cdy[i] = dy[i];
        cx[i] = x[i];
      }
      add(dy[i], x[i], i);
    }
  }
}

template <class T, class A>
__host__ __device__ inline A backward_dx(T d, T xv, const T* w, int64_t i, A mean, A rstd, A a,
                                         A c) {
  const A g = w ? up(d) * up(w[i]) : up(d);
  const A xh = (up(xv) - mean) * rstd;
  return rstd * (g - a - xh * c);
}

/// Backward, second pass: dx = rstd * (g - a - xhat * c) for the thread's elements.
template <class T, class A>
__host__ __device__ void backward_write_pass(const T* dy, const T* x, const T* w, T* dx, int64_t n,
                                             A mean, A rstd, A a, A c, int tid, int size,
                                             bool vec) {
  if (vec) {
    constexpr int kN = Vec<T>::kN;
    for (int64_t k = tid; k < n / kN; k += size) {
      const Vec<T> d = vecs(dy)[k], v = vecs(x)[k];
      Vec<T> o;
      for (int j = 0; j < kN; ++j)
        o.v[j] = down<T>(backward_dx(d.v[j], v.v[j], w, k * kN + j, mean, rstd, a, c));
      vecs(dx)[k] = o;
    }
  } else {
    for (int64_t i = tid; i < n; i += size)
      dx[i] = down<T>(backward_dx(dy[i], x[i], w, i, mean, rstd, a, c));
  }
}

/// Column j's sums of dy * xhat and dy over rows r0, r0 + step, ... below r1.
template <class T, class A>
__host__ __device__ void column_pass(const T* dy, const T* x, const A* mean, const A* rstd,
                                     int64_t n, int64_t j, int64_t r0, int64_t r1, int64_t step,
                                     A& sw, A& sb) {
  sw = 0;
  sb = 0;
  for (int64_t r = r0; r < r1; r += step) {
    const A d = up(dy[r * n + j]);
    sw += d * ((up(x[r * n + j]) - mean[r]) * rstd[r]);
    sb += d;
  }
}

// ---- the kernels ----------------------------------------------------------------------------

template <class A>
__device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) v += __shfl_xor_sync(0xffffffffu, v, d);
  return v;
}

/// Every thread of the block gets the block's sum (warps combined in a fixed order).
template <class A>
__device__ __forceinline__ A block_sum(A v) {
  __shared__ A part[kLayerNormBlockParts];  // layer_norm_row_launch counts these bytes
  v = warp_sum(v);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (lane == 0) part[warp] = v;
  __syncthreads();
  v = part[0];
  for (int w = 1; w < nw; ++w) v += part[w];
  __syncthreads();  // part is reused by the next call
  return v;
}

template <bool kWarp, class A>
__device__ __forceinline__ A group_sum(A v) {
  if constexpr (kWarp)
    return warp_sum(v);
  else
    return block_sum(v);
}

/// Where a thread stands: its row group (a warp or the block), its index and the group size.
template <bool kWarp>
struct Group {
  int tid, size, index, count;
  __device__ Group()
      : tid(kWarp ? static_cast<int>(threadIdx.x % 32) : static_cast<int>(threadIdx.x)),
        size(kWarp ? 32 : static_cast<int>(blockDim.x)),
        index(kWarp ? static_cast<int>(threadIdx.x / 32) : 0),
        count(kWarp ? static_cast<int>(blockDim.x / 32) : 1) {}
};

// Block rows launch up to 1024 threads: at most 64 registers each, or the launch fails (ptxas
// gives the block kernels 80 when compiling for sm_100 without the bound).
template <class T, bool kWarp>
__global__ void __launch_bounds__(kWarp ? 32 * kLayerNormWarpRowsPerBlock : 1024)
    layer_norm_rows(const T* x, const T* w, const T* b, T* y, Acc<T>* mean, Acc<T>* rstd,
                    int64_t rows, int64_t n, Acc<T> eps, bool vec, bool cache) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char row_cache[];
  const Group<kWarp> g;
  T* c = cache ? reinterpret_cast<T*>(row_cache) + g.index * n : nullptr;
  const int64_t step = static_cast<int64_t>(gridDim.x) * g.count;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * g.count + g.index; r < rows; r += step) {
    const T* xr = x + r * n;
    const A m = group_sum<kWarp>(sum_pass<T, A>(xr, c, n, g.tid, g.size, vec)) / static_cast<A>(n);
    const T* src = c ? c : xr;
    const A q = group_sum<kWarp>(square_pass<T, A>(src, n, m, g.tid, g.size, vec));
    const A rs = A(1) / hd_sqrt(q / static_cast<A>(n) + eps);
    if (g.tid == 0) {
      mean[r] = m;
      rstd[r] = rs;
    }
    write_pass<T, A>(src, w, b, y + r * n, n, m, rs, g.tid, g.size, vec);
  }
}

template <class T, bool kWarp>
__global__ void __launch_bounds__(kWarp ? 32 * kLayerNormWarpRowsPerBlock : 1024)
    layer_norm_backward_rows(const T* dy, const T* x, const Acc<T>* mean, const Acc<T>* rstd,
                             const T* w, T* dx, int64_t rows, int64_t n, bool vec, bool cache) {
  using A = Acc<T>;
  extern __shared__ __align__(16) unsigned char row_cache[];
  const Group<kWarp> g;
  T* cdy = cache ? reinterpret_cast<T*>(row_cache) + 2 * g.index * n : nullptr;
  T* cx = cache ? cdy + n : nullptr;
  const int64_t step = static_cast<int64_t>(gridDim.x) * g.count;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * g.count + g.index; r < rows; r += step) {
    const A m = mean[r], rs = rstd[r];
    A sg, sgx;
    backward_sum_pass<T, A>(dy + r * n, x + r * n, w, cdy, cx, n, m, rs, g.tid, g.size, vec, sg,
                            sgx);
    const A a = group_sum<kWarp>(sg) / static_cast<A>(n);
    const A cc = group_sum<kWarp>(sgx) / static_cast<A>(n);
    backward_write_pass<T, A>(cdy ? cdy : dy + r * n, cx ? cx : x + r * n, w, dx + r * n, n, m, rs,
                              a, cc, g.tid, g.size, vec);
  }
}

constexpr int kColRows = 8;  // threads down the rows per block of 32 columns

template <class T>
__global__ void weight_grad_columns(const T* dy, const T* x, const Acc<T>* mean, const Acc<T>* rstd,
                                    T* dw, T* db, Acc<T>* work, int parts, int64_t rows,
                                    int64_t n) {
  using A = Acc<T>;
  __shared__ A sw_part[kColRows][33], sb_part[kColRows][33];
  const int64_t j = static_cast<int64_t>(blockIdx.x) * 32 + threadIdx.x;
  const int64_t p = blockIdx.y;
  const int64_t r0 = rows * p / parts, r1 = rows * (p + 1) / parts;
  A sw = 0, sb = 0;
  if (j < n) column_pass<T, A>(dy, x, mean, rstd, n, j, r0 + threadIdx.y, r1, kColRows, sw, sb);
  sw_part[threadIdx.y][threadIdx.x] = sw;
  sb_part[threadIdx.y][threadIdx.x] = sb;
  __syncthreads();
  if (threadIdx.y != 0 || j >= n) return;
  for (int k = 1; k < kColRows; ++k) {
    sw += sw_part[k][threadIdx.x];
    sb += sb_part[k][threadIdx.x];
  }
  if (parts == 1) {
    dw[j] = down<T>(sw);
    db[j] = down<T>(sb);
  } else {
    work[p * n + j] = sw;
    work[(parts + p) * n + j] = sb;
  }
}

template <class T>
__global__ void weight_grad_finish(const Acc<T>* work, int parts, int64_t n, T* dw, T* db) {
  using A = Acc<T>;
  for (int64_t j = first_index(); j < n; j += grid_stride()) {
    A sw = 0, sb = 0;
    for (int p = 0; p < parts; ++p) {
      sw += work[p * n + j];
      sb += work[(parts + p) * n + j];
    }
    dw[j] = down<T>(sw);
    db[j] = down<T>(sb);
  }
}

// ---- launches -------------------------------------------------------------------------------

bool aligned(const void* p) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <class T>
LayerNormRowLaunch row_launch(int64_t rows, int64_t n, bool vec, int arrays) {
  return layer_norm_row_launch(rows, n, static_cast<int>(sizeof(T)),
                               static_cast<int>(sizeof(Acc<T>)), vec, arrays);
}

template <class T>
void launch_forward(const void* x, const void* w, const void* b, void* y, void* mean, void* rstd,
                    int64_t rows, int64_t n, double eps, cudaStream_t s) {
  using A = Acc<T>;
  if (rows == 0) return;
  const LayerNormRowLaunch l =
      row_launch<T>(rows, n, aligned(x) && aligned(w) && aligned(b) && aligned(y), 1);
  auto kernel = l.warp ? layer_norm_rows<T, true> : layer_norm_rows<T, false>;
  kernel<<<l.blocks, l.threads, static_cast<size_t>(l.smem), s>>>(
      static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
      static_cast<T*>(y), static_cast<A*>(mean), static_cast<A*>(rstd), rows, n,
      static_cast<A>(eps), l.vec, l.cache);
}

template <class T>
void launch_backward(const void* dy, const void* x, const void* mean, const void* rstd,
                     const void* w, void* dx, int64_t rows, int64_t n, cudaStream_t s) {
  using A = Acc<T>;
  if (rows == 0 || n == 0) return;
  const LayerNormRowLaunch l =
      row_launch<T>(rows, n, aligned(dy) && aligned(x) && aligned(w) && aligned(dx), 2);
  auto kernel = l.warp ? layer_norm_backward_rows<T, true> : layer_norm_backward_rows<T, false>;
  kernel<<<l.blocks, l.threads, static_cast<size_t>(l.smem), s>>>(
      static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const A*>(mean),
      static_cast<const A*>(rstd), static_cast<const T*>(w), static_cast<T*>(dx), rows, n, l.vec,
      l.cache);
}

template <class T>
void launch_weight_grads(const void* dy, const void* x, const void* mean, const void* rstd,
                         void* dw, void* db, void* work, int parts, int64_t rows, int64_t n,
                         cudaStream_t s) {
  using A = Acc<T>;
  if (n == 0) return;
  const dim3 grid(static_cast<unsigned>((n + 31) / 32), static_cast<unsigned>(parts));
  weight_grad_columns<T><<<grid, dim3(32, kColRows), 0, s>>>(
      static_cast<const T*>(dy), static_cast<const T*>(x), static_cast<const A*>(mean),
      static_cast<const A*>(rstd), static_cast<T*>(dw), static_cast<T*>(db), static_cast<A*>(work),
      parts, rows, n);
  if (parts > 1)
    weight_grad_finish<T><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<const A*>(work), parts, n, static_cast<T*>(dw), static_cast<T*>(db));
}

using Forward = void (*)(const void*, const void*, const void*, void*, void*, void*, int64_t,
                         int64_t, double, cudaStream_t);
using Backward = void (*)(const void*, const void*, const void*, const void*, const void*, void*,
                          int64_t, int64_t, cudaStream_t);
using WeightGrads = void (*)(const void*, const void*, const void*, const void*, void*, void*,
                             void*, int, int64_t, int64_t, cudaStream_t);

// Indexed by code - kF16: float16, bfloat16, float32, float64.
constexpr Forward kForward[] = {launch_forward<__half>, launch_forward<__nv_bfloat16>,
                                launch_forward<float>, launch_forward<double>};
constexpr Backward kBackward[] = {launch_backward<__half>, launch_backward<__nv_bfloat16>,
                                  launch_backward<float>, launch_backward<double>};
constexpr WeightGrads kWeightGrads[] = {launch_weight_grads<__half>,
                                        launch_weight_grads<__nv_bfloat16>,
                                        launch_weight_grads<float>, launch_weight_grads<double>};

}  // namespace

void layer_norm(int code, const void* x, const void* w, const void* b, void* y, void* mean,
                void* rstd, int64_t rows, int64_t n, double eps, void* stream) {
  kForward[code - kF16](x, w, b, y, mean, rstd, rows, n, eps, static_cast<cudaStream_t>(stream));
}

void layer_norm_backward(int code, const void* dy, const void* x, const void* mean,
                         const void* rstd, const void* w, void* dx, int64_t rows, int64_t n,
                         void* stream) {
  kBackward[code - kF16](dy, x, mean, rstd, w, dx, rows, n, static_cast<cudaStream_t>(stream));
}

void layer_norm_weight_grads(int code, const void* dy, const void* x, const void* mean,
                             const void* rstd, void* dw, void* db, void* work, int parts,
                             int64_t rows, int64_t n, void* stream) {
  kWeightGrads[code - kF16](dy, x, mean, rstd, dw, db, work, parts, rows, n,
                            static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
