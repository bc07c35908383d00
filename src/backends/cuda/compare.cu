// Comparison kernels (eq, ne, lt, le, gt, ge) over every real dtype, bool and the integers
// included (16-bit floats compared in float32, which is exact), a bool output, over the strided
// geometry; logical and / or of bool operands. A table indexed by op and dtype, like binary.cu.
// Also where(cond, a, b), a pure selection, so one kernel per element width serves every dtype,
// and the float predicates isnan / isinf / isfinite (bool outputs too).
#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/functors.cuh"

namespace tessera::cuda::k {
namespace {

#define TS_COMPARE(Name, expr)                                   \
  struct Name {                                                  \
    template <class C>                                           \
    __device__ __forceinline__ bool operator()(C a, C b) const { \
      return expr;                                               \
    }                                                            \
  };
TS_COMPARE(Eq, a == b)
TS_COMPARE(Ne, a != b)
TS_COMPARE(Lt, a < b)
TS_COMPARE(Le, a <= b)
TS_COMPARE(Gt, a > b)
TS_COMPARE(Ge, a >= b)
TS_COMPARE(And, a&& b)
TS_COMPARE(Or, a || b)
#undef TS_COMPARE

template <class T, class Op>
__global__ void compare_strided(const T* a, const T* b, bool* out, Geometry g) {
  const Op op;
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[3];
    offsets<3>(g, i, o);
    out[o[0]] = op(Io<T>::up(a[o[1]]), Io<T>::up(b[o[2]]));
  }
}

using Launch = void (*)(const void*, const void*, void*, const Geometry&, cudaStream_t);

template <class T, class Op>
void launch(const void* a, const void* b, void* out, const Geometry& g, cudaStream_t s) {
  compare_strided<T, Op><<<blocks_for(g.numel), kThreads, 0, s>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<bool*>(out), g);
}

using Row = std::array<Launch, 10>;  // indexed by dtype code, kBool ... kF64
template <class Op>
constexpr Row row() {
  return {&launch<bool, Op>,    &launch<uint8_t, Op>,       &launch<int8_t, Op>,
          &launch<int16_t, Op>, &launch<int32_t, Op>,       &launch<int64_t, Op>,
          &launch<__half, Op>,  &launch<__nv_bfloat16, Op>, &launch<float, Op>,
          &launch<double, Op>};
}
// Logical ops: bool operands only.
template <class Op>
constexpr Row bool_row() {
  return {&launch<bool, Op>, nullptr, nullptr, nullptr, nullptr,
          nullptr,           nullptr, nullptr, nullptr, nullptr};
}
// Indexed by CompareOp.
constexpr std::array<Row, kNumCompare> kTable = {row<Eq>(),       row<Ne>(),     row<Lt>(),
                                                 row<Le>(),       row<Gt>(),     row<Ge>(),
                                                 bool_row<And>(), bool_row<Or>()};

// ---- isnan, isinf, isfinite of floats (16-bit ones in float32: exact) ----
#define TS_PREDICATE(Name, f)                               \
  struct Name {                                             \
    template <class C>                                      \
    __device__ __forceinline__ bool operator()(C x) const { \
      return fn::f(x);                                      \
    }                                                       \
  };
TS_PREDICATE(IsNan, isnan_of)
TS_PREDICATE(IsInf, isinf_of)
TS_PREDICATE(IsFinite, isfinite_of)
#undef TS_PREDICATE

template <class T, class Op>
__global__ void predicate_strided(const T* in, bool* out, Geometry g) {
  const Op op;
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    out[o[0]] = op(Io<T>::up(in[o[1]]));
  }
}

using PredicateLaunch = void (*)(const void*, void*, const Geometry&, cudaStream_t);
template <class T, class Op>
void launch_predicate(const void* in, void* out, const Geometry& g, cudaStream_t s) {
  predicate_strided<T, Op><<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const T*>(in),
                                                                    static_cast<bool*>(out), g);
}
using PredicateRow = std::array<PredicateLaunch, 4>;  // kF16, kBF16, kF32, kF64
template <class Op>
constexpr PredicateRow predicate_row() {
  return {&launch_predicate<__half, Op>, &launch_predicate<__nv_bfloat16, Op>,
          &launch_predicate<float, Op>, &launch_predicate<double, Op>};
}
// Indexed by PredicateOp.
constexpr std::array<PredicateRow, kNumPredicate> kPredicates = {
    predicate_row<IsNan>(), predicate_row<IsInf>(), predicate_row<IsFinite>()};

template <class W>
__global__ void where_strided(const bool* c, const W* a, const W* b, W* out, Geometry g) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[4];
    offsets<4>(g, i, o);
    out[o[0]] = c[o[1]] ? a[o[2]] : b[o[3]];
  }
}

template <class W>
void launch_where(const void* c, const void* a, const void* b, void* out, const Geometry& g,
                  cudaStream_t s) {
  where_strided<W><<<blocks_for(g.numel), kThreads, 0, s>>>(
      static_cast<const bool*>(c), static_cast<const W*>(a), static_cast<const W*>(b),
      static_cast<W*>(out), g);
}
using WhereLaunch = void (*)(const void*, const void*, const void*, void*, const Geometry&,
                             cudaStream_t);
// Indexed by log2 of the element width.
constexpr std::array<WhereLaunch, 4> kWhere = {&launch_where<uint8_t>, &launch_where<uint16_t>,
                                               &launch_where<uint32_t>, &launch_where<uint64_t>};

}  // namespace

void where(int width, const void* cond, const void* a, const void* b, void* out, const Geometry& g,
           void* stream) {
  const size_t w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
  kWhere[w](cond, a, b, out, g, static_cast<cudaStream_t>(stream));
}

void compare(int op, int code, const void* a, const void* b, void* out, const Geometry& g,
             void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code)](a, b, out, g,
                                                             static_cast<cudaStream_t>(stream));
}

void predicate(int op, int code, const void* in, void* out, const Geometry& g, void* stream) {
  kPredicates[static_cast<size_t>(op)][static_cast<size_t>(code - kF16)](
      in, out, g, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
