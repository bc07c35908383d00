// Choosing and running the algorithm of one cuDNN convolution pass. The first call of a
// key (device, pass, dtype, math type, modes, geometry: algo_cache.h) asks cuDNN for
// candidates, either its heuristics (cudnnGet*Algorithm_v7, nothing runs) or, under
// set_cudnn_benchmark(true), a timed search (cudnnFind*AlgorithmEx) on the call's own buffers,
// which writes the output the call produces anyway. The candidates that qualify
// (cudnn::usable_algos: deterministic ones only under the scheduler's deterministic mode, no
// down-conversion, FMA only for float32 without TF32) run in order until one is supported;
// that one and its workspace size are remembered, so later calls of the key run it at once.
#include <algorithm>
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/cudnn/conv_call.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/scheduler.h"

namespace tessera::cuda {
namespace {

using cudnn::AlgoChoice;
using cudnn::AlgoPerf;
using cudnn::MathType;

// The cuDNN calls of each pass, over the descriptors of a Call and the buffers of a pass.
struct Forward {
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  using Algo = cudnnConvolutionFwdAlgo_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
  static constexpr cudnn::ConvPass kPass = cudnn::ConvPass::kForward;
  static constexpr const char* kRun = "cudnnConvolutionForward";
  static cudnnStatus_t heuristics(const Call& c, int* n, Perf* p) {
    return cudnnGetConvolutionForwardAlgorithm_v7(c.h, c.image.d, c.w.d, c.conv.d, c.grid.d, kCount,
                                                  n, p);
  }
  static cudnnStatus_t find(const Call& c, const Buffers& b, int* n, Perf* p, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionForwardAlgorithmEx(c.h, c.image.d, b.in0, c.w.d, b.in1, c.conv.d,
                                                  c.grid.d, b.out, kCount, n, p, ws, bytes);
  }
  static cudnnStatus_t workspace(const Call& c, Algo a, size_t* bytes) {
    return cudnnGetConvolutionForwardWorkspaceSize(c.h, c.image.d, c.w.d, c.conv.d, c.grid.d, a,
                                                   bytes);
  }
  static cudnnStatus_t run(const Call& c, const Buffers& b, Algo a, void* ws, size_t bytes) {
    return cudnnConvolutionForward(c.h, c.one(), c.image.d, b.in0, c.w.d, b.in1, c.conv.d, a, ws,
                                   bytes, c.zero(), c.grid.d, b.out);
  }
};

struct BackwardData {
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  using Algo = cudnnConvolutionBwdDataAlgo_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
  static constexpr cudnn::ConvPass kPass = cudnn::ConvPass::kBackwardData;
  static constexpr const char* kRun = "cudnnConvolutionBackwardData";
  static cudnnStatus_t heuristics(const Call& c, int* n, Perf* p) {
    return cudnnGetConvolutionBackwardDataAlgorithm_v7(c.h, c.w.d, c.grid.d, c.conv.d, c.image.d,
                                                       kCount, n, p);
  }
  static cudnnStatus_t find(const Call& c, const Buffers& b, int* n, Perf* p, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionBackwardDataAlgorithmEx(c.h, c.w.d, b.in0, c.grid.d, b.in1, c.conv.d,
                                                       c.image.d, b.out, kCount, n, p, ws, bytes);
  }
  static cudnnStatus_t workspace(const Call& c, Algo a, size_t* bytes) {
    return cudnnGetConvolutionBackwardDataWorkspaceSize(c.h, c.w.d, c.grid.d, c.conv.d, c.image.d,
                                                        a, bytes);
  }
  static cudnnStatus_t run(const Call& c, const Buffers& b, Algo a, void* ws, size_t bytes) {
    return cudnnConvolutionBackwardData(c.h, c.one(), c.w.d, b.in0, c.grid.d, b.in1, c.conv.d, a,
                                        ws, bytes, c.zero(), c.image.d, b.out);
  }
};

struct BackwardFilter {
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  using Algo = cudnnConvolutionBwdFilterAlgo_t;
  static constexpr int kCount = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
  static constexpr cudnn::ConvPass kPass = cudnn::ConvPass::kBackwardFilter;
  static constexpr const char* kRun = "cudnnConvolutionBackwardFilter";
  static cudnnStatus_t heuristics(const Call& c, int* n, Perf* p) {
    return cudnnGetConvolutionBackwardFilterAlgorithm_v7(c.h, c.image.d, c.grid.d, c.conv.d, c.w.d,
                                                         kCount, n, p);
  }
  static cudnnStatus_t find(const Call& c, const Buffers& b, int* n, Perf* p, void* ws,
                            size_t bytes) {
    return cudnnFindConvolutionBackwardFilterAlgorithmEx(
        c.h, c.image.d, b.in0, c.grid.d, b.in1, c.conv.d, c.w.d, b.out, kCount, n, p, ws, bytes);
  }
  static cudnnStatus_t workspace(const Call& c, Algo a, size_t* bytes) {
    return cudnnGetConvolutionBackwardFilterWorkspaceSize(c.h, c.image.d, c.grid.d, c.conv.d, c.w.d,
                                                          a, bytes);
  }
  static cudnnStatus_t run(const Call& c, const Buffers& b, Algo a, void* ws, size_t bytes) {
    return cudnnConvolutionBackwardFilter(c.h, c.one(), c.image.d, b.in0, c.grid.d, b.in1, c.conv.d,
                                          a, ws, bytes, c.zero(), c.w.d, b.out);
  }
};

// cuDNN's perf rows as the policy's.
template <class Perf>
std::vector<AlgoPerf> rows(const Perf* perf, int n) {
  std::vector<AlgoPerf> out;
  for (int i = 0; i < n; ++i) {
    const Perf& p = perf[i];
    out.push_back({static_cast<int>(p.algo), p.status == CUDNN_STATUS_SUCCESS, p.memory,
                   p.determinism == CUDNN_DETERMINISTIC, static_cast<MathType>(p.mathType)});
  }
  return out;
}

void set_math(const Call& c, MathType m) {
  check(cudnnSetConvolutionMathType(c.conv.d, static_cast<cudnnMathType_t>(m)), c.op,
        "cudnnSetConvolutionMathType");
}

// A workspace of `bytes` on the device, alive while `keep` is.
void* workspace(size_t bytes, int dev, Tensor& keep) {
  if (bytes == 0) return nullptr;
  keep = Tensor::empty({static_cast<int64_t>(bytes)}, kUInt8, Device::cuda(dev));
  return keep.raw_data();
}

// What a search workspace may take without failing: the device's free memory plus the blocks
// the caching allocator holds unused (it gives those back before failing), within its limit.
size_t available_bytes(int dev, const char* op) {
  size_t free = 0, total = 0;
  TS_CUDA_CHECK(op, cudaMemGetInfo(&free, &total));
  const MemoryStats st = memory_stats(dev);
  int64_t avail = static_cast<int64_t>(free) + st.cached_bytes;
  if (const int64_t limit = memory_limit(dev); limit > 0)
    avail = std::min(avail, limit - st.current_bytes);
  return static_cast<size_t>(std::max<int64_t>(avail, 0));
}

template <class Api>
std::vector<AlgoPerf> heuristic(const Call& c) {
  std::array<typename Api::Perf, Api::kCount> perf{};
  int n = 0;
  check(Api::heuristics(c, &n, perf.data()), c.op, "cudnnGetConvolution*Algorithm_v7");
  return rows(perf.data(), n);
}

// Times every algorithm whose workspace fits cudnn::search_workspace (the largest need within
// 1 GiB and the free memory) on the call's buffers; *searched receives the workspace used.
template <class Api>
std::vector<AlgoPerf> timed(const Call& c, const Buffers& b, size_t* searched) {
  std::vector<size_t> wanted;
  for (int a = 0; a < Api::kCount; ++a) {
    size_t bytes = 0;
    if (Api::workspace(c, static_cast<typename Api::Algo>(a), &bytes) == CUDNN_STATUS_SUCCESS)
      wanted.push_back(bytes);
  }
  *searched = cudnn::search_workspace(wanted, available_bytes(c.dev, c.op));
  Tensor keep;
  void* ws = nullptr;
  try {
    ws = workspace(*searched, c.dev, keep);
  } catch (const OutOfMemoryError&) {  // fragmented: time the algorithms that need none
    *searched = 0;
  }
  std::array<typename Api::Perf, Api::kCount> perf{};
  int n = 0;
  check(Api::find(c, b, &n, perf.data(), ws, *searched), c.op, "cudnnFindConvolution*AlgorithmEx");
  return rows(perf.data(), n);
}

// Runs one candidate under its math type with the workspace it needs (choice.workspace).
template <class Api>
cudnnStatus_t attempt(const Call& c, const Buffers& b, AlgoChoice& choice) {
  set_math(c, choice.math);
  const auto algo = static_cast<typename Api::Algo>(choice.algo);
  const cudnnStatus_t st = Api::workspace(c, algo, &choice.workspace);
  if (st != CUDNN_STATUS_SUCCESS) return st;
  Tensor keep;
  void* ws = workspace(choice.workspace, c.dev, keep);
  return Api::run(c, b, algo, ws, choice.workspace);
}

template <class Api>
bool run_pass(Call& c, const detail::ConvGeom& g, const Buffers& b) {
  const bool bench = cudnn_benchmark(), det = deterministic();
  const cudnn::ConvAlgoKey key =
      cudnn::conv_algo_key(c.dev, Api::kPass, c.dtype, c.types.math, g, bench, det);
  cudnn::ConvAlgoCache& cache = cudnn::conv_algo_cache();
  if (const std::optional<AlgoChoice> hit = cache.find(key)) {
    if (hit->algo == AlgoChoice::kNone) return false;
    set_math(c, hit->math);
    Tensor keep;
    void* ws = workspace(hit->workspace, c.dev, keep);
    check(Api::run(c, b, static_cast<typename Api::Algo>(hit->algo), ws, hit->workspace), c.op,
          Api::kRun);
    return true;
  }
  set_math(c, c.types.math);  // the queries answer for the call's math type
  size_t searched = SIZE_MAX;
  std::vector<AlgoPerf> perf = bench ? timed<Api>(c, b, &searched) : heuristic<Api>(c);
  const std::vector<AlgoPerf> last = cudnn::fallback_algos(Api::kPass, c.types.math);
  perf.insert(perf.end(), last.begin(), last.end());
  for (AlgoChoice choice : cudnn::usable_algos(perf, {c.types.math, det, searched})) {
    const cudnnStatus_t st = attempt<Api>(c, b, choice);
    if (st == CUDNN_STATUS_SUCCESS) {
      cache.insert(key, choice);
      return true;
    }
    if (CUDNN_STATUS_CATEGORY(st) != CUDNN_STATUS_NOT_SUPPORTED) check(st, c.op, Api::kRun);
  }
  cache.insert(key, AlgoChoice{});
  return false;
}

}  // namespace

bool run_forward(Call& c, const detail::ConvGeom& g, const Buffers& b) {
  return run_pass<Forward>(c, g, b);
}
bool run_backward_data(Call& c, const detail::ConvGeom& g, const Buffers& b) {
  return run_pass<BackwardData>(c, g, b);
}
bool run_backward_filter(Call& c, const detail::ConvGeom& g, const Buffers& b) {
  return run_pass<BackwardFilter>(c, g, b);
}

}  // namespace tessera::cuda
