#include "bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tessera/tessera.h"

namespace tessera::bench {

namespace {
using clock = std::chrono::steady_clock;

// Calls of fn that make one timed run last at least min_seconds (after a warm-up call).
int64_t calibrate_calls(const std::function<void()>& fn, const Options& opt) {
  fn();  // warm-up: caches, allocator, lazy initialization
  int64_t calls = 1;
  for (;;) {
    auto t0 = clock::now();
    for (int64_t i = 0; i < calls; ++i) fn();
    double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s >= opt.min_seconds || calls >= (int64_t{1} << 30)) return calls;
    calls *=
        s > 0 ? std::clamp<int64_t>(static_cast<int64_t>(opt.min_seconds / s * 1.2), 2, 100) : 100;
  }
}

double seconds_per_call(const std::function<void()>& fn, int64_t calls) {
  auto t0 = clock::now();
  for (int64_t i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double>(clock::now() - t0).count() / static_cast<double>(calls);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}
}  // namespace

double median_seconds(const std::function<void()>& fn, const Options& opt) {
  return median_seconds_interleaved({fn}, opt)[0];
}

std::vector<double> median_seconds_interleaved(const std::vector<std::function<void()>>& fns,
                                               const Options& opt) {
  std::vector<int64_t> calls;
  for (const auto& fn : fns) calls.push_back(calibrate_calls(fn, opt));
  std::vector<std::vector<double>> times(fns.size());
  for (int r = 0; r < opt.repeats; ++r)
    for (size_t i = 0; i < fns.size(); ++i) times[i].push_back(seconds_per_call(fns[i], calls[i]));
  std::vector<double> out;
  for (auto& t : times) out.push_back(median(std::move(t)));
  return out;
}

std::shared_ptr<nn::Module> mlp_model() {
  return std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(784, 128),
                                          std::make_shared<nn::ReLU>(),
                                          std::make_shared<nn::Linear>(128, 10));
}

std::shared_ptr<nn::Module> lenet5_model() {
  return std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(1, 6, 5, nn::ConvOptions{.padding = 2}),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
      std::make_shared<nn::Conv2d>(6, 16, 5), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::MaxPool2d>(2), std::make_shared<nn::Flatten>(),
      std::make_shared<nn::Linear>(16 * 5 * 5, 120), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(120, 84), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(84, 10));
}

const std::vector<Suite>& suites() {
  static const std::vector<Suite> s{{"core", run_core},
                                    {"scheduler", run_scheduler},
                                    {"autograd", run_autograd},
                                    {"train", run_train},
                                    {"gpu", run_gpu}};
  return s;
}

void print(const std::vector<Record>& records, bool json) {
  if (json) {
    nlohmann::json out = nlohmann::json::array();
    for (const Record& r : records)
      out.push_back({{"name", r.name},
                     {"value", r.value},
                     {"unit", r.unit},
                     {"reference", r.reference},
                     {"reference_value", r.reference_value},
                     {"ratio", r.ratio},
                     {"target", r.target}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  fmt::print("{:<34} {:>12} {:<7} {:<34} {:>12} {:>7} {:>8}\n", "case", "value", "unit",
             "reference", "ref value", "ratio", "target");
  for (const Record& r : records)
    fmt::print("{:<34} {:>12.4g} {:<7} {:<34} {:>12.4g} {:>7.3f} {:>8}\n", r.name, r.value, r.unit,
               r.reference, r.reference_value, r.ratio, r.target);
}

}  // namespace tessera::bench
