// A small convolutional network on the bundled 8x8 digits: two conv blocks and a linear
// classifier, trained with AdamW under a one-cycle learning-rate schedule.
//
//   cnn [--steps N] [path/to/digits.csv.gz]
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

  // 1797 rows: 64 pixels in 0..16, then the label. Images are (1, 8, 8); 20% held out.
  Tensor table = data::read_csv(path);
  const int64_t n = table.size(0);
  Tensor x = (table.slice(1, 0, 64) / 16.0).reshape({n, 1, 8, 8}).contiguous();
  Tensor y = table.select(1, 64).to(kInt64);
  auto dataset = std::make_shared<data::TensorDataset>(std::vector<Tensor>{x, y});
  Generator split_gen(0);
  auto parts = data::random_split_fractions(dataset, {0.8, 0.2}, split_gen);
  data::DataLoader train(parts[0], {.batch_size = 64, .shuffle = true, .seed = 0});
  data::DataLoader test(parts[1], {.batch_size = 512});

  using nn::Conv2d, nn::ConvOptions;
  auto model = std::make_shared<nn::Sequential>(
      std::make_shared<Conv2d>(1, 16, 3, ConvOptions{.padding = 1}),     // (16, 8, 8)
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),  // (16, 4, 4)
      std::make_shared<Conv2d>(16, 32, 3, ConvOptions{.padding = 1}),    // (32, 4, 4)
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),  // (32, 2, 2)
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(32 * 2 * 2, 10));
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-2, .weight_decay = 1e-4});
  optim::OneCycleLR schedule(optimizer, {.max_lr = {1e-2}, .total_steps = steps});

  int64_t step = 0;
  while (step < steps) {
    for (const data::Example& batch : train) {
      Tensor loss = F::cross_entropy((*model)(batch[0]), batch[1]);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      schedule.step();
      if (++step % 100 == 0 || step == steps)
        std::printf("step %4lld  loss %.4f  lr %.5f\n", static_cast<long long>(step),
                    loss.item<double>(), optimizer.param_groups()[0].lr());
      if (step == steps) break;
    }
  }

  const double acc = accuracy(*model, test);
  // Chance is 10%; 100 steps give about 94%, 300 steps about 97%.
  const double needed = steps >= 300 ? 0.95 : steps >= 100 ? 0.90 : steps >= 30 ? 0.70 : 0.20;
  std::printf("test accuracy %.2f%% after %lld steps (needed %.0f%%)\n", 100 * acc,
              static_cast<long long>(steps), 100 * needed);
  if (acc < needed) {
    std::printf("FAIL: test accuracy below %.0f%%\n", 100 * needed);
    return 1;
  }
  std::printf("PASS: test accuracy %.2f%%\n", 100 * acc);
}
