// CUDA kernels of the shape primitives that copy data: cat (a strided copy of each input into
// its slice of the output) and flip, roll, repeat, pad, tril, triu (one gather in shape.cu,
// each dim of the output mapped to its source coordinate). Every dtype, by element width.
// Host code only: the attributes were validated by the op layer (ops/shape.cpp) and mean what
// they mean to the CPU kernels (cpu/shape.cpp).
#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "backends/cpu/index_tables.h"
#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/shape_kernels.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

using Ints = std::vector<int64_t>;

struct DimMap {
  int32_t mode = k::kKeep;
  int64_t param = 0;
};

struct MapDim {
  int64_t size, out_stride, src_stride, src_size, param;
  int32_t mode;
  bool pinned;  // tril / triu's dims: neither dropped nor merged
};

// A map that moves nothing is a plain copy of its dim.
bool is_keep(const MapDim& d) {
  switch (d.mode) {
    case k::kFlip:
      return d.size <= 1;
    case k::kRoll:
      return d.param == 0;
    case k::kRepeat:
      return d.size == d.src_size;
    case k::kPadConstant:
    case k::kPadReflect:
    case k::kPadReplicate:
      return d.param == 0 && d.size == d.src_size;
    default:
      return true;
  }
}

// The map of y = move(x): dims of size 1 that keep are dropped and neighbours that both keep
// and walk memory uniformly are merged (tril / triu's last two dims stay as they are).
k::MoveMap make_map(const Tensor& x, const Tensor& y, const std::vector<DimMap>& maps, int32_t tri,
                    const char* op) {
  std::vector<MapDim> dims;
  const int64_t nd = y.dim();
  for (int64_t d = 0; d < nd; ++d) {
    const auto u = static_cast<size_t>(d);
    MapDim m{y.shape()[u],
             y.strides()[u],
             x.strides()[u],
             x.shape()[u],
             maps[u].param,
             maps[u].mode,
             tri != k::kNoTri && d >= nd - 2};
    if (is_keep(m)) m.mode = k::kKeep, m.param = 0;
    if (m.mode == k::kKeep && !m.pinned && m.size == 1) continue;
    if (!dims.empty()) {
      MapDim& p = dims.back();
      if (m.mode == k::kKeep && p.mode == k::kKeep && !m.pinned && !p.pinned &&
          p.out_stride == m.out_stride * m.size && p.src_stride == m.src_stride * m.size) {
        p.size *= m.size, p.src_size = p.size;
        p.out_stride = m.out_stride, p.src_stride = m.src_stride;
        continue;
      }
    }
    dims.push_back(m);
  }
  if (dims.size() > static_cast<size_t>(k::kMaxDims))
    fail<NotImplementedError>(op, "no CUDA kernel for more than {} dims that cannot be merged",
                              k::kMaxDims);
  k::MoveMap map;
  map.ndim = static_cast<int>(dims.size());
  map.numel = y.numel();
  map.tri = tri;
  for (size_t i = 0; i < dims.size(); ++i) {
    map.size[i] = dims[i].size, map.out_stride[i] = dims[i].out_stride;
    map.src_stride[i] = dims[i].src_stride, map.src_size[i] = dims[i].src_size;
    map.param[i] = dims[i].param, map.mode[i] = dims[i].mode;
  }
  return map;
}

void run_move(const Tensor& x, const Tensor& y, const k::MoveMap& m, const char* op) {
  if (y.numel() == 0) return;
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::move(static_cast<int>(y.itemsize()), x.raw_data(), y.raw_data(), m, current_stream(dev));
  launched(dev, op);
}

// ---- cat: each input copied into its slice of the output ------------------------------------

void cat_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor& o = out[0];
  if (o.numel() == 0) return;
  const int64_t d = wrap_dim(a.get<int64_t>("dim"), o.dim(), "cat");
  const int width = static_cast<int>(o.itemsize());
  const int dev = o.device().index;
  DeviceGuard guard(dev);
  int64_t at = 0;
  for (const Tensor& x : in) {
    char* dst = static_cast<char*>(o.raw_data()) + at * o.strides()[d] * width;
    at += x.shape()[d];
    if (x.numel() == 0) continue;
    const std::array<const int64_t*, 2> strides{o.strides().data(), x.strides().data()};
    const std::array<const void*, 2> ptrs{dst, x.raw_data()};
    const k::Geometry g = make_geometry(x.shape(), strides, ptrs, "cat");
    k::copy(width, x.raw_data(), dst, g, current_stream(dev));
    launched(dev, "cat");
  }
}

// ---- flip, roll, repeat ---------------------------------------------------------------------

void flip_kernel(Inputs in, Outputs out, const Attrs& a) {
  std::vector<DimMap> maps(static_cast<size_t>(in[0].dim()));
  for (int64_t d : a.get<Ints>("dims")) maps[static_cast<size_t>(d)].mode = k::kFlip;
  run_move(in[0], out[0], make_map(in[0], out[0], maps, k::kNoTri, "flip"), "flip");
}

// out[i] = in[i - shift]; several shifts of one dim add up (mod the dim's size).
void roll_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  std::vector<DimMap> maps(static_cast<size_t>(x.dim()));
  const Ints &shifts = a.get<Ints>("shifts"), &dims = a.get<Ints>("dims");
  for (size_t k = 0; k < dims.size(); ++k) {
    const int64_t n = x.shape()[static_cast<size_t>(dims[k])];
    if (n == 0) continue;
    DimMap& m = maps[static_cast<size_t>(dims[k])];
    m.mode = k::kRoll;
    m.param = (m.param + ((shifts[k] % n) + n) % n) % n;
  }
  run_move(x, out[0], make_map(x, out[0], maps, k::kNoTri, "roll"), "roll");
}

void repeat_kernel(Inputs in, Outputs out, const Attrs&) {
  const std::vector<DimMap> maps(static_cast<size_t>(in[0].dim()), DimMap{k::kRepeat, 0});
  run_move(in[0], out[0], make_map(in[0], out[0], maps, k::kNoTri, "repeat"), "repeat");
}

// ---- pad ------------------------------------------------------------------------------------

// Indexed by the pad attribute's mode code (kPadModes in ops/shape.cpp).
constexpr std::array<int32_t, 3> kPadModes = {k::kPadConstant, k::kPadReflect, k::kPadReplicate};

void pad_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &y = out[0];
  const Ints& pads = a.get<Ints>("pads");
  const int32_t mode = kPadModes.at(static_cast<size_t>(a.get<int64_t>("mode")));
  std::vector<DimMap> maps(static_cast<size_t>(x.dim()));
  for (size_t d = 0; d < maps.size(); ++d) maps[d] = {mode, pads[2 * d]};
  k::MoveMap m = make_map(x, y, maps, k::kNoTri, "pad");
  // The CPU's bytes of the fill value (fill_bytes), so the constant is the same bits.
  const auto bytes = cpu::fill_bytes(y.dtype(), Scalar(a.get<double>("value")));
  std::memcpy(&m.fill, bytes.data(), y.itemsize());
  run_move(x, y, m, "pad");
}

// ---- tril, triu -----------------------------------------------------------------------------

void tri_kernel(Inputs in, Outputs out, const Attrs& a, int32_t tri, const char* op) {
  const Tensor &x = in[0], &y = out[0];
  k::MoveMap m = make_map(x, y, std::vector<DimMap>(static_cast<size_t>(x.dim())), tri, op);
  // Beyond these bounds every row keeps all or none of its columns: the same result, no
  // overflow of row + diagonal.
  const int64_t rows = y.shape()[y.shape().size() - 2], cols = y.shape().back();
  m.diagonal = std::clamp<int64_t>(a.get<int64_t>("diagonal"), -rows - 1, cols + 1);
  run_move(x, y, m, op);
}
void tril_kernel(Inputs in, Outputs out, const Attrs& a) {
  tri_kernel(in, out, a, k::kTril, "tril");
}
void triu_kernel(Inputs in, Outputs out, const Attrs& a) {
  tri_kernel(in, out, a, k::kTriu, "triu");
}

}  // namespace

void register_shape_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"cat", cat_kernel},
                         {"flip", flip_kernel},
                         {"roll", roll_kernel},
                         {"repeat", repeat_kernel},
                         {"pad", pad_kernel},
                         {"tril", tril_kernel},
                         {"triu", triu_kernel}})
    r.add_kernel(e.name, {DeviceType::CUDA, "cuda", e.fn});
}

}  // namespace tessera::cuda
