#pragma once
// The profiler: records every kernel call of the funnel (op, shapes, dtypes, device,
// implementation, wall time, FLOPs and bytes), user scopes, scheduler decisions and the
// memory timeline per device; prints a summary table and exports a Chrome trace (Perfetto).
// When no session is active it costs one relaxed atomic load per hook.
//
// Kernels on a GPU run asynchronously to the host: there the profiler records a device event
// before and after each kernel (on the stream it is queued on) and reports the device's time;
// the host's wall time of the call is then its launch cost.
//
// Kernels that run inside a backward pass are attributed to the forward op they
// differentiate (OpRecord::backward_of; "mul (backward of exp)" in the summary).
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"
#include "tessera/core/tensor.h"

namespace tessera::profiler {

/// One kernel (or view) call. Times are in ns since the session started (the device's times
/// are placed on that clock by an event the session waits for on the device's first kernel).
struct OpRecord {
  std::string name;  ///< primitive name
  std::string impl;  ///< kernel implementation ("builtin", "blas", ...) or "view"
  Device device;
  std::vector<Shape> shapes;         ///< input shapes (empty when record_shapes is off)
  std::vector<DType> dtypes;         ///< input dtypes (empty when record_shapes is off)
  DType dtype = kFloat32;            ///< dtype the roofline is taken for (first input, else output)
  int thread = 0;                    ///< session thread index (0 = the thread that started it)
  int64_t start_ns = 0, end_ns = 0;  ///< the call on the host (for a GPU kernel: its launch)
  /// When the kernel ran on the device, for kernels timed by device events (GPU kernels); -1
  /// for calls timed by the host.
  int64_t device_start_ns = -1, device_end_ns = -1;
  int stream = -1;  ///< device queue it ran on, 0, 1, ... in order of first use (-1: host-timed)
  double flops = 0, bytes = 0;  ///< from the primitive's cost function (0 when it has none)
  double gflops = 0, gbps = 0;  ///< achieved rates, over seconds()
  /// max(flops / peak FLOP/s, bytes / bandwidth) / wall time; 0 when the device facts are
  /// unknown.
  double roofline = 0;
  std::string decision;     ///< the scheduler's note for this call, if it gave one
  std::string backward_of;  ///< the forward op whose backward ran this call (empty: forward)

  bool device_timed() const { return device_start_ns >= 0; }
  /// Time of the call in seconds: on the device for device-timed kernels, else host wall time.
  double seconds() const {
    return device_timed() ? static_cast<double>(device_end_ns - device_start_ns) * 1e-9
                          : host_seconds();
  }
  /// Host wall time of the call in seconds.
  double host_seconds() const { return static_cast<double>(end_ns - start_ns) * 1e-9; }
};

/// A user scope (profiler::Scope) that closed while the session was active.
struct ScopeRecord {
  std::string name;
  int thread = 0;
  int depth = 0;  ///< nesting depth on its thread (0 = outermost)
  int64_t start_ns = 0, end_ns = 0;
};

/// One point of a device's memory timeline (bytes in use by its allocator).
struct MemorySample {
  Device device;
  int64_t time_ns = 0;
  int64_t delta_bytes = 0;
  int64_t current_bytes = 0;
};

/// A scheduler decision, as text (e.g. chosen device/impl and predicted times).
struct DecisionRecord {
  std::string text;
  int thread = 0;
  int64_t time_ns = 0;
};

struct Options {
  std::string output;          ///< Chrome trace written here on stop (empty: none)
  bool record_shapes = true;   ///< keep input shapes and dtypes of each call
  bool record_memory = true;   ///< keep the memory timeline
  bool print_summary = false;  ///< print summary() to stderr on stop
};

namespace detail {
struct State;
/// Starts the process-wide session of TESSERA_PROFILE (run once when the library loads).
void start_env_session();

/// A point in a device's work queue, for timing kernels that run asynchronously to the host
/// (on CUDA: an event recorded on the current stream).
class DeviceMark {
 public:
  virtual ~DeviceMark() = default;
  /// Whether the work queued before the mark has finished (never blocks).
  virtual bool done() const = 0;
  /// Blocks until done().
  virtual void wait() const = 0;
  /// Milliseconds of device time from `earlier`, a done mark of the same device, to this one.
  virtual double ms_since(const DeviceMark& earlier) const = 0;
  /// The queue (stream) it was recorded on, as a number that names it in this process.
  virtual int64_t queue() const = 0;
};
/// Records a mark on a device's current queue now.
using DeviceMarker = std::unique_ptr<DeviceMark> (*)(Device);
/// Sets how kernels on devices of one type are timed (nullptr: by the host). CUDA's marker is
/// installed from the start; tests install a fake one for the CPU. Set it while no session is
/// active.
void set_device_marker(DeviceType type, DeviceMarker marker);
DeviceMarker device_marker(DeviceType type);
}  // namespace detail

/// A profiling session: starts on construction, stops on stop() or destruction. Only one
/// may be active at a time (ValueError otherwise). An output path that cannot be written is
/// an IOError here, at construction. The records stay readable after stop.
class Session {
 public:
  /// Starts a session (throws ValueError if one is active, IOError if output is unwritable).
  explicit Session(Options options = {});
  /// Stops (writing the trace if an output was given); errors are printed, not thrown.
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// Stops recording and writes the trace to options.output if set. Idempotent.
  void stop();
  /// Whether this session is still recording.
  bool active() const;

  /// Kernel calls in start order.
  std::vector<OpRecord> ops() const;
  /// Closed user scopes in start order.
  std::vector<ScopeRecord> scopes() const;
  /// The memory timeline (all devices) in time order.
  std::vector<MemorySample> memory() const;
  /// Scheduler decisions in time order.
  std::vector<DecisionRecord> decisions() const;
  /// Highest bytes in use on device during the session (allocator view, includes the
  /// memory already in use when it started).
  int64_t memory_peak(Device device) const;

  /// Table of ops sorted by total time (calls, ms, share, mean us, GFLOP/s, GB/s, roofline,
  /// where it ran), then scopes and the memory peak per device. top = 0 shows every op.
  std::string summary(size_t top = 0) const;
  /// Writes the Chrome trace event JSON (opens in Perfetto / chrome://tracing).
  void write_chrome_trace(const std::string& path) const;

 private:
  friend void detail::start_env_session();
  explicit Session(std::shared_ptr<detail::State> state);
  std::shared_ptr<detail::State> state_;
};

namespace detail {
/// Writes the Chrome trace of s to an open stream (stop() uses it for the file it opened).
void write_chrome_trace(const Session& s, std::ostream& os);
}  // namespace detail

/// Whether a session is active (one relaxed atomic load).
bool active();

/// A named range of user code, recorded when a session is active on open and close.
/// Nested scopes and scopes on several threads are fine.
class Scope {
 public:
  /// Opens the scope (one relaxed atomic load when no session is active).
  explicit Scope(std::string_view name);
  /// Closes the scope and records it.
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  uint64_t session_ = 0;  // 0 when no session was active at open
  int depth_ = 0;
  int64_t start_ns_ = 0;
  std::string name_;
};

/// Records a scheduler decision on the calling thread; it is attached to the next kernel
/// call of that thread too. One relaxed atomic load when no session is active.
void note_decision(std::string_view text);

}  // namespace tessera::profiler
