// Core: dtypes and promotion, 16-bit floats, storage and views, creation, RNG, allocator,
// printing, the funnel's hooks and its error cases.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "op_table.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

template <class E, class F>
void expect_throw_named(F&& f, const std::string& op) {
  try {
    f();
    ADD_FAILURE() << "expected an error naming [" << op << "]";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find("[" + op + "]"), std::string::npos) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong error type: " << e.what();
  }
}

TEST(Core, DTypeTraits) {
  EXPECT_EQ(itemsize(kBool), 1u);
  EXPECT_EQ(itemsize(kBFloat16), 2u);
  EXPECT_EQ(itemsize(kComplex64), 8u);
  EXPECT_EQ(dtype_name(kBFloat16), "bfloat16");
  EXPECT_EQ(dtype_from_name("float64"), kFloat64);
  EXPECT_THROW(dtype_from_name("float128"), ValueError);
  EXPECT_TRUE(is_floating(kFloat16));
  EXPECT_FALSE(is_floating(kInt8));
  EXPECT_TRUE(is_integral(kBool, true));
  EXPECT_FALSE(is_integral(kBool));
}

TEST(Core, PromotionMatchesPyTorch) {
  // Spot checks from torch.promote_types.
  EXPECT_EQ(promote_types(kUInt8, kInt8), kInt16);
  EXPECT_EQ(promote_types(kBool, kUInt8), kUInt8);
  EXPECT_EQ(promote_types(kInt32, kInt64), kInt64);
  EXPECT_EQ(promote_types(kInt64, kFloat16), kFloat16);
  EXPECT_EQ(promote_types(kFloat16, kBFloat16), kFloat32);
  EXPECT_EQ(promote_types(kBFloat16, kFloat32), kFloat32);
  EXPECT_EQ(promote_types(kFloat32, kFloat64), kFloat64);
  EXPECT_EQ(promote_types(kFloat64, kComplex64), kComplex64);
  // Symmetric for every pair.
  for (int a = 0; a < kNumDTypes; ++a)
    for (int b = 0; b < kNumDTypes; ++b)
      EXPECT_EQ(promote_types(DType(a), DType(b)), promote_types(DType(b), DType(a)));
}

TEST(Core, HalfAndBFloat16RoundTrip) {
  EXPECT_EQ(Half(1.0f).bits, 0x3c00);
  EXPECT_EQ(Half(-2.0f).bits, 0xc000);
  EXPECT_EQ(Half(65504.0f).bits, 0x7bff);
  EXPECT_EQ(Half(65520.0f).bits, 0x7c00);         // rounds to inf
  EXPECT_EQ(Half(5.9604645e-8f).bits, 0x0001);    // smallest subnormal
  EXPECT_EQ(Half(1.0f + 0x1p-11f).bits, 0x3c00);  // tie rounds to even
  EXPECT_EQ(Half(1.0f + 3 * 0x1p-11f).bits, 0x3c02);
  EXPECT_TRUE(std::isnan(static_cast<float>(Half(NAN))));
  EXPECT_EQ(static_cast<float>(Half(0.1f)), 0.0999755859375f);
  // Every finite half converts to float and back unchanged.
  for (uint32_t b = 0; b < 0x7c00; ++b) {
    Half h;
    h.bits = static_cast<uint16_t>(b);
    ASSERT_EQ(Half(static_cast<float>(h)).bits, b);
  }
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(static_cast<float>(BFloat16(3.140625f)), 3.140625f);
  EXPECT_EQ(BFloat16(1.0f + 0x1p-8f).bits, 0x3f80);  // tie to even
  EXPECT_TRUE(std::isnan(static_cast<float>(BFloat16(NAN))));
}

TEST(Core, TensorFromVectorAndItem) {
  Tensor t = tensor<float>({1, 2, 3, 4, 5, 6}, Shape{2, 3});
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.strides(), (Strides{3, 1}));
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.dtype(), kFloat32);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.select(0, 1).select(0, 2).item<float>(), 6.f);
  EXPECT_THROW(t.item(), ValueError);
  EXPECT_THROW(tensor<float>({1, 2, 3}, Shape{2, 2}), ShapeError);
}

TEST(Core, ViewsShareStorage) {
  Tensor t = arange(24, kFloat32).reshape({2, 3, 4});
  Tensor v = t.permute({2, 0, 1});
  EXPECT_EQ(v.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(v.strides(), (Strides{1, 12, 4}));
  EXPECT_EQ(v.storage(), t.storage());
  EXPECT_FALSE(v.is_contiguous());
  // Writing through a view is visible in the base.
  t.select(0, 1).select(0, 2).copy_(full({4}, 7.0));
  EXPECT_EQ(t.index({1, 2, 3}).item<float>(), 7.f);
  EXPECT_EQ(v.index({3, 1, 2}).item<float>(), 7.f);
}

TEST(Core, ViewOps) {
  Tensor t = arange(12, kInt64).reshape({3, 4});
  EXPECT_EQ(t.transpose(0, 1).strides(), (Strides{1, 4}));
  EXPECT_EQ(t.t().shape(), (Shape{4, 3}));
  Tensor s = t.slice(1, 1, std::nullopt, 2);  // columns 1, 3
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(s.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(t.slice(0, -2, std::nullopt).to_vector<int64_t>(),
            (std::vector<int64_t>{4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_EQ(t.narrow(1, 2, 2).to_vector<int64_t>(), (std::vector<int64_t>{2, 3, 6, 7, 10, 11}));
  EXPECT_EQ(t.select(1, -1).to_vector<int64_t>(), (std::vector<int64_t>{3, 7, 11}));
  EXPECT_EQ(t.diagonal().to_vector<int64_t>(), (std::vector<int64_t>{0, 5, 10}));
  EXPECT_EQ(t.diagonal(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 6, 11}));
  EXPECT_EQ(t.diagonal(-1).to_vector<int64_t>(), (std::vector<int64_t>{4, 9}));
  Tensor e = tensor<int64_t>({1, 2, 3}).unsqueeze(0).expand({2, 3});
  EXPECT_EQ(e.strides(), (Strides{0, 1}));
  EXPECT_EQ(e.to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3, 1, 2, 3}));
  EXPECT_EQ(e.expand({4, -1, -1}).shape(), (Shape{4, 2, 3}));
  Tensor u = t.unsqueeze(1).unsqueeze(-1);
  EXPECT_EQ(u.shape(), (Shape{3, 1, 4, 1}));
  EXPECT_EQ(u.squeeze().shape(), (Shape{3, 4}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(u.squeeze(0).shape(), (Shape{3, 1, 4, 1}));  // size != 1: unchanged
  EXPECT_EQ(t.flatten().shape(), (Shape{12}));
  EXPECT_EQ(arange(24).reshape({2, 3, 4}).flatten(1).shape(), (Shape{2, 12}));
  EXPECT_EQ(t.flatten().unflatten(0, {2, -1}).shape(), (Shape{2, 6}));
  EXPECT_EQ(t.reshape({-1, 2}).shape(), (Shape{6, 2}));
  Tensor a = t.as_strided({2, 2}, {1, 4}, 1);
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{1, 5, 2, 6}));
  EXPECT_EQ(t.mT().shape(), (Shape{4, 3}));
}

TEST(Core, ReshapeCopiesOnlyWhenNeeded) {
  Tensor t = arange(6, kFloat32).reshape({2, 3});
  EXPECT_EQ(t.reshape({3, 2}).storage(), t.storage());
  Tensor tt = t.t();
  EXPECT_THROW(tt.view({6}), ShapeError);
  Tensor r = tt.reshape({6});
  EXPECT_NE(r.storage(), t.storage());
  EXPECT_EQ(r.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // Splitting a dim of a transposed tensor is still a view.
  Tensor big = arange(24).reshape({4, 6}).t();  // (6, 4) strides (1, 6)
  EXPECT_EQ(big.view({2, 3, 4}).storage(), big.storage());
}

TEST(Core, ViewErrors) {
  Tensor t = zeros({2, 3});
  expect_throw_named<ShapeError>([&] { t.view({4}); }, "view");
  expect_throw_named<ShapeError>([&] { t.reshape({-1, -1}); }, "reshape");
  expect_throw_named<IndexError>([&] { t.select(0, 2); }, "select");
  expect_throw_named<IndexError>([&] { t.select(2, 0); }, "select");
  expect_throw_named<IndexError>([&] { t.transpose(0, 5); }, "transpose");
  expect_throw_named<ValueError>([&] { t.permute({0, 0}); }, "permute");
  expect_throw_named<ShapeError>([&] { t.permute({0}); }, "permute");
  expect_throw_named<ShapeError>([&] { t.expand({3, 3}); }, "expand");
  expect_throw_named<ValueError>([&] { t.slice(0, 0, 1, 0); }, "slice");
  expect_throw_named<IndexError>([&] { t.narrow(1, 2, 2); }, "narrow");
  expect_throw_named<IndexError>([&] { t.as_strided({3, 3}, {3, 1}); }, "as_strided");
  expect_throw_named<ValueError>([&] { zeros({-1}); }, "creation");
  expect_throw_named<ValueError>(
      [&] {
        Tensor::empty({int64_t{1} << 40, int64_t{1} << 40});
      },
      "empty");
  expect_throw_named<ShapeError>([&] { zeros({3}).t().mT(); }, "mT");
  expect_throw_named<IndexError>([&] { t.unsqueeze(4); }, "unsqueeze");
}

TEST(Core, FreedStorageRaises) {
  Tensor t = ones({4});
  Tensor v = t.slice(0, 1, 3);
  t.storage()->release();
  expect_throw_named<ValueError>([&] { v.clone(); }, "clone");
  expect_throw_named<ValueError>([&] { v.raw_data(); }, "data_ptr");
}

TEST(Core, DataPtrChecksDType) {
  Tensor t = zeros({2}, kInt32);
  EXPECT_NO_THROW(t.data_ptr<int32_t>());
  expect_throw_named<DTypeError>([&] { t.data_ptr<float>(); }, "data_ptr");
}

TEST(Core, CopyCastAndClone) {
  Tensor t = tensor<double>({-1.5, 0.0, 2.5, 3.7, 1e20, NAN});
  EXPECT_EQ(t.to(kInt32).to_vector<int32_t>(),
            (std::vector<int32_t>{-1, 0, 2, 3, std::numeric_limits<int32_t>::max(), 0}));
  EXPECT_EQ(t.to(kBool).to_vector<bool>(),
            (std::vector<bool>{true, false, true, true, true, true}));
  EXPECT_EQ(t.to(kFloat16).to_vector<float>()[2], 2.5f);
  Tensor c = t.to(kComplex64);
  EXPECT_EQ(c.to_vector<Complex64>()[3], Complex64(3.7f, 0.f));
  Tensor nc = arange(6, kFloat32).reshape({2, 3}).t();
  Tensor cl = nc.clone();
  EXPECT_TRUE(cl.is_contiguous());
  EXPECT_EQ(cl.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  EXPECT_TRUE(nc.contiguous().is_contiguous());
  Tensor contig = zeros({3});
  EXPECT_TRUE(contig.contiguous().is_same(contig));
}

TEST(Core, CopyInPlaceBroadcastsAndBumpsVersion) {
  Tensor dst = zeros({2, 3}, kFloat64);
  uint64_t v0 = dst.version();
  dst.copy_(tensor<int32_t>({1, 2, 3}));
  EXPECT_GT(dst.version(), v0);
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 2, 3, 1, 2, 3}));
  expect_throw_named<ShapeError>([&] { dst.copy_(zeros({2})); }, "copy_");
  // Overlapping source and destination (a shifted view of the same storage).
  Tensor a = arange(5, kFloat32);
  a.slice(0, 1, 5).copy_(a.slice(0, 0, 4));
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 0, 1, 2, 3}));
  Tensor f = zeros({2, 2});
  f.fill_(2.5);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{2.5, 2.5, 2.5, 2.5}));
}

TEST(Core, Creation) {
  EXPECT_EQ(zeros({2, 2}, kInt32).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_EQ(ones({3}, kBFloat16).to_vector<float>(), (std::vector<float>{1, 1, 1}));
  EXPECT_EQ(full({2}, 7).dtype(), kInt64);
  EXPECT_EQ(full({2}, 7.5, std::nullopt).dtype(), kFloat32);
  EXPECT_EQ(full({2}, true, std::nullopt).dtype(), kBool);
  EXPECT_EQ(arange(5).dtype(), kInt64);
  EXPECT_EQ(arange(1, 2, 0.25).to_vector<float>(), (std::vector<float>{1, 1.25, 1.5, 1.75}));
  EXPECT_EQ(arange(5, 0, -2).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_THROW(arange(0, 5, -1), ValueError);
  EXPECT_THROW(arange(0, 5, 0), ValueError);
  auto ls = linspace(0, 1, 5, kFloat64).to_vector<double>();
  EXPECT_EQ(ls, (std::vector<double>{0, 0.25, 0.5, 0.75, 1}));
  EXPECT_EQ(linspace(-1, 1, 1).to_vector<float>(), (std::vector<float>{-1}));
  EXPECT_EQ(linspace(0, 1, 0).numel(), 0);
  EXPECT_EQ(eye(2, 3, kInt64).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 1, 0}));
  Tensor like = zeros_like(ones({2, 3}, kFloat16));
  EXPECT_EQ(like.dtype(), kFloat16);
  EXPECT_EQ(like.shape(), (Shape{2, 3}));
  EXPECT_EQ(ones_like(like, kInt8).dtype(), kInt8);
  EXPECT_EQ(full_like(like, 3).to_vector<float>()[5], 3.f);
  EXPECT_EQ(empty_like(like).shape(), (Shape{2, 3}));
  EXPECT_EQ(scalar_tensor(2.5).dim(), 0);
}

TEST(Core, FromBlobWithAndWithoutCopy) {
  std::vector<float> host{1, 2, 3, 4, 5, 6};
  Tensor t = from_blob(host.data(), {2, 3}, kFloat32);
  host[0] = 42;  // no copy: the tensor sees the change
  EXPECT_EQ(t.index({0, 0}).item<float>(), 42.f);
  Tensor strided = from_blob(host.data(), {3}, kFloat32, Strides{2});
  EXPECT_EQ(strided.to_vector<float>(), (std::vector<float>{42, 3, 5}));
  Tensor c = from_buffer_copy(host.data(), {6}, kFloat32);
  host[1] = -1;
  EXPECT_EQ(c.to_vector<float>()[1], 2.f);
  bool deleted = false;
  {
    Tensor owned =
        from_blob(host.data(), {6}, kFloat32, std::nullopt, [&](void*) { deleted = true; });
  }
  EXPECT_TRUE(deleted);
  EXPECT_THROW(from_blob(nullptr, {2}, kFloat32), ValueError);
}

TEST(Core, PhiloxKnownAnswer) {
  // Philox4x32-10 test vectors from the Random123 distribution (kat_vectors).
  auto r = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(r, (std::array<uint32_t, 4>{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}));
  r = philox4x32({0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}, {0xffffffffu, 0xffffffffu});
  EXPECT_EQ(r, (std::array<uint32_t, 4>{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}));
}

TEST(Core, RandomIsSeededAndThreadCountIndependent) {
  const int saved = num_threads();
  manual_seed(123);
  Tensor a = randn({100000});
  Tensor b = rand({1000});
  set_num_threads(1);
  manual_seed(123);
  Tensor a1 = randn({100000});
  Tensor b1 = rand({1000});
  set_num_threads(saved);
  EXPECT_EQ(a.to_vector<float>(), a1.to_vector<float>());
  EXPECT_EQ(b.to_vector<float>(), b1.to_vector<float>());
  // A fresh draw differs from the previous one.
  EXPECT_NE(rand({1000}).to_vector<float>(), b.to_vector<float>());
}

TEST(Core, RandomDistributions) {
  Generator g(7);
  auto u = rand({200000}, kFloat64, &g).to_vector<double>();
  double mean = 0, lo = 1, hi = 0;
  for (double x : u) {
    mean += x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  mean /= static_cast<double>(u.size());
  EXPECT_NEAR(mean, 0.5, 0.005);
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  auto n = normal(3.0, 2.0, {200000}, kFloat64, &g).to_vector<double>();
  double m = 0, v = 0;
  for (double x : n) m += x;
  m /= static_cast<double>(n.size());
  for (double x : n) v += (x - m) * (x - m);
  v /= static_cast<double>(n.size() - 1);
  EXPECT_NEAR(m, 3.0, 0.03);
  EXPECT_NEAR(v, 4.0, 0.06);
  auto ri = randint(-3, 4, {50000}, kInt64, &g).to_vector<int64_t>();
  std::vector<int> hist(7, 0);
  for (int64_t x : ri) {
    ASSERT_GE(x, -3);
    ASSERT_LT(x, 4);
    ++hist[x + 3];
  }
  for (int h : hist) EXPECT_NEAR(h, 50000 / 7, 400);
  auto bern = bernoulli({100000}, 0.3, kFloat32, &g).to_vector<float>();
  double ones_frac = 0;
  for (float x : bern) {
    ASSERT_TRUE(x == 0.f || x == 1.f);
    ones_frac += x;
  }
  EXPECT_NEAR(ones_frac / 100000, 0.3, 0.01);
  expect_throw_named<ValueError>([&] { randint(3, 3, {2}); }, "randint");
  expect_throw_named<DTypeError>([&] { rand({2}, kInt32); }, "uniform");
  expect_throw_named<ValueError>([&] { bernoulli(tensor<float>({0.5f, 1.5f})); }, "bernoulli");
}

// Large blocks start on a 2 MiB boundary, so transparent huge pages (advised for them) can
// back them whole; smaller ones keep the 64-byte alignment.
TEST(Core, LargeAllocationsAreHugePageAligned) {
  constexpr uintptr_t kTwoMiB = uintptr_t{2} << 20;
  for (int64_t mib : {8, 9, 25, 64}) {
    const Tensor t = Tensor::empty({mib << 18}, kFloat32);  // mib MiB
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kTwoMiB, 0u) << mib << " MiB";
  }
  const Tensor small = Tensor::empty({1 << 18}, kFloat32);  // 1 MiB
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.raw_data()) % kCpuAlignment, 0u);
}

TEST(Core, AllocatorStatsAndCache) {
  Allocator& a = cpu_allocator();
  a.empty_cache();
  MemoryStats s0 = a.stats();
  {
    Tensor t = Tensor::empty({1000}, kFloat64);
    MemoryStats s1 = a.stats();
    EXPECT_GE(s1.current_bytes - s0.current_bytes, 8000);
    EXPECT_GE(s1.peak_bytes, s1.current_bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % kCpuAlignment, 0u);
  }
  MemoryStats s2 = a.stats();
  EXPECT_EQ(s2.current_bytes, s0.current_bytes);
  EXPECT_GE(s2.cached_bytes, 8000);
  int64_t hits = s2.num_cache_hits;
  Tensor again = Tensor::empty({1000}, kFloat64);  // same bucket: served from the cache
  EXPECT_EQ(a.stats().num_cache_hits, hits + 1);
}

TEST(Core, Printing) {
  EXPECT_EQ(tensor<float>({1, 2, 3}).str(), "tensor([1., 2., 3.])");
  EXPECT_EQ(tensor<float>({1.5f, -2.25f}).str(), "tensor([ 1.5000, -2.2500])");
  EXPECT_EQ(arange(4, kInt64).reshape({2, 2}).str(), "tensor([[0, 1],\n        [2, 3]])");
  EXPECT_EQ(tensor<int32_t>({1, 2}).str(), "tensor([1, 2], dtype=int32)");
  EXPECT_EQ(tensor<bool>({true, false}).str(), "tensor([ True, False])");
  EXPECT_EQ(zeros({0, 3}).str(), "tensor([], size=(0, 3))");
  EXPECT_EQ(scalar_tensor(2.5).str(), "tensor(2.5000)");
  std::string big = arange(2000, kInt64).str();
  EXPECT_NE(big.find("..."), std::string::npos);
  EXPECT_NE(big.find("1999"), std::string::npos);
}

TEST(Core, DeviceParsingAndCudaStub) {
  EXPECT_EQ(Device::parse("cuda:1"), Device::cuda(1));
  EXPECT_EQ(Device::parse("cpu").str(), "cpu");
  expect_throw_named<DeviceError>([] { Device::parse("tpu"); }, "device");
  expect_throw_named<DeviceError>([] { Device::parse("cuda:x"); }, "device");
  if (!cuda::is_built()) {
    expect_throw_named<NotBuiltError>([] { zeros({2}, {kFloat32, Device::cuda(0)}); }, "fill");
    expect_throw_named<NotBuiltError>([] { ones({2}).to(Device::cuda(0)); }, "cuda");
    EXPECT_FALSE(cuda::is_available());
  }
}

// The funnel: layer handlers run in order for active layers, and the observer sees kernels.
std::vector<std::string>* g_trace = nullptr;
std::vector<Tensor> tracing_layer(const Primitive& p, Inputs in, const Attrs& a) {
  g_trace->push_back("tracing:" + p.name);
  return redispatch(p, in, a, Layer::Tracing);
}
std::vector<Tensor> autograd_layer(const Primitive& p, Inputs in, const Attrs& a) {
  g_trace->push_back("autograd:" + p.name);
  return redispatch(p, in, a, Layer::Autograd);
}
void observer(const KernelEvent& e) {
  g_trace->push_back(std::string("kernel:") + e.prim->name + ":" +
                     (e.kernel ? std::string(e.kernel->impl) : "view"));
}

TEST(Core, FunnelLayersRunInOrder) {
  std::vector<std::string> trace;
  g_trace = &trace;
  const LayerFn real_autograd = layer_handler(Layer::Autograd);
  set_layer_handler(Layer::Tracing, tracing_layer);
  set_layer_handler(Layer::Autograd, autograd_layer);
  set_kernel_observer(observer);
  set_layer_active(Layer::Tracing, true);
  set_layer_active(Layer::Autograd, true);
  Tensor t = ones({2}).clone();
  set_layer_active(Layer::Tracing, false);
  Tensor u = t.clone();
  set_layer_active(Layer::Autograd, false);
  set_kernel_observer(nullptr);
  set_layer_handler(Layer::Tracing, nullptr);
  set_layer_handler(Layer::Autograd, real_autograd);
  autograd::set_grad_enabled(true);  // grad mode is the autograd layer's bit: restore it
  g_trace = nullptr;
  std::vector<std::string> want{"tracing:fill",   "autograd:fill",       "kernel:fill:builtin",
                                "tracing:clone",  "autograd:clone",      "kernel:clone:builtin",
                                "autograd:clone", "kernel:clone:builtin"};
  EXPECT_EQ(trace, want);
}

TEST(Core, SchedulerRejectsMissingKernelAndMixedDevices) {
  // A primitive whose only kernel does not support the call.
  Registry& r = registry();
  if (!r.find("test_only_f64")) {
    r.define(
        {.name = "test_only_f64", .kind = PrimKind::Other, .infer = [](Inputs in, const Attrs&) {
           return std::vector<TensorMeta>{{in[0].shape(), in[0].dtype()}};
         }});
    r.add_kernel("test_only_f64",
                 {DeviceType::CPU, "builtin", [](Inputs, Outputs, const Attrs&) {},
                  [](Inputs in, const Attrs&) { return in[0].dtype() == kFloat64; }});
  }
  EXPECT_NO_THROW(dispatch1(prim("test_only_f64"), {zeros({1}, kFloat64)}));
  expect_throw_named<NotImplementedError>([] { dispatch1(prim("test_only_f64"), {zeros({1})}); },
                                          "test_only_f64");
  expect_throw_named<ValueError>([] { prim("no_such_primitive"); }, "registry");
}

TEST(Core, ParallelForRethrowsAndCovers) {
  std::vector<int> hits(100000, 0);
  parallel_for(100000, 1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) ++hits[i];
  });
  for (int h : hits) ASSERT_EQ(h, 1);
  EXPECT_THROW(parallel_for(100000, 1000,
                            [](int64_t b, int64_t) {
                              if (b > 0) fail<ValueError>("worker", "boom");
                            }),
               ValueError);
  EXPECT_THROW(set_num_threads(0), ValueError);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {
TEST(Core, ZeroDimReshapeAndEmptyVector) {
  Tensor s = scalar_tensor(3.0);
  EXPECT_EQ(s.reshape({1}).shape(), (Shape{1}));
  EXPECT_EQ(s.reshape({-1}).storage(), s.storage());
  EXPECT_EQ(s.flatten().shape(), (Shape{1}));
  EXPECT_EQ(s.view({1, 1}).item<float>(), 3.f);
  EXPECT_EQ(tensor(std::vector<int64_t>{}).shape(), (Shape{0}));
}
}  // namespace
}  // namespace tessera
