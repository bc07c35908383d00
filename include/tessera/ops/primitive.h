#pragma once
// The primitive table: one record per primitive with shape/dtype inference, cost, autodiff
// rules and the kernels each backend registered. Adding a primitive = one entry + kernels.
#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/ops/attrs.h"

namespace tessera {

/// Family of a primitive; drives generic handling (tests, profiler, export).
enum class PrimKind : uint8_t {
  Unary,
  Binary,
  Ternary,
  Reduction,
  Scan,
  View,
  Copy,
  Matmul,
  Indexing,
  Shape,
  Sort,
  Random,
  Creation,
  Other
};

/// Output shape and dtype, as inferred before any kernel runs.
struct TensorMeta {
  Shape shape;
  DType dtype;
};

/// Work of one call: used by the profiler (achieved rates) and the scheduler (roofline).
struct Cost {
  double flops = 0;
  double bytes = 0;
};

using Inputs = std::span<const Tensor>;
using Outputs = std::span<Tensor>;

/// Validates inputs and attrs (throwing a clear Error) and returns the output metas.
using InferFn = std::vector<TensorMeta> (*)(Inputs, const Attrs&);
/// FLOPs and bytes of a call with these inputs and outputs.
using CostFn = Cost (*)(Inputs, std::span<const Tensor>, const Attrs&);
/// Computes outputs (already allocated per InferFn) from inputs.
using KernelFn = void (*)(Inputs, Outputs, const Attrs&);
/// Whether a kernel applies to these inputs (dtype, layout, size...).
using SupportsFn = bool (*)(Inputs, const Attrs&);
/// A view primitive builds its outputs directly as views of its inputs (no kernel, no copy).
using ViewFn = std::vector<Tensor> (*)(Inputs, const Attrs&);

/// Autodiff rules, filled by the autograd layer. Written with tensor ops so they compose.
using VjpFn = std::function<std::vector<Tensor>(Inputs inputs, Inputs outputs, Inputs cotangents,
                                                const Attrs&)>;
using JvpFn = std::function<std::vector<Tensor>(Inputs inputs, Inputs outputs, Inputs tangents,
                                                const Attrs&)>;
using BatchFn = std::function<std::vector<Tensor>(Inputs inputs, std::span<const int64_t> bdims,
                                                  const Attrs&, std::vector<int64_t>& out_bdims)>;

/// One implementation of a primitive on one device type.
struct Kernel {
  DeviceType device = DeviceType::CPU;
  std::string_view impl;  ///< "builtin", "blas", "onednn", "cublas", ...
  KernelFn fn = nullptr;
  SupportsFn supports = nullptr;  ///< null = supports everything
  int priority = 0;               ///< higher wins when several support a call
};

/// Trait bits of a primitive.
enum PrimTraits : uint32_t {
  kNoTraits = 0,
  kMutatesInput0 = 1u << 0,      ///< writes into inputs[0] (copy_, index_put_); no new output
  kNonDifferentiable = 1u << 1,  ///< outputs carry no gradient (comparisons, argmax, ...)
  kRandom = 1u << 2,             ///< consumes generator state
  /// Output sizes depend on the data (unique, nonzero): infer gives a placeholder shape, and
  /// the kernel replaces the output (a prefix view via shrink_output, or a new tensor).
  kDynamicShape = 1u << 3,
  /// Inputs may live on different devices (copy_ between the CPU and a GPU): the call runs on
  /// the non-CPU side and its kernel moves the data itself.
  kCrossDevice = 1u << 4,
  /// The outputs after the first are statistics the backward reuses (layer_norm's mean and
  /// rstd). They stay differentiable, but a backward step where nothing reached them gives
  /// the vjp rule undefined cotangents for them (zero) instead of zero tensors, so the rule
  /// skips their terms: they are almost never used, and the terms cost full passes.
  kAuxOutputs = 1u << 5,
};

/// For kDynamicShape kernels: out becomes its first n elements along dim 0 (same storage).
inline void shrink_output(Tensor& out, int64_t n) {
  Shape s = out.shape();
  s[0] = n;
  out = Tensor::make(out.storage(), std::move(s), out.strides(), out.offset(), out.dtype());
}

/// What a vjp rule does not read, so the autograd node need not keep it (and an in-place
/// change to it later is no error). Unkept tensors reach the rule as zero stand-ins of the
/// right shape and dtype; the rule checker feeds the same stand-ins, so a wrong claim fails.
enum VjpSkips : uint8_t {
  kVjpReadsAll = 0,
  kVjpSkipsFloatInputs = 1u << 0,  ///< values of floating inputs (indices are always kept)
  kVjpSkipsOutputs = 1u << 1,
};

struct Primitive {
  std::string name;
  PrimKind kind = PrimKind::Other;
  uint32_t traits = kNoTraits;
  InferFn infer = nullptr;
  CostFn cost = nullptr;
  ViewFn view = nullptr;  ///< set for view primitives instead of kernels
  VjpFn vjp;
  JvpFn jvp;
  BatchFn batch;
  uint8_t vjp_skips = kVjpReadsAll;
  std::vector<Kernel> kernels;

  bool has(PrimTraits t) const { return (traits & t) != 0; }
  /// The best kernel for this call on device type dt, or null when none applies.
  const Kernel* find_kernel(DeviceType dt, Inputs in, const Attrs& a) const;
};

/// All primitives, by name. Addresses are stable for the life of the process.
class Registry {
 public:
  /// Adds a primitive; throws if the name exists.
  Primitive& define(Primitive p);
  /// The primitive called name; throws ValueError if unknown.
  Primitive& get(std::string_view name);
  const Primitive* find(std::string_view name) const;
  /// Registers a kernel for an existing primitive.
  void add_kernel(std::string_view prim, Kernel k);
  const std::deque<Primitive>& all() const { return prims_; }

 private:
  std::deque<Primitive> prims_;
};

/// The process-wide registry, populated on first use by every op family and backend.
Registry& registry();

/// Looks up a primitive once and caches it: `static const Primitive& p = prim("add");`
inline Primitive& prim(std::string_view name) { return registry().get(name); }

}  // namespace tessera
