#pragma once
// Float64 references for the convolution and pooling tests (test_nn_ops*.cpp): loops over
// Ref written from the definitions (a direct sum per output for conv, a scatter per input for
// conv_transpose, PyTorch's window rules for pooling), independent of im2col and the kernels.
// Samples carry their parameters as a trailing int64 tensor (encode/decode).
#include <array>
#include <cmath>
#include <limits>

#include "op_table.h"

namespace tessera::test::nnref {

using Ints = std::vector<int64_t>;
using A3 = std::array<int64_t, 3>;

// ---- parameters carried as an int64 tensor -------------------------------------------------

struct ConvArgs {
  Ints stride, padding, dilation, output_padding;
  int64_t groups = 1;
  Ints kernel;  // conv_weight_grad only
};

// Layout: [stride, padding, dilation, output_padding, kernel] (nsp values each), groups.
inline Tensor encode(const ConvArgs& a, int nsp) {
  std::vector<int64_t> v;
  for (const Ints* p : {&a.stride, &a.padding, &a.dilation, &a.output_padding, &a.kernel})
    for (int i = 0; i < nsp; ++i)
      v.push_back(p->empty() ? (p == &a.padding || p == &a.output_padding ? 0 : 1) : (*p)[i]);
  v.push_back(a.groups);
  return tensor(v);
}
inline ConvArgs decode(const std::vector<double>& v, int nsp) {
  ConvArgs a;
  size_t at = 0;
  for (Ints* p : {&a.stride, &a.padding, &a.dilation, &a.output_padding, &a.kernel})
    for (int i = 0; i < nsp; ++i) p->push_back(static_cast<int64_t>(v[at++]));
  a.groups = static_cast<int64_t>(v[at]);
  return a;
}
inline ConvArgs decode(const Tensor& t, int nsp) { return decode(t.to_vector<double>(), nsp); }

// Pools: [kernel, stride, padding, dilation, input_size] (nsp each), ceil_mode,
// count_include_pad.
struct PoolArgs {
  Ints kernel, stride, padding, dilation, input_size;
  bool ceil_mode = false, count_include_pad = true;
};
inline Tensor encode(const PoolArgs& a, int nsp) {
  std::vector<int64_t> v;
  for (const Ints* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.input_size})
    for (int i = 0; i < nsp; ++i)
      v.push_back(p->empty() ? (p == &a.padding ? 0 : p == &a.stride ? a.kernel[i] : 1) : (*p)[i]);
  v.push_back(a.ceil_mode);
  v.push_back(a.count_include_pad);
  return tensor(v);
}
inline PoolArgs decode_pool(const std::vector<double>& v, int nsp) {
  PoolArgs a;
  size_t at = 0;
  for (Ints* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.input_size})
    for (int i = 0; i < nsp; ++i) p->push_back(static_cast<int64_t>(v[at++]));
  a.ceil_mode = v[at] != 0;
  a.count_include_pad = v[at + 1] != 0;
  return a;
}
inline PoolArgs decode_pool(const Tensor& t, int nsp) {
  return decode_pool(t.to_vector<double>(), nsp);
}

inline int nsp_of(const Tensor& x) { return static_cast<int>(x.dim() - 2); }
inline int nsp_of(const Ref& x) { return static_cast<int>(x.shape.size() - 2); }

// Spatial values right-aligned in 3 dims, padded with `fill`.
inline A3 pad3(const Ints& v, int64_t fill) {
  A3 r{fill, fill, fill};
  for (size_t i = 0; i < v.size(); ++i) r[3 - v.size() + i] = v[i];
  return r;
}
inline A3 spatial3(const Shape& s) { return pad3(Ints(s.begin() + 2, s.end()), 1); }

// Element (n, c, i, j, k) of an (N, C, *spatial) reference, spatial right-aligned in 3.
struct View5 {
  const Ref& r;
  int64_t c;
  A3 sp;
  explicit View5(const Ref& ref) : r(ref), c(ref.shape[1]), sp(spatial3(ref.shape)) {}
  int64_t flat(int64_t n, int64_t ch, int64_t i, int64_t j, int64_t k) const {
    return (((n * c + ch) * sp[0] + i) * sp[1] + j) * sp[2] + k;
  }
  double operator()(int64_t n, int64_t ch, int64_t i, int64_t j, int64_t k) const {
    return r.data[flat(n, ch, i, j, k)];
  }
};

inline Ref zeros_ref(int64_t n, int64_t c, const A3& sp, int nsp) {
  Ref r;
  r.shape = {n, c};
  for (int i = 3 - nsp; i < 3; ++i) r.shape.push_back(sp[i]);
  r.data.assign(static_cast<size_t>(n * c * sp[0] * sp[1] * sp[2]), 0.0);
  return r;
}

inline bool inside(const A3& pos, const A3& size) {
  for (int i = 0; i < 3; ++i)
    if (pos[i] < 0 || pos[i] >= size[i]) return false;
  return true;
}

// Calls fn(index) for every index of a 3-d box.
template <class Fn>
void box(const A3& size, Fn&& fn) {
  for (int64_t i = 0; i < size[0]; ++i)
    for (int64_t j = 0; j < size[1]; ++j)
      for (int64_t k = 0; k < size[2]; ++k) fn(A3{i, j, k});
}

// ---- references ----------------------------------------------------------------------------

// y[n, o, q] = b[o] + sum over c in o's group and kernel taps t of x[n, c, q*s - p + t*d] w[o, c,
// t].
inline Ref ref_conv(const Ref& x, const Ref& w, const Ref* b, const ConvArgs& a) {
  const int nsp = nsp_of(x);
  const A3 in = spatial3(x.shape), k = spatial3(w.shape), s = pad3(a.stride, 1),
           p = pad3(a.padding, 0), d = pad3(a.dilation, 1);
  A3 out;
  for (int i = 0; i < 3; ++i) out[i] = (in[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
  const int64_t n_ = x.shape[0], o_ = w.shape[0], cg = w.shape[1], og = o_ / a.groups;
  Ref y = zeros_ref(n_, o_, out, nsp);
  const View5 X(x), W(w), Y(y);
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t o = 0; o < o_; ++o)
      box(out, [&](const A3& q) {
        double acc = b ? b->data[o] : 0.0;
        for (int64_t c = 0; c < cg; ++c)
          box(k, [&](const A3& t) {
            A3 pos;
            for (int i = 0; i < 3; ++i) pos[i] = q[i] * s[i] - p[i] + t[i] * d[i];
            if (inside(pos, in))
              acc += X(n, (o / og) * cg + c, pos[0], pos[1], pos[2]) * W(o, c, t[0], t[1], t[2]);
          });
        y.data[Y.flat(n, o, q[0], q[1], q[2])] = acc;
      });
  return y;
}

// Every input element scatters x[n, ci, i] * w[ci, co, t] to output position i*s - p + t*d.
inline Ref ref_conv_transpose(const Ref& x, const Ref& w, const Ref* b, const ConvArgs& a) {
  const int nsp = nsp_of(x);
  const A3 in = spatial3(x.shape), k = spatial3(w.shape), s = pad3(a.stride, 1),
           p = pad3(a.padding, 0), d = pad3(a.dilation, 1), op = pad3(a.output_padding, 0);
  A3 out;
  for (int i = 0; i < 3; ++i)
    out[i] = (in[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + 1 + op[i];
  const int64_t n_ = x.shape[0], ci_ = x.shape[1], cog = w.shape[1], cig = ci_ / a.groups;
  Ref y = zeros_ref(n_, cog * a.groups, out, nsp);
  const View5 X(x), W(w), Y(y);
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t ci = 0; ci < ci_; ++ci)
      box(in, [&](const A3& i3) {
        for (int64_t co = 0; co < cog; ++co)
          box(k, [&](const A3& t) {
            A3 pos;
            for (int i = 0; i < 3; ++i) pos[i] = i3[i] * s[i] - p[i] + t[i] * d[i];
            if (!inside(pos, out)) return;
            y.data[Y.flat(n, (ci / cig) * cog + co, pos[0], pos[1], pos[2])] +=
                X(n, ci, i3[0], i3[1], i3[2]) * W(ci, co, t[0], t[1], t[2]);
          });
      });
  if (b)
    for (int64_t i = 0; i < y.numel(); ++i)
      y.data[i] += b->data[(i / (out[0] * out[1] * out[2])) % y.shape[1]];
  return y;
}

// dw[o, c, t] = sum over n and the positions q of dy of x[n, c in o's group, q*s - p + t*d] dy[n,
// o, q].
inline Ref ref_conv_weight_grad(const Ref& x, const Ref& dy, const ConvArgs& a) {
  const int nsp = nsp_of(x);
  const A3 in = spatial3(x.shape), grid = spatial3(dy.shape), k = pad3(a.kernel, 1),
           s = pad3(a.stride, 1), p = pad3(a.padding, 0), d = pad3(a.dilation, 1);
  const int64_t n_ = x.shape[0], o_ = dy.shape[1], cg = x.shape[1] / a.groups, og = o_ / a.groups;
  Ref dw = zeros_ref(o_, cg, k, nsp);
  const View5 X(x), DY(dy), DW(dw);
  for (int64_t o = 0; o < o_; ++o)
    for (int64_t c = 0; c < cg; ++c)
      box(k, [&](const A3& t) {
        double acc = 0;
        for (int64_t n = 0; n < n_; ++n)
          box(grid, [&](const A3& q) {
            A3 pos;
            for (int i = 0; i < 3; ++i) pos[i] = q[i] * s[i] - p[i] + t[i] * d[i];
            if (inside(pos, in))
              acc += X(n, (o / og) * cg + c, pos[0], pos[1], pos[2]) * DY(n, o, q[0], q[1], q[2]);
          });
        dw.data[DW.flat(o, c, t[0], t[1], t[2])] = acc;
      });
  return dw;
}

// PyTorch's pooled length (ceil_mode drops a last window that starts in the right padding).
inline int64_t pooled(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const double num = static_cast<double>(in + 2 * p - d * (k - 1) - 1) / static_cast<double>(s);
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(num) : std::floor(num)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

struct PoolShape {
  A3 in, k, s, p, d, out;
};
inline PoolShape pool_shape(const A3& in, const PoolArgs& a) {
  PoolShape g{in, pad3(a.kernel, 1), pad3(a.stride, 1), pad3(a.padding, 0), pad3(a.dilation, 1),
              {}};
  for (int i = 0; i < 3; ++i) g.out[i] = pooled(in[i], g.k[i], g.s[i], g.p[i], g.d[i], a.ceil_mode);
  return g;
}

// Calls fn(n, c, output position, in-range input positions) for every window.
template <class Fn>
void windows(int64_t n_, int64_t c_, const PoolShape& g, Fn&& fn) {
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t c = 0; c < c_; ++c)
      box(g.out, [&](const A3& q) {
        std::vector<A3> taps;
        box(g.k, [&](const A3& t) {
          A3 pos;
          for (int i = 0; i < 3; ++i) pos[i] = q[i] * g.s[i] - g.p[i] + t[i] * g.d[i];
          if (inside(pos, g.in)) taps.push_back(pos);
        });
        fn(n, c, q, taps);
      });
}

// Max over each window (the first of equal maxima) and its flat plane index.
inline std::pair<Ref, Ref> ref_max_pool(const Ref& x, const PoolArgs& a) {
  const PoolShape g = pool_shape(spatial3(x.shape), a);
  Ref v = zeros_ref(x.shape[0], x.shape[1], g.out, nsp_of(x)), idx = v;
  const View5 X(x), V(v);
  windows(x.shape[0], x.shape[1], g, [&](int64_t n, int64_t c, const A3& q, auto& taps) {
    double best = -std::numeric_limits<double>::infinity();
    int64_t at = -1;
    for (const A3& t : taps)
      if (at < 0 || X(n, c, t[0], t[1], t[2]) > best) {
        best = X(n, c, t[0], t[1], t[2]);
        at = (t[0] * g.in[1] + t[1]) * g.in[2] + t[2];
      }
    v.data[V.flat(n, c, q[0], q[1], q[2])] = best;
    idx.data[V.flat(n, c, q[0], q[1], q[2])] = static_cast<double>(at);
  });
  return {v, idx};
}

// PyTorch's divisor: the window clipped to input + padding (count_include_pad) or to the input.
inline double avg_divisor(const PoolShape& g, const A3& q, bool include_pad, size_t taps) {
  if (!include_pad) return static_cast<double>(taps);
  double n = 1;
  for (int i = 0; i < 3; ++i) {
    const int64_t start = q[i] * g.s[i] - g.p[i];
    n *= static_cast<double>(std::min(start + g.k[i], g.in[i] + g.p[i]) - start);
  }
  return n;
}

inline Ref ref_avg_pool(const Ref& x, const PoolArgs& a) {
  const PoolShape g = pool_shape(spatial3(x.shape), a);
  Ref y = zeros_ref(x.shape[0], x.shape[1], g.out, nsp_of(x));
  const View5 X(x), Y(y);
  windows(x.shape[0], x.shape[1], g, [&](int64_t n, int64_t c, const A3& q, auto& taps) {
    double sum = 0;
    for (const A3& t : taps) sum += X(n, c, t[0], t[1], t[2]);
    y.data[Y.flat(n, c, q[0], q[1], q[2])] =
        sum / avg_divisor(g, q, a.count_include_pad, taps.size());
  });
  return y;
}

// The adjoint of the average: each window's gradient / divisor added to its taps.
inline Ref ref_avg_pool_backward(const Ref& grad, const PoolArgs& a) {
  const PoolShape g = pool_shape(pad3(a.input_size, 1), a);
  Ref dx = zeros_ref(grad.shape[0], grad.shape[1], g.in, nsp_of(grad));
  const View5 G(grad), DX(dx);
  windows(grad.shape[0], grad.shape[1], g, [&](int64_t n, int64_t c, const A3& q, auto& taps) {
    const double v =
        G(n, c, q[0], q[1], q[2]) / avg_divisor(g, q, a.count_include_pad, taps.size());
    for (const A3& t : taps) dx.data[DX.flat(n, c, t[0], t[1], t[2])] += v;
  });
  return dx;
}

inline Ref ref_max_pool_backward(const Ref& grad, const Ref& idx, const PoolArgs& a) {
  const A3 in = pad3(a.input_size, 1);
  Ref dx = zeros_ref(grad.shape[0], grad.shape[1], in, nsp_of(grad));
  const int64_t plane = in[0] * in[1] * in[2],
                olen = grad.numel() / (grad.shape[0] * grad.shape[1]);
  for (int64_t i = 0; i < grad.numel(); ++i)
    dx.data[(i / olen) * plane + static_cast<int64_t>(idx.data[i])] += grad.data[i];
  return dx;
}

// ---- sample helpers ------------------------------------------------------------------------

inline Tensor rnd(Shape s, DType dt, uint64_t seed) {
  return random_tensor(std::move(s), dt, -2, 2, seed);
}

// A strided view with the values of rnd(shape): the last two dims stored transposed.
inline Tensor strided(Shape s, DType dt, uint64_t seed) {
  return noncontiguous(std::move(s), dt, -2, 2, seed);
}

// ---- pool cases shared by the table and the focused tests -------------------------------

struct PoolCase {
  std::string label;
  Shape x;
  PoolArgs args;
  bool noncontig = false;
};

inline const std::vector<PoolCase>& max_pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"1-d kernel 3 stride 2 padding 1", {2, 3, 9}, {{3}, {2}, {1}, {1}, {}, false, true}},
      {"1-d ceil_mode drops a window in the padding",
       {1, 2, 6},
       {{2}, {2}, {1}, {1}, {}, true, true}},
      {"2-d 2x2 (stride = kernel)", {2, 3, 6, 8}, {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
      {"2-d 3x3 stride 2 padding 1 ceil_mode",
       {1, 2, 7, 8},
       {{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, true}},
      {"2-d dilation 2", {1, 2, 7, 7}, {{2, 3}, {1, 2}, {1, 1}, {2, 2}, {}, false, true}},
      {"small 2-d (transforms)", {1, 2, 4, 4}, {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
      {"3-d", {1, 2, 4, 5, 6}, {{2, 2, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, {}, false, true}},
      {"non-contiguous", {2, 3, 6, 7}, {{3, 2}, {2, 2}, {1, 0}, {1, 1}, {}, true, true}, true},
      {"batch 16 (parallel planes)",
       {16, 6, 28, 28},
       {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
  };
  return cases;
}

inline Tensor pool_input(const PoolCase& c, DType dt, uint64_t seed) {
  return c.noncontig ? strided(c.x, dt, seed) : rnd(c.x, dt, seed);
}

}  // namespace tessera::test::nnref
