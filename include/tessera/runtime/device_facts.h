#pragma once
// Measured facts about each device (peak FLOP/s, bandwidth, per-op overhead), used by the
// scheduler's cost model and the profiler's roofline fractions. Measured once per machine
// and cached in a small file; tests may inject their own figures.
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"

namespace tessera {

struct DeviceFacts {
  Device device;
  std::string name;                     ///< e.g. "AMD EPYC ... (2 threads)"
  std::map<DType, double> peak_flops;   ///< FLOP/s per dtype, matmul-bound
  double mem_bandwidth = 0;             ///< bytes/s moved by a copy (read + write)
  double host_to_device_bandwidth = 0;  ///< bytes/s (0 for the CPU)
  double device_to_host_bandwidth = 0;  ///< bytes/s (0 for the CPU)
  double transfer_latency = 0;          ///< seconds per host<->device copy (0 for the CPU)
  double op_overhead = 0;               ///< seconds of fixed cost per dispatched op
  bool measured = false;                ///< false when injected by hand

  /// Peak FLOP/s for dtype (falls back to float32's figure, then 0).
  double peak(DType dt) const;
};

/// Facts for a device: injected, else read from the cache file, else measured (and cached).
const DeviceFacts& device_facts(Device device);
/// All devices known to the process (the CPU, plus CUDA devices when built and present).
std::vector<Device> known_devices();
/// Replaces the facts for f.device (tests feed figures instead of measuring).
void set_device_facts(DeviceFacts f);
/// Forgets injected and cached facts and remembered kernel choices, measures again and
/// rewrites the cache file.
void recalibrate();
/// The calibration cache file ($TESSERA_CACHE_DIR, else $XDG_CACHE_HOME/tessera, else
/// ~/.cache/tessera; file calibration.json).
std::string calibration_cache_path();
/// Uses path as the cache file instead of the environment's (empty: back to the environment)
/// and forgets what was loaded, measured or injected, so the next use reads that file.
void set_calibration_cache_path(const std::string& path);
/// Where the facts for device came from: "injected", "cache", "measured", or "" if not yet.
std::string device_facts_source(Device device);

}  // namespace tessera
