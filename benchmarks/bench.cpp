#include "bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

namespace tessera::bench {

double median_seconds(const std::function<void()>& fn, const Options& opt) {
  using clock = std::chrono::steady_clock;
  fn();  // warm-up: caches, allocator, lazy initialization
  // Calibrate how many calls make one timed run last at least min_seconds.
  int64_t calls = 1;
  for (;;) {
    auto t0 = clock::now();
    for (int64_t i = 0; i < calls; ++i) fn();
    double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s >= opt.min_seconds || calls >= (int64_t{1} << 30)) break;
    calls *= s > 0 ? std::clamp<int64_t>(static_cast<int64_t>(opt.min_seconds / s * 1.2), 2, 100) : 100;
  }
  std::vector<double> times;
  for (int r = 0; r < opt.repeats; ++r) {
    auto t0 = clock::now();
    for (int64_t i = 0; i < calls; ++i) fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count() / static_cast<double>(calls));
  }
  std::nth_element(times.begin(), times.begin() + static_cast<long>(times.size() / 2), times.end());
  return times[times.size() / 2];
}

const std::vector<Suite>& suites() {
  static const std::vector<Suite> s{{"core", run_core}, {"scheduler", run_scheduler}};
  return s;
}

void print(const std::vector<Record>& records, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Record& r : records)
      out.push_back({{"name", r.name}, {"value", r.value}, {"unit", r.unit}, {"reference", r.reference},
                     {"reference_value", r.reference_value}, {"ratio", r.ratio}, {"target", r.target}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  fmt::print("{:<34} {:>12} {:<7} {:<34} {:>12} {:>7} {:>8}\n", "case", "value", "unit", "reference",
             "ref value", "ratio", "target");
  for (const Record& r : records)
    fmt::print("{:<34} {:>12.4g} {:<7} {:<34} {:>12.4g} {:>7.3f} {:>8}\n", r.name, r.value, r.unit,
               r.reference, r.reference_value, r.ratio, r.target);
}

}  // namespace tessera::bench
