// Indexing family: table entries (float64 references written with plain loops over Ref) and
// focused tests of Python-style indexing against hand-computed values.
#include <numeric>
#include <set>

#include "op_table.h"

namespace tessera::test {
namespace {

const std::vector<DType> kMoveDTypes = {kBool,    kUInt8,    kInt16,   kInt32,   kInt64,
                                        kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};
const std::vector<DType> kSumDTypes = {kInt32, kInt64, kFloat16, kFloat32, kFloat64, kComplex64};

Tensor ids(std::vector<int64_t> v, std::optional<Shape> s = {}) { return tensor<int64_t>(v, s); }
Tensor num(int64_t v) { return scalar_tensor(v, kInt64); }
int64_t geti(const Ref& r, int64_t k = 0) { return static_cast<int64_t>(r.data[k]); }
Tensor rnd_index(Shape s, int64_t hi, uint64_t seed) {
  Generator g(seed);
  return randint(0, hi, s, kInt64, &g);
}

// ---- index_select ----
Ref index_select_ref(const std::vector<Ref>& r, DType) {
  const Ref &x = r[0], &idx = r[1];
  if (x.shape.empty()) return pick(x, {}, [](auto&) { return 0; });
  const int64_t d = geti(r[2]);
  Shape s = x.shape;
  s[d] = idx.numel();
  return pick(x, s, [&](std::vector<int64_t> o) {
    o[d] = geti(idx, o[d]);
    return flat(o, x.shape);
  });
}

// ---- gather / scatter ----
Ref gather_ref(const std::vector<Ref>& r, DType) {
  const Ref &x = r[0], &idx = r[1];
  const int64_t d = geti(r[2]);
  return pick(x, idx.shape, [&](std::vector<int64_t> o) {
    if (o.empty()) return int64_t{0};
    o[d] = geti(idx, flat(o, idx.shape));
    return flat(o, x.shape);
  });
}
Ref scatter_ref(const std::vector<Ref>& r, bool add) {
  Ref out = r[0];
  const Ref &idx = r[1], &src = r[2];
  const int64_t d = geti(r[3]);
  for (int64_t p = 0; p < idx.numel(); ++p) {
    auto o = unravel(p, idx.shape);
    const int64_t sp = src.shape.empty() ? 0 : flat(o, src.shape);
    if (!o.empty()) o[d] = geti(idx, p);
    const int64_t t = out.shape.empty() ? 0 : flat(o, out.shape);
    out.data[t] = add ? out.data[t] + src.data[sp] : src.data[sp];
    if (!out.imag.empty()) out.imag[t] = add ? out.imag[t] + src.imag[sp] : src.imag[sp];
  }
  return out;
}
Tensor scatter_op(const std::vector<Tensor>& in) {
  const int64_t d = in[3].item<int64_t>();
  if (in.size() > 4) return scatter(in[0], d, in[1], in[2].item());  // scalar src variant
  return scatter(in[0], d, in[1], in[2]);
}

// ---- advanced indexing: inputs x, dims (which dim each index tensor indexes), idx... ----
struct AdvRef {
  Shape b, result;
  std::vector<int64_t> dims;
  bool adjacent = true;
};
AdvRef adv_layout(const std::vector<Ref>& r, size_t first_idx) {
  AdvRef a;
  const Ref &x = r[0], &dims = r[first_idx - 1];
  for (int64_t k = 0; k < dims.numel(); ++k) a.dims.push_back(geti(dims, k));
  for (size_t j = first_idx; j < r.size(); ++j) {  // broadcast the index shapes
    const Shape& s = r[j].shape;
    Shape o(std::max(a.b.size(), s.size()), 1);
    for (size_t i = 1; i <= o.size(); ++i) {
      int64_t u = i <= a.b.size() ? a.b[a.b.size() - i] : 1,
              v = i <= s.size() ? s[s.size() - i] : 1;
      o[o.size() - i] = u == 1 ? v : u;
    }
    a.b = o;
  }
  for (size_t k = 1; k < a.dims.size(); ++k) a.adjacent &= a.dims[k] == a.dims[k - 1] + 1;
  const auto nd = static_cast<int64_t>(x.shape.size());
  const int64_t at = a.adjacent ? a.dims[0] : 0;
  std::vector<int64_t> rest;
  for (int64_t d = 0; d < nd; ++d)
    if (std::find(a.dims.begin(), a.dims.end(), d) == a.dims.end()) rest.push_back(x.shape[d]);
  a.result.assign(rest.begin(), rest.begin() + (a.adjacent ? at : 0));
  a.result.insert(a.result.end(), a.b.begin(), a.b.end());
  a.result.insert(a.result.end(), rest.begin() + (a.adjacent ? at : 0), rest.end());
  return a;
}
// Flat x index of result element o.
int64_t adv_source(const std::vector<Ref>& r, size_t first_idx, const AdvRef& a,
                   const std::vector<int64_t>& o) {
  const Ref& x = r[0];
  const auto nb = a.b.size();
  const int64_t at = a.adjacent ? a.dims[0] : 0;
  std::vector<int64_t> bi(o.begin() + at, o.begin() + at + nb), rest(o.begin(), o.begin() + at);
  rest.insert(rest.end(), o.begin() + at + nb, o.end());
  std::vector<int64_t> xi(x.shape.size());
  size_t ri = 0;
  for (size_t d = 0; d < xi.size(); ++d) {
    auto it = std::find(a.dims.begin(), a.dims.end(), static_cast<int64_t>(d));
    if (it == a.dims.end()) {
      xi[d] = rest[ri++];
      continue;
    }
    const Ref& idx = r[first_idx + (it - a.dims.begin())];
    std::vector<int64_t> ii(idx.shape.size());
    for (size_t k = 0; k < ii.size(); ++k) ii[k] = idx.shape[k] == 1 ? 0 : bi[nb - ii.size() + k];
    int64_t v = geti(idx, flat(ii, idx.shape));
    xi[d] = v < 0 ? v + x.shape[d] : v;
  }
  return flat(xi, x.shape);
}
std::vector<Tensor> adv_indices(const std::vector<Tensor>& in, size_t first_idx, int64_t nd) {
  std::vector<Tensor> v(nd);
  auto dims = in[first_idx - 1].to_vector<int64_t>();
  for (size_t k = 0; k < dims.size(); ++k) v[dims[k]] = in[first_idx + k];
  while (!v.empty() && !v.back().defined()) v.pop_back();
  return v;
}
Ref index_ref(const std::vector<Ref>& r, DType) {
  AdvRef a = adv_layout(r, 2);
  return pick(r[0], a.result,
              [&](const std::vector<int64_t>& o) { return adv_source(r, 2, a, o); });
}
// inputs: x, values (result-shaped or broadcastable), accumulate (0-d bool), dims, idx...
Ref index_put_ref(const std::vector<Ref>& r, DType) {
  std::vector<Ref> rr{r[0]};
  rr.insert(rr.end(), r.begin() + 3, r.end());
  AdvRef a = adv_layout(rr, 2);
  Ref out = r[0];
  const Ref& v = r[1];
  const bool acc = r[2].data[0] != 0;
  for (int64_t i = 0; i < numel_of(a.result); ++i) {
    auto o = unravel(i, a.result);
    const int64_t t = adv_source(rr, 2, a, o);
    const double val = at_broadcast(v, o);
    out.data[t] = acc ? out.data[t] + val : val;
    if (!out.imag.empty()) {
      Ref vi{v.shape, v.imag, {}};
      out.imag[t] = acc ? out.imag[t] + at_broadcast(vi, o) : at_broadcast(vi, o);
    }
  }
  return out;
}
std::vector<Tensor> put_inputs(const Tensor& x, const Tensor& v, bool acc,
                               std::vector<int64_t> dims, std::vector<Tensor> idx) {
  std::vector<Tensor> in{x, v, scalar_tensor(acc, kBool), ids(dims)};
  in.insert(in.end(), idx.begin(), idx.end());
  return in;
}
std::vector<Sample> put_samples(DType dt) {
  std::vector<Sample> s = {
      {"dim0 negatives", put_inputs(random_tensor({4, 3}, dt), random_tensor({2, 3}, dt, -2, 2, 5),
                                    false, {0}, {ids({-1, 1})})},
      {"broadcast value", put_inputs(random_tensor({4, 3}, dt), random_tensor({2}, dt, -2, 2, 6),
                                     false, {1}, {ids({2, 0})})},
      {"non-adjacent", put_inputs(noncontiguous({3, 4, 5}, dt), random_tensor({2, 4}, dt, -2, 2, 7),
                                  false, {0, 2}, {ids({0, 2}), ids({4, 1})})},
      {"0-d index", put_inputs(random_tensor({3, 2}, dt), random_tensor({2}, dt, -2, 2, 8), false,
                               {0}, {ids({1}, Shape{})})},
      {"empty", put_inputs(random_tensor({3, 2}, dt), random_tensor({0, 2}, dt, -2, 2, 9), false,
                           {0}, {ids({})})},
      {"large", put_inputs(random_tensor({500, 100}, dt), random_tensor({400, 100}, dt, -2, 2, 10),
                           false, {0}, {rnd_index({400}, 500, 3)})},
  };
  if (dt != kBool) {
    s.push_back({"accumulate repeated",
                 put_inputs(random_tensor({4, 3}, dt), random_tensor({3, 3}, dt, -2, 2, 11), true,
                            {0}, {ids({1, 1, 3})})});
    s.push_back({"accumulate broadcast",
                 put_inputs(random_tensor({2, 5}, dt), random_tensor({}, dt, -2, 2, 12), true,
                            {0, 1}, {ids({0, 0, 1}), ids({4, 4, 0})})});
  }
  return s;
}
Tensor put_op(const std::vector<Tensor>& in, bool inplace) {
  auto idx = adv_indices(in, 4, in[0].dim());
  const bool acc = in[2].item<bool>();
  if (!inplace) return index_put(in[0], idx, in[1].to(in[0].dtype()), acc);
  Tensor x = in[0].clone();
  index_put_(x, idx, in[1], acc);
  return x;
}
Tolerance sum_tolerance(DType dt) {
  return dt == kFloat16    ? Tolerance{1e-2, 1e-2}
         : dt == kBFloat16 ? Tolerance{5e-2, 5e-2}
                           : default_tolerance(dt);
}

OpEntry put_entry(const std::string& name, bool inplace) {
  return {
      .prim = name,
      .dtypes = kMoveDTypes,
      .samples = put_samples,
      .op = [inplace](const std::vector<Tensor>& in) { return put_op(in, inplace); },
      .reference = index_put_ref,
      .errors =
          {
              expect_error<IndexError>(
                  "out of bounds", name,
                  [inplace] {
                    put_op(put_inputs(zeros({3}), zeros({1}), false, {0}, {ids({3})}), inplace);
                  }),
              expect_error<ShapeError>(
                  "values shape", name,
                  [inplace] {
                    put_op(put_inputs(zeros({3}), zeros({3}), false, {0}, {ids({0, 1})}), inplace);
                  }),
              expect_error<IndexError>(
                  "float index", name,
                  [inplace] {
                    put_op(put_inputs(zeros({3}), zeros({1}), false, {0}, {zeros({1})}), inplace);
                  }),
          },
      .tolerance = sum_tolerance,
  };
}

const bool registered = register_entries({
    {
        .prim = "index_select",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 0", {random_tensor({4, 3}, dt), ids({2, 0, 2}), num(0)}},
              {"dim 1 non-contiguous", {noncontiguous({4, 6}, dt), ids({5, 0}), num(1)}},
              {"negative dim", {random_tensor({2, 3, 4}, dt), ids({3, 3, 1, 0}), num(-1)}},
              {"middle dim, blocks of 70", {random_tensor({3, 40, 70}, dt),
                                            rnd_index({30}, 40, 5), num(1)}},
              {"empty index", {random_tensor({4, 3}, dt), ids({}), num(0)}},
              {"0-d", {random_tensor({}, dt), ids({0}), num(0)}},
              {"large", {random_tensor({1000, 50}, dt), rnd_index({800}, 1000, 4), num(0)}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return index_select(in[0], in[2].item<int64_t>(), in[1]);
            },
        .reference =
            [](const std::vector<Ref>& r, DType dt) {
              std::vector<Ref> rr = r;
              if (geti(r[2]) < 0) rr[2].data[0] += static_cast<double>(r[0].shape.size());
              return index_select_ref(rr, dt);
            },
        .errors =
            {
                expect_error<IndexError>("out of bounds", "index_select",
                                         [] {
                                           index_select(zeros({5, 2}), 0, ids({7}));
                                         }),
                expect_error<IndexError>("negative", "index_select",
                                         [] {
                                           index_select(zeros({5, 2}), 0, ids({-1}));
                                         }),
                expect_error<IndexError>("float index", "index_select",
                                         [] { index_select(zeros({5}), 0, zeros({1})); }),
                expect_error<IndexError>("2-d index", "index_select",
                                         [] {
                                           index_select(zeros({5}), 0, ids({0, 0}, Shape{1, 2}));
                                         }),
                expect_error<IndexError>("bad dim", "index_select",
                                         [] { index_select(zeros({5}), 1, ids({0})); }),
            },
    },
    {
        .prim = "gather",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 1", {random_tensor({3, 4}, dt), ids({3, 0, 1, 1, 2, 2}, Shape{3, 2}), num(1)}},
              {"dim 0 non-contiguous",
               {noncontiguous({4, 5}, dt), ids({3, 0, 1, 2, 0, 0, 0, 3}, Shape{2, 4}), num(0)}},
              {"empty", {random_tensor({3, 4}, dt), ids({}, Shape{3, 0}), num(1)}},
              {"0-d", {random_tensor({}, dt), ids({0}, Shape{}), num(0)}},
              {"large", {random_tensor({300, 200}, dt), rnd_index({300, 150}, 200, 5), num(1)}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return gather(in[0], in[2].item<int64_t>(), in[1]);
            },
        .reference = gather_ref,
        .errors =
            {
                expect_error<IndexError>("out of bounds", "gather",
                                         [] {
                                           gather(zeros({2, 2}), 1, ids({0, 2}, Shape{1, 2}));
                                         }),
                expect_error<IndexError>("negative", "gather",
                                         [] {
                                           gather(zeros({2, 2}), 1, ids({-1}, Shape{1, 1}));
                                         }),
                expect_error<ShapeError>("ndim", "gather",
                                         [] {
                                           gather(zeros({2, 2}), 1, ids({0}));
                                         }),
                expect_error<ShapeError>("too large", "gather",
                                         [] {
                                           gather(zeros({2, 2}), 1, ids({0, 0, 0}, Shape{3, 1}));
                                         }),
            },
    },
    {
        .prim = "scatter",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 1",
               {random_tensor({3, 5}, dt), ids({4, 0, 1, 2, 3, 4}, Shape{3, 2}),
                random_tensor({3, 4}, dt, -2, 2, 3), num(1)}},
              {"dim 0 non-contiguous",
               {noncontiguous({4, 3}, dt), ids({3, 0, 1}, Shape{1, 3}),
                noncontiguous({2, 3}, dt, -2, 2, 4), num(0)}},
              {"scalar src",
               {random_tensor({3, 5}, dt), ids({4, 0, 1, 2}, Shape{2, 2}), scalar_tensor(1, dt),
                num(1), num(0)}},
              {"0-d",
               {random_tensor({}, dt), ids({0}, Shape{}), random_tensor({}, dt, -2, 2, 5), num(0)}},
              {"empty",
               {random_tensor({2, 3}, dt), ids({}, Shape{0, 3}), random_tensor({1, 3}, dt),
                num(0)}},
              {"large",
               {random_tensor({200, 300}, dt), rnd_index({150, 300}, 200, 6),
                random_tensor({150, 300}, dt, -2, 2, 7), num(0)}},
          };
        },
        .op = scatter_op,
        .reference = [](const std::vector<Ref>& r, DType) { return scatter_ref(r, false); },
        .errors =
            {
                expect_error<IndexError>(
                    "out of bounds", "scatter",
                    [] {
                      scatter(zeros({2, 2}), 0, ids({2}, Shape{1, 1}), zeros({1, 1}));
                    }),
                expect_error<IndexError>(
                    "negative", "scatter",
                    [] {
                      scatter(zeros({2, 2}), 0, ids({-1}, Shape{1, 1}), zeros({1, 1}));
                    }),
                expect_error<DTypeError>(
                    "src dtype", "scatter",
                    [] {
                      scatter(zeros({2, 2}), 0, ids({0}, Shape{1, 1}), zeros({1, 1}, kFloat64));
                    }),
                expect_error<ShapeError>(
                    "src too small", "scatter",
                    [] {
                      scatter(zeros({2, 2}), 0, ids({0, 0}, Shape{1, 2}), zeros({1, 1}));
                    }),
                expect_error<DTypeError>(
                    "complex scalar", "scatter",
                    [] { scatter(zeros({2}), 0, ids({0}), Scalar(Complex64(1, 1))); }),
            },
    },
    {
        .prim = "scatter_add",
        .dtypes = kSumDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"repeated",
               {random_tensor({3, 5}, dt), ids({4, 4, 1, 1, 3, 3}, Shape{3, 2}),
                random_tensor({3, 4}, dt, -2, 2, 3), num(1)}},
              {"dim 0 non-contiguous",
               {noncontiguous({4, 3}, dt), ids({3, 3, 1}, Shape{1, 3}),
                noncontiguous({2, 3}, dt, -2, 2, 4), num(0)}},
              {"0-d",
               {random_tensor({}, dt), ids({0}, Shape{}), random_tensor({}, dt, -2, 2, 5), num(0)}},
              {"large",
               {random_tensor({200, 300}, dt), rnd_index({150, 300}, 200, 6),
                random_tensor({150, 300}, dt, -2, 2, 7), num(0)}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return scatter_add(in[0], in[3].item<int64_t>(), in[1], in[2]);
            },
        .reference = [](const std::vector<Ref>& r, DType) { return scatter_ref(r, true); },
        .errors =
            {
                expect_error<IndexError>(
                    "out of bounds", "scatter_add",
                    [] {
                      scatter_add(zeros({2, 2}), 1, ids({5}, Shape{1, 1}), zeros({1, 1}));
                    }),
                expect_error<ShapeError>(
                    "ndim", "scatter_add",
                    [] {
                      scatter_add(zeros({2, 2}), 1, ids({0}, Shape{1, 1}), zeros({1}));
                    }),
            },
        .tolerance = sum_tolerance,
    },
    {
        .prim = "masked_fill",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"same shape", {random_tensor({3, 4}, dt), random_tensor({3, 4}, kBool, -2, 2, 3)}},
              {"broadcast mask", {noncontiguous({4, 6}, dt), random_tensor({6}, kBool, -2, 2, 4)}},
              {"0-d", {random_tensor({}, dt), scalar_tensor(true)}},
              {"empty", {random_tensor({0, 3}, dt), random_tensor({3}, kBool)}},
              {"large", {random_tensor({70000}, dt), random_tensor({70000}, kBool, -2, 2, 5)}},
          };
        },
        .op = [](const std::vector<Tensor>& in) { return masked_fill(in[0], in[1], 1); },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              Ref out = r[0];
              for (int64_t i = 0; i < out.numel(); ++i)
                if (at_broadcast(r[1], unravel(i, out.shape)) != 0) {
                  out.data[i] = 1;
                  if (!out.imag.empty()) out.imag[i] = 0;
                }
              return out;
            },
        .errors =
            {
                expect_error<DTypeError>("int mask", "masked_fill",
                                         [] { masked_fill(zeros({2}), zeros({2}, kInt64), 1); }),
                expect_error<ShapeError>("mask shape", "masked_fill",
                                         [] { masked_fill(zeros({2}), zeros({3}, kBool), 1); }),
                expect_error<DTypeError>(
                    "complex into real", "masked_fill",
                    [] { masked_fill(zeros({2}), zeros({2}, kBool), Scalar(Complex64(0, 1))); }),
            },
    },
    {
        .prim = "nonzero",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"1-d", {random_tensor({9}, kInt64, -1, 1, 3).to(dt)}},
              {"3-d non-contiguous",
               {random_tensor({2, 4, 3}, kInt64, -1, 1, 4).to(dt).transpose(0, 2)}},
              {"0-d", {scalar_tensor(1, dt)}},
              {"0-d zero", {scalar_tensor(0, dt)}},
              {"empty", {zeros({0, 3}, dt)}},
          };
        },
        .op = [](const std::vector<Tensor>& in) { return nonzero(in[0]); },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const Ref& x = r[0];
              const auto nd = static_cast<int64_t>(x.shape.size());
              Ref out{{0, nd}, {}, {}};
              for (int64_t i = 0; i < x.numel(); ++i)
                if (x.data[i] != 0 || (!x.imag.empty() && x.imag[i] != 0)) {
                  for (int64_t c : unravel(i, x.shape)) out.data.push_back(static_cast<double>(c));
                  ++out.shape[0];
                }
              return out;
            },
        .expected_dtype = [](const std::vector<Tensor>&) { return kInt64; },
    },
    {
        .prim = "index",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 0 negatives", {random_tensor({4, 3}, dt), ids({0}), ids({-1, 2, -4})}},
              {"adjacent broadcast",
               {random_tensor({2, 3, 4}, dt), ids({1, 2}), ids({0, 2}, Shape{2, 1}),
                ids({3, 1, 0})}},
              {"non-adjacent",
               {noncontiguous({3, 4, 5}, dt), ids({0, 2}), ids({2, 0}), ids({4, 4})}},
              {"0-d index", {random_tensor({3, 2}, dt), ids({0}), ids({2}, Shape{})}},
              {"empty index", {random_tensor({3, 2}, dt), ids({0}), ids({})}},
              {"large", {random_tensor({500, 100}, dt), ids({0}), rnd_index({400}, 500, 8)}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return index(in[0], adv_indices(in, 2, in[0].dim()));
            },
        .reference = index_ref,
        .errors =
            {
                expect_error<IndexError>("out of bounds", "index",
                                         [] { index(zeros({3}), {ids({3})}); }),
                expect_error<IndexError>("below -size", "index",
                                         [] { index(zeros({3}), {ids({-4})}); }),
                expect_error<IndexError>("too many", "index",
                                         [] {
                                           index(zeros({3}), {ids({0}), ids({0})});
                                         }),
                expect_error<IndexError>("float", "index", [] { index(zeros({3}), {zeros({1})}); }),
                expect_error<IndexError>("mask shape", "index",
                                         [] { index(zeros({3}), {zeros({2}, kBool)}); }),
                expect_error<IndexError>("no broadcast", "index",
                                         [] {
                                           index(zeros({3, 3}), {ids({0, 1}), ids({0, 1, 2})});
                                         }),
            },
    },
    put_entry("index_put", false),
    put_entry("index_put_", true),
});

TEST(Indexing, Table) {
  const std::set<std::string> mine = {"index_select", "gather",      "scatter",
                                      "scatter_add",  "masked_fill", "nonzero",
                                      "index",        "index_put",   "index_put_"};
  for (const auto& e : all_entries())
    if (mine.count(e.prim)) check_entry(e);
}

std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }

TEST(Indexing, IntsAndSlices) {
  Tensor x = arange(24, kFloat32).reshape({2, 3, 4});
  Tensor a = x.index({1, Slice(None, None, 2)});  // x[1, ::2] -> rows 0 and 2 of block 1
  EXPECT_EQ(a.shape(), (Shape{2, 4}));
  EXPECT_EQ(vals(a), (std::vector<float>{12, 13, 14, 15, 20, 21, 22, 23}));
  EXPECT_TRUE(a.storage() == x.storage());  // a view
  EXPECT_THROW(x.index({1, Slice(None, None, -1)}), ValueError);
  Tensor b = x.index({Slice(1, None, 2), None, Ellipsis, -1});  // x[1::2, None, ..., -1]
  EXPECT_EQ(b.shape(), (Shape{1, 1, 3}));
  EXPECT_EQ(vals(b), (std::vector<float>{15, 19, 23}));
  EXPECT_EQ(vals(x.index({-1, -1, -1})), (std::vector<float>{23}));
  EXPECT_EQ(x.index({Ellipsis}).shape(), x.shape());
  EXPECT_EQ(x.index({None, Ellipsis, None}).shape(), (Shape{1, 2, 3, 4, 1}));
  EXPECT_THROW(x.index({0, 0, 0, 0}), IndexError);
  EXPECT_THROW(x.index({Ellipsis, Ellipsis}), IndexError);
  EXPECT_THROW(x.index({2}), IndexError);
  EXPECT_THROW(x.index({zeros({1})}), IndexError);
  Tensor s = scalar_tensor(5.0, kFloat32);
  EXPECT_EQ(s.index({None}).shape(), (Shape{1}));
  EXPECT_EQ(s.index({Ellipsis}).shape(), (Shape{}));
}

TEST(Indexing, TensorIndicesBroadcastAndPlacement) {
  Tensor x = arange(24, kFloat32).reshape({2, 3, 4});
  // Adjacent advanced indices (dims 1, 2) broadcast (2,1) x (3,) -> (2, 3) in place of dims 1-2.
  Tensor r = x.index({Slice(), ids({0, 2}, Shape{2, 1}), ids({1, 3, -1})});
  EXPECT_EQ(r.shape(), (Shape{2, 2, 3}));
  EXPECT_EQ(vals(r), (std::vector<float>{1, 3, 3, 9, 11, 11, 13, 15, 15, 21, 23, 23}));
  // Non-adjacent (dims 0 and 2): broadcast dims move to the front -> (2, 3).
  Tensor n = x.index({ids({0, 1}), Slice(), ids({3, 0})});
  EXPECT_EQ(n.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(n), (std::vector<float>{3, 7, 11, 12, 16, 20}));
  // An int between: PyTorch selects first, so the tensors become adjacent.
  Tensor m = x.index({ids({1, 0}), 1, ids({2, 2})});
  EXPECT_EQ(m.shape(), (Shape{2}));
  EXPECT_EQ(vals(m), (std::vector<float>{18, 6}));
  // Other integer dtypes work as indices.
  EXPECT_EQ(vals(x.index({0, 0, tensor<int8_t>({3, -4})})), (std::vector<float>{3, 0}));
  EXPECT_EQ(vals(x.index({0, 0, tensor<uint8_t>({2})})), (std::vector<float>{2}));
}

TEST(Indexing, BoolMasks) {
  Tensor x = arange(6, kFloat32).reshape({2, 3});
  Tensor m = tensor<bool>({true, false, true, false, true, true}, Shape{2, 3});
  EXPECT_EQ(vals(x.index({m})), (std::vector<float>{0, 2, 4, 5}));
  EXPECT_EQ(vals(x.index({Slice(), tensor<bool>({false, true, true})})),
            (std::vector<float>{1, 2, 4, 5}));
  EXPECT_EQ(x.index({tensor<bool>({false, false})}).shape(), (Shape{0, 3}));
  EXPECT_EQ(x.index({scalar_tensor(true)}).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(x.index({scalar_tensor(false)}).shape(), (Shape{0, 2, 3}));
  EXPECT_THROW(x.index({tensor<bool>({true, false, true})}), IndexError);
  EXPECT_EQ(vals(masked_select(x, tensor<bool>({true, false, true}))),
            (std::vector<float>{0, 2, 3, 5}));
  EXPECT_THROW(masked_select(x, ids({1, 0, 1})), DTypeError);
  EXPECT_THROW(masked_select(x, tensor<bool>({true, false})), ShapeError);
}

TEST(Indexing, IndexPut) {
  Tensor base = zeros({3, 4});
  Tensor view = base.slice(1, 1, std::nullopt);  // columns 1..3
  const uint64_t v0 = base.version();
  view.index_put_({0, Slice()}, scalar_tensor(1.0, kFloat32));
  view.index_put_({ids({1, 2}), ids({0, 2})}, tensor<float>({5, 6}));
  view.index_put_({tensor<bool>({false, true, false}), Slice(0, 1)}, 7.0);
  view.index_put_({2, Slice(0, 2)}, tensor<float>({8, 9}));
  EXPECT_GT(base.version(), v0);
  EXPECT_EQ(vals(base), (std::vector<float>{0, 1, 1, 1, 0, 7, 0, 0, 0, 8, 9, 6}));
  // Accumulate with repeated indices, broadcasting the value over rows.
  Tensor acc = zeros({3, 2});
  index_put_(acc, {ids({0, 0, 2})}, tensor<float>({1, 2}), true);
  EXPECT_EQ(vals(acc), (std::vector<float>{2, 4, 0, 0, 1, 2}));
  // Functional index_put leaves x alone.
  Tensor x = zeros({3});
  Tensor y = index_put(x, {ids({-1})}, tensor<float>({4}));
  EXPECT_EQ(vals(x), (std::vector<float>{0, 0, 0}));
  EXPECT_EQ(vals(y), (std::vector<float>{0, 0, 4}));
  // Mask assignment and a non-adjacent write that broadcasts.
  Tensor z = arange(6, kFloat32).reshape({2, 3});
  z.index_put_({gt(z, Scalar(3))}, -1.0);
  EXPECT_EQ(vals(z), (std::vector<float>{0, 1, 2, 3, -1, -1}));
  Tensor w = zeros({2, 2, 2});
  w.index_put_({ids({0, 1}), Slice(), ids({1, 0})}, tensor<float>({3, 4}, Shape{2, 1}));
  EXPECT_EQ(vals(w), (std::vector<float>{0, 3, 0, 3, 4, 0, 4, 0}));
  EXPECT_THROW(w.index_put_({ids({2})}, 1.0), IndexError);
  EXPECT_THROW(w.index_put_({0}, zeros({3})), ShapeError);
  EXPECT_THROW(w.index_put_({ids({0})}, zeros({3})), ShapeError);
  // Overlapping source is snapshotted.
  Tensor o = arange(4, kFloat32);
  o.index_put_({ids({1, 2, 3})}, o.slice(0, 0, 3));
  EXPECT_EQ(vals(o), (std::vector<float>{0, 0, 1, 2}));
}

}  // namespace
}  // namespace tessera::test
