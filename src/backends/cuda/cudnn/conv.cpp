// CUDA kernels of the convolution primitives through cuDNN's legacy convolution API:
//   conv             = cudnnConvolutionForward        (image x -> grid y, + bias)
//   conv_transpose   = cudnnConvolutionBackwardData   (grid x -> image y, + bias)
//   conv_weight_grad = cudnnConvolutionBackwardFilter (image x, grid dy -> weight)
// with groups, stride, padding and dilation, 1-3 spatial dims (1-d as 2-d with a height of 1),
// in float64, float32 (FMA-only math unless set_allow_tf32(true), like matmul in blas.cpp),
// and natively in float16 and bfloat16: 16-bit tensors, float32 accumulation, tensor-op math,
// as PyTorch does (cudnn/algo_cache.cpp holds that table). A 16-bit call for which cuDNN has
// no algorithm (older GPUs: bfloat16 before Ampere) goes through float32 copies rounded once
// (backends/float32_compute.h, as the CPU kernels do). Algorithms are chosen, and remembered
// per shape, in cudnn/conv_algos.cpp.
#include <cudnn.h>

#include <array>
#include <climits>
#include <mutex>

#include "backends/cuda/common.h"
#include "backends/cuda/cudnn/conv_call.h"
#include "backends/cuda/ops.h"
#include "backends/float32_compute.h"
#include "ops/nn_geometry.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

using detail::ConvGeom;
using detail::Dim3;

constexpr int kMaxDevices = 64;

// One handle per device, used under its lock (a call only queues work on the stream).
struct Handles {
  std::mutex mu;
  std::array<cudnnHandle_t, kMaxDevices> h{};
};
Handles& handles() {
  static auto* all = new Handles;  // leaked: handles may be needed until the process ends
  return *all;
}

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

void describe(Call& c, const ConvGeom& g) {
  const int nd = spatial_dims(g);
  set_tensor(c.image, c.data(), dims_of(g.n, g.c, g.img, nd), c.op);
  set_tensor(c.grid, c.data(), dims_of(g.n, g.o, g.grid, nd), c.op);
  const std::vector<int> wd = as_ints(dims_of(g.o, g.cg(), g.k, nd), c.op);
  check(cudnnSetFilterNdDescriptor(c.w.d, c.data(), CUDNN_TENSOR_NCHW, static_cast<int>(wd.size()),
                                   wd.data()),
        c.op, "cudnnSetFilterNdDescriptor");
  std::vector<int> pad, stride, dil;
  for (int i = 3 - nd; i < 3; ++i) {
    pad.push_back(static_cast<int>(g.p[i]));
    stride.push_back(static_cast<int>(g.s[i]));
    dil.push_back(static_cast<int>(g.d[i]));
  }
  check(cudnnSetConvolutionNdDescriptor(c.conv.d, nd, pad.data(), stride.data(), dil.data(),
                                        CUDNN_CROSS_CORRELATION,
                                        static_cast<cudnnDataType_t>(c.types.compute)),
        c.op, "cudnnSetConvolutionNdDescriptor");
  check(cudnnSetConvolutionGroupCount(c.conv.d, static_cast<int>(g.groups)), c.op,
        "cudnnSetConvolutionGroupCount");
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
  set_tensor(yd, c.data(), dims_of(y.size(0), channels, sp, nd), c.op);
  set_tensor(bd, c.data(), dims_of(1, channels, Dim3{1, 1, 1}, nd), c.op);
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

cudnn::ConvTypes types_of(DType dt, const char* op) {
  const std::optional<cudnn::ConvTypes> t = cudnn::conv_types(dt, allow_tf32());
  if (!t) fail<NotImplementedError>(op, "no cuDNN convolution in {}", dtype_name(dt));
  return *t;
}

const Tensor* bias_in(Inputs in) { return in.size() > 2 ? &in[2] : nullptr; }

// Zero input channels or an empty kernel make every sum empty (cuDNN refuses such shapes):
// the output is zeros (plus the bias).
bool empty_sum(const Tensor& x, const Tensor& w) { return x.numel() == 0 || w.numel() == 0; }

// cuDNN ran no algorithm: an error in float32 and float64; a 16-bit call returns false, and
// the kernel runs again through float32 copies once the handle's lock is released.
bool no_algorithm(const Call& c) {
  if (!backends::is_half(c.dtype))
    fail<NotImplementedError>(c.op, "cuDNN supports no algorithm for this call");
  return false;
}

// Each returns false where a 16-bit call needs the float32 detour (no_algorithm).
bool conv_native(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv";
  const ConvGeom g = detail::conv_geometry(op, in[0], in[1], bias_in(in), a);
  const Tensor& y = out[0];
  if (y.numel() == 0) return true;
  Session s(y.device().index, op);
  Call c{op, s.h, s.dev, y.dtype(), types_of(y.dtype(), op)};
  if (empty_sum(in[0], in[1])) {
    fill_zeros(y, s.dev, op);
  } else {
    const Tensor x = dense(in[0], op), w = dense(in[1], op);
    describe(c, g);
    if (!run_forward(c, g, {x.raw_data(), w.raw_data(), y.raw_data()})) return no_algorithm(c);
  }
  if (const Tensor* b = bias_in(in)) add_bias(c, *b, y, g.o);
  launched(s.dev, op);
  return true;
}

bool conv_transpose_native(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv_transpose";
  ConvGeom g = detail::conv_transpose_geometry(op, in[0], in[1], bias_in(in), a);
  const Tensor& y = out[0];
  if (y.numel() == 0) return true;
  Session s(y.device().index, op);
  Call c{op, s.h, s.dev, y.dtype(), types_of(y.dtype(), op)};
  if (empty_sum(in[0], in[1])) {
    fill_zeros(y, s.dev, op);
  } else {
    const Tensor x = whole_grid(in[0], g, op), w = dense(in[1], op);
    describe(c, g);
    if (!run_backward_data(c, g, {w.raw_data(), x.raw_data(), y.raw_data()}))
      return no_algorithm(c);
  }
  if (const Tensor* b = bias_in(in)) add_bias(c, *b, y, g.c);
  launched(s.dev, op);
  return true;
}

bool conv_weight_grad_native(Inputs in, Outputs out, const Attrs& a) {
  const char* op = "conv_weight_grad";
  ConvGeom g = detail::conv_weight_grad_geometry(op, in[0], in[1], a);
  const Tensor& dw = out[0];
  if (dw.numel() == 0) return true;
  Session s(dw.device().index, op);
  if (empty_sum(in[0], in[1])) {  // no batch items
    fill_zeros(dw, s.dev, op);
    return true;
  }
  const Tensor x = dense(in[0], op), dy = whole_grid(in[1], g, op);
  Call c{op, s.h, s.dev, dw.dtype(), types_of(dw.dtype(), op)};
  describe(c, g);
  if (!run_backward_filter(c, g, {x.raw_data(), dy.raw_data(), dw.raw_data()}))
    return no_algorithm(c);
  launched(s.dev, op);
  return true;
}

void conv_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (!conv_native(in, out, a)) backends::compute_in_float32(conv_kernel, in, out, a, "conv");
}
void conv_transpose_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (!conv_transpose_native(in, out, a))
    backends::compute_in_float32(conv_transpose_kernel, in, out, a, "conv_transpose");
}
void conv_weight_grad_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (!conv_weight_grad_native(in, out, a))
    backends::compute_in_float32(conv_weight_grad_kernel, in, out, a, "conv_weight_grad");
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
