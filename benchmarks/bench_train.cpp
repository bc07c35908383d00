// `tessera bench train`: one training step (forward, loss, backward, AdamW) of an MLP and of
// LeNet-5 (also under bfloat16 autocast with a GradScaler), the cost of building a batch, and
// what a DataLoader adds to an MLP training loop. The
// same workloads in PyTorch: benchmarks/compare/train_compare.py (it runs this suite too and prints
// the ratios).
#include "bench.h"
#include "tessera/tessera.h"

namespace tessera::bench {
namespace {

namespace F = nn::functional;

// One training step of model on (x, y): forward, loss, backward, update.
void train_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& x, const Tensor& y) {
  Tensor loss = F::cross_entropy(model(x), y);
  optimizer.zero_grad();
  loss.backward();
  optimizer.step();
}

// Seconds per AdamW training step of model on (x, y).
double step_seconds(nn::Module& model, const Tensor& x, const Tensor& y, const Options& opt) {
  optim::AdamW optimizer(model.parameters(), {.lr = 1e-3});
  return median_seconds([&] { train_step(model, optimizer, x, y); }, opt);
}

// What the loader adds to a training loop: an epoch of MLP steps on shuffled batches from a
// DataLoader with one worker thread (it builds the next batches while the step runs) against
// as many steps on one fixed batch, timed in alternation.
Record loader_overhead(const std::shared_ptr<data::TensorDataset>& ds, const Options& opt) {
  auto model = mlp_model();
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-3});
  auto step = [&](const Tensor& x, const Tensor& y) { train_step(*model, optimizer, x, y); };
  data::DataLoader loader(ds, {.batch_size = 256, .shuffle = true, .num_workers = 1, .seed = 0});
  const Tensor x = randn({256, 784}), y = randint(0, 10, {256});
  const auto t = median_seconds_interleaved({[&] {
                                               for (const data::Example& b : loader)
                                                 step(b[0], b[1]);
                                             },
                                             [&] {
                                               for (int64_t i = 0; i < loader.size(); ++i)
                                                 step(x, y);
                                             }},
                                            opt);
  const auto steps = static_cast<double>(loader.size());
  return {"DataLoader overhead per MLP step, 1 worker (epoch of shuffled batches)",
          (t[0] - t[1]) / steps * 1e3,
          "ms",
          "MLP train step on a fixed batch",
          t[1] / steps * 1e3,
          (t[0] - t[1]) / t[1],
          ""};
}

// A mixed-precision step: the forward under bfloat16 autocast, the loss scaled, the update
// through a GradScaler (one inf/NaN probe per gradient, one host read).
void amp_train_step(nn::Module& model, optim::Optimizer& optimizer, optim::GradScaler& scaler,
                    const Tensor& x, const Tensor& y) {
  Tensor loss;
  {
    amp::Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16});
    loss = F::cross_entropy(model(x), y);
  }
  optimizer.zero_grad();
  scaler.scale(loss).backward();
  scaler.step(optimizer);
  scaler.update();
}

// The bfloat16-autocast step against the float32 step of the same model, timed in alternation.
// On CPUs without bfloat16 arithmetic the 16-bit GEMMs run as float32 BLAS on converted copies,
// so this measures what the casts and conversions cost, not a speed-up.
Record amp_record(const std::string& name, nn::Module& model, const Tensor& x, const Tensor& y,
                  const Options& opt) {
  optim::AdamW optimizer(model.parameters(), {.lr = 1e-3});
  optim::GradScaler scaler;
  const auto t =
      median_seconds_interleaved({[&] { amp_train_step(model, optimizer, scaler, x, y); },
                                  [&] { train_step(model, optimizer, x, y); }},
                                 opt);
  return {name + " train step, bfloat16 autocast + GradScaler (AdamW)",
          t[0] * 1e3,
          "ms",
          "float32 step (timed in alternation)",
          t[1] * 1e3,
          t[1] / t[0],
          ""};
}

Record step_record(const std::string& name, double seconds) {
  return {name, seconds * 1e3, "ms", "", 0, 0, "PyTorch: benchmarks/compare/train_compare.py"};
}

}  // namespace

std::vector<Record> run_train(const Options& opt) {
  manual_seed(0);
  std::vector<Record> out;
  Tensor x = randn({256, 784}), y = randint(0, 10, {256});
  auto m = mlp_model();
  out.push_back(
      step_record("MLP 784-128-10 batch 256 train step (AdamW)", step_seconds(*m, x, y, opt)));
  Tensor img = randn({64, 1, 28, 28}), lbl = randint(0, 10, {64});
  auto l = lenet5_model();
  out.push_back(
      step_record("LeNet-5 28x28 batch 64 train step (AdamW)", step_seconds(*l, img, lbl, opt)));
  out.push_back(amp_record("MLP 784-128-10 batch 256", *m, x, y, opt));
  out.push_back(amp_record("LeNet-5 28x28 batch 64", *l, img, lbl, opt));
  // The loader's cost per MLP batch: shuffled batches of 256 from an in-memory dataset, timed
  // in alternation with as many MLP steps so that machine noise hits both alike.
  auto ds = std::make_shared<data::TensorDataset>(
      std::vector<Tensor>{randn({8192, 784}), randint(0, 10, {8192})});
  data::DataLoader loader(ds, {.batch_size = 256, .shuffle = true, .seed = 0});
  optim::AdamW optimizer(m->parameters(), {.lr = 1e-3});
  const auto t = median_seconds_interleaved({[&] {
                                               for (const data::Example& b : loader) (void)b;
                                             },
                                             [&] {
                                               for (int64_t i = 0; i < loader.size(); ++i)
                                                 train_step(*m, optimizer, x, y);
                                             }},
                                            opt);
  const auto batches = static_cast<double>(loader.size());
  out.push_back({"DataLoader batch 256 of 784 floats (shuffled, in memory, 0 workers)",
                 t[0] / batches * 1e3, "ms", "MLP train step (timed in alternation)",
                 t[1] / batches * 1e3, t[0] / t[1], "<= 0.05"});
  out.push_back(loader_overhead(ds, opt));
  return out;
}

}  // namespace tessera::bench
