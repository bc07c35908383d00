// The CUDA random draws (uniform, normal, randint, bernoulli), creation (arange, linspace, eye)
// and shape primitives (cat, flip, roll, repeat, pad, tril, triu) against the CPU: the same
// seed and offset give the same bits (normal: within a few ulps of double, from the device's
// log and cos), generators advance alike, dropout draws the same mask, and every shape op
// moves the same bytes for every dtype (complex64 included), over strided and empty inputs,
// with the CPU's gradients. Every test but the first skips (GTEST_SKIP) without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_util.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/dispatch.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using cuda_test::expect_close;
using cuda_test::kGpu;
using cuda_test::values;
namespace F = nn::functional;
using Ints = std::vector<int64_t>;

const std::vector<DType> kFloats = {kFloat16, kBFloat16, kFloat32, kFloat64};
const std::vector<DType> kAll = {kBool,    kUInt8,    kInt8,    kInt16,   kInt32,    kInt64,
                                 kFloat16, kBFloat16, kFloat32, kFloat64, kComplex64};

// The same bytes (so the same bits: -0.0, NaN payloads and complex parts included).
void expect_bitwise(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.device(), kGpu) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Tensor g = got.to(Device::cpu()).contiguous(), w = want.contiguous();
  const auto* gb = static_cast<const char*>(g.raw_data());
  const auto* wb = static_cast<const char*>(w.raw_data());
  const auto isz = static_cast<size_t>(g.itemsize());
  for (int64_t i = 0; i < g.numel(); ++i)
    if (std::memcmp(gb + i * isz, wb + i * isz, isz) != 0) {
      ADD_FAILURE() << what << ": element " << i << " differs from the CPU's ("
                    << (g.dtype() == kComplex64
                            ? std::string("complex")
                            : std::to_string(values(g)[i]) + " vs " + std::to_string(values(w)[i]))
                    << ")";
      return;
    }
}

// Two generators in one state: one for the CPU's draw, one for the GPU's.
struct Twins {
  Generator cpu, gpu;
  Twins(uint64_t seed, uint64_t offset) : cpu(seed), gpu(seed) {
    cpu.set_offset(offset);
    gpu.set_offset(offset);
  }
};

const std::vector<std::pair<uint64_t, uint64_t>> kDraws = {
    {0, 0}, {0x5eed, 12345}, {0x123456789abcdefULL, 0xfffffff0ULL}, {~0ULL, (1ULL << 40) + 3}};

// ---- registration (runs everywhere) -----------------------------------------------------------

TEST(CudaRandomShape, EveryPrimitiveHasACudaKernelWhenBuilt) {
  if (!cuda::is_built()) GTEST_SKIP() << "not built with CUDA";
  for (const char* name : {"uniform", "normal", "randint", "bernoulli", "arange", "linspace", "eye",
                           "cat", "flip", "roll", "repeat", "pad", "tril", "triu"}) {
    bool found = false;
    for (const Kernel& k : prim(name).kernels) found |= k.device == DeviceType::CUDA;
    EXPECT_TRUE(found) << name;
  }
}

// ---- random draws -----------------------------------------------------------------------------

TEST(CudaRandom, UniformRandintBernoulliAreTheCpusBits) {
  SKIP_WITHOUT_GPU();
  const Shape shape{3, 1031};
  for (auto [seed, off] : kDraws) {
    const std::string at_s = " seed " + std::to_string(seed) + " offset " + std::to_string(off);
    for (DType dt : kFloats) {
      // {0.999, 1} and {65500, 65504} round onto `high` in 16-bit floats: the half-open rule.
      for (auto [lo, hi] : std::vector<std::pair<double, double>>{
               {0, 1}, {-2, 3}, {2, 2}, {0.999, 1}, {65500, 65504}, {-1e-3, 1e-3}}) {
        Twins t(seed, off);
        const Tensor want = uniform(lo, hi, shape, dt, &t.cpu);
        expect_bitwise(uniform(lo, hi, shape, {dt, kGpu}, &t.gpu), want,
                       "uniform " + std::string(dtype_name(dt)) + at_s);
        EXPECT_EQ(t.gpu.offset(), t.cpu.offset());
      }
    }
    for (DType dt :
         {kUInt8, kInt8, kInt16, kInt32, kInt64, kFloat16, kBFloat16, kFloat32, kFloat64})
      for (auto [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{
               {0, 2}, {-3, 4}, {-300, 300}, {-100000, 100000}, {INT64_MIN / 2, INT64_MAX / 2}}) {
        Twins t(seed, off);
        const Tensor want = randint(lo, hi, shape, dt, &t.cpu);
        expect_bitwise(randint(lo, hi, shape, {dt, kGpu}, &t.gpu), want,
                       "randint " + std::string(dtype_name(dt)) + at_s);
      }
    Generator pg(9);
    Tensor p = uniform(0, 1, {7, 40}, kFloat64, &pg);
    const Tensor edges = tensor<double>({0, 1, 1e-300, 1 - 1e-16, 0.5});
    p.narrow(1, 0, 5).copy_(edges.unsqueeze(0).expand({7, 5}));
    for (DType dt : kFloats) {
      const Tensor pc = p.to(dt), pgpu = pc.to(kGpu);
      // Contiguous, transposed and sliced probabilities (element i still uses counter off + i).
      const std::vector<std::pair<Tensor, Tensor>> layouts = {
          {pc, pgpu}, {pc.t(), pgpu.t()}, {pc.narrow(1, 3, 30), pgpu.narrow(1, 3, 30)}};
      for (const auto& [c, g] : layouts) {
        Twins t(seed, off);
        const Tensor want = bernoulli(c, &t.cpu);
        expect_bitwise(bernoulli(g, &t.gpu), want,
                       "bernoulli " + std::string(dtype_name(dt)) + at_s);
      }
    }
  }
  cuda::synchronize();  // no probability fault was recorded
}

TEST(CudaRandom, GridStrideLoopCoversMoreElementsThanOneLaunch) {
  SKIP_WITHOUT_GPU();
  const int64_t n = (int64_t{1} << 24) + 1000;  // more than 65535 blocks of 256 threads
  Twins t(3, 7);
  expect_bitwise(uniform(0, 1, {n}, {kFloat32, kGpu}, &t.gpu), uniform(0, 1, {n}, kFloat32, &t.cpu),
                 "uniform 2^24 + 1000");
}

TEST(CudaRandom, NormalIsWithinUlpsOfTheCpu) {
  SKIP_WITHOUT_GPU();
  // Box-Muller in double: the device's log (1 ulp) and cos (2 ulp) against glibc. Measured on
  // the host with libdevice's code compiled for x86, over 2e8 draws: at most 3 ulp in double;
  // after rounding, no float32 / float16 / bfloat16 element differed for mean 0, std 1, and 2
  // float32 elements (by one unit) for mean 2, std 3.
  const Shape shape{5, 4099};
  for (auto [seed, off] : kDraws)
    for (auto [mean, sd] : std::vector<std::pair<double, double>>{{0, 1}, {2, 3}, {-1, 1e-3}}) {
      const std::string what = "normal(" + std::to_string(mean) + ", " + std::to_string(sd) + ")";
      Twins t(seed, off);
      const Tensor want = normal(mean, sd, shape, kFloat64, &t.cpu);
      expect_close(normal(mean, sd, shape, {kFloat64, kGpu}, &t.gpu), want, 8e-16,
                   4e-16 * (std::abs(mean) + 8 * sd), what + " float64");
      for (DType dt : {kFloat32, kFloat16, kBFloat16}) {
        Twins t2(seed, off);
        const std::vector<double> w = values(normal(mean, sd, shape, dt, &t2.cpu));
        const std::vector<double> v = values(normal(mean, sd, shape, {dt, kGpu}, &t2.gpu));
        const double unit = dt == kFloat32 ? 0x1p-23 : dt == kFloat16 ? 0x1p-10 : 0x1p-7;
        int64_t differ = 0;
        for (size_t i = 0; i < w.size(); ++i) {
          differ += v[i] != w[i];
          ASSERT_LE(std::abs(v[i] - w[i]), unit * std::abs(w[i]) + 1e-30)
              << what << " " << dtype_name(dt) << " element " << i;
        }
        EXPECT_LE(differ, 2) << what << " " << dtype_name(dt) << ": elements rounded differently";
      }
    }
}

TEST(CudaRandom, GeneratorsAdvanceLikeOnTheCpu) {
  SKIP_WITHOUT_GPU();
  // The default generator: the same sequence of draws, half of them on the GPU.
  manual_seed(21);
  const std::vector<Tensor> cpu = {randn({4, 5}), rand({7}, kFloat64), randint(0, 9, {3, 3}),
                                   bernoulli({6}, 0.4, kFloat32), randn({2, 2}, kFloat16)};
  const uint64_t cpu_offset = default_generator().offset();
  manual_seed(21);
  const std::vector<Tensor> gpu = {
      randn({4, 5}, {kFloat32, kGpu}), rand({7}, kFloat64), randint(0, 9, {3, 3}, {kInt64, kGpu}),
      bernoulli({6}, 0.4, {kFloat32, kGpu}), randn({2, 2}, {kFloat16, kGpu})};
  EXPECT_EQ(default_generator().offset(), cpu_offset);
  for (size_t i = 0; i < cpu.size(); ++i)
    expect_bitwise(gpu[i].to(kGpu), cpu[i], "draw " + std::to_string(i));
}

TEST(CudaRandom, BadBernoulliProbabilityIsAValueErrorAtTheNextSync) {
  SKIP_WITHOUT_GPU();
  for (double bad : {-0.25, 1.5, std::nan("")}) {
    Tensor p = full({2, 3}, 0.5, kFloat32);
    p.narrow(1, 1, 1).narrow(0, 1, 1).fill_(bad);  // flat index 4
    Tensor y;
    EXPECT_NO_THROW(y = bernoulli(p.to(kGpu)));  // queued: the check runs on the device
    try {
      cuda::synchronize();
      ADD_FAILURE() << "no ValueError for " << bad;
    } catch (const ValueError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("[bernoulli]"), std::string::npos) << msg;
      EXPECT_NE(msg.find("at flat index 4 is outside [0, 1]"), std::string::npos) << msg;
    }
    EXPECT_NO_THROW(cuda::synchronize());  // cleared; the context still works
    EXPECT_EQ(values(y)[4], 0.0);
  }
  EXPECT_THROW((void)bernoulli(full({3}, 2.0, kFloat32)), ValueError);  // the CPU checks at once
}

TEST(CudaRandom, DropoutDrawsTheCpusMask) {
  SKIP_WITHOUT_GPU();
  const Tensor x = randn({64, 33}, kFloat32);
  for (DType dt : {kFloat32, kFloat64, kBFloat16}) {
    const Tensor xc = x.to(dt);
    auto drop = std::make_shared<nn::Dropout>(0.3);
    manual_seed(5);
    const Tensor want = (*drop)(xc);
    manual_seed(5);
    expect_bitwise((*drop)(xc.to(kGpu)), want, "Dropout " + std::string(dtype_name(dt)));
    manual_seed(6);
    const Tensor fw = F::dropout(xc, 0.6, true);
    manual_seed(6);
    expect_bitwise(F::dropout(xc.to(kGpu), 0.6, true), fw,
                   "dropout " + std::string(dtype_name(dt)));
  }
  // The gradient is the same mask, scaled.
  Tensor xc = x.to(kFloat64).requires_grad_(), xg = x.to(kFloat64).to(kGpu).requires_grad_();
  const Tensor w = randn({64, 33}, kFloat64);
  manual_seed(8);
  (F::dropout(xc, 0.5, true) * w).sum().backward();
  manual_seed(8);
  (F::dropout(xg, 0.5, true) * w.to(kGpu)).sum().backward();
  expect_bitwise(xg.grad(), xc.grad(), "d dropout / dx");
}

// ---- creation -----------------------------------------------------------------------------------

// arange's C++ API makes CPU tensors; the primitive takes the device as an attribute.
Tensor arange_on(const Scalar& start, const Scalar& end, const Scalar& step, DType dt, Device d) {
  const Tensor like = arange(start, end, step, dt);
  Attrs a{{"shape", like.shape()}, {"dtype", dt}, {"device", d}};
  a.set("start", start).set("step", step);
  return dispatch1(prim("arange"), {}, a);
}

TEST(CudaCreation, ArangeLinspaceEyeAreTheCpusBits) {
  SKIP_WITHOUT_GPU();
  struct Range {
    Scalar start, end, step;
  };
  for (DType dt : kAll) {
    const std::string n(dtype_name(dt));
    for (const Range& r : {Range{0, 10, 1}, Range{-5, 300, 7}, Range{10, -10, -3},
                           Range{0.5, 7.25, 0.75}, Range{-1.0, 1.0, 0.1}, Range{0.1, 0.95, 0.05},
                           Range{int64_t{1} << 40, (int64_t{1} << 40) + 50, 3}, Range{0, 0, 1}})
      expect_bitwise(arange_on(r.start, r.end, r.step, dt, kGpu),
                     arange(r.start, r.end, r.step, dt),
                     "arange " + n + " " + r.start.str() + ":" + r.end.str() + ":" + r.step.str());
    for (auto [s, e, steps] : std::vector<std::tuple<double, double, int64_t>>{{0, 1, 0},
                                                                               {0, 1, 1},
                                                                               {0, 1, 2},
                                                                               {-3, 7, 11},
                                                                               {0.1, 0.7, 7},
                                                                               {5, -5, 12},
                                                                               {-1, 1, 100001}})
      expect_bitwise(linspace(s, e, steps, {dt, kGpu}), linspace(s, e, steps, dt),
                     "linspace " + n + " " + std::to_string(steps));
    for (auto [rows, cols] :
         std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {4, 4}, {3, 7}, {7, 3}, {0, 5}})
      expect_bitwise(eye(rows, cols, {dt, kGpu}), eye(rows, cols, dt), "eye " + n);
  }
}

// ---- shape primitives ---------------------------------------------------------------------------

// Distinct values of dtype dt (complex64: two independent parts).
Tensor sample(const Shape& s, DType dt, uint64_t seed) {
  Generator g(seed);
  if (dt == kComplex64) {
    const Tensor re = randint(-1000, 1000, s, kFloat32, &g),
                 im = randint(-1000, 1000, s, kFloat32, &g);
    std::vector<Complex64> v;
    for (int64_t i = 0; i < re.numel(); ++i)
      v.emplace_back(re.data_ptr<float>()[i], im.data_ptr<float>()[i]);
    return tensor<Complex64>(v, s);
  }
  if (dt == kBool) return randint(0, 2, s, kInt64, &g).to(kBool);
  return randint(-100, 100, s, kInt64, &g).to(dt);
}

// The same values on the GPU, contiguous and as strided views: transposed memory, a slice of a
// larger tensor, every other element of the last dim.
std::vector<Tensor> gpu_layouts(const Tensor& x) {
  const Tensor g = x.to(kGpu);
  std::vector<Tensor> out{g};
  const int64_t nd = x.dim();
  if (nd >= 2) {
    out.push_back(g.transpose(0, nd - 1).contiguous().transpose(0, nd - 1));
    Shape big = x.shape();
    big[0] += 3;
    const Tensor b = zeros(big, {x.dtype(), kGpu});
    b.narrow(0, 1, x.size(0)).copy_(g);
    out.push_back(b.narrow(0, 1, x.size(0)));
  }
  if (nd >= 1 && x.shape().back() > 0) {
    Shape big = x.shape();
    big.back() *= 2;
    Strides st = contiguous_strides(big);
    st.back() = 2;
    Tensor v = zeros(big, {x.dtype(), kGpu}).as_strided(x.shape(), st, 0);
    v.copy_(g);
    out.push_back(v);
  }
  return out;
}

struct Case {
  std::string name;
  std::function<Tensor(const Tensor&)> op;
  int64_t min_dims;
};

std::vector<Case> cases_for(const Tensor& x) {
  const int64_t nd = x.dim();
  const int64_t last = nd > 0 ? x.shape().back() : 0;
  std::vector<Case> c = {
      {"flip all",
       [nd](const Tensor& t) {
         Ints d;
         for (int64_t i = 0; i < nd; ++i) d.push_back(i);
         return flip(t, d);
       },
       0},
      {"flip -1", [](const Tensor& t) { return flip(t, {-1}); }, 1},
      {"flip 0", [](const Tensor& t) { return flip(t, {0}); }, 1},
      {"roll 3", [](const Tensor& t) { return roll(t, {3}, {0}); }, 1},
      {"roll -7 / -1", [](const Tensor& t) { return roll(t, {-7}, {-1}); }, 1},
      {"roll flat -5", [](const Tensor& t) { return roll(t, {-5}); }, 0},
      {"roll 2 + 5 on dim 0",
       [](const Tensor& t) {
         return roll(t, {2, 5}, {0, 0});
       },
       1},
      {"roll 1, -2",
       [](const Tensor& t) {
         return roll(t, {1, -2}, {0, 1});
       },
       2},
      {"repeat 2,1,3",
       [nd](const Tensor& t) {
         Ints r(static_cast<size_t>(nd) + 1, 1);
         r[0] = 2;
         r.back() = 3;
         return repeat(t, r);
       },
       0},
      {"repeat 0",
       [nd](const Tensor& t) {
         Ints r(static_cast<size_t>(nd), 2);
         r[0] = 0;
         return repeat(t, r);
       },
       1},
      {"pad constant 1,2 value 2.5",
       [](const Tensor& t) {
         return pad(t, {1, 2}, "constant", 2.5);
       },
       1},
      {"pad constant crop",
       [](const Tensor& t) {
         return pad(t, {-1, 1, 2, -1}, "constant", -7);
       },
       2},
      {"pad replicate",
       [](const Tensor& t) {
         return pad(t, {2, 1, 0, 3}, "replicate");
       },
       2},
      {"tril", [](const Tensor& t) { return tril(t); }, 2},
      {"tril -1", [](const Tensor& t) { return tril(t, -1); }, 2},
      {"triu 2", [](const Tensor& t) { return triu(t, 2); }, 2},
      {"triu -3", [](const Tensor& t) { return triu(t, -3); }, 2},
      {"cat",
       [](const Tensor& t) {
         return cat({t, t.narrow(0, 0, t.size(0) / 2), t}, 0);
       },
       1},
      {"cat -1",
       [](const Tensor& t) {
         return cat({flip(t, {-1}), t}, -1);
       },
       1},
  };
  if (x.numel() > 0 && last >= 3)
    c.push_back(
        {"pad reflect",
         [nd](const Tensor& t) {
           return pad(t, nd >= 2 && t.size(-2) >= 3 ? Ints{2, 1, 1, 2} : Ints{2, 1}, "reflect");
         },
         1});
  if (x.numel() == 0) {  // replicate of an empty dim is an error on both
    std::erase_if(c, [](const Case& k) { return k.name == "pad replicate"; });
  }
  return c;
}

TEST(CudaShape, EveryOpMovesTheCpusBytesForEveryDtype) {
  SKIP_WITHOUT_GPU();
  const std::vector<Shape> shapes = {{},           {7},    {3, 4}, {2, 3, 5},
                                     {2, 1, 3, 4}, {0, 3}, {3, 0}, {4, 1}};
  uint64_t seed = 1;
  for (DType dt : kAll)
    for (const Shape& s : shapes) {
      const Tensor x = sample(s, dt, seed++);
      for (const Case& c : cases_for(x)) {
        if (x.dim() < c.min_dims) continue;
        const Tensor want = c.op(x);
        for (const Tensor& g : gpu_layouts(x))
          expect_bitwise(c.op(g), want,
                         c.name + " " + std::string(dtype_name(dt)) + " " + shape_str(s) +
                             (g.is_contiguous() ? "" : " strided"));
      }
    }
}

TEST(CudaShape, GradientsMatchTheCpu) {
  SKIP_WITHOUT_GPU();
  const Tensor x = randn({4, 5, 6}, kFloat64);
  const std::vector<Case> ops = {
      {"cat",
       [](const Tensor& t) {
         return cat({t, t * 2.0, t.narrow(1, 1, 2)}, 1);
       },
       0},
      {"flip",
       [](const Tensor& t) {
         return flip(t, {0, 2});
       },
       0},
      {"roll",
       [](const Tensor& t) {
         return roll(t, {2, -3}, {1, 2});
       },
       0},
      {"repeat",
       [](const Tensor& t) {
         return repeat(t, {2, 1, 3, 1});
       },
       0},
      {"pad constant",
       [](const Tensor& t) {
         return pad(t, {1, 2, -1, 1}, "constant", 3.0);
       },
       0},
      {"pad reflect",
       [](const Tensor& t) {
         return pad(t, {2, 3, 1, 2}, "reflect");
       },
       0},
      {"pad replicate",
       [](const Tensor& t) {
         return pad(t, {3, 1, 0, 2}, "replicate");
       },
       0},
      {"tril", [](const Tensor& t) { return tril(t, 1); }, 0},
      {"triu", [](const Tensor& t) { return triu(t, -1); }, 0},
  };
  for (const Case& c : ops) {
    const Tensor y = c.op(x);
    const Tensor w = randn(y.shape(), kFloat64);
    Tensor xc = x.clone().requires_grad_();
    (c.op(xc) * w).sum().backward();
    // A strided leaf on the GPU (transposed memory).
    Tensor xg = x.transpose(0, 2).contiguous().to(kGpu).transpose(0, 2).requires_grad_();
    (c.op(xg) * w.to(kGpu)).sum().backward();
    expect_close(xg.grad(), xc.grad(), 1e-14, 1e-14, "d " + c.name + " / dx");
  }
}

}  // namespace
}  // namespace tessera
