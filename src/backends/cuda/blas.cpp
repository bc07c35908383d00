// CUDA matmul through cuBLAS (float32, float64, float16, bfloat16; the 16-bit floats accumulate
// in float32; complex64 as cgemm does, the plain product (CUBLAS_OP_T transposes without
// conjugating, like the CPU's cblas_cgemm with CblasTrans)). Row-major C = A @ B is computed as the
// column-major C^T = B^T A^T, so an operand that is row- or column-major in memory is read in
// place; the batch, when its strides are uniform (0 for a broadcast operand), is one
// strided-batched call. Anything else is packed contiguous on the device first. Float32 uses TF32
// tensor cores only with set_allow_tf32(true).
#include <cublas_v2.h>

#include <array>
#include <climits>
#include <mutex>
#include <optional>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/matrix_layout.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxDevices = 64;

void check(cublasStatus_t st, const char* call) {
  if (st != CUBLAS_STATUS_SUCCESS)
    fail<DeviceError>("matmul", "cuBLAS error {} ({}) in {}", cublasGetStatusName(st),
                      cublasGetStatusString(st), call);
}

// One handle per device, used under its lock (a call only queues work on the stream).
struct Handles {
  std::mutex mu;
  std::array<cublasHandle_t, kMaxDevices> h{};
};
Handles& handles() {
  static auto* all = new Handles;  // leaked: handles may be needed until the process ends
  return *all;
}

struct Layout {
  cublasOperation_t op;
  int64_t ld;
};

// How cuBLAS (column-major) reads a row-major rows x cols operand with these strides as its
// transpose, if in place: row-major storage is the transpose already (N), column-major needs T.
std::optional<Layout> gemm_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const auto l = matrix_layout(rows, cols, rs, cs);
  if (!l) return std::nullopt;
  return Layout{l->transposed ? CUBLAS_OP_T : CUBLAS_OP_N, l->ld};
}

// One stride that walks all batch dims (0 when the operand is broadcast over all of them).
std::optional<int64_t> uniform_stride(const Shape& batch, const Strides& s) {
  bool broadcast = true;
  for (size_t d = 0; d < batch.size(); ++d) broadcast &= batch[d] == 1 || s[d] == 0;
  if (broadcast) return 0;
  std::optional<int64_t> inner;
  int64_t expect = 0;
  for (size_t d = batch.size(); d-- > 0;) {
    if (batch[d] == 1) continue;
    if (s[d] == 0 || (inner && s[d] != expect)) return std::nullopt;
    if (!inner) inner = s[d];
    expect = s[d] * batch[d];
  }
  return inner.value_or(0);
}

struct Operand {
  Tensor keep;  // the packed copy, when one was needed
  const void* ptr;
  Layout layout;
  int64_t batch_stride;
};

Operand operand(const Tensor& x, const Shape& batch) {
  const int64_t rows = x.size(-2), cols = x.size(-1);
  auto layout = gemm_layout(rows, cols, x.stride(-2), x.stride(-1));
  auto stride = uniform_stride(batch, matmul_batch_strides(x, batch));
  if (layout && stride) return {Tensor(), x.raw_data(), *layout, *stride};
  Shape full = batch;
  full.push_back(rows);
  full.push_back(cols);
  Tensor packed = Tensor::empty(full, x.dtype(), x.device());
  convert_into(x, packed, "matmul");
  return {packed, packed.raw_data(), Layout{CUBLAS_OP_N, std::max<int64_t>(1, cols)}, rows * cols};
}

int as_int(int64_t v, const char* what) {
  if (v > INT_MAX)
    fail<NotImplementedError>("matmul", "no cuBLAS call for {} = {} (more than {})", what, v,
                              INT_MAX);
  return static_cast<int>(v);
}

// alpha = 1 and beta = 0 in the type cuBLAS reads them in (the compute type's scalar: a
// cuComplex, two floats, for complex64).
constexpr double kOne64 = 1, kZero64 = 0;
constexpr float kOne32[2] = {1, 0}, kZero32[2] = {0, 0};

struct Types {
  cudaDataType data;
  cublasComputeType_t compute;
  bool f64;
  const void* one() const { return f64 ? static_cast<const void*>(&kOne64) : kOne32; }
  const void* zero() const { return f64 ? static_cast<const void*>(&kZero64) : kZero32; }
};
// float32 and complex64 use TF32 tensor cores only when allowed (cuBLAS takes the fast TF32
// compute type for both).
cublasComputeType_t compute_32f() {
  return allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}
Types types_of(DType dt) {
  switch (dt) {
    case kFloat64:
      return {CUDA_R_64F, CUBLAS_COMPUTE_64F, true};
    case kFloat16:
      return {CUDA_R_16F, CUBLAS_COMPUTE_32F, false};
    case kBFloat16:
      return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, false};
    case kComplex64:
      return {CUDA_C_32F, compute_32f(), false};
    default:
      return {CUDA_R_32F, compute_32f(), false};
  }
}

// Runs fn(handle) with the device's cuBLAS handle, under its lock, bound to the current stream.
template <class F>
void with_handle(int dev, F&& fn) {
  Handles& hs = handles();
  std::lock_guard lock(hs.mu);
  cublasHandle_t& h = hs.h[static_cast<size_t>(dev)];
  if (!h) check(cublasCreate(&h), "cublasCreate");
  check(cublasSetStream(h, current_stream(dev)), "cublasSetStream");
  fn(h);
}

bool matmul_supports(Inputs in, const Attrs&) {
  const DType dt = in[0].dtype();
  return dt == kFloat32 || dt == kFloat64 || dt == kFloat16 || dt == kBFloat16 || dt == kComplex64;
}

void matmul_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor &a = in[0], &b = in[1], &c = out[0];
  if (c.numel() == 0) return;
  const int dev = c.device().index;
  DeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  if (k == 0) {  // an empty sum: zeros
    TS_CUDA_CHECK("matmul", cudaMemsetAsync(c.raw_data(), 0, c.nbytes(), stream));
    return;
  }
  const Shape batch(c.shape().begin(), c.shape().end() - 2);
  int64_t count = 1;
  for (int64_t s : batch) count *= s;
  const Operand A = operand(a, batch), B = operand(b, batch);
  const Types t = types_of(c.dtype());
  // C^T (n x m, column-major, ld n) = B^T (n x k) * A^T (k x m).
  with_handle(dev, [&](cublasHandle_t h) {
    check(cublasGemmStridedBatchedEx(h, B.layout.op, A.layout.op, as_int(n, "n"), as_int(m, "m"),
                                     as_int(k, "k"), t.one(), B.ptr, t.data,
                                     as_int(B.layout.ld, "ldb"), B.batch_stride, A.ptr, t.data,
                                     as_int(A.layout.ld, "lda"), A.batch_stride, t.zero(),
                                     c.raw_data(), t.data, as_int(std::max<int64_t>(1, n), "ldc"),
                                     m * n, as_int(count, "batch"), t.compute, CUBLAS_GEMM_DEFAULT),
          "cublasGemmStridedBatchedEx");
  });
  launched(dev, "matmul");
}

}  // namespace

void cublas_gemm(const Tensor& a, const Tensor& b, const Tensor& c) {
  const int dev = c.device().index;
  DeviceGuard guard(dev);
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  const Types t = types_of(c.dtype());
  with_handle(dev, [&](cublasHandle_t h) {
    check(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, as_int(n, "n"), as_int(m, "m"), as_int(k, "k"),
                       t.one(), b.raw_data(), t.data, as_int(n, "ldb"), a.raw_data(), t.data,
                       as_int(k, "lda"), t.zero(), c.raw_data(), t.data, as_int(n, "ldc"),
                       t.compute, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  });
}

void register_matmul_kernels(Registry& r) {
  r.add_kernel("matmul", {DeviceType::CUDA, "cublas", matmul_kernel, matmul_supports});
}

}  // namespace tessera::cuda
