// CUDA kernels of the reductions (sum, mean, amax, amin of floats over any set of dims; argmax,
// argmin; any, all) and of softmax / log_softmax along any dim, for the float dtypes (argmax,
// argmin: every real dtype; any, all: complex64 too). Host code only: it splits the input's dims
// into kept (outer) and reduced (inner) geometries, or lanes for softmax, and calls the launchers
// of reduce.cu, argreduce.cu, reduce_int.cu and softmax.cu on the current stream. The other
// reductions and the scans register from reduce_more.cpp and scan.cpp.
#include <array>
#include <cmath>
#include <limits>

#include "backends/cuda/common.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/reduce_host.h"
#include "backends/cuda/reduce_more.h"
#include "ops/reduce_dims.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {

Tensor reduce_workspace(const k::ReducePlan& p, int64_t bytes, Device dev) {
  return p.work > 0 ? Tensor::empty({p.work * bytes}, kUInt8, dev) : Tensor();
}

namespace {
k::Geometry geometry_of(const Shape& shape, const Strides& strides, const void* p, const char* op) {
  const std::array<const int64_t*, 1> s{strides.data()};
  const std::array<const void*, 1> ptrs{p};
  return make_geometry(shape, s, ptrs, op);
}
}  // namespace

std::pair<k::Geometry, k::Geometry> split_dims(const Tensor& x, const Attrs& a, const char* name) {
  const std::vector<bool> mask =
      detail::reduce_mask(x.dim(), a.get_or<std::vector<int64_t>>("dims", {}), name);
  Shape os, is;
  Strides ost, ist;
  for (size_t d = 0; d < mask.size(); ++d) {
    (mask[d] ? is : os).push_back(x.shape()[d]);
    (mask[d] ? ist : ost).push_back(x.strides()[d]);
  }
  return {geometry_of(os, ost, x.raw_data(), name), geometry_of(is, ist, x.raw_data(), name)};
}

Lanes lanes_along(const Tensor& x, const Tensor& out, const Attrs& a, const char* name) {
  Lanes l;
  Shape shape = x.shape();
  if (x.dim() > 0) {
    const auto d = static_cast<size_t>(wrap_dim(a.get<int64_t>("dim"), x.dim(), name));
    l.n = shape[d];
    l.in_stride = x.strides()[d];
    l.out_stride = out.strides()[d];
    shape[d] = 1;  // the geometry walks lane starts
  }
  const std::array<const int64_t*, 2> strides{out.strides().data(), x.strides().data()};
  const std::array<const void*, 2> ptrs{out.raw_data(), x.raw_data()};
  l.starts = make_geometry(shape, strides, ptrs, name);
  return l;
}

Tensor staging(const Tensor& y, DType dt) {
  return y.is_contiguous() && y.dtype() == dt ? y : Tensor::empty(y.shape(), dt, y.device());
}
void done_into(const Tensor& dst, const Tensor& y, const char* name) {
  if (dst.raw_data() != y.raw_data()) convert_into(dst, y, name);
}

namespace {

bool float_input(Inputs in, const Attrs&) { return k::float_code(dtype_code(in[0].dtype())); }
bool real_input(Inputs in, const Attrs&) { return dtype_code(in[0].dtype()) >= 0; }
// any / all take complex64 too, as on the CPU: bool(z) is either part nonzero (the conversion).
bool real_or_complex_input(Inputs in, const Attrs& a) {
  return real_input(in, a) || in[0].dtype() == kComplex64;
}

void run_reduce(const char* name, int op, bool mean, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const auto [outer, inner] = split_dims(x, a, name);
  const int64_t n_out = outer.numel, n_red = inner.numel;
  // mean of nothing is 0 * inf = NaN, as on the CPU.
  const double scale = mean ? 1.0 / static_cast<double>(n_red) : 1.0;
  const k::ReducePlan plan = k::plan_reduce(outer, inner);
  const int code = dtype_code(x.dtype());
  const Tensor work = reduce_workspace(plan, code == k::kF64 ? 8 : 4, y.device());
  // The kernel writes row o at out[o]: a strided output goes through a packed temporary.
  const Tensor dst = y.is_contiguous() ? y : Tensor::empty(y.shape(), y.dtype(), y.device());
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::reduce(op, code, x.raw_data(), dst.raw_data(), outer, inner, n_out, n_red, scale, plan,
            work_ptr(work), current_stream(dev));
  launched(dev, name);
  if (!y.is_contiguous()) convert_into(dst, y, name);
}

void sum_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_reduce("sum", k::kRSum, false, in, out, a);
}
void mean_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_reduce("mean", k::kRSum, true, in, out, a);
}
void amax_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_reduce("amax", k::kRMax, false, in, out, a);
}
void amin_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_reduce("amin", k::kRMin, false, in, out, a);
}

void run_softmax(const char* name, bool log, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const Lanes l = lanes_along(x, y, a, name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::softmax(log, dtype_code(x.dtype()), x.raw_data(), y.raw_data(), l.starts, l.n, l.in_stride,
             l.out_stride, current_stream(dev));
  launched(dev, name);
}

void softmax_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_softmax("softmax", false, in, out, a);
}
void log_softmax_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_softmax("log_softmax", true, in, out, a);
}

// argmax / argmin: the reduced dims (one, or all) numbered row-major, an int64 output.
void run_arg(const char* name, bool max, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const auto [outer, inner] = split_dims(x, a, name);
  TS_CHECK(inner.numel > 0, IndexError, name, "cannot reduce over an empty dim");
  const Tensor dst = y.is_contiguous() ? y : Tensor::empty(y.shape(), kInt64, y.device());
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::arg_reduce(max, dtype_code(x.dtype()), x.raw_data(), dst.data_ptr<int64_t>(), outer, inner,
                outer.numel, inner.numel, current_stream(dev));
  launched(dev, name);
  if (!y.is_contiguous()) convert_into(dst, y, name);
}
void argmax_kernel(Inputs in, Outputs out, const Attrs& a) { run_arg("argmax", true, in, out, a); }
void argmin_kernel(Inputs in, Outputs out, const Attrs& a) { run_arg("argmin", false, in, out, a); }

// any / all of any real dtype: bool(x) (x != 0, NaN is true), reduced as bytes with the integer
// max / min; an empty reduction gives false / true (the identities of max / min over 0 / 1).
void run_any_all(const char* name, bool any, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const int dev = y.device().index;
  if (x.numel() == 0) {
    DeviceGuard guard(dev);
    k::fill(y.raw_data(), y.numel(), 1, any ? 0 : 1, current_stream(dev));
    launched(dev, name);
    return;
  }
  Tensor b = x;
  if (x.dtype() != kBool) {
    b = Tensor::empty(x.shape(), kBool, x.device());
    convert_into(x, b, name);
  }
  const auto [outer, inner] = split_dims(b, a, name);
  const k::ReducePlan plan = k::plan_reduce(outer, inner);
  const Tensor work = reduce_workspace(plan, k::kPartBytes, y.device());
  const Tensor dst = staging(y, kBool);  // all / any of uint8 give uint8 (0 or 1)
  {
    DeviceGuard guard(dev);
    k::reduce_int(any ? k::kIMax : k::kIMin, k::kBool, b.raw_data(), dst.raw_data(), outer, inner,
                  outer.numel, inner.numel, plan, work_ptr(work), current_stream(dev));
    launched(dev, name);
  }
  done_into(dst, y, name);
}
void any_kernel(Inputs in, Outputs out, const Attrs& a) { run_any_all("any", true, in, out, a); }
void all_kernel(Inputs in, Outputs out, const Attrs& a) { run_any_all("all", false, in, out, a); }

struct Entry {
  const char* name;
  KernelFn fn;
};
constexpr std::array kReduce = {
    Entry{"sum", sum_kernel},         Entry{"mean", mean_kernel},
    Entry{"amax", amax_kernel},       Entry{"amin", amin_kernel},
    Entry{"softmax", softmax_kernel}, Entry{"log_softmax", log_softmax_kernel},
};

}  // namespace

void register_reduce_kernels(Registry& r) {
  for (const Entry& e : kReduce)
    r.add_kernel(e.name, {DeviceType::CUDA, "cuda", e.fn, float_input});
  r.add_kernel("argmax", {DeviceType::CUDA, "cuda", argmax_kernel, real_input});
  r.add_kernel("argmin", {DeviceType::CUDA, "cuda", argmin_kernel, real_input});
  r.add_kernel("any", {DeviceType::CUDA, "cuda", any_kernel, real_or_complex_input});
  r.add_kernel("all", {DeviceType::CUDA, "cuda", all_kernel, real_or_complex_input});
  register_reduce_more_kernels(r);
  register_scan_kernels(r);
  register_reduce_complex_kernels(r);
}

}  // namespace tessera::cuda
