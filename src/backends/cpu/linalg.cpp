// CPU matmul kernels. "blas" (f32/f64/c64) hands each matrix to cblas_?gemm in place: a
// row- or column-major operand is passed with NoTrans/Trans and its leading dimension, and
// only an operand that fits neither layout is packed; large products are split over our
// threads (gemm.h). "builtin" covers every other dtype with a blocked loop that accumulates in
// float (16-bit floats) or wrapping uint64 (integers).
#include <algorithm>
#include <climits>
#include <cstring>
#include <optional>
#include <vector>

#include "backends/float32_compute.h"
#include "backends/matrix_layout.h"
#include "gemm.h"
#include "loops.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {
namespace {

// ---- geometry shared by both kernels -------------------------------------------------------

// One call's shape: out (batch..., m, n) = a (batch_a..., m, k) @ b (batch_b..., k, n).
struct Geometry {
  int64_t m, n, k, count = 1;  // count: number of matrices in the batch
  Shape batch;
  Strides a_batch, b_batch;  // element strides of each operand per batch dim (0 = broadcast)
  int64_t a_rs, a_cs, b_rs, b_cs;
};

Geometry geometry(const Tensor& a, const Tensor& b, const Tensor& c) {
  Geometry g;
  g.m = a.size(-2), g.k = a.size(-1), g.n = b.size(-1);
  g.batch.assign(c.shape().begin(), c.shape().end() - 2);
  for (int64_t s : g.batch) g.count *= s;
  g.a_batch = matmul_batch_strides(a, g.batch);
  g.b_batch = matmul_batch_strides(b, g.batch);
  g.a_rs = a.stride(-2), g.a_cs = a.stride(-1), g.b_rs = b.stride(-2), g.b_cs = b.stride(-1);
  return g;
}

// ---- BLAS ----------------------------------------------------------------------------------

struct Layout {
  CBLAS_TRANSPOSE trans;
  int64_t ld;
};

// How BLAS can read a rows x cols matrix with these strides in place, if at all.
std::optional<Layout> blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const auto l = matrix_layout(rows, cols, rs, cs);
  if (!l) return std::nullopt;
  return Layout{l->transposed ? CblasTrans : CblasNoTrans, l->ld};
}

// One operand as BLAS sees it: in place when a layout fits, else packed row-major into scratch
// (repacked only when the batch moves to another source matrix, so broadcast operands pack once).
template <class T>
struct BlasOperand {
  const T* base;
  int64_t rows, cols, rs, cs;
  std::optional<Layout> layout;

  std::pair<const T*, Layout> at(int64_t off, std::vector<T>& scratch, int64_t& packed_off) const {
    if (layout) return {base + off, *layout};
    if (packed_off != off) {
      scratch.resize(static_cast<size_t>(rows * cols));
      for (int64_t i = 0; i < rows; ++i)
        for (int64_t j = 0; j < cols; ++j) scratch[i * cols + j] = base[off + i * rs + j * cs];
      packed_off = off;
    }
    return {scratch.data(), Layout{CblasNoTrans, std::max<int64_t>(1, cols)}};
  }
};

// The innermost stride when dims (sizes, strides) walk memory with one uniform stride (size-1
// dims ignored): then they can be merged into a single dim. 0 when every dim has size 1; nullopt
// when they cannot merge (a broadcast dim repeats rows, so it never merges).
std::optional<int64_t> merged_stride(const Shape& sizes, const Strides& strides) {
  std::optional<int64_t> inner;
  int64_t expect = 0;
  for (size_t d = sizes.size(); d-- > 0;) {
    if (sizes[d] == 1) continue;
    if (strides[d] == 0 || (inner && strides[d] != expect)) return std::nullopt;  // 0: broadcast
    if (!inner) inner = strides[d];
    expect = strides[d] * sizes[d];
  }
  return inner.value_or(0);
}

constexpr int64_t kIntMax = INT_MAX;

// When b is shared by the whole batch and a's batch dims stack its rows at one stride, the
// batch is a single (count*m) x k GEMM: one BLAS call instead of count small ones.
template <class T>
bool gemm_folded(const Geometry& g, const BlasOperand<T>& a, const BlasOperand<T>& b, T* c) {
  if (g.count == 1 ||
      std::any_of(g.b_batch.begin(), g.b_batch.end(), [](int64_t s) { return s != 0; }))
    return false;
  if (g.k > 1 && g.a_cs != 1) return false;
  Shape sizes = g.batch;
  Strides strides = g.a_batch;
  sizes.push_back(g.m);
  strides.push_back(g.a_rs);
  const std::optional<int64_t> rs = merged_stride(sizes, strides);
  const int64_t rows = g.count * g.m, ld = rs && *rs ? *rs : std::max<int64_t>(1, g.k);
  if (!rs || ld < std::max<int64_t>(1, g.k) || rows > kIntMax || ld > kIntMax) return false;
  std::vector<T> scratch;
  int64_t packed = -1;
  auto [pb, lb] = b.at(0, scratch, packed);
  gemm(CblasNoTrans, lb.trans, rows, g.n, g.k, a.base, ld, pb, lb.ld, T(0), c, g.n);
  return true;
}

// A batch of matrices too small for gemm() to split is spread across our threads instead, in
// tasks of at least this many multiply-adds.
constexpr int64_t kSmallGemm = int64_t{1} << 18;

template <class T>
void blas_matmul(const Tensor& ta, const Tensor& tb, const Tensor& tc) {
  const Geometry g = geometry(ta, tb, tc);
  T* c = tc.data_ptr<T>();
  if (tc.numel() == 0) return;
  if (g.k == 0) {  // an empty sum: BLAS need not touch C, so zero it here
    std::memset(static_cast<void*>(c), 0, tc.nbytes());
    return;
  }
  const BlasOperand<T> a{ta.data_ptr<T>(), g.m,    g.k,
                         g.a_rs,           g.a_cs, blas_layout(g.m, g.k, g.a_rs, g.a_cs)};
  const BlasOperand<T> b{tb.data_ptr<T>(), g.k,    g.n,
                         g.b_rs,           g.b_cs, blas_layout(g.k, g.n, g.b_rs, g.b_cs)};
  if (a.layout && a.layout->trans == CblasNoTrans && gemm_folded(g, a, b, c)) return;
  auto run = [&](int64_t begin, int64_t end) {
    std::vector<T> sa, sb;
    int64_t pa_off = -1, pb_off = -1;
    for (int64_t i = begin; i < end; ++i) {
      const auto [oa, ob] = flat_offsets(i, g.batch, g.a_batch, g.b_batch);
      const auto [pa, la] = a.at(oa, sa, pa_off);
      const auto [pb, lb] = b.at(ob, sb, pb_off);
      gemm(la.trans, lb.trans, g.m, g.n, g.k, pa, la.ld, pb, lb.ld, T(0), c + i * g.m * g.n, g.n);
    }
  };
  const int64_t work = g.m * g.n * g.k;
  if (g.count > 1 && work < kGemmSplitWork)
    parallel_for(g.count, std::max<int64_t>(1, kSmallGemm / work), run);
  else
    run(0, g.count);
}

using MatmulFn = void (*)(const Tensor&, const Tensor&, const Tensor&);
struct BlasEntry {
  DType dtype;
  MatmulFn fn;
};
constexpr BlasEntry kBlasTypes[] = {{kFloat32, blas_matmul<float>},
                                    {kFloat64, blas_matmul<double>},
                                    {kComplex64, blas_matmul<Complex64>}};

MatmulFn blas_fn(DType dt) {
  for (const BlasEntry& e : kBlasTypes)
    if (e.dtype == dt) return e.fn;
  return nullptr;
}

void blas_kernel(Inputs in, Outputs out, const Attrs&) {
  blas_fn(in[0].dtype())(in[0], in[1], out[0]);
}

// BLAS takes int sizes and leading dims; anything larger goes to the builtin kernel.
bool blas_supports(Inputs in, const Attrs&) {
  if (!blas_fn(in[0].dtype())) return false;
  for (const Tensor& t : in)
    for (int64_t d = t.dim() - 2; d < t.dim(); ++d)
      if (t.size(d) > kIntMax || t.stride(d) > kIntMax || t.stride(d) < 0) return false;
  return true;
}

// 16-bit floats: float32 copies through sgemm, rounded once (float32_compute.h). The copies
// cost O(mk + kn + mn) against the product's O(mnk), far less than the builtin kernel's
// scalar loops.
void blas_half_kernel(Inputs in, Outputs out, const Attrs& a) {
  backends::compute_in_float32(blas_kernel, in, out, a, "matmul");
}
bool blas_half_supports(Inputs in, const Attrs&) {
  if (!backends::is_half(in[0].dtype())) return false;
  for (const Tensor& t : in)
    for (int64_t d = t.dim() - 2; d < t.dim(); ++d)
      if (t.size(d) > kIntMax) return false;
  return true;
}

// ---- builtin -------------------------------------------------------------------------------

// Accumulator: float for 16-bit floats, uint64 for integers (wraps like int arithmetic without
// signed-overflow UB; the final cast keeps the low bits, as PyTorch's integer matmul does).
template <class T>
struct acc_type {
  using type = compute_t<T>;
};
template <class T>
requires std::is_integral_v<T>
struct acc_type<T> {
  using type = uint64_t;
};
template <class T>
using acc_t = typename acc_type<T>::type;

template <class A, class T>
A to_acc(T v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<A>(static_cast<int64_t>(v));
  else
    return static_cast<A>(static_cast<compute_t<T>>(v));
}
template <class T, class A>
T from_acc(A v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<int64_t>(v));
  else
    return static_cast<T>(v);
}

// Block sizes: a kKBlock x kNBlock panel of b (in the accumulator type) stays in L2 while
// kRowBlock rows of a stream past it; the inner loop over columns vectorizes.
constexpr int64_t kRowBlock = 64, kKBlock = 128, kNBlock = 512;

template <class T>
void builtin_rows(const Geometry& g, const T* a, const T* b, T* c, int64_t r0, int64_t r1,
                  std::vector<acc_t<T>>& acc, std::vector<acc_t<T>>& panel) {
  using A = acc_t<T>;
  for (int64_t j0 = 0; j0 < g.n; j0 += kNBlock) {
    const int64_t nb = std::min(kNBlock, g.n - j0);
    acc.assign(static_cast<size_t>((r1 - r0) * nb), A{});
    for (int64_t p0 = 0; p0 < g.k; p0 += kKBlock) {
      const int64_t kb = std::min(kKBlock, g.k - p0);
      panel.resize(static_cast<size_t>(kb * nb));
      for (int64_t p = 0; p < kb; ++p)
        for (int64_t j = 0; j < nb; ++j)
          panel[p * nb + j] = to_acc<A>(b[(p0 + p) * g.b_rs + (j0 + j) * g.b_cs]);
      for (int64_t i = r0; i < r1; ++i) {
        A* row = acc.data() + (i - r0) * nb;
        for (int64_t p = 0; p < kb; ++p) {
          const A av = to_acc<A>(a[i * g.a_rs + (p0 + p) * g.a_cs]);
          const A* pr = panel.data() + p * nb;
          for (int64_t j = 0; j < nb; ++j) row[j] += av * pr[j];
        }
      }
    }
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t j = 0; j < nb; ++j) c[i * g.n + j0 + j] = from_acc<T>(acc[(i - r0) * nb + j]);
  }
}

template <class T>
void builtin_matmul(const Tensor& ta, const Tensor& tb, const Tensor& tc) {
  const Geometry g = geometry(ta, tb, tc);
  if (tc.numel() == 0) return;
  const T *a = ta.data_ptr<T>(), *b = tb.data_ptr<T>();
  T* c = tc.data_ptr<T>();
  const int64_t blocks = (g.m + kRowBlock - 1) / kRowBlock;
  // Tasks are (matrix, row block) pairs; each task carries about kRowBlock*n*k multiply-adds.
  const int64_t per_task = std::max<int64_t>(1, kRowBlock * g.n * std::max<int64_t>(g.k, 1));
  parallel_for(g.count * blocks, std::max<int64_t>(1, kSmallGemm / per_task),
               [&](int64_t t0, int64_t t1) {
                 std::vector<acc_t<T>> acc, panel;
                 for (int64_t t = t0; t < t1; ++t) {
                   const int64_t i = t / blocks, r0 = (t % blocks) * kRowBlock;
                   const auto [oa, ob] = flat_offsets(i, g.batch, g.a_batch, g.b_batch);
                   builtin_rows<T>(g, a + oa, b + ob, c + i * g.m * g.n, r0,
                                   std::min(g.m, r0 + kRowBlock), acc, panel);
                 }
               });
}

void builtin_kernel(Inputs in, Outputs out, const Attrs&) {
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>)
      fail<DTypeError>("matmul", "bool operands are not supported");
    else
      builtin_matmul<T>(in[0], in[1], out[0]);
  });
}

}  // namespace

void register_linalg_kernels(Registry& r) {
  use_single_threaded_blas();  // gemm.h: products are split over our threads instead
  r.add_kernel("matmul", {DeviceType::CPU, "blas", blas_kernel, blas_supports, 10});
  r.add_kernel("matmul", {DeviceType::CPU, "blas", blas_half_kernel, blas_half_supports, 10});
  r.add_kernel("matmul", {DeviceType::CPU, "builtin", builtin_kernel, nullptr, 0});
}

}  // namespace tessera::cpu
