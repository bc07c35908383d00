// Ternary elementwise kernels over the four-operand strided geometry (all three inputs
// broadcast): clamp(x, lo, hi) for the integers and floats, lerp(a, b, w) for the floats, the
// 16-bit floats computed in float32 as on the CPU. The rules live in functors.cuh; a table
// indexed by op and dtype code, a null entry being a dtype the CPU refuses too.
#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/functors.cuh"

namespace tessera::cuda::k {
namespace {

struct Clamp {
  template <class C>
  __device__ __forceinline__ C operator()(C x, C lo, C hi) const {
    return fn::clamp_of(x, lo, hi);
  }
};
struct Lerp {
  template <class C>
  __device__ __forceinline__ C operator()(C a, C b, C w) const {
    return fn::lerp_of(a, b, w);
  }
};

template <class T, class Op>
__global__ void ternary_strided(const T* a, const T* b, const T* c, T* out, Geometry g) {
  using IO = Io<T>;
  const Op op;
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[4];
    offsets<4>(g, i, o);
    out[o[0]] = IO::down(op(IO::up(a[o[1]]), IO::up(b[o[2]]), IO::up(c[o[3]])));
  }
}

using Launch = void (*)(const void*, const void*, const void*, void*, const Geometry&,
                        cudaStream_t);
template <class T, class Op>
void launch(const void* a, const void* b, const void* c, void* out, const Geometry& g,
            cudaStream_t s) {
  ternary_strided<T, Op>
      <<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const T*>(a), static_cast<const T*>(b),
                                                static_cast<const T*>(c), static_cast<T*>(out), g);
}

using Row = std::array<Launch, 10>;  // indexed by dtype code, kBool ... kF64
template <class Op>
constexpr Row float_row() {
  return {nullptr,
          nullptr,
          nullptr,
          nullptr,
          nullptr,
          nullptr,
          &launch<__half, Op>,
          &launch<__nv_bfloat16, Op>,
          &launch<float, Op>,
          &launch<double, Op>};
}
template <class Op>
constexpr Row real_row() {  // the integers and the floats, not bool
  Row r = float_row<Op>();
  r[kU8] = &launch<uint8_t, Op>;
  r[kI8] = &launch<int8_t, Op>;
  r[kI16] = &launch<int16_t, Op>;
  r[kI32] = &launch<int32_t, Op>;
  r[kI64] = &launch<int64_t, Op>;
  return r;
}
// Indexed by TernaryOp.
constexpr std::array<Row, kNumTernary> kTable = {real_row<Clamp>(), float_row<Lerp>()};

}  // namespace

void ternary(int op, int code, const void* a, const void* b, const void* c, void* out,
             const Geometry& g, void* stream) {
  kTable[static_cast<size_t>(op)][static_cast<size_t>(code)](a, b, c, out, g,
                                                             static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
