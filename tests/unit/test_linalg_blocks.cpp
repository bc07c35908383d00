// Large matmuls, which the BLAS kernel splits into row or column blocks over the thread pool
// (OpenBLAS itself runs single-threaded), against float64 loops: every operand layout, both
// split directions, a folded batch and a batch of large matrices.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera {
namespace {

// a (count, m, k) @ b (count or 1, k, n) in float64 loops, from the logical values.
std::vector<double> reference(const Tensor& a, const Tensor& b) {
  const Tensor a3 = a.dim() == 2 ? a.unsqueeze(0) : a, b3 = b.dim() == 2 ? b.unsqueeze(0) : b;
  const auto av = a3.to_vector<double>(), bv = b3.to_vector<double>();
  const int64_t count = a3.size(0), m = a3.size(1), k = a3.size(2), n = b3.size(2);
  std::vector<double> c(static_cast<size_t>(count * m * n), 0.0);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t bi = b3.size(0) == 1 ? 0 : i;
    for (int64_t r = 0; r < m; ++r)
      for (int64_t p = 0; p < k; ++p) {
        const double x = av[static_cast<size_t>((i * m + r) * k + p)];
        for (int64_t j = 0; j < n; ++j)
          c[static_cast<size_t>((i * m + r) * n + j)] +=
              x * bv[static_cast<size_t>((bi * k + p) * n + j)];
      }
  }
  return c;
}

void expect_matches(const Tensor& a, const Tensor& b, const std::string& what) {
  const std::vector<double> got = matmul(a, b).to_vector<double>(), want = reference(a, b);
  ASSERT_EQ(got.size(), want.size()) << what;
  const double tol = a.dtype() == kFloat64 ? 1e-10 : 1e-3;  // k <= 200 products of values < 1
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], tol) << what << " at " << i;
}

// A (rows, cols) matrix stored transposed: its mT() is contiguous.
Tensor transposed(int64_t rows, int64_t cols, DType dt) { return rand({cols, rows}, dt).mT(); }

TEST(LinalgBlocks, EveryLayoutAndBothSplitDirections) {
  manual_seed(4);
  for (DType dt : {kFloat32, kFloat64}) {
    // m >= n: split by rows; m < n: split by columns. 2.4M-3.6M multiply-adds each.
    for (auto [m, k, n] : {std::array<int64_t, 3>{150, 200, 100}, {60, 200, 300}}) {
      const std::string shape = std::to_string(m) + "x" + std::to_string(k) + "x" +
                                std::to_string(n) + " " + std::string(dtype_name(dt));
      expect_matches(rand({m, k}, dt), rand({k, n}, dt), "NN " + shape);
      expect_matches(transposed(m, k, dt), rand({k, n}, dt), "TN " + shape);
      expect_matches(rand({m, k}, dt), transposed(k, n, dt), "NT " + shape);
      expect_matches(transposed(m, k, dt), transposed(k, n, dt), "TT " + shape);
    }
  }
}

TEST(LinalgBlocks, FoldedBatchAndBatchOfLargeMatrices) {
  manual_seed(5);
  // (4, 40, 200) @ (200, 100): one 160-row product.
  expect_matches(rand({4, 40, 200}), rand({200, 100}), "folded");
  // Two 128x128x160 products, each split.
  expect_matches(rand({2, 128, 128}), rand({2, 128, 160}), "batched");
  // A row-strided operand (a slice of wider rows) keeps its leading dimension.
  expect_matches(rand({150, 260}).slice(1, 30, 230), rand({200, 120}), "sliced rows");
}

TEST(LinalgBlocks, OuterProductsEitherOrientationAndTheirGradients) {
  manual_seed(6);
  // k = 1 runs as a broadcasting multiply, with the longer of m and n innermost.
  expect_matches(rand({300, 1}), rand({1, 7}), "tall outer");
  expect_matches(rand({7, 1}), rand({1, 300}), "wide outer");
  expect_matches(rand({5, 40, 1}, kFloat64), rand({1, 1, 9}, kFloat64), "batched, broadcast");
  Tensor a = rand({6, 1}, kFloat64).requires_grad_(), b = rand({1, 4}, kFloat64).requires_grad_();
  Tensor r = rand({6, 4}, kFloat64);
  (matmul(a, b) * r).sum().backward();
  // d/da = r @ b^T, d/db = a^T @ r
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>(), rv = r.to_vector<double>();
  const auto ga = a.grad().to_vector<double>(), gb = b.grad().to_vector<double>();
  for (size_t i = 0; i < 6; ++i) {
    double want = 0;
    for (size_t j = 0; j < 4; ++j) want += rv[i * 4 + j] * bv[j];
    EXPECT_NEAR(ga[i], want, 1e-12);
  }
  for (size_t j = 0; j < 4; ++j) {
    double want = 0;
    for (size_t i = 0; i < 6; ++i) want += av[i] * rv[i * 4 + j];
    EXPECT_NEAR(gb[j], want, 1e-12);
  }
}

// A 3x3, padding 1 convolution large enough that its GEMMs are split (32 x 144 x 400
// multiply-adds per item): output and both gradients of sum(y * r) against float64 loops.
TEST(LinalgBlocks, LargeConvolutionAndItsGradients) {
  manual_seed(6);
  const int64_t N = 2, C = 16, O = 32, H = 20, W = 20;
  Tensor x = rand({N, C, H, W}).requires_grad_(), w = rand({O, C, 3, 3}).requires_grad_();
  Tensor r = rand({N, O, H, W});
  Tensor y = nn::functional::conv2d(x, w, {}, 1, 1);
  sum(y * r).backward();
  const auto xv = x.to_vector<double>(), wv = w.to_vector<double>(), rv = r.to_vector<double>();
  std::vector<double> yr(static_cast<size_t>(N * O * H * W), 0.0), dx(xv.size(), 0.0),
      dw(wv.size(), 0.0);
  auto at = [](int64_t a, int64_t b, int64_t c, int64_t d, int64_t B, int64_t Cn, int64_t D) {
    return static_cast<size_t>(((a * B + b) * Cn + c) * D + d);
  };
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j)
          for (int64_t c = 0; c < C; ++c)
            for (int64_t kh = 0; kh < 3; ++kh)
              for (int64_t kw = 0; kw < 3; ++kw) {
                const int64_t ih = i + kh - 1, iw = j + kw - 1;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const size_t xi = at(n, c, ih, iw, C, H, W), wi = at(o, c, kh, kw, C, 3, 3);
                const size_t yi = at(n, o, i, j, O, H, W);
                yr[yi] += xv[xi] * wv[wi];
                dx[xi] += rv[yi] * wv[wi];
                dw[wi] += rv[yi] * xv[xi];
              }
  auto expect_close = [](const std::vector<double>& got, const std::vector<double>& want,
                         const char* what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-3) << what << " " << i;
  };
  expect_close(y.to_vector<double>(), yr, "y");
  expect_close(x.grad().to_vector<double>(), dx, "dx");
  expect_close(w.grad().to_vector<double>(), dw, "dw");
}

}  // namespace
}  // namespace tessera
