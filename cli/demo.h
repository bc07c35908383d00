#pragma once
// `tessera demo`: trains a small CNN (or MLP) on the bundled 8x8 digits with a held-out test
// split, shows live progress, reports test accuracy, and saves a checkpoint.
#include <cstdint>
#include <string>

namespace tessera::demo {

struct Options {
  int64_t epochs = 20;
  int64_t batch_size = 32;
  std::string model = "cnn";  ///< "cnn" or "mlp"
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string out = "tessera-demo";  ///< folder for the checkpoint and metrics
  std::string data;                  ///< digits.csv.gz (default: found next to the binary/repo)
  double lr = 1e-2;
};

/// Runs the job; returns the final test accuracy in [0, 1].
double run(const Options& opt);

}  // namespace tessera::demo
