// CPU sort kernels. Each 1-d line along the sort dim (any strides) is read into a key buffer in
// the compute type, an index permutation is sorted against it, and values/indices are written
// out. Keys are compared with NaN as the largest value; ties resolve by position, so results are
// stable and topk equals the head of the full sort.
#include <algorithm>
#include <numeric>
#include <vector>

#include "loops.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {
namespace {

// The lines of x along dim, paired with the matching lines of the (contiguous) outputs.
struct Lines {
  Shape outer;  // sizes of the other dims
  Strides in_outer, out_outer;
  int64_t len = 1, out_len = 1, in_step = 0, out_step = 0, count = 1;
};

Lines lines_along(const Tensor& x, const Tensor& out, int64_t dim) {
  Lines l;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == dim) continue;
    l.outer.push_back(x.size(d));
    l.in_outer.push_back(x.stride(d));
    l.out_outer.push_back(out.stride(d));
    l.count *= x.size(d);
  }
  if (x.dim() > 0) {
    l.len = x.size(dim), l.out_len = out.size(dim);
    l.in_step = x.stride(dim), l.out_step = out.stride(dim);
  }
  return l;
}

// Sort keys: the compute type (float for 16-bit floats); bytes for bool (vector<bool> has no
// data()).
template <class T>
using key_t = std::conditional_t<std::is_same_v<T, bool>, uint8_t, compute_t<T>>;

template <class K>
bool is_nan(K v) {
  if constexpr (std::is_floating_point_v<K>)
    return v != v;
  else
    return false;
}

// a before b: ascending with NaN last, or descending with NaN first; equal keys by position.
template <class K>
struct KeyOrder {
  const K* keys;
  bool descending;
  bool less(K a, K b) const { return (!is_nan(a) && is_nan(b)) || a < b; }
  bool operator()(int64_t i, int64_t j) const {
    const K a = keys[i], b = keys[j];
    if (descending ? less(b, a) : less(a, b)) return true;
    if (descending ? less(a, b) : less(b, a)) return false;
    return i < j;
  }
};

// Sorts positions [0, n) of keys, fully or only the first k (k < n).
template <class K>
void order_line(const std::vector<K>& keys, std::vector<int64_t>& idx, int64_t k, bool descending) {
  idx.resize(keys.size());
  std::iota(idx.begin(), idx.end(), int64_t{0});
  const KeyOrder<K> cmp{keys.data(), descending};
  if (k < static_cast<int64_t>(idx.size()))
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), cmp);
  else
    std::sort(idx.begin(), idx.end(), cmp);  // ties are ordered by position: stable
}

// Sorts every line of in[0] along attr dim; writes the first `k` of each (values optional).
template <class T>
void sort_lines(const Tensor& x, const Tensor* values, const Tensor& indices, int64_t dim,
                int64_t k, bool descending) {
  using K = key_t<T>;
  const Lines l = lines_along(x, indices, dim);
  if (l.count == 0 || l.len == 0 || k == 0) return;
  const T* in = x.data_ptr<T>();
  T* vout = values ? values->data_ptr<T>() : nullptr;
  int64_t* iout = indices.data_ptr<int64_t>();
  parallel_for(
      l.count, std::max<int64_t>(1, kParallelGrain / (l.len * 8)), [&](int64_t b, int64_t e) {
        std::vector<K> keys(static_cast<size_t>(l.len));
        std::vector<int64_t> idx;
        for (int64_t i = b; i < e; ++i) {
          const auto [oi, oo] = flat_offsets(i, l.outer, l.in_outer, l.out_outer);
          for (int64_t j = 0; j < l.len; ++j) keys[j] = static_cast<K>(in[oi + j * l.in_step]);
          order_line(keys, idx, k, descending);
          for (int64_t j = 0; j < k; ++j) {
            iout[oo + j * l.out_step] = idx[j];
            if (vout) vout[oo + j * l.out_step] = in[oi + idx[j] * l.in_step];  // the original bits
          }
        }
      });
}

template <class F>
void visit_sortable(DType dt, F&& f) {
  visit_dtype(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, Complex64>)
      fail<DTypeError>("sort", "complex tensors have no order");
    else
      f(tag);
  });
}

int64_t attr_dim(const Tensor& x, const Attrs& a, std::string_view op) {
  return wrap_dim(a.get<int64_t>("dim"), x.dim(), op);
}
int64_t line_len(const Tensor& x, int64_t dim) { return x.dim() == 0 ? 1 : x.size(dim); }

void sort_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = attr_dim(in[0], a, "sort");
  visit_sortable(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    sort_lines<T>(in[0], &out[0], out[1], d, line_len(in[0], d), a.get<bool>("descending"));
  });
}

void argsort_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = attr_dim(in[0], a, "argsort");
  visit_sortable(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    sort_lines<T>(in[0], nullptr, out[0], d, line_len(in[0], d), a.get<bool>("descending"));
  });
}

// topk largest = head of the descending order; smallest = head of the ascending one.
void topk_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = attr_dim(in[0], a, "topk");
  visit_sortable(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    sort_lines<T>(in[0], &out[0], out[1], d, a.get<int64_t>("k"), a.get<bool>("largest"));
  });
}

template <class T>
void unique_values(const Tensor& x, Outputs out) {
  using K = key_t<T>;
  const int64_t n = x.numel();
  std::vector<T> vals;
  vals.reserve(static_cast<size_t>(n));
  // Row-major walk over any strides.
  const T* base = x.data_ptr<T>();
  std::vector<int64_t> pos(x.shape().size(), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * x.strides()[d];
    vals.push_back(base[off]);
    for (size_t d = pos.size(); d-- > 0;) {
      if (++pos[d] < x.shape()[d]) break;
      pos[d] = 0;
    }
  }
  std::vector<K> keys(vals.begin(), vals.end());
  std::vector<int64_t> idx;
  order_line(keys, idx, n, false);
  T* uv = out[0].data_ptr<T>();
  int64_t *inv = out[1].data_ptr<int64_t>(), *counts = out[2].data_ptr<int64_t>();
  int64_t groups = 0;
  for (int64_t j = 0; j < n; ++j) {
    // A new group unless equal to the previous key (NaN != NaN: each NaN is its own, as PyTorch).
    if (j == 0 || !(keys[idx[j]] == keys[idx[j - 1]])) {
      uv[groups] = vals[idx[j]];
      counts[groups++] = 0;
    }
    ++counts[groups - 1];
    inv[idx[j]] = groups - 1;  // out[1] is contiguous in x's shape: flat index = row-major index
  }
  shrink_output(out[0], groups);
  shrink_output(out[2], groups);
}

void unique_kernel(Inputs in, Outputs out, const Attrs&) {
  visit_sortable(in[0].dtype(),
                 [&](auto tag) { unique_values<typename decltype(tag)::type>(in[0], out); });
}

}  // namespace

void register_sort_kernels(Registry& r) {
  r.add_kernel("sort", {DeviceType::CPU, "builtin", sort_kernel});
  r.add_kernel("argsort", {DeviceType::CPU, "builtin", argsort_kernel});
  r.add_kernel("topk", {DeviceType::CPU, "builtin", topk_kernel});
  r.add_kernel("unique", {DeviceType::CPU, "builtin", unique_kernel});
}

}  // namespace tessera::cpu
