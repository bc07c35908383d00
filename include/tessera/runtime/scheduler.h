#pragma once
// The scheduler: where (device) and with what (kernel) each primitive call runs. The funnel's
// schedule() (dispatch.h) is its entry point. Explicit devices are always obeyed; under
// Device::auto_() the device with the lowest predicted time (roofline + corrections measured
// so far + transfer of non-resident inputs) wins. Among several kernels on one device, the
// choice is tuned (timed on first sight of a shape bucket), remembered (cache file), or the
// highest priority. See docs/design/scheduler.md.
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tessera/ops/primitive.h"
#include "tessera/runtime/device_facts.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {

/// Sets the process-wide default device: creation ops without a "device" attribute use it,
/// and under Device::auto_() every (non in-place) op is placed by the cost model.
void set_default_device(Device device);
/// Same, from a name ("cpu", "cuda:1", "auto"); throws DeviceError for unknown names.
void set_default_device(const std::string& name);
/// The process-wide default device (Device::cpu() unless changed).
Device default_device();

/// Turns tuning on or off (TESSERA_TUNE=1): time each candidate kernel on first sight.
void set_tuning(bool on);
bool tuning();
/// Deterministic mode (TESSERA_DETERMINISTIC=1): no tuning; choices depend only on kernel
/// priorities and the cache snapshot loaded at start, so runs are reproducible.
void set_deterministic(bool on);
bool deterministic();
/// Prints every decision to stderr (TESSERA_SCHEDULER_LOG=1).
void set_scheduler_log(bool on);
bool scheduler_log();

/// Predicted time of one call on one device.
struct PlacementEstimate {
  Device device;
  double compute_s = 0;   ///< roofline + fixed overhead, times the measured correction
  double transfer_s = 0;  ///< moving non-resident inputs there
  double total_s = 0;
};

/// A placement decision and the estimates it was taken from.
struct Decision {
  Device device;
  std::vector<PlacementEstimate> estimates;  ///< one per candidate, in candidate order
};

/// Roofline estimate of a call on a device: max(flops / peak, bytes / bandwidth) + overhead.
double roofline_seconds(const DeviceFacts& facts, const Cost& cost, DType dtype);

/// Places a call among candidate devices, all inputs being resident on input_device. Pure
/// except for the corrections measured so far (note_measured_time). CPU wins ties: another
/// device must be predicted at least 10% faster.
Decision decide_placement(const Primitive& p, Inputs inputs, const Attrs& attrs,
                          std::span<const DeviceFacts> candidates, Device input_device);

/// Records a measured time of a call on device: later estimates for the same (primitive,
/// shape bucket, dtype, device) are scaled by measured / predicted.
void note_measured_time(const Primitive& p, Inputs inputs, const Attrs& attrs, Device device,
                        double seconds);

/// The kernel the scheduler runs for this call on device (null when none supports it).
const Kernel* choose_kernel(const Primitive& p, Inputs inputs, const Attrs& attrs, Device device);

/// The key of remembered choices: "prim|dtype|device|buckets" (buckets = round(log2(dim))).
std::string choice_key(const Primitive& p, Inputs inputs, const Attrs& attrs, Device device);
/// Remembered kernel choices (key -> impl): the cache snapshot plus what was tuned since.
std::map<std::string, std::string> remembered_choices();
/// Forgets corrections and remembered choices; the next choice reloads the cache snapshot.
void reset_scheduler_state();

namespace detail {
/// Whether the funnel should time kernels and report them (auto placement among devices).
bool scheduler_wants_timing();
}  // namespace detail

}  // namespace tessera
