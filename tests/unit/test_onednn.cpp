// oneDNN's sgemm (backends/cpu/onednn) against float64 loops, called directly: both
// transposes, padded leading dimensions, beta, and the report of what was built.
#include <gtest/gtest.h>

#include <vector>

#include "backends/cpu/onednn/onednn.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

struct Gemm {
  bool ta, tb;
  int64_t m, n, k, pad;  // leading dimensions exceed the stored row length by pad
  float beta;
};

// Element (r, c) of op(X) when X is stored row-major with leading dimension ld.
double at(const std::vector<float>& x, bool trans, int64_t ld, int64_t r, int64_t c) {
  return trans ? x[static_cast<size_t>(c * ld + r)] : x[static_cast<size_t>(r * ld + c)];
}

TEST(OneDnn, SgemmMatchesFloat64Loops) {
  if (!cpu::onednn::built()) GTEST_SKIP() << "built without oneDNN";
  manual_seed(11);
  for (const Gemm& g : {Gemm{false, false, 37, 29, 53, 0, 0.f}, Gemm{true, false, 64, 33, 40, 3, 1.f},
                        Gemm{false, true, 50, 70, 31, 5, 0.5f}, Gemm{true, true, 17, 90, 64, 1, 0.f}}) {
    const int64_t lda = (g.ta ? g.m : g.k) + g.pad, ldb = (g.tb ? g.k : g.n) + g.pad,
                  ldc = g.n + g.pad;
    const std::vector<float> a = rand({(g.ta ? g.k : g.m) * lda}).to_vector<float>(),
                             b = rand({(g.tb ? g.n : g.k) * ldb}).to_vector<float>();
    std::vector<float> c = rand({g.m * ldc}).to_vector<float>();
    const std::vector<float> c0 = c;
    cpu::onednn::sgemm(g.ta, g.tb, g.m, g.n, g.k, a.data(), lda, b.data(), ldb, g.beta, c.data(),
                       ldc);
    for (int64_t i = 0; i < g.m; ++i)
      for (int64_t j = 0; j < ldc; ++j) {
        const size_t ij = static_cast<size_t>(i * ldc + j);
        if (j >= g.n) {  // padding stays untouched
          ASSERT_EQ(c[ij], c0[ij]) << i << "," << j;
          continue;
        }
        double want = g.beta * static_cast<double>(c0[ij]);
        for (int64_t p = 0; p < g.k; ++p) want += at(a, g.ta, lda, i, p) * at(b, g.tb, ldb, p, j);
        ASSERT_NEAR(c[ij], want, 1e-4) << "ta=" << g.ta << " tb=" << g.tb << " at " << i << "," << j;
      }
  }
}

TEST(OneDnn, BuildInfoSaysWhetherItIsBuilt) {
  const std::string v = build_info().onednn;
  if (cpu::onednn::built()) {
    EXPECT_EQ(v.rfind("oneDNN ", 0), 0u) << v;
  } else {
    EXPECT_EQ(v, "not built");
    float x = 0;
    EXPECT_THROW(cpu::onednn::sgemm(false, false, 1, 1, 1, &x, 1, &x, 1, 0.f, &x, 1),
                 NotBuiltError);
  }
}

}  // namespace
}  // namespace tessera
