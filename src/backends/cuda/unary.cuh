#pragma once
// Private to unary.cu, unary_more.cu and complex.cu: the unary kernels over a functor (16-byte
// vector loads for contiguous aligned data, the strided geometry otherwise) and the rows of
// their launch tables, so each file instantiates only its own ops and no nvcc compile grows
// large.
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/float_rows.cuh"

namespace tessera::cuda::k::unary_detail {

// The op's parameters (softplus: beta, threshold); the other functors ignore them.
struct Params {
  Param p0, p1;
};

/// Declares functor Name: kId (its UnaryOp) and operator() on the compute type C (float or
/// double), the body given as the macro's rest.
#define TS_UNARY(Name, id, ...)                          \
  struct Name : Params {                                 \
    static constexpr int kId = id;                       \
    template <class C>                                   \
    __device__ __forceinline__ C operator()(C x) const { \
      __VA_ARGS__;                                       \
    }                                                    \
  };

template <class T, class Op>
__global__ void unary_vec(const T* in, T* out, int64_t n, Op op) {
  using V = Vec<T>;
  const int64_t nv = n / V::kN, first = first_index(), stride = grid_stride();
  for (int64_t i = first; i < nv; i += stride) {
    const V a = reinterpret_cast<const V*>(in)[i];
    V r;
#pragma unroll
    for (int j = 0; j < V::kN; ++j) r.v[j] = Io<T>::down(op(Io<T>::up(a.v[j])));
    reinterpret_cast<V*>(out)[i] = r;
  }
  for (int64_t i = nv * V::kN + first; i < n; i += stride)
    out[i] = Io<T>::down(op(Io<T>::up(in[i])));
}

// O: the output's element type, T's unless the op changes it (abs of complex64 is float32).
template <class T, class Op, class O = T>
__global__ void unary_strided(const T* in, O* out, Geometry g, Op op) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    out[o[0]] = Io<O>::down(op(Io<T>::up(in[o[1]])));
  }
}

/// Queues out = op(in): 16-byte vectors when both are contiguous, aligned and of one element
/// type, the strided geometry otherwise.
template <class T, class Op, class O = T>
void run(const void* in, void* out, const Geometry& g, const Op& op, cudaStream_t s) {
  const auto* x = static_cast<const T*>(in);
  auto* y = static_cast<O*>(out);
  if constexpr (std::is_same_v<O, T>) {
    if (g.contiguous && g.aligned && g.ndim == 1 && g.strides[1][0] == 1) {
      unary_vec<T, Op><<<blocks_for(g.numel / Vec<T>::kN), kThreads, 0, s>>>(x, y, g.numel, op);
      return;
    }
  }
  unary_strided<T, Op, O><<<blocks_for(g.numel), kThreads, 0, s>>>(x, y, g, op);
}

// The launch function of Op on elements of type T: a column of a launch table.
template <class T, class Op>
struct Launch {
  static void run(const void* in, void* out, const Geometry& g, const Params& p, cudaStream_t s) {
    unary_detail::run<T>(in, out, g, Op{p}, s);
  }
};
/// The rows of the UnaryOps First, First + 1, ... (one functor each, by its kId).
template <int First, class... Ops>
constexpr auto make_rows() {
  return rows::make_rows<Launch, First, Ops...>();
}
using rows::complete;

/// The ops from kAsin on (unary_more.cu).
void unary_more(int op, int code, const void* in, void* out, const Geometry& g, const Params& p,
                cudaStream_t s);

}  // namespace tessera::cuda::k::unary_detail
