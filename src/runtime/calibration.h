#pragma once
// Private glue between the device facts (which own the calibration cache file) and the
// scheduler (which keeps its remembered kernel choices in the same file).
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "tessera/core/device.h"

namespace tessera::detail {

/// The remembered kernel choices (key -> impl) read from the cache file; empty when none.
std::map<std::string, std::string> cached_choices();
/// Adds or replaces one remembered choice and rewrites the cache file.
void store_choice(const std::string& key, const std::string& impl);
/// True while this thread measures device facts: the funnel must not ask for facts then.
bool calibrating();
/// known_devices() without a copy (the list is fixed for the life of the process).
const std::vector<Device>& known_devices_ref();
/// The shortest of `reps` host-clock timings of fn, in seconds (the device facts' measure).
double best_seconds(int reps, const std::function<void()>& fn);
/// Implemented by the scheduler: forget everything that came from the old cache file.
void scheduler_on_cache_reset();

}  // namespace tessera::detail
