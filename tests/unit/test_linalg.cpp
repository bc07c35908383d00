// Linalg: matmul (BLAS and builtin kernels) through the op table, plus dot, outer and einsum.
// References are float64 loops over Ref, independent of every Tessera kernel.
#include <cmath>
#include <complex>

#include "op_table.h"

namespace tessera::test {
namespace {

using cd = std::complex<double>;

// Random values without elementwise kernels: integers and bools are rounded on the host.
Tensor values(Shape shape, DType dt, uint64_t seed, double lo = -2, double hi = 2) {
  if (is_floating(dt) || dt == kComplex64) return random_tensor(std::move(shape), dt, lo, hi, seed);
  Generator g(seed);
  std::vector<double> v = uniform(lo, hi, shape, kFloat64, &g).to_vector<double>();
  for (double& x : v) x = dt == kBool ? (x > (lo + hi) / 2) : std::nearbyint(x);
  return tensor(v, shape).to(dt);
}
// Same values, stored with the last two dims swapped (a column-major view).
Tensor transposed(Shape shape, DType dt, uint64_t seed) {
  std::swap(shape[shape.size() - 1], shape[shape.size() - 2]);
  return values(shape, dt, seed).mT();
}

cd at(const Ref& r, int64_t flat) { return {r.data[flat], r.imag.empty() ? 0.0 : r.imag[flat]}; }

// Flat index of a broadcast read of r (trailing-aligned, size-1 dims repeat).
int64_t bflat(const Shape& s, const std::vector<int64_t>& idx) {
  int64_t flat = 0;
  const size_t off = idx.size() - s.size();
  for (size_t i = 0; i < s.size(); ++i) flat = flat * s[i] + (s[i] == 1 ? 0 : idx[off + i]);
  return flat;
}

// Integer results wrap to the dtype's width, as the kernels do.
double wrap_int(double v, DType dt) {
  const auto x = static_cast<int64_t>(v);
  switch (dt) {
    case kUInt8:
      return static_cast<uint8_t>(x);
    case kInt8:
      return static_cast<int8_t>(x);
    case kInt16:
      return static_cast<int16_t>(x);
    case kInt32:
      return static_cast<int32_t>(x);
    default:
      return v;
  }
}

// numpy.matmul by definition, in float64 (complex when the inputs are).
Ref ref_matmul(const std::vector<Ref>& in, DType dt) {
  Ref a = in[0], b = in[1];
  const bool va = a.shape.size() == 1, vb = b.shape.size() == 1;
  if (va) a.shape.insert(a.shape.begin(), 1);
  if (vb) b.shape.push_back(1);
  const size_t na = a.shape.size() - 2, nb = b.shape.size() - 2, nbat = std::max(na, nb);
  Shape batch(nbat);
  for (size_t i = 0; i < nbat; ++i) {
    const int64_t x = i < nbat - na ? 1 : a.shape[i - (nbat - na)];
    const int64_t y = i < nbat - nb ? 1 : b.shape[i - (nbat - nb)];
    batch[i] = x == 1 ? y : x;
  }
  const int64_t m = a.shape[na], k = a.shape[na + 1], n = b.shape[nb + 1];
  Ref r;
  r.shape = batch;
  if (!va) r.shape.push_back(m);
  if (!vb) r.shape.push_back(n);
  int64_t count = 1;
  for (int64_t s : batch) count *= s;
  const bool cplx = !a.imag.empty();
  for (int64_t bi = 0; bi < count; ++bi) {
    std::vector<int64_t> idx = unravel(bi, batch);
    idx.resize(nbat + 2);
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        cd s = 0;
        for (int64_t p = 0; p < k; ++p) {
          idx[nbat] = i, idx[nbat + 1] = p;
          const cd x = at(a, bflat(a.shape, idx));
          idx[nbat] = p, idx[nbat + 1] = j;
          s += x * at(b, bflat(b.shape, idx));
        }
        r.data.push_back(wrap_int(s.real(), dt));
        if (cplx) r.imag.push_back(s.imag());
      }
  }
  return r;
}

// Float sums over k terms: error grows with k (up to 300 here), so atol scales with sqrt(k).
Tolerance matmul_tolerance(DType dt) {
  const double sk = std::sqrt(300.0);
  switch (dt) {
    case kFloat32:
    case kComplex64:
      return {1e-5, 1e-5 * sk};
    case kFloat64:
      return {1e-12, 1e-12 * sk};
    case kFloat16:
      return {2e-3, 1e-2};  // float accumulation, one rounding to half at the end
    case kBFloat16:
      return {1e-2, 1e-2};
    default:
      return {0, 0};
  }
}

std::vector<Sample> matmul_samples(DType dt) {
  auto v = [&](Shape s, uint64_t seed) { return values(std::move(s), dt, seed); };
  Tensor strided = v({6, 8}, 40).slice(1, 0, std::nullopt, 2);  // (6, 4), column stride 2: packed
  return {
      {"2-d @ 2-d", {v({3, 4}, 1), v({4, 5}, 2)}},
      {"1-d @ 2-d", {v({4}, 3), v({4, 5}, 4)}},
      {"2-d @ 1-d", {v({3, 4}, 5), v({4}, 6)}},
      {"1-d @ 1-d", {v({7}, 7), v({7}, 8)}},
      {"1-d @ batched", {v({4}, 9), v({2, 4, 3}, 10)}},
      {"batched @ 1-d", {v({2, 3, 4}, 11), v({4}, 12)}},
      {"batch broadcast", {v({2, 1, 3, 4}, 13), v({5, 4, 2}, 14)}},
      {"batched @ 2-d (folds)", {v({2, 3, 3, 4}, 15), v({4, 5}, 16)}},
      {"2-d @ batched", {v({3, 4}, 17), v({2, 4, 5}, 18)}},
      {"transposed both", {transposed({5, 6}, dt, 19), transposed({6, 4}, dt, 20)}},
      {"transposed batched", {transposed({2, 5, 6}, dt, 21), transposed({2, 6, 4}, dt, 22)}},
      {"strided (packed)", {strided, v({4, 3}, 23)}},
      {"expanded batch", {v({1, 3, 4}, 24).expand({3, 3, 4}), v({3, 4, 2}, 25)}},
      {"expanded rows", {v({1, 1, 4}, 41).expand({3, 1, 4}), v({4, 2}, 42)}},
      {"row stride 0", {v({1, 4}, 26).expand({3, 4}), v({4, 2}, 27)}},
      {"many small (parallel)", {v({64, 5, 6}, 28), transposed({64, 6, 7}, dt, 29)}},
      {"empty k", {v({3, 0}, 30), v({0, 4}, 31)}},
      {"empty m", {v({0, 4}, 32), v({4, 3}, 33)}},
      {"empty batch", {v({0, 3, 4}, 34), v({4, 2}, 35)}},
      {"large", {v({70, 130}, 36), transposed({130, 90}, dt, 37)}},
      {"large k", {v({40, 300}, 38), v({300, 50}, 39)}},
  };
}

OpEntry matmul_entry() {
  OpEntry e;
  e.prim = "matmul";
  e.dtypes = {kFloat32, kFloat64, kComplex64, kInt64,   kInt32,
              kInt16,   kInt8,    kUInt8,     kFloat16, kBFloat16};
  e.samples = matmul_samples;
  e.op = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); };
  e.reference = ref_matmul;
  e.tolerance = matmul_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  auto f = [](Shape s) { return zeros(std::move(s)); };
  e.errors = {
      expect_error<ShapeError>("inner dims", "matmul",
                               [f] {
                                 matmul(f({3, 4}), f({5, 2}));
                               }),
      expect_error<ShapeError>("inner dims 1-d", "matmul",
                               [f] {
                                 matmul(f({3}), f({4, 2}));
                               }),
      expect_error<ShapeError>("0-d operand", "matmul", [f] { matmul(f({}), f({3})); }),
      expect_error<ShapeError>("batch clash", "matmul",
                               [f] {
                                 matmul(f({2, 3, 4}), f({3, 4, 5}));
                               }),
      expect_error<DTypeError>("bool", "matmul",
                               [] {
                                 matmul(zeros({2, 2}, kBool), zeros({2, 2}, kBool));
                               }),
      expect_error<ShapeError>("dot 2-d", "dot",
                               [f] {
                                 dot(f({2, 2}), f({2}));
                               }),
      expect_error<ShapeError>("dot sizes", "dot", [f] { dot(f({2}), f({3})); }),
      expect_error<ShapeError>("outer 2-d", "outer",
                               [f] {
                                 outer(f({2, 2}), f({2}));
                               }),
  };
  return e;
}

bool registered = register_entries({matmul_entry()});

TEST(Linalg, Table) {
  for (const OpEntry& e : all_entries())
    if (e.prim == "matmul") check_entry(e);
}

TEST(Linalg, MatmulMessageFormat) {
  try {
    matmul(zeros({3, 4}), zeros({5, 2}));
    FAIL() << "no error";
  } catch (const ShapeError& e) {
    EXPECT_STREQ(e.what(), "[matmul] inner dimensions differ: (3, 4) @ (5, 2)");
  }
}

TEST(Linalg, EmptyKGivesZeros) {
  for (DType dt : {kFloat32, kInt64}) {
    Tensor c = matmul(values({3, 0}, dt, 1), values({0, 4}, dt, 2));
    ASSERT_EQ(c.shape(), (Shape{3, 4}));
    for (double x : c.to_vector<double>()) EXPECT_EQ(x, 0.0);
  }
}

// BLAS reads row- and column-major operands in place: the only allocation is the output.
TEST(Linalg, BlasDoesNotCopyTransposedOperands) {
  Tensor a = values({64, 32}, kFloat32, 1), b = values({48, 32}, kFloat32, 2);
  Tensor batched = values({3, 32, 64}, kFloat32, 3).mT();  // (3, 64, 32), column-major
  for (const auto& [x, y] : {std::pair{a, b.t()}, std::pair{a.t(), a}, std::pair{batched, b.t()}}) {
    const int64_t before = cpu_allocator().stats().num_allocs;
    Tensor c = matmul(x, y);
    EXPECT_EQ(cpu_allocator().stats().num_allocs - before, 1) << shape_str(c.shape());
  }
}

TEST(Linalg, MixedDTypesPromote) {
  Tensor c = matmul(values({2, 3}, kInt32, 1), values({3, 2}, kFloat64, 2));
  EXPECT_EQ(c.dtype(), kFloat64);
  EXPECT_TRUE(
      close(c,
            ref_matmul({to_ref(values({2, 3}, kInt32, 1)), to_ref(values({3, 2}, kFloat64, 2))},
                       kFloat64),
            {1e-12, 1e-12}));
}

TEST(Linalg, IntegerMatmulWraps) {
  Tensor a = full({1, 2}, 100, TensorOptions(kInt8)), b = full({2, 1}, 2, TensorOptions(kInt8));
  EXPECT_EQ(matmul(a, b).item<int64_t>(), static_cast<int8_t>(400));
}

TEST(Linalg, DotAndOuter) {
  Tensor a = values({5}, kFloat64, 1), b = values({5}, kFloat64, 2), c = values({3}, kFloat64, 3);
  auto av = a.to_vector<double>(), bv = b.to_vector<double>(), cv = c.to_vector<double>();
  double s = 0;
  for (int i = 0; i < 5; ++i) s += av[i] * bv[i];
  Tensor d = dot(a, b);
  EXPECT_EQ(d.dim(), 0);
  EXPECT_NEAR(d.item<double>(), s, 1e-12);
  Tensor o = outer(a, c);
  ASSERT_EQ(o.shape(), (Shape{5, 3}));
  auto ov = o.to_vector<double>();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(ov[i * 3 + j], av[i] * cv[j], 1e-12);
  EXPECT_EQ(dot(values({4}, kInt32, 1), values({4}, kInt64, 2)).dtype(), kInt64);
}

// ---- einsum: each form against explicit loops ----

std::vector<double> host(const Tensor& t) { return t.to_vector<double>(); }

void expect_values(const Tensor& got, const Shape& shape, const std::vector<double>& want) {
  ASSERT_EQ(got.shape(), shape);
  auto g = host(got);
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], 1e-10) << "element " << i;
}

TEST(Linalg, EinsumMatmulForms) {
  Tensor a = values({3, 4}, kFloat64, 1), b = values({4, 5}, kFloat64, 2);
  auto av = host(a), bv = host(b);
  std::vector<double> want(15, 0);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k)
      for (int j = 0; j < 4; ++j) want[i * 5 + k] += av[i * 4 + j] * bv[j * 5 + k];
  expect_values(einsum("ij,jk->ik", {a, b}), {3, 5}, want);
  expect_values(einsum("ij,jk", {a, b}), {3, 5}, want);  // implicit output: sorted singles
  expect_values(einsum(" i j , j k -> i k ", {a, b}), {3, 5}, want);
  // Transposed output: "ij,jk->ki".
  std::vector<double> wt(15);
  for (int i = 0; i < 3; ++i)
    for (int k = 0; k < 5; ++k) wt[k * 3 + i] = want[i * 5 + k];
  expect_values(einsum("ij,jk->ki", {a, b}), {5, 3}, wt);
}

TEST(Linalg, EinsumBatched) {
  Tensor a = values({2, 3, 4}, kFloat32, 1), b = values({2, 4, 5}, kFloat32, 2);
  auto av = host(a), bv = host(b);
  std::vector<double> want(30, 0);
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k)
        for (int j = 0; j < 4; ++j)
          want[n * 15 + i * 5 + k] += av[n * 12 + i * 4 + j] * bv[n * 20 + j * 5 + k];
  Tensor r = einsum("bij,bjk->bik", {a, b});
  EXPECT_EQ(r.dtype(), kFloat32);
  ASSERT_EQ(r.shape(), (Shape{2, 3, 5}));
  auto g = host(r);
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], 1e-5);
  // Ellipsis with broadcasting: (2, 3, 4) @ (4, 5) over "...".
  Tensor b2 = values({4, 5}, kFloat32, 3);
  auto b2v = host(b2);
  std::vector<double> w2(30, 0);
  for (int n = 0; n < 2; ++n)
    for (int i = 0; i < 3; ++i)
      for (int k = 0; k < 5; ++k)
        for (int j = 0; j < 4; ++j)
          w2[n * 15 + i * 5 + k] += av[n * 12 + i * 4 + j] * b2v[j * 5 + k];
  Tensor r2 = einsum("...ij,...jk->...ik", {a, b2});
  ASSERT_EQ(r2.shape(), (Shape{2, 3, 5}));
  auto g2 = host(r2);
  for (size_t i = 0; i < g2.size(); ++i) EXPECT_NEAR(g2[i], w2[i], 1e-5);
}

TEST(Linalg, EinsumDiagonalTraceTransposeOuter) {
  Tensor m = values({4, 4}, kFloat64, 1);
  auto mv = host(m);
  std::vector<double> diag(4);
  double trace = 0;
  for (int i = 0; i < 4; ++i) trace += diag[i] = mv[i * 5];
  expect_values(einsum("ii->i", {m}), {4}, diag);
  expect_values(einsum("ii", {m}), {}, {trace});
  std::vector<double> mt(16);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) mt[j * 4 + i] = mv[i * 4 + j];
  expect_values(einsum("ij->ji", {m}), {4, 4}, mt);
  expect_values(einsum("ji", {m}), {4, 4}, mt);  // implicit output is alphabetical: transpose
  Tensor x = values({3}, kFloat64, 2), y = values({2}, kFloat64, 3);
  auto xv = host(x), yv = host(y);
  std::vector<double> o(6), rows(4, 0);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) o[i * 2 + j] = xv[i] * yv[j];
  expect_values(einsum("i,j->ij", {x, y}), {3, 2}, o);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) rows[i] += mv[i * 4 + j];
  expect_values(einsum("ij->i", {m}), {4}, rows);
  double all = 0;
  for (double v : mv) all += v;
  expect_values(einsum("ij->", {m}), {}, {all});
  double ip = 0;
  for (int i = 0; i < 3; ++i) ip += xv[i] * xv[i];
  expect_values(einsum("i,i->", {x, x}), {}, {ip});
  std::vector<double> had(3);
  for (int i = 0; i < 3; ++i) had[i] = xv[i] * xv[i];
  expect_values(einsum("i,i->i", {x, x}), {3}, had);
}

TEST(Linalg, EinsumThreeOperands) {
  Tensor a = values({2, 3}, kFloat64, 1), b = values({3, 4}, kFloat64, 2),
         c = values({4, 2}, kFloat64, 3);
  auto av = host(a), bv = host(b), cv = host(c);
  std::vector<double> want(4, 0);
  for (int i = 0; i < 2; ++i)
    for (int l = 0; l < 2; ++l)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 4; ++k)
          want[i * 2 + l] += av[i * 3 + j] * bv[j * 4 + k] * cv[k * 2 + l];
  expect_values(einsum("ij,jk,kl->il", {a, b, c}), {2, 2}, want);
}

template <class E>
void expect_named(const std::function<void()>& f, const std::string& op,
                  const std::string& part = "") {
  try {
    f();
    ADD_FAILURE() << "expected an error";
  } catch (const E& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong error type: " << e.what();
  }
}

TEST(Linalg, EinsumErrors) {
  Tensor a = zeros({2, 3}), b = zeros({3, 4});
  expect_named<ValueError>([&] { einsum("ij,jk->ik", {a}); }, "einsum", "ij,jk->ik");
  expect_named<ValueError>([&] { einsum("ij,j1->i", {a, b}); }, "einsum", "ij,j1->i");
  expect_named<ValueError>([&] { einsum("ij->ik", {a}); }, "einsum", "ij->ik");
  expect_named<ValueError>([&] { einsum("ij->ii", {a}); }, "einsum", "ij->ii");
  expect_named<ValueError>([&] { einsum("ijk->i", {a}); }, "einsum", "ijk->i");
  expect_named<ValueError>([&] { einsum("i->i->i", {a}); }, "einsum", "i->i->i");
  expect_named<ValueError>([&] { einsum("i..j->i", {a}); }, "einsum", "i..j->i");
  expect_named<ValueError>([&] { einsum("", {}); }, "einsum");
  expect_named<ShapeError>([&] { einsum("ij,ij->ij", {a, b}); }, "einsum", "ij,ij->ij");
  expect_named<ShapeError>([&] { einsum("ii", {a}); }, "einsum", "ii");
}

}  // namespace
}  // namespace tessera::test
