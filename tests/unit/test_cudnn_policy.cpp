// The cuDNN convolutions' policy (src/backends/cuda/cudnn/algo_cache.h), checked on the host
// without cuDNN or a GPU: the dtype -> (data, compute, math) table, which perf rows a call may
// run and in what order, the fallback algorithms, the workspace of a timed search, the cache
// key (every field of the geometry and every mode separates keys) and the cache itself, and
// the benchmark switch. What only a GPU shows (that cuDNN accepts these descriptors, that the
// chosen algorithm runs and is remembered) is in test_cuda_conv_half.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/cudnn/algo_cache.h"
#include "tessera/core/error.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda::cudnn {
namespace {

using detail::ConvGeom;

TEST(CudnnPolicy, EnumsCarryCudnnValues) {
  // cudnnDataType_t and cudnnMathType_t as in cudnn_graph.h (conv_call.h static_asserts the
  // same against the header where cuDNN is found).
  EXPECT_EQ(static_cast<int>(DataType::kFloat), 0);
  EXPECT_EQ(static_cast<int>(DataType::kDouble), 1);
  EXPECT_EQ(static_cast<int>(DataType::kHalf), 2);
  EXPECT_EQ(static_cast<int>(DataType::kBFloat16), 9);
  EXPECT_EQ(static_cast<int>(MathType::kDefault), 0);
  EXPECT_EQ(static_cast<int>(MathType::kTensorOp), 1);
  EXPECT_EQ(static_cast<int>(MathType::kTensorOpAllowConversion), 2);
  EXPECT_EQ(static_cast<int>(MathType::kFma), 3);
}

TEST(CudnnPolicy, TypesPerDtype) {
  const ConvTypes half{DataType::kHalf, DataType::kFloat, MathType::kTensorOp};
  const ConvTypes bf16{DataType::kBFloat16, DataType::kFloat, MathType::kTensorOp};
  for (bool tf32 : {false, true}) {
    // 16-bit tensors, float32 accumulation, tensor cores; TF32 does not concern them.
    EXPECT_EQ(conv_types(DType::Float16, tf32), half);
    EXPECT_EQ(conv_types(DType::BFloat16, tf32), bf16);
    EXPECT_EQ(conv_types(DType::Float64, tf32),
              (ConvTypes{DataType::kDouble, DataType::kDouble, MathType::kDefault}));
    for (DType other : {DType::Bool, DType::UInt8, DType::Int32, DType::Int64, DType::Complex64})
      EXPECT_FALSE(conv_types(other, tf32).has_value()) << dtype_name(other);
  }
  EXPECT_EQ(conv_types(DType::Float32, false),
            (ConvTypes{DataType::kFloat, DataType::kFloat, MathType::kFma}));
  EXPECT_EQ(conv_types(DType::Float32, true),
            (ConvTypes{DataType::kFloat, DataType::kFloat, MathType::kDefault}));
}

AlgoPerf row(int algo, MathType math, bool det = true, size_t memory = 0, bool ok = true) {
  return {algo, ok, memory, det, math};
}

std::vector<int> algos(const std::vector<AlgoChoice>& cs) {
  std::vector<int> out;
  for (const AlgoChoice& c : cs) out.push_back(c.algo);
  return out;
}

TEST(CudnnPolicy, UsableAlgosKeepOrderAndDropFailedDuplicateAndConvertingRows) {
  const std::vector<AlgoPerf> perf = {
      row(6, MathType::kTensorOp),
      row(1, MathType::kDefault, true, 0, /*ok=*/false),  // failed
      row(2, MathType::kTensorOpAllowConversion),         // would round float32 into float16
      row(1, MathType::kTensorOp),
      row(6, MathType::kTensorOp),  // a repeat
      row(0, MathType::kFma),
  };
  const std::vector<AlgoChoice> got = usable_algos(perf, {MathType::kTensorOp});
  EXPECT_EQ(algos(got), (std::vector<int>{6, 1, 0}));
  // Outside FMA-only rules every row runs under its own math type.
  EXPECT_EQ(got[0].math, MathType::kTensorOp);
  EXPECT_EQ(got[2].math, MathType::kFma);
  // The same algorithm under two math types is two candidates.
  EXPECT_EQ(usable_algos(std::vector{row(3, MathType::kTensorOp), row(3, MathType::kDefault)},
                         {MathType::kDefault})
                .size(),
            2U);
  EXPECT_TRUE(usable_algos({}, {MathType::kDefault}).empty());
}

TEST(CudnnPolicy, FmaOnlyRulesRunDefaultRowsUnderFmaAndDropTensorOpRows) {
  const std::vector<AlgoPerf> perf = {row(1, MathType::kTensorOp), row(4, MathType::kDefault),
                                      row(5, MathType::kFma), row(7, MathType::kDefault)};
  const std::vector<AlgoChoice> got = usable_algos(perf, {MathType::kFma});
  EXPECT_EQ(algos(got), (std::vector<int>{4, 5, 7}));
  for (const AlgoChoice& c : got) EXPECT_EQ(c.math, MathType::kFma);
}

TEST(CudnnPolicy, DeterministicRulesAndTheWorkspaceCap) {
  const std::vector<AlgoPerf> perf = {
      row(0, MathType::kTensorOp, /*det=*/false, 0), row(1, MathType::kTensorOp, true, 4096),
      row(3, MathType::kTensorOp, false, 16), row(5, MathType::kTensorOp, true, 1 << 20)};
  EXPECT_EQ(algos(usable_algos(perf, {MathType::kTensorOp, /*deterministic=*/true})),
            (std::vector<int>{1, 5}));
  EXPECT_EQ(algos(usable_algos(perf, {MathType::kTensorOp, false, /*max_workspace=*/4096})),
            (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(algos(usable_algos(perf, {MathType::kTensorOp, true, 4096})), (std::vector<int>{1}));
}

TEST(CudnnPolicy, FallbacksAreAlgorithmsZeroAndOneWithTheirDeterminism) {
  for (ConvPass pass : {ConvPass::kForward, ConvPass::kBackwardData, ConvPass::kBackwardFilter}) {
    const std::vector<AlgoPerf> f = fallback_algos(pass, MathType::kTensorOp);
    ASSERT_EQ(f.size(), 2U);
    EXPECT_EQ(f[0].algo, 0);
    EXPECT_EQ(f[1].algo, 1);
    for (const AlgoPerf& p : f) {
      EXPECT_TRUE(p.ok);
      EXPECT_EQ(p.math, MathType::kTensorOp);
    }
    // Forward's implicit GEMMs are deterministic; the backward ALGO_0s add with atomics.
    EXPECT_EQ(f[0].deterministic, pass == ConvPass::kForward);
    EXPECT_TRUE(f[1].deterministic);
    // Under deterministic rules a backward pass falls back to ALGO_1 only.
    EXPECT_EQ(algos(usable_algos(f, {MathType::kTensorOp, true})),
              pass == ConvPass::kForward ? (std::vector<int>{0, 1}) : (std::vector<int>{1}));
  }
  // Under FMA-only rules the fallbacks run as FMA.
  for (const AlgoChoice& c :
       usable_algos(fallback_algos(ConvPass::kForward, MathType::kFma), {MathType::kFma}))
    EXPECT_EQ(c.math, MathType::kFma);
}

TEST(CudnnPolicy, SearchWorkspaceIsTheLargestNeedThatFits) {
  constexpr size_t MiB = size_t{1} << 20, GiB = size_t{1} << 30;
  const std::vector<size_t> wanted = {0, 3 * MiB, 40 * MiB, 2 * GiB, 700 * MiB};
  EXPECT_EQ(search_workspace(wanted, 64 * GiB), 700 * MiB);  // 2 GiB is over the 1 GiB cap
  EXPECT_EQ(search_workspace(wanted, 100 * MiB), 40 * MiB);  // the free memory bounds it
  EXPECT_EQ(search_workspace(wanted, 40 * MiB), 40 * MiB);
  EXPECT_EQ(search_workspace(wanted, 1 * MiB), 0U);
  EXPECT_EQ(search_workspace({}, 64 * GiB), 0U);
  EXPECT_EQ(search_workspace(std::vector<size_t>{GiB}, 64 * GiB), kSearchWorkspaceCap);
  EXPECT_EQ(kSearchWorkspaceCap, GiB);
}

ConvGeom geometry() {
  ConvGeom g;
  g.nsp = 2;
  g.n = 4, g.c = 8, g.o = 16, g.groups = 2;
  g.img = {1, 32, 30}, g.grid = {1, 16, 15}, g.k = {1, 3, 3};
  g.s = {1, 2, 2}, g.p = {0, 1, 1}, g.d = {1, 1, 1};
  return g;
}

ConvAlgoKey key_of(const ConvGeom& g) {
  return conv_algo_key(0, ConvPass::kForward, DType::Float16, MathType::kTensorOp, g, false, false);
}

TEST(CudnnPolicy, KeysDifferInEveryGeometryField) {
  const ConvGeom base = geometry();
  const ConvAlgoKey k0 = key_of(base);
  EXPECT_EQ(key_of(geometry()), k0);
  EXPECT_EQ(ConvAlgoKeyHash{}(key_of(geometry())), ConvAlgoKeyHash{}(k0));
  // Two calls differing only in one field (dilation first, the brief's example).
  const std::vector<std::pair<std::string, std::function<void(ConvGeom&)>>> changes = {
      {"dilation", [](ConvGeom& g) { g.d[2] = 2; }},
      {"dilation of the other dim", [](ConvGeom& g) { g.d[1] = 2; }},
      {"padding", [](ConvGeom& g) { g.p[1] = 0; }},
      {"stride", [](ConvGeom& g) { g.s[2] = 1; }},
      {"kernel", [](ConvGeom& g) { g.k[1] = 5; }},
      {"image", [](ConvGeom& g) { g.img[2] = 31; }},
      {"grid", [](ConvGeom& g) { g.grid[1] = 17; }},
      {"groups", [](ConvGeom& g) { g.groups = 4; }},
      {"batch", [](ConvGeom& g) { g.n = 5; }},
      {"input channels", [](ConvGeom& g) { g.c = 16; }},
      {"output channels", [](ConvGeom& g) { g.o = 8; }},
      {"spatial dims", [](ConvGeom& g) { g.nsp = 3; }},
  };
  std::vector<size_t> hashes = {ConvAlgoKeyHash{}(k0)};
  for (const auto& [what, change] : changes) {
    ConvGeom g = geometry();
    change(g);
    const ConvAlgoKey k = key_of(g);
    EXPECT_NE(k, k0) << what;
    hashes.push_back(ConvAlgoKeyHash{}(k));
  }
  // Not required for correctness, but a hash that ignored a field would collide here.
  std::sort(hashes.begin(), hashes.end());
  EXPECT_EQ(std::unique(hashes.begin(), hashes.end()), hashes.end());
}

TEST(CudnnPolicy, KeysDifferInDevicePassDtypeMathAndModes) {
  const ConvGeom g = geometry();
  const ConvAlgoKey k0 = key_of(g);
  const std::vector<std::pair<std::string, ConvAlgoKey>> others = {
      {"device",
       conv_algo_key(1, ConvPass::kForward, DType::Float16, MathType::kTensorOp, g, false, false)},
      {"pass", conv_algo_key(0, ConvPass::kBackwardData, DType::Float16, MathType::kTensorOp, g,
                             false, false)},
      {"dtype",
       conv_algo_key(0, ConvPass::kForward, DType::BFloat16, MathType::kTensorOp, g, false, false)},
      {"math",
       conv_algo_key(0, ConvPass::kForward, DType::Float16, MathType::kDefault, g, false, false)},
      {"benchmark",
       conv_algo_key(0, ConvPass::kForward, DType::Float16, MathType::kTensorOp, g, true, false)},
      {"deterministic",
       conv_algo_key(0, ConvPass::kForward, DType::Float16, MathType::kTensorOp, g, false, true)},
  };
  for (const auto& [what, k] : others) {
    EXPECT_NE(k, k0) << what;
    EXPECT_NE(ConvAlgoKeyHash{}(k), ConvAlgoKeyHash{}(k0)) << what;
  }
  const ConvAlgoKey k =
      conv_algo_key(3, ConvPass::kBackwardFilter, DType::Float32, MathType::kFma, g, true, true);
  EXPECT_EQ(k.device, 3);
  EXPECT_EQ(k.pass, ConvPass::kBackwardFilter);
  EXPECT_EQ(k.dtype, DType::Float32);
  EXPECT_EQ(k.math, MathType::kFma);
  EXPECT_TRUE(k.benchmark && k.deterministic);
  EXPECT_EQ(k.d, g.d);
  EXPECT_EQ(k.grid, g.grid);
}

TEST(CudnnPolicy, CacheRemembersTheFirstChoicePerKey) {
  ConvAlgoCache cache;
  const ConvAlgoKey k = key_of(geometry());
  EXPECT_FALSE(cache.find(k).has_value());
  cache.insert(k, {6, MathType::kTensorOp, 1024});
  cache.insert(k, {1, MathType::kDefault, 0});  // a racing second choice is ignored
  ASSERT_TRUE(cache.find(k).has_value());
  EXPECT_EQ(*cache.find(k), (AlgoChoice{6, MathType::kTensorOp, 1024}));
  ConvGeom dilated = geometry();
  dilated.d[2] = 2;
  EXPECT_FALSE(cache.find(key_of(dilated)).has_value());
  cache.insert(key_of(dilated), AlgoChoice{});  // "no algorithm" is remembered too
  EXPECT_EQ(cache.find(key_of(dilated))->algo, AlgoChoice::kNone);
  EXPECT_EQ(cache.size(), 2U);
  cache.clear();
  EXPECT_EQ(cache.size(), 0U);
  EXPECT_FALSE(cache.find(k).has_value());
}

TEST(CudnnPolicy, CacheTakesConcurrentInserts) {
  ConvAlgoCache cache;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 200; ++i) {
        ConvGeom g = geometry();
        g.n = 1 + i;
        const ConvAlgoKey k = conv_algo_key(t, ConvPass::kForward, DType::Float16,
                                            MathType::kTensorOp, g, false, false);
        cache.insert(k, {i % 7, MathType::kTensorOp, static_cast<size_t>(i)});
        ASSERT_TRUE(cache.find(k).has_value());
      }
    });
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(cache.size(), 800U);
}

TEST(CudnnPolicy, TheProcessCacheIsOneObject) { EXPECT_EQ(&conv_algo_cache(), &conv_algo_cache()); }

// The switch itself needs no device: a flag in the CUDA build, NotBuiltError without it.
TEST(CudnnPolicy, BenchmarkSwitchIsOffByDefault) {
  EXPECT_FALSE(cudnn_benchmark());
  if (!is_built()) {
    EXPECT_THROW(set_cudnn_benchmark(true), NotBuiltError);
    EXPECT_FALSE(cudnn_benchmark());
    return;
  }
  set_cudnn_benchmark(true);
  EXPECT_TRUE(cudnn_benchmark());
  set_cudnn_benchmark(false);
  EXPECT_FALSE(cudnn_benchmark());
}

}  // namespace
}  // namespace tessera::cuda::cudnn
