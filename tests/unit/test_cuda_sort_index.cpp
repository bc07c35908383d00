// The CUDA sort and advanced-indexing kernels against the CPU's results on the same inputs:
// sort / argsort / topk (every real dtype, ties, NaN, -0.0, infinities, every dim, strided
// inputs, long lines, k = 0 and k = n, empty and 0-d inputs), unique, nonzero / masked_select /
// bool masks, index, index_put and index_put_ (negative and repeated indices: the last write
// wins, as on the CPU; accumulate in every dtype), scatter, out-of-range indices raising
// IndexError at the next synchronization with the context still usable, and gradients through
// autograd (index_select, index, index_put, scatter, sort, topk, a class-weighted nll_loss).
// Selections are compared bit for bit. Every test skips when tessera::cuda::is_available() is
// false.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/nn/nn.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_bits;
using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;
namespace F = nn::functional;

const Device kCpu = Device::cpu();
const std::vector<DType> kReal = {kBool,  kUInt8,   kInt8,     kInt16,   kInt32,
                                  kInt64, kFloat16, kBFloat16, kFloat32, kFloat64};

// Values with many ties and every special one: NaN, +-inf, -0.0 and +0.0, huge and tiny
// (integers: small values of both signs, saturated into unsigned ones).
Tensor specials(DType dt, const Shape& s) {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor pool = is_floating(dt)
                          ? tensor<double>({0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 3.0, 3.0, 1e30, -1e30,
                                            inf, -inf, std::nan(""), 1e-40, 65504.0})
                          : tensor<double>({-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 100.0, -100.0});
  const int64_t n = std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
  return index_select(pool, 0, randint(0, pool.numel(), {n})).reshape(s).to(dt);
}

// The layouts a kernel must read in place: contiguous, transposed, every other row.
std::vector<std::pair<std::string, Tensor>> layouts(const Tensor& x) {
  std::vector<std::pair<std::string, Tensor>> v{{"contiguous", x}};
  if (x.dim() >= 2) v.emplace_back("transposed", x.transpose(0, x.dim() - 1));
  if (x.dim() >= 1 && x.size(0) >= 2) v.emplace_back("step 2", x.slice(0, 0, x.size(0), 2));
  return v;
}

std::string name_of(DType dt, const std::string& layout, int64_t dim, bool flag) {
  return std::string(dtype_name(dt)) + " " + layout + " dim " + std::to_string(dim) +
         (flag ? " descending" : " ascending");
}

// ---- sort, argsort, topk --------------------------------------------------------------------

TEST(CudaSort, SortArgsortTopkMatchTheCpuBitwise) {
  SKIP_WITHOUT_GPU();
  manual_seed(21);
  for (DType dt : kReal)
    for (const Shape& s : std::vector<Shape>{{9}, {5, 7}, {3, 4, 6}})
      for (const auto& [layout, x] : layouts(specials(dt, s))) {
        const Tensor xg = x.to(kGpu);
        // The GPU copy of a strided view is contiguous: read a strided view of it too.
        const int64_t last = x.dim() - 1;
        const Tensor xs = layout == "transposed"
                              ? x.transpose(0, last).contiguous().to(kGpu).transpose(0, last)
                              : xg;
        for (int64_t d = 0; d < x.dim(); ++d)
          for (bool desc : {false, true}) {
            const std::string what = name_of(dt, layout, d, desc);
            const auto [v, i] = sort(x, d, desc);
            for (const Tensor& in : {xg, xs}) {
              const auto [vg, ig] = sort(in, d, desc);
              expect_bits(vg, v, "sort values " + what);
              expect_bits(ig, i, "sort indices " + what);
              expect_bits(argsort(in, d, desc), argsort(x, d, desc), "argsort " + what);
            }
            const int64_t n = x.size(d);
            for (int64_t k : {int64_t{0}, int64_t{1}, n / 2, n}) {
              const auto [tv, ti] = topk(x, k, d, desc);
              const auto [tvg, tig] = topk(xs, k, d, desc);
              expect_bits(tvg, tv, "topk values k " + std::to_string(k) + " " + what);
              expect_bits(tig, ti, "topk indices k " + std::to_string(k) + " " + what);
            }
          }
      }
}

// Lines of 8-byte keys take a second pass by line; narrower keys carry the line above them.
TEST(CudaSort, LongLinesAndManyShortLinesMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(22);
  for (DType dt : {kFloat64, kInt64, kFloat32, kInt16, kBFloat16})
    for (const Shape& s : std::vector<Shape>{{3, 5000}, {20000, 3}, {1, 100000}})
      for (int64_t d : {0, 1})
        for (bool desc : {false, true}) {
          const Tensor x = specials(dt, s);
          const auto [v, i] = sort(x, d, desc);
          const auto [vg, ig] = sort(x.to(kGpu), d, desc);
          const std::string what = name_of(dt, shape_str(s), d, desc);
          expect_bits(vg, v, "sort values " + what);
          expect_bits(ig, i, "sort indices " + what);
        }
}

TEST(CudaSort, EmptyAndZeroDimInputsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor e = zeros({0, 4}, kFloat32), s = full({}, 2.5, kFloat32);
  for (int64_t d : {0, 1}) {
    const auto [v, i] = sort(e.to(kGpu), d);
    EXPECT_EQ(v.shape(), (Shape{0, 4}));
    EXPECT_EQ(i.dtype(), kInt64);
    const auto [tv, ti] = topk(e.to(kGpu), 0, d);
    expect_bits(tv, std::get<0>(topk(e, 0, d)), "topk of an empty tensor");
  }
  const auto [sv, si] = sort(s.to(kGpu), 0);
  expect_bits(sv, s, "sort of a 0-d tensor");
  expect_bits(si, zeros({}, kInt64), "sort index of a 0-d tensor");
  expect_bits(std::get<1>(topk(s.to(kGpu), 0, 0)), std::get<1>(topk(s, 0, 0)), "topk k = 0, 0-d");
  expect_bits(std::get<0>(topk(s.to(kGpu), 1, 0)), std::get<0>(topk(s, 1, 0)), "topk k = 1, 0-d");
  EXPECT_THROW((void)topk(zeros({3, 2}, kFloat32).to(kGpu), 4, 1), IndexError);
  // Complex tensors have no order, on any device.
  EXPECT_THROW((void)sort(zeros({3}, kComplex64).to(kGpu), 0), DTypeError);
}

// ---- unique, nonzero, masks -------------------------------------------------------------------

TEST(CudaSort, UniqueMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(23);
  for (DType dt : kReal)
    for (const Shape& s : std::vector<Shape>{{17}, {6, 9}, {3, 4, 5}, {0}, {}})
      for (const auto& [layout, x] : layouts(specials(dt, s))) {
        const UniqueResult want = unique(x, true, true);
        const UniqueResult got = unique(x.to(kGpu), true, true);
        const std::string what = std::string(dtype_name(dt)) + " " + shape_str(s) + " " + layout;
        // Each NaN is its own value; -0.0 and +0.0 are one, kept as the first one met.
        expect_bits(got.values, want.values, "unique values " + what);
        expect_bits(got.inverse, want.inverse, "unique inverse " + what);
        expect_bits(got.counts, want.counts, "unique counts " + what);
      }
}

TEST(CudaSort, NonzeroMaskedSelectAndBoolMasksMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(24);
  for (DType dt : kReal)
    for (const Shape& s : std::vector<Shape>{{17}, {6, 9}, {2, 3, 4}, {3, 0, 2}, {}})
      for (const auto& [layout, x] : layouts(specials(dt, s))) {
        const std::string what = std::string(dtype_name(dt)) + " " + shape_str(s) + " " + layout;
        expect_bits(nonzero(x.to(kGpu)), nonzero(x), "nonzero " + what);  // -0.0 is zero
        if (x.dim() == 0) continue;
        const Tensor mask = ne(specials(kInt8, x.shape()), 0);
        expect_bits(masked_select(x.to(kGpu), mask.to(kGpu)), masked_select(x, mask),
                    "masked_select " + what);
        expect_bits(x.to(kGpu).index({mask.to(kGpu)}), x.index({mask}), "x[mask] " + what);
      }
  // Complex: nonzero when either part is (a -0.0 imaginary part is zero).
  const Tensor c = specials(kFloat32, {11}).to(kComplex64);
  expect_bits(nonzero(c.to(kGpu)), nonzero(c), "nonzero complex64");
  // A mask over the leading dims selects rows.
  const Tensor x = randn({5, 3}, kFloat64), rows = tensor<bool>({true, false, true, true, false});
  expect_bits(x.to(kGpu).index({rows.to(kGpu)}), x.index({rows}), "rows by mask");
}

// ---- index, index_put, index_put_, scatter ----------------------------------------------------

TEST(CudaAdvancedIndex, IndexMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(25);
  for (DType dt : {kFloat32, kFloat64, kFloat16, kInt64, kInt8, kBool})
    for (const auto& [layout, x] : layouts(specials(dt, {4, 5, 6}))) {
      const Tensor xg = x.to(kGpu);
      const std::string what = std::string(dtype_name(dt)) + " " + layout;
      // Negative indices count from the end; repeated ones repeat.
      const Tensor i0 = randint(-x.size(0), x.size(0), {7});
      const Tensor i1 = randint(-x.size(1), x.size(1), {2, 7});
      const Tensor i2 = randint(-x.size(2), x.size(2), {7});
      const std::vector<std::vector<Tensor>> cases = {
          {i0},         {Tensor(), i1}, {i0, i1}, {Tensor(), Tensor(), i2}, {i0, Tensor(), i2},
          {i0, i1, i2}, {Tensor()}};
      for (size_t c = 0; c < cases.size(); ++c) {
        std::vector<Tensor> on_gpu;
        for (const Tensor& t : cases[c]) on_gpu.push_back(t.defined() ? t.to(kGpu) : t);
        expect_bits(index(xg, on_gpu), index(x, cases[c]),
                    "index case " + std::to_string(c) + " " + what);
      }
      // int32 indices and an empty index.
      expect_bits(index(xg, {Tensor(), i1.to(kInt32).to(kGpu)}), index(x, {Tensor(), i1}),
                  "int32 index " + what);
      const Tensor none = zeros({0}, kInt64);
      expect_bits(index(xg, {none.to(kGpu)}), index(x, {none}), "empty index " + what);
    }
}

// Repeated targets: the last write wins on the CPU (sequential), and on the GPU by design.
TEST(CudaAdvancedIndex, IndexPutKeepsTheLastWriteLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(26);
  std::vector<DType> dtypes = kReal;
  dtypes.push_back(kComplex64);
  for (DType dt : dtypes) {
    const auto base = [&](const Shape& s) {
      return dt == kComplex64 ? randn(s, kFloat32).to(kComplex64) : specials(dt, s);
    };
    const Tensor x = base({4, 5, 6});
    const Tensor i0 = randint(-4, 4, {9}), i2 = randint(0, 6, {9});
    const std::string what(dtype_name(dt));
    // x[i0] = v, v of the result shape (9, 5, 6), strided.
    const Tensor v = base({6, 5, 9}).transpose(0, 2);
    expect_bits(index_put(x.to(kGpu), {i0.to(kGpu)}, v.to(kGpu)), index_put(x, {i0}, v),
                "index_put " + what);
    // Non-adjacent indices (broadcast dims first), a broadcast value.
    const Tensor w = base({5});
    expect_bits(index_put(x.to(kGpu), {i0.to(kGpu), Tensor(), i2.to(kGpu)}, w.to(kGpu)),
                index_put(x, {i0, Tensor(), i2}, w), "index_put non-adjacent " + what);
    // In place into a strided view: the write lands in the base.
    Tensor cb = x.clone(), gb = x.to(kGpu);
    Tensor cv = cb.transpose(0, 2), gv = gb.transpose(0, 2);
    const Tensor u = base({9, 5, 4});
    index_put_(cv, {i2}, u);
    index_put_(gv, {i2.to(kGpu)}, u.to(kGpu));
    expect_bits(gb, cb, "index_put_ into a transposed view " + what);
  }
  // Python-style assignment with repeated indices.
  Tensor c = zeros({6}, kFloat32), g = zeros({6}, kFloat32).to(kGpu);
  const Tensor idx = tensor<int64_t>({1, 3, 1, -1, 3, 1});
  const Tensor val = tensor<float>({10.f, 20.f, 30.f, 40.f, 50.f, 60.f});
  c.index_put_({idx}, val);
  g.index_put_({idx.to(kGpu)}, val.to(kGpu));
  expect_bits(g, c, "x[idx] = v");
  EXPECT_EQ(values(g), (std::vector<double>{0, 60, 0, 50, 0, 40}));
}

// Integer-valued data: the sums are exact in every order, so atomics match the CPU bitwise.
TEST(CudaAdvancedIndex, IndexPutAccumulateMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(27);
  std::vector<DType> dtypes = kReal;
  dtypes.push_back(kComplex64);
  for (DType dt : dtypes) {
    const Tensor x = randint(-2, 3, {4, 5, 6}).to(dt);
    const Tensor i0 = randint(-4, 4, {40}), i2 = randint(0, 6, {40});
    const Tensor v = randint(-2, 3, {40, 5}).to(dt);
    const std::string what(dtype_name(dt));
    expect_bits(index_put(x.to(kGpu), {i0.to(kGpu), Tensor(), i2.to(kGpu)}, v.to(kGpu), true),
                index_put(x, {i0, Tensor(), i2}, v, true), "index_put accumulate " + what);
    // uint8 / int8 / int16 wrap; bool is or (1- and 2-byte fields share a 32-bit word).
    Tensor cb = x.clone(), gb = x.to(kGpu);
    const Tensor u = randint(-2, 3, {4, 5, 40}).to(dt);
    index_put_(cb, {Tensor(), Tensor(), i2}, u, true);
    index_put_(gb, {Tensor(), Tensor(), i2.to(kGpu)}, u.to(kGpu), true);
    expect_bits(gb, cb, "index_put_ accumulate " + what);
  }
  // Random float64: the order of the adds differs, so only to rounding.
  const Tensor x = randn({50, 3}, kFloat64), v = randn({400, 3}, kFloat64);
  const Tensor i = randint(0, 50, {400});
  expect_close(index_put(x.to(kGpu), {i.to(kGpu)}, v.to(kGpu), true), index_put(x, {i}, v, true),
               1e-12, 1e-12, "index_put accumulate float64");
}

TEST(CudaAdvancedIndex, ScatterKeepsTheLastWriteLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(28);
  std::vector<DType> dtypes = kReal;
  dtypes.push_back(kComplex64);
  for (DType dt : dtypes) {
    const auto base = [&](const Shape& s) {
      return dt == kComplex64 ? randn(s, kFloat32).to(kComplex64) : specials(dt, s);
    };
    for (const auto& [layout, x] : layouts(base({5, 6})))
      for (int64_t d : {0, 1}) {
        const Tensor idx = randint(0, x.size(d), {x.size(0), x.size(1)});  // many repeats
        const Tensor src = base({8, 7}).t();                               // larger, strided
        const std::string what = name_of(dt, layout, d, false);
        expect_bits(scatter(x.to(kGpu), d, idx.to(kGpu), src.to(kGpu)), scatter(x, d, idx, src),
                    "scatter " + what);
        expect_bits(scatter(x.to(kGpu), d, idx.to(kGpu), Scalar(1)), scatter(x, d, idx, Scalar(1)),
                    "scatter of a value " + what);
      }
  }
}

// Bad indices are found on the device: the next synchronization raises IndexError naming the
// op, the element is skipped, and the context stays usable.
TEST(CudaAdvancedIndex, OutOfRangeIsAnIndexErrorAtTheNextSynchronization) {
  SKIP_WITHOUT_GPU();
  const Tensor x = arange(20, kFloat32).reshape({4, 5}).to(kGpu);
  const Tensor bad = tensor<int64_t>({1, 7, -5, -6}).to(kGpu);  // -5 wraps to 0; 7 and -6 do not
  const auto expect_raise = cuda_test::expect_index_error_at_sync;
  Tensor y;
  EXPECT_NO_THROW(y = index(x, {Tensor(), bad}));  // queued: the check runs on the device
  expect_raise("index", "5");
  EXPECT_EQ(values(y.select(0, 0)), (std::vector<double>{1, 0, 0, 0}));  // skipped: 0
  (void)index_put(x, {Tensor(), bad}, ones({4, 4}, kFloat32).to(kGpu));
  expect_raise("index_put", "5");
  (void)index_put(x, {bad}, ones({4, 5}, kFloat32).to(kGpu), true);
  expect_raise("index_put", "4");
  Tensor z = zeros({4, 5}, kFloat32).to(kGpu);
  index_put_(z, {Tensor(), bad}, ones({4, 4}, kFloat32).to(kGpu));
  expect_raise("index_put_", "5");
  EXPECT_EQ(values(z.select(0, 0)), (std::vector<double>{1, 1, 0, 0, 0}));  // good ones written
  const Tensor sidx = tensor<int64_t>({0, 5, -1, 1}, Shape{2, 2}).to(kGpu);
  (void)scatter(x, 1, sidx, ones({2, 2}, kFloat32).to(kGpu));
  expect_raise("scatter", "5");
  // A host copy synchronizes too, and the device keeps working.
  const Tensor w = index(x, {bad});
  EXPECT_THROW((void)values(w), IndexError);
  EXPECT_EQ(values(index(x, {Tensor(), tensor<int64_t>({4}).to(kGpu)})),
            (std::vector<double>{4, 9, 14, 19}));
}

// ---- gradients ------------------------------------------------------------------------------

TEST(CudaAdvancedIndex, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(29);
  // The gradient of f(t) with respect to t, on the GPU and on the CPU.
  const auto grads = [](const Tensor& x,
                        const std::function<Tensor(const Tensor&, const Device&)>& f) {
    Tensor xc = x.detach().clone().requires_grad_(), xg = x.to(kGpu).detach().requires_grad_();
    f(xc, kCpu).backward();
    f(xg, kGpu).backward();
    return std::pair<Tensor, Tensor>{xg.grad(), xc.grad()};
  };
  const Tensor x = randn({6, 5}, kFloat64), x5 = randn({5, 5}, kFloat64);
  const Tensor idx = tensor<int64_t>({4, 0, 4, 2, 4});  // repeats accumulate
  const Tensor w = randn({6, 5}, kFloat64), w5 = randn({5, 5}, kFloat64);
  const auto [g1, c1] = grads(x, [&](const Tensor& t, const Device& d) {
    return (index_select(t, 0, idx.to(d)) * w5.to(d)).sum();
  });
  expect_close(g1, c1, 1e-14, 1e-14, "d index_select / dx");
  const auto [g2, c2] = grads(x, [&](const Tensor& t, const Device& d) {
    return square(index(t, {Tensor(), tensor<int64_t>({1, -1, 1}).to(d)})).sum();
  });
  expect_close(g2, c2, 1e-14, 1e-14, "d index / dx");
  // Without accumulate only the last write of a target gets the gradient.
  const auto [g3, c3] = grads(x5, [&](const Tensor& t, const Device& d) {
    return (index_put(zeros({6, 5}, kFloat64).to(d), {idx.to(d)}, t) * w.to(d)).sum();
  });
  expect_close(g3, c3, 0, 0, "d index_put / dvalues (repeated targets)");
  const auto [g4, c4] = grads(x5, [&](const Tensor& t, const Device& d) {
    const Tensor si = tensor<int64_t>({1, 1, 0, 2, 1}, Shape{5, 1}).expand({5, 5}).contiguous();
    return (scatter(zeros({3, 5}, kFloat64).to(d), 0, si.to(d), t) * w.narrow(0, 0, 3).to(d)).sum();
  });
  expect_close(g4, c4, 0, 0, "d scatter / dsrc (repeated targets)");
  const auto [g5, c5] = grads(x, [&](const Tensor& t, const Device& d) {
    return (std::get<0>(sort(t, 1, true)) * w.to(d)).sum() +
           square(std::get<0>(topk(t, 2, 0))).sum();
  });
  expect_close(g5, c5, 1e-14, 1e-14, "d sort, topk / dx");
}

// nll_loss picks weight[target] with index_select: its weight gradient is index_select's
// backward, an accumulating index_put.
TEST(CudaAdvancedIndex, WeightedNllLossWeightGradientMatchesTheCpu) {
  SKIP_WITHOUT_GPU();
  manual_seed(30);
  const Tensor logits = randn({32, 5}, kFloat64), weight = rand({5}, kFloat64) + 0.5;
  const Tensor target = randint(0, 5, {32});
  for (bool smoothing : {false, true}) {
    Tensor lc = logits.clone().requires_grad_(), wc = weight.detach().clone().requires_grad_();
    Tensor lg = logits.to(kGpu).detach().requires_grad_();
    Tensor wg = weight.to(kGpu).detach().requires_grad_();
    const double ls = smoothing ? 0.1 : 0.0;
    const Tensor loss_c = F::cross_entropy(lc, target, {.weight = wc, .label_smoothing = ls});
    const Tensor loss_g =
        F::cross_entropy(lg, target.to(kGpu), {.weight = wg, .label_smoothing = ls});
    expect_close(loss_g, loss_c, 1e-12, 1e-12, "weighted cross_entropy");
    loss_c.backward();
    loss_g.backward();
    expect_close(wg.grad(), wc.grad(), 1e-12, 1e-12, "d loss / d weight");
    expect_close(lg.grad(), lc.grad(), 1e-12, 1e-12, "d loss / d logits");
  }
  Tensor wc = weight.detach().clone().requires_grad_();
  Tensor wg = weight.to(kGpu).detach().requires_grad_();
  const Tensor logp = F::log_softmax(logits, 1);
  F::nll_loss(logp, target, {.weight = wc, .reduction = nn::Reduction::Sum}).backward();
  F::nll_loss(logp.to(kGpu), target.to(kGpu), {.weight = wg, .reduction = nn::Reduction::Sum})
      .backward();
  expect_close(wg.grad(), wc.grad(), 1e-12, 1e-12, "d nll_loss (sum) / d weight");
}

}  // namespace
}  // namespace tessera
