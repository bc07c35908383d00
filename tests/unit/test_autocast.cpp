// Autocast: the policy table, output dtypes per category, scopes (nesting, disabling, threads,
// device types), values and gradients against the same computation written with explicit
// casts, and the transforms (grad, vjp, jvp, vmap) and checkpointing under autocast.
#include <gtest/gtest.h>

#include <thread>

#include "tessera/tessera.h"

namespace tessera {
namespace {

using amp::Autocast;

constexpr DType kHalves[] = {kBFloat16, kFloat16};

std::string name_of(DType t) { return std::string(dtype_name(t)); }

Tensor rnd(Shape s, DType t, uint64_t seed) {
  Generator g(seed);
  return randn(std::move(s), kFloat32, &g).to(t);
}

// Bitwise equality of values (NaN never appears here).
void expect_same(const Tensor& a, const Tensor& b, const std::string& what = "") {
  ASSERT_EQ(a.dtype(), b.dtype()) << what;
  ASSERT_EQ(a.shape(), b.shape()) << what;
  EXPECT_EQ(a.detach().to_vector<double>(), b.detach().to_vector<double>()) << what;
}

void expect_near(const Tensor& a, const Tensor& b, double tol, const std::string& what = "") {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  const auto va = a.detach().to_vector<double>(), vb = b.detach().to_vector<double>();
  for (size_t i = 0; i < va.size(); ++i)
    EXPECT_NEAR(va[i], vb[i], tol * (1 + std::abs(vb[i]))) << what << " at " << i;
}

// ---- the table -------------------------------------------------------------------------------

TEST(Autocast, PolicyTableNamesRealOutOfPlacePrimitives) {
  size_t listed = 0;
  for (const Primitive& p : registry().all()) {
    const amp::CastPolicy pol = amp::cast_policy(p.name);
    if (pol == amp::CastPolicy::Keep) continue;
    ++listed;
    EXPECT_FALSE(p.has(kMutatesInput0)) << p.name << ": in-place primitives keep their dtype";
    EXPECT_EQ(p.view, nullptr) << p.name;
  }
  EXPECT_GE(listed, 40u);
  EXPECT_EQ(amp::cast_policy("matmul"), amp::CastPolicy::Lower);
  EXPECT_EQ(amp::cast_policy("conv_transpose"), amp::CastPolicy::Lower);
  EXPECT_EQ(amp::cast_policy("log_softmax"), amp::CastPolicy::Float32);
  EXPECT_EQ(amp::cast_policy("cat"), amp::CastPolicy::Promote);
  EXPECT_EQ(amp::cast_policy("relu"), amp::CastPolicy::Keep);
  EXPECT_EQ(amp::cast_policy("no_such_primitive"), amp::CastPolicy::Keep);
  EXPECT_EQ(amp::policy_name(amp::CastPolicy::Float32), "float32");
}

// ---- output dtypes per category ----------------------------------------------------------------

TEST(Autocast, LowerRunsMatmulAndConvolutionsInTheAutocastDtype) {
  const Tensor x = rnd({4, 6}, kFloat32, 1), w = rnd({3, 6}, kFloat32, 2),
               b = rnd({3}, kFloat32, 3);
  const Tensor img = rnd({2, 3, 8, 8}, kFloat32, 4), k = rnd({5, 3, 3, 3}, kFloat32, 5);
  const Tensor kb = rnd({5}, kFloat32, 6), kt = rnd({3, 5, 3, 3}, kFloat32, 7);
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    Autocast guard({.device = DeviceType::CPU, .dtype = dt});
    EXPECT_EQ(matmul(x, w.t()).dtype(), dt);
    EXPECT_EQ(nn::functional::linear(x, w, b).dtype(), dt);  // the bias joins in 16 bits
    EXPECT_EQ(matmul(x.to(kFloat16), w.t()).dtype(), dt);    // 16-bit inputs too
    EXPECT_EQ(conv2d(img, k, kb, {1}, {1}).dtype(), dt);
    EXPECT_EQ(conv_transpose2d(img, kt, {}, {2}).dtype(), dt);
    // float64 and integers are left alone, as PyTorch does.
    EXPECT_EQ(matmul(x.to(kFloat64), w.t().to(kFloat64)).dtype(), kFloat64);
    EXPECT_EQ(matmul(x.to(kInt64), w.t().to(kInt64)).dtype(), kInt64);
  }
}

TEST(Autocast, Float32RunsReductionsSoftmaxAndRangeFunctionsInFloat32) {
  const Tensor h = rnd({3, 5}, kBFloat16, 8).abs() + 0.5;
  Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16});
  const std::vector<std::pair<const char*, Tensor>> outs = {
      {"sum", h.sum()},
      {"mean", h.mean({1})},
      {"prod", prod(h, {1})},
      {"var", var(h, {1})},
      {"std", tessera::std(h, {1})},
      {"logsumexp", logsumexp(h, {1})},
      {"norm", norm(h, 2.0)},
      {"cumsum", cumsum(h, 1)},
      {"softmax", softmax(h, 1)},
      {"log_softmax", log_softmax(h, 1)},
      {"exp", exp(h)},
      {"log", log(h)},
      {"pow", pow(h, Scalar(3.0))},
      {"rsqrt", rsqrt(h)},
      {"mse_loss", nn::functional::mse_loss(h, h * 2)},
      {"cross_entropy", nn::functional::cross_entropy(h, tensor<int64_t>({0, 4, 2}))},
  };
  for (const auto& [what, t] : outs) EXPECT_EQ(t.dtype(), kFloat32) << what;
  EXPECT_EQ(softmax(h.to(kFloat64), 1).dtype(), kFloat64);     // float64 stays
  EXPECT_EQ(sum(h, {}, false, kBFloat16).dtype(), kBFloat16);  // an explicit dtype wins
  EXPECT_EQ(cumsum(h.to(kInt32), 1).dtype(), kInt64);
}

TEST(Autocast, KeepAndPromote) {
  const Tensor h = rnd({3, 4}, kBFloat16, 9), f = rnd({3, 4}, kFloat32, 10);
  Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16});
  EXPECT_EQ(relu(h).dtype(), kBFloat16);
  EXPECT_EQ((h + h).dtype(), kBFloat16);
  EXPECT_EQ(tanh(h).dtype(), kBFloat16);
  EXPECT_EQ(max_pool2d(h.reshape({1, 1, 3, 4}), {2}).dtype(), kBFloat16);
  // Mixed dtypes meet at the widest, PyTorch's promotion (the public op does it).
  EXPECT_EQ((h + f).dtype(), kFloat32);
  EXPECT_EQ(cat({h, f}, 0).dtype(), kFloat32);
  // The primitives themselves promote under autocast; outside they refuse mixed dtypes.
  static const Primitive& add_p = prim("add");
  const Tensor direct = dispatch1(add_p, {h, f});
  EXPECT_EQ(direct.dtype(), kFloat32);
  expect_same(direct, h.to(kFloat32) + f);
  amp::NoAutocast off;
  EXPECT_THROW(dispatch1(add_p, {h, f}), DTypeError);
}

// ---- scopes --------------------------------------------------------------------------------

TEST(Autocast, ScopesNestDisableAndRestore) {
  const Tensor x = rnd({2, 3}, kFloat32, 11), w = rnd({3, 2}, kFloat32, 12);
  EXPECT_FALSE(amp::is_autocast_enabled());
  EXPECT_FALSE(layer_active(Layer::Autocast));
  {
    Autocast outer({.device = DeviceType::CPU, .dtype = kBFloat16});
    EXPECT_TRUE(amp::is_autocast_enabled(DeviceType::CPU));
    EXPECT_TRUE(layer_active(Layer::Autocast));
    EXPECT_EQ(matmul(x, w).dtype(), kBFloat16);
    {
      Autocast inner({.device = DeviceType::CPU, .dtype = kFloat16});
      EXPECT_EQ(matmul(x, w).dtype(), kFloat16);
      {
        Autocast off({.device = DeviceType::CPU, .enabled = false});
        EXPECT_FALSE(amp::is_autocast_enabled());
        EXPECT_FALSE(layer_active(Layer::Autocast));
        EXPECT_EQ(matmul(x, w).dtype(), kFloat32);
        Autocast again({.device = DeviceType::CPU});  // no dtype: the current one (float16)
        EXPECT_EQ(matmul(x, w).dtype(), kFloat16);
      }
      EXPECT_EQ(matmul(x, w).dtype(), kFloat16);
    }
    EXPECT_EQ(matmul(x, w).dtype(), kBFloat16);
    EXPECT_EQ(amp::autocast_dtype(), kBFloat16);
  }
  EXPECT_FALSE(amp::is_autocast_enabled());
  EXPECT_FALSE(layer_active(Layer::Autocast));
  EXPECT_EQ(amp::autocast_dtype(DeviceType::CPU), kBFloat16);  // PyTorch's defaults
  EXPECT_EQ(amp::autocast_dtype(DeviceType::CUDA), kFloat16);
  EXPECT_EQ(matmul(x, w).dtype(), kFloat32);
}

TEST(Autocast, ScopeRestoresWhenTheBlockThrows) {
  try {
    Autocast guard({.device = DeviceType::CPU});
    matmul(rnd({2, 3}, kFloat32, 1), rnd({4, 2}, kFloat32, 2));  // ShapeError
    FAIL() << "no error";
  } catch (const ShapeError&) {
  }
  EXPECT_FALSE(amp::is_autocast_enabled());
  EXPECT_FALSE(layer_active(Layer::Autocast));
}

TEST(Autocast, StateIsPerThreadAndPerDeviceType) {
  const Tensor x = rnd({2, 3}, kFloat32, 13), w = rnd({3, 2}, kFloat32, 14);
  {
    // A CUDA scope leaves CPU tensors alone (the policy follows where inputs live).
    Autocast cuda_only({.device = DeviceType::CUDA});
    EXPECT_TRUE(amp::is_autocast_enabled(DeviceType::CUDA));
    EXPECT_FALSE(amp::is_autocast_enabled(DeviceType::CPU));
    EXPECT_EQ(matmul(x, w).dtype(), kFloat32);
  }
  Autocast guard({.device = DeviceType::CPU});
  DType seen = kBool;
  std::thread([&] { seen = matmul(x, w).dtype(); }).join();
  EXPECT_EQ(seen, kFloat32);
  EXPECT_EQ(matmul(x, w).dtype(), kBFloat16);
}

TEST(Autocast, BadScopesAreClearErrors) {
  EXPECT_THROW(Autocast({.device = DeviceType::Auto}), ValueError);
  EXPECT_THROW(Autocast({.device = DeviceType::CPU, .dtype = kFloat32}), DTypeError);
  EXPECT_THROW(amp::set_autocast_state(DeviceType::CPU, {true, kFloat64}), DTypeError);
  EXPECT_FALSE(amp::is_autocast_enabled());
}

// ---- values and gradients against explicit casts ------------------------------------------------

TEST(Autocast, ValuesEqualTheExplicitCasts) {
  const Tensor x = rnd({5, 7}, kFloat32, 15), w = rnd({7, 4}, kFloat32, 16);
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    Tensor y, s;
    {
      Autocast guard({.device = DeviceType::CPU, .dtype = dt});
      y = matmul(x, w);
      s = softmax(y, 1);
    }
    const Tensor y_ref = matmul(x.to(dt), w.to(dt));
    expect_same(y, y_ref);
    expect_same(s, softmax(y_ref.to(kFloat32), 1));
    // The 16-bit product is the float32 product of the rounded inputs, rounded once.
    expect_same(y_ref, matmul(x.to(dt).to(kFloat32), w.to(dt).to(kFloat32)).to(dt));
  }
}

struct Mlp {
  Tensor w1, b1, w2, b2;
  explicit Mlp(uint64_t seed)
      : w1(rnd({16, 8}, kFloat32, seed) * 0.3),
        b1(rnd({16}, kFloat32, seed + 1) * 0.1),
        w2(rnd({4, 16}, kFloat32, seed + 2) * 0.3),
        b2(rnd({4}, kFloat32, seed + 3) * 0.1) {
    for (Tensor* p : {&w1, &b1, &w2, &b2}) p->requires_grad_(true);
  }
  std::vector<Tensor> params() const { return {w1, b1, w2, b2}; }
  Tensor logits(const Tensor& x) const {
    namespace F = nn::functional;
    return F::linear(relu(F::linear(x, w1, b1)), w2, b2);
  }
  // The same model with the casts autocast inserts, written out.
  Tensor logits_by_hand(const Tensor& x, DType dt) const {
    const Tensor h = matmul(x.to(dt), w1.t().to(dt)) + b1.to(dt);
    return matmul(relu(h), w2.t().to(dt)) + b2.to(dt);
  }
};

TEST(Autocast, GradientsOfFloat32ParametersAreFloat32AndMatchExplicitCasts) {
  const Tensor x = rnd({6, 8}, kFloat32, 20);
  const Tensor y = tensor<int64_t>({0, 3, 1, 2, 3, 0});
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    const Mlp m(21);
    Tensor logits, loss;
    {
      Autocast guard({.device = DeviceType::CPU, .dtype = dt});
      logits = m.logits(x);
      loss = nn::functional::cross_entropy(logits, y);
    }
    EXPECT_EQ(logits.dtype(), dt);
    EXPECT_EQ(loss.dtype(), kFloat32);
    const auto got = autograd::grad({loss}, m.params());
    const Tensor logits_ref = m.logits_by_hand(x, dt);
    const Tensor loss_ref = nn::functional::cross_entropy(logits_ref.to(kFloat32), y);
    expect_same(logits, logits_ref);
    expect_same(loss, loss_ref);
    const auto want = autograd::grad({loss_ref}, m.params());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].dtype(), kFloat32) << "param " << i;
      expect_same(got[i], want[i], "param " + std::to_string(i));
    }
  }
}

TEST(Autocast, BackwardInsideTheScopeRunsTheForwardDtypes) {
  const Tensor x = rnd({6, 8}, kFloat32, 22);
  const Mlp a(23), b(23);
  Tensor la, lb;
  {
    Autocast guard({.device = DeviceType::CPU});
    la = square(a.logits(x).to(kFloat32)).mean();
    la.backward();  // inside: the backward ops must not be re-autocast
    lb = square(b.logits(x).to(kFloat32)).mean();
  }
  lb.backward();
  for (size_t i = 0; i < 4; ++i) expect_same(a.params()[i].grad(), b.params()[i].grad());
}

TEST(Autocast, TheEngineTurnsAutocastOffDuringBackward) {
  bool during_forward = false, during_backward = true;
  auto forward = [&](autograd::FunctionCtx&, const std::vector<Tensor>& in) {
    during_forward = amp::is_autocast_enabled();
    return std::vector<Tensor>{in[0] * 2.0};
  };
  auto backward = [&](autograd::FunctionCtx&, const std::vector<Tensor>& g) {
    during_backward = amp::is_autocast_enabled();
    return std::vector<Tensor>{g[0] * 2.0};
  };
  const Tensor x = rnd({3}, kFloat32, 24).requires_grad_(true);
  Autocast guard({.device = DeviceType::CPU});
  autograd::apply_function("probe", forward, backward, {x})[0].sum().backward();
  EXPECT_TRUE(during_forward);
  EXPECT_FALSE(during_backward);
  EXPECT_TRUE(amp::is_autocast_enabled());  // back on after backward
}

TEST(Autocast, ConvolutionGradientsMatchExplicitCasts) {
  const Tensor img = rnd({2, 3, 7, 7}, kFloat32, 30);
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    const Tensor k = (rnd({4, 3, 3, 3}, kFloat32, 31) * 0.3).requires_grad_(true);
    const Tensor kb = (rnd({4}, kFloat32, 32) * 0.1).requires_grad_(true);
    const Tensor kt = (rnd({4, 2, 2, 2}, kFloat32, 33) * 0.3).requires_grad_(true);
    Tensor out;
    {
      Autocast guard({.device = DeviceType::CPU, .dtype = dt});
      const Tensor h = relu(conv2d(img, k, kb, {1}, {1}));
      EXPECT_EQ(h.dtype(), dt);
      out = conv_transpose2d(h, kt, {}, {2}).sum();
    }
    EXPECT_EQ(out.dtype(), kFloat32);
    const auto got = autograd::grad({out}, {k, kb, kt});
    const Tensor h = relu(conv2d(img.to(dt), k.to(dt), kb.to(dt), {1}, {1}));
    const Tensor ref = conv_transpose2d(h, kt.to(dt), {}, {2}).to(kFloat32).sum();
    expect_same(out, ref);
    const auto want = autograd::grad({ref}, {k, kb, kt});
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(got[i].dtype(), kFloat32);
      expect_same(got[i], want[i], "input " + std::to_string(i));
    }
  }
}

// ---- transforms and checkpointing ---------------------------------------------------------------

// f(w) = logsumexp(x @ w) summed: one lowered op and one float32 op.
Tensor f_of(const Tensor& x, const Tensor& w) { return logsumexp(matmul(x, w), {1}).sum(); }
Tensor f_by_hand(const Tensor& x, const Tensor& w) {
  return logsumexp(matmul(x.to(kBFloat16), w.to(kBFloat16)).to(kFloat32), {1}).sum();
}

TEST(Autocast, GradAndVjpTransforms) {
  const Tensor x = rnd({3, 5}, kFloat32, 40), w = rnd({5, 4}, kFloat32, 41);
  TensorsFn f = [&](const std::vector<Tensor>& a) { return std::vector<Tensor>{f_of(x, a[0])}; };
  TensorsFn ref = [&](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{f_by_hand(x, a[0])};
  };
  std::vector<Tensor> g;
  {
    Autocast guard({.device = DeviceType::CPU});
    g = grad(f)({w});
  }
  EXPECT_EQ(g[0].dtype(), kFloat32);
  expect_same(g[0], grad(ref)({w})[0]);
  // vmap(grad(f)): per-example gradients.
  const Tensor ws = rnd({3, 5, 4}, kFloat32, 42);
  Tensor per;
  {
    Autocast guard({.device = DeviceType::CPU});
    per = vmap(grad(f))({ws})[0];
  }
  EXPECT_EQ(per.dtype(), kFloat32);
  for (int64_t i = 0; i < 3; ++i) expect_near(per[i], grad(ref)({ws[i]})[0], 1e-6);
}

TEST(Autocast, JvpTransform) {
  const Tensor x = rnd({3, 5}, kFloat32, 43), w = rnd({5, 4}, kFloat32, 44);
  const Tensor t = rnd({5, 4}, kFloat32, 45);
  TensorsFn f = [&](const std::vector<Tensor>& a) { return std::vector<Tensor>{f_of(x, a[0])}; };
  TensorsFn ref = [&](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{f_by_hand(x, a[0])};
  };
  std::pair<std::vector<Tensor>, std::vector<Tensor>> got;
  {
    Autocast guard({.device = DeviceType::CPU});
    got = jvp(f, {w}, {t});
  }
  const auto want = jvp(ref, {w}, {t});
  expect_same(got.first[0], want.first[0]);
  EXPECT_EQ(got.second[0].dtype(), kFloat32);
  expect_same(got.second[0], want.second[0]);
}

TEST(Autocast, VmapMatchesALoop) {
  const Tensor xs = rnd({4, 3, 5}, kFloat32, 46), w = rnd({5, 2}, kFloat32, 47);
  TensorsFn f = [&](const std::vector<Tensor>& a) {
    return std::vector<Tensor>{softmax(matmul(a[0], w), 1), matmul(a[0], w)};
  };
  std::vector<Tensor> batched;
  std::vector<std::vector<Tensor>> each;
  {
    Autocast guard({.device = DeviceType::CPU});
    batched = vmap(f)({xs});
    for (int64_t i = 0; i < 4; ++i) each.push_back(f({xs[i]}));
  }
  EXPECT_EQ(batched[0].dtype(), kFloat32);
  EXPECT_EQ(batched[1].dtype(), kBFloat16);
  for (int64_t i = 0; i < 4; ++i) {
    expect_same(batched[0][i], each[static_cast<size_t>(i)][0]);
    expect_same(batched[1][i], each[static_cast<size_t>(i)][1]);
  }
}

TEST(Autocast, CheckpointRecomputesUnderTheForwardState) {
  const Tensor x = rnd({6, 8}, kFloat32, 50);
  const Mlp a(51), b(51);
  // The parameters are the checkpointed block's inputs (checkpoint differentiates those).
  auto block = [](const std::vector<Tensor>& in) {
    namespace F = nn::functional;
    return std::vector<Tensor>{F::linear(relu(F::linear(in[0], in[1], in[2])), in[3], in[4])};
  };
  Tensor la, lb;
  {
    Autocast guard({.device = DeviceType::CPU});
    la = square(autograd::checkpoint(block, {x, a.w1, a.b1, a.w2, a.b2})[0].to(kFloat32)).sum();
    lb = square(b.logits(x).to(kFloat32)).sum();
  }
  la.backward();  // outside the scope: the recomputation must still be bfloat16
  lb.backward();
  for (size_t i = 0; i < 4; ++i) expect_same(a.params()[i].grad(), b.params()[i].grad());
}

TEST(Autocast, InferenceModeAndNoGrad) {
  const Tensor x = rnd({2, 8}, kFloat32, 60);
  const Mlp m(61);
  autograd::InferenceMode inference;
  Autocast guard({.device = DeviceType::CPU});
  const Tensor y = m.logits(x);
  EXPECT_EQ(y.dtype(), kBFloat16);
  EXPECT_FALSE(y.requires_grad());
}

// ---- the 16-bit kernels autocast relies on ------------------------------------------------------

// 16-bit matmul and convolutions run as float32 kernels on rounded inputs, rounded once.
TEST(Autocast, HalfMatmulIsTheFloat32ProductRoundedOnce) {
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    const Tensor a = rnd({2, 3, 9, 17}, dt, 70), b = rnd({17, 5}, dt, 71);
    auto wide = [](const Tensor& t) { return t.to(kFloat32); };
    expect_same(matmul(a, b), matmul(wide(a), wide(b)).to(dt));
    const Tensor at = rnd({17, 9}, dt, 72).t();  // strided operands are read through strides
    expect_same(matmul(at, b), matmul(wide(at), wide(b)).to(dt));
    expect_same(matmul(b.t(), at.t()), matmul(wide(b.t()), wide(at.t())).to(dt));
    const Tensor v = rnd({17}, dt, 73);
    expect_same(matmul(a, v), matmul(wide(a), wide(v)).to(dt));
    EXPECT_EQ(matmul(rnd({0, 4}, dt, 74), rnd({4, 3}, dt, 75)).shape(), (Shape{0, 3}));
    expect_same(matmul(rnd({2, 0}, dt, 76), rnd({0, 3}, dt, 77)), zeros({2, 3}, dt));
  }
}

TEST(Autocast, HalfConvolutionPrimitives) {
  for (DType dt : kHalves) {
    SCOPED_TRACE(name_of(dt));
    const Tensor x = rnd({2, 4, 6, 6}, dt, 80), w = rnd({6, 2, 3, 3}, dt, 81), b = rnd({6}, dt, 82);
    auto wide = [](const Tensor& t) { return t.to(kFloat32); };
    expect_same(conv2d(x, w, b, {2}, {1}, {1}, 2),
                conv2d(wide(x), wide(w), wide(b), {2}, {1}, {1}, 2).to(dt));
    const Tensor wt = rnd({4, 3, 3, 3}, dt, 83);
    expect_same(conv_transpose2d(x, wt, b.narrow(0, 0, 3), {2}, {1}),
                conv_transpose2d(wide(x), wide(wt), wide(b.narrow(0, 0, 3)), {2}, {1}).to(dt));
    // The weight gradient (conv_weight_grad) in 16 bits against float32 rounded once.
    const Tensor wl = w.detach().requires_grad_(true), wf = wide(w).requires_grad_(true);
    const Tensor g = rnd({2, 6, 3, 3}, dt, 84);
    conv2d(x, wl, {}, {2}, {1}, {1}, 2).backward(g);
    conv2d(wide(x), wf, {}, {2}, {1}, {1}, 2).backward(wide(g));
    EXPECT_EQ(wl.grad().dtype(), dt);
    expect_same(wl.grad(), wf.grad().to(dt));
  }
}

}  // namespace
}  // namespace tessera
