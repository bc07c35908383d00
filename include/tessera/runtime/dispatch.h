#pragma once
// The single funnel every primitive call goes through. Layers hook in, in a fixed order:
// autocast -> vmap -> tracing -> autograd -> scheduler -> profiler -> kernel.
#include <cstdint>
#include <vector>

#include "tessera/ops/primitive.h"

namespace tessera {

/// Runs a primitive through every active layer and returns its outputs.
std::vector<Tensor> dispatch(const Primitive& p, Inputs inputs, const Attrs& attrs = {});
std::vector<Tensor> dispatch(const Primitive& p, std::initializer_list<Tensor> inputs,
                             const Attrs& attrs = {});
/// Convenience for single-output primitives.
Tensor dispatch1(const Primitive& p, Inputs inputs, const Attrs& attrs = {});
Tensor dispatch1(const Primitive& p, std::initializer_list<Tensor> inputs, const Attrs& attrs = {});

/// The hookable layers of the funnel, in the order they run. Autocast comes first: its casts
/// are ordinary ops that the layers below batch, trace and record (docs/design/autocast.md).
enum class Layer : uint8_t { Autocast = 0, Vmap, Tracing, Autograd, Profiler, kCount };

/// A layer handler. It does its work and calls redispatch(p, in, attrs, layer) to continue
/// with the layers below it.
using LayerFn = std::vector<Tensor> (*)(const Primitive&, Inputs, const Attrs&);

/// Installs the handler of a layer (the layer's own module does this once).
void set_layer_handler(Layer layer, LayerFn fn);
LayerFn layer_handler(Layer layer);
/// Turns a layer on or off for the calling thread (e.g. grad mode, an active vmap level).
void set_layer_active(Layer layer, bool on);
bool layer_active(Layer layer);
/// Continues the call with the layers below `from`.
std::vector<Tensor> redispatch(const Primitive& p, Inputs inputs, const Attrs& attrs, Layer from);

/// The forward op whose backward is running on this thread (empty in forward code). The
/// autograd engine sets it around each backward step; the profiler attributes the kernels
/// that run meanwhile to that op.
std::string_view backward_op();
void set_backward_op(std::string_view op);

/// Observer for the profiler layer: called after each kernel with its wall time.
struct KernelEvent {
  const Primitive* prim;
  Inputs inputs;
  std::span<const Tensor> outputs;
  const Attrs* attrs;
  const Kernel* kernel;  ///< null for view primitives
  Device device;
  int64_t start_ns, end_ns;
  int64_t begin_mark = -1;  ///< what the KernelBegin hook returned for this call (-1: none)
};
using KernelObserver = void (*)(const KernelEvent&);
/// Called just before a kernel runs (not for views), on its device; what it returns comes
/// back in KernelEvent::begin_mark. The profiler records a device event here, so that kernels
/// queued asynchronously on a GPU are timed by the device, not by their launch.
using KernelBegin = int64_t (*)(Device);
/// Installs the observer that the profiler layer reports to (null turns reporting off), and
/// optionally the hook called before each kernel.
void set_kernel_observer(KernelObserver obs, KernelBegin begin = nullptr);

/// Chooses the device and kernel for a call (the scheduler's entry point; explicit placement
/// always wins). Throws DeviceError for mixed devices and NotImplementedError when no kernel
/// supports the call.
struct Placement {
  Device device;
  const Kernel* kernel;
};
Placement schedule(const Primitive& p, Inputs inputs, const Attrs& attrs);

}  // namespace tessera
