// CPU kernels of layer_norm and layer_norm_backward: rows (the last "ndim" dims, n contiguous
// elements) in parallel, each row read once from memory and worked on in cache by the SIMD
// rows of layer_norm_simd.cpp. float32 computes in float lanes (sums folded into double),
// float64 in double; the 16-bit floats go through float32 row buffers, as elsewhere.
#include <algorithm>
#include <vector>

#include "backends/cpu/layer_norm_simd.h"
#include "backends/cpu/reduce_driver.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {
namespace {

/// n: elements per row; rows: the number of rows (also when n is 0: the statistics count).
struct RowGeom {
  int64_t rows = 1, n = 1;
};

RowGeom row_geom(const Tensor& x, const Attrs& a) {
  RowGeom g;
  const auto k = a.get<int64_t>("ndim");
  for (int64_t d = 0; d < x.dim(); ++d) (d < x.dim() - k ? g.rows : g.n) *= x.size(d);
  return g;
}

// Typed entry points of the SIMD rows (float and double).
void norm_row(const float* x, int64_t n, double eps, const float* w, const float* b, float* y,
              float* m, float* r) {
  simd_layer_norm_row_f32(x, n, eps, w, b, y, m, r);
}
void norm_row(const double* x, int64_t n, double eps, const double* w, const double* b, double* y,
              double* m, double* r) {
  simd_layer_norm_row_f64(x, n, eps, w, b, y, m, r);
}
void backward_row(const float* dy, const float* x, int64_t n, float m, float r, const float* w,
                  float* dx, float* dw, float* db) {
  simd_layer_norm_backward_row_f32(dy, x, n, m, r, w, dx, dw, db);
}
void backward_row(const double* dy, const double* x, int64_t n, double m, double r, const double* w,
                  double* dx, double* dw, double* db) {
  simd_layer_norm_backward_row_f64(dy, x, n, m, r, w, dx, dw, db);
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

/// Rows of a 16-bit float type as float32: a thread's buffers for one row at a time.
template <class T>
void to_float(const T* p, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
}
template <class T>
void from_float(const float* p, int64_t n, T* out) {
  for (int64_t i = 0; i < n; ++i) out[i] = T(p[i]);
}
/// A whole (small) tensor as float32, or empty when undefined.
template <class T>
std::vector<float> floats_of(const Tensor& t) {
  std::vector<float> v;
  if (!t.defined()) return v;
  v.resize(static_cast<size_t>(t.numel()));
  to_float(t.data_ptr<T>(), t.numel(), v.data());
  return v;
}
const float* data_or_null(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

Tensor contiguous_or_undefined(Inputs in, size_t i) {
  return in.size() > i ? in[i].contiguous() : Tensor();
}

int64_t grain_rows(int64_t n) {
  return std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(n, 1));
}

template <class T>
void layer_norm_typed(Inputs in, Outputs out, const Attrs& a) {
  const Tensor x = in[0].contiguous(), w = contiguous_or_undefined(in, 1),
               b = contiguous_or_undefined(in, 2);
  const RowGeom g = row_geom(x, a);
  const double eps = a.get<double>("eps");
  const T* px = x.data_ptr<T>();
  T* py = out[0].data_ptr<T>();
  using S = compute_t<T>;  // the statistics' type
  S* pm = out[1].data_ptr<S>();
  S* pr = out[2].data_ptr<S>();
  if constexpr (std::is_same_v<T, S>) {
    const T *pw = ptr_or_null<T>(w), *pb = ptr_or_null<T>(b);
    parallel_for(g.rows, grain_rows(g.n), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        norm_row(px + r * g.n, g.n, eps, pw, pb, py + r * g.n, pm + r, pr + r);
    });
  } else {
    const std::vector<float> fw = floats_of<T>(w), fb = floats_of<T>(b);
    parallel_for(g.rows, grain_rows(g.n), [&](int64_t r0, int64_t r1) {
      std::vector<float> xr(static_cast<size_t>(g.n)), yr(static_cast<size_t>(g.n));
      for (int64_t r = r0; r < r1; ++r) {
        to_float(px + r * g.n, g.n, xr.data());
        norm_row(xr.data(), g.n, eps, data_or_null(fw), data_or_null(fb), yr.data(), pm + r,
                 pr + r);
        from_float(yr.data(), g.n, py + r * g.n);
      }
    });
  }
}

void layer_norm_kernel(Inputs in, Outputs out, const Attrs& a) {
  visit_dtype(in[0].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<compute_t<T>>)
      layer_norm_typed<T>(in, out, a);
    else
      fail<DTypeError>("layer_norm", "expects a floating point input, got {}",
                       dtype_name(in[0].dtype()));
  });
}

// Blocks of rows whose weight and bias gradients are summed separately, then added in block
// order: a fixed function of the shape, so results never depend on the thread count.
int64_t weight_grad_blocks(const RowGeom& g) {
  constexpr int64_t kMaxBlocks = 32, kMaxPartials = int64_t{1} << 20;
  return std::max<int64_t>(
      1, std::min({g.rows, kMaxBlocks, kMaxPartials / std::max<int64_t>(g.n, 1)}));
}

/// Rows of the backward in the compute type C (T itself, or float for the 16-bit floats: then
/// each row goes through float buffers).
template <class T>
struct BackwardRows {
  using C = compute_t<T>;
  const T *dy, *x;
  const C *mean, *rstd, *w;
  T* dx;
  int64_t n;

  void run(int64_t r0, int64_t r1, C* dw, C* db) const {
    if constexpr (std::is_same_v<T, C>) {
      for (int64_t r = r0; r < r1; ++r)
        backward_row(dy + r * n, x + r * n, n, mean[r], rstd[r], w, dx + r * n, dw, db);
    } else {
      std::vector<float> dyr(static_cast<size_t>(n)), xr(static_cast<size_t>(n)),
          dxr(static_cast<size_t>(n));
      for (int64_t r = r0; r < r1; ++r) {
        to_float(dy + r * n, n, dyr.data());
        to_float(x + r * n, n, xr.data());
        backward_row(dyr.data(), xr.data(), n, mean[r], rstd[r], w, dxr.data(), dw, db);
        from_float(dxr.data(), n, dx + r * n);
      }
    }
  }
};

template <class T>
void layer_norm_backward_typed(Inputs in, Outputs out, const Attrs& a) {
  using C = compute_t<T>;
  const Tensor dy = in[0].contiguous(), x = in[1].contiguous(), mean = in[2].contiguous(),
               rstd = in[3].contiguous(), w = contiguous_or_undefined(in, 4);
  const RowGeom g = row_geom(x, a);
  std::vector<float> wc;  // a 16-bit weight as float32
  const C* pw = nullptr;
  if constexpr (std::is_same_v<T, C>) {
    pw = ptr_or_null<T>(w);
  } else {
    wc = floats_of<T>(w);
    pw = data_or_null(wc);
  }
  const BackwardRows<T> rows{dy.data_ptr<T>(),
                             x.data_ptr<T>(),
                             mean.data_ptr<C>(),
                             rstd.data_ptr<C>(),
                             pw,
                             out[0].data_ptr<T>(),
                             g.n};
  if (out.size() == 1) {
    parallel_for(g.rows, grain_rows(g.n),
                 [&](int64_t r0, int64_t r1) { rows.run(r0, r1, nullptr, nullptr); });
    return;
  }
  const int64_t blocks = weight_grad_blocks(g);
  std::vector<C> part(static_cast<size_t>(2 * blocks * g.n), C(0));  // dw blocks, then db
  detail::parallel_chunks(blocks, [&](int64_t c) {
    rows.run(g.rows * c / blocks, g.rows * (c + 1) / blocks, part.data() + c * g.n,
             part.data() + (blocks + c) * g.n);
  });
  // The blocks' sums in block order, in double: columns in parallel, each chunk's blocks
  // added row by row (a loop the compiler vectorizes).
  T *dw = out[1].data_ptr<T>(), *db = out[2].data_ptr<T>();
  parallel_for(g.n, 4096, [&](int64_t j0, int64_t j1) {
    const auto len = static_cast<size_t>(j1 - j0);
    std::vector<double> sw(len, 0.0), sb(len, 0.0);
    for (int64_t c = 0; c < blocks; ++c) {
      const C* pw_c = part.data() + c * g.n + j0;
      const C* pb_c = part.data() + (blocks + c) * g.n + j0;
      for (size_t j = 0; j < len; ++j) {
        sw[j] += static_cast<double>(pw_c[j]);
        sb[j] += static_cast<double>(pb_c[j]);
      }
    }
    for (size_t j = 0; j < len; ++j) {
      dw[j0 + static_cast<int64_t>(j)] = T(static_cast<C>(sw[j]));
      db[j0 + static_cast<int64_t>(j)] = T(static_cast<C>(sb[j]));
    }
  });
}

void layer_norm_backward_kernel(Inputs in, Outputs out, const Attrs& a) {
  visit_dtype(in[1].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<compute_t<T>>)
      layer_norm_backward_typed<T>(in, out, a);
    else
      fail<DTypeError>("layer_norm_backward", "expects a floating point input, got {}",
                       dtype_name(in[1].dtype()));
  });
}

}  // namespace

void register_layer_norm_kernels(Registry& r) {
  r.add_kernel("layer_norm", {DeviceType::CPU, "builtin", layer_norm_kernel});
  r.add_kernel("layer_norm_backward", {DeviceType::CPU, "builtin", layer_norm_backward_kernel});
}

}  // namespace tessera::cpu
