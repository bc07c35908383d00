// A multi-layer perceptron on the bundled 8x8 digits, trained with AdamW: the whole training
// loop (data, model, optimizer, evaluation) in one page.
//
//   mlp [--steps N] [path/to/digits.csv.gz]
#include <tessera/tessera.h>

#include <cstdio>
#include <string>

using namespace tessera;
namespace F = nn::functional;

// Fraction of the examples in `loader` that the model classifies correctly.
double accuracy(nn::Module& model, data::DataLoader& loader) {
  autograd::NoGradGuard no_grad;
  model.eval();
  int64_t right = 0, total = 0;
  for (const data::Example& batch : loader) {
    right += sum(eq(argmax(model(batch[0]), 1), batch[1])).item<int64_t>();
    total += batch[1].numel();
  }
  model.train();
  return static_cast<double>(right) / static_cast<double>(total);
}

int main(int argc, char** argv) {
  int64_t steps = 1000;
  std::string path = "data/digits.csv.gz";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc)
      steps = std::stoll(argv[++i]);
    else
      path = arg;
  }
  manual_seed(0);

  // 1797 rows: 64 pixels in 0..16, then the label. Hold out 20% for testing.
  Tensor table = data::read_csv(path);
  Tensor x = table.slice(1, 0, 64) / 16.0;
  Tensor y = table.select(1, 64).to(kInt64);
  auto dataset = std::make_shared<data::TensorDataset>(std::vector<Tensor>{x, y});
  Generator split_gen(0);
  auto parts = data::random_split_fractions(dataset, {0.8, 0.2}, split_gen);
  data::DataLoader train(parts[0], {.batch_size = 64, .shuffle = true, .seed = 0});
  data::DataLoader test(parts[1], {.batch_size = 512});

  auto model = std::make_shared<nn::Sequential>(
      std::make_shared<nn::Linear>(64, 128), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(128, 64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(64, 10));
  optim::AdamW optimizer(model->parameters(), {.lr = 3e-3, .weight_decay = 1e-4});

  int64_t step = 0;
  while (step < steps) {
    for (const data::Example& batch : train) {
      Tensor loss = F::cross_entropy((*model)(batch[0]), batch[1]);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      if (++step % 100 == 0 || step == steps)
        std::printf("step %4lld  loss %.4f\n", static_cast<long long>(step), loss.item<double>());
      if (step == steps) break;
    }
  }

  const double acc = accuracy(*model, test);
  // Chance is 10%; 50 steps give about 85%, 200 steps about 95%.
  const double needed = steps >= 200 ? 0.93 : steps >= 50 ? 0.80 : 0.20;
  std::printf("test accuracy %.2f%% after %lld steps (needed %.0f%%)\n", 100 * acc,
              static_cast<long long>(steps), 100 * needed);
  if (acc < needed) {
    std::printf("FAIL: test accuracy below %.0f%%\n", 100 * needed);
    return 1;
  }
  std::printf("PASS: test accuracy %.2f%%\n", 100 * acc);
}
