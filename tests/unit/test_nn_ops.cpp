// Convolution and pooling through the op table. References are float64 loops over Ref written
// from the definitions (a direct sum per output for conv, a scatter per input for
// conv_transpose, PyTorch's window rules for pooling), independent of im2col and the kernels.
// Each sample carries its parameters as a trailing int64 tensor, so one entry covers many
// strides, paddings, dilations and groups (int64 inputs are shared, never mapped, by vmap).
#include <array>
#include <cmath>
#include <limits>

#include "op_table.h"

namespace tessera::test {
namespace {

using Ints = std::vector<int64_t>;
using A3 = std::array<int64_t, 3>;

// ---- parameters carried as an int64 tensor -------------------------------------------------

struct ConvArgs {
  Ints stride, padding, dilation, output_padding;
  int64_t groups = 1;
  Ints kernel;  // conv_weight_grad only
};

// Layout: [stride, padding, dilation, output_padding, kernel] (nsp values each), groups.
Tensor encode(const ConvArgs& a, int nsp) {
  std::vector<int64_t> v;
  for (const Ints* p : {&a.stride, &a.padding, &a.dilation, &a.output_padding, &a.kernel})
    for (int i = 0; i < nsp; ++i)
      v.push_back(p->empty() ? (p == &a.padding || p == &a.output_padding ? 0 : 1) : (*p)[i]);
  v.push_back(a.groups);
  return tensor(v);
}
ConvArgs decode(const std::vector<double>& v, int nsp) {
  ConvArgs a;
  size_t at = 0;
  for (Ints* p : {&a.stride, &a.padding, &a.dilation, &a.output_padding, &a.kernel})
    for (int i = 0; i < nsp; ++i) p->push_back(static_cast<int64_t>(v[at++]));
  a.groups = static_cast<int64_t>(v[at]);
  return a;
}
ConvArgs decode(const Tensor& t, int nsp) { return decode(t.to_vector<double>(), nsp); }

// Pools: [kernel, stride, padding, dilation, input_size] (nsp each), ceil_mode,
// count_include_pad.
struct PoolArgs {
  Ints kernel, stride, padding, dilation, input_size;
  bool ceil_mode = false, count_include_pad = true;
};
Tensor encode(const PoolArgs& a, int nsp) {
  std::vector<int64_t> v;
  for (const Ints* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.input_size})
    for (int i = 0; i < nsp; ++i)
      v.push_back(p->empty() ? (p == &a.padding ? 0 : p == &a.stride ? a.kernel[i] : 1) : (*p)[i]);
  v.push_back(a.ceil_mode);
  v.push_back(a.count_include_pad);
  return tensor(v);
}
PoolArgs decode_pool(const std::vector<double>& v, int nsp) {
  PoolArgs a;
  size_t at = 0;
  for (Ints* p : {&a.kernel, &a.stride, &a.padding, &a.dilation, &a.input_size})
    for (int i = 0; i < nsp; ++i) p->push_back(static_cast<int64_t>(v[at++]));
  a.ceil_mode = v[at] != 0;
  a.count_include_pad = v[at + 1] != 0;
  return a;
}
PoolArgs decode_pool(const Tensor& t, int nsp) { return decode_pool(t.to_vector<double>(), nsp); }

int nsp_of(const Tensor& x) { return static_cast<int>(x.dim() - 2); }
int nsp_of(const Ref& x) { return static_cast<int>(x.shape.size() - 2); }

// Spatial values right-aligned in 3 dims, padded with `fill`.
A3 pad3(const Ints& v, int64_t fill) {
  A3 r{fill, fill, fill};
  for (size_t i = 0; i < v.size(); ++i) r[3 - v.size() + i] = v[i];
  return r;
}
A3 spatial3(const Shape& s) { return pad3(Ints(s.begin() + 2, s.end()), 1); }

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

Ref zeros_ref(int64_t n, int64_t c, const A3& sp, int nsp) {
  Ref r;
  r.shape = {n, c};
  for (int i = 3 - nsp; i < 3; ++i) r.shape.push_back(sp[i]);
  r.data.assign(static_cast<size_t>(n * c * sp[0] * sp[1] * sp[2]), 0.0);
  return r;
}

bool inside(const A3& pos, const A3& size) {
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
Ref ref_conv(const Ref& x, const Ref& w, const Ref* b, const ConvArgs& a) {
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
Ref ref_conv_transpose(const Ref& x, const Ref& w, const Ref* b, const ConvArgs& a) {
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
Ref ref_conv_weight_grad(const Ref& x, const Ref& dy, const ConvArgs& a) {
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
int64_t pooled(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const double num = static_cast<double>(in + 2 * p - d * (k - 1) - 1) / static_cast<double>(s);
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(num) : std::floor(num)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

struct PoolShape {
  A3 in, k, s, p, d, out;
};
PoolShape pool_shape(const A3& in, const PoolArgs& a) {
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
std::pair<Ref, Ref> ref_max_pool(const Ref& x, const PoolArgs& a) {
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
double avg_divisor(const PoolShape& g, const A3& q, bool include_pad, size_t taps) {
  if (!include_pad) return static_cast<double>(taps);
  double n = 1;
  for (int i = 0; i < 3; ++i) {
    const int64_t start = q[i] * g.s[i] - g.p[i];
    n *= static_cast<double>(std::min(start + g.k[i], g.in[i] + g.p[i]) - start);
  }
  return n;
}

Ref ref_avg_pool(const Ref& x, const PoolArgs& a) {
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
Ref ref_avg_pool_backward(const Ref& grad, const PoolArgs& a) {
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

Ref ref_max_pool_backward(const Ref& grad, const Ref& idx, const PoolArgs& a) {
  const A3 in = pad3(a.input_size, 1);
  Ref dx = zeros_ref(grad.shape[0], grad.shape[1], in, nsp_of(grad));
  const int64_t plane = in[0] * in[1] * in[2],
                olen = grad.numel() / (grad.shape[0] * grad.shape[1]);
  for (int64_t i = 0; i < grad.numel(); ++i)
    dx.data[(i / olen) * plane + static_cast<int64_t>(idx.data[i])] += grad.data[i];
  return dx;
}

// ---- sample helpers ------------------------------------------------------------------------

Tensor rnd(Shape s, DType dt, uint64_t seed) {
  return random_tensor(std::move(s), dt, -2, 2, seed);
}

// A strided view with the values of rnd(shape): the last two dims stored transposed.
Tensor strided(Shape s, DType dt, uint64_t seed) {
  return noncontiguous(std::move(s), dt, -2, 2, seed);
}

Tolerance conv_tolerance(DType dt) {
  return dt == kFloat64 ? Tolerance{1e-12, 1e-11} : Tolerance{1e-5, 1e-4};
}

struct ConvCase {
  std::string label;
  Shape x, w;
  bool bias;
  ConvArgs args;
  bool noncontig = false;
};

// Bias channels: conv's weight is (C_out, ...), conv_transpose's (C_in, C_out / groups, ...).
std::vector<Sample> conv_samples(const std::vector<ConvCase>& cases, DType dt, bool transpose) {
  std::vector<Sample> out;
  uint64_t seed = 1;
  for (const ConvCase& c : cases) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    Sample s{c.label, {}};
    s.inputs.push_back(c.noncontig ? strided(c.x, dt, seed++) : rnd(c.x, dt, seed++));
    s.inputs.push_back(c.noncontig ? strided(c.w, dt, seed++) : rnd(c.w, dt, seed++));
    if (c.bias) s.inputs.push_back(rnd({transpose ? c.w[1] * c.args.groups : c.w[0]}, dt, seed++));
    s.inputs.push_back(encode(c.args, nsp));
    out.push_back(std::move(s));
  }
  return out;
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d", {2, 3, 7}, {4, 3, 3}, true, {{1}, {0}, {1}, {}, 1, {}}},
      {"1-d stride 2 padding 1 dilation 2",
       {2, 2, 9},
       {3, 2, 2},
       false,
       {{2}, {1}, {2}, {}, 1, {}}},
      {"small 1-d (transforms)", {1, 2, 4}, {2, 2, 2}, true, {{1}, {1}, {1}, {}, 1, {}}},
      {"2-d", {2, 3, 6, 5}, {4, 3, 3, 2}, true, {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"2-d stride (2, 1) padding (1, 2)",
       {1, 2, 7, 6},
       {3, 2, 3, 3},
       false,
       {{2, 1}, {1, 2}, {1, 1}, {}, 1, {}}},
      {"2-d dilation (2, 1)",
       {2, 2, 8, 7},
       {2, 2, 2, 3},
       true,
       {{1, 1}, {1, 0}, {2, 1}, {}, 1, {}}},
      {"2-d groups 2", {2, 4, 5, 5}, {6, 2, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, {}, 2, {}}},
      {"2-d depthwise", {1, 3, 5, 4}, {3, 1, 2, 2}, false, {{2, 1}, {0, 1}, {1, 1}, {}, 3, {}}},
      {"2-d 1x1 (no im2col)",
       {2, 3, 4, 5},
       {5, 3, 1, 1},
       true,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"2-d 1x1 stride 2", {2, 3, 5, 5}, {2, 3, 1, 1}, false, {{2, 2}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"small 2-d (transforms)",
       {1, 1, 4, 4},
       {2, 1, 2, 2},
       true,
       {{2, 2}, {1, 1}, {1, 1}, {}, 1, {}}},
      {"small 2-d groups (transforms)",
       {1, 2, 3, 3},
       {2, 1, 2, 2},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 2, {}}},
      {"3-d", {1, 2, 4, 5, 4}, {3, 2, 2, 3, 2}, true, {{1, 2, 1}, {1, 0, 1}, {1, 1, 2}, {}, 1, {}}},
      {"non-contiguous",
       {2, 3, 5, 6},
       {4, 3, 2, 3},
       true,
       {{1, 2}, {1, 0}, {1, 1}, {}, 1, {}},
       true},
      {"non-contiguous 1x1",
       {2, 3, 4, 5},
       {2, 3, 1, 1},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}},
       true},
      {"empty batch", {0, 3, 5}, {2, 3, 2}, true, {{1}, {0}, {1}, {}, 1, {}}},
      {"batch 64 (parallel items)",
       {64, 3, 10, 10},
       {6, 3, 3, 3},
       true,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {}}},
      {"large items (threaded GEMM)",
       {2, 16, 18, 18},
       {32, 16, 3, 3},
       true,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {}}},
  };
  return cases;
}

const std::vector<ConvCase>& conv_transpose_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d stride 2 output_padding 1", {2, 3, 5}, {3, 2, 3}, true, {{2}, {1}, {1}, {1}, 1, {}}},
      {"small 1-d (transforms)", {1, 2, 3}, {2, 2, 2}, true, {{2}, {0}, {1}, {0}, 1, {}}},
      {"2-d", {2, 4, 3, 4}, {4, 3, 3, 2}, true, {{2, 1}, {1, 0}, {1, 1}, {1, 0}, 1, {}}},
      {"2-d groups 2", {1, 4, 3, 3}, {4, 1, 2, 2}, false, {{1, 1}, {0, 0}, {1, 1}, {0, 0}, 2, {}}},
      // output_padding >= stride (allowed by dilation): the adjoint conv needs cutting.
      {"2-d dilation 2 output_padding 1 stride 1",
       {1, 2, 4, 3},
       {2, 2, 2, 2},
       true,
       {{1, 1}, {0, 1}, {2, 2}, {1, 1}, 1, {}}},
      {"2-d 1x1 (no col2im)",
       {2, 3, 4, 4},
       {3, 5, 1, 1},
       true,
       {{1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, {}}},
      {"small 2-d (transforms)",
       {1, 1, 3, 3},
       {1, 2, 2, 2},
       false,
       {{2, 2}, {1, 0}, {1, 1}, {1, 0}, 1, {}}},
      {"3-d",
       {1, 2, 2, 3, 2},
       {2, 2, 2, 2, 2},
       true,
       {{2, 1, 2}, {0, 1, 0}, {1, 1, 1}, {1, 0, 0}, 1, {}}},
      {"non-contiguous",
       {2, 3, 4, 3},
       {3, 2, 2, 3},
       true,
       {{2, 2}, {1, 1}, {1, 1}, {0, 1}, 1, {}},
       true},
      {"empty batch", {0, 2, 4}, {2, 3, 2}, false, {{1}, {0}, {1}, {0}, 1, {}}},
      {"batch 64 (parallel items)",
       {64, 6, 5, 5},
       {6, 3, 2, 2},
       true,
       {{2, 2}, {0, 0}, {1, 1}, {0, 0}, 1, {}}},
      {"large items (threaded GEMM)",
       {2, 32, 16, 16},
       {32, 16, 3, 3},
       false,
       {{1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, {}}},
  };
  return cases;
}

// conv_weight_grad: x and dy shapes; dy may cover only a prefix of the conv's output.
const std::vector<ConvCase>& weight_grad_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d", {2, 3, 7}, {2, 4, 5}, false, {{1}, {0}, {1}, {}, 1, {3}}},
      {"small 1-d (transforms)", {1, 2, 4}, {1, 2, 3}, false, {{1}, {0}, {1}, {}, 1, {2}}},
      {"2-d stride/padding/dilation",
       {2, 2, 7, 6},
       {2, 3, 3, 5},
       false,
       {{2, 1}, {1, 1}, {1, 2}, {}, 1, {3, 2}}},
      {"2-d groups 2", {2, 4, 5, 5}, {2, 6, 5, 5}, false, {{1, 1}, {1, 1}, {1, 1}, {}, 2, {3, 3}}},
      {"2-d dy covers a prefix",
       {1, 2, 5, 5},
       {1, 2, 3, 4},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {2, 2}}},
      {"3-d",
       {1, 2, 4, 3, 4},
       {1, 2, 3, 3, 2},
       false,
       {{1, 1, 2}, {0, 1, 0}, {1, 1, 1}, {}, 1, {2, 3, 2}}},
      {"non-contiguous",
       {2, 3, 5, 4},
       {2, 2, 4, 3},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {2, 2}},
       true},
      {"batch 64 (chunked columns)",
       {64, 3, 8, 8},
       {64, 4, 8, 8},
       false,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {3, 3}}},
  };
  return cases;
}

std::vector<Sample> weight_grad_samples(DType dt) {
  std::vector<Sample> out;
  uint64_t seed = 300;
  for (const ConvCase& c : weight_grad_cases()) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    out.push_back(
        {c.label,
         {c.noncontig ? strided(c.x, dt, seed) : rnd(c.x, dt, seed),
          c.noncontig ? strided(c.w, dt, seed + 1) : rnd(c.w, dt, seed + 1), encode(c.args, nsp)}});
    seed += 2;
  }
  return out;
}

Attrs conv_attrs(const ConvArgs& a) {
  return {{"stride", a.stride},
          {"padding", a.padding},
          {"dilation", a.dilation},
          {"groups", a.groups},
          {"output_padding", a.output_padding},
          {"kernel", a.kernel}};
}

// ---- pool samples --------------------------------------------------------------------------

struct PoolCase {
  std::string label;
  Shape x;
  PoolArgs args;
  bool noncontig = false;
};

const std::vector<PoolCase>& max_pool_cases() {
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

const std::vector<PoolCase>& avg_pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"1-d", {2, 3, 9}, {{3}, {2}, {1}, {1}, {}, false, true}},
      {"1-d exclude padding", {2, 2, 8}, {{3}, {2}, {1}, {1}, {}, false, false}},
      {"1-d ceil_mode", {1, 2, 6}, {{2}, {2}, {1}, {1}, {}, true, true}},
      {"2-d 2x2", {2, 3, 6, 8}, {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
      {"2-d ceil_mode include padding",
       {1, 2, 7, 8},
       {{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, true}},
      {"2-d ceil_mode exclude padding",
       {1, 2, 7, 8},
       {{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, false}},
      {"small 2-d (transforms)", {1, 2, 4, 4}, {{2, 2}, {1, 1}, {1, 1}, {1, 1}, {}, false, false}},
      {"3-d", {1, 2, 4, 5, 6}, {{2, 2, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, {}, false, true}},
      {"non-contiguous", {2, 3, 6, 7}, {{3, 2}, {2, 2}, {1, 0}, {1, 1}, {}, true, false}, true},
      {"batch 16 (parallel planes)",
       {16, 6, 28, 28},
       {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
  };
  return cases;
}

Tensor pool_input(const PoolCase& c, DType dt, uint64_t seed) {
  return c.noncontig ? strided(c.x, dt, seed) : rnd(c.x, dt, seed);
}

std::vector<Sample> pool_samples(const std::vector<PoolCase>& cases, DType dt) {
  std::vector<Sample> out;
  uint64_t seed = 500;
  for (const PoolCase& c : cases)
    out.push_back(
        {c.label, {pool_input(c, dt, seed++), encode(c.args, static_cast<int>(c.x.size() - 2))}});
  return out;
}

Attrs pool_attrs(const PoolArgs& a) {
  return {{"kernel", a.kernel},        {"stride", a.stride},
          {"padding", a.padding},      {"dilation", a.dilation},
          {"ceil_mode", a.ceil_mode},  {"count_include_pad", a.count_include_pad},
          {"input_size", a.input_size}};
}

// Backward samples: a gradient shaped like the pooled output (and the argmax of a forward run).
std::vector<Sample> pool_backward_samples(const std::vector<PoolCase>& cases, DType dt,
                                          bool is_max) {
  std::vector<Sample> out;
  uint64_t seed = 700;
  for (const PoolCase& c : cases) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    PoolArgs a = c.args;
    a.input_size.assign(c.x.begin() + 2, c.x.end());
    if (a.stride.empty()) a.stride = a.kernel;
    const Tensor x = pool_input(c, dt, seed++);
    if (is_max) {
      auto [v, idx] =
          max_pool_with_indices(x, a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
      Tensor g = c.noncontig ? strided(v.shape(), dt, seed) : rnd(v.shape(), dt, seed);
      out.push_back({c.label, {g, idx, encode(a, nsp)}});
    } else {
      const PoolShape ps = pool_shape(pad3(a.input_size, 1), a);
      Shape s{c.x[0], c.x[1]};
      for (int i = 3 - nsp; i < 3; ++i) s.push_back(ps.out[i]);
      out.push_back(
          {c.label, {c.noncontig ? strided(s, dt, seed) : rnd(s, dt, seed), encode(a, nsp)}});
    }
    ++seed;
  }
  return out;
}

Tolerance pool_tolerance(DType dt) {
  return dt == kFloat64 ? Tolerance{1e-12, 1e-12} : default_tolerance(dt);
}

// ---- entries -------------------------------------------------------------------------------

const std::vector<DType> kConvDTypes = {kFloat32, kFloat64};
const std::vector<DType> kPoolDTypes = {kFloat32, kFloat64};

Tensor run_conv(const std::vector<Tensor>& in) {
  const ConvArgs a = decode(in.back(), nsp_of(in[0]));
  const Tensor b = in.size() > 3 ? in[2] : Tensor();
  switch (in[0].dim()) {
    case 3:
      return conv1d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
    case 4:
      return conv2d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
    default:
      return conv3d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
  }
}

Tensor run_conv_transpose(const std::vector<Tensor>& in) {
  const ConvArgs a = decode(in.back(), nsp_of(in[0]));
  const Tensor b = in.size() > 3 ? in[2] : Tensor();
  if (in[0].dim() == 4)
    return conv_transpose2d(in[0], in[1], b, a.stride, a.padding, a.output_padding, a.groups,
                            a.dilation);
  return conv_transpose(in[0], in[1], b, a.stride, a.padding, a.output_padding, a.groups,
                        a.dilation);
}

Ref ref_conv_entry(const std::vector<Ref>& in, DType, bool transpose) {
  const ConvArgs a = decode(in.back().data, nsp_of(in[0]));
  const Ref* b = in.size() > 3 ? &in[2] : nullptr;
  return transpose ? ref_conv_transpose(in[0], in[1], b, a) : ref_conv(in[0], in[1], b, a);
}

auto zeros_of(Shape s, DType dt = kFloat32) { return zeros(std::move(s), TensorOptions(dt)); }

OpEntry conv_entry() {
  OpEntry e;
  e.prim = "conv";
  e.dtypes = kConvDTypes;
  e.samples = [](DType dt) { return conv_samples(conv_cases(), dt, false); };
  e.op = run_conv;
  e.reference = [](const std::vector<Ref>& in, DType dt) { return ref_conv_entry(in, dt, false); };
  e.tolerance = conv_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  auto z = [](Shape s) { return zeros_of(std::move(s)); };
  e.errors = {
      expect_error<ShapeError>("conv2d of a 3-d input", "conv2d",
                               [z] {
                                 conv2d(z({1, 2, 5}), z({1, 2, 3}));
                               }),
      expect_error<ShapeError>("conv of a 2-d input", "conv",
                               [z] {
                                 conv(z({2, 5}), z({1, 2}));
                               }),
      expect_error<ShapeError>("weight rank", "conv2d",
                               [z] {
                                 conv2d(z({1, 2, 5, 5}), z({1, 2, 3}));
                               }),
      expect_error<ShapeError>("channels differ", "conv2d",
                               [z] {
                                 conv2d(z({1, 3, 5, 5}), z({4, 2, 3, 3}));
                               }),
      expect_error<ValueError>("groups do not divide the input channels", "conv2d",
                               [z] {
                                 conv2d(z({1, 3, 5, 5}), z({4, 1, 3, 3}), {}, {1}, {0}, {1}, 2);
                               }),
      expect_error<ValueError>("groups do not divide the output channels", "conv2d",
                               [z] {
                                 conv2d(z({1, 4, 5, 5}), z({3, 2, 3, 3}), {}, {1}, {0}, {1}, 2);
                               }),
      expect_error<ShapeError>("kernel larger than the padded input", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 7, 3}), {}, {1}, {1});
                               }),
      expect_error<ShapeError>("dilated kernel too large", "conv1d",
                               [z] {
                                 conv1d(z({1, 1, 5}), z({1, 1, 3}), {}, {1}, {0}, {3});
                               }),
      expect_error<ValueError>("stride 0", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {0});
                               }),
      expect_error<ValueError>("negative padding", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1}, {-1});
                               }),
      expect_error<ValueError>("stride of 3 values for 2 dims", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1, 1, 1});
                               }),
      expect_error<ValueError>("groups 0", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1}, {0}, {1}, 0);
                               }),
      expect_error<ShapeError>("bias size", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({2, 1, 2, 2}), z({3}));
                               }),
      expect_error<DTypeError>("dtypes differ", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), zeros_of({1, 1, 2, 2}, kFloat64));
                               }),
      expect_error<DTypeError>(
          "integer input", "conv2d",
          [] {
            conv2d(zeros_of({1, 1, 4, 4}, kInt64), zeros_of({1, 1, 2, 2}, kInt64));
          }),
  };
  return e;
}

OpEntry conv_transpose_entry() {
  OpEntry e;
  e.prim = "conv_transpose";
  e.dtypes = kConvDTypes;
  e.samples = [](DType dt) { return conv_samples(conv_transpose_cases(), dt, true); };
  e.op = run_conv_transpose;
  e.reference = [](const std::vector<Ref>& in, DType dt) { return ref_conv_entry(in, dt, true); };
  e.tolerance = conv_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  auto z = [](Shape s) { return zeros_of(std::move(s)); };
  e.errors = {
      expect_error<ShapeError>("3-d input", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 2, 5}), z({2, 1, 3}));
                               }),
      expect_error<ShapeError>("input channels differ from weight dim 0", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 3, 4, 4}), z({2, 1, 3, 3}));
                               }),
      expect_error<ValueError>(
          "groups do not divide", "conv_transpose2d",
          [z] {
            conv_transpose2d(z({1, 3, 4, 4}), z({3, 1, 3, 3}), {}, {1}, {0}, {0}, 2);
          }),
      expect_error<ValueError>(
          "output_padding not below stride or dilation", "conv_transpose2d",
          [z] {
            conv_transpose2d(z({1, 1, 4, 4}), z({1, 1, 3, 3}), {}, {2}, {0}, {2});
          }),
      expect_error<ShapeError>("empty output", "conv_transpose1d",
                               [z] {
                                 conv_transpose1d(z({1, 1, 1}), z({1, 1, 1}), {}, {1}, {1});
                               }),
      expect_error<ShapeError>("bias size", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 2, 4, 4}), z({2, 3, 2, 2}), z({2}));
                               }),
      expect_error<DTypeError>(
          "integer input", "conv_transpose1d",
          [] {
            conv_transpose1d(zeros_of({1, 1, 4}, kInt32), zeros_of({1, 1, 2}, kInt32));
          }),
  };
  return e;
}

OpEntry conv_weight_grad_entry() {
  OpEntry e;
  e.prim = "conv_weight_grad";
  e.dtypes = kConvDTypes;
  e.samples = weight_grad_samples;
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("conv_weight_grad");
    return dispatch1(p, {in[0], in[1]}, conv_attrs(decode(in[2], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_conv_weight_grad(in[0], in[1], decode(in[2].data, nsp_of(in[0])));
  };
  e.tolerance = conv_tolerance;
  auto wg = [](Shape x, Shape dy, ConvArgs a) {
    dispatch1(prim("conv_weight_grad"), {zeros_of(std::move(x)), zeros_of(std::move(dy))},
              conv_attrs(a));
  };
  e.errors = {
      expect_error<ShapeError>("dy larger than the conv output", "conv_weight_grad",
                               [wg] {
                                 wg({1, 2, 5}, {1, 2, 5}, {{1}, {0}, {1}, {0}, 1, {2}});
                               }),
      expect_error<ShapeError>("batch sizes differ", "conv_weight_grad",
                               [wg] {
                                 wg({2, 2, 5}, {1, 2, 4}, {{1}, {0}, {1}, {0}, 1, {2}});
                               }),
      expect_error<ValueError>("groups do not divide dy's channels", "conv_weight_grad",
                               [wg] {
                                 wg({1, 2, 5}, {1, 3, 4}, {{1}, {0}, {1}, {0}, 2, {2}});
                               }),
  };
  return e;
}

Tensor run_max_pool(const std::vector<Tensor>& in) {
  const PoolArgs a = decode_pool(in[1], nsp_of(in[0]));
  switch (in[0].dim()) {
    case 3:
      return max_pool1d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
    case 4:
      return max_pool2d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
    default:
      return max_pool3d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
  }
}

Tensor run_avg_pool(const std::vector<Tensor>& in) {
  const PoolArgs a = decode_pool(in[1], nsp_of(in[0]));
  switch (in[0].dim()) {
    case 3:
      return avg_pool1d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
    case 4:
      return avg_pool2d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
    default:
      return avg_pool3d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
  }
}

std::vector<ErrorCase> pool_errors(bool is_max) {
  const std::string op2 = is_max ? "max_pool2d" : "avg_pool2d";
  const std::string op1 = is_max ? "max_pool1d" : "avg_pool1d";
  auto pool2 = [is_max](Shape s, Ints k, Ints st, Ints p, DType dt = kFloat32) {
    const Tensor x = zeros_of(std::move(s), dt);
    if (is_max)
      max_pool2d(x, k, st, p);
    else
      avg_pool2d(x, k, st, p);
  };
  auto pool1 = [is_max](Shape s, Ints k) {
    const Tensor x = zeros_of(std::move(s));
    if (is_max)
      max_pool1d(x, k);
    else
      avg_pool1d(x, k);
  };
  return {
      expect_error<ShapeError>("3-d input to the 2-d pool", op2,
                               [pool2] {
                                 pool2({1, 4, 4}, {2}, {}, {0});
                               }),
      expect_error<ShapeError>("kernel larger than the input", op2,
                               [pool2] {
                                 pool2({1, 1, 3, 3}, {4, 2}, {}, {0});
                               }),
      expect_error<ValueError>("padding over half the kernel", op2,
                               [pool2] {
                                 pool2({1, 1, 6, 6}, {2}, {1}, {2});
                               }),
      expect_error<ValueError>("kernel 0", op1,
                               [pool1] {
                                 pool1({1, 1, 6}, {0});
                               }),
      expect_error<ValueError>("kernel of 2 values for 1 dim", op1,
                               [pool1] {
                                 pool1({1, 1, 6}, {2, 2});
                               }),
      expect_error<ValueError>("stride 0", op2,
                               [pool2] {
                                 pool2({1, 1, 6, 6}, {2}, {0}, {0});
                               }),
      expect_error<DTypeError>("integer input", op2,
                               [pool2] {
                                 pool2({1, 1, 4, 4}, {2}, {}, {0}, kInt64);
                               }),
  };
}

OpEntry max_pool_entry() {
  OpEntry e;
  e.prim = "max_pool";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_samples(max_pool_cases(), dt); };
  e.op = run_max_pool;
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_max_pool(in[0], decode_pool(in[1].data, nsp_of(in[0]))).first;
  };
  e.tolerance = pool_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  e.errors = pool_errors(true);
  return e;
}

OpEntry avg_pool_entry() {
  OpEntry e;
  e.prim = "avg_pool";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_samples(avg_pool_cases(), dt); };
  e.op = run_avg_pool;
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_avg_pool(in[0], decode_pool(in[1].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  e.errors = pool_errors(false);
  return e;
}

OpEntry max_pool_backward_entry() {
  OpEntry e;
  e.prim = "max_pool_backward";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_backward_samples(max_pool_cases(), dt, true); };
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("max_pool_backward");
    return dispatch1(p, {in[0], in[1]}, pool_attrs(decode_pool(in[2], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_max_pool_backward(in[0], in[1], decode_pool(in[2].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  const PoolArgs a{{2}, {2}, {0}, {1}, {6}, false, true};
  e.errors = {
      expect_error<IndexError>("index outside the plane", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 3}), full({1, 1, 3}, 6, kInt64)},
                                           pool_attrs(a));
                               }),
      expect_error<ShapeError>("indices of another shape", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 3}), zeros_of({1, 1, 2}, kInt64)},
                                           pool_attrs(a));
                               }),
      expect_error<ShapeError>("gradient not the pooled size", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 4}), zeros_of({1, 1, 4}, kInt64)},
                                           pool_attrs(a));
                               }),
  };
  return e;
}

OpEntry avg_pool_backward_entry() {
  OpEntry e;
  e.prim = "avg_pool_backward";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_backward_samples(avg_pool_cases(), dt, false); };
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("avg_pool_backward");
    return dispatch1(p, {in[0]}, pool_attrs(decode_pool(in[1], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_avg_pool_backward(in[0], decode_pool(in[1].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  const PoolArgs a{{2}, {2}, {0}, {1}, {6}, false, true};
  e.errors = {expect_error<ShapeError>("gradient not the pooled size", "avg_pool_backward", [a] {
    dispatch1(prim("avg_pool_backward"), {zeros_of({1, 1, 4})}, pool_attrs(a));
  })};
  return e;
}

bool registered = register_entries({conv_entry(), conv_transpose_entry(), conv_weight_grad_entry(),
                                    max_pool_entry(), avg_pool_entry(), max_pool_backward_entry(),
                                    avg_pool_backward_entry()});

bool is_nn_prim(const std::string& p) {
  for (const char* n : {"conv", "conv_transpose", "conv_weight_grad", "max_pool", "avg_pool",
                        "max_pool_backward", "avg_pool_backward"})
    if (p == n) return true;
  return false;
}

}  // namespace

TEST(NnOps, Table) {
  for (const OpEntry& e : all_entries())
    if (is_nn_prim(e.prim)) check_entry(e);
}

TEST(NnOps, MaxPoolIndicesMatchReference) {
  for (DType dt : {kFloat32, kFloat64})
    for (const PoolCase& c : max_pool_cases()) {
      SCOPED_TRACE(c.label);
      const Tensor x = pool_input(c, dt, 11);
      const PoolArgs a = decode_pool(encode(c.args, static_cast<int>(c.x.size() - 2)),
                                     static_cast<int>(c.x.size() - 2));
      auto [v, idx] =
          max_pool_with_indices(x, a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
      ASSERT_EQ(idx.dtype(), kInt64);
      const auto [rv, ri] = ref_max_pool(to_ref(x), a);
      EXPECT_TRUE(close(idx, ri, {0, 0}));
      EXPECT_TRUE(close(v, rv, {0, 0}));
    }
}

// NaN wins a window and reports its own index, like PyTorch.
TEST(NnOps, MaxPoolPropagatesNaN) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor x = tensor(std::vector<double>{1, nan, 3, 0, 5, 2}, Shape{1, 1, 6});
  auto [v, idx] = max_pool_with_indices(x, {3});
  const std::vector<double> vv = v.to_vector<double>();
  EXPECT_TRUE(std::isnan(vv[0]));
  EXPECT_EQ(vv[1], 5.0);
  EXPECT_EQ(idx.to_vector<int64_t>(), (std::vector<int64_t>{1, 4}));
}

// Windows of PyTorch's adaptive pooling: floor(i * in / out) to ceil((i + 1) * in / out).
Ref ref_adaptive(const Ref& x, int64_t oh, int64_t ow) {
  const int64_t n = x.shape[0], c = x.shape[1], h = x.shape[2], w = x.shape[3];
  Ref y{{n, c, oh, ow}, {}, {}};
  for (int64_t p = 0; p < n * c; ++p)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
        const int64_t w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
        double sum = 0;
        for (int64_t a = h0; a < h1; ++a)
          for (int64_t b = w0; b < w1; ++b) sum += x.data[(p * h + a) * w + b];
        y.data.push_back(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
  return y;
}

TEST(NnOps, AdaptiveAvgPool2d) {
  for (DType dt : {kFloat32, kFloat64})
    for (const auto& [shape, out] : std::vector<std::pair<Shape, Ints>>{{{2, 3, 7, 5}, {3, 2}},
                                                                        {{1, 2, 8, 6}, {4, 3}},
                                                                        {{2, 2, 5, 5}, {1}},
                                                                        {{1, 1, 4, 9}, {5, 9}}}) {
      SCOPED_TRACE(shape_str(shape) + " -> " + shape_str(out));
      const Tensor x = strided(shape, dt, 3);
      const Tensor y = adaptive_avg_pool2d(x, out);
      const Ints o = out.size() == 1 ? Ints{out[0], out[0]} : out;
      EXPECT_TRUE(close(y, ref_adaptive(to_ref(x), o[0], o[1]),
                        dt == kFloat64 ? Tolerance{1e-12, 1e-12} : Tolerance{1e-5, 1e-6}));
    }
  EXPECT_THROW(adaptive_avg_pool2d(zeros({1, 2, 3}), {2}), ShapeError);
  EXPECT_THROW(adaptive_avg_pool2d(zeros({1, 2, 3, 3}), {0}), ValueError);
}

// Gradient of sum(v * f(inputs)) with respect to input k, by central differences.
std::vector<double> numeric_grad(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                                 const std::vector<Tensor>& in, size_t k) {
  autograd::NoGradGuard no_grad;
  std::vector<double> g;
  const Tensor base = in[k].contiguous();
  for (int64_t j = 0; j < base.numel(); ++j) {
    auto at = [&](double d) {
      std::vector<Tensor> args = in;
      Tensor c = base.clone();
      c.data_ptr<double>()[j] += d;
      args[k] = c.reshape(base.shape());
      return f(args).item<double>();
    };
    g.push_back((at(1e-6) - at(-1e-6)) / 2e-6);
  }
  return g;
}

void expect_near_all(const Tensor& got, const std::vector<double>& want, double tol) {
  const std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], tol + tol * std::abs(want[i])) << "element " << i;
}

// Second order through the engine: the gradients (conv_transpose, conv_weight_grad and the bias
// sum) are themselves differentiated, against differences of the first-order gradients.
void check_double_backward(
    const std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>& op, Shape xs,
    Shape ws, Shape bs) {
  const std::vector<Tensor> in{rnd(xs, kFloat64, 1), rnd(ws, kFloat64, 2), rnd(bs, kFloat64, 3)};
  const Tensor u0 = rnd(xs, kFloat64, 4), u1 = rnd(ws, kFloat64, 5);
  // s(x, w, b) = <u0, d/dx L> + <u1, d/dw L> with L = sum(tanh(op(x, w, b))).
  auto s = [&](const std::vector<Tensor>& args, bool create) {
    std::vector<Tensor> leaves;
    for (const Tensor& t : args) leaves.push_back(t.detach().requires_grad_());
    autograd::EnableGradGuard on;
    Tensor loss = tanh(op(leaves[0], leaves[1], leaves[2])).sum();
    std::vector<Tensor> g =
        autograd::grad({loss}, {leaves[0], leaves[1]}, {}, {false, create, false});
    return std::pair{leaves, (g[0] * u0).sum() + (g[1] * u1).sum()};
  };
  auto [leaves, value] = s(in, true);
  std::vector<Tensor> second = autograd::grad({value}, leaves);
  auto fn = [&](const std::vector<Tensor>& args) { return s(args, false).second.detach(); };
  for (size_t k = 0; k < 3; ++k) {
    SCOPED_TRACE("input " + std::to_string(k));
    expect_near_all(second[k], numeric_grad(fn, in, k), 1e-5);
  }
}

TEST(NnOps, DoubleBackwardConv) {
  check_double_backward(
      [](const Tensor& x, const Tensor& w, const Tensor& b) {
        return conv2d(x, w, b, {2, 1}, {1, 0}, {1, 1}, 2);
      },
      {2, 4, 5, 4}, {4, 2, 3, 2}, {4});
}

TEST(NnOps, DoubleBackwardConvTranspose) {
  check_double_backward(
      [](const Tensor& x, const Tensor& w, const Tensor& b) {
        return conv_transpose1d(x, w, b, {2}, {1}, {1}, 1, {1});
      },
      {2, 3, 4}, {3, 2, 3}, {2});
}

TEST(NnOps, DoubleBackwardPools) {
  check_double_backward(
      [](const Tensor& x, const Tensor& w, const Tensor& b) {
        Tensor y = conv2d(x, w, b, {1}, {1});
        return avg_pool2d(max_pool2d(y, {2}, {1}), {2}, {1}, {1}, true, false);
      },
      {1, 2, 5, 5}, {3, 2, 2, 2}, {3});
}

// Forward over reverse: the jvp rules of the backward primitives.
TEST(NnOps, HessianThroughConvAndPool) {
  const Tensor x = rnd({1, 2, 5, 5}, kFloat64, 7);
  TensorFn f = [x](const Tensor& w) {
    return tanh(max_pool2d(conv2d(x, w, {}, {1}, {1}), {2})).sum();
  };
  const Tensor w = rnd({2, 2, 2, 2}, kFloat64, 8);
  const Tensor h = hessian(f)(w).reshape({16, 16});
  TensorFn g = [&](const Tensor& wv) { return grad(f)(wv).reshape({16}); };
  for (int64_t j = 0; j < 16; ++j) {
    Tensor e = zeros({16}, kFloat64);
    e.data_ptr<double>()[j] = 1e-6;
    const Tensor col = (g(w + e.reshape(w.shape())) - g(w - e.reshape(w.shape()))) / 2e-6;
    EXPECT_TRUE(close(h.select(1, j), to_ref(col), {1e-4, 1e-5})) << "column " << j;
  }
}

// Per-example weights under vmap become groups; the result matches a loop over examples.
TEST(NnOps, VmapPerExampleWeights) {
  const Tensor xs = rnd({3, 2, 4, 6, 6}, kFloat64, 1), ws = rnd({3, 5, 4, 3, 3}, kFloat64, 2);
  TensorsFn f = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{conv2d(a[0], a[1], {}, {2}, {1})};
  };
  const Tensor got = vmap(f, {0, 0})({xs, ws})[0];
  std::vector<Tensor> loop;
  for (int64_t i = 0; i < 3; ++i) loop.push_back(f({xs[i], ws[i]})[0]);
  EXPECT_TRUE(close(got, to_ref(stack(loop)), {1e-12, 1e-12}));
  // Per-example weight gradients: vmap of grad.
  TensorsFn loss = [](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{square(conv2d(a[0], a[1], {}, {1}, {1})).sum()};
  };
  const Tensor gw = vmap(grad(loss, {1}), {0, std::nullopt})({xs, ws[0]})[0];
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_TRUE(close(gw[i], to_ref(grad(loss, {1})({xs[i], ws[0]})[0]), {1e-10, 1e-10}));
}

// 16-bit floats: convolutions compute in float32 and round once; pools accumulate in float.
TEST(NnOps, HalfPrecision) {
  for (DType dt : {kFloat16, kBFloat16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x = rnd({2, 3, 6, 6}, dt, 1), w = rnd({4, 3, 3, 3}, dt, 2), b = rnd({4}, dt, 3);
    const Tensor y = conv2d(x, w, b, {1}, {1});
    EXPECT_EQ(y.dtype(), dt);
    const ConvArgs a{{1, 1}, {1, 1}, {1, 1}, {}, 1, {}};
    const Ref rb = to_ref(b);
    const double tol = dt == kFloat16 ? 2e-2 : 1e-1;
    EXPECT_TRUE(close(y, ref_conv(to_ref(x), to_ref(w), &rb, a), {tol, tol}));
    const PoolArgs pa{{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, false};
    EXPECT_TRUE(close(max_pool2d(x, pa.kernel, pa.stride, pa.padding, pa.dilation, true),
                      ref_max_pool(to_ref(x), pa).first, {0, 0}));
    EXPECT_TRUE(close(avg_pool2d(x, pa.kernel, pa.stride, pa.padding, true, false),
                      ref_avg_pool(to_ref(x), pa), default_tolerance(dt)));
  }
}

// Gradients that arrive as stride-0 views (the backward of sum) are read through their strides.
TEST(NnOps, BroadcastCotangents) {
  const Tensor x = rnd({2, 3, 6, 6}, kFloat64, 1), w = rnd({4, 3, 3, 3}, kFloat64, 2);
  const Tensor b = rnd({4}, kFloat64, 3);
  auto grads = [&](bool broadcast) {
    std::vector<Tensor> in{x.detach().requires_grad_(), w.detach().requires_grad_(),
                           b.detach().requires_grad_()};
    Tensor y = conv2d(in[0], in[1], in[2], {2}, {1});
    y = conv_transpose2d(y, in[1].mT(), {}, {2}, {1}, {1});  // a non-contiguous weight
    y = avg_pool2d(max_pool2d(y, {2}), {2}, {1}, {1}, false, false);
    const Tensor one = ones({1, 1, 1, 1}, kFloat64);
    const Tensor ct = broadcast ? one.expand(y.shape()) : one.expand(y.shape()).contiguous();
    return autograd::grad({y}, in, {ct});
  };
  const std::vector<Tensor> strided = grads(true), dense = grads(false);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_TRUE(close(strided[i], to_ref(dense[i]), {1e-12, 1e-12})) << "input " << i;
}

TEST(NnOps, MessagesNameOpAndShapes) {
  auto message = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message([] {
              conv2d(zeros({1, 3, 5, 5}), zeros({4, 2, 3, 3}));
            }),
            "[conv2d] weight (4, 2, 3, 3) with groups=1 expects 2 input channels, input "
            "(1, 3, 5, 5) has 3");
  EXPECT_EQ(message([] {
              conv2d(zeros({1, 1, 4, 4}), zeros({1, 1, 7, 3}), {}, {1}, {1});
            }),
            "[conv2d] kernel (7, 3) (dilation (1, 1)) is larger than the input (1, 1, 4, 4) "
            "padded by (1, 1)");
  EXPECT_EQ(message([] {
              max_pool2d(zeros({1, 1, 6, 6}), {2}, {1}, {2});
            }),
            "[max_pool2d] padding (2, 2) must be at most half of the kernel (2, 2) (dilation "
            "(1, 1))");
}

}  // namespace tessera::test
