// The cuDNN convolutions' policy (see algo_cache.h): type tables, algorithm filters, the
// search's workspace and the cache of chosen algorithms. Plain host code, built either way.
#include "backends/cuda/cudnn/algo_cache.h"

#include <algorithm>
#include <array>
#include <functional>

namespace tessera::cuda::cudnn {

namespace {

struct TypeRow {
  DType dtype;
  ConvTypes strict;  // float32: FMA only
  ConvTypes tf32;    // float32 with set_allow_tf32(true)
};

constexpr std::array kTypes = {
    TypeRow{DType::Float16,
            {DataType::kHalf, DataType::kFloat, MathType::kTensorOp},
            {DataType::kHalf, DataType::kFloat, MathType::kTensorOp}},
    TypeRow{DType::BFloat16,
            {DataType::kBFloat16, DataType::kFloat, MathType::kTensorOp},
            {DataType::kBFloat16, DataType::kFloat, MathType::kTensorOp}},
    TypeRow{DType::Float32,
            {DataType::kFloat, DataType::kFloat, MathType::kFma},
            {DataType::kFloat, DataType::kFloat, MathType::kDefault}},
    TypeRow{DType::Float64,
            {DataType::kDouble, DataType::kDouble, MathType::kDefault},
            {DataType::kDouble, DataType::kDouble, MathType::kDefault}},
};

// Algorithm 0 and 1 of each pass and whether each is deterministic (cuDNN's documentation:
// the backward ALGO_0s sum with atomics).
struct FallbackRow {
  ConvPass pass;
  std::array<bool, 2> deterministic;
};
constexpr std::array kFallbacks = {
    FallbackRow{ConvPass::kForward, {true, true}},
    FallbackRow{ConvPass::kBackwardData, {false, true}},
    FallbackRow{ConvPass::kBackwardFilter, {false, true}},
};

// The math type a row runs under, or nullopt when the rules exclude it.
std::optional<MathType> run_math(const AlgoPerf& p, const AlgoRules& r) {
  if (p.math == MathType::kTensorOpAllowConversion) return std::nullopt;
  if (r.math != MathType::kFma) return p.math;
  if (p.math == MathType::kFma || p.math == MathType::kDefault) return MathType::kFma;
  return std::nullopt;
}

void mix(size_t& h, uint64_t v) {
  h ^= std::hash<uint64_t>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
}

}  // namespace

std::optional<ConvTypes> conv_types(DType dt, bool allow_tf32) {
  for (const TypeRow& r : kTypes)
    if (r.dtype == dt) return allow_tf32 ? r.tf32 : r.strict;
  return std::nullopt;
}

std::vector<AlgoChoice> usable_algos(std::span<const AlgoPerf> perf, const AlgoRules& rules) {
  std::vector<AlgoChoice> out;
  for (const AlgoPerf& p : perf) {
    if (!p.ok || p.memory > rules.max_workspace) continue;
    if (rules.deterministic && !p.deterministic) continue;
    const std::optional<MathType> math = run_math(p, rules);
    if (!math) continue;
    const AlgoChoice c{p.algo, *math, 0};
    if (std::find(out.begin(), out.end(), c) == out.end()) out.push_back(c);
  }
  return out;
}

std::vector<AlgoPerf> fallback_algos(ConvPass pass, MathType math) {
  std::vector<AlgoPerf> out;
  for (const FallbackRow& r : kFallbacks)
    if (r.pass == pass)
      for (int algo = 0; algo < 2; ++algo)
        out.push_back({algo, true, 0, r.deterministic[static_cast<size_t>(algo)], math});
  return out;
}

size_t search_workspace(std::span<const size_t> wanted, size_t available) {
  const size_t cap = std::min(kSearchWorkspaceCap, available);
  size_t best = 0;
  for (size_t w : wanted)
    if (w <= cap) best = std::max(best, w);
  return best;
}

ConvAlgoKey conv_algo_key(int device, ConvPass pass, DType dtype, MathType math,
                          const detail::ConvGeom& g, bool benchmark, bool deterministic) {
  return {.device = device,
          .pass = pass,
          .dtype = dtype,
          .math = math,
          .benchmark = benchmark,
          .deterministic = deterministic,
          .nsp = g.nsp,
          .n = g.n,
          .c = g.c,
          .o = g.o,
          .groups = g.groups,
          .img = g.img,
          .grid = g.grid,
          .k = g.k,
          .s = g.s,
          .p = g.p,
          .d = g.d};
}

size_t ConvAlgoKeyHash::operator()(const ConvAlgoKey& k) const {
  size_t h = 0;
  mix(h, static_cast<uint64_t>(k.device));
  mix(h, static_cast<uint64_t>(k.pass));
  mix(h, static_cast<uint64_t>(k.dtype));
  mix(h, static_cast<uint64_t>(k.math));
  mix(h, (k.benchmark ? 1U : 0U) | (k.deterministic ? 2U : 0U));
  mix(h, static_cast<uint64_t>(k.nsp));
  for (int64_t v : {k.n, k.c, k.o, k.groups}) mix(h, static_cast<uint64_t>(v));
  for (const detail::Dim3* d : {&k.img, &k.grid, &k.k, &k.s, &k.p, &k.d})
    for (int64_t v : *d) mix(h, static_cast<uint64_t>(v));
  return h;
}

std::optional<AlgoChoice> ConvAlgoCache::find(const ConvAlgoKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

void ConvAlgoCache::insert(const ConvAlgoKey& key, const AlgoChoice& choice) {
  std::lock_guard<std::mutex> lock(mu_);
  map_.emplace(key, choice);
}

size_t ConvAlgoCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}

void ConvAlgoCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  map_.clear();
}

ConvAlgoCache& conv_algo_cache() {
  static auto* cache = new ConvAlgoCache;  // leaked on purpose, like the cuDNN handles
  return *cache;
}

}  // namespace tessera::cuda::cudnn
