#pragma once
// The benchmark harness behind `tessera bench`: medians of repeated timings, each case
// reported against a peer or limit measured in the same run.
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessera::nn {
class Module;
}

namespace tessera::bench {

/// One result row: {name, value, unit, reference, reference_value, ratio}.
struct Record {
  std::string name;
  double value;
  std::string unit;
  std::string reference;
  double reference_value;
  double ratio;        ///< value relative to the reference, oriented so that higher is better
  std::string target;  ///< the goal, e.g. ">= 0.90"
};

struct Options {
  int repeats = 15;           ///< timed runs per case; the median is reported
  double min_seconds = 0.02;  ///< each timed run loops the case until it lasts this long
};

/// Median seconds per call of fn over opt.repeats runs (after one warm-up).
double median_seconds(const std::function<void()>& fn, const Options& opt);
/// Medians of several functions timed in alternation, run by run, so that machine noise
/// (shared cores, frequency changes) hits each of them alike; used for ratio-to-peer cases.
std::vector<double> median_seconds_interleaved(const std::vector<std::function<void()>>& fns,
                                               const Options& opt);

/// The models of the training cases (`bench train`, `bench gpu`, and the PyTorch scripts in
/// compare/): MLP 784-128-10 with ReLU, and LeNet-5 on 28x28 images.
std::shared_ptr<nn::Module> mlp_model();
std::shared_ptr<nn::Module> lenet5_model();

/// A suite: a name and a function producing records.
struct Suite {
  std::string name;
  std::function<std::vector<Record>(const Options&)> run;
};
const std::vector<Suite>& suites();

/// Prints records as a table, or as JSON when json is true.
void print(const std::vector<Record>& records, bool json);

std::vector<Record> run_core(const Options& opt);
/// `tessera bench scheduler`: auto placement vs fixed, kernel choice vs each kernel forced.
std::vector<Record> run_scheduler(const Options& opt);
/// `tessera bench autograd`: tiny-op chain, matmul backward vs two matmuls, grad-mode cost.
std::vector<Record> run_autograd(const Options& opt);
/// `tessera bench train`: MLP and LeNet-5 training steps, DataLoader overhead.
std::vector<Record> run_train(const Options& opt);
/// `tessera bench gpu`: CUDA kernels against the device's copy bandwidth and cuBLAS, the host
/// cost of a tiny GPU op, training steps on the GPU (DeviceError without a GPU).
std::vector<Record> run_gpu(const Options& opt);

}  // namespace tessera::bench
