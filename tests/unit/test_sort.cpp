// Sort family: sort, argsort, topk, unique through the op table (float64 references written with
// std::stable_sort over Ref lines), plus stability, NaN placement and the unique outputs.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "op_table.h"

namespace tessera::test {
namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Values on a coarse grid (many ties) without elementwise kernels; every 7th float is NaN.
Tensor grid_values(Shape shape, DType dt, uint64_t seed, bool nans = true) {
  Generator g(seed);
  std::vector<double> v = uniform(-2, 2, shape, kFloat64, &g).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    v[i] = dt == kBool       ? (v[i] > 0)
           : is_floating(dt) ? std::nearbyint(v[i] * 2) / 2
                             : std::nearbyint(v[i]);
    if (dt == kUInt8) v[i] += 2;
    if (nans && is_floating(dt) && i % 7 == 3) v[i] = kNaN;
  }
  return tensor(v, shape).to(dt);
}
Tensor transposed(Shape shape, DType dt, uint64_t seed) {
  std::swap(shape[0], shape[1]);
  return grid_values(shape, dt, seed).t();
}

const std::vector<DType> kSortDTypes = {kBool,  kUInt8,   kInt8,     kInt16,   kInt32,
                                        kInt64, kFloat16, kBFloat16, kFloat32, kFloat64};

// NaN is the largest value.
bool nan_less(double a, double b) { return (!std::isnan(a) && std::isnan(b)) || a < b; }

// For every line of r along dim: the first k positions of a stable sort, as values or indices.
Ref ref_sort(const Ref& r, int64_t dim, bool descending, int64_t k, bool indices) {
  Ref out;
  out.shape = r.shape;
  if (r.shape.empty()) {  // 0-d: one line of length 1
    out.data = {indices ? 0.0 : r.data[0]};
    return out;
  }
  if (dim < 0) dim += static_cast<int64_t>(r.shape.size());
  const int64_t n = r.shape[dim];
  if (k < 0) k = n;
  out.shape[dim] = k;
  int64_t count = 1;
  for (int64_t s : out.shape) count *= s;
  out.data.assign(static_cast<size_t>(count), 0);
  int64_t inner = 1;
  for (size_t d = dim + 1; d < r.shape.size(); ++d) inner *= r.shape[d];
  const int64_t outer = n == 0 ? 0 : r.numel() / (n * inner);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      std::vector<int64_t> pos(n);
      std::iota(pos.begin(), pos.end(), 0);
      auto val = [&](int64_t p) { return r.data[(o * n + p) * inner + in]; };
      std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) {
        return descending ? nan_less(val(b), val(a)) : nan_less(val(a), val(b));
      });
      for (int64_t j = 0; j < k; ++j)
        out.data[(o * k + j) * inner + in] = indices ? static_cast<double>(pos[j]) : val(pos[j]);
    }
  return out;
}

std::vector<Sample> last_dim_samples(DType dt) {
  return {
      {"0-d", {grid_values({}, dt, 1)}},
      {"1-d", {grid_values({17}, dt, 2)}},
      {"2-d", {grid_values({4, 9}, dt, 3)}},
      {"3-d", {grid_values({2, 3, 8}, dt, 4)}},
      {"non-contiguous", {transposed({5, 7}, dt, 5)}},
      {"strided", {grid_values({4, 12}, dt, 6).slice(1, 0, std::nullopt, 3)}},
      {"empty rows", {grid_values({0, 5}, dt, 7)}},
      {"empty line", {grid_values({3, 0}, dt, 8)}},
      {"long lines", {grid_values({3, 3000}, dt, 9)}},
      {"many lines", {grid_values({600, 6}, dt, 10)}},
  };
}
std::vector<Sample> first_dim_samples(DType dt) {
  return {
      {"2-d", {grid_values({9, 4}, dt, 11)}},
      {"3-d", {grid_values({8, 3, 2}, dt, 12)}},
      {"non-contiguous", {transposed({7, 5}, dt, 13)}},
      {"long", {grid_values({2000, 3}, dt, 14)}},
  };
}
// topk needs lines of at least k = 3.
std::vector<Sample> topk_samples(DType dt) {
  std::vector<Sample> s = last_dim_samples(dt);
  s.erase(
      std::remove_if(s.begin(), s.end(),
                     [](const Sample& x) { return x.label == "0-d" || x.label == "empty line"; }),
      s.end());
  return s;
}

OpEntry sort_entry(std::string prim, std::function<std::vector<Sample>(DType)> samples,
                   std::function<Tensor(const Tensor&)> op, int64_t dim, bool descending, int64_t k,
                   bool indices) {
  OpEntry e;
  e.prim = std::move(prim);
  e.dtypes = kSortDTypes;
  e.samples = std::move(samples);
  e.op = [op](const std::vector<Tensor>& in) { return op(in[0]); };
  e.reference = [=](const std::vector<Ref>& in, DType) {
    return ref_sort(in[0], dim, descending, k, indices);
  };
  e.tolerance = [](DType) { return Tolerance{0, 0}; };  // values only move
  e.expected_dtype = [indices](const std::vector<Tensor>& in) {
    return indices ? kInt64 : in[0].dtype();
  };
  return e;
}

Tensor cplx() { return random_tensor({3}, kComplex64); }

std::vector<OpEntry> entries() {
  std::vector<OpEntry> es;
  es.push_back(sort_entry(
      "sort", last_dim_samples, [](const Tensor& x) { return std::get<0>(sort(x)); }, -1, false, -1,
      false));
  es.push_back(sort_entry(
      "sort", first_dim_samples, [](const Tensor& x) { return std::get<0>(sort(x, 0, true)); }, 0,
      true, -1, false));
  es.back().errors = {
      expect_error<DTypeError>("complex", "sort", [] { sort(cplx()); }),
      expect_error<IndexError>("dim", "sort",
                               [] {
                                 sort(zeros({2, 3}), 2);
                               }),
  };
  es.push_back(sort_entry(
      "argsort", last_dim_samples, [](const Tensor& x) { return argsort(x); }, -1, false, -1,
      true));
  es.push_back(sort_entry(
      "argsort", first_dim_samples, [](const Tensor& x) { return argsort(x, 0, true); }, 0, true,
      -1, true));
  es.back().errors = {expect_error<DTypeError>("complex", "argsort", [] { argsort(cplx()); }),
                      expect_error<IndexError>("dim", "argsort", [] { argsort(zeros({2}), -2); })};
  es.push_back(sort_entry(
      "topk", topk_samples, [](const Tensor& x) { return std::get<0>(topk(x, 3)); }, -1, true, 3,
      false));
  es.push_back(sort_entry(
      "topk", first_dim_samples, [](const Tensor& x) { return std::get<1>(topk(x, 2, 0, false)); },
      0, false, 2, true));
  es.back().errors = {
      expect_error<IndexError>("k > size", "topk",
                               [] {
                                 topk(zeros({2, 3}), 4);
                               }),
      expect_error<ValueError>("k < 0", "topk",
                               [] {
                                 topk(zeros({2, 3}), -1);
                               }),
      expect_error<DTypeError>("complex", "topk", [] { topk(cplx(), 1); }),
      expect_error<IndexError>("dim", "topk",
                               [] {
                                 topk(zeros({2, 3}), 1, 2);
                               }),
  };
  OpEntry u;
  u.prim = "unique";
  u.dtypes = kSortDTypes;
  u.samples = [](DType dt) {
    return std::vector<Sample>{{"0-d", {grid_values({}, dt, 21)}},
                               {"empty", {grid_values({0, 4}, dt, 22)}},
                               {"1-d", {grid_values({30}, dt, 23)}},
                               {"non-contiguous", {transposed({6, 5}, dt, 24)}},
                               {"large", {grid_values({50, 400}, dt, 25)}}};
  };
  u.op = [](const std::vector<Tensor>& in) { return unique(in[0]).values; };
  u.reference = [](const std::vector<Ref>& in, DType) {
    std::vector<double> v = in[0].data;
    std::stable_sort(v.begin(), v.end(), nan_less);
    Ref r;
    for (size_t i = 0; i < v.size(); ++i)
      if (i == 0 || !(v[i] == v[i - 1])) r.data.push_back(v[i]);  // NaN != NaN: each kept
    r.shape = {static_cast<int64_t>(r.data.size())};
    return r;
  };
  u.tolerance = [](DType) { return Tolerance{0, 0}; };
  u.errors = {expect_error<DTypeError>("complex", "unique", [] { unique(cplx()); })};
  es.push_back(std::move(u));
  return es;
}

bool registered = register_entries(entries());

TEST(Sort, Table) {
  for (const OpEntry& e : all_entries())
    if (e.prim == "sort" || e.prim == "argsort" || e.prim == "topk" || e.prim == "unique")
      check_entry(e);
}

std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

TEST(Sort, NaNPlacement) {
  Tensor x = tensor<float>({3, NAN, 1, NAN, 2});
  auto [v, i] = sort(x);
  auto vv = v.to_vector<float>();
  EXPECT_EQ(std::vector<float>(vv.begin(), vv.begin() + 3), (std::vector<float>{1, 2, 3}));
  EXPECT_TRUE(std::isnan(vv[3]) && std::isnan(vv[4]));
  EXPECT_EQ(ints(i), (std::vector<int64_t>{2, 4, 0, 1, 3}));
  auto [dv, di] = sort(x, 0, true);
  auto dvv = dv.to_vector<float>();
  EXPECT_TRUE(std::isnan(dvv[0]) && std::isnan(dvv[1]));
  EXPECT_EQ(std::vector<float>(dvv.begin() + 2, dvv.end()), (std::vector<float>{3, 2, 1}));
  EXPECT_EQ(ints(di), (std::vector<int64_t>{1, 3, 0, 4, 2}));
  // topk largest treats NaN as the largest value, like PyTorch.
  EXPECT_EQ(ints(std::get<1>(topk(x, 3))), (std::vector<int64_t>{1, 3, 0}));
  EXPECT_EQ(ints(std::get<1>(topk(x, 2, -1, false))), (std::vector<int64_t>{2, 4}));
}

TEST(Sort, Stable) {
  Tensor x = tensor<int32_t>({2, 1, 2, 1, 0, 2, 1});
  EXPECT_EQ(ints(argsort(x)), (std::vector<int64_t>{4, 1, 3, 6, 0, 2, 5}));
  EXPECT_EQ(ints(argsort(x, 0, true)), (std::vector<int64_t>{0, 2, 5, 1, 3, 6, 4}));
  Tensor z = tensor<float>({0.f, -0.f, 0.f});  // -0 == 0: a tie, kept in order
  EXPECT_EQ(ints(argsort(z)), (std::vector<int64_t>{0, 1, 2}));
  // sort's indices are argsort's, and gather the sorted values.
  Tensor y = grid_values({5, 40}, kFloat32, 3);
  auto [v, i] = sort(y, 1);
  EXPECT_EQ(ints(i), ints(argsort(y, 1)));
  auto yv = y.to_vector<float>(), vv = v.to_vector<float>();
  auto iv = ints(i);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 40; ++c) {
      const float want = yv[r * 40 + iv[r * 40 + c]], got = vv[r * 40 + c];
      EXPECT_TRUE(got == want || (std::isnan(got) && std::isnan(want)));
    }
}

TEST(Sort, TopkLargestSmallest) {
  Tensor x = tensor<double>({5, 1, 4, 1, 5, 9, 2, 6}, Shape{2, 4});
  auto [v, i] = topk(x, 2);
  EXPECT_EQ(v.shape(), (Shape{2, 2}));
  EXPECT_EQ(v.to_vector<double>(), (std::vector<double>{5, 4, 9, 6}));
  EXPECT_EQ(ints(i), (std::vector<int64_t>{0, 2, 1, 3}));
  auto [sv, si] = topk(x, 2, 1, false);
  EXPECT_EQ(sv.to_vector<double>(), (std::vector<double>{1, 1, 2, 5}));
  EXPECT_EQ(ints(si), (std::vector<int64_t>{1, 3, 2, 0}));
  auto [cv, ci] = topk(x, 1, 0);
  EXPECT_EQ(cv.to_vector<double>(), (std::vector<double>{5, 9, 4, 6}));
  EXPECT_EQ(ints(ci), (std::vector<int64_t>{0, 1, 0, 1}));
  auto [ev, ei] = topk(x, 0);
  EXPECT_EQ(ev.shape(), (Shape{2, 0}));
  EXPECT_EQ(ei.dtype(), kInt64);
}

TEST(Sort, UniqueInverseCounts) {
  Tensor x = tensor<int64_t>({3, 1, 2, 3, 1, 1}, Shape{2, 3});
  UniqueResult r = unique(x, true, true);
  EXPECT_EQ(r.values.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(r.inverse.shape(), (Shape{2, 3}));
  EXPECT_EQ(ints(r.inverse), (std::vector<int64_t>{2, 0, 1, 2, 0, 0}));
  EXPECT_EQ(ints(r.counts), (std::vector<int64_t>{3, 1, 2}));
  UniqueResult only = unique(x);
  EXPECT_FALSE(only.inverse.defined());
  EXPECT_FALSE(only.counts.defined());
  // Through a non-contiguous view, inverse indexes the view's row-major order.
  UniqueResult t = unique(x.t(), true, true);
  EXPECT_EQ(ints(t.inverse), (std::vector<int64_t>{2, 2, 0, 0, 1, 0}));
  UniqueResult e = unique(zeros({0}), true, true);
  EXPECT_EQ(e.values.shape(), (Shape{0}));
  EXPECT_EQ(e.counts.shape(), (Shape{0}));
  UniqueResult b = unique(tensor<bool>({true, false, true}), true, true);
  EXPECT_EQ(b.values.to_vector<int64_t>(), (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(ints(b.counts), (std::vector<int64_t>{1, 2}));
}

TEST(Sort, ZeroDim) {
  Tensor x = scalar_tensor(2.5, kFloat64);
  auto [v, i] = sort(x);
  EXPECT_EQ(v.dim(), 0);
  EXPECT_EQ(v.item<double>(), 2.5);
  EXPECT_EQ(i.item<int64_t>(), 0);
  EXPECT_EQ(std::get<0>(topk(x, 1)).item<double>(), 2.5);
  EXPECT_THROW(topk(x, 2), IndexError);
  EXPECT_EQ(std::get<0>(topk(x, 0)).numel(), 0);
}

}  // namespace
}  // namespace tessera::test
