// ReLU's gradient: the fused relu_backward primitive (its table entry is in
// test_elementwise.cpp) at special values and broadcast, relu's vjp going through it, second
// derivatives through its own rules, and a network's gradients against hand-written
// backpropagation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "op_table.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::test {
namespace {

// relu_backward(grad, y) has no public op: relu's vjp calls the primitive.
Tensor relu_backward(const Tensor& g, const Tensor& y) {
  static const Primitive& p = prim("relu_backward");
  return dispatch1(p, {g, y});
}

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

// Every float dtype, through the SIMD body and tail (37 elements) and both scalar-broadcast
// modes: the gradient passes exactly where y > 0; y = 0, -0, negative, -inf and NaN give 0
// whatever the gradient (NaN and inf included), as PyTorch's threshold_backward.
TEST(ReluGradient, BackwardSpecialValues) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> y_cycle = {1.5, 0.0, -0.0, -2, nan, inf, -inf, 1e-40, 3};
  const std::vector<double> g_cycle = {-1.25, nan, inf, -inf, 2.5, 0.5, -3, 7, nan, 4, -0.75};
  std::vector<double> ys, gs;
  for (size_t i = 0; i < 37; ++i) {
    ys.push_back(y_cycle[i % y_cycle.size()]);
    gs.push_back(g_cycle[i % g_cycle.size()]);
  }
  auto same = [](double got, double want) {
    return std::isnan(want) ? std::isnan(got) : got == want;
  };
  for (DType dt : kFloatDTypes) {
    const Tensor g = tensor(gs).to(dt), y = tensor(ys).to(dt);
    const Ref rg = to_ref(g), ry = to_ref(y);  // the values as stored in dt
    const std::vector<double> got = to_ref(relu_backward(g, y)).data;
    const std::vector<double> g0 = to_ref(relu_backward(g.select(0, 0), y)).data;  // 0-d grad
    const std::vector<double> y8 = to_ref(relu_backward(g, y.select(0, 8))).data;  // 0-d y = 3
    ASSERT_EQ(got.size(), ys.size());
    for (size_t i = 0; i < ys.size(); ++i) {
      const double want = ry.data[i] > 0 ? rg.data[i] : 0.0;
      EXPECT_TRUE(same(got[i], want))
          << dtype_name(dt) << " g " << rg.data[i] << " y " << ry.data[i] << ": " << got[i];
      EXPECT_FALSE(std::signbit(got[i]) && !(ry.data[i] > 0)) << "masked lanes give +0";
      EXPECT_TRUE(same(g0[i], ry.data[i] > 0 ? rg.data[0] : 0.0)) << dtype_name(dt) << " " << i;
      EXPECT_TRUE(same(y8[i], rg.data[i])) << dtype_name(dt) << " " << i;
    }
  }
}

// relu's gradient goes through relu_backward: one kernel per backward, the old values (the
// gradient where the output is positive; 0 at x = 0 and for NaN x).
TEST(ReluGradient, RuleUsesTheFusedKernel) {
  const Tensor x =
      tensor(std::vector<double>{-2, -0.5, 0, 0.5, 3, std::numeric_limits<double>::quiet_NaN()})
          .requires_grad_();
  const Tensor w = tensor(std::vector<double>{1.5, -2, 4, 0.25, -1, 7});
  const Tensor y = relu(x);
  const Tensor g = autograd::grad({mul(y, w).sum()}, {x})[0];
  EXPECT_EQ(values(g), (std::vector<double>{0, 0, 0, 0.25, -1, 0}));
  // The rule called directly (outside a backward step).
  const Primitive& p = prim("relu");
  const std::vector<Tensor> in{x.detach()}, out{y.detach()}, ct{w};
  std::vector<Tensor> grads = p.vjp(in, out, ct, {});
  ASSERT_EQ(grads.size(), 1u);
  EXPECT_EQ(values(grads[0]), (std::vector<double>{0, 0, 0, 0.25, -1, 0}));
  // Integer relu has no gradient to pass.
  const std::vector<Tensor> xi{tensor(std::vector<int32_t>{-1, 2})}, yi{relu(xi[0])}, none(1);
  EXPECT_FALSE(p.vjp(xi, yi, none, {})[0].defined());
}

// Second derivatives through relu_backward's own rules: f(x) = sum(relu(x)^3) has
// f''(x) = 6 relu(x) on the diagonal (hessian = jacfwd(jacrev(f)): reverse, then forward),
// and the mixed derivative of <w, relu(x)> in (x, w) is the mask itself (double backward).
TEST(ReluGradient, SecondDerivatives) {
  const std::vector<double> xs = {-1.5, -0.25, 0.5, 2, 0.75, -3};
  const Tensor x = tensor(xs);
  const Tensor h = hessian([](const Tensor& t) {
    const Tensor r = relu(t);
    return mul(mul(r, r), r).sum();
  })(x);
  ASSERT_EQ(h.shape(), (Shape{6, 6}));
  const std::vector<double> hv = values(h.contiguous());
  for (size_t i = 0; i < xs.size(); ++i)
    for (size_t j = 0; j < xs.size(); ++j)
      EXPECT_NEAR(hv[i * xs.size() + j], i == j ? 6 * std::max(xs[i], 0.0) : 0.0, 1e-12)
          << i << "," << j;

  const Tensor xr = tensor(xs).requires_grad_();
  const Tensor w = tensor(std::vector<double>{1, 2, 3, 4, 5, 6}).requires_grad_();
  const Tensor gx = autograd::grad({mul(relu(xr), w).sum()}, {xr}, {}, {.create_graph = true})[0];
  const Tensor v = tensor(std::vector<double>{0.5, -1, 2, -3, 0.25, 9});
  const std::vector<Tensor> gg = autograd::grad({mul(gx, v).sum()}, {xr, w});
  EXPECT_EQ(values(gg[1]), (std::vector<double>{0, 0, 2, -3, 0.25, 0}));  // v where x > 0
  EXPECT_EQ(values(gg[0]), (std::vector<double>(6, 0.0)));  // relu is piecewise linear
}

// A small ReLU network's parameter gradients against backpropagation written by hand with the
// old formula (gradient times the 0/1 mask of the output).
TEST(ReluGradient, NetworkGradientUnchanged) {
  Generator gen(11);
  const Tensor x = randn({8, 5}, kFloat64, &gen), t = randn({8, 3}, kFloat64, &gen);
  const Tensor w1 = randn({5, 7}, kFloat64, &gen).requires_grad_();
  const Tensor b1 = randn({7}, kFloat64, &gen).requires_grad_();
  const Tensor w2 = randn({7, 3}, kFloat64, &gen).requires_grad_();
  const Tensor hid = relu(add(matmul(x, w1), b1));
  const Tensor loss = mul(matmul(hid, w2), t).sum();
  const std::vector<Tensor> g = autograd::grad({loss}, {w1, b1, w2});
  autograd::NoGradGuard no_grad;
  const Tensor h = hid.detach();
  const Tensor dpre = mul(matmul(t, w2.detach().transpose(0, 1)), cast(gt(h, Scalar(0)), kFloat64));
  const Tensor want[] = {matmul(x.transpose(0, 1), dpre), dpre.sum({0}),
                         matmul(h.transpose(0, 1), t)};
  for (size_t k = 0; k < 3; ++k) {
    const std::vector<double> got = values(g[k].contiguous()), ref = values(want[k].contiguous());
    ASSERT_EQ(got.size(), ref.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-12) << k << " " << i;
  }
}

}  // namespace tessera::test
