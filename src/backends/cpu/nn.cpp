// CPU kernels for convolution and pooling.
//
// Convolutions (float32/float64) are im2col + cblas GEMM. In the language of ConvGeom, the
// image side is unrolled into a column matrix (c/groups * kernel rows, one column per window
// position) and each group is one GEMM with the weight (o/groups, c/groups * kernel):
//   conv:             grid_n = W_g @ cols(image_n)             (per batch item)
//   conv_transpose:   image_n = col2im(W_g^T @ grid_n)         (per batch item)
//   conv_weight_grad: dW_g = sum over items of grid_g @ cols_g^T (items side by side)
// Threads: small layers (below 2^18 multiply-adds per GEMM) spread items (or blocks of items)
// over our threads, each GEMM single-threaded; large layers go item by item (chunk by chunk)
// and each GEMM is split over our threads (gemm.h).
// Pooling works a row of windows at a time (see the pooling section).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <vector>

#include "backends/float32_compute.h"
#include "gemm.h"
#include "im2col_simd.h"
#include "ops/nn_geometry.h"
#include "pool_simd.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {
namespace {

using detail::ConvGeom;
using detail::Dim3;
using detail::PoolGeom;
using detail::prod3;

// ---- layout helpers ------------------------------------------------------------------------

// Element strides of an (N, C, *spatial) tensor, spatial dims right-aligned in 3 (unused: 0).
struct Layout5 {
  int64_t n = 0, c = 0;
  Dim3 sp{0, 0, 0};
};

Layout5 layout_of(const Tensor& t) {
  Layout5 l{t.stride(0), t.stride(1), {0, 0, 0}};
  const auto nsp = static_cast<int>(t.dim() - 2);
  for (int i = 0; i < nsp; ++i) l.sp[3 - nsp + i] = t.stride(2 + i);
  return l;
}

Dim3 spatial_of(const Tensor& t) {
  Dim3 r{1, 1, 1};
  const auto nsp = static_cast<int>(t.dim() - 2);
  for (int i = 0; i < nsp; ++i) r[3 - nsp + i] = t.size(2 + i);
  return r;
}

// The leading dimension when each (item, channel) row of t is a contiguous run of its spatial
// elements (so a channel block is a row-major matrix), else 0.
int64_t row_major_ld(const Tensor& t) {
  const Layout5 l = layout_of(t);
  const Dim3 sz = spatial_of(t);
  int64_t expect = 1;
  for (int i = 2; i >= 0; --i) {
    if (sz[i] != 1 && l.sp[i] != expect) return 0;
    expect *= sz[i];
  }
  return (t.size(1) <= 1 || l.c >= expect) ? std::max<int64_t>(l.c, expect) : 0;
}

// Copies one item (ch channels of spatial size sz, element strides l) into rows of ld.
template <class T>
void copy_item(const T* src, const Layout5& l, int64_t ch, const Dim3& sz, T* dst, int64_t ld) {
  const int64_t plane = prod3(sz);
  if (l.sp[2] == 1 && (sz[1] == 1 || l.sp[1] == sz[2]) &&
      (sz[0] == 1 || l.sp[0] == sz[1] * sz[2])) {
    for (int64_t c = 0; c < ch; ++c) std::copy(src + c * l.c, src + c * l.c + plane, dst + c * ld);
    return;  // each channel's plane is one contiguous run
  }
  for (int64_t c = 0; c < ch; ++c) {
    T* out = dst + c * ld;
    for (int64_t i = 0; i < sz[0]; ++i)
      for (int64_t j = 0; j < sz[1]; ++j) {
        const T* in = src + c * l.c + i * l.sp[0] + j * l.sp[1];
        for (int64_t k = 0; k < sz[2]; ++k) *out++ = in[k * l.sp[2]];
      }
  }
}

// A contiguous copy of a 3-5 dim tensor (our own loop: kernels never re-enter the funnel).
template <class T>
Tensor packed(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor out = Tensor::empty(t.shape(), t.dtype());
  const Layout5 l = layout_of(t);
  const Dim3 sz = spatial_of(t);
  const int64_t plane = prod3(sz), ch = t.size(1);
  for (int64_t n = 0; n < t.size(0); ++n)
    copy_item(t.data_ptr<T>() + n * l.n, l, ch, sz, out.data_ptr<T>() + n * ch * plane, plane);
  return out;
}

// Ceil of a / b for b > 0 and a of any sign.
int64_t cdiv(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Positions o in [0, n) whose input coordinate o * s - p + off falls inside [0, in).
std::pair<int64_t, int64_t> valid_range(int64_t n, int64_t in, int64_t s, int64_t p, int64_t off) {
  const int64_t lo = std::clamp<int64_t>(cdiv(p - off, s), 0, n);
  const int64_t hi = std::clamp<int64_t>(cdiv(in + p - off, s), lo, n);
  return {lo, hi};
}

// ---- BLAS ----------------------------------------------------------------------------------

// C (m x n, ldc) = op(A) @ op(B), also when k is 0 (BLAS would leave C untouched).
template <class T>
void gemm0(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int64_t m, int64_t n, int64_t k, const T* a,
           int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == T(0))
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    return;
  }
  gemm(ta, tb, m, n, k, a, std::max<int64_t>(lda, 1), b, std::max<int64_t>(ldb, 1), beta, c,
       std::max<int64_t>(ldc, 1));
}

// Items whose GEMMs gemm() would not split (below kGemmSplitWork multiply-adds) are spread over
// our threads instead, in tasks of at least this many multiply-adds.
constexpr int64_t kSmallGemm = int64_t{1} << 18;

// ---- im2col / col2im -----------------------------------------------------------------------

// For each (channel, kernel offset) row r of the column matrix and each window position:
// fn(row r, grid row start, image pointer at the first valid window column, w_lo, w_hi, step)
// covers grid columns [w_lo, w_hi) that read the image; the other columns are padding.
template <class T, class Img, class Fn>
void for_each_col_row(Img* img, const Layout5& l, const ConvGeom& g, int64_t c0, int64_t c1,
                      Fn&& fn) {
  const int64_t kk = prod3(g.k);
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t kd = 0; kd < g.k[0]; ++kd)
      for (int64_t kh = 0; kh < g.k[1]; ++kh)
        for (int64_t kw = 0; kw < g.k[2]; ++kw) {
          const int64_t r = c * kk + (kd * g.k[1] + kh) * g.k[2] + kw;
          const int64_t off_w = kw * g.d[2];
          const auto [w_lo, w_hi] = valid_range(g.grid[2], g.img[2], g.s[2], g.p[2], off_w);
          for (int64_t od = 0; od < g.grid[0]; ++od) {
            const int64_t id = od * g.s[0] - g.p[0] + kd * g.d[0];
            const bool d_ok = id >= 0 && id < g.img[0];
            for (int64_t oh = 0; oh < g.grid[1]; ++oh) {
              const int64_t ih = oh * g.s[1] - g.p[1] + kh * g.d[1];
              const bool ok = d_ok && ih >= 0 && ih < g.img[1] && w_lo < w_hi;
              const int64_t iw = w_lo * g.s[2] - g.p[2] + off_w;
              Img* src = ok ? img + c * l.c + id * l.sp[0] + ih * l.sp[1] + iw * l.sp[2] : nullptr;
              fn(r, (od * g.grid[1] + oh) * g.grid[2], src, w_lo, ok ? w_hi : w_lo,
                 g.s[2] * l.sp[2]);
            }
          }
        }
}

// The geometry in im2col_simd.h's terms when it covers it: at most two spatial dims, unit
// stride and dilation along the width, contiguous image rows.
std::optional<ColGeom> simd_geom(const Layout5& l, const ConvGeom& g, int64_t c0, int64_t c1,
                                 int64_t ld) {
  if (g.k[0] != 1 || g.img[0] != 1 || g.grid[0] != 1 || g.s[2] != 1 || g.d[2] != 1 || l.sp[2] != 1)
    return std::nullopt;
  return ColGeom{c0,     c1,     l.c,    l.sp[1], g.img[1],  g.img[2],  g.k[1], g.k[2],
                 g.s[1], g.d[1], g.p[1], g.p[2],  g.grid[1], g.grid[2], ld};
}

// cols[r * ld + position] for channels [c0, c1) of one image item (zeros in the padding).
template <class T>
void im2col(const T* img, const Layout5& l, const ConvGeom& g, int64_t c0, int64_t c1, T* cols,
            int64_t ld) {
  if constexpr (std::is_same_v<T, float>)
    if (const auto sg = simd_geom(l, g, c0, c1, ld)) return simd_im2col_f32(*sg, img, cols);
  const int64_t gw = g.grid[2];
  for_each_col_row<T>(
      img, l, g, c0, c1,
      [&](int64_t r, int64_t pos, const T* src, int64_t lo, int64_t hi, int64_t step) {
        T* __restrict out = cols + r * ld + pos;
        for (int64_t w = 0; w < lo; ++w) out[w] = T(0);
        if (step == 1)  // runs are short (one output row): a loop beats a memcpy call
          for (int64_t w = lo; w < hi; ++w) out[w] = src[w - lo];
        else
          for (int64_t w = lo; w < hi; ++w) out[w] = src[(w - lo) * step];
        for (int64_t w = hi; w < gw; ++w) out[w] = T(0);
      });
}

// The adjoint: image[...] += cols[...] over every window (image zeroed by the caller).
template <class T>
void col2im(const T* cols, int64_t ld, const ConvGeom& g, int64_t c0, int64_t c1, T* img,
            const Layout5& l) {
  if constexpr (std::is_same_v<T, float>)
    if (const auto sg = simd_geom(l, g, c0, c1, ld)) return simd_col2im_f32(*sg, cols, img);
  for_each_col_row<T>(img, l, g, c0, c1,
                      [&](int64_t r, int64_t pos, T* dst, int64_t lo, int64_t hi, int64_t step) {
                        const T* __restrict in = cols + r * ld + pos + lo;
                        T* __restrict out = dst;
                        if (step == 1)
                          for (int64_t j = 0; j < hi - lo; ++j) out[j] += in[j];
                        else
                          for (int64_t j = 0; j < hi - lo; ++j) out[j * step] += in[j];
                      });
}

// Whether the column matrix of an image item is the item itself: 1x1 kernel, stride 1, no
// padding, same spatial size (then cols = image rows, read in place with leading dim ld).
bool pointwise(const ConvGeom& g) {
  for (int i = 0; i < 3; ++i)
    if (g.k[i] != 1 || g.s[i] != 1 || g.p[i] != 0 || g.img[i] != g.grid[i]) return false;
  return true;
}

// Whether one item's GEMMs are small enough to run single-threaded, items in parallel.
bool items_parallel(const ConvGeom& g) {
  return g.og() * g.col_rows() * prod3(g.grid) < kGemmSplitWork;
}

// Runs item(n0, n1) over the batch: in parallel for small items, else in order (each item's
// GEMMs are split over our threads and its column work runs in parallel over channels).
void over_batch(const ConvGeom& g, const std::function<void(int64_t, int64_t)>& item) {
  const int64_t work = std::max<int64_t>(1, g.og() * g.col_rows() * prod3(g.grid));
  if (items_parallel(g))
    parallel_for(g.n, std::max<int64_t>(1, kSmallGemm / work), item);
  else
    item(0, g.n);
}

// y (rows x len, row-major) += bias[r] on each row r.
void add_bias_rows(const Tensor* bias, int64_t rows, int64_t len, void* out, DType dt) {
  if (!bias) return;
  auto run = [&](auto* y, const auto* b, int64_t bs) {
    for (int64_t r = 0; r < rows; ++r) {
      const auto v = b[r * bs];
      for (int64_t i = 0; i < len; ++i) y[r * len + i] += v;
    }
  };
  if (dt == kFloat32)
    run(static_cast<float*>(out), bias->data_ptr<float>(), bias->stride(0));
  else
    run(static_cast<double*>(out), bias->data_ptr<double>(), bias->stride(0));
}

// ---- convolution kernels -------------------------------------------------------------------

template <class T>
void conv_fwd(const Tensor& x, const Tensor& wt, const Tensor* bias, const Tensor& y,
              const ConvGeom& g) {
  const Tensor w = packed<T>(wt);
  const T* wp = w.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  const Layout5 xl = layout_of(x);
  const int64_t len = prod3(g.grid), rows = g.col_rows();
  const int64_t direct_ld = pointwise(g) ? row_major_ld(x) : 0;  // 1x1: x is its own cols
  const bool par = items_parallel(g);
  over_batch(g, [&](int64_t n0, int64_t n1) {
    Tensor buf = direct_ld ? Tensor() : Tensor::empty({g.groups * rows, len}, x.dtype());
    for (int64_t n = n0; n < n1; ++n) {
      const T* item = xp + n * xl.n;
      const T* cols = item;
      int64_t ld = direct_ld;
      if (!direct_ld) {
        T* b = buf.data_ptr<T>();
        // Large items (processed one at a time) fill their columns in parallel over channels.
        parallel_for(g.c, par ? g.c : 1,
                     [&](int64_t c0, int64_t c1) { im2col(item, xl, g, c0, c1, b, len); });
        cols = b, ld = len;
      }
      T* out = yp + n * g.o * len;
      for (int64_t gi = 0; gi < g.groups; ++gi)
        gemm0<T>(CblasNoTrans, CblasNoTrans, g.og(), len, rows, wp + gi * g.og() * rows, rows,
                 cols + gi * rows * ld, ld, T(0), out + gi * g.og() * len, len);
      add_bias_rows(bias, g.o, len, out, x.dtype());
    }
  });
}

template <class T>
void conv_tr(const Tensor& xt, const Tensor& wt, const Tensor* bias, const Tensor& y,
             const ConvGeom& g) {
  const Tensor w = packed<T>(wt);
  const Tensor x = row_major_ld(xt) ? xt : packed<T>(xt);
  const int64_t xld = row_major_ld(x);
  const T* wp = w.data_ptr<T>();
  const T* xp = x.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  const Layout5 xl = layout_of(x), yl = layout_of(y);
  const int64_t len = prod3(g.grid), rows = g.col_rows(), img_len = prod3(g.img);
  const bool direct = pointwise(g), par = items_parallel(g);
  over_batch(g, [&](int64_t n0, int64_t n1) {
    Tensor buf = direct ? Tensor() : Tensor::empty({g.groups * rows, len}, x.dtype());
    for (int64_t n = n0; n < n1; ++n) {
      const T* item = xp + n * xl.n;
      T* out = yp + n * g.c * img_len;
      // cols_g = W_g^T @ x_g; with a 1x1 window the columns are the output itself.
      T* cols = direct ? out : buf.data_ptr<T>();
      for (int64_t gi = 0; gi < g.groups; ++gi)
        gemm0<T>(CblasTrans, CblasNoTrans, rows, len, g.og(), wp + gi * g.og() * rows, rows,
                 item + gi * g.og() * xld, xld, T(0), cols + gi * rows * len, len);
      if (!direct) {
        std::fill(out, out + g.c * img_len, T(0));
        parallel_for(g.c, par ? g.c : 1,
                     [&](int64_t c0, int64_t c1) { col2im(cols, len, g, c0, c1, out, yl); });
      }
      add_bias_rows(bias, g.c, img_len, out, x.dtype());
    }
  });
}

// The weight gradient sums over batch items: dW_g = sum_n grid_n,g @ cols_n,g^T. Items are
// laid side by side (columns [i * len, (i + 1) * len) of both matrices belong to item i), so
// one GEMM covers several items.
template <class T>
struct WeightGrad {
  const ConvGeom& g;
  const T *xp, *dp;
  Layout5 xl, dl;
  int64_t len, rows;

  // dw (+)= the items [n0, n0 + nb), using column buffers of at least nb items.
  void items(int64_t n0, int64_t nb, T* cols, T* grid, bool accumulate, T* dw,
             bool parallel) const {
    const int64_t ld = nb * len;
    auto fill = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        im2col(xp + (n0 + i) * xl.n, xl, g, 0, g.c, cols + i * len, ld);
        copy_item(dp + (n0 + i) * dl.n, dl, g.o, g.grid, grid + i * len, ld);
      }
    };
    if (parallel)
      parallel_for(nb, 1, fill);
    else
      fill(0, nb);
    for (int64_t gi = 0; gi < g.groups; ++gi)
      gemm0<T>(CblasNoTrans, CblasTrans, g.og(), rows, ld, grid + gi * g.og() * ld, ld,
               cols + gi * rows * ld, ld, T(accumulate ? 1 : 0), dw + gi * g.og() * rows, rows);
  }
};

// Small layers: a fixed number of blocks of items (independent of the thread count, so the
// sums are reproducible), each summed by one task with single-threaded GEMMs into its own
// partial, then the partials added in order.
constexpr int64_t kWeightGradBlocks = 64;

template <class T>
void wgrad_blocks(const WeightGrad<T>& wg, T* dw, int64_t dw_numel, DType dt) {
  const ConvGeom& g = wg.g;
  const int64_t per = (g.n + kWeightGradBlocks - 1) / kWeightGradBlocks;
  const int64_t blocks = (g.n + per - 1) / per;
  const int64_t work = std::max<int64_t>(1, g.og() * wg.rows * wg.len);
  const int64_t step = std::clamp<int64_t>(kSmallGemm / work, 1, per);  // items per GEMM
  Tensor partials = Tensor::empty({blocks, dw_numel}, dt);
  T* pp = partials.data_ptr<T>();
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    Tensor cols = Tensor::empty({g.groups * wg.rows, step * wg.len}, dt);
    Tensor grid = Tensor::empty({g.o, step * wg.len}, dt);
    for (int64_t b = b0; b < b1; ++b)
      for (int64_t n0 = b * per; n0 < std::min(g.n, (b + 1) * per); n0 += step)
        wg.items(n0, std::min(step, std::min(g.n, (b + 1) * per) - n0), cols.data_ptr<T>(),
                 grid.data_ptr<T>(), n0 != b * per, pp + b * dw_numel, false);
  });
  parallel_for(dw_numel, kParallelGrain / blocks + 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T acc = pp[i];
      for (int64_t b = 1; b < blocks; ++b) acc += pp[b * dw_numel + i];
      dw[i] = acc;
    }
  });
}

// Column-matrix budget (elements) of one chunk of items for large layers.
constexpr int64_t kColBudget = int64_t{1} << 22;

template <class T>
void conv_wgrad(const Tensor& x, const Tensor& dy, const Tensor& dw, const ConvGeom& g) {
  T* dwp = dw.data_ptr<T>();
  if (g.n == 0) {
    std::fill(dwp, dwp + dw.numel(), T(0));
    return;
  }
  const WeightGrad<T> wg{
      g,           x.data_ptr<T>(), dy.data_ptr<T>(), layout_of(x), layout_of(dy), prod3(g.grid),
      g.col_rows()};
  if (items_parallel(g)) return wgrad_blocks(wg, dwp, dw.numel(), x.dtype());
  // Large layers: chunks of items in order, each one big GEMM split over our threads.
  const int64_t all_rows = g.groups * wg.rows;
  const int64_t chunk =
      std::clamp<int64_t>(kColBudget / std::max<int64_t>(1, all_rows * wg.len), 1, g.n);
  Tensor cols = Tensor::empty({all_rows, chunk * wg.len}, x.dtype());
  Tensor grid = Tensor::empty({g.o, chunk * wg.len}, x.dtype());
  for (int64_t n0 = 0; n0 < g.n; n0 += chunk)
    wg.items(n0, std::min(chunk, g.n - n0), cols.data_ptr<T>(), grid.data_ptr<T>(), n0 > 0, dwp,
             true);
}

// Calls fn(T{}) with T = float or double (the conv kernels compute 16-bit floats in float32:
// those reach this point already converted).
template <class Fn>
void float_or_double(DType dt, Fn&& fn) {
  if (dt == kFloat32)
    fn(float{});
  else
    fn(double{});
}

const Tensor* bias_in(Inputs in) { return in.size() > 2 ? &in[2] : nullptr; }

void conv_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_kernel, in, out, a, "conv");
  const ConvGeom g = detail::conv_geometry("conv", in[0], in[1], bias_in(in), a);
  float_or_double(in[0].dtype(),
                  [&](auto t) { conv_fwd<decltype(t)>(in[0], in[1], bias_in(in), out[0], g); });
}
void conv_transpose_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_transpose_kernel, in, out, a, "conv_transpose");
  const ConvGeom g =
      detail::conv_transpose_geometry("conv_transpose", in[0], in[1], bias_in(in), a);
  float_or_double(in[0].dtype(),
                  [&](auto t) { conv_tr<decltype(t)>(in[0], in[1], bias_in(in), out[0], g); });
}
void conv_weight_grad_kernel(Inputs in, Outputs out, const Attrs& a) {
  if (backends::is_half(in[0].dtype()))
    return backends::compute_in_float32(conv_weight_grad_kernel, in, out, a, "conv_weight_grad");
  const ConvGeom g = detail::conv_weight_grad_geometry("conv_weight_grad", in[0], in[1], a);
  float_or_double(in[0].dtype(), [&](auto t) { conv_wgrad<decltype(t)>(in[0], in[1], out[0], g); });
}

// BLAS takes int sizes: every matrix dimension is bounded by some tensor's element count.
bool blas_sizes(Inputs in, const Attrs&) {
  for (const Tensor& t : in)
    if (t.numel() > std::numeric_limits<int>::max()) return false;
  return true;
}

// ---- pooling -------------------------------------------------------------------------------
//
// Windows are processed a row at a time (fixed plane, od, oh): for each kernel tap, the run of
// windows whose tap lands inside the input is updated in one loop over columns. No bounds
// checks or data-dependent branches per element, and stride-1/2 runs vectorize.

// The kernel taps [lo, hi) of one window along one dim that land inside the input; tap k
// reads input coordinate start + k * d. `incl` counts taps inside input + padding (avg_pool's
// count_include_pad divisor).
struct Taps {
  int64_t start, lo, hi, incl;
};
Taps taps(int64_t o, int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t start = o * s - p;
  const int64_t lo = std::clamp<int64_t>(cdiv(-start, d), 0, k);
  const int64_t hi = std::clamp<int64_t>(cdiv(in - start, d), lo, k);
  return {start, lo, hi, std::min(start + k, in + p) - start};
}

// What every plane shares: the taps of each output coordinate per dim, and for each tap kw the
// windows [lo, hi) of a row whose tap kw lands inside the input.
struct PoolTables {
  std::array<std::vector<Taps>, 3> t;
  std::vector<std::pair<int64_t, int64_t>> cols;
};
PoolTables pool_tables(const PoolGeom& g) {
  PoolTables pt;
  for (int i = 0; i < 3; ++i)
    for (int64_t o = 0; o < g.out[i]; ++o)
      pt.t[i].push_back(taps(o, g.in[i], g.k[i], g.s[i], g.p[i], g.d[i]));
  for (int64_t kw = 0; kw < g.k[2]; ++kw)
    pt.cols.push_back(valid_range(g.out[2], g.in[2], g.s[2], g.p[2], kw * g.d[2]));
  return pt;
}

// PyTorch's divisor: the window clipped to input + padding, or to the input alone.
int64_t avg_divisor(const PoolGeom& g, const Taps& d, const Taps& h, const Taps& w) {
  if (g.count_include_pad) return d.incl * h.incl * w.incl;
  return (d.hi - d.lo) * (h.hi - h.lo) * (w.hi - w.lo);
}

// take ? a : b through bit masks: compilers turn ?: on random data into a branch that
// mispredicts half the time.
template <class V>
V pick(bool take, V a, V b) {
  using U = std::conditional_t<sizeof(V) == 8, uint64_t, uint32_t>;
  const U m = U{0} - static_cast<U>(take);
  U ua, ub;
  std::memcpy(&ua, &a, sizeof(V));
  std::memcpy(&ub, &b, sizeof(V));
  const U r = (ua & m) | (ub & ~m);
  V out;
  std::memcpy(&out, &r, sizeof(V));
  return out;
}

// The windows [lo, lo + n) of a row that share one kernel tap: window lo + j touches
// src[j * step], plane index idx + j * stride.
template <class P>
struct TapRun {
  P* src;
  int64_t idx, lo, n, step, stride;

  // Calls f(window, element, plane index) for each window; a step of 1 or 2 (the usual
  // pools) becomes a compile-time constant so the loop vectorizes.
  template <class F>
  void each(F&& f) const {
    if (step == 2 && stride == 2) return loop<2>(f);
    if (step == 1 && stride == 1) return loop<1>(f);
    loop<0>(f);
  }
  template <int S, class F>
  void loop(F& f) const {
    const int64_t st = S ? S : step, is = S ? S : stride;
    for (int64_t j = 0; j < n; ++j) f(lo + j, src[j * st], idx + j * is);
  }
};

// Calls fn(run) for every kernel tap of the row of windows (td, th) in `plane` (layout l).
template <class P, class Fn>
void for_each_tap(const PoolGeom& g, const PoolTables& pt, P* plane, const Layout5& l,
                  const Taps& td, const Taps& th, Fn&& fn) {
  for (int64_t kd = td.lo; kd < td.hi; ++kd)
    for (int64_t kh = th.lo; kh < th.hi; ++kh) {
      const int64_t id = td.start + kd * g.d[0], ih = th.start + kh * g.d[1];
      P* row = plane + id * l.sp[0] + ih * l.sp[1];
      for (int64_t kw = 0; kw < g.k[2]; ++kw) {
        const auto [lo, hi] = pt.cols[static_cast<size_t>(kw)];
        if (lo == hi) continue;
        const int64_t iw = lo * g.s[2] + kw * g.d[2] - g.p[2];  // the first window's column
        fn(TapRun<P>{row + iw * l.sp[2], (id * g.in[1] + ih) * g.in[2] + iw, lo, hi - lo,
                     g.s[2] * l.sp[2], g.s[2]});
      }
    }
}

// Offset of plane p (an (n, c) pair) in a tensor of layout l.
int64_t plane_offset(const Layout5& l, int64_t p, int64_t c) {
  return (p / c) * l.n + (p % c) * l.c;
}

// Calls row(p, q, td, th, scratch) for every row of windows (plane p, od, oh), whose windows
// are the flat outputs [q, q + out[2]); planes in parallel, each task with an out[2]-long
// scratch row of A.
template <class A, class Fn>
void for_each_row(const PoolGeom& g, const PoolTables& pt, Fn&& row) {
  const int64_t olen = prod3(g.out), work = std::max<int64_t>(1, olen * prod3(g.k));
  parallel_for(g.n * g.c, std::max<int64_t>(1, kParallelGrain / work), [&](int64_t p0, int64_t p1) {
    std::vector<A> scratch(static_cast<size_t>(g.out[2]));
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t od = 0; od < g.out[0]; ++od)
        for (int64_t oh = 0; oh < g.out[1]; ++oh)
          row(p, p * olen + (od * g.out[1] + oh) * g.out[2], pt.t[0][od], pt.t[1][oh], scratch);
  });
}

// Whether the pool is MaxPool2d(2) on whole 2 x 2 tiles: two spatial dims, kernel and stride 2,
// no padding or dilation, every window inside the input, unit column stride, rows narrow
// enough for int32 offsets.
bool pool_2x2(const PoolGeom& g, const Layout5& l) {
  for (int i = 1; i < 3; ++i)
    if (g.k[i] != 2 || g.s[i] != 2 || g.p[i] != 0 || g.d[i] != 1 || 2 * g.out[i] > g.in[i])
      return false;
  return g.in[0] == 1 && g.k[0] == 1 && l.sp[2] == 1 && g.in[2] < (int64_t{1} << 30);
}

// MaxPool2d(2) on float32, the usual pooling layer: a row of windows at a time in SIMD lanes
// (pool_simd.h), values and plane indices.
void max_pool_2x2(const Tensor& x, const Tensor& out, const Tensor& idx, const PoolGeom& g) {
  const Layout5 l = layout_of(x);
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  int64_t* ip = idx.data_ptr<int64_t>();
  const int64_t oh = g.out[1], ow = g.out[2], olen = oh * ow, w = g.in[2];
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, 4 * olen));
  parallel_for(g.n * g.c, grain, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t y = 0; y < oh; ++y) {
        const float* r0 = xp + plane_offset(l, p, g.c) + 2 * y * l.sp[1];
        const int64_t q = p * olen + y * ow;
        simd_max_pool_2x2_f32(r0, r0 + l.sp[1], ow, 2 * y * w, static_cast<int32_t>(w), op + q,
                              ip + q);
      }
  });
}

// PyTorch's rule: the index starts at the window's first tap; a larger value or a NaN takes
// over (so NaN wins, and a later NaN takes its index). Selects by mask, never by branch.
template <class T>
void max_pool_t(const Tensor& x, const Tensor& out, const Tensor& idx, const PoolGeom& g) {
  using A = compute_t<T>;
  const Layout5 l = layout_of(x);
  if constexpr (std::is_same_v<T, float>)
    if (pool_2x2(g, l)) return max_pool_2x2(x, out, idx, g);
  const T* xp = x.data_ptr<T>();
  T* op = out.data_ptr<T>();
  int64_t* ip = idx.data_ptr<int64_t>();
  const PoolTables pt = pool_tables(g);
  for_each_row<A>(g, pt, [&](int64_t p, int64_t q, const Taps& td, const Taps& th, auto& best) {
    int64_t* at = ip + q;
    const int64_t first =
        ((td.start + td.lo * g.d[0]) * g.in[1] + th.start + th.lo * g.d[1]) * g.in[2];
    for (int64_t ow = 0; ow < g.out[2]; ++ow) {
      best[ow] = -std::numeric_limits<A>::infinity();
      at[ow] = first + pt.t[2][ow].start + pt.t[2][ow].lo * g.d[2];
    }
    for_each_tap(g, pt, xp + plane_offset(l, p, g.c), l, td, th, [&](const TapRun<const T>& r) {
      r.each([&](int64_t ow, T e, int64_t i) {
        const auto v = static_cast<A>(e);
        const bool take = (v > best[ow]) | (v != v);
        best[ow] = pick(take, v, best[ow]);
        at[ow] = pick(take, i, at[ow]);
      });
    });
    for (int64_t ow = 0; ow < g.out[2]; ++ow) op[q + ow] = static_cast<T>(best[ow]);
  });
}

template <class T>
void avg_pool_t(const Tensor& x, const Tensor& out, const PoolGeom& g) {
  using A = compute_t<T>;
  const Layout5 l = layout_of(x);
  const T* xp = x.data_ptr<T>();
  const PoolTables pt = pool_tables(g);
  for_each_row<A>(g, pt, [&](int64_t p, int64_t q, const Taps& td, const Taps& th, auto& sum) {
    std::fill(sum.begin(), sum.end(), A(0));
    for_each_tap(g, pt, xp + plane_offset(l, p, g.c), l, td, th, [&](const TapRun<const T>& r) {
      r.each([&](int64_t ow, T e, int64_t) { sum[ow] += static_cast<A>(e); });
    });
    T* o = out.data_ptr<T>() + q;
    for (int64_t ow = 0; ow < g.out[2]; ++ow)
      o[ow] = static_cast<T>(sum[ow] / static_cast<A>(avg_divisor(g, td, th, pt.t[2][ow])));
  });
}

// Each window's gradient over its divisor, added to its taps. Each plane is accumulated by
// one task in a fixed order, so results are deterministic.
template <class T>
void avg_pool_backward_t(const Tensor& grad, const Tensor& dx, const PoolGeom& g) {
  using A = compute_t<T>;
  const Layout5 gl = layout_of(grad), dl = layout_of(dx);
  const T* gp = grad.data_ptr<T>();
  T* dp = dx.data_ptr<T>();
  const int64_t ilen = prod3(g.in), olen = prod3(g.out);
  const PoolTables pt = pool_tables(g);
  for_each_row<A>(g, pt, [&](int64_t p, int64_t q, const Taps& td, const Taps& th, auto& v) {
    T* plane = dp + p * ilen;
    if (q == p * olen) std::fill(plane, plane + ilen, T(0));  // the plane's first row
    const int64_t r = q - p * olen, oh = r / g.out[2] % g.out[1], od = r / g.out[2] / g.out[1];
    const T* row = gp + plane_offset(gl, p, g.c) + od * gl.sp[0] + oh * gl.sp[1];
    for (int64_t ow = 0; ow < g.out[2]; ++ow)
      v[ow] =
          static_cast<A>(row[ow * gl.sp[2]]) / static_cast<A>(avg_divisor(g, td, th, pt.t[2][ow]));
    for_each_tap(g, pt, plane, dl, td, th, [&](const TapRun<T>& run) {
      run.each([&](int64_t ow, T& e, int64_t) { e = static_cast<T>(static_cast<A>(e) + v[ow]); });
    });
  });
}

// dx[index] += grad over each plane; an index outside the plane is an IndexError.
template <class T>
void max_pool_backward_t(const Tensor& grad, const Tensor& idx, const Tensor& dx,
                         const PoolGeom& g) {
  using A = compute_t<T>;
  const Layout5 gl = layout_of(grad), il = layout_of(idx);
  const T* gp = grad.data_ptr<T>();
  const int64_t* ip = idx.data_ptr<int64_t>();
  T* dp = dx.data_ptr<T>();
  const int64_t ilen = prod3(g.in), olen = prod3(g.out);
  parallel_for(
      g.n * g.c, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(1, olen)),
      [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          T* plane = dp + p * ilen;
          std::fill(plane, plane + ilen, T(0));
          const T* gpl = gp + plane_offset(gl, p, g.c);
          const int64_t* ipl = ip + plane_offset(il, p, g.c);
          for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
            for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
              for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
                const int64_t gi = o0 * gl.sp[0] + o1 * gl.sp[1] + o2 * gl.sp[2];
                const int64_t at = ipl[o0 * il.sp[0] + o1 * il.sp[1] + o2 * il.sp[2]];
                if (at < 0 || at >= ilen)
                  fail<IndexError>("max_pool_backward",
                                   "index {} is outside the input plane of {} elements", at, ilen);
                plane[at] = static_cast<T>(static_cast<A>(plane[at]) + static_cast<A>(gpl[gi]));
              }
        }
      });
}

// Runs fn(tag) for the floating dtypes (pooling kernels accept all four).
template <class Fn>
void visit_floating(DType dt, std::string_view op, Fn&& fn) {
  visit_dtype(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> ||
                  std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>)
      fn(tag);
    else
      fail<DTypeError>(op, "expects a floating tensor, got {}", dtype_name(dt));
  });
}

void max_pool_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_geometry("max_pool", in[0], a, true);
  visit_floating(in[0].dtype(), "max_pool", [&](auto tag) {
    max_pool_t<typename decltype(tag)::type>(in[0], out[0], out[1], g);
  });
}
void avg_pool_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_geometry("avg_pool", in[0], a, false);
  visit_floating(in[0].dtype(), "avg_pool",
                 [&](auto tag) { avg_pool_t<typename decltype(tag)::type>(in[0], out[0], g); });
}
void max_pool_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_backward_geometry("max_pool_backward", in[0], a, true);
  visit_floating(in[0].dtype(), "max_pool_backward", [&](auto tag) {
    max_pool_backward_t<typename decltype(tag)::type>(in[0], in[1], out[0], g);
  });
}
void avg_pool_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  const PoolGeom g = detail::pool_backward_geometry("avg_pool_backward", in[0], a, false);
  visit_floating(in[0].dtype(), "avg_pool_backward", [&](auto tag) {
    avg_pool_backward_t<typename decltype(tag)::type>(in[0], out[0], g);
  });
}

}  // namespace

void register_nn_kernels(Registry& r) {
  r.add_kernel("conv", {DeviceType::CPU, "blas", conv_kernel, blas_sizes, 10});
  r.add_kernel("conv_transpose", {DeviceType::CPU, "blas", conv_transpose_kernel, blas_sizes, 10});
  r.add_kernel("conv_weight_grad",
               {DeviceType::CPU, "blas", conv_weight_grad_kernel, blas_sizes, 10});
  r.add_kernel("max_pool", {DeviceType::CPU, "builtin", max_pool_kernel});
  r.add_kernel("avg_pool", {DeviceType::CPU, "builtin", avg_pool_kernel});
  r.add_kernel("max_pool_backward", {DeviceType::CPU, "builtin", max_pool_backward_kernel});
  r.add_kernel("avg_pool_backward", {DeviceType::CPU, "builtin", avg_pool_backward_kernel});
}

}  // namespace tessera::cpu
