// Blocked Cholesky factorization A = L L^T as a TaskGraph, built and run by the tests.
//
// The matrix is cut into b x b tiles (views of one float64 tensor). For each column k of
// tiles: POTRF factors the diagonal tile, TRSM solves the tiles below it, and SYRK/GEMM update
// the trailing tiles with Tessera's matmul. Every task writes one tile; it depends on the last
// writer of each tile it reads or writes, so independent updates run concurrently. A tile is
// only read once it is final (never written again), so last-writer edges are all it needs.
#include <tessera/runtime/task_graph.h>
#include <tessera/tessera.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

using namespace tessera;

namespace {

// Unblocked lower Cholesky of one contiguous-row tile, in place (the upper part is ignored).
void potrf(const Tensor& tile) {
  const int64_t m = tile.size(0), ld = tile.stride(0);
  double* a = tile.data_ptr<double>();
  for (int64_t j = 0; j < m; ++j) {
    double d = a[j * ld + j];
    for (int64_t p = 0; p < j; ++p) d -= a[j * ld + p] * a[j * ld + p];
    if (d <= 0) fail<ValueError>("potrf", "matrix is not positive definite (pivot {} = {})", j, d);
    a[j * ld + j] = std::sqrt(d);
    for (int64_t i = j + 1; i < m; ++i) {
      double s = a[i * ld + j];
      for (int64_t p = 0; p < j; ++p) s -= a[i * ld + p] * a[j * ld + p];
      a[i * ld + j] = s / a[j * ld + j];
    }
  }
}

// X L^T = B for X, in place in B (L lower triangular): the tiles below a diagonal tile.
void trsm(const Tensor& l, const Tensor& b) {
  const int64_t m = b.size(0), n = b.size(1), ldl = l.stride(0), ldb = b.stride(0);
  const double* L = l.data_ptr<double>();
  double* B = b.data_ptr<double>();
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double s = B[r * ldb + j];
      for (int64_t p = 0; p < j; ++p) s -= B[r * ldb + p] * L[j * ldl + p];
      B[r * ldb + j] = s / L[j * ldl + j];
    }
}

struct Tiled {
  Tensor a;
  int64_t n, b, nt;
  Tensor tile(int64_t i, int64_t j) const {
    return a.narrow(0, i * b, std::min(b, n - i * b)).narrow(1, j * b, std::min(b, n - j * b));
  }
};

// Adds the task to g after the last writers of `reads` and `write`; it becomes write's writer.
void add_task(TaskGraph& g, std::map<std::pair<int64_t, int64_t>, TaskId>& last_writer,
              std::function<void()> fn, std::string name, std::pair<int64_t, int64_t> write,
              std::vector<std::pair<int64_t, int64_t>> reads = {}) {
  std::vector<TaskId> deps;
  reads.push_back(write);
  for (auto t : reads)
    if (auto it = last_writer.find(t); it != last_writer.end()) deps.push_back(it->second);
  last_writer[write] = g.add(std::move(fn), std::move(name), deps);
}

TaskGraph cholesky_graph(const Tiled& m) {
  TaskGraph g;
  std::map<std::pair<int64_t, int64_t>, TaskId> last_writer;
  for (int64_t k = 0; k < m.nt; ++k) {
    add_task(g, last_writer, [=] { potrf(m.tile(k, k)); }, fmt::format("potrf({})", k), {k, k});
    for (int64_t i = k + 1; i < m.nt; ++i)
      add_task(g, last_writer, [=] { trsm(m.tile(k, k), m.tile(i, k)); },
               fmt::format("trsm({},{})", i, k), {i, k}, {{k, k}});
    for (int64_t i = k + 1; i < m.nt; ++i)
      for (int64_t j = k + 1; j <= i; ++j)  // j == i is SYRK, the rest GEMM: A_ij -= L_ik L_jk^T
        add_task(g, last_writer,
                 [=] { m.tile(i, j).sub_(matmul(m.tile(i, k), m.tile(j, k).mT())); },
                 fmt::format("{}({},{},{})", i == j ? "syrk" : "gemm", i, j, k), {i, j},
                 {{i, k}, {j, k}});
  }
  return g;
}

// max |(L L^T)_ij - A_ij| over the lower triangle, in plain float64 loops.
double max_residual(const std::vector<double>& l, const std::vector<double>& a, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t p = 0; p <= j; ++p) s += l[i * n + p] * l[j * n + p];
      worst = std::max(worst, std::abs(s - a[i * n + j]));
    }
  return worst;
}

}  // namespace

int main() {
  manual_seed(0);
  const int64_t n = 500, b = 64;  // 8 x 8 tiles, the last row/column of tiles partial
  Tensor m = randn({n, n}, kFloat64);
  Tensor a = matmul(m, m.mT()) + eye(n, {}, kFloat64) * double(n);  // symmetric positive definite
  const std::vector<double> original = a.to_vector<double>();

  Tiled tiles{a.clone(), n, b, (n + b - 1) / b};
  TaskGraph g = cholesky_graph(tiles);
  g.run();
  std::vector<double> l = tiles.a.to_vector<double>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) l[i * n + j] = 0;  // the factor is the lower triangle
  const double first = max_residual(l, original, n);

  // Re-run the same graph on fresh data: the graph is reusable.
  tiles.a.copy_(a);
  g.run();
  const std::vector<double> again = tiles.a.to_vector<double>();
  bool same = true;  // each tile sees the same updates in the same order, whatever the schedule
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) same = same && again[i * n + j] == l[i * n + j];

  double scale = 0;
  for (double v : original) scale = std::max(scale, std::abs(v));
  const double tol = 1e-13 * double(n) * scale;  // float64 rounding over length-n dot products
  std::printf("blocked Cholesky n=%lld tile=%lld: %zu tasks on %d threads, max |LL^T - A| = %.3g\n",
              static_cast<long long>(n), static_cast<long long>(b), g.size(), num_threads(), first);
  if (first < tol && same) {
    std::printf("PASS: task-graph Cholesky matches A (tolerance %.3g), re-run identical\n", tol);
    return 0;
  }
  std::printf("FAIL: residual %.3g (tolerance %.3g), re-run identical: %s\n", first, tol,
              same ? "yes" : "no");
  return 1;
}
