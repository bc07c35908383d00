// The CUDA backend on a real device, each kernel against the CPU's result. Every test that
// needs a GPU skips (GTEST_SKIP) when tessera::cuda::is_available() is false; the errors
// without a device (or without the CUDA build) are checked here too, and always run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;

template <class E, class F>
void expect_message(F&& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "expected an exception containing: " << part;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Same shape, dtype and values (floats: NaN equals NaN, since NaN payloads may differ).
bool same(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.to(Device::cpu()).contiguous(), y = b.to(Device::cpu()).contiguous();
  if (!is_floating(x.dtype())) return std::memcmp(x.raw_data(), y.raw_data(), x.nbytes()) == 0;
  const std::vector<double> u = values(x), v = values(y);
  for (size_t i = 0; i < u.size(); ++i)
    if (u[i] != v[i] && !(std::isnan(u[i]) && std::isnan(v[i]))) return false;
  return true;
}

struct Tol {
  DType dtype;
  double rtol, atol;
};
// Device libm and the CPU's differ by an ulp or two; 16-bit results by one rounding step.
const std::vector<Tol> kFloatTols = {{kFloat32, 2e-6, 1e-6},
                                     {kFloat64, 1e-13, 1e-14},
                                     {kFloat16, 2e-3, 1e-3},
                                     {kBFloat16, 1.6e-2, 1e-2}};

// ---- without a device ----------------------------------------------------------------------

TEST(CudaErrors, WithoutADeviceTheErrorsAreTheDocumentedOnes) {
  if (!cuda::is_built()) {
    EXPECT_FALSE(cuda::is_available());
    expect_message<NotBuiltError>([] { ones({2}).to(kGpu); }, "not built with CUDA");
    expect_message<NotBuiltError>([] { cuda::memory_stats(0); }, "not built with CUDA");
    return;
  }
  if (cuda::is_available()) {  // a device index past the last one
    const int n = cuda::device_count();
    const std::string want =
        "[cuda] device cuda:" + std::to_string(n) + " does not exist (" + std::to_string(n);
    expect_message<DeviceError>([&] { ones({2}).to(Device::cuda(n)); }, want);
    expect_message<DeviceError>([&] { zeros({2}, {kFloat32, Device::cuda(n)}); }, want);
    return;
  }
  EXPECT_EQ(cuda::device_count(), 0);
  EXPECT_FALSE(cuda::unavailable_reason().empty());
  const std::string want = "[cuda] no CUDA device (requested cuda:0)";
  expect_message<DeviceError>([] { ones({2}).to(kGpu); }, want);
  expect_message<DeviceError>([] { zeros({2}, {kFloat32, kGpu}); }, want);
  expect_message<DeviceError>([] { Tensor::empty({3}, kFloat32, kGpu); }, want);
  expect_message<DeviceError>([] { cuda::memory_stats(0); }, want);
  expect_message<DeviceError>([] { cuda::synchronize(); }, want);
  expect_message<DeviceError>([] { cuda::Stream::create(); }, want);
  expect_message<DeviceError>([] { cuda::Event(); }, want);
  expect_message<DeviceError>([] { cuda::empty_pinned({4}); }, want);
  expect_message<DeviceError>([] { cuda::device_properties(0); }, want);
  expect_message<DeviceError>([] { cuda::check_device(5); },
                              "[cuda] no CUDA device (requested cuda:5)");
  EXPECT_EQ(known_devices(), std::vector<Device>{Device::cpu()});
  EXPECT_FALSE(cuda::is_pinned(ones({2})));
  expect_message<DeviceError>([] { cuda::pin_memory(ones({2})); }, want);
  expect_message<DeviceError>([] { ones({2}).to(kGpu, true); }, want);
}

// ---- device facts and runtime ----------------------------------------------------------------

TEST(CudaDevice, PropertiesDescribeTheGpu) {
  SKIP_WITHOUT_GPU();
  const cuda::DeviceProperties p = cuda::device_properties(0);
  EXPECT_FALSE(p.name.empty());
  EXPECT_GT(p.total_memory, int64_t{1} << 30);
  EXPECT_GT(p.multiprocessors, 0);
  EXPECT_GE(p.major, 7);
  EXPECT_GT(p.clock_khz, 0);
  EXPECT_EQ(cuda::current_device(), 0);
  EXPECT_EQ(known_devices().size(), static_cast<size_t>(1 + cuda::device_count()));
}

TEST(CudaRuntime, StreamsEventsAndSynchronize) {
  SKIP_WITHOUT_GPU();
  cuda::Stream s = cuda::Stream::create();
  EXPECT_NE(s.handle(), nullptr);
  cuda::Event start, end;
  Tensor a = rand({512, 512}).to(kGpu), c;
  {
    cuda::StreamGuard guard(s);
    EXPECT_EQ(cuda::Stream::current(0), s);
    start.record();
    c = matmul(a, a);
    end.record();
  }
  EXPECT_EQ(cuda::Stream::current(0), cuda::Stream::default_stream(0));
  s.synchronize();
  EXPECT_TRUE(s.query());
  EXPECT_TRUE(end.query());
  const double ms = start.elapsed_ms(end);
  EXPECT_GT(ms, 0.0);
  EXPECT_LT(ms, 10000.0);
  cuda::synchronize();
  expect_message<ValueError>([] { cuda::Event().elapsed_ms(cuda::Event()); }, "recorded");
  expect_close(c, matmul(a.to(Device::cpu()), a.to(Device::cpu())).to(kGpu), 1e-5, 1e-4,
               "matmul on a side stream");
}

// Python holds a current_stream() result as long as it likes: it must own the stream, not
// point at one the guard's owner may destroy.
TEST(CudaRuntime, CurrentStreamSharesOwnershipOfAGuardedStream) {
  SKIP_WITHOUT_GPU();
  std::optional<cuda::Stream> held;
  void* handle = nullptr;
  {
    cuda::Stream s = cuda::Stream::create();
    handle = s.handle();
    cuda::StreamGuard guard(s);
    held = cuda::Stream::current(0);
    {
      cuda::StreamGuard nested(cuda::Stream::default_stream(0));
      EXPECT_EQ(cuda::Stream::current(0), cuda::Stream::default_stream(0));
    }
    EXPECT_EQ(cuda::Stream::current(0), s) << "the nested guard gives the side stream back";
  }  // the guard and the creator's copy are gone
  EXPECT_EQ(cuda::Stream::current(0), cuda::Stream::default_stream(0));
  ASSERT_EQ(held->handle(), handle);
  Tensor a = full({1000}, 2.0, {kFloat32, kGpu}), b;
  {
    cuda::StreamGuard again(*held);
    b = a * 3.0;  // queued on the stream only `held` keeps alive
  }
  held->synchronize();
  EXPECT_TRUE(held->query());
  EXPECT_TRUE(same(b.to(Device::cpu()), full({1000}, 6.0)));
}

// cudaEventQuery / cudaStreamQuery report unfinished work as cudaErrorNotReady, which the
// runtime also keeps as the thread's last error; every launch checks that error, so a query that
// left it behind made the next, unrelated kernel throw. Queries come from users, from the
// caching allocator (events of record_stream, polled at each allocation) and from the profiler
// (after every kernel: ProfilerCuda.KernelsAreTimedByEvents).
TEST(CudaRuntime, AQueryOfUnfinishedWorkDoesNotFailTheNextKernel) {
  SKIP_WITHOUT_GPU();
  const Tensor a = rand({4096, 4096}).to(kGpu);
  auto busy = [&] {  // ~0.5 TFLOP of float32 matmul: far longer than the host needs to query
    for (int i = 0; i < 4; ++i) (void)matmul(a, a);
  };
  busy();
  cuda::Event e;
  e.record();
  EXPECT_FALSE(e.query()) << "the work finished before the query: nothing was tested";
  Tensor b;
  EXPECT_NO_THROW(b = a + 1.0) << "the query's cudaErrorNotReady must not fail this launch";
  EXPECT_FALSE(cuda::Stream::current(0).query());
  EXPECT_NO_THROW(b = b * 2.0);
  cuda::synchronize();
  EXPECT_TRUE(e.query());

  // The allocator polls the event of a freed block that a busy side stream still reads.
  const cuda::Stream side = cuda::Stream::create();
  Tensor x = full({1 << 20}, 3.0, {kFloat32, kGpu}), y;
  {
    cuda::StreamGuard on_side(side);
    busy();
    y = x * 2.0;
  }
  cuda::record_stream(x, side);
  cuda::record_stream(a, side);
  x = Tensor();  // held: an event on the side stream, not done yet
  Tensor z;
  EXPECT_NO_THROW(z = full({1000}, 5.0, {kFloat32, kGpu}))
      << "the allocation polled the side stream's event, then the fill launched";
  EXPECT_NO_THROW(z = z + 1.0);
  side.synchronize();
  EXPECT_TRUE(same(y.to(Device::cpu()), full({1 << 20}, 6.0)));
  EXPECT_TRUE(same(z.to(Device::cpu()), full({1000}, 6.0)));
}

// A tensor that outlives a stream it was recorded on (record_stream, then the stream's last
// handle dropped) is freed without recording an event on the destroyed stream.
TEST(CudaRuntime, ATensorRecordedOnAStreamOutlivesTheStream) {
  SKIP_WITHOUT_GPU();
  Tensor x = full({1 << 20}, 1.0, {kFloat32, kGpu}), y;
  {
    const cuda::Stream side = cuda::Stream::create();
    {
      cuda::StreamGuard on_side(side);
      y = x + 1.0;
    }
    cuda::record_stream(x, side);
  }  // the stream is synchronized and destroyed here
  x = Tensor();
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_TRUE(same(y.to(Device::cpu()), full({1 << 20}, 2.0)));
}

// ---- copies ---------------------------------------------------------------------------------

TEST(CudaCopy, RoundTripsEveryDtypeExactly) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kBool, kUInt8, kInt8, kInt16, kInt32, kInt64, kFloat16, kBFloat16, kFloat32,
                   kFloat64, kComplex64}) {
    Tensor x = (randn({3, 5}) * 50).to(dt);
    Tensor g = x.to(kGpu);
    EXPECT_EQ(g.device(), kGpu);
    EXPECT_EQ(g.dtype(), dt);
    Tensor back = g.to(Device::cpu());
    EXPECT_TRUE(same(back, x)) << dtype_name(dt);
    // Non-contiguous both ways: a transposed view up, a transposed device view down.
    EXPECT_TRUE(same(x.t().to(kGpu).to(Device::cpu()), x.t())) << dtype_name(dt);
    EXPECT_TRUE(same(g.t().to(Device::cpu()), x.t())) << dtype_name(dt);
    EXPECT_TRUE(same(g.clone().to(Device::cpu()), x)) << dtype_name(dt);
  }
}

TEST(CudaCopy, BroadcastsAndConvertsLikeTheCpu) {
  SKIP_WITHOUT_GPU();
  Tensor row = arange(0, 3, 1, kFloat64) * 1.5;  // (3,)
  Tensor dst = zeros({2, 3}, {kFloat32, kGpu});
  dst.copy_(row);  // CPU float64 -> CUDA float32, broadcast
  EXPECT_EQ(values(dst), (std::vector<double>{0, 1.5, 3, 0, 1.5, 3}));
  Tensor host = zeros({2, 3}, kInt32);
  host.copy_(row.to(kGpu));  // CUDA float64 -> CPU int32, broadcast
  EXPECT_EQ(values(host), (std::vector<double>{0, 1, 3, 0, 1, 3}));
  // Device casts follow the CPU's rules: NaN -> 0, saturation, round to nearest even.
  Tensor special = tensor<float>({NAN, 1e10f, -1e10f, 2.5f, -3.7f, 65519.f, 1e-8f}, Shape{7});
  for (DType to : {kInt32, kInt8, kUInt8, kInt64, kBool, kFloat16, kBFloat16, kFloat64})
    EXPECT_TRUE(same(special.to(kGpu).to(to).to(Device::cpu()), special.to(to))) << dtype_name(to);
  Tensor big = tensor<int64_t>({(int64_t{1} << 62) + 1, -7, 300}, Shape{3});
  for (DType to : {kFloat32, kFloat64, kInt8, kUInt8, kFloat16})
    EXPECT_TRUE(same(big.to(kGpu).to(to).to(Device::cpu()), big.to(to))) << dtype_name(to);
  // fill_ and a strided device destination.
  Tensor m = zeros({4, 6}, {kFloat32, kGpu});
  m.slice(1, 1, 5, 2).fill_(7);
  EXPECT_TRUE(same(m.to(Device::cpu()), [] {
    Tensor c = zeros({4, 6});
    c.slice(1, 1, 5, 2).fill_(7);
    return c;
  }()));
}

TEST(CudaCopy, PinnedMemoryAndGradientsFlowThroughTransfers) {
  SKIP_WITHOUT_GPU();
  Tensor p = cuda::empty_pinned({1000});
  EXPECT_TRUE(cuda::is_pinned(p));
  EXPECT_FALSE(cuda::is_pinned(ones({3})));
  p.copy_(arange(0, 1000, 1, kFloat32));
  EXPECT_TRUE(same(p.to(kGpu).to(Device::cpu()), arange(0, 1000, 1, kFloat32)));
  // to(device) is differentiable: the gradient comes back to the source's device.
  Tensor x = tensor<float>({1, 2, 3}, Shape{3}).requires_grad_();
  Tensor y = (x.to(kGpu) * full({3}, 3.0, {kFloat32, kGpu})).to(Device::cpu()).sum();
  y.backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_EQ(x.grad().device(), Device::cpu());
  EXPECT_EQ(values(x.grad()), (std::vector<double>{3, 3, 3}));
}

TEST(CudaCopy, NonBlockingCopiesBetweenPinnedMemoryAndTheGpu) {
  SKIP_WITHOUT_GPU();
  const Tensor x = arange(0, 100000, 1, kFloat32);
  const Tensor pinned = cuda::pin_memory(x);
  EXPECT_TRUE(cuda::is_pinned(pinned));
  EXPECT_TRUE(cuda::pin_memory(pinned).is_same(pinned)) << "pinned already: no copy";
  EXPECT_THROW(cuda::pin_memory(pinned.to(kGpu)), DeviceError);
  const Tensor up = pinned.to(kGpu, true);  // queued on the current stream
  const Tensor down = (up * 2.0).to(Device::cpu(), true);
  EXPECT_TRUE(cuda::is_pinned(down)) << "an asynchronous download lands in pinned memory";
  cuda::synchronize();
  EXPECT_TRUE(same(down, x * 2.0));
  // Pageable memory, conversions and strided sources fall back to waiting copies: still exact.
  EXPECT_TRUE(
      same(x.slice(0, 0, 1000, 3).to(kGpu, true).to(Device::cpu()), x.slice(0, 0, 1000, 3)));
  EXPECT_TRUE(same(x.to(kGpu, true).to(Device::cpu(), true).to(kFloat64), x.to(kFloat64)));
  // Gradients flow through a non-blocking transfer like through a blocking one.
  Tensor w = tensor<float>({1, 2, 3}, Shape{3}).requires_grad_();
  (w.to(kGpu, true) * 2.0).sum().backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{2, 2, 2}));
}

TEST(CudaCopy, PeerCopiesBetweenTwoGpusAndMixedDevicesAreRefused) {
  SKIP_WITHOUT_GPU();
  if (cuda::device_count() < 2) GTEST_SKIP() << "needs two GPUs";
  const Device g0 = Device::cuda(0), g1 = Device::cuda(1);
  const Tensor x = arange(0, 3000, 1, kFloat32).reshape({30, 100});
  const Tensor a = x.to(g0);
  const Tensor b = a.to(g1);  // peer access enabled on first use where the hardware allows
  EXPECT_EQ(b.device(), g1);
  EXPECT_TRUE(same(b.to(Device::cpu()), x));
  EXPECT_TRUE(same(a.t().to(g1).to(kFloat64).to(Device::cpu()), x.t().to(kFloat64)));
  EXPECT_THROW(a + b, DeviceError) << "no implicit copy between devices";
  // Work on cuda:1 while cuda:0 is current, and a gradient that crosses back.
  Tensor w = ones({30, 100}, {kFloat32, g0}).requires_grad_();
  (w.to(g1) * b).sum().backward();
  EXPECT_EQ(w.grad().device(), g0);
  EXPECT_TRUE(same(w.grad().to(Device::cpu()), x));
}

TEST(CudaAllocatorDevice, RecordStreamKeepsMemoryFromReuseUntilTheStreamIsDone) {
  SKIP_WITHOUT_GPU();
  const cuda::Stream side = cuda::Stream::create();
  const int64_t n = 1000003;  // an odd size: no block of another test fits it as well
  Tensor x = full({n}, 3.0, {kFloat32, kGpu});
  void* block = x.storage()->data();
  Tensor y;
  {
    cuda::StreamGuard on_side(side);
    y = x * 2.0;  // queued on the side stream, reading x
  }
  cuda::record_stream(x, side);
  x = Tensor();  // freed while the side stream may still read it
  side.synchronize();
  Tensor z = Tensor::empty({n}, kFloat32, kGpu);
  EXPECT_EQ(z.storage()->data(), block) << "reusable once the side stream is synchronized";
  EXPECT_TRUE(same(y.to(Device::cpu()), full({n}, 6.0)));
  EXPECT_THROW(cuda::record_stream(ones({2}), side), DeviceError);
}

// ---- elementwise ----------------------------------------------------------------------------

// Inputs inside each op's domain: log/sqrt/rsqrt/log2/log1p positive, the rest symmetric.
Tensor sample(const std::string& op, Shape shape, uint64_t seed) {
  manual_seed(seed);
  const bool positive = op == "log" || op == "sqrt" || op == "rsqrt" || op == "log2" ||
                        op == "log1p" || op == "reciprocal";
  return positive ? rand(shape) * 4.0 + 0.05 : randn(shape) * 2.0;
}

TEST(CudaElementwise, UnaryOpsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  for (const char* name :
       {"neg",   "abs",        "exp",    "exp2",  "expm1", "log",     "log2", "log1p", "sqrt",
        "rsqrt", "sin",        "cos",    "tan",   "tanh",  "sigmoid", "relu", "silu",  "gelu",
        "erf",   "reciprocal", "square", "floor", "ceil",  "round",   "trunc"}) {
    const Primitive& p = prim(name);
    for (const Tol& tol : kFloatTols) {
      const Tensor base = sample(name, {37, 129}, 3).to(tol.dtype);
      // Contiguous and aligned (vector path), transposed (strided), offset by one (unaligned).
      for (const Tensor& x : {base, base.t(), base.reshape({-1}).slice(0, 1, std::nullopt)}) {
        const Tensor want = dispatch1(p, {x});
        const Tensor got = dispatch1(p, {x.to(kGpu)});
        expect_close(got, want.to(kGpu), tol.rtol, tol.atol,
                     std::string(name) + " " + std::string(dtype_name(tol.dtype)));
      }
    }
  }
  const Tensor x = randn({64});
  expect_close(gelu(x.to(kGpu), "tanh"), gelu(x, "tanh").to(kGpu), 2e-6, 1e-6, "gelu tanh");
  expect_close(relu(tensor<float>({NAN, -1, 2}, Shape{3}).to(kGpu)),
               relu(tensor<float>({NAN, -1, 2}, Shape{3})).to(kGpu), 0, 0, "relu NaN");
}

TEST(CudaElementwise, BinaryOpsMatchTheCpuWithBroadcasting) {
  SKIP_WITHOUT_GPU();
  for (const char* name : {"add", "sub", "mul", "div", "maximum", "minimum", "pow", "atan2"}) {
    const Primitive& p = prim(name);
    for (const Tol& tol : kFloatTols) {
      const bool is_pow = std::string(name) == "pow";
      manual_seed(11);
      const Tensor a = (is_pow ? rand({4, 1, 33}) + 0.5 : randn({4, 1, 33})).to(tol.dtype);
      const Tensor b = (is_pow ? rand({5, 33}) * 3.0 : randn({5, 33}) + 3.0).to(tol.dtype);
      const Tensor big_a = randn({3, 1000}).to(tol.dtype), big_b = randn({3, 1000}).to(tol.dtype);
      const Tensor s = tensor<double>({1.75}, Shape{}).to(tol.dtype);
      const std::vector<std::pair<Tensor, Tensor>> cases = {
          {a, b}, {big_a, big_b}, {big_a, s}, {s, big_b}, {big_a.t(), big_b.t()}};
      for (const auto& [x, y] : cases) {
        const Tensor want = dispatch1(p, {x, y});
        const Tensor got = dispatch1(p, {x.to(kGpu), y.to(kGpu)});
        expect_close(got, want.to(kGpu), tol.rtol, tol.atol,
                     std::string(name) + " " + std::string(dtype_name(tol.dtype)) + " " +
                         shape_str(x.shape()) + " with " + shape_str(y.shape()));
      }
    }
  }
  const Tensor a = randn({100}), b = randn({100});
  expect_close(add(a.to(kGpu), b.to(kGpu), 2.5), add(a, b, 2.5).to(kGpu), 2e-6, 1e-6, "alpha");
  expect_close(mul(a.to(kGpu), 3.0), mul(a, 3.0).to(kGpu), 0, 0, "tensor * scalar");
  const Tensor n = tensor<float>({NAN, 1, 2}, Shape{3}), o = tensor<float>({0, NAN, 1}, Shape{3});
  expect_close(maximum(n.to(kGpu), o.to(kGpu)), maximum(n, o).to(kGpu), 0, 0, "max NaN");
}

// Past 2^31 elements every flat index, offset and loop counter must be 64-bit. A float16
// tensor of 2^31 + 67 elements (odd: the vector path's scalar tail runs) holds distinct values
// in its first and last 1000 elements, across element 2^31; each kernel family's results
// there must be the CPU's for the same values: the 16-byte vector paths (unary, binary, a
// broadcast scalar), the strided path (a view one element in: unaligned), a conversion, the
// integer and comparison kernels, and flip's gather, whose head reads the source's tail.
TEST(CudaElementwise, IndexesPastTwoToThe31Elements) {
  SKIP_WITHOUT_GPU();
  if (cuda::device_properties(0).total_memory < (int64_t{32} << 30))
    GTEST_SKIP() << "needs 32 GiB of device memory";
  const int64_t n = (int64_t{1} << 31) + 67, m = 1000;
  const Tensor head = arange(-500, 500, 1, kFloat16);  // exact in float16
  const Tensor tail = flip(head, {0}) * 0.5;
  Tensor x = full({n}, 1.5, {kFloat16, kGpu});
  x.narrow(0, 0, m).copy_(head);
  x.narrow(0, n - m, m).copy_(tail);
  // got's first and last m elements against the CPU's f(head) and f(tail).
  const auto ends = [&](const Tensor& got, const Tensor& want_head, const Tensor& want_tail,
                        const std::string& what) {
    ASSERT_EQ(got.device(), kGpu) << what;
    const int64_t k = got.size(0);
    EXPECT_TRUE(same(got.narrow(0, 0, want_head.size(0)), want_head)) << what << ": head";
    EXPECT_TRUE(same(got.narrow(0, k - want_tail.size(0), want_tail.size(0)), want_tail))
        << what << ": tail";
  };
  ends(neg(x), neg(head), neg(tail), "neg (vector path)");
  ends(add(x, x), add(head, head), add(tail, tail), "add (vector path)");
  ends(mul(x, 2.0), mul(head, 2.0), mul(tail, 2.0), "mul by a scalar (vector path)");
  {
    const Tensor u = x.narrow(0, 1, n - 1);  // 2 bytes in: the strided path
    ends(neg(u), neg(head.narrow(0, 1, m - 1)), neg(tail), "neg (strided path)");
  }
  ends(gt(x, 0.0), gt(head, 0.0), gt(tail, 0.0), "gt (compare kernel)");
  const Tensor xi = x.to(kInt16);  // the conversion kernel
  const Tensor hi = head.to(kInt16), ti = tail.to(kInt16);
  ends(xi, hi, ti, "float16 -> int16");
  ends(add(xi, xi), add(hi, hi), add(ti, ti), "add (integer kernel)");
  ends(flip(xi, {0}), flip(ti, {0}), flip(hi, {0}), "flip (shape gather)");
}

TEST(CudaElementwise, UnsupportedDtypesAreNamedNotFallenBackFrom) {
  SKIP_WITHOUT_GPU();
  // Integer matmul runs on the CPU (its builtin kernel) but has no CUDA kernel.
  const Tensor c = ones({6}, kInt32).to(kGpu);
  expect_message<NotImplementedError>(
      [&] {
        (void)matmul(c.reshape({2, 3}), c.reshape({3, 2}));
      },
      "[matmul] no cuda:0 kernel for inputs of dtype (int32, int32)");
}

TEST(CudaCreation, FillEveryDtype) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {kBool, kUInt8, kInt8, kInt16, kInt32, kInt64, kFloat16, kBFloat16, kFloat32,
                   kFloat64, kComplex64}) {
    EXPECT_TRUE(same(full({3, 4}, 3.25, {dt, kGpu}).to(Device::cpu()), full({3, 4}, 3.25, dt)))
        << dtype_name(dt);
    EXPECT_TRUE(same(zeros({0}, {dt, kGpu}).to(Device::cpu()), zeros({0}, dt)));
  }
}

// ---- matmul ---------------------------------------------------------------------------------

TEST(CudaMatmul, CublasMatchesTheCpuInEveryLayout) {
  SKIP_WITHOUT_GPU();
  // Tolerances relative to the float64 result (k up to 200 terms).
  const std::vector<Tol> tols = {{kFloat32, 1e-5, 1e-4},
                                 {kFloat64, 1e-12, 1e-12},
                                 {kFloat16, 1e-2, 2e-2},
                                 {kBFloat16, 4e-2, 1e-1}};
  manual_seed(5);
  const Tensor a = randn({2, 3, 70, 200}, kFloat64), b = randn({3, 200, 50}, kFloat64);
  const Tensor m = randn({64, 96}, kFloat64), n = randn({96, 48}, kFloat64);
  for (const Tol& tol : tols) {
    auto check = [&](const Tensor& x, const Tensor& y, const std::string& what) {
      const Tensor xt = x.to(tol.dtype), yt = y.to(tol.dtype);
      const Tensor got = matmul(xt.to(kGpu), yt.to(kGpu));
      const Tensor want = matmul(xt.to(kFloat64), yt.to(kFloat64)).to(tol.dtype);
      expect_close(got, want.to(kGpu), tol.rtol, tol.atol,
                   what + " " + std::string(dtype_name(tol.dtype)));
    };
    check(m, n, "plain");
    check(n.t(), m.t(), "both transposed");
    check(m.slice(1, 0, 90), n.slice(0, 0, 90), "a column slice read in place (ld 96)");
    check(a, b, "batched with broadcast");
    check(a.transpose(0, 1), randn({2, 200, 50}, kFloat64), "non-uniform batch strides (packed)");
    check(a.transpose(-1, -2).contiguous().transpose(-1, -2), b.mT().contiguous().mT(),
          "batched column-major");
    check(randn({5, 1, 64}, kFloat64), randn({64, 7}, kFloat64), "a row vector batch");
  }
  EXPECT_TRUE(same(
      matmul(zeros({3, 0}, {kFloat32, kGpu}), zeros({0, 4}, {kFloat32, kGpu})).to(Device::cpu()),
      zeros({3, 4})));
  expect_message<NotImplementedError>(
      [] {
        (void)matmul(ones({2, 2}, kInt64).to(kGpu), ones({2, 2}, kInt64).to(kGpu));
      },
      "[matmul] no cuda:0 kernel for inputs of dtype (int64, int64)");
  // TF32 changes float32 results only when asked for.
  EXPECT_FALSE(cuda::allow_tf32());
}

// ---- allocator on the device ------------------------------------------------------------------

TEST(CudaAllocatorDevice, StatisticsEmptyCacheAndLimit) {
  SKIP_WITHOUT_GPU();
  cuda::synchronize();
  cuda::empty_cache();
  const int64_t before = cuda::memory_stats().current_bytes;
  {
    Tensor t = empty({1 << 20}, {kFloat32, kGpu});  // 4 MiB
    EXPECT_EQ(cuda::memory_stats().current_bytes, before + (int64_t{4} << 20));
    EXPECT_GE(cuda::memory_stats().peak_bytes, before + (int64_t{4} << 20));
  }
  EXPECT_EQ(cuda::memory_stats().current_bytes, before);
  EXPECT_GE(cuda::memory_stats().cached_bytes, int64_t{4} << 20);
  cuda::synchronize();
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats().cached_bytes,
            cuda::memory_reserved() - cuda::memory_stats().current_bytes);
  const int64_t total = cuda::device_properties().total_memory;
  cuda::set_memory_fraction(0.01);
  EXPECT_EQ(cuda::memory_limit(), static_cast<int64_t>(0.01 * static_cast<double>(total)));
  expect_message<OutOfMemoryError>(
      [&] {
        empty({total / 40}, {kFloat32, kGpu});
      },
      "[cuda] out of memory on cuda:0: tried to allocate");
  cuda::set_memory_fraction(1.0);
  EXPECT_THROW(cuda::set_memory_fraction(0.0), ValueError);
}

}  // namespace
}  // namespace tessera
