// Layers against float64 references written with plain loops, gradients against central
// differences, default initialization, input checks and printouts.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "test_nn_util.h"

namespace tessera {
namespace {
namespace F = nn::functional;
using nn_test::expect_close;
using nn_test::expect_error;
using nn_test::gradcheck;
using nn_test::vals;
using Vec = std::vector<double>;
using A3 = std::array<int64_t, 3>;

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat64, &g);
}

// ---- Linear, Bilinear -------------------------------------------------------------------------

TEST(NNLayers, LinearMatchesLoops) {
  manual_seed(0);
  auto lin = std::make_shared<nn::Linear>(4, 3);
  lin->to(kFloat64);
  Tensor x = rnd({2, 5, 4}, 1);
  const Vec xv = vals(x), w = vals(lin->weight), b = vals(lin->bias);
  Vec ref;
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t o = 0; o < 3; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < 4; ++i) s += xv[r * 4 + i] * w[o * 4 + i];
      ref.push_back(s);
    }
  Tensor y = (*lin)(x);
  EXPECT_EQ(y.shape(), (Shape{2, 5, 3}));
  expect_close(y, ref, 1e-12);
  gradcheck([](const std::vector<Tensor>& a) { return F::linear(a[0], a[1], a[2]); },
            {rnd({3, 4}, 2), rnd({2, 4}, 3), rnd({2}, 4)});
  auto nobias = std::make_shared<nn::Linear>(4, 3, false);
  EXPECT_FALSE(nobias->bias.defined());
  EXPECT_EQ(nobias->parameters().size(), 1u);
  EXPECT_EQ(nobias->str(), "Linear(in_features=4, out_features=3, bias=false)");
}

TEST(NNLayers, LinearRejectsWrongShape) {
  nn::Linear lin(4, 2);
  expect_error<ShapeError>(
      [&] {
        lin(zeros({3, 5}));
      },
      {"[Linear] expected input with last dim 4, got (3, 5)"});
}

TEST(NNLayers, LinearDefaultInitIsPyTorchs) {
  manual_seed(7);
  nn::Linear a(100, 50);
  manual_seed(7);
  nn::Linear b(100, 50);
  expect_close(a.weight, b.weight, 0);  // seeded by the global generator
  // kaiming_uniform_(a = sqrt 5) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)): std = bound / sqrt 3.
  const double bound = 0.1;
  const Vec w = vals(a.weight), bias = vals(a.bias);
  double sq = 0;
  for (double v : w) {
    EXPECT_LE(std::abs(v), bound);
    sq += v * v;
  }
  EXPECT_NEAR(std::sqrt(sq / static_cast<double>(w.size())), bound / std::sqrt(3.0), 0.002);
  for (double v : bias) EXPECT_LE(std::abs(v), bound);
  EXPECT_GT(*std::max_element(w.begin(), w.end()), 0.099);
}

TEST(NNLayers, BilinearMatchesLoops) {
  manual_seed(1);
  auto bl = std::make_shared<nn::Bilinear>(3, 2, 4);
  bl->to(kFloat64);
  Tensor x1 = rnd({5, 3}, 1), x2 = rnd({5, 2}, 2);
  const Vec a = vals(x1), c = vals(x2), w = vals(bl->weight), b = vals(bl->bias);
  Vec ref;
  for (int n = 0; n < 5; ++n)
    for (int k = 0; k < 4; ++k) {
      double s = b[k];
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 2; ++j) s += a[n * 3 + i] * w[(k * 3 + i) * 2 + j] * c[n * 2 + j];
      ref.push_back(s);
    }
  expect_close((*bl)(x1, x2), ref, 1e-12);
  for (double v : vals(bl->weight)) EXPECT_LE(std::abs(v), 1 / std::sqrt(3.0));
  gradcheck([](const std::vector<Tensor>& t) { return F::bilinear(t[0], t[1], t[2], t[3]); },
            {rnd({2, 3}, 3), rnd({2, 2}, 4), rnd({4, 3, 2}, 5), rnd({4}, 6)});
  expect_error<ShapeError>(
      [&] {
        (*bl)(zeros({5, 3}), zeros({5, 3}));
      },
      {"[Bilinear]", "input2", "last dim 2"});
}

// ---- convolution ------------------------------------------------------------------------------

// A tensor shape (N, C, *spatial) right-aligned into 3 spatial dims.
A3 spatial3(const Shape& s) {
  A3 r{1, 1, 1};
  const size_t nsp = s.size() - 2;
  for (size_t i = 0; i < nsp; ++i) r[3 - nsp + i] = s[2 + i];
  return r;
}
A3 param3(const std::vector<int64_t>& v, size_t nsp, int64_t fill) {
  A3 r{fill, fill, fill};
  for (size_t i = 0; i < nsp; ++i) r[3 - nsp + i] = v.size() == 1 ? v[0] : v[i];
  return r;
}

struct ConvRef {
  std::vector<int64_t> stride{1}, pad_lo{0}, pad_hi{0}, dilation{1};
  int64_t groups = 1;
};

// Direct convolution: y[n, o, p] = b[o] + sum_{c in group, k} x[n, c, p*s - lo + k*d] w[o, c, k].
Tensor conv_reference(const Tensor& x, const Tensor& w, const Tensor& b, const ConvRef& a) {
  const size_t nsp = static_cast<size_t>(x.dim()) - 2;
  const A3 in = spatial3(x.shape()), k = spatial3(w.shape());
  const A3 s = param3(a.stride, nsp, 1), lo = param3(a.pad_lo, nsp, 0),
           hi = param3(a.pad_hi, nsp, 0), d = param3(a.dilation, nsp, 1);
  const int64_t N = x.size(0), C = x.size(1), O = w.size(0), cg = C / a.groups, og = O / a.groups;
  A3 out;
  for (int i = 0; i < 3; ++i) out[i] = (in[i] + lo[i] + hi[i] - d[i] * (k[i] - 1) - 1) / s[i] + 1;
  const Vec xv = vals(x), wv = vals(w), bv = b.defined() ? vals(b) : Vec(O, 0.0);
  Vec y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o)
      for (int64_t p0 = 0; p0 < out[0]; ++p0)
        for (int64_t p1 = 0; p1 < out[1]; ++p1)
          for (int64_t p2 = 0; p2 < out[2]; ++p2) {
            double acc = bv[o];
            for (int64_t cl = 0; cl < cg; ++cl) {
              const int64_t c = (o / og) * cg + cl;
              for (int64_t k0 = 0; k0 < k[0]; ++k0)
                for (int64_t k1 = 0; k1 < k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                    const int64_t i0 = p0 * s[0] - lo[0] + k0 * d[0],
                                  i1 = p1 * s[1] - lo[1] + k1 * d[1],
                                  i2 = p2 * s[2] - lo[2] + k2 * d[2];
                    if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2])
                      continue;
                    acc += xv[(((n * C + c) * in[0] + i0) * in[1] + i1) * in[2] + i2] *
                           wv[(((o * cg + cl) * k[0] + k0) * k[1] + k1) * k[2] + k2];
                  }
            }
            y.push_back(acc);
          }
  Shape shape{N, O};
  for (size_t i = 0; i < nsp; ++i) shape.push_back(out[3 - nsp + i]);
  return tensor(y, shape);
}

TEST(NNLayers, Conv2dMatchesLoops) {
  manual_seed(2);
  auto conv = std::make_shared<nn::Conv2d>(
      4, 6, std::vector<int64_t>{3, 2},
      nn::ConvOptions{.stride = {2, 1}, .padding = {1, 0}, .dilation = {1, 2}, .groups = 2});
  conv->to(kFloat64);
  EXPECT_EQ(conv->weight.shape(), (Shape{6, 2, 3, 2}));
  Tensor x = rnd({2, 4, 7, 6}, 3);
  expect_close(
      (*conv)(x),
      conv_reference(
          x, conv->weight, conv->bias,
          {.stride = {2, 1}, .pad_lo = {1, 0}, .pad_hi = {1, 0}, .dilation = {1, 2}, .groups = 2}),
      1e-12);
  EXPECT_EQ(conv->str(),
            "Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), "
            "groups=2)");
  // Unbatched input (C, H, W) works like a batch of one.
  expect_close((*conv)(x[0]), (*conv)(x.narrow(0, 0, 1))[0], 1e-12);
  expect_error<ShapeError>(
      [&] {
        (*conv)(zeros({2, 3, 7, 6}, kFloat64));
      },
      {"[Conv2d]", "expected input (N, 4, H, W)", "got (2, 3, 7, 6)"});
}

TEST(NNLayers, Conv1dAnd3dMatchLoops) {
  manual_seed(3);
  auto c1 = std::make_shared<nn::Conv1d>(3, 2, 3, nn::ConvOptions{.stride = 2, .padding = 2});
  c1->to(kFloat64);
  Tensor x1 = rnd({2, 3, 9}, 4);
  expect_close(
      (*c1)(x1),
      conv_reference(x1, c1->weight, c1->bias, {.stride = {2}, .pad_lo = {2}, .pad_hi = {2}}),
      1e-12);
  auto c3 = std::make_shared<nn::Conv3d>(2, 2, std::vector<int64_t>{2, 1, 2},
                                         nn::ConvOptions{.padding = 1, .bias = false});
  c3->to(kFloat64);
  EXPECT_FALSE(c3->bias.defined());
  Tensor x3 = rnd({1, 2, 3, 2, 3}, 5);
  expect_close((*c3)(x3), conv_reference(x3, c3->weight, {}, {.pad_lo = {1}, .pad_hi = {1}}),
               1e-12);
  EXPECT_EQ(c3->str(),
            "Conv3d(2, 2, kernel_size=(2, 1, 2), stride=(1, 1, 1), padding=(1, 1, 1), "
            "bias=false)");
}

TEST(NNLayers, ConvSameAndValidPadding) {
  manual_seed(4);
  Tensor x = rnd({1, 2, 6, 5}, 6);
  // Kernel 4 with dilation 1: total padding 3 is odd, the extra goes right/bottom (PyTorch).
  auto same = std::make_shared<nn::Conv2d>(2, 3, std::vector<int64_t>{4, 3},
                                           nn::ConvOptions{.padding = "same"});
  same->to(kFloat64);
  Tensor y = (*same)(x);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 6, 5}));
  expect_close(y, conv_reference(x, same->weight, same->bias, {.pad_lo = {1, 1}, .pad_hi = {2, 1}}),
               1e-12);
  // With dilation 2 and kernel 3 the total (4) is even: symmetric.
  Tensor w = rnd({3, 2, 3, 3}, 7);
  expect_close(F::conv2d(x, w, {}, 1, "same", 2),
               conv_reference(x, w, {}, {.pad_lo = {2}, .pad_hi = {2}, .dilation = {2}}), 1e-12);
  expect_close(F::conv2d(x, w, {}, 1, "valid"), conv_reference(x, w, {}, {}), 1e-12);
  expect_error<ValueError>(
      [] { nn::Conv2d(2, 2, 3, nn::ConvOptions{.stride = 2, .padding = "same"}); },
      {"[Conv2d]", "stride 1"});
  expect_error<ValueError>([&] { F::conv2d(x, w, {}, 2, "same"); }, {"[conv2d]", "stride 1"});
  expect_error<ValueError>([] { nn::Conv2d(3, 4, 3, nn::ConvOptions{.groups = 2}); },
                           {"[Conv2d]", "in_channels 3", "groups 2"});
}

TEST(NNLayers, ConvPaddingModes) {
  manual_seed(5);
  auto conv = std::make_shared<nn::Conv1d>(
      1, 1, 3, nn::ConvOptions{.padding = 1, .bias = false, .padding_mode = "replicate"});
  conv->to(kFloat64);
  Tensor x = tensor(Vec{1, 2, 3, 4}, Shape{1, 1, 4});
  const Vec w = vals(conv->weight);
  const Vec xp = {1, 1, 2, 3, 4, 4};  // replicate-padded
  Vec ref;
  for (int i = 0; i < 4; ++i) ref.push_back(w[0] * xp[i] + w[1] * xp[i + 1] + w[2] * xp[i + 2]);
  expect_close((*conv)(x), ref, 1e-12);
  EXPECT_NE(conv->str().find("padding_mode=replicate"), std::string::npos);
}

TEST(NNLayers, ConvGradients) {
  gradcheck([](const std::vector<Tensor>& a) { return F::conv2d(a[0], a[1], a[2], 2, 1, 1, 2); },
            {rnd({1, 4, 5, 4}, 8), rnd({2, 2, 3, 2}, 9), rnd({2}, 10)});
  gradcheck([](const std::vector<Tensor>& a) { return F::conv1d(a[0], a[1], {}, 1, "same"); },
            {rnd({2, 2, 5}, 11), rnd({3, 2, 4}, 12)});
  gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::conv3d(a[0], a[1], a[2], 1, {1, 0, 1});
      },
      {rnd({1, 2, 3, 2, 3}, 13), rnd({2, 2, 2, 2, 1}, 14), rnd({2}, 15)});
}

TEST(NNLayers, ConvTranspose2dMatchesScatterLoops) {
  manual_seed(6);
  auto ct = std::make_shared<nn::ConvTranspose2d>(
      4, 2, std::vector<int64_t>{3, 2},
      nn::ConvTransposeOptions{.stride = 2, .padding = {1, 0}, .output_padding = 1, .groups = 2});
  ct->to(kFloat64);
  EXPECT_EQ(ct->weight.shape(), (Shape{4, 1, 3, 2}));
  Tensor x = rnd({2, 4, 3, 3}, 13);
  const int64_t H = (3 - 1) * 2 - 2 + 3 + 1, W = (3 - 1) * 2 - 0 + 2 + 1;  // 6, 7
  const Vec xv = vals(x), wv = vals(ct->weight), bv = vals(ct->bias);
  Vec y(static_cast<size_t>(2 * 2 * H * W));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t o = 0; o < 2; ++o)
      for (int64_t i = 0; i < H * W; ++i) y[(n * 2 + o) * H * W + i] = bv[o];
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 4; ++c) {
      const int64_t o = c / 2;  // group of c (2 inputs and 1 output per group)
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j)
          for (int64_t ki = 0; ki < 3; ++ki)
            for (int64_t kj = 0; kj < 2; ++kj) {
              const int64_t oi = i * 2 - 1 + ki, oj = j * 2 - 0 + kj;
              if (oi < 0 || oi >= H || oj < 0 || oj >= W) continue;
              y[((n * 2 + o) * H + oi) * W + oj] +=
                  xv[((n * 4 + c) * 3 + i) * 3 + j] * wv[(c * 3 + ki) * 2 + kj];
            }
    }
  Tensor out = (*ct)(x);
  EXPECT_EQ(out.shape(), (Shape{2, 2, H, W}));
  expect_close(out, y, 1e-12);
  gradcheck(
      [](const std::vector<Tensor>& a) { return F::conv_transpose2d(a[0], a[1], a[2], 2, 1); },
      {rnd({1, 2, 2, 3}, 14), rnd({2, 3, 3, 2}, 15), rnd({3}, 16)});
}

// ---- pooling ----------------------------------------------------------------------------------

// 2-d pooling over each plane of x (N, C, H, W): PyTorch's window rules.
Tensor pool2d_reference(const Tensor& x, A3 k, A3 s, A3 p, bool is_max, bool ceil_mode,
                        bool count_include_pad) {
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  auto out_size = [&](int64_t in, int i) {
    const int64_t num = in + 2 * p[i] - k[i];
    int64_t o = (ceil_mode ? (num + s[i] - 1) / s[i] : num / s[i]) + 1;
    if (ceil_mode && (o - 1) * s[i] >= in + p[i]) --o;
    return o;
  };
  const int64_t OH = out_size(H, 0), OW = out_size(W, 1);
  const Vec xv = vals(x);
  Vec y;
  for (int64_t pl = 0; pl < N * C; ++pl)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        int64_t h0 = oh * s[0] - p[0], w0 = ow * s[1] - p[1];
        int64_t h1 = std::min(h0 + k[0], H + p[0]), w1 = std::min(w0 + k[1], W + p[1]);
        const int64_t padded_count = (h1 - h0) * (w1 - w0);
        h0 = std::max<int64_t>(h0, 0), w0 = std::max<int64_t>(w0, 0);
        h1 = std::min(h1, H), w1 = std::min(w1, W);
        double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0;
        for (int64_t i = h0; i < h1; ++i)
          for (int64_t j = w0; j < w1; ++j) {
            const double v = xv[(pl * H + i) * W + j];
            acc = is_max ? std::max(acc, v) : acc + v;
          }
        if (!is_max)
          acc /= static_cast<double>(count_include_pad ? padded_count : (h1 - h0) * (w1 - w0));
        y.push_back(acc);
      }
  return tensor(y, Shape{N, C, OH, OW});
}

TEST(NNLayers, PoolingMatchesLoops) {
  Tensor x = rnd({2, 3, 7, 6}, 17);
  nn::MaxPool2d mp(3, {.stride = 2, .padding = 1});
  expect_close(mp(x), pool2d_reference(x, {3, 3}, {2, 2}, {1, 1}, true, false, true), 0);
  nn::MaxPool2d mp_ceil(std::vector<int64_t>{2, 3}, {.ceil_mode = true});
  expect_close(mp_ceil(x), pool2d_reference(x, {2, 3}, {2, 3}, {0, 0}, true, true, true), 0);
  nn::AvgPool2d ap(3, {.stride = 2, .padding = 1});
  expect_close(ap(x), pool2d_reference(x, {3, 3}, {2, 2}, {1, 1}, false, false, true), 1e-12,
               "avg_pool2d");
  nn::AvgPool2d ap_ex(3, {.stride = 2, .padding = 1, .count_include_pad = false});
  expect_close(ap_ex(x), pool2d_reference(x, {3, 3}, {2, 2}, {1, 1}, false, false, false), 1e-12,
               "avg_pool2d without padding in the count");
  // 1-d pooling is 2-d pooling of a height-1 image.
  Tensor x1 = rnd({2, 3, 9}, 18);
  nn::MaxPool1d mp1(3, {.stride = 2});
  expect_close(
      mp1(x1),
      pool2d_reference(x1.unsqueeze(2), {1, 3}, {1, 2}, {0, 0}, true, false, true).squeeze(2), 0);
  nn::AvgPool1d ap1(2);
  expect_close(
      ap1(x1),
      pool2d_reference(x1.unsqueeze(2), {1, 2}, {1, 2}, {0, 0}, false, false, true).squeeze(2),
      1e-12, "avg_pool1d");
  EXPECT_EQ(mp.str(), "MaxPool2d(kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=false)");
  expect_error<ShapeError>([&] { mp(zeros({7, 6})); }, {"[MaxPool2d]", "3-d or 4-d", "(7, 6)"});
}

TEST(NNLayers, AdaptiveAvgPoolMatchesLoops) {
  Tensor x = rnd({1, 2, 7, 5}, 19);
  nn::AdaptiveAvgPool2d pool(std::vector<int64_t>{3, 2});
  const Vec xv = vals(x);
  Vec ref;
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t h0 = i * 7 / 3, h1 = ((i + 1) * 7 + 2) / 3;
        const int64_t w0 = j * 5 / 2, w1 = ((j + 1) * 5 + 1) / 2;
        double s = 0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) s += xv[(c * 7 + h) * 5 + w];
        ref.push_back(s / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
  expect_close(pool(x), ref, 1e-12);
  gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::adaptive_avg_pool2d(a[0], {2, 3});
      },
      {rnd({1, 1, 5, 4}, 20)});
  gradcheck([](const std::vector<Tensor>& a) { return F::max_pool2d(a[0], 2, 1); },
            {rnd({1, 2, 3, 4}, 21)});
  gradcheck([](const std::vector<Tensor>& a) { return F::avg_pool1d(a[0], 3, 2, 1); },
            {rnd({1, 2, 7}, 22)});
}

// ---- normalization ----------------------------------------------------------------------------

// Per-channel (mean, biased var) of x (N, C, *).
std::pair<Vec, Vec> channel_stats(const Tensor& x) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const Vec v = vals(x);
  Vec mean(C, 0), var(C, 0);
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) mean[c] += v[(n * C + c) * S + s];
    mean[c] /= static_cast<double>(N * S);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t s = 0; s < S; ++s) var[c] += std::pow(v[(n * C + c) * S + s] - mean[c], 2);
    var[c] /= static_cast<double>(N * S);
  }
  return {mean, var};
}

Vec normalize_channels(const Tensor& x, const Vec& mean, const Vec& var, const Vec& w, const Vec& b,
                       double eps) {
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const Vec v = vals(x);
  Vec y;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s)
        y.push_back((v[(n * C + c) * S + s] - mean[c]) / std::sqrt(var[c] + eps) * w[c] + b[c]);
  return y;
}

TEST(NNLayers, BatchNormTrainAndEval) {
  auto bn = std::make_shared<nn::BatchNorm2d>(3, nn::BatchNormOptions{.momentum = 0.2});
  bn->to(kFloat64);
  {
    autograd::NoGradGuard ng;
    bn->weight.copy_(tensor(Vec{1.5, -0.5, 2.0}));
    bn->bias.copy_(tensor(Vec{0.1, 0.2, -0.3}));
  }
  const Vec w = {1.5, -0.5, 2.0}, b = {0.1, 0.2, -0.3};
  Tensor x = rnd({4, 3, 2, 3}, 23) * 2.0 + 1.0;
  auto [mean, var] = channel_stats(x);
  expect_close((*bn)(x), normalize_channels(x, mean, var, w, b, 1e-5), 1e-10);
  // Running stats: r = 0.8 r + 0.2 batch, with the unbiased variance (n = 4 * 6 = 24).
  Vec rm, rv;
  for (int c = 0; c < 3; ++c) {
    rm.push_back(0.2 * mean[c]);
    rv.push_back(0.8 + 0.2 * var[c] * 24.0 / 23.0);
  }
  expect_close(bn->running_mean, rm, 1e-12);
  expect_close(bn->running_var, rv, 1e-12);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 1);
  // Eval uses the running statistics and leaves them alone.
  bn->eval();
  const Vec rm_before = vals(bn->running_mean);
  Tensor x2 = rnd({2, 3, 2, 2}, 24);
  expect_close((*bn)(x2), normalize_channels(x2, rm, rv, w, b, 1e-5), 1e-10);
  expect_close(bn->running_mean, rm_before, 0);
  EXPECT_EQ(bn->num_batches_tracked.item<int64_t>(), 1);
  EXPECT_EQ(bn->str(),
            "BatchNorm2d(3, eps=1e-05, momentum=0.2, affine=true, track_running_stats=true)");
  expect_error<ShapeError>(
      [&] {
        (*bn)(zeros({2, 3, 4}, kFloat64));
      },
      {"[BatchNorm2d]", "4-d input with 3 channels", "(2, 3, 4)"});
}

TEST(NNLayers, BatchNormCumulativeAverageAndNoTracking) {
  auto bn = std::make_shared<nn::BatchNorm1d>(2, nn::BatchNormOptions{.momentum = std::nullopt});
  bn->to(kFloat64);
  Tensor a = rnd({5, 2}, 25), b = rnd({5, 2}, 26);
  (*bn)(a);
  (*bn)(b);
  // momentum None: the running mean is the plain average of the batch means.
  auto [ma, va] = channel_stats(a);
  auto [mb, vb] = channel_stats(b);
  expect_close(bn->running_mean, Vec{(ma[0] + mb[0]) / 2, (ma[1] + mb[1]) / 2}, 1e-12);
  // Without running stats, eval still normalizes with the batch's statistics.
  auto plain = std::make_shared<nn::BatchNorm1d>(
      2, nn::BatchNormOptions{.affine = false, .track_running_stats = false});
  plain->to(kFloat64).eval();
  EXPECT_TRUE(plain->buffers().empty());
  EXPECT_TRUE(plain->parameters().empty());
  Tensor x = rnd({4, 2, 3}, 27);
  auto [m, v] = channel_stats(x);
  expect_close((*plain)(x), normalize_channels(x, m, v, {1, 1}, {0, 0}, 1e-5), 1e-10);
  expect_error<ValueError>(
      [&] {
        bn->train();
        (*bn)(zeros({1, 2}, kFloat64));
      },
      {"[batch_norm]", "more than 1 value per channel"});
}

TEST(NNLayers, BatchNormGradients) {
  gradcheck(
      [](const std::vector<Tensor>& a) {
        return F::batch_norm(a[0], {}, {}, a[1], a[2], /*training=*/true);
      },
      {rnd({3, 2, 2}, 28), rnd({2}, 29), rnd({2}, 30)});
}

TEST(NNLayers, LayerGroupRmsNormMatchLoops) {
  Tensor x = rnd({2, 4, 3}, 31);
  const Vec xv = vals(x);
  // LayerNorm over the last two dims (4, 3): one group of 12 per batch element.
  auto ln = std::make_shared<nn::LayerNorm>(std::vector<int64_t>{4, 3});
  ln->to(kFloat64);
  {
    autograd::NoGradGuard ng;
    ln->weight.copy_(rnd({4, 3}, 32));
    ln->bias.copy_(rnd({4, 3}, 33));
  }
  const Vec lw = vals(ln->weight), lb = vals(ln->bias);
  Vec ref;
  for (int n = 0; n < 2; ++n) {
    double m = 0, v = 0;
    for (int i = 0; i < 12; ++i) m += xv[n * 12 + i] / 12;
    for (int i = 0; i < 12; ++i) v += std::pow(xv[n * 12 + i] - m, 2) / 12;
    for (int i = 0; i < 12; ++i)
      ref.push_back((xv[n * 12 + i] - m) / std::sqrt(v + 1e-5) * lw[i] + lb[i]);
  }
  expect_close((*ln)(x), ref, 1e-10);
  EXPECT_EQ(ln->str(), "LayerNorm((4, 3), eps=1e-05, elementwise_affine=true)");
  expect_error<ShapeError>(
      [&] {
        (*ln)(zeros({2, 3, 4}, kFloat64));
      },
      {"[LayerNorm]", "trailing dims (4, 3)", "(2, 3, 4)"});

  // GroupNorm: 4 channels in 2 groups of (2 channels x 3).
  auto gn = std::make_shared<nn::GroupNorm>(2, 4, nn::GroupNormOptions{.eps = 1e-3});
  gn->to(kFloat64);
  ref.clear();
  for (int n = 0; n < 2; ++n)
    for (int g = 0; g < 2; ++g) {
      const int off = n * 12 + g * 6;
      double m = 0, v = 0;
      for (int i = 0; i < 6; ++i) m += xv[off + i] / 6;
      for (int i = 0; i < 6; ++i) v += std::pow(xv[off + i] - m, 2) / 6;
      for (int i = 0; i < 6; ++i) ref.push_back((xv[off + i] - m) / std::sqrt(v + 1e-3));
    }
  expect_close((*gn)(x), ref, 1e-10);
  EXPECT_EQ(gn->str(), "GroupNorm(2, 4, eps=0.001, affine=true)");
  expect_error<ValueError>([] { nn::GroupNorm(3, 4); }, {"[GroupNorm]", "divisible"});

  // RMSNorm over the last dim with the float64 epsilon by default.
  auto rms = std::make_shared<nn::RMSNorm>(3);
  rms->to(kFloat64);
  ref.clear();
  for (int r = 0; r < 8; ++r) {
    double ms = 0;
    for (int i = 0; i < 3; ++i) ms += xv[r * 3 + i] * xv[r * 3 + i] / 3;
    for (int i = 0; i < 3; ++i)
      ref.push_back(xv[r * 3 + i] / std::sqrt(ms + std::numeric_limits<double>::epsilon()));
  }
  expect_close((*rms)(x), ref, 1e-12);
  EXPECT_EQ(rms->str(), "RMSNorm((3,), eps=None, elementwise_affine=true)");

  gradcheck([](const std::vector<Tensor>& a) { return F::layer_norm(a[0], {3}, a[1], a[2]); },
            {rnd({2, 3}, 34), rnd({3}, 35), rnd({3}, 36)});
  gradcheck([](const std::vector<Tensor>& a) { return F::group_norm(a[0], 2, a[1], a[2]); },
            {rnd({2, 4, 2}, 37), rnd({4}, 38), rnd({4}, 39)});
  gradcheck([](const std::vector<Tensor>& a) { return F::rms_norm(a[0], {3}, a[1], 1e-6); },
            {rnd({2, 3}, 40), rnd({3}, 41)});
}

// ---- dropout, embedding, shape ----------------------------------------------------------------

TEST(NNLayers, DropoutTrainEval) {
  manual_seed(11);
  auto drop = std::make_shared<nn::Dropout>(0.3);
  Tensor x = ones({20000}, kFloat64);
  Tensor y = (*drop)(x);
  const Vec v = vals(y);
  int64_t zeros_count = 0;
  for (double e : v) {
    if (e == 0)
      ++zeros_count;
    else
      EXPECT_NEAR(e, 1 / 0.7, 1e-12);
  }
  EXPECT_NEAR(static_cast<double>(zeros_count) / 20000.0, 0.3, 0.015);
  manual_seed(11);
  expect_close((*drop)(x), y, 0);  // same seed, same mask
  drop->eval();
  EXPECT_TRUE((*drop)(x).is_same(x));  // identity in eval
  EXPECT_EQ(vals(F::dropout(x, 1.0, true)), Vec(20000, 0.0));
  // The gradient flows through the kept elements only, scaled the same way.
  drop->train();
  Tensor xr = ones({100}, kFloat64).requires_grad_();
  Tensor out = (*drop)(xr);
  out.sum().backward();
  expect_close(xr.grad(), vals(out), 0);
  expect_error<ValueError>([] { nn::Dropout(1.5); }, {"[Dropout]", "1.5"});
}

TEST(NNLayers, EmbeddingLooksUpRowsAndSkipsPaddingGrad) {
  manual_seed(12);
  auto emb = std::make_shared<nn::Embedding>(5, 3, nn::EmbeddingOptions{.padding_idx = -1});
  EXPECT_EQ(emb->padding_idx, 4);
  EXPECT_EQ(vals(emb->weight[4]), Vec(3, 0.0));  // the padding row starts at zero
  Tensor idx = tensor(std::vector<int64_t>{1, 4, 1, 0, 4, 2}, Shape{2, 3});
  Tensor y = (*emb)(idx);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 3}));
  const Vec w = vals(emb->weight), yv = vals(y);
  const std::vector<int64_t> iv = {1, 4, 1, 0, 4, 2};
  for (size_t i = 0; i < iv.size(); ++i)
    for (size_t d = 0; d < 3; ++d) EXPECT_EQ(yv[i * 3 + d], w[iv[i] * 3 + d]);
  (y * 2.0).sum().backward();
  // Row 1 is used twice, rows 0 and 2 once, row 3 never; the padding row gets nothing.
  const Vec counts = {1, 2, 1, 0, 0};
  Vec ref;
  for (double c : counts)
    for (int d = 0; d < 3; ++d) ref.push_back(2 * c);
  expect_close(emb->weight.grad(), ref, 0);
  EXPECT_EQ(emb->str(), "Embedding(5, 3, padding_idx=4)");
  expect_error<IndexError>(
      [&] {
        (*emb)(tensor(std::vector<int64_t>{0, 5}));
      },
      {"[embedding]", "index 5", "5 embeddings"});
  expect_error<DTypeError>([&] { (*emb)(zeros({2})); }, {"[embedding]", "integers"});
  // Default init is N(0, 1).
  nn::Embedding big(200, 50);
  const Vec bw = vals(big.weight);
  double m = 0, sq = 0;
  for (double e : bw) m += e / static_cast<double>(bw.size());
  for (double e : bw) sq += (e - m) * (e - m) / static_cast<double>(bw.size());
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(std::sqrt(sq), 1.0, 0.02);
}

TEST(NNLayers, FlattenAndIdentity) {
  Tensor x = rnd({2, 3, 4}, 42);
  nn::Flatten flat;
  EXPECT_EQ(flat(x).shape(), (Shape{2, 12}));
  EXPECT_EQ(nn::Flatten(0, 1)(x).shape(), (Shape{6, 4}));
  EXPECT_EQ(flat.str(), "Flatten(start_dim=1, end_dim=-1)");
  nn::Identity id;
  EXPECT_TRUE(id(x).is_same(x));
}

// ---- activations ------------------------------------------------------------------------------

TEST(NNLayers, ActivationsMatchFormulas) {
  Tensor x = tensor(Vec{-3.0, -1.0, -0.25, 0.5, 2.0, 30.0});
  x = x.to(kFloat64);
  const Vec xv = vals(x);
  auto check = [&](nn::Module& m, const std::function<double(double)>& f, double tol) {
    Vec ref;
    for (double v : xv) ref.push_back(f(v));
    expect_close(m(x), ref, tol, m.type_name());
    gradcheck([&](const std::vector<Tensor>& a) { return m(a[0]); }, {x}, 1e-6);
  };
  auto softplus = [](double v) { return v > 20 ? v : std::log1p(std::exp(v)); };
  nn::ReLU relu;
  check(
      relu, [](double v) { return std::max(v, 0.0); }, 0);
  nn::LeakyReLU leaky(0.2);
  check(
      leaky, [](double v) { return v > 0 ? v : 0.2 * v; }, 1e-15);
  nn::ELU elu(1.5);
  check(
      elu, [](double v) { return v > 0 ? v : 1.5 * std::expm1(v); }, 1e-14);
  nn::GELU gelu;
  check(
      gelu, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }, 1e-14);
  nn::GELU gelu_tanh("tanh");
  check(
      gelu_tanh,
      [](double v) {
        return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
      },
      1e-14);
  nn::SiLU silu;
  check(
      silu, [](double v) { return v / (1 + std::exp(-v)); }, 1e-14);
  nn::Mish mish;
  check(
      mish, [&](double v) { return v * std::tanh(softplus(v)); }, 1e-14);
  nn::Tanh tanh_m;
  check(
      tanh_m, [](double v) { return std::tanh(v); }, 1e-15);
  nn::Sigmoid sig;
  check(
      sig, [](double v) { return 1 / (1 + std::exp(-v)); }, 1e-15);
  EXPECT_EQ(leaky.str(), "LeakyReLU(negative_slope=0.2)");
  EXPECT_EQ(gelu_tanh.str(), "GELU(approximate='tanh')");
  // ELU's gradient stays finite for large inputs.
  Tensor big = full({1}, 1000.0, kFloat64).requires_grad_();
  F::elu(big).sum().backward();
  EXPECT_EQ(big.grad().item<double>(), 1.0);
}

TEST(NNLayers, SoftmaxModules) {
  Tensor x = rnd({2, 3}, 43);
  const Vec v = vals(x);
  nn::Softmax sm(1);
  nn::LogSoftmax lsm(0);
  Vec ref_sm, ref_lsm(6);
  for (int r = 0; r < 2; ++r) {
    double z = 0;
    for (int c = 0; c < 3; ++c) z += std::exp(v[r * 3 + c]);
    for (int c = 0; c < 3; ++c) ref_sm.push_back(std::exp(v[r * 3 + c]) / z);
  }
  for (int c = 0; c < 3; ++c) {
    const double z = std::log(std::exp(v[c]) + std::exp(v[3 + c]));
    ref_lsm[c] = v[c] - z;
    ref_lsm[3 + c] = v[3 + c] - z;
  }
  expect_close(sm(x), ref_sm, 1e-14);
  expect_close(lsm(x), ref_lsm, 1e-14);
  EXPECT_EQ(sm.str(), "Softmax(dim=1)");
}

}  // namespace
}  // namespace tessera
