// Copy kernels: clone (to contiguous), cast (dtype conversion), copy_ (into an existing view,
// broadcasting the source).
#include <cstring>

#include "backends/cpu/convert_simd.h"
#include "loops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu {

Strides broadcast_strides(const Tensor& t, const Shape& out, std::string_view op) {
  const auto nd = static_cast<int64_t>(out.size()), td = t.dim();
  if (td > nd)
    fail<ShapeError>(op, "cannot broadcast shape {} to {}", shape_str(t.shape()), shape_str(out));
  Strides s(out.size(), 0);
  for (int64_t i = 0; i < td; ++i) {
    int64_t o = nd - td + i;
    int64_t sz = t.shape()[i];
    if (sz == out[o])
      s[o] = t.strides()[i];
    else if (sz != 1)
      fail<ShapeError>(op, "cannot broadcast shape {} to {}", shape_str(t.shape()), shape_str(out));
  }
  return s;
}

namespace {

// dst[...] = convert(src[...]) over dst's shape, src broadcast to it.
void convert_into(const Tensor& src, const Tensor& dst, std::string_view op) {
  Strides ss = broadcast_strides(src, dst.shape(), op);
  const bool same = src.dtype() == dst.dtype();
  if (same && src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape()) {
    const int64_t n = static_cast<int64_t>(dst.nbytes());
    auto* d = static_cast<char*>(dst.raw_data());
    const auto* s = static_cast<const char*>(src.raw_data());
    parallel_for(n, int64_t{1} << 20,
                 [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, e - b); });
    return;
  }
  // float32/float64 <-> float16/bfloat16 on contiguous rows: the Highway converters
  // (convert_simd.cpp), bitwise equal to the scalar loop below.
  if (src.is_contiguous() && dst.is_contiguous() && src.shape() == dst.shape()) {
    if (ConvertRowFn fn = simd_convert_fn(src.dtype(), dst.dtype())) {
      const auto* s = static_cast<const char*>(src.raw_data());
      auto* d = static_cast<char*>(dst.raw_data());
      const auto si = static_cast<int64_t>(src.itemsize()),
                 di = static_cast<int64_t>(dst.itemsize());
      parallel_for(dst.numel(), kParallelGrain * 4,
                   [&](int64_t b, int64_t e) { fn(s + b * si, d + b * di, e - b); });
      return;
    }
  }
  auto plan = make_plan<2>(
      dst.shape(), {static_cast<char*>(dst.raw_data()), static_cast<char*>(src.raw_data())},
      {dst.strides().data(), ss.data()},
      {static_cast<int64_t>(dst.itemsize()), static_cast<int64_t>(src.itemsize())}, op);
  visit_dtype(dst.dtype(), [&](auto dt) {
    using D = typename decltype(dt)::type;
    visit_dtype(src.dtype(), [&](auto st) {
      using S = typename decltype(st)::type;
      for_each_row(plan, [](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          *reinterpret_cast<D*>(p[0] + i * s[0]) =
              convert<D>(*reinterpret_cast<const S*>(p[1] + i * s[1]));
      });
    });
  });
}

void clone_kernel(Inputs in, Outputs out, const Attrs&) { convert_into(in[0], out[0], "clone"); }
void cast_kernel(Inputs in, Outputs out, const Attrs&) { convert_into(in[0], out[0], "cast"); }
void copy_kernel(Inputs in, Outputs out, const Attrs&) { convert_into(in[1], out[0], "copy_"); }

}  // namespace

void register_copy_kernels(Registry& r) {
  r.add_kernel("clone", {DeviceType::CPU, "builtin", clone_kernel});
  r.add_kernel("cast", {DeviceType::CPU, "builtin", cast_kernel});
  r.add_kernel("copy_", {DeviceType::CPU, "builtin", copy_kernel});
}

}  // namespace tessera::cpu
