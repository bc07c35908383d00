// Convolution and pooling beyond the op table: max-pool indices and NaN, adaptive pooling,
// double backward and Hessians, vmap over per-example weights, half precision, messages.
#include "nn_ops_reference.h"

namespace tessera::test {
using namespace nnref;  // NOLINT(google-build-using-namespace)
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

// MaxPool2d(2) on float32 runs a SIMD kernel (rows of windows in 16, 8 or 4 lanes, the last
// vector overlapping, fewer than 4 windows one at a time): every row width up to past two full
// vectors, an odd leftover column and row, a padded row stride, ties, NaN and -inf, against a
// loop over each window.
TEST(NnOps, MaxPool2x2MatchesWindowLoop) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t ow = 1; ow <= 35; ++ow)
    for (int64_t extra : {0, 1}) {
      const int64_t h = 6 + extra, w = 2 * ow + extra, pitch = w + 3, planes = 2;
      std::vector<double> data(static_cast<size_t>(planes * h * pitch));
      for (size_t i = 0; i < data.size(); ++i)  // small integers, so windows tie often
        data[i] = i % 13 == 5 ? nan : i % 17 == 3 ? -inf : static_cast<double>(i * 7919 % 7) - 3;
      const Tensor wide = tensor(data, Shape{1, planes, h, pitch}).to(kFloat32);
      const Tensor x = wide.narrow(3, 0, w);  // rows `pitch` apart
      auto [v, idx] = max_pool_with_indices(x, {2, 2});
      const std::vector<float> got = v.to_vector<float>();
      const std::vector<int64_t> at = idx.to_vector<int64_t>();
      const int64_t oh = h / 2;
      ASSERT_EQ(got.size(), static_cast<size_t>(planes * oh * ow));
      for (int64_t p = 0; p < planes; ++p)
        for (int64_t y = 0; y < oh; ++y)
          for (int64_t j = 0; j < ow; ++j) {
            double best = -inf;
            int64_t best_at = 2 * y * w + 2 * j;
            for (int64_t a = 0; a < 2; ++a)
              for (int64_t b = 0; b < 2; ++b) {
                const int64_t r = 2 * y + a, c = 2 * j + b;
                const double e = data[static_cast<size_t>((p * h + r) * pitch + c)];
                if (e > best || std::isnan(e)) best = e, best_at = r * w + c;
              }
            const size_t q = static_cast<size_t>((p * oh + y) * ow + j);
            SCOPED_TRACE(
                fmt::format("ow {} extra {} plane {} window ({}, {})", ow, extra, p, y, j));
            if (std::isnan(best))
              EXPECT_TRUE(std::isnan(got[q]));
            else
              EXPECT_EQ(got[q], static_cast<float>(best));
            EXPECT_EQ(at[q], best_at);
          }
    }
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
