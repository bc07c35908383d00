// A checkpoint holds everything a run needs: stopping at step k, saving, loading into fresh
// objects and training on to step n gives bitwise the same weights as never stopping.
#include <gtest/gtest.h>

#include <filesystem>

#include "tessera/tessera.h"

namespace tessera {
namespace {

namespace F = nn::functional;

struct TrainRun {
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::AdamW> opt;
  std::unique_ptr<optim::StepLR> sched;
  TrainRun() {
    model = std::make_shared<nn::Sequential>(
        std::make_shared<nn::Linear>(6, 16), std::make_shared<nn::ReLU>(),
        std::make_shared<nn::Dropout>(0.3), std::make_shared<nn::Linear>(16, 3));
    opt = std::make_unique<optim::AdamW>(model->parameters(), optim::AdamWOptions{.lr = 1e-2});
    sched = std::make_unique<optim::StepLR>(*opt, 2, 0.5);
  }
};

// Steps [from, to) of a run whose batches depend only on the step number; dropout draws from
// the default generator (part of the checkpoint).
void train(TrainRun& r, const Tensor& x, const Tensor& y, int64_t from, int64_t to) {
  for (int64_t s = from; s < to; ++s) {
    Tensor idx = arange(Scalar(s * 8 % 64), Scalar(s * 8 % 64 + 8));
    Tensor loss = F::cross_entropy((*r.model)(index_select(x, 0, idx)), index_select(y, 0, idx));
    r.opt->zero_grad();
    loss.backward();
    r.opt->step();
    r.sched->step();
  }
}

std::vector<std::vector<float>> weights(const TrainRun& r) {
  std::vector<std::vector<float>> w;
  for (const Tensor& p : r.model->parameters()) w.push_back(p.to_vector<float>());
  return w;
}

TEST(TrainResume, CheckpointResumeIsBitwiseIdentical) {
  manual_seed(1);
  Tensor x = randn({64, 6}), y = randint(0, 3, {64});
  const auto path = std::filesystem::temp_directory_path() / "tessera_resume_test.safetensors";

  manual_seed(7);
  TrainRun straight;
  train(straight, x, y, 0, 10);

  manual_seed(7);
  TrainRun first;
  train(first, x, y, 0, 4);
  io::save_checkpoint(path, {.model = first.model->state_dict(),
                             .optimizer = first.opt->state_dict(),
                             .scheduler = first.sched->state_dict(),
                             .rng = io::capture_rng(),
                             .step = 4});
  manual_seed(12345);  // a different process state: everything must come from the file
  TrainRun resumed;
  io::Checkpoint ck = io::load_checkpoint(path);
  resumed.model->load_state_dict(ck.model);
  resumed.opt->load_state_dict(ck.optimizer);
  resumed.sched->load_state_dict(ck.scheduler);
  io::restore_rng(ck.rng);
  train(resumed, x, y, ck.step, 10);
  std::filesystem::remove(path);

  EXPECT_EQ(weights(resumed), weights(straight));
  EXPECT_EQ(resumed.opt->param_groups()[0].lr(), straight.opt->param_groups()[0].lr());
  // and the run did move: the weights differ from the stopped run's
  EXPECT_NE(weights(first), weights(straight));
}

}  // namespace
}  // namespace tessera
