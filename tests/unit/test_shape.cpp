// Shape family: table entries (float64 references over Ref) and focused tests of the
// composite ops (stack, split, chunk, tile, broadcast_shapes).
#include <numeric>
#include <set>

#include "op_table.h"

namespace tessera::test {
namespace {

const std::vector<DType> kMoveDTypes = {kBool,    kUInt8,    kInt16,   kInt32,   kInt64,
                                        kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};

Tensor ints(std::vector<int64_t> v) { return tensor<int64_t>(v); }
std::vector<int64_t> attr(const Ref& r) {
  std::vector<int64_t> v;
  for (double d : r.data) v.push_back(static_cast<int64_t>(d));
  return v;
}
int64_t wrap(int64_t d, size_t nd) { return d < 0 ? d + static_cast<int64_t>(nd) : d; }

const bool registered = register_entries({
    {
        .prim = "cat",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 0",
               {random_tensor({2, 3}, dt), random_tensor({1, 3}, dt, -2, 2, 3), ints({0})}},
              {"dim 1 non-contiguous",
               {noncontiguous({3, 2}, dt), random_tensor({3, 4}, dt, -2, 2, 4), ints({-1})}},
              {"empty piece",
               {random_tensor({0, 3}, dt), random_tensor({2, 3}, dt, -2, 2, 5), ints({0})}},
              {"large",
               {random_tensor({300, 100}, dt), random_tensor({300, 60}, dt, -2, 2, 6), ints({1})}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return cat({in[0], in[1]}, in[2].item<int64_t>());
            },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const int64_t d = wrap(attr(r[2])[0], r[0].shape.size());
              Shape s = r[0].shape;
              s[d] += r[1].shape[d];
              Ref both = r[0];  // r[0] then r[1], picked by flat index into the concatenation
              both.data.insert(both.data.end(), r[1].data.begin(), r[1].data.end());
              both.imag.insert(both.imag.end(), r[1].imag.begin(), r[1].imag.end());
              return pick(both, s, [&](std::vector<int64_t> o) {
                if (o[d] < r[0].shape[d]) return flat(o, r[0].shape);
                o[d] -= r[0].shape[d];
                return r[0].numel() + flat(o, r[1].shape);
              });
            },
        .errors =
            {
                expect_error<ShapeError>("ndim", "cat",
                                         [] {
                                           cat({zeros({2, 3}), zeros({3})});
                                         }),
                expect_error<ShapeError>("sizes", "cat",
                                         [] {
                                           cat({zeros({2, 3}), zeros({2, 4})}, 0);
                                         }),
                expect_error<ShapeError>("0-d", "cat",
                                         [] {
                                           cat({zeros({}), zeros({})});
                                         }),
                expect_error<ValueError>("empty list", "cat", [] { cat({}); }),
                expect_error<IndexError>("bad dim", "cat", [] { cat({zeros({2})}, 1); }),
            },
    },
    {
        .prim = "flip",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 0", {random_tensor({4, 3}, dt), ints({0})}},
              {"both non-contiguous", {noncontiguous({4, 6}, dt), ints({-1, 0})}},
              {"0-d", {random_tensor({}, dt), ints({})}},
              {"empty", {random_tensor({0, 3}, dt), ints({1})}},
              {"large", {random_tensor({70000}, dt), ints({0})}},
          };
        },
        .op = [](const std::vector<Tensor>& in) { return flip(in[0], in[1].to_vector<int64_t>()); },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const Shape& s = r[0].shape;
              std::vector<int64_t> dims;
              for (int64_t d : attr(r[1])) dims.push_back(wrap(d, s.size()));
              return pick(r[0], s, [&](std::vector<int64_t> o) {
                for (int64_t d : dims) o[d] = s[d] - 1 - o[d];
                return flat(o, s);
              });
            },
        .errors = {expect_error<ValueError>("repeated dim", "flip",
                                            [] {
                                              flip(zeros({2, 2}), {0, -2});
                                            }),
                   expect_error<IndexError>("bad dim", "flip",
                                            [] {
                                              flip(zeros({2, 2}), {2});
                                            })},
    },
    {
        .prim = "roll",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"dim 1", {random_tensor({3, 5}, dt), ints({2}), ints({1})}},
              {"two dims non-contiguous", {noncontiguous({4, 6}, dt), ints({-1, 7}), ints({0, 1})}},
              {"flattened", {random_tensor({3, 4}, dt), ints({5}), ints({})}},
              {"empty", {random_tensor({0, 3}, dt), ints({1}), ints({0})}},
              {"large", {random_tensor({70000}, dt), ints({12345}), ints({0})}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              return roll(in[0], in[1].to_vector<int64_t>(), in[2].to_vector<int64_t>());
            },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const Shape& s = r[0].shape;
              const auto shifts = attr(r[1]), dims = attr(r[2]);
              auto mod = [](int64_t a, int64_t n) { return ((a % n) + n) % n; };
              if (dims.empty()) {
                const int64_t n = r[0].numel();
                return pick(r[0], s,
                            [&](std::vector<int64_t> o) { return mod(flat(o, s) - shifts[0], n); });
              }
              return pick(r[0], s, [&](std::vector<int64_t> o) {
                for (size_t k = 0; k < dims.size(); ++k) {
                  const int64_t d = wrap(dims[k], s.size());
                  o[d] = mod(o[d] - shifts[k], s[d]);
                }
                return flat(o, s);
              });
            },
        .errors = {expect_error<ValueError>("misaligned", "roll",
                                            [] {
                                              roll(zeros({2, 2}), {1, 2}, {0});
                                            })},
    },
    {
        .prim = "repeat",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          return {
              {"2-d", {random_tensor({2, 3}, dt), ints({2, 3})}},
              {"new dims non-contiguous", {noncontiguous({2, 3}, dt), ints({2, 1, 2})}},
              {"0-d", {random_tensor({}, dt), ints({3})}},
              {"zero repeats", {random_tensor({2}, dt), ints({0})}},
              {"large", {random_tensor({300}, dt), ints({120, 1})}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) { return repeat(in[0], in[1].to_vector<int64_t>()); },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const auto reps = attr(r[1]);
              Shape xs(reps.size() - r[0].shape.size(), 1);
              xs.insert(xs.end(), r[0].shape.begin(), r[0].shape.end());
              Shape s(reps.size());
              for (size_t d = 0; d < s.size(); ++d) s[d] = xs[d] * reps[d];
              return pick(r[0], s, [&](std::vector<int64_t> o) {
                for (size_t d = 0; d < o.size(); ++d) o[d] %= xs[d];
                return flat(o, xs);
              });
            },
        .errors = {expect_error<ShapeError>("too few", "repeat",
                                            [] {
                                              repeat(zeros({2, 2}), {2});
                                            }),
                   expect_error<ValueError>("negative", "repeat",
                                            [] { repeat(zeros({2}), {-1}); })},
    },
    {
        .prim = "pad",
        .dtypes = kMoveDTypes,
        .samples = [](DType dt) -> std::vector<Sample> {
          // inputs: x, pads, mode code (0 constant, 1 reflect, 2 replicate)
          return {
              {"constant last dim", {random_tensor({2, 3}, dt), ints({1, 2}), ints({0})}},
              {"constant crop", {random_tensor({2, 4}, dt), ints({-1, 1, 1, 0}), ints({0})}},
              {"reflect non-contiguous",
               {noncontiguous({3, 4}, dt), ints({2, 3, 1, 2}), ints({1})}},
              {"replicate", {random_tensor({2, 3}, dt), ints({3, 1}), ints({2})}},
              {"empty batch", {random_tensor({0, 3}, dt), ints({1, 1}), ints({2})}},
              {"large", {random_tensor({300, 200}, dt), ints({3, 4}), ints({1})}},
          };
        },
        .op =
            [](const std::vector<Tensor>& in) {
              static const std::array<std::string_view, 3> modes = {"constant", "reflect",
                                                                    "replicate"};
              return pad(in[0], in[1].to_vector<int64_t>(), modes[in[2].item<int64_t>()], 0.0);
            },
        .reference =
            [](const std::vector<Ref>& r, DType) {
              const Shape& xs = r[0].shape;
              const auto pads = attr(r[1]);
              const int64_t mode = attr(r[2])[0];
              const auto nd = static_cast<int64_t>(xs.size());
              std::vector<int64_t> left(nd, 0), right(nd, 0);
              for (size_t i = 0; i < pads.size() / 2; ++i) {
                left[nd - 1 - i] = pads[2 * i];
                right[nd - 1 - i] = pads[2 * i + 1];
              }
              Shape s(nd);
              for (int64_t d = 0; d < nd; ++d) s[d] = xs[d] + left[d] + right[d];
              return pick(r[0], s, [&](std::vector<int64_t> o) {
                for (int64_t d = 0; d < nd; ++d) {
                  int64_t i = o[d] - left[d];
                  const int64_t n = xs[d];
                  if (mode == 0 && (i < 0 || i >= n)) return int64_t{-1};
                  if (mode == 1) i = i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
                  if (mode == 2) i = std::clamp<int64_t>(i, 0, n - 1);
                  o[d] = i;
                }
                return flat(o, xs);
              });
            },
        .errors =
            {
                expect_error<ValueError>("reflect too large", "pad",
                                         [] {
                                           pad(zeros({2, 3}), {3, 0}, "reflect");
                                         }),
                expect_error<ValueError>("odd length", "pad",
                                         [] {
                                           pad(zeros({2, 3}), {1});
                                         }),
                expect_error<ValueError>("too long", "pad",
                                         [] {
                                           pad(zeros({3}), {1, 1, 1, 1});
                                         }),
                expect_error<ValueError>("bad mode", "pad",
                                         [] {
                                           pad(zeros({3}), {1, 1}, "circular");
                                         }),
                expect_error<ValueError>("negative size", "pad",
                                         [] {
                                           pad(zeros({3}), {-2, -2});
                                         }),
            },
    },
});

// tril/triu share a reference; inputs x, diagonal.
Ref tri_ref(const std::vector<Ref>& r, bool lower) {
  const int64_t k = attr(r[1])[0];
  const Shape& s = r[0].shape;
  return pick(r[0], s, [&](std::vector<int64_t> o) {
    const int64_t i = o[o.size() - 2], j = o.back();
    const bool keep = lower ? j - i <= k : j - i >= k;
    return keep ? flat(o, s) : int64_t{-1};
  });
}
std::vector<Sample> tri_samples(DType dt) {
  return {
      {"square", {random_tensor({4, 4}, dt), ints({0})}},
      {"wide batched", {random_tensor({2, 3, 5}, dt), ints({1})}},
      {"tall non-contiguous", {noncontiguous({5, 3}, dt), ints({-2})}},
      {"empty", {random_tensor({0, 3}, dt), ints({0})}},
      {"large", {random_tensor({4, 200, 100}, dt), ints({3})}},
  };
}
const bool registered_tri = register_entries({
    {.prim = "tril",
     .dtypes = kMoveDTypes,
     .samples = tri_samples,
     .op = [](const std::vector<Tensor>& in) { return tril(in[0], in[1].item<int64_t>()); },
     .reference = [](const std::vector<Ref>& r, DType) { return tri_ref(r, true); },
     .errors = {expect_error<ShapeError>("1-d", "tril", [] { tril(zeros({3})); })}},
    {.prim = "triu",
     .dtypes = kMoveDTypes,
     .samples = tri_samples,
     .op = [](const std::vector<Tensor>& in) { return triu(in[0], in[1].item<int64_t>()); },
     .reference = [](const std::vector<Ref>& r, DType) { return tri_ref(r, false); },
     .errors = {expect_error<ShapeError>("0-d", "triu", [] { triu(zeros({})); })}},
});

TEST(Shape, Table) {
  const std::set<std::string> mine = {"cat", "flip", "roll", "repeat", "pad", "tril", "triu"};
  for (const auto& e : all_entries())
    if (mine.count(e.prim)) check_entry(e);
}

std::vector<float> vals(const Tensor& t) { return t.to_vector<float>(); }

TEST(Shape, CatPromotesAndStack) {
  Tensor c = cat({tensor<int32_t>({1, 2}), tensor<float>({0.5f})});
  EXPECT_EQ(c.dtype(), kFloat32);
  EXPECT_EQ(vals(c), (std::vector<float>{1, 2, 0.5f}));
  EXPECT_EQ(cat({tensor<bool>({true}), tensor<uint8_t>({7})}).dtype(), kUInt8);
  Tensor a = tensor<float>({1, 2, 3}), b = tensor<float>({4, 5, 6});
  Tensor s0 = stack({a, b}), s1 = stack({a, b}, -1);
  EXPECT_EQ(s0.shape(), (Shape{2, 3}));
  EXPECT_EQ(vals(s0), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(s1.shape(), (Shape{3, 2}));
  EXPECT_EQ(vals(s1), (std::vector<float>{1, 4, 2, 5, 3, 6}));
  EXPECT_EQ(stack({scalar_tensor(1.0), scalar_tensor(2.0)}).shape(), (Shape{2}));
  EXPECT_THROW(stack({a, zeros({2})}), ShapeError);
  EXPECT_THROW(stack({a, b}, 2), IndexError);
  try {
    cat({zeros({2, 3}), zeros({2, 3}), zeros({2, 4})});
    ADD_FAILURE();
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 2"), std::string::npos) << e.what();
  }
}

TEST(Shape, SplitChunkTile) {
  Tensor x = arange(10, kFloat32);
  auto p = split(x, 4);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(vals(p[2]), (std::vector<float>{8, 9}));
  EXPECT_TRUE(p[1].storage() == x.storage());
  auto q = split(x.reshape({2, 5}), std::vector<int64_t>{2, 0, 3}, 1);
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[1].shape(), (Shape{2, 0}));
  EXPECT_EQ(vals(q[2]), (std::vector<float>{2, 3, 4, 7, 8, 9}));
  EXPECT_THROW(split(x, std::vector<int64_t>{2, 3}), ValueError);
  EXPECT_THROW(split(x, 0), ValueError);
  EXPECT_EQ(chunk(x, 3).size(), 3u);
  EXPECT_EQ(chunk(x, 3)[2].shape(), (Shape{2}));
  EXPECT_EQ(chunk(arange(6), 4).size(), 3u);  // like PyTorch: chunks of 2
  EXPECT_EQ(chunk(zeros({0}), 3).size(), 3u);
  EXPECT_THROW(chunk(x, 0), ValueError);
  Tensor t = tile(tensor<float>({1, 2}), {2});
  EXPECT_EQ(vals(t), (std::vector<float>{1, 2, 1, 2}));
  Tensor t2 = tile(tensor<float>({1, 2, 3, 4}, Shape{2, 2}), {2});  // reps padded to (1, 2)
  EXPECT_EQ(t2.shape(), (Shape{2, 4}));
  EXPECT_EQ(vals(t2), (std::vector<float>{1, 2, 1, 2, 3, 4, 3, 4}));
  EXPECT_EQ(tile(tensor<float>({1}), {2, 3}).shape(), (Shape{2, 3}));
  EXPECT_EQ(broadcast_shapes({3, 1}, {4}), (Shape{3, 4}));
  EXPECT_EQ(broadcast_shapes({}, {0, 2}), (Shape{0, 2}));
  EXPECT_THROW(broadcast_shapes({3}, {4}, "myop"), ShapeError);
  EXPECT_EQ(vals(pad(tensor<float>({1, 2}), {1, 1}, "constant", 9.0)),
            (std::vector<float>{9, 1, 2, 9}));
  EXPECT_EQ(vals(roll(scalar_tensor(3.0, kFloat32), {1})), (std::vector<float>{3}));
}

}  // namespace
}  // namespace tessera::test
