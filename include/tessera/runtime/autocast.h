#pragma once
// Automatic mixed precision (torch.autocast): inside a scope, matmul-like primitives run in a
// 16-bit dtype, reductions, softmax and the functions that overflow in 16 bits run in
// float32, and mixed floating inputs of the other listed primitives meet at the widest dtype.
// One policy table, applied by the funnel's autocast layer (docs/design/autocast.md).
//
//   {
//     amp::Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16});
//     Tensor logits = model->forward(x);            // bfloat16 (matmul lowered)
//     Tensor loss = nn::cross_entropy(logits, y);  // float32 (log_softmax upcast)
//   }
//   loss.backward();  // float32 parameters get float32 gradients
//
// The state is per thread and per device type (CPU, CUDA), like PyTorch's: a scope affects
// only the calling thread and only inputs that live on its device type.
//
// Inside a region (an outermost Autocast scope, or Python's `with autocast`), the 16-bit casts
// of parameters (leaves that require grad, or views of them such as linear's w.t()) are cached:
// a weight used by several ops is cast once per region. The cache is cleared when the region
// ends; an in-place update of a parameter inside the region is seen (its version is checked).
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"
#include "tessera/core/tensor.h"

namespace tessera {
struct Primitive;
}

namespace tessera::amp {

/// One device type's autocast state on this thread.
struct AutocastState {
  bool enabled = false;
  DType dtype = kBFloat16;    ///< the 16-bit dtype "lower" primitives run in
  bool cache_enabled = true;  ///< keep the casts of parameters for the region
  bool operator==(const AutocastState&) const = default;
};

/// What an Autocast scope sets. dtype: empty keeps the device's current autocast dtype (at
/// first bfloat16 on the CPU, float16 on CUDA, as PyTorch), so a nested scope inherits it.
struct AutocastOptions {
  DeviceType device = DeviceType::CPU;
  std::optional<DType> dtype;
  bool enabled = true;
  bool cache_enabled = true;
};

/// Sets one device type's autocast state for its scope (this thread only) and restores the
/// previous state on exit. Nestable; enabled = false turns autocast off inside. Opens a
/// region (see the top). Throws ValueError for DeviceType::Auto and DTypeError for a dtype
/// other than float16/bfloat16.
class Autocast {
 public:
  explicit Autocast(AutocastOptions options = {});
  ~Autocast();
  Autocast(const Autocast&) = delete;
  Autocast& operator=(const Autocast&) = delete;

 private:
  DeviceType device_;
  AutocastState prev_;
};

/// The state of device type `device` on this thread (DeviceType::Auto: never enabled).
AutocastState autocast_state(DeviceType device);
/// Sets it without a scope (the Python context manager restores the previous state itself).
/// Validates like Autocast.
void set_autocast_state(DeviceType device, AutocastState state);
bool is_autocast_enabled(DeviceType device = DeviceType::CPU);
DType autocast_dtype(DeviceType device = DeviceType::CPU);

/// Autocast regions on this thread: the cast cache lives while at least one is open. Autocast
/// scopes open one; so does the Python context manager. decrement returns the depth left and
/// clears the cache when it reaches 0.
int autocast_increment_nesting();
int autocast_decrement_nesting();
/// Drops the cached casts of this thread.
void clear_autocast_cache();
/// How many casts this thread's cache holds (for tests and diagnostics).
size_t autocast_cache_size();

/// Every device type's state on this thread, e.g. to run code later under the autocast
/// state of now (activation checkpointing recomputes the forward this way).
using AutocastSnapshot = std::array<AutocastState, 2>;  // CPU, CUDA
AutocastSnapshot autocast_snapshot();

/// Sets every device type's state for its scope; the previous states come back on exit.
class AutocastStateGuard {
 public:
  explicit AutocastStateGuard(const AutocastSnapshot& states);
  ~AutocastStateGuard();
  AutocastStateGuard(const AutocastStateGuard&) = delete;
  AutocastStateGuard& operator=(const AutocastStateGuard&) = delete;

 private:
  AutocastSnapshot prev_;
};

/// Autocast off for every device type in its scope. The autograd engine runs backward under
/// it, so backward ops run in the dtypes autocast chose for their forward ops (PyTorch's
/// behaviour), and the autocast layer runs the layers below it under it.
class NoAutocast : public AutocastStateGuard {
 public:
  NoAutocast();
};

/// What autocast does to a primitive's floating inputs on an enabled device type.
enum class CastPolicy : uint8_t {
  Keep,     ///< nothing: the primitive runs in its inputs' dtypes
  Lower,    ///< float32 (and 16-bit) inputs become the autocast dtype (float64 stays)
  Float32,  ///< float16/bfloat16 inputs become float32 (an explicit "dtype" attr wins)
  Promote,  ///< all floating inputs become the widest of their dtypes
};
/// The policy of the primitive called `primitive` (Keep when it is not in the table).
CastPolicy cast_policy(std::string_view primitive);
/// Whether the autocast layer will bring these inputs of `primitive` to one dtype (its policy
/// is Lower or Promote and applies to every one of them on this thread). Public ops whose
/// primitive needs equal dtypes ask this before promoting or refusing mixed dtypes: under
/// autocast they pass the inputs on as they are and the funnel casts once, as PyTorch's
/// autocast casts before an op's own dtype checks.
bool unifies(const Primitive& primitive, std::initializer_list<Tensor> inputs);
std::string_view policy_name(CastPolicy p);

}  // namespace tessera::amp
