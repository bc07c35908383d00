// CUDA kernels of the convolution primitives through cuDNN's legacy convolution API:
//   conv             = cudnnConvolutionForward        (image x -> grid y, + bias)
//   conv_transpose   = cudnnConvolutionBackwardData   (grid x -> image y, + bias)
//   conv_weight_grad = cudnnConvolutionBackwardFilter (image x, grid dy -> weight)
// in float32 and float64 (16-bit floats through float32 copies, rounded once at the end:
// backends/float32_compute.h, as the CPU kernels do), with
// groups, stride, padding and dilation, 1-3 spatial dims (1-d as 2-d with a height of 1).
// Algorithms come from cuDNN's heuristics (the _v7 queries, no timed search), tried in their
// order until one is supported; the workspace is a temporary tensor from the caching
// allocator. Float32 runs FMA-only math unless set_allow_tf32(true), like matmul (blas.cpp).
#include <cudnn.h>

#include <array>
#include <climits>
#include <mutex>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/float32_compute.h"
#include "ops/nn_geometry.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

using detail::ConvGeom;
using detail::Dim3;

constexpr int kMaxDevices = 64;

void check(cudnnStatus_t st, const char* op, const char* call) {
  if (st != CUDNN_STATUS_SUCCESS)
    fail<DeviceError>(op, "cuDNN error {} in {}", cudnnGetErrorString(st), call);
}

// One handle per device, used under its lock (a call only queues work on the stream).
struct Handles {
  std::mutex mu;
  std::array<cudnnHandle_t, kMaxDevices> h{};
};
Handles& handles() {
  static auto* all = new Handles;  // leaked: handles may be needed until the process ends
  return *all;
}

// Owners of cuDNN descriptors.
template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
struct Desc {
  D d{};
  explicit Desc(const char* op) { check(Create(&d), op, "cudnnCreate*Descriptor"); }
  ~Desc() { Destroy(d); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};
using TensorDesc =
    Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc =
    Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;

// cuDNN wants 2 or 3 spatial dims: 1-d calls use the last two of the right-aligned Dim3s
// (height 1).
int spatial_dims(const ConvGeom& g) { return g.nsp == 3 ? 3 : 2; }

// (lead0, lead1, *sp) of the call's spatial dims.
std::vector<int64_t> dims_of(int64_t lead0, int64_t lead1, const Dim3& sp, int nd) {
  std::vector<int64_t> v{lead0, lead1};
  for (int i = 3 - nd; i < 3; ++i) v.push_back(sp[i]);
  return v;
}

// cuDNN's descriptors hold ints: a tensor (so every size and stride) must stay below INT_MAX.
std::vector<int> as_ints(const std::vector<int64_t>& dims, const char* op) {
  int64_t numel = 1;
  for (int64_t d : dims) numel *= d;
  if (numel > INT_MAX)
    fail<NotImplementedError>(op, "no cuDNN call for a tensor of {} elements (more than {})", numel,
                              INT_MAX);
  return std::vector<int>(dims.begin(), dims.end());
}

// A packed (NCHW-contiguous) tensor of these dims.
void set_tensor(const TensorDesc& t, cudnnDataType_t type, const std::vector<int64_t>& dims64,
                const char* op) {
  const std::vector<int> dims = as_ints(dims64, op);
  std::vector<int> strides(dims.size(), 1);
  for (size_t i = dims.size() - 1; i-- > 0;) strides[i] = strides[i + 1] * dims[i + 1];
  check(cudnnSetTensorNdDescriptor(t.d, type, static_cast<int>(dims.size()), dims.data(),
                                   strides.data()),
        op, "cudnnSetTensorNdDescriptor");
}

// Everything one cuDNN convolution call needs: image (n, c, *img), grid (n, o, *grid) and
// weight (o, c / groups, *k) descriptors, all NCHW-contiguous.
struct Call {
  const char* op;
  cudnnHandle_t h;
  cudnnDataType_t type;
  bool fma_only;  // float32 without TF32
  TensorDesc image{op}, grid{op};
  FilterDesc w{op};
  ConvDesc conv{op};
  double one64 = 1, zero64 = 0;
  float one32 = 1, zero32 = 0;

  const void* one() const {
    return type == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&one64) : &one32;
  }
  const void* zero() const {
    return type == CUDNN_DATA_DOUBLE ? static_cast<const void*>(&zero64) : &zero32;
  }
};

void describe(Call& c, const ConvGeom& g) {
  const int nd = spatial_dims(g);
  set_tensor(c.image, c.type, dims_of(g.n, g.c, g.img, nd), c.op);
  set_tensor(c.grid, c.type, dims_of(g.n, g.o, g.grid, nd), c.op);
  const std::vector<int> wd = as_ints(dims_of(g.o, g.cg(), g.k, nd), c.op);
  check(cudnnSetFilterNdDescriptor(c.w.d, c.type, CUDNN_TENSOR_NCHW, static_cast<int>(wd.size()),
                                   wd.data()),
        c.op, "cudnnSetFilterNdDescriptor");
  std::vector<int> pad, stride, dil;
  for (int i = 3 - nd; i < 3; ++i) {
    pad.push_back(static_cast<int>(g.p[i]));
    stride.push_back(static_cast<int>(g.s[i]));
    dil.push_back(static_cast<int>(g.d[i]));
  }
  check(cudnnSetConvolutionNdDescriptor(c.conv.d, nd, pad.data(), stride.data(), dil.data(),
                                        CUDNN_CROSS_CORRELATION, c.type),
        c.op, "cudnnSetConvolutionNdDescriptor");
  check(cudnnSetConvolutionGroupCount(c.conv.d, static_cast<int>(g.groups)), c.op,
        "cudnnSetConvolutionGroupCount");
  check(cudnnSetConvolutionMathType(c.conv.d, c.fma_only ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH),
        c.op, "cudnnSetConvolutionMathType");
}

// Tries the heuristics' candidates in their order, then algorithm 0 (implicit GEMM, present
// for every call), skipping failed, tensor-op-only (when FMA only) and unsupported ones.
// attempt(algo) sizes the workspace and runs, returning cuDNN's status.
template <class Perf, class Attempt>
void run_first_supported(Call& c, const Perf* perf, int n, Attempt&& attempt) {
  std::vector<Perf> cands(perf, perf + n);
  Perf fallback{};
  fallback.algo = static_cast<decltype(fallback.algo)>(0);
  fallback.status = CUDNN_STATUS_SUCCESS;
  fallback.mathType = CUDNN_DEFAULT_MATH;
  cands.push_back(fallback);
  for (const Perf& p : cands) {
    if (p.status != CUDNN_STATUS_SUCCESS) continue;
    cudnnMathType_t math = p.mathType;
    if (c.fma_only) {
      if (math != CUDNN_FMA_MATH && math != CUDNN_DEFAULT_MATH) continue;
      math = CUDNN_FMA_MATH;
    }
    check(cudnnSetConvolutionMathType(c.conv.d, math), c.op, "cudnnSetConvolutionMathType");
    const cudnnStatus_t st = attempt(p.algo);
    if (st == CUDNN_STATUS_SUCCESS) return;
    if (CUDNN_STATUS_CATEGORY(st) != CUDNN_STATUS_NOT_SUPPORTED) check(st, c.op, "the convolution");
  }
  fail<NotImplementedError>(c.op, "cuDNN supports no algorithm for this call");
}

// A workspace of `bytes` on the device, alive while `keep` is.
void* workspace(size_t bytes, int dev, Tensor& keep) {
  if (bytes == 0) return nullptr;
  keep = Tensor::empty({static_cast<int64_t>(bytes)}, kUInt8, Device::cuda(dev));
  return keep.raw_data();
}

// A dense (NCHW-contiguous) operand: cuDNN's descriptors here assume that layout.
Tensor dense(const Tensor& t, const char* op) {
  if (t.is_contiguous()) return t;
  Tensor packed = Tensor::empty(t.shape(), t.dtype(), t.device());
  convert_into(t, packed, op);
  return packed;
}

// Zeros into all of t, on the current stream.
void fill_zeros(const Tensor& t, int dev, const char* op) {
  TS_CUDA_CHECK(op, cudaMemsetAsync(t.raw_data(), 0, t.nbytes(), current_stream(dev)));
}

// cuDNN wants the grid side to be the whole output of convolving the image side. A prefix of
// it (transposed convolutions with output_padding >= stride give that) is padded with zeros,
// and g.grid becomes the whole size.
Tensor whole_grid(const Tensor& t, ConvGeom& g, const char* op) {
  Dim3 full = g.grid;
  for (int i = 3 - g.nsp; i < 3; ++i)
    full[i] = detail::conv_out_size(g.img[i], g.k[i], g.s[i], g.p[i], g.d[i]);
  if (full == g.grid) return dense(t, op);
  Shape shape{g.n, g.o};
  for (int i = 3 - g.nsp; i < 3; ++i) shape.push_back(full[i]);
  Tensor z = Tensor::empty(shape, t.dtype(), t.device());
  fill_zeros(z, t.device().index, op);
  Tensor view = z;
  for (int i = 0; i < g.nsp; ++i) view = view.narrow(2 + i, 0, g.grid[3 - g.nsp + i]);
  convert_into(t, view, op);
  g.grid = full;
  return z;
}

// y (n, channels, *spatial) += bias over dim 1 (cudnnAddTensor broadcasts (1, C, 1, ...)).
void add_bias(Call& c, const Tensor& bias, const Tensor& y, int64_t channels) {
  const auto nsp = static_cast<int>(y.dim() - 2);
  Dim3 sp{1, 1, 1};
  for (int i = 0; i < nsp; ++i) sp[3 - nsp + i] = y.size(2 + i);
  const int nd = nsp == 3 ? 3 : 2;
  TensorDesc yd{c.op}, bd{c.op};
  set_tensor(yd, c.type, dims_of(y.size(0), channels, sp, nd), c.op);
  set_tensor(bd, c.type, dims_of(1, channels, Dim3{1, 1, 1}, nd), c.op);
  const Tensor b = dense(bias, c.op);
  check(cudnnAddTensor(c.h, c.one(), bd.d, b.raw_data(), c.one(), yd.d, y.raw_data()), c.op,
        "cudnnAddTensor");
}

// Locks the device's handle onto the current stream for one kernel call.
struct Session {
  int dev;
  DeviceGuard guard;
  std::unique_lock<std::mutex> lock;
  cudnnHandle_t h;

  Session(int d, const char* op) : dev(d), guard(d), lock(handles().mu) {
    cudnnHandle_t& slot = handles().h[static_cast<size_t>(dev)];
    if (!slot) check(cudnnCreate(&slot), op, "cudnnCreate");
    h = slot;
    check(cudnnSetStream(h, current_stream(dev)), op, "cudnnSetStream");
  }
};

// y (grid) = conv(x (image), w).
void forward(Call& c, int dev, const Tensor& x, const Tensor& w, const Tensor& y) {
  std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
  int n = 0;
  check(cudnnGetConvolutionForwardAlgorithm_v7(c.h, c.image.d, c.w.d, c.conv.d, c.grid.d,
                                               static_cast<int>(perf.size()), &n, perf.data()),
        c.op, "cudnnGetConvolutionForwardAlgorithm_v7");
  run_first_supported(c, perf.data(), n, [&](cudnnConvolutionFwdAlgo_t algo) {
    size_t bytes = 0;
    const cudnnStatus_t st = cudnnGetConvolutionForwardWorkspaceSize(
        c.h, c.image.d, c.w.d, c.conv.d, c.grid.d, algo, &bytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    Tensor keep;
    void* ws = workspace(bytes, dev, keep);
    return cudnnConvolutionForward(c.h, c.one(), c.image.d, x.raw_data(), c.w.d, w.raw_data(),
                                   c.conv.d, algo, ws, bytes, c.zero(), c.grid.d, y.raw_data());
  });
}

// y (image) = the adjoint of conv applied to x (grid).
void backward_data(Call& c, int dev, const Tensor& x, const Tensor& w, const Tensor& y) {
  std::array<cudnnConvolutionBwdDataAlgoPerf_t, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT> perf{};
  int n = 0;
  check(cudnnGetConvolutionBackwardDataAlgorithm_v7(c.h, c.w.d, c.grid.d, c.conv.d, c.image.d,
                                                    static_cast<int>(perf.size()), &n, perf.data()),
        c.op, "cudnnGetConvolutionBackwardDataAlgorithm_v7");
  run_first_supported(c, perf.data(), n, [&](cudnnConvolutionBwdDataAlgo_t algo) {
    size_t bytes = 0;
    const cudnnStatus_t st = cudnnGetConvolutionBackwardDataWorkspaceSize(
        c.h, c.w.d, c.grid.d, c.conv.d, c.image.d, algo, &bytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    Tensor keep;
    void* ws = workspace(bytes, dev, keep);
    return cudnnConvolutionBackwardData(c.h, c.one(), c.w.d, w.raw_data(), c.grid.d, x.raw_data(),
                                        c.conv.d, algo, ws, bytes, c.zero(), c.image.d,
                                        y.raw_data());
  });
}

// dw = the weight gradient of conv(x (image)) for dy (grid).
void backward_filter(Call& c, int dev, const Tensor& x, const Tensor& dy, const Tensor& dw) {
  std::array<cudnnConvolutionBwdFilterAlgoPerf_t, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT> perf{};
  int n = 0;
  check(
      cudnnGetConvolutionBackwardFilterAlgorithm_v7(c.h, c.image.d, c.grid.d, c.conv.d, c.w.d,
                                                    static_cast<int>(perf.size()), &n, perf.data()),
      c.op, "cudnnGetConvolutionBackwardFilterAlgorithm_v7");
  run_first_supported(c, perf.data(), n, [&](cudnnConvolutionBwdFilterAlgo_t algo) {
    size_t bytes = 0;
    const cudnnStatus_t st = cudnnGetConvolutionBackwardFilterWorkspaceSize(
        c.h, c.image.d, c.grid.d, c.conv.d, c.w.d, algo, &bytes);
    if (st != CUDNN_STATUS_SUCCESS) return st;
    Tensor keep;
    void* ws = workspace(bytes, dev, keep);
    return cudnnConvolutionBackwardFilter(c.h, c.one(), c.image.d, x.raw_data(), c.grid.d,
                                          dy.raw_data(), c.conv.d, algo, ws, bytes, c.zero(), c.w.d,
                                          dw.raw_data());
  });
}

cudnnDataType_t type_of(DType dt) { return dt == kFloat64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT; }
bool fma_only(DType dt) { return dt == kFloat32 && !allow_tf32(); }

const Tensor* bias_in(Inputs in) { return in.size() > 2 ? &in[2] : nullptr; }

// Zero input channels or an empty kernel make every sum empty (cuDNN refuses such shapes):
// the output is zeros (plus the bias).
bool empty_sum(const Tensor& x, const Tensor& w) { return x.numel() == 0 || w.numel() == 0; }

void conv_kernel(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv";
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_kernel, in, out, a, op);
  const ConvGeom g = detail::conv_geometry(op, in[0], in[1], bias_in(in), a);
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  Session s(y.device().index, op);
  const Tensor x = dense(in[0], op), w = dense(in[1], op);
  Call c{op, s.h, type_of(y.dtype()), fma_only(y.dtype())};
  if (empty_sum(x, w)) {
    fill_zeros(y, s.dev, op);
  } else {
    describe(c, g);
    forward(c, s.dev, x, w, y);
  }
  if (const Tensor* b = bias_in(in)) add_bias(c, *b, y, g.o);
  launched(s.dev, op);
}

void conv_transpose_kernel(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv_transpose";
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_transpose_kernel, in, out, a, op);
  ConvGeom g = detail::conv_transpose_geometry(op, in[0], in[1], bias_in(in), a);
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  Session s(y.device().index, op);
  Call c{op, s.h, type_of(y.dtype()), fma_only(y.dtype())};
  if (empty_sum(in[0], in[1])) {
    fill_zeros(y, s.dev, op);
  } else {
    const Tensor x = whole_grid(in[0], g, op), w = dense(in[1], op);
    describe(c, g);
    backward_data(c, s.dev, x, w, y);
  }
  if (const Tensor* b = bias_in(in)) add_bias(c, *b, y, g.c);
  launched(s.dev, op);
}

void conv_weight_grad_kernel(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv_weight_grad";
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_weight_grad_kernel, in, out, a, op);
  ConvGeom g = detail::conv_weight_grad_geometry(op, in[0], in[1], a);
  const Tensor& dw = out[0];
  if (dw.numel() == 0) return;
  Session s(dw.device().index, op);
  if (empty_sum(in[0], in[1])) {  // no batch items
    fill_zeros(dw, s.dev, op);
    return;
  }
  const Tensor x = dense(in[0], op), dy = whole_grid(in[1], g, op);
  Call c{op, s.h, type_of(dw.dtype()), fma_only(dw.dtype())};
  describe(c, g);
  backward_filter(c, s.dev, x, dy, dw);
  launched(s.dev, op);
}

// cuDNN's descriptors hold int sizes and strides: every one is bounded by a tensor's numel.
bool int_sizes(Inputs in, const Attrs&) {
  for (const Tensor& t : in)
    if (t.numel() > INT_MAX) return false;
  return true;
}

}  // namespace

void register_conv_kernels(Registry& r) {
  r.add_kernel("conv", {DeviceType::CUDA, "cudnn", conv_kernel, int_sizes});
  r.add_kernel("conv_transpose", {DeviceType::CUDA, "cudnn", conv_transpose_kernel, int_sizes});
  r.add_kernel("conv_weight_grad", {DeviceType::CUDA, "cudnn", conv_weight_grad_kernel, int_sizes});
}

}  // namespace tessera::cuda
