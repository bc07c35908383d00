// CPU kernels of the indexing family, plus the table-move engine (index_tables.h) that the
// shape kernels share. Values are only moved here, so kernels dispatch on item size; only the
// accumulating scatters compute, per dtype.
#include <algorithm>
#include <cstring>

#include "index_tables.h"
#include "loops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu {

// ---- the table engine -------------------------------------------------------------------------

TableSide strided_side(char* base, const Shape& shape, const Strides& strides, int64_t itemsize) {
  TableSide s{base, std::vector<std::vector<int64_t>>(shape.size())};
  for (size_t d = 0; d < shape.size(); ++d) {
    s.tables[d].resize(shape[d]);
    for (int64_t i = 0; i < shape[d]; ++i) s.tables[d][i] = i * strides[d] * itemsize;
  }
  return s;
}

TableSide strided_side(const Tensor& t) {
  return strided_side(static_cast<char*>(t.raw_data()), t.shape(), t.strides(),
                      static_cast<int64_t>(t.itemsize()));
}

std::vector<int64_t> flat_offsets(const Shape& shape, const Strides& strides, int64_t itemsize) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<int64_t> out(n);
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t off = 0;
  for (int64_t k = 0; k < n; ++k) {
    out[k] = off * itemsize;
    for (size_t d = shape.size(); d-- > 0;) {  // odometer step, innermost first
      off += strides[d];
      if (++idx[d] < shape[d]) break;
      off -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<int64_t> index_offsets(const Tensor& idx, int64_t size, int64_t stride_bytes,
                                   bool allow_negative, std::string_view op, int64_t dim) {
  const int64_t* p = idx.data_ptr<int64_t>();
  const int64_t n = idx.numel();
  std::vector<int64_t> out(n);
  for (int64_t k = 0; k < n; ++k) {
    int64_t v = p[k];
    if (v < 0 && allow_negative) v += size;
    if (v < 0 || v >= size)
      fail<IndexError>(op, "index {} is out of bounds for dim {} with size {}", p[k], dim, size);
    out[k] = v * stride_bytes;
  }
  return out;
}

namespace {

// A 0-d move is a 1-element move over one dim whose tables are {0}.
struct Normalized {
  Shape shape;
  const TableSide *dst, *src;
  TableSide d0, s0;
};
void normalize(Normalized& n, const Shape& shape, const TableSide& dst, const TableSide& src) {
  n.shape = shape;
  n.dst = &dst;
  n.src = &src;
  if (!shape.empty()) return;
  n.shape = {1};
  n.d0 = {dst.base, {{0}}};
  n.s0 = {src.base, {{0}}};
  n.dst = &n.d0;
  n.src = &n.s0;
}

// The byte offsets of row r (all dims but the last) on each side; false when the source row
// is a fill (an outer dim points into constant padding).
bool row_offsets(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t r,
                 int64_t& doff, int64_t& soff) {
  doff = soff = 0;
  bool filled = false;
  for (size_t d = shape.size() - 1; d-- > 0;) {
    const int64_t i = r % shape[d];
    r /= shape[d];
    doff += dst.tables[d][i];
    const int64_t s = src.tables[d][i];
    if (s == kFillOffset)
      filled = true;
    else
      soff += s;
  }
  return !filled;
}

// Calls f(dst_offset, src_offset) for each element of rows [r0, r1) of shape.
template <class F>
void for_each_pair(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t r0,
                   int64_t r1, F&& f) {
  const size_t last = shape.size() - 1;
  const auto &dl = dst.tables[last], &sl = src.tables[last];
  for (int64_t r = r0; r < r1; ++r) {
    int64_t doff, soff;
    const bool fill_row = !row_offsets(shape, dst, src, r, doff, soff);
    for (int64_t k = 0; k < shape[last]; ++k)
      f(doff + dl[k], fill_row || sl[k] == kFillOffset ? kFillOffset : soff + sl[k]);
  }
}

// True when a last-dim table is {0, itemsize, 2 * itemsize, ...}: the row is one dense run.
bool dense_row(const std::vector<int64_t>& table, int64_t itemsize) {
  for (size_t k = 0; k < table.size(); ++k)
    if (table[k] != static_cast<int64_t>(k) * itemsize) return false;
  return true;
}

// Gathered rows (a shuffled batch from a dataset) start at unpredictable addresses, so each
// row's first lines miss the hardware prefetcher; reading kPrefetchRows rows ahead hides that
// latency (256 rows of 3 KB from a 25 MB dataset: about 15% faster on 2 cores, 20% on one).
// Rows under 256 bytes are left to the hardware; past 4 KB the row's own stream has trained it.
constexpr int64_t kPrefetchRows = 4;
constexpr int64_t kCacheLine = 64;

// Copies rows [r0, r1) of row_bytes each. at(r, doff, soff) gives row r's byte offsets and
// returns false when its source is the fill value, which fill_row(doff) then writes. memmove:
// an in-place write such as index_put may read its own storage.
template <class At, class FillRow>
void copy_rows(char* dst, const char* src, int64_t r0, int64_t r1, int64_t row_bytes, At&& at,
               FillRow&& fill_row) {
  const int64_t prefetch = row_bytes < 256 ? 0 : std::min<int64_t>(row_bytes, 4096);
  int64_t doff, soff;
  // The prefetch loop stays inline: GCC drops calls to a helper whose only effect is
  // __builtin_prefetch, as if it did nothing.
  for (int64_t r = r0; r < r1; ++r) {
    for (int64_t a = r == r0 ? r : r + kPrefetchRows; prefetch > 0 && a <= r + kPrefetchRows; ++a)
      if (a < r1 && at(a, doff, soff))
        for (int64_t o = 0; o < prefetch; o += kCacheLine) __builtin_prefetch(src + soff + o);
    if (at(r, doff, soff))
      std::memmove(dst + doff, src + soff, static_cast<size_t>(row_bytes));
    else
      fill_row(doff);
  }
}

// Rows [r0, r1) when both sides' rows are dense (index_select of rows, contiguous slices,
// cat): one memmove per row instead of one memcpy per element.
void copy_dense_rows(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t r0,
                     int64_t r1, int64_t itemsize, const void* fill) {
  const int64_t n = shape.back();
  copy_rows(
      dst.base, src.base, r0, r1, n * itemsize,
      [&](int64_t r, int64_t& doff, int64_t& soff) {
        return row_offsets(shape, dst, src, r, doff, soff);
      },
      [&](int64_t doff) {
        for (int64_t k = 0; k < n; ++k)
          std::memcpy(dst.base + doff + k * itemsize, fill, static_cast<size_t>(itemsize));
      });
}

template <size_t N>
void move_rows(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t r0,
               int64_t r1, const void* fill) {
  for_each_pair(shape, dst, src, r0, r1, [&](int64_t d, int64_t s) {
    std::memcpy(dst.base + d, s == kFillOffset ? fill : src.base + s, N);
  });
}

using MoveRowsFn = void (*)(const Shape&, const TableSide&, const TableSide&, int64_t, int64_t,
                            const void*);
// Indexed by log2(itemsize): every dtype is 1, 2, 4 or 8 bytes.
constexpr std::array<MoveRowsFn, 4> kMoveRows = {move_rows<1>, move_rows<2>, move_rows<4>,
                                                 move_rows<8>};

MoveRowsFn move_fn(int64_t itemsize) {
  for (size_t k = 0; k < kMoveRows.size(); ++k)
    if (int64_t{1} << k == itemsize) return kMoveRows[k];
  fail<DTypeError>("table_move", "unsupported item size {}", itemsize);
}

template <class T>
T add_values(T a, T b) {
  if constexpr (std::is_same_v<T, bool>)
    return a || b;
  else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
    return T(static_cast<float>(a) + static_cast<float>(b));
  // Integer sums wrap like PyTorch's (unsigned arithmetic avoids signed-overflow UB).
  else if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  else
    return a + b;
}

}  // namespace

void table_move(const Shape& shape, const TableSide& dst, const TableSide& src, int64_t itemsize,
                bool parallel, const void* fill) {
  Normalized n;
  normalize(n, shape, dst, src);
  int64_t numel = 1;
  for (int64_t s : n.shape) numel *= s;
  if (numel == 0) return;
  const MoveRowsFn fn = move_fn(itemsize);
  const int64_t row = n.shape.back(), rows = numel / row;
  const bool dense = row > 1 && dense_row(n.dst->tables.back(), itemsize) &&
                     dense_row(n.src->tables.back(), itemsize);
  auto move = [&](int64_t b, int64_t e) {
    if (dense)
      copy_dense_rows(n.shape, *n.dst, *n.src, b, e, itemsize, fill);
    else
      fn(n.shape, *n.dst, *n.src, b, e, fill);
  };
  if (!parallel || numel <= kParallelGrain) {
    move(0, rows);
    return;
  }
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / row), move);
}

void table_accumulate(const Shape& shape, const TableSide& dst, const TableSide& src, DType dtype) {
  Normalized n;
  normalize(n, shape, dst, src);
  int64_t numel = 1;
  for (int64_t s : n.shape) numel *= s;
  if (numel == 0) return;
  visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    for_each_pair(n.shape, *n.dst, *n.src, 0, numel / n.shape.back(), [&](int64_t d, int64_t s) {
      T a, b;
      std::memcpy(&a, n.dst->base + d, sizeof(T));
      std::memcpy(&b, n.src->base + s, sizeof(T));
      a = add_values(a, b);
      std::memcpy(n.dst->base + d, &a, sizeof(T));
    });
  });
}

void strided_copy(const Tensor& src, const Tensor& dst) {
  if (src.is_contiguous() && dst.is_contiguous()) {
    if (dst.nbytes() > 0) std::memmove(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  table_move(dst.shape(), strided_side(dst), strided_side(src),
             static_cast<int64_t>(dst.itemsize()));
}

std::array<char, 16> fill_bytes(DType dtype, const Scalar& value) {
  std::array<char, 16> out{};
  visit_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T v = value.to<T>();
    std::memcpy(out.data(), &v, sizeof(T));
  });
  return out;
}

// ---- indexing kernels ---------------------------------------------------------------------------

namespace {

int64_t item(const Tensor& t) { return static_cast<int64_t>(t.itemsize()); }

// index_select of a contiguous x into a contiguous out as whole blocks: out[o, k, ...] =
// x[o, idx[k], ...], each block the dims after d. No offset tables: this is a data loader's
// batch gather, paid once per step.
void gather_blocks(const Tensor& x, int64_t d, const Tensor& idx, const Tensor& out) {
  int64_t outer = 1, inner = 1;
  for (int64_t j = 0; j < d; ++j) outer *= x.shape()[j];
  for (int64_t j = d + 1; j < x.dim(); ++j) inner *= x.shape()[j];
  const int64_t block = inner * item(x), n = idx.numel(), rows = outer * n;
  const std::vector<int64_t> offsets =  // checks every index, even when nothing is copied
      index_offsets(idx, x.shape()[d], block, false, "index_select", d);
  if (rows == 0 || block == 0) return;
  const int64_t outer_bytes = x.shape()[d] * block;
  const auto* src = static_cast<const char*>(x.raw_data());
  auto* dst = static_cast<char*>(out.raw_data());
  auto move = [&](int64_t r0, int64_t r1) {
    copy_rows(
        dst, src, r0, r1, block,
        [&](int64_t r, int64_t& doff, int64_t& soff) {
          doff = r * block;
          soff = r / n * outer_bytes + offsets[static_cast<size_t>(r % n)];
          return true;
        },
        [](int64_t) {});
  };
  if (rows * inner <= kParallelGrain) return move(0, rows);
  parallel_for(rows, std::max<int64_t>(1, kParallelGrain / inner), move);
}

void index_select_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const int64_t d = a.get<int64_t>("dim");
  if (x.is_contiguous() && out[0].is_contiguous()) return gather_blocks(x, d, in[1], out[0]);
  // x's tables over the output's shape: x's own table along d would be as long as the dataset
  // when a loader gathers a small batch from it.
  TableSide s =
      strided_side(static_cast<char*>(x.raw_data()), out[0].shape(), x.strides(), item(x));
  s.tables[d] =
      index_offsets(in[1], x.shape()[d], x.strides()[d] * item(x), false, "index_select", d);
  table_move(out[0].shape(), strided_side(out[0]), s, item(x));
}

// Tables of x over the logical shape prefix + [numel(B)] + suffix, the index tensors (int64,
// contiguous, all of shape B) selecting along dims [start, start + k).
TableSide indexed_side(const Tensor& x, Inputs idx, int64_t start, std::string_view op,
                       Shape& logical) {
  const auto k = static_cast<int64_t>(idx.size());
  const int64_t isz = item(x), nb = idx[0].numel();
  TableSide s{static_cast<char*>(x.raw_data()), {}};
  logical.clear();
  auto add_strided = [&](int64_t d) {
    logical.push_back(x.shape()[d]);
    std::vector<int64_t> t(x.shape()[d]);
    for (int64_t i = 0; i < x.shape()[d]; ++i) t[i] = i * x.strides()[d] * isz;
    s.tables.push_back(std::move(t));
  };
  for (int64_t d = 0; d < start; ++d) add_strided(d);
  std::vector<int64_t> b(nb, 0);
  for (int64_t j = 0; j < k; ++j) {
    const int64_t d = start + j;
    auto o = index_offsets(idx[j], x.shape()[d], x.strides()[d] * isz, true, op, d);
    for (int64_t i = 0; i < nb; ++i) b[i] += o[i];
  }
  logical.push_back(nb);
  s.tables.push_back(std::move(b));
  for (int64_t d = start + k; d < x.dim(); ++d) add_strided(d);
  return s;
}

void index_kernel(Inputs in, Outputs out, const Attrs& a) {
  Shape logical;
  TableSide s = indexed_side(in[0], in.subspan(1), a.get<int64_t>("start"), "index", logical);
  TableSide d = strided_side(static_cast<char*>(out[0].raw_data()), logical,
                             contiguous_strides(logical), item(out[0]));
  table_move(logical, d, s, item(out[0]));
}

// Tables of values (already expanded to the result shape prefix + B + suffix) over the logical
// shape prefix + [numel(B)] + suffix: the B dims flatten into one table.
TableSide values_side(const Tensor& v, int64_t start, int64_t b_rank) {
  TableSide s{static_cast<char*>(v.raw_data()), {}};
  const int64_t isz = item(v);
  bool b_done = false;
  for (int64_t d = 0; d <= v.dim();) {
    if (d == start && !b_done) {
      Shape bs(v.shape().begin() + d, v.shape().begin() + d + b_rank);
      Strides bst(v.strides().begin() + d, v.strides().begin() + d + b_rank);
      s.tables.push_back(flat_offsets(bs, bst, isz));
      d += b_rank;
      b_done = true;
      continue;
    }
    if (d == v.dim()) break;
    std::vector<int64_t> t(v.shape()[d]);
    for (int64_t i = 0; i < v.shape()[d]; ++i) t[i] = i * v.strides()[d] * isz;
    s.tables.push_back(std::move(t));
    ++d;
  }
  return s;
}

// inputs: dst-or-x, values, idx...; writes values into dst at the indexed positions.
void put_into(const Tensor& dst, Inputs in, const Attrs& a, std::string_view op) {
  const int64_t start = a.get<int64_t>("start");
  Shape logical;
  TableSide d = indexed_side(dst, in.subspan(2), start, op, logical);
  TableSide s = values_side(in[1], start, in[2].dim());
  if (a.get<bool>("accumulate"))
    table_accumulate(logical, d, s, dst.dtype());
  else
    table_move(logical, d, s, item(dst), /*parallel=*/false);
}

void index_put_kernel(Inputs in, Outputs out, const Attrs& a) {
  strided_copy(in[0], out[0]);
  put_into(out[0], in, a, "index_put");
}
void index_put_inplace_kernel(Inputs in, Outputs, const Attrs& a) {
  put_into(in[0], in, a, "index_put_");
}

// Byte offsets into target of each element of idx (row-major), with the coordinate along dim
// replaced by the index value (bounds-checked, no negatives, like torch.gather/scatter).
std::vector<int64_t> along_offsets(const Tensor& idx, const Tensor& target, int64_t dim,
                                   std::string_view op) {
  Strides st = target.strides();
  st[dim] = 0;
  std::vector<int64_t> out = flat_offsets(idx.shape(), st, item(target));
  const int64_t n = target.shape()[dim], step = target.strides()[dim] * item(target);
  const int64_t* p = idx.data_ptr<int64_t>();
  for (size_t k = 0; k < out.size(); ++k) {
    if (p[k] < 0 || p[k] >= n)
      fail<IndexError>(op, "index {} is out of bounds for dim {} with size {}", p[k], dim, n);
    out[k] += p[k] * step;
  }
  return out;
}

void gather_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &x = in[0], &idx = in[1];
  const Shape flat{idx.numel()};
  TableSide s{static_cast<char*>(x.raw_data()),
              {along_offsets(idx, x, a.get<int64_t>("dim"), "gather")}};
  TableSide d = strided_side(static_cast<char*>(out[0].raw_data()), flat, {1}, item(x));
  table_move(flat, d, s, item(x));
}

void scatter_common(Inputs in, Outputs out, const Attrs& a, std::string_view op, bool add) {
  const Tensor &idx = in[1], &src = in[2];
  strided_copy(in[0], out[0]);
  const Shape flat{idx.numel()};
  TableSide d{static_cast<char*>(out[0].raw_data()),
              {along_offsets(idx, out[0], a.get<int64_t>("dim"), op)}};
  TableSide s{static_cast<char*>(src.raw_data()),
              {flat_offsets(idx.shape(), src.strides(), item(src))}};
  if (add)
    table_accumulate(flat, d, s, src.dtype());
  else
    table_move(flat, d, s, item(src), /*parallel=*/false);
}
void scatter_kernel(Inputs in, Outputs out, const Attrs& a) {
  scatter_common(in, out, a, "scatter", false);
}
void scatter_add_kernel(Inputs in, Outputs out, const Attrs& a) {
  scatter_common(in, out, a, "scatter_add", true);
}

template <size_t N>
void fill_where(const LoopPlan<2>& plan, const char* fill) {
  for_each_row(plan, [fill](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      if (*reinterpret_cast<const uint8_t*>(p[1] + i * s[1]) != 0)
        std::memcpy(p[0] + i * s[0], fill, N);
  });
}
using FillWhereFn = void (*)(const LoopPlan<2>&, const char*);
constexpr std::array<FillWhereFn, 4> kFillWhere = {fill_where<1>, fill_where<2>, fill_where<4>,
                                                   fill_where<8>};

void masked_fill_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor& o = out[0];
  strided_copy(in[0], o);
  const auto fill = fill_bytes(o.dtype(), a.get<Scalar>("value"));
  Strides ms = broadcast_strides(in[1], o.shape(), "masked_fill");
  auto plan = make_plan<2>(o.shape(),
                           {static_cast<char*>(o.raw_data()), static_cast<char*>(in[1].raw_data())},
                           {o.strides().data(), ms.data()}, {item(o), 1}, "masked_fill");
  for (size_t k = 0; k < kFillWhere.size(); ++k)
    if (int64_t{1} << k == item(o)) kFillWhere[k](plan, fill.data());
}

// The output size is data-dependent: the kernel counts first and allocates the exact
// (count, ndim) output itself (infer reports count 0).
void nonzero_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor& x = in[0];
  std::vector<int64_t> offs = flat_offsets(x.shape(), x.strides(), item(x)), hits;
  const char* base = static_cast<const char*>(x.raw_data());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    for (size_t k = 0; k < offs.size(); ++k) {
      T v;
      std::memcpy(&v, base + offs[k], sizeof(T));
      if (static_cast<C>(v) != C(0)) hits.push_back(static_cast<int64_t>(k));
    }
  });
  const int64_t nd = x.dim();
  out[0] = Tensor::empty({static_cast<int64_t>(hits.size()), nd}, kInt64, x.device());
  int64_t* p = out[0].data_ptr<int64_t>();
  for (size_t h = 0; h < hits.size(); ++h) {
    int64_t rem = hits[h];
    for (int64_t d = nd; d-- > 0;) {
      p[static_cast<int64_t>(h) * nd + d] = rem % x.shape()[d];
      rem /= x.shape()[d];
    }
  }
}

}  // namespace

void register_indexing_kernels(Registry& r) {
  struct Entry {
    const char* name;
    KernelFn fn;
  };
  for (const Entry& e : {Entry{"index_select", index_select_kernel},
                         {"index", index_kernel},
                         {"index_put", index_put_kernel},
                         {"index_put_", index_put_inplace_kernel},
                         {"gather", gather_kernel},
                         {"scatter", scatter_kernel},
                         {"scatter_add", scatter_add_kernel},
                         {"masked_fill", masked_fill_kernel},
                         {"nonzero", nonzero_kernel}})
    r.add_kernel(e.name, {DeviceType::CPU, "builtin", e.fn});
}

}  // namespace tessera::cpu
