// CUDA kernels of the elementwise, creation and copy primitives, registered into the primitive
// table under DeviceType::CUDA. Host code only: it turns tensors into a Geometry and calls the
// launchers of unary.cu, binary.cu and copy.cu on the current stream (the integer, predicate
// and ternary families are in elementwise.cpp). Tables map each primitive to its device
// functor; a dtype outside a table is "no cuda kernel" in the scheduler's words, never a
// silent fallback.
#include <array>
#include <cstring>
#include <span>
#include <utility>

#include "backends/cpu/loops.h"
#include "backends/cuda/common.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ops.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {

int dtype_code(DType dt) { return dt == kComplex64 ? -1 : static_cast<int>(dt); }

k::Geometry make_geometry(const Shape& shape, std::span<const int64_t* const> strides,
                          std::span<const void* const> ptrs, std::string_view op) {
  const size_t n = strides.size();
  k::Geometry g;
  g.numel = 1;
  for (int64_t s : shape) g.numel *= s;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = g.ndim > 0;
    for (size_t j = 0; j < n && merge; ++j)
      merge = g.strides[j][g.ndim - 1] == strides[j][d] * shape[d];
    if (merge) {
      g.sizes[g.ndim - 1] *= shape[d];
      for (size_t j = 0; j < n; ++j) g.strides[j][g.ndim - 1] = strides[j][d];
      continue;
    }
    if (g.ndim == k::kMaxDims)
      fail<NotImplementedError>(op, "no CUDA kernel for more than {} dims that cannot be merged",
                                k::kMaxDims);
    g.sizes[g.ndim] = shape[d];
    for (size_t j = 0; j < n; ++j) g.strides[j][g.ndim] = strides[j][d];
    ++g.ndim;
  }
  g.contiguous = g.ndim <= 1;
  if (g.ndim == 1) {
    g.contiguous = g.strides[0][0] == 1;
    for (size_t j = 1; j < n; ++j) g.contiguous &= g.strides[j][0] == 1 || g.strides[j][0] == 0;
  }
  g.aligned = true;
  for (const void* p : ptrs) g.aligned &= reinterpret_cast<uintptr_t>(p) % 16 == 0;
  return g;
}

uint64_t fill_bits(const Scalar& v, DType dt) {
  uint64_t bits = 0;
  visit_dtype(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T x = cpu::convert<T>(
        v.to<std::conditional_t<std::is_same_v<T, Complex64>, Complex64, double>>());
    static_assert(sizeof(T) <= sizeof(bits));
    std::memcpy(&bits, &x, sizeof(T));
  });
  return bits;
}

k::Geometry unary_geometry(const Tensor& x, const Tensor& y, const char* op) {
  const std::array<const int64_t*, 2> strides{y.strides().data(), x.strides().data()};
  const std::array<const void*, 2> ptrs{y.raw_data(), x.raw_data()};
  return make_geometry(y.shape(), strides, ptrs, op);
}

k::Geometry binary_geometry(const Tensor& x, const Tensor& w, const Tensor& y, const char* op) {
  const Strides sx = cpu::broadcast_strides(x, y.shape(), op);
  const Strides sw = cpu::broadcast_strides(w, y.shape(), op);
  const std::array<const int64_t*, 3> strides{y.strides().data(), sx.data(), sw.data()};
  const std::array<const void*, 3> ptrs{y.raw_data(), x.raw_data(), w.raw_data()};
  return make_geometry(y.shape(), strides, ptrs, op);
}

k::Geometry ternary_geometry(const Tensor& a, const Tensor& b, const Tensor& c, const Tensor& y,
                             const char* op) {
  const Strides sa = cpu::broadcast_strides(a, y.shape(), op);
  const Strides sb = cpu::broadcast_strides(b, y.shape(), op);
  const Strides sc = cpu::broadcast_strides(c, y.shape(), op);
  const std::array<const int64_t*, 4> strides{y.strides().data(), sa.data(), sb.data(), sc.data()};
  const std::array<const void*, 4> ptrs{y.raw_data(), a.raw_data(), b.raw_data(), c.raw_data()};
  return make_geometry(y.shape(), strides, ptrs, op);
}

namespace {

// ---- one device: copy and conversion --------------------------------------------------------

bool all_float(Inputs in, const Attrs&) {
  for (const Tensor& t : in)
    if (!k::float_code(dtype_code(t.dtype()))) return false;
  return true;
}

}  // namespace

void convert_into(const Tensor& src, const Tensor& dst, const char* op) {
  if (dst.numel() == 0) return;
  const int dev = dst.device().index;
  DeviceGuard guard(dev);
  cudaStream_t s = current_stream(dev);
  if (src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() &&
      dst.is_contiguous()) {
    TS_CUDA_CHECK(op, cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(),
                                      cudaMemcpyDeviceToDevice, s));
    return;
  }
  const Strides ss = cpu::broadcast_strides(src, dst.shape(), op);
  const std::array<const int64_t*, 2> strides{dst.strides().data(), ss.data()};
  const std::array<const void*, 2> ptrs{dst.raw_data(), src.raw_data()};
  const k::Geometry g = make_geometry(dst.shape(), strides, ptrs, op);
  if (src.dtype() == dst.dtype()) {
    k::copy(static_cast<int>(dst.itemsize()), src.raw_data(), dst.raw_data(), g, s);
  } else {  // every pair of dtypes, complex64 included (k::kC64 is its DType value)
    k::convert(static_cast<int>(src.dtype()), static_cast<int>(dst.dtype()), src.raw_data(),
               dst.raw_data(), g, s);
  }
  launched(dev, op);
}

namespace {

// A CPU kernel called directly (not through the funnel: the outer call already went through
// autograd, the profiler and the scheduler).
void cpu_kernel(const char* name, std::initializer_list<Tensor> in, Tensor out) {
  const std::vector<Tensor> inputs(in);
  const Kernel* kern = prim(name).find_kernel(DeviceType::CPU, inputs, {});
  if (!kern) fail<NotImplementedError>(name, "no CPU kernel for this staging copy");
  Tensor outs[1] = {std::move(out)};
  kern->fn(inputs, Outputs(outs, 1), Attrs{});
}

// Host <-> device copies wait for their stream: the host memory may change or go away right
// after (the semantics of PyTorch's default, non_blocking=False). An asynchronous copy
// (non_blocking, straight from or into a pinned tensor the caller owns: `pinned` is its
// storage's block) returns once queued. The pinned memory cache then records an event on the
// stream and does not reuse the block before it completed, so the tensor may be dropped
// while its copy is queued. Pinned memory the cache does not know (nothing would guard it)
// waits like pageable memory. If recording fails, the copy is waited for before the error
// propagates, so no block is reused under it.
void copy_host_device(void* dst, const void* src, size_t n, cudaMemcpyKind kind, int dev,
                      const void* pinned = nullptr) {
  DeviceGuard guard(dev);
  cudaStream_t s = current_stream(dev);
  TS_CUDA_CHECK("copy_", cudaMemcpyAsync(dst, src, n, kind, s));
  bool queued = false;
  try {
    queued = pinned && pinned_copy_queued(pinned, dev, s);
  } catch (...) {
    sync_stream(dev, s, "copy_");
    throw;
  }
  if (!queued) sync_stream(dev, s, "copy_");
}

// The block an asynchronous copy may use: the tensor's own pinned storage, when asked for.
const void* pinned_block(const Tensor& t, bool non_blocking) {
  return non_blocking ? t.storage()->data() : nullptr;
}

// CPU -> CUDA: the CPU converts to dst's dtype and packs; the device broadcasts into dst's
// layout when dst is not a plain contiguous tensor of the same shape. Only a copy straight from
// the caller's pinned tensor may be asynchronous: a packed temporary would be freed under it.
void upload(const Tensor& src, const Tensor& dst, bool non_blocking) {
  Tensor host = src;
  if (!src.is_contiguous() || src.dtype() != dst.dtype()) {
    host = Tensor::empty(src.shape(), dst.dtype(), Device::cpu());
    cpu_kernel("copy_", {host, src}, host);
  }
  const int dev = dst.device().index;
  if (host.shape() == dst.shape() && dst.is_contiguous()) {
    copy_host_device(dst.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice, dev,
                     pinned_block(src, non_blocking && host.storage() == src.storage()));
    return;
  }
  Tensor staged = Tensor::empty(host.shape(), host.dtype(), dst.device());
  copy_host_device(staged.raw_data(), host.raw_data(), host.nbytes(), cudaMemcpyHostToDevice, dev);
  convert_into(staged, dst, "copy_");
}

// CUDA -> CPU: the device packs (same dtype); the CPU converts and broadcasts into dst. A
// device temporary may be freed under a queued copy (the caching allocator reuses it only in
// the stream's order), so only dst decides whether the copy can be asynchronous.
void download(const Tensor& src, const Tensor& dst, bool non_blocking) {
  Tensor packed = src;
  if (!src.is_contiguous()) {
    packed = Tensor::empty(src.shape(), src.dtype(), src.device());
    convert_into(src, packed, "copy_");
  }
  const int dev = src.device().index;
  if (packed.dtype() == dst.dtype() && packed.shape() == dst.shape() && dst.is_contiguous()) {
    copy_host_device(dst.raw_data(), packed.raw_data(), dst.nbytes(), cudaMemcpyDeviceToHost, dev,
                     pinned_block(dst, non_blocking));
    return;
  }
  Tensor host = Tensor::empty(packed.shape(), packed.dtype(), Device::cpu());
  copy_host_device(host.raw_data(), packed.raw_data(), host.nbytes(), cudaMemcpyDeviceToHost, dev);
  cpu_kernel("copy_", {dst, host}, dst);
}

// cuda:i -> cuda:j, synchronous on both sides (the source's temporaries go back to its cache
// right after).
void peer(const Tensor& src, const Tensor& dst) {
  const int from = src.device().index, to = dst.device().index;
  Tensor packed = Tensor::empty(src.shape(), dst.dtype(), src.device());
  convert_into(src, packed, "copy_");
  sync_stream(from, current_stream(from), "copy_");
  const bool direct = packed.shape() == dst.shape() && dst.is_contiguous();
  Tensor landed = direct ? dst : Tensor::empty(packed.shape(), dst.dtype(), dst.device());
  enable_peer_access(from, to);
  {
    DeviceGuard guard(to);
    TS_CUDA_CHECK("copy_", cudaMemcpyPeerAsync(landed.raw_data(), to, packed.raw_data(), from,
                                               packed.nbytes(), current_stream(to)));
    sync_stream(to, current_stream(to), "copy_");
  }
  if (!direct) convert_into(landed, dst, "copy_");
}

void copy_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &dst = out[0], &src = in[1];
  if (dst.numel() == 0) return;
  const Device dd = dst.device(), sd = src.device();
  const bool non_blocking = a.get_or("non_blocking", false);
  if (dd == sd)
    convert_into(src, dst, "copy_");
  else if (sd.is_cpu())
    upload(src, dst, non_blocking);
  else if (dd.is_cpu())
    download(src, dst, non_blocking);
  else
    peer(src, dst);
}
void clone_kernel(Inputs in, Outputs out, const Attrs&) { convert_into(in[0], out[0], "clone"); }
void cast_kernel(Inputs in, Outputs out, const Attrs&) { convert_into(in[0], out[0], "cast"); }

// fill: the value converted once on the host (the CPU's conversion), then a bit pattern.
void fill_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const uint64_t bits = fill_bits(a.get<Scalar>("value"), y.dtype());
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::fill(y.raw_data(), y.numel(), static_cast<int>(y.itemsize()), bits, current_stream(dev));
  launched(dev, "fill");
}

// ---- elementwise tables ---------------------------------------------------------------------

struct Entry {
  const char* name;
  int op;
};

constexpr std::array kUnary = {
    Entry{"neg", k::kNeg},         Entry{"abs", k::kAbs},
    Entry{"exp", k::kExp},         Entry{"exp2", k::kExp2},
    Entry{"expm1", k::kExpm1},     Entry{"log", k::kLog},
    Entry{"log2", k::kLog2},       Entry{"log1p", k::kLog1p},
    Entry{"sqrt", k::kSqrt},       Entry{"rsqrt", k::kRsqrt},
    Entry{"sin", k::kSin},         Entry{"cos", k::kCos},
    Entry{"tan", k::kTan},         Entry{"tanh", k::kTanh},
    Entry{"sigmoid", k::kSigmoid}, Entry{"relu", k::kRelu},
    Entry{"silu", k::kSilu},       Entry{"gelu", k::kGelu},
    Entry{"erf", k::kErf},         Entry{"reciprocal", k::kReciprocal},
    Entry{"square", k::kSquare},   Entry{"floor", k::kFloor},
    Entry{"ceil", k::kCeil},       Entry{"round", k::kRound},
    Entry{"trunc", k::kTrunc},     Entry{"asin", k::kAsin},
    Entry{"acos", k::kAcos},       Entry{"atan", k::kAtan},
    Entry{"sinh", k::kSinh},       Entry{"cosh", k::kCosh},
    Entry{"sign", k::kSign},       Entry{"softplus", k::kSoftplus},
};

constexpr std::array kBinary = {
    Entry{"add", k::kAdd},
    Entry{"sub", k::kSub},
    Entry{"mul", k::kMul},
    Entry{"div", k::kDiv},
    Entry{"maximum", k::kMaximum},
    Entry{"minimum", k::kMinimum},
    Entry{"pow", k::kPow},
    Entry{"atan2", k::kAtan2},
    Entry{"relu_backward", k::kReluBackward},
    Entry{"floor_divide", k::kFloorDivide},
    Entry{"remainder", k::kRemainder},
};

// Comparisons: real operands of one dtype (the op layer promotes), a bool output.
constexpr std::array kCompare = {
    Entry{"eq", k::kEq}, Entry{"ne", k::kNe}, Entry{"lt", k::kLt},
    Entry{"le", k::kLe}, Entry{"gt", k::kGt}, Entry{"ge", k::kGe},
};
// Logical ops: the operands as bool (x != 0), then a bool comparison (xor is ne).
constexpr std::array kLogical = {
    Entry{"logical_and", k::kAnd},
    Entry{"logical_or", k::kOr},
    Entry{"logical_xor", k::kNe},
};

bool all_real(Inputs in, const Attrs&) {
  for (const Tensor& t : in)
    if (dtype_code(t.dtype()) < 0) return false;
  return true;
}
bool same_real(Inputs in, const Attrs& a) {
  return all_real(in, a) && in[0].dtype() == in[1].dtype();
}
// The logical ops convert their operands to bool first, which every dtype can (complex64 too).
bool same_dtype(Inputs in, const Attrs&) { return in[0].dtype() == in[1].dtype(); }

void run_unary(const Entry& e, Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &y = out[0];
  if (y.numel() == 0) return;
  int op = e.op;
  if (op == k::kGelu && a.get_or<std::string_view>("approximate", "none") == "tanh")
    op = k::kGeluTanh;
  double p0 = 0, p1 = 0;  // softplus: beta, threshold (the other ops take none)
  if (op == k::kSoftplus) {
    p0 = a.get_or<double>("beta", 1.0);
    p1 = a.get_or<double>("threshold", 20.0);
  }
  const k::Geometry g = unary_geometry(x, y, e.name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::unary(op, dtype_code(x.dtype()), x.raw_data(), y.raw_data(), g, p0, p1, current_stream(dev));
  launched(dev, e.name);
}

void run_binary(const Entry& e, Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &w = in[1], &y = out[0];
  if (y.numel() == 0) return;
  const double alpha = a.has("alpha") ? a.get<Scalar>("alpha").to<double>() : 1.0;
  const k::Geometry g = binary_geometry(x, w, y, e.name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::binary(e.op, dtype_code(x.dtype()), x.raw_data(), w.raw_data(), y.raw_data(), alpha, g,
            current_stream(dev));
  launched(dev, e.name);
}

void run_compare(const Entry& e, Inputs in, Outputs out) {
  const Tensor &x = in[0], &w = in[1], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = binary_geometry(x, w, y, e.name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::compare(e.op, dtype_code(x.dtype()), x.raw_data(), w.raw_data(), y.raw_data(), g,
             current_stream(dev));
  launched(dev, e.name);
}

// x != 0 as a bool tensor on x's device (x itself when it is bool).
Tensor as_bool(const Tensor& x, const char* op) {
  if (x.dtype() == kBool) return x;
  Tensor b = Tensor::empty(x.shape(), kBool, x.device());
  convert_into(x, b, op);
  return b;
}

template <size_t K>
void logical_kernel(Inputs in, Outputs out, const Attrs&) {
  const std::array<Tensor, 2> args{as_bool(in[0], kLogical[K].name),
                                   as_bool(in[1], kLogical[K].name)};
  run_compare(kLogical[K], Inputs(args), out);
}

// logical_not(x) = (bool(x) == false).
void logical_not_kernel(Inputs in, Outputs out, const Attrs&) {
  if (out[0].numel() == 0) return;
  const Tensor no = Tensor::empty({}, kBool, out[0].device());
  {
    const int dev = no.device().index;
    DeviceGuard guard(dev);
    k::fill(no.raw_data(), 1, 1, 0, current_stream(dev));
    launched(dev, "logical_not");
  }
  const std::array<Tensor, 2> args{as_bool(in[0], "logical_not"), no};
  run_compare(Entry{"logical_not", k::kEq}, Inputs(args), out);
}

// where: a selection, so any dtype of 1, 2, 4 or 8 bytes (complex64 included).
bool where_dtypes(Inputs in, const Attrs&) {
  return in[0].dtype() == kBool && in[1].dtype() == in[2].dtype() && in[1].itemsize() <= 8;
}

void where_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor &c = in[0], &x = in[1], &w = in[2], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = ternary_geometry(c, x, w, y, "where");
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::where(static_cast<int>(y.itemsize()), c.raw_data(), x.raw_data(), w.raw_data(), y.raw_data(),
           g, current_stream(dev));
  launched(dev, "where");
}

template <size_t K>
void unary_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_unary(kUnary[K], in, out, a);
}
template <size_t K>
void binary_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_binary(kBinary[K], in, out, a);
}

template <size_t K>
void compare_kernel(Inputs in, Outputs out, const Attrs&) {
  run_compare(kCompare[K], in, out);
}

template <size_t... K>
void register_compare(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kCompare[K].name, {DeviceType::CUDA, "cuda", &compare_kernel<K>, same_real}), ...);
}
template <size_t... K>
void register_logical(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kLogical[K].name, {DeviceType::CUDA, "cuda", &logical_kernel<K>, same_dtype}), ...);
}
template <size_t... K>
void register_unary(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kUnary[K].name, {DeviceType::CUDA, "cuda", &unary_kernel<K>, all_float}), ...);
}
template <size_t... K>
void register_binary(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kBinary[K].name, {DeviceType::CUDA, "cuda", &binary_kernel<K>, all_float}), ...);
}

}  // namespace

void register_elementwise_kernels(Registry& r) {
  register_unary(r, std::make_index_sequence<kUnary.size()>{});
  register_binary(r, std::make_index_sequence<kBinary.size()>{});
  register_compare(r, std::make_index_sequence<kCompare.size()>{});
  register_logical(r, std::make_index_sequence<kLogical.size()>{});
  r.add_kernel("logical_not", {DeviceType::CUDA, "cuda", logical_not_kernel});
  r.add_kernel("where", {DeviceType::CUDA, "cuda", where_kernel, where_dtypes});
  register_more_elementwise_kernels(r);
  register_complex_kernels(r);
  r.add_kernel("fill", {DeviceType::CUDA, "cuda", fill_kernel});
  r.add_kernel("copy_", {DeviceType::CUDA, "cuda", copy_kernel});
  r.add_kernel("clone", {DeviceType::CUDA, "cuda", clone_kernel});
  r.add_kernel("cast", {DeviceType::CUDA, "cuda", cast_kernel});
}

}  // namespace tessera::cuda

namespace tessera::cuda {

// Called by register_all (src/register_all.cpp) after the CPU kernels.
void register_kernels(Registry& r) {
  register_elementwise_kernels(r);
  register_matmul_kernels(r);
  register_reduce_kernels(r);
  register_pool_kernels(r);
  register_conv_kernels(r);
  register_index_kernels(r);
  register_random_kernels(r);
  register_shape_kernels(r);
  register_sort_kernels(r);
  register_advanced_index_kernels(r);
  register_layer_norm_kernels(r);
}

}  // namespace tessera::cuda
