// Data movement on one device: fill with a bit pattern, strided copy by element width, and
// dtype conversion with the CPU's rules (complex64 included: its real part converts like a
// float32, bool takes either part; a real value becomes (x, 0) through float32). Conversion
// reads the dtype codes at run time (the branch is the same for every thread), so one kernel
// covers every pair of dtypes.
#include "backends/cuda/device.cuh"

namespace tessera::cuda::k {
namespace {

template <class W>
__global__ void fill_kernel(W* out, int64_t n, W v) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) out[i] = v;
}

template <class W>
__global__ void copy_kernel(const W* src, W* dst, Geometry g) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    dst[o[0]] = src[o[1]];
  }
}

// A loaded element: integers (and bool) exactly as int64, floats exactly as double (complex64:
// its real part, the imaginary part in im; 0 for the real dtypes).
struct Value {
  int64_t i;
  double f;
  bool is_int;
  float im = 0;
};

__device__ Value load(const void* base, int64_t off, int code) {
  switch (code) {
    case kBool:
      return {static_cast<const uint8_t*>(base)[off] != 0 ? 1 : 0, 0.0, true};
    case kU8:
      return {static_cast<const uint8_t*>(base)[off], 0.0, true};
    case kI8:
      return {static_cast<const int8_t*>(base)[off], 0.0, true};
    case kI16:
      return {static_cast<const int16_t*>(base)[off], 0.0, true};
    case kI32:
      return {static_cast<const int32_t*>(base)[off], 0.0, true};
    case kI64:
      return {static_cast<const int64_t*>(base)[off], 0.0, true};
    case kF16:
      return {0, __half2float(static_cast<const __half*>(base)[off]), false};
    case kBF16:
      return {0, __bfloat162float(static_cast<const __nv_bfloat16*>(base)[off]), false};
    case kF32:
      return {0, static_cast<const float*>(base)[off], false};
    case kC64: {
      const float2 z = static_cast<const float2*>(base)[off];
      return {0, z.x, false, z.y};
    }
    default:
      return {0, static_cast<const double*>(base)[off], false};
  }
}

// Float -> integer: NaN gives 0, out-of-range values saturate; integer -> integer wraps.
template <class To>
__device__ To to_int(const Value& v, double lo, double hi, To tlo, To thi) {
  if (v.is_int) return static_cast<To>(v.i);
  const double x = v.f;
  if (!(x == x)) return To(0);
  if (x <= lo) return tlo;
  if (x >= hi) return thi;
  return static_cast<To>(x);
}

// 16-bit floats and float32 round once from float32 (an integer converts to float32 first),
// as the CPU does.
__device__ float as_float(const Value& v) {
  return v.is_int ? static_cast<float>(v.i) : static_cast<float>(v.f);
}

__device__ void store(void* base, int64_t off, int code, const Value& v) {
  switch (code) {
    case kBool:  // complex64: either part nonzero (NaN counts)
      static_cast<uint8_t*>(base)[off] = v.is_int ? v.i != 0 : (v.f != 0.0 || v.im != 0.0f);
      break;
    case kU8:
      static_cast<uint8_t*>(base)[off] = to_int<uint8_t>(v, 0.0, 255.0, 0, 255);
      break;
    case kI8:
      static_cast<int8_t*>(base)[off] = to_int<int8_t>(v, -128.0, 127.0, -128, 127);
      break;
    case kI16:
      static_cast<int16_t*>(base)[off] = to_int<int16_t>(v, -32768.0, 32767.0, -32768, 32767);
      break;
    case kI32:
      static_cast<int32_t*>(base)[off] =
          to_int<int32_t>(v, -2147483648.0, 2147483647.0, INT32_MIN, INT32_MAX);
      break;
    case kI64:
      static_cast<int64_t*>(base)[off] =
          to_int<int64_t>(v, -9223372036854775808.0, 9223372036854775807.0, INT64_MIN, INT64_MAX);
      break;
    case kF16:
      static_cast<__half*>(base)[off] = __float2half_rn(as_float(v));
      break;
    case kBF16:
      static_cast<__nv_bfloat16*>(base)[off] = __float2bfloat16_rn(as_float(v));
      break;
    case kF32:
      static_cast<float*>(base)[off] = as_float(v);
      break;
    case kC64:
      static_cast<float2*>(base)[off] = make_float2(as_float(v), 0.0f);
      break;
    default:
      static_cast<double*>(base)[off] = v.is_int ? static_cast<double>(v.i) : v.f;
  }
}

__global__ void convert_kernel(int src_code, int dst_code, const void* src, void* dst, Geometry g) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    store(dst, o[0], dst_code, load(src, o[1], src_code));
  }
}

}  // namespace

void fill(void* out, int64_t n, int width, uint64_t bits, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const unsigned b = blocks_for(n);
  switch (width) {
    case 1:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<uint8_t*>(out), n, static_cast<uint8_t>(bits));
      break;
    case 2:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<uint16_t*>(out), n,
                                         static_cast<uint16_t>(bits));
      break;
    case 4:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<uint32_t*>(out), n,
                                         static_cast<uint32_t>(bits));
      break;
    default:
      fill_kernel<<<b, kThreads, 0, s>>>(static_cast<uint64_t*>(out), n, bits);
  }
}

void copy(int width, const void* src, void* dst, const Geometry& g, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  const unsigned b = blocks_for(g.numel);
  switch (width) {
    case 1:
      copy_kernel<<<b, kThreads, 0, s>>>(static_cast<const uint8_t*>(src),
                                         static_cast<uint8_t*>(dst), g);
      break;
    case 2:
      copy_kernel<<<b, kThreads, 0, s>>>(static_cast<const uint16_t*>(src),
                                         static_cast<uint16_t*>(dst), g);
      break;
    case 4:
      copy_kernel<<<b, kThreads, 0, s>>>(static_cast<const uint32_t*>(src),
                                         static_cast<uint32_t*>(dst), g);
      break;
    default:
      copy_kernel<<<b, kThreads, 0, s>>>(static_cast<const uint64_t*>(src),
                                         static_cast<uint64_t*>(dst), g);
  }
}

void convert(int src_code, int dst_code, const void* src, void* dst, const Geometry& g,
             void* stream) {
  convert_kernel<<<blocks_for(g.numel), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      src_code, dst_code, src, dst, g);
}

}  // namespace tessera::cuda::k
