// Test-table entries for the view, copy, creation and random primitives.
#include <cmath>
#include <numbers>

#include "op_table.h"

namespace tessera::test {
namespace {

// Reference for any view: out[i...] = x[offset + sum(i_d * stride_d)] read from the base's
// contiguous data. Each entry gives the (shape, strides, offset) it expects, computed by hand.
struct Geometry {
  Shape shape;
  Strides strides;
  int64_t offset;
};
Ref view_ref(const Ref& base, const Geometry& g) {
  Ref out;
  out.shape = g.shape;
  int64_t n = 1;
  for (int64_t s : g.shape) n *= s;
  out.data.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    auto idx = unravel(i, g.shape);
    int64_t off = g.offset;
    for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * g.strides[d];
    out.data[i] = base.data[off];
  }
  return out;
}

// A contiguous base (2, 3, 4) holding 0..23 in every dtype sampled.
std::vector<Sample> base_sample(DType dt) {
  return {{"(2,3,4)", {arange(24, kInt64).reshape({2, 3, 4}).to(dt)}}};
}

OpEntry view_entry(std::string prim, std::function<Tensor(const Tensor&)> op, Geometry g,
                   std::vector<ErrorCase> errors) {
  return {prim,
          {kFloat32, kInt64, kBool, kFloat16},
          base_sample,
          [op](const std::vector<Tensor>& in) {
            Tensor out = op(in[0]);
            EXPECT_EQ(out.storage(), in[0].storage()) << "a view must share storage";
            return out;
          },
          [g](const std::vector<Ref>& r, DType) { return view_ref(r[0], g); },
          std::move(errors)};
}

const Tensor& base() {
  static Tensor b = zeros({2, 3, 4});
  return b;
}

std::vector<OpEntry> view_entries() {
  return {
      view_entry("view",
                 [](const Tensor& x) {
                   return x.view({6, 4});
                 },
                 {{6, 4}, {4, 1}, 0},
                 {expect_error<ShapeError>("bad numel", "view",
                                           [] {
                                             base().view({5, 5});
                                           })}),
      view_entry("permute",
                 [](const Tensor& x) {
                   return x.permute({2, 0, 1});
                 },
                 {{4, 2, 3}, {1, 12, 4}, 0},
                 {expect_error<ValueError>("repeated dim", "permute",
                                           [] {
                                             base().permute({0, 0, 1});
                                           })}),
      view_entry(
          "slice", [](const Tensor& x) { return x.slice(2, 1, std::nullopt, 2); },
          {{2, 3, 2}, {12, 4, 2}, 1},
          {expect_error<ValueError>("zero step", "slice", [] { base().slice(0, 0, 1, 0); })}),
      view_entry("select", [](const Tensor& x) { return x.select(1, -1); }, {{2, 4}, {12, 1}, 8},
                 {expect_error<IndexError>("out of range", "select", [] { base().select(1, 3); })}),
      view_entry("expand",
                 [](const Tensor& x) {
                   return x.select(2, 0).unsqueeze(2).expand({2, 3, 5});
                 },
                 {{2, 3, 5}, {12, 4, 0}, 0},
                 {expect_error<ShapeError>("bad size", "expand",
                                           [] {
                                             base().expand({2, 3, 5});
                                           })}),
      view_entry("squeeze", [](const Tensor& x) { return x.slice(1, 1, 2).squeeze(1); },
                 {{2, 4}, {12, 1}, 4},
                 {expect_error<IndexError>("bad dim", "squeeze", [] { base().squeeze(3); })}),
      view_entry("unsqueeze", [](const Tensor& x) { return x.unsqueeze(-1); },
                 {{2, 3, 4, 1}, {12, 4, 1, 1}, 0},
                 {expect_error<IndexError>("bad dim", "unsqueeze", [] { base().unsqueeze(5); })}),
      view_entry(
          "diagonal", [](const Tensor& x) { return x.diagonal(1, 1, 2); }, {{2, 3}, {12, 5}, 1},
          {expect_error<ValueError>("same dims", "diagonal", [] { base().diagonal(0, 1, 1); })}),
      view_entry("as_strided",
                 [](const Tensor& x) {
                   return x.as_strided({3, 3}, {7, 1}, 2);
                 },
                 {{3, 3}, {7, 1}, 2},
                 {expect_error<IndexError>("past the end", "as_strided",
                                           [] {
                                             base().as_strided({4, 4}, {8, 1});
                                           })}),
  };
}

// Identity reference for copies: values unchanged (rounded to the output dtype by close()).
Ref identity(const std::vector<Ref>& r, DType) { return r[0]; }

std::vector<OpEntry> copy_entries() {
  return {
      {"clone",
       kAllDTypes,
       [](DType dt) { return unary_samples(dt); },
       [](const std::vector<Tensor>& in) {
         Tensor c = in[0].clone();
         EXPECT_TRUE(c.is_contiguous());
         EXPECT_NE(c.storage(), in[0].storage());
         return c;
       },
       identity,
       {}},
      {"cast",
       kRealDTypes,
       [](DType dt) { return unary_samples(dt, -100, 100); },
       [](const std::vector<Tensor>& in) { return in[0].to(kFloat64); },
       identity,
       {expect_error<DTypeError>("bad dtype code", "dtype",
                                 [] { zeros({1}).to(static_cast<DType>(42)); })}},
      {"copy_",
       kAllDTypes,
       [](DType dt) { return unary_samples(dt); },
       [](const std::vector<Tensor>& in) {
         Tensor dst = empty_like(in[0]).t();  // write through a (possibly) non-contiguous view
         return dst.copy_(in[0].t());
       },
       [](const std::vector<Ref>& r, DType) {
         // dst.t() holds in.t(): transposing back gives the input's values in t() order.
         Ref out;
         const Ref& x = r[0];
         out.shape = Shape(x.shape.rbegin(), x.shape.rend());
         out.data.resize(x.data.size());
         if (!x.imag.empty()) out.imag.resize(x.data.size());
         for (int64_t i = 0; i < x.numel(); ++i) {
           auto idx = unravel(i, out.shape);
           std::reverse(idx.begin(), idx.end());
           int64_t src = 0;
           for (size_t d = 0; d < idx.size(); ++d) src = src * x.shape[d] + idx[d];
           out.data[i] = x.data[src];
           if (!x.imag.empty()) out.imag[i] = x.imag[src];
         }
         return out;
       },
       {expect_error<ShapeError>("no broadcast", "copy_",
                                 [] {
                                   zeros({2, 3}).copy_(zeros({3, 2}));
                                 })}},
  };
}

Ref filled(Shape shape, const std::function<double(int64_t)>& f) {
  Ref r;
  r.shape = shape;
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  r.data.resize(n);
  for (int64_t i = 0; i < n; ++i) r.data[i] = f(i);
  return r;
}
// Creation ops take no tensors; the sample carries the dtype as an empty tensor.
std::vector<Sample> no_inputs(DType dt) { return {{"dtype carrier", {empty({0}, dt)}}}; }
DType carried(const std::vector<Tensor>& in) { return in[0].dtype(); }

// Independent re-derivation of the documented random streams: element i of a draw uses
// Philox counter (offset + i) under key = seed.
double u24(uint32_t w) { return static_cast<double>(w >> 8) * 0x1p-24; }
double u53(uint32_t a, uint32_t b) {
  return static_cast<double>((uint64_t{a} << 21) ^ (b >> 11)) * 0x1p-53;
}

std::vector<OpEntry> creation_entries() {
  const Shape s{3, 5};
  return {
      {"fill",
       kAllDTypes,
       no_inputs,
       [s](const std::vector<Tensor>& in) { return full(s, 1, carried(in)); },
       [s](const std::vector<Ref>&, DType) { return filled(s, [](int64_t) { return 1.0; }); },
       {expect_error<ValueError>("negative size", "creation",
                                 [] {
                                   zeros({2, -3});
                                 })}},
      {"arange",
       kRealDTypes,
       no_inputs,
       [](const std::vector<Tensor>& in) { return arange(1, 15, 2, carried(in)); },
       [](const std::vector<Ref>&, DType) {
         return filled({7}, [](int64_t i) { return 1.0 + 2.0 * i; });
       },
       {expect_error<ValueError>("zero step", "arange", [] { arange(0, 3, 0); })}},
      {"linspace",
       kFloatDTypes,
       no_inputs,
       [](const std::vector<Tensor>& in) { return linspace(-1, 2, 7, carried(in)); },
       [](const std::vector<Ref>&, DType) {
         return filled({7}, [](int64_t i) { return -1.0 + 0.5 * i; });
       },
       {expect_error<ValueError>("negative steps", "linspace", [] { linspace(0, 1, -2); })}},
      {"eye",
       kAllDTypes,
       no_inputs,
       [](const std::vector<Tensor>& in) { return eye(3, 4, carried(in)); },
       [](const std::vector<Ref>&, DType) {
         return filled({3, 4}, [](int64_t i) { return i / 4 == i % 4 ? 1.0 : 0.0; });
       },
       {expect_error<ValueError>("negative size", "creation", [] { eye(-1); })}},
      {"uniform",
       {kFloat32, kFloat64},
       no_inputs,
       [s](const std::vector<Tensor>& in) {
         Generator g(99);
         return uniform(-2, 3, s, carried(in), &g);
       },
       [s](const std::vector<Ref>&, DType dt) {
         return filled(s, [dt](int64_t i) {
           auto w = philox_at(99, static_cast<uint64_t>(i));
           return -2.0 + 5.0 * (dt == kFloat64 ? u53(w[0], w[1]) : u24(w[0]));
         });
       },
       {expect_error<ValueError>("low > high", "uniform", [] { uniform(2, 1, {2}); })}},
      {"normal",
       {kFloat32, kFloat64},
       no_inputs,
       [s](const std::vector<Tensor>& in) {
         Generator g(5);
         g.reserve(10);  // start mid-stream: offsets must be honoured
         return normal(1, 2, s, carried(in), &g);
       },
       [s](const std::vector<Ref>&, DType) {
         return filled(s, [](int64_t i) {
           auto w = philox_at(5, static_cast<uint64_t>(10 + i));
           double z = std::sqrt(-2 * std::log(1 - u53(w[0], w[1]))) *
                      std::cos(2 * std::numbers::pi * u53(w[2], w[3]));
           return 1 + 2 * z;
         });
       },
       {expect_error<ValueError>("negative std", "normal", [] { normal(0, -1, {2}); })}},
      {"randint",
       kIntDTypes,
       no_inputs,
       [s](const std::vector<Tensor>& in) {
         Generator g(17);
         return randint(3, 17, s, carried(in), &g);
       },
       [s](const std::vector<Ref>&, DType) {
         return filled(s, [](int64_t i) {
           auto w = philox_at(17, static_cast<uint64_t>(i));
           return static_cast<double>(3 + static_cast<int64_t>((uint64_t{w[0]} << 32 | w[1]) % 14));
         });
       },
       {expect_error<ValueError>("empty range", "randint", [] { randint(1, 0, {2}); })}},
      {"bernoulli",
       {kFloat32, kFloat64},
       no_inputs,
       [s](const std::vector<Tensor>& in) {
         Generator g(3);
         return bernoulli(linspace(0, 0.875, 15, carried(in)).reshape(s), &g);  // p = i / 16, exact
       },
       [s](const std::vector<Ref>&, DType) {
         return filled(s, [](int64_t i) {
           auto w = philox_at(3, static_cast<uint64_t>(i));
           double p = static_cast<double>(i) / 16.0;
           return u53(w[0], w[1]) < p ? 1.0 : 0.0;
         });
       },
       {expect_error<DTypeError>("int probabilities", "bernoulli",
                                 [] { bernoulli(ones({2}, kInt32)); })}},
  };
}

// The float32 uniform stream uses 24 bits of the first word (checked separately: the table
// entry above exercises float64).
TEST(Creation, UniformFloat32Stream) {
  Generator g(42);
  auto v = rand({64}, kFloat32, &g).to_vector<float>();
  for (int64_t i = 0; i < 64; ++i)
    EXPECT_EQ(v[i], static_cast<float>(u24(philox_at(42, static_cast<uint64_t>(i))[0])));
}

std::vector<OpEntry>& entries() {
  static std::vector<OpEntry> e = [] {
    std::vector<OpEntry> all = view_entries();
    for (auto& x : copy_entries()) all.push_back(std::move(x));
    for (auto& x : creation_entries()) all.push_back(std::move(x));
    return all;
  }();
  return e;
}
bool registered = register_entries(entries());

TEST(ViewsCopiesCreation, Table) {
  for (const OpEntry& e : entries()) check_entry(e);
}

}  // namespace
}  // namespace tessera::test
