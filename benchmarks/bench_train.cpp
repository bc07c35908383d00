// `tessera bench train`: one training step (forward, loss, backward, AdamW) of an MLP and of
// LeNet-5, the cost of building a batch, and what a DataLoader adds to an MLP training loop. The
// same workloads in PyTorch: benchmarks/compare/train_compare.py (it runs this suite too and prints
// the ratios).
#include "bench.h"
#include "tessera/tessera.h"

namespace tessera::bench {
namespace {

namespace F = nn::functional;

// Seconds per training step of model on (x, y).
double step_seconds(nn::Module& model, const Tensor& x, const Tensor& y, const Options& opt) {
  optim::AdamW optimizer(model.parameters(), {.lr = 1e-3});
  auto step = [&] {
    Tensor loss = F::cross_entropy(model(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  };
  return median_seconds(step, opt);
}

// What the loader adds to a training loop: an epoch of MLP steps on shuffled batches from a
// DataLoader with one worker thread (it builds the next batches while the step runs) against
// as many steps on one fixed batch, timed in alternation.
Record loader_overhead(const std::shared_ptr<data::TensorDataset>& ds, const Options& opt) {
  auto model = mlp_model();
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-3});
  auto step = [&](const Tensor& x, const Tensor& y) {
    Tensor loss = F::cross_entropy((*model)(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  };
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

Record step_record(const std::string& name, double seconds) {
  return {name, seconds * 1e3, "ms", "", 0, 0, "PyTorch: benchmarks/compare/train_compare.py"};
}

}  // namespace

std::vector<Record> run_train(const Options& opt) {
  manual_seed(0);
  std::vector<Record> out;
  Tensor x = randn({256, 784}), y = randint(0, 10, {256});
  auto m = mlp_model();
  const double t_mlp = step_seconds(*m, x, y, opt);
  out.push_back(step_record("MLP 784-128-10 batch 256 train step (AdamW)", t_mlp));
  Tensor img = randn({64, 1, 28, 28}), lbl = randint(0, 10, {64});
  auto l = lenet5_model();
  out.push_back(
      step_record("LeNet-5 28x28 batch 64 train step (AdamW)", step_seconds(*l, img, lbl, opt)));
  // The loader's cost per MLP batch: shuffled batches of 256 from an in-memory dataset.
  auto ds = std::make_shared<data::TensorDataset>(
      std::vector<Tensor>{randn({8192, 784}), randint(0, 10, {8192})});
  data::DataLoader loader(ds, {.batch_size = 256, .shuffle = true, .seed = 0});
  const double t_epoch = median_seconds(
      [&] {
        for (const data::Example& b : loader) (void)b;
      },
      opt);
  const double per_batch = t_epoch / static_cast<double>(loader.size());
  out.push_back({"DataLoader batch 256 of 784 floats (shuffled, in memory, 0 workers)",
                 per_batch * 1e3, "ms", "MLP train step", t_mlp * 1e3, per_batch / t_mlp,
                 "<= 0.05"});
  out.push_back(loader_overhead(ds, opt));
  return out;
}

}  // namespace tessera::bench
