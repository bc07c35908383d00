// Copy primitives: clone, cast, copy_ (in place).
#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

std::vector<TensorMeta> same_meta(Inputs in, const Attrs&) {
  return {{in[0].shape(), in[0].dtype()}};
}
std::vector<TensorMeta> cast_meta(Inputs in, const Attrs& a) {
  return {{in[0].shape(), a.get<DType>("dtype")}};
}
std::vector<TensorMeta> copy_meta(Inputs in, const Attrs&) {
  const Tensor &dst = in[0], &src = in[1];
  // Validates broadcasting src -> dst (trailing alignment, size 1 or equal).
  if (src.dim() > dst.dim())
    fail<ShapeError>("copy_", "source shape {} does not broadcast to destination {}",
                     shape_str(src.shape()), shape_str(dst.shape()));
  for (int64_t i = 1; i <= src.dim(); ++i) {
    int64_t s = src.shape()[src.dim() - i], d = dst.shape()[dst.dim() - i];
    if (s != d && s != 1)
      fail<ShapeError>("copy_", "source shape {} does not broadcast to destination {}",
                       shape_str(src.shape()), shape_str(dst.shape()));
  }
  return {{dst.shape(), dst.dtype()}};
}
Cost copy_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  return {0, static_cast<double>(in.back().nbytes() + out[0].nbytes())};
}

}  // namespace

void register_copy_prims(Registry& r) {
  r.define({.name = "clone", .kind = PrimKind::Copy, .infer = same_meta, .cost = copy_cost});
  r.define({.name = "cast", .kind = PrimKind::Copy, .infer = cast_meta, .cost = copy_cost});
  r.define({.name = "copy_",
            .kind = PrimKind::Copy,
            .traits = kMutatesInput0 | kCrossDevice,
            .infer = copy_meta,
            .cost = copy_cost});
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  static const Primitive& p = prim("cast");
  return dispatch1(p, {x}, {{"dtype", dtype}});
}

}  // namespace tessera
