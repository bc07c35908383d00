// The main job: train a small CNN on the bundled digits, evaluate on a held-out split, save a
// checkpoint. Everything a user would write with Tessera's training stack, in one file.
#include "demo.h"

#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "tessera/tessera.h"

namespace tessera::demo {
namespace {

namespace F = nn::functional;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int64_t kClasses = 10;

// The bundled data: 64 pixel values in 0..16, then the label.
fs::path find_data(const std::string& given) {
  if (!given.empty()) return given;
  for (fs::path p :
       {fs::path("data/digits.csv.gz"), fs::path(TESSERA_SOURCE_DIR) / "data/digits.csv.gz"})
    if (fs::exists(p)) return p;
  fail<IOError>("demo", "data/digits.csv.gz not found; pass --data <path>");
}

std::shared_ptr<nn::Module> make_model(const std::string& kind) {
  if (kind == "mlp")
    return std::make_shared<nn::Sequential>(
        std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(64, 128),
        std::make_shared<nn::ReLU>(), std::make_shared<nn::Linear>(128, kClasses));
  if (kind != "cnn") fail<ValueError>("demo", "unknown model '{}' (cnn or mlp)", kind);
  return std::make_shared<nn::Sequential>(
      std::make_shared<nn::Conv2d>(1, 16, 3, nn::ConvOptions{.padding = 1}),
      std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Conv2d>(16, 32, 3, nn::ConvOptions{.padding = 1}),
      std::make_shared<nn::ReLU>(), std::make_shared<nn::MaxPool2d>(2),
      std::make_shared<nn::Flatten>(), std::make_shared<nn::Dropout>(0.25),
      std::make_shared<nn::Linear>(32 * 4 * 4, 64), std::make_shared<nn::ReLU>(),
      std::make_shared<nn::Linear>(64, kClasses));
}

// "[#######.....] " for a fraction.
std::string bar(double f, int width = 24) {
  const int full = static_cast<int>(f * width + 0.5);
  return "[" + std::string(full, '#') + std::string(width - full, '.') + "]";
}

double accuracy(nn::Module& model, data::DataLoader& loader) {
  autograd::InferenceMode inference;
  model.eval();
  int64_t right = 0, total = 0;
  for (const data::Example& b : loader) {
    Tensor pred = argmax(model(b[0]), 1);
    right += sum(eq(pred, b[1])).item<int64_t>();
    total += b[1].numel();
  }
  model.train();
  return static_cast<double>(right) / static_cast<double>(total);
}

}  // namespace

double run(const Options& opt) {
  const auto t_start = Clock::now();
  if (opt.device != "cpu") Tensor::empty({1}, kFloat32, Device::cuda(0));  // NotBuiltError
  manual_seed(opt.seed);
  const fs::path data_path = find_data(opt.data);
  Tensor table = data::read_csv(data_path.string(), {.dtype = kFloat32});
  const int64_t n = table.size(0);
  Tensor x = (table.slice(1, 0, 64) / 16.0).reshape({n, 1, 8, 8}).contiguous();
  Tensor y = table.select(1, 64).to(kInt64);
  auto all = std::make_shared<data::TensorDataset>(std::vector<Tensor>{x, y});
  Generator split_gen(opt.seed);
  auto parts = data::random_split_fractions(all, {0.8, 0.2}, split_gen);
  data::DataLoader train(parts[0],
                         {.batch_size = opt.batch_size, .shuffle = true, .seed = opt.seed});
  data::DataLoader test(parts[1], {.batch_size = 256});

  auto model = make_model(opt.model);
  optim::AdamW optimizer(model->parameters(), {.lr = opt.lr, .weight_decay = 1e-4});
  optim::OneCycleLR schedule(
      optimizer, {.max_lr = {opt.lr}, .epochs = opt.epochs, .steps_per_epoch = train.size()});
  fmt::print("tessera demo: {} on {} digits ({} train / {} test), {} parameters\n", opt.model, n,
             parts[0]->size(), parts[1]->size(), [&] {
               int64_t c = 0;
               for (const Tensor& p : model->parameters()) c += p.numel();
               return c;
             }());
  const int64_t total_steps = opt.epochs * train.size();
  int64_t step = 0, seen = 0;
  auto last_print = t_start;
  double loss_avg = 0;
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    int64_t right = 0, count = 0;
    for (const data::Example& b : train) {
      Tensor logits = (*model)(b[0]);
      Tensor loss = F::cross_entropy(logits, b[1]);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      schedule.step();
      ++step;
      seen += b[1].numel();
      loss_avg = step == 1 ? loss.item<double>() : 0.9 * loss_avg + 0.1 * loss.item<double>();
      {
        autograd::NoGradGuard no_grad;
        right += sum(eq(argmax(logits, 1), b[1])).item<int64_t>();
      }
      count += b[1].numel();
      // A live line, redrawn at most ten times a second (and at the end).
      const auto now = Clock::now();
      if (step != total_steps && now - last_print < std::chrono::milliseconds(100)) continue;
      last_print = now;
      const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
      const double eta = secs / static_cast<double>(step) * static_cast<double>(total_steps - step);
      fmt::print(
          "\repoch {:>2}/{} {} step {:>4}/{}  loss {:.4f}  acc {:5.1f}%  {:6.0f} samples/s  ETA "
          "{:4.1f}s ",
          epoch, opt.epochs, bar(static_cast<double>(step) / total_steps), step, total_steps,
          loss_avg, 100.0 * right / count, seen / secs, eta);
      std::fflush(stdout);
    }
  }
  const double acc = accuracy(*model, test);
  const double secs = std::chrono::duration<double>(Clock::now() - t_start).count();
  fmt::print("\ntest accuracy {:.2f}% ({} held-out digits) after {:.1f} s\n", 100 * acc,
             parts[1]->size(), secs);

  fs::create_directories(opt.out);
  const fs::path ckpt = fs::path(opt.out) / "checkpoint.safetensors";
  io::save_checkpoint(ckpt, {.model = model->state_dict(),
                             .optimizer = optimizer.state_dict(),
                             .scheduler = schedule.state_dict(),
                             .rng = io::capture_rng(),
                             .step = step});
  const fs::path metrics = fs::path(opt.out) / "metrics.json";
  {
    std::FILE* f = std::fopen(metrics.c_str(), "w");
    if (!f) fail<IOError>("demo", "cannot write {}", metrics.string());
    fmt::print(f,
               "{{\"model\": \"{}\", \"epochs\": {}, \"steps\": {}, \"test_accuracy\": {:.6f}, "
               "\"seconds\": {:.3f}}}\n",
               opt.model, opt.epochs, step, acc, secs);
    std::fclose(f);
  }
  fmt::print("wrote {} (model, optimizer, scheduler, RNG, step)\nwrote {}\n", ckpt.string(),
             metrics.string());
  return acc;
}

}  // namespace tessera::demo
