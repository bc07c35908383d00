#pragma once
// The policy of the cuDNN convolutions (cudnn/conv.cpp) as plain host code, built with or
// without CUDA so its unit test (tests/unit/test_cudnn_algo_cache.cpp) runs everywhere:
//   - which cuDNN data, compute and math types a dtype gets (conv_types);
//   - which algorithms of a heuristic or timed list a call may run, in what order and under
//     which math type (usable_algos, fallback_algos);
//   - how much workspace a timed search (cudnnFind*AlgorithmEx) gets (search_workspace);
//   - the process-wide cache of chosen algorithms per call shape (ConvAlgoCache).
// No cuDNN header here: the enums below carry cuDNN's own numeric values, which conv.cpp
// checks with static_asserts against cudnn.h, so a value here is the cuDNN value.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "ops/nn_geometry.h"
#include "tessera/core/dtype.h"

namespace tessera::cuda::cudnn {

/// The three cuDNN convolution calls: conv (forward), conv_transpose (backward data),
/// conv_weight_grad (backward filter).
enum class ConvPass : uint8_t { kForward, kBackwardData, kBackwardFilter };

/// cudnnDataType_t values.
enum class DataType : int { kFloat = 0, kDouble = 1, kHalf = 2, kBFloat16 = 9 };
/// cudnnMathType_t values.
enum class MathType : int { kDefault = 0, kTensorOp = 1, kTensorOpAllowConversion = 2, kFma = 3 };

/// The types of one call: tensors and filters in `data`, the convolution descriptor's
/// (accumulation) type `compute`, its math type `math`.
struct ConvTypes {
  DataType data;
  DataType compute;
  MathType math;
  bool operator==(const ConvTypes&) const = default;
};

/// float16 / bfloat16: 16-bit tensors, float32 accumulation, tensor-op math (PyTorch's
/// "pseudo half" configs); float32: FMA-only math unless TF32 is allowed (then cuDNN's
/// default, which lets Ampere and later use TF32); float64: double throughout. nullopt for
/// other dtypes.
std::optional<ConvTypes> conv_types(DType dt, bool allow_tf32);

/// One row of cuDNN's perf results (heuristic or timed), without cuDNN's types.
struct AlgoPerf {
  int algo = 0;
  bool ok = false;             ///< status == CUDNN_STATUS_SUCCESS
  size_t memory = 0;           ///< workspace bytes
  bool deterministic = false;  ///< determinism == CUDNN_DETERMINISTIC
  MathType math = MathType::kDefault;
};

/// An algorithm to run and the math type to set first; `workspace` is known once it ran.
struct AlgoChoice {
  static constexpr int kNone = -1;  ///< no algorithm supports the call
  int algo = kNone;
  MathType math = MathType::kDefault;
  size_t workspace = 0;
  bool operator==(const AlgoChoice&) const = default;
};

struct AlgoRules {
  MathType math;                    ///< the call's math type (ConvTypes::math)
  bool deterministic = false;       ///< only deterministic algorithms (the scheduler's mode)
  size_t max_workspace = SIZE_MAX;  ///< timed rows: the workspace the search had
};

/// The rows a call may run, in their order (cuDNN's: most recommended or fastest first),
/// repeats dropped. A row is dropped when it failed, needs more workspace than the rules
/// allow, is not deterministic under deterministic rules, or down-converts its operands
/// (kTensorOpAllowConversion: float32 or bfloat16 into float16). Under FMA-only rules only
/// FMA and default-math rows stay, and run under FMA math; otherwise a row runs under its
/// own math type.
std::vector<AlgoChoice> usable_algos(std::span<const AlgoPerf> perf, const AlgoRules& rules);

/// Algorithms 0 and 1 of a pass, appended after cuDNN's list in case none of its rows runs:
/// forward's implicit GEMMs (both deterministic), backward's ALGO_0 (atomics: not
/// deterministic) and ALGO_1 (deterministic), under the call's math type.
std::vector<AlgoPerf> fallback_algos(ConvPass pass, MathType math);

/// The most a timed search may use as workspace: 1 GiB, so that a search on a large layer
/// does not empty the caching allocator for a rarely better algorithm.
inline constexpr size_t kSearchWorkspaceCap = size_t{1} << 30;

/// The workspace of a timed search: the largest of `wanted` (each algorithm's need) within
/// min(kSearchWorkspaceCap, available); algorithms that need more are not timed. 0 when
/// none fits.
size_t search_workspace(std::span<const size_t> wanted, size_t available);

/// What identifies a call for the cache: device, pass, dtype, math type, the scheduler's
/// deterministic mode and the benchmark switch (each changes which algorithms qualify), and
/// the whole geometry (batch, channels, groups, image, grid and kernel sizes, stride,
/// padding, dilation).
struct ConvAlgoKey {
  int device = 0;
  ConvPass pass = ConvPass::kForward;
  DType dtype = DType::Float32;
  MathType math = MathType::kDefault;
  bool benchmark = false;
  bool deterministic = false;
  int nsp = 0;
  int64_t n = 0, c = 0, o = 0, groups = 1;
  detail::Dim3 img{}, grid{}, k{}, s{}, p{}, d{};
  bool operator==(const ConvAlgoKey&) const = default;
};

ConvAlgoKey conv_algo_key(int device, ConvPass pass, DType dtype, MathType math,
                          const detail::ConvGeom& g, bool benchmark, bool deterministic);

struct ConvAlgoKeyHash {
  size_t operator()(const ConvAlgoKey& k) const;
};

/// Chosen algorithms per call, shared by all threads (a mutex around a hash map).
class ConvAlgoCache {
 public:
  std::optional<AlgoChoice> find(const ConvAlgoKey& key) const;
  /// Keeps the first choice made for a key (two threads may race on a first call).
  void insert(const ConvAlgoKey& key, const AlgoChoice& choice);
  size_t size() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::unordered_map<ConvAlgoKey, AlgoChoice, ConvAlgoKeyHash> map_;
};

/// The process's cache (never destroyed: kernels may run until exit).
ConvAlgoCache& conv_algo_cache();

}  // namespace tessera::cuda::cudnn
