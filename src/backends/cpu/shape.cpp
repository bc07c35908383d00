// CPU kernels of the shape family. Each op is a table move (index_tables.h): the tables say
// where every output element comes from, so flips, rolls, repeats and pads share one loop.
#include <algorithm>
#include <cstring>

#include "index_tables.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu {
namespace {

int64_t item(const Tensor& t) { return static_cast<int64_t>(t.itemsize()); }

void cat_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor& o = out[0];
  const int64_t d = wrap_dim(a.get<int64_t>("dim"), o.dim(), "cat");
  int64_t off = 0;
  for (const Tensor& x : in) {
    char* base = static_cast<char*>(o.raw_data()) + off * o.strides()[d] * item(o);
    table_move(x.shape(), strided_side(base, x.shape(), o.strides(), item(o)), strided_side(x),
               item(o));
    off += x.shape()[d];
  }
}

void flip_kernel(Inputs in, Outputs out, const Attrs& a) {
  TableSide s = strided_side(in[0]);
  for (int64_t d : a.get<std::vector<int64_t>>("dims"))
    std::reverse(s.tables[d].begin(), s.tables[d].end());
  table_move(out[0].shape(), strided_side(out[0]), s, item(out[0]));
}

void roll_kernel(Inputs in, Outputs out, const Attrs& a) {
  TableSide s = strided_side(in[0]);
  const auto &shifts = a.get<std::vector<int64_t>>("shifts"),
             &dims = a.get<std::vector<int64_t>>("dims");
  for (size_t k = 0; k < dims.size(); ++k) {  // out[i] = in[i - shift], applied once per entry
    auto& t = s.tables[dims[k]];
    const auto n = static_cast<int64_t>(t.size());
    if (n == 0) continue;
    const int64_t sh = ((shifts[k] % n) + n) % n;
    std::rotate(t.begin(), t.begin() + (n - sh) % n, t.end());
  }
  table_move(out[0].shape(), strided_side(out[0]), s, item(out[0]));
}

void repeat_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor &x = in[0], &o = out[0];
  TableSide s = strided_side(x);
  for (int64_t d = 0; d < x.dim(); ++d) {
    const std::vector<int64_t> t = s.tables[d];
    s.tables[d].resize(o.shape()[d]);
    for (int64_t i = 0; i < o.shape()[d]; ++i) s.tables[d][i] = t[i % x.shape()[d]];
  }
  table_move(o.shape(), strided_side(o), s, item(o));
}

// Source coordinate of padded coordinate i (already shifted by the left pad) in a dim of size
// n, or -1 for the fill value; indexed like kPadModes in ops/shape.cpp.
using PadMap = int64_t (*)(int64_t i, int64_t n);
constexpr std::array<PadMap, 3> kPadMaps = {
    [](int64_t i, int64_t n) { return i >= 0 && i < n ? i : int64_t{-1}; },  // constant
    [](int64_t i, int64_t n) { return i < 0    ? -i
                                      : i >= n ? 2 * (n - 1) - i
                                               : i; },  // reflect
    [](int64_t i, int64_t n) { return std::clamp<int64_t>(i, 0, n - 1); },           // replicate
};

void pad_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &o = out[0];
  const auto& pads = a.get<std::vector<int64_t>>("pads");
  const PadMap map = kPadMaps.at(static_cast<size_t>(a.get<int64_t>("mode")));
  TableSide s = strided_side(x);
  for (int64_t d = 0; d < x.dim(); ++d) {
    const std::vector<int64_t> t = s.tables[d];
    s.tables[d].resize(o.shape()[d]);
    for (int64_t i = 0; i < o.shape()[d]; ++i) {
      const int64_t src = map(i - pads[2 * d], x.shape()[d]);
      s.tables[d][i] = src < 0 ? kFillOffset : t[src];
    }
  }
  const auto fill = fill_bytes(o.dtype(), Scalar(a.get<double>("value")));
  table_move(o.shape(), strided_side(o), s, item(o), true, fill.data());
}

// Copies x, then zeroes (all-zero bytes is 0 in every dtype) the columns [lo(i), hi(i)) of
// each row i of every matrix.
template <class Range>
void tri_kernel(Inputs in, Outputs out, Range range) {
  const Tensor& o = out[0];
  strided_copy(in[0], o);
  const int64_t rows = o.shape()[o.dim() - 2], cols = o.shape()[o.dim() - 1];
  if (o.numel() == 0) return;
  const int64_t mats = o.numel() / (rows * cols), isz = item(o);
  char* base = static_cast<char*>(o.raw_data());
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i) {
      auto [lo, hi] = range(i, cols);
      lo = std::clamp<int64_t>(lo, 0, cols);
      hi = std::clamp<int64_t>(hi, 0, cols);
      if (lo < hi) std::memset(base + ((m * rows + i) * cols + lo) * isz, 0, (hi - lo) * isz);
    }
}

void tril_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t k = a.get<int64_t>("diagonal");  // keeps j <= i + k
  tri_kernel(in, out,
             [k](int64_t i, int64_t cols) { return std::pair<int64_t, int64_t>(i + k + 1, cols); });
}
void triu_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t k = a.get<int64_t>("diagonal");  // keeps j >= i + k
  tri_kernel(in, out, [k](int64_t i, int64_t) { return std::pair<int64_t, int64_t>(0, i + k); });
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
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
}

}  // namespace tessera::cpu
