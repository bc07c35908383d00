#pragma once
// Private to binary.cu, division.cu and complex.cu: the binary kernels over a functor (16-byte
// vector loads for contiguous aligned operands or a broadcast scalar beside them, the strided
// geometry otherwise) and the rows of their launch tables, so each file instantiates only its
// own ops.
#include <array>
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/float_rows.cuh"

namespace tessera::cuda::k::binary_detail {

/// Declares functor Name: kId (its BinaryOp), add's alpha (the others ignore it) and
/// operator() on the compute type C (float or double), the body given as the macro's rest.
#define TS_BINARY(Name, id, ...)                              \
  struct Name {                                               \
    static constexpr int kId = id;                            \
    Param alpha;                                              \
    template <class C>                                        \
    __device__ __forceinline__ C operator()(C a, C b) const { \
      __VA_ARGS__;                                            \
    }                                                         \
  };

// sa / sb: whether a / b advance (1) or are one broadcast scalar (0).
template <class T, class Op>
__global__ void binary_vec(const T* a, const T* b, T* out, int64_t n, int sa, int sb, Op op) {
  using V = Vec<T>;
  using IO = Io<T>;
  const int64_t nv = n / V::kN, first = first_index(), stride = grid_stride();
  const T a0 = a[0], b0 = b[0];
  for (int64_t i = first; i < nv; i += stride) {
    V va, vb, r;
    if (sa) va = reinterpret_cast<const V*>(a)[i];
    if (sb) vb = reinterpret_cast<const V*>(b)[i];
#pragma unroll
    for (int j = 0; j < V::kN; ++j)
      r.v[j] = IO::down(op(IO::up(sa ? va.v[j] : a0), IO::up(sb ? vb.v[j] : b0)));
    reinterpret_cast<V*>(out)[i] = r;
  }
  for (int64_t i = nv * V::kN + first; i < n; i += stride)
    out[i] = IO::down(op(IO::up(sa ? a[i] : a0), IO::up(sb ? b[i] : b0)));
}

// O: the output's element type, T's unless the op changes it (complex eq / ne write bool).
template <class T, class Op, class O = T>
__global__ void binary_strided(const T* a, const T* b, O* out, Geometry g, Op op) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    out[o[0]] = Io<O>::down(op(Io<T>::up(a[o[1]]), Io<T>::up(b[o[2]])));
  }
}

/// Queues out = op(a, b): 16-byte vectors when the operands are contiguous (or one is a
/// broadcast scalar), aligned and of the output's element type, the strided geometry otherwise.
template <class T, class Op, class O = T>
void run(const void* a, const void* b, void* out, const Geometry& g, const Op& op, cudaStream_t s) {
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  auto* z = static_cast<O*>(out);
  if constexpr (std::is_same_v<O, T>) {
    if (g.contiguous && g.aligned && g.ndim == 1) {
      binary_vec<T, Op><<<blocks_for(g.numel / Vec<T>::kN), kThreads, 0, s>>>(
          x, y, z, g.numel, g.strides[1][0] != 0, g.strides[2][0] != 0, op);
      return;
    }
  }
  binary_strided<T, Op, O><<<blocks_for(g.numel), kThreads, 0, s>>>(x, y, z, g, op);
}

// The launch function of Op on elements of type T: a column of a launch table.
template <class T, class Op>
struct Launch {
  static void run(const void* a, const void* b, void* out, Param alpha, const Geometry& g,
                  cudaStream_t s) {
    binary_detail::run<T>(a, b, out, g, Op{alpha}, s);
  }
};
/// The rows of the BinaryOps First, First + 1, ... (one functor each, by its kId).
template <int First, class... Ops>
constexpr auto make_rows() {
  return rows::make_rows<Launch, First, Ops...>();
}
using rows::complete;

/// floor_divide and remainder (division.cu).
void division(int op, int code, const void* a, const void* b, void* out, const Geometry& g,
              cudaStream_t s);

}  // namespace tessera::cuda::k::binary_detail
