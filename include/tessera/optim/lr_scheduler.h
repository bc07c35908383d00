#pragma once
// Learning-rate schedulers (torch.optim.lr_scheduler's recursive and closed forms, exactly).
// A scheduler writes each parameter group's "lr"; construct it after the optimizer, call
// step() after optimizer.step().
//
//   optim::SGD opt(params, {.lr = 0.1, .momentum = 0.9});
//   auto warmup = std::make_shared<optim::LinearLR>(opt, 0.1, 1.0, 5);
//   auto decay = std::make_shared<optim::CosineAnnealingLR>(opt, 95);
//   optim::SequentialLR sched(opt, {warmup, decay}, {5});
//   for (int epoch = 0; epoch < 100; ++epoch) { train(opt); sched.step(); }
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tessera/io/state_dict.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {

/// Base of the epoch-driven schedulers.
class LRScheduler {
 public:
  virtual ~LRScheduler();
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  /// Advances one epoch (the chainable form: scales each group's current lr).
  virtual void step();
  /// Jumps to `epoch` using the closed form where there is one (PyTorch's step(epoch));
  /// does not count as a step().
  virtual void step_to(int64_t epoch);
  /// Each group's lr after the last step.
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  Optimizer& optimizer() const { return *optimizer_; }
  const std::string& name() const { return name_; }
  /// "last_epoch", "step_count" (0-d int64), "base_lrs", "last_lr" (1-d float64). The
  /// hyper-parameters are not state: they come from the constructor.
  virtual StateDict state_dict() const;
  /// Restores state_dict(); ValueError naming the key when something is missing or has the
  /// wrong size. The optimizer's lrs come from the optimizer's own state dict.
  virtual void load_state_dict(const StateDict& sd);

 protected:
  LRScheduler(Optimizer& optimizer, std::string name);
  /// PyTorch's LRScheduler.__init__: records "initial_lr" (required in every group when
  /// resuming with last_epoch >= 0) and base_lrs, then takes the initial step. Derived
  /// constructors call it last.
  void attach(int64_t last_epoch);
  /// The chainable form: the new lrs from the groups' current ones (may set other options).
  virtual std::vector<double> get_lr() = 0;
  /// The closed form at last_epoch_, for schedules that have one.
  virtual std::optional<std::vector<double>> closed_form_lr() const;
  /// Resets the step count and steps once in "initial" mode.
  void initial_step();
  /// Takes back the initial step (SequentialLR restarts the schedulers it holds).
  virtual void undo_initial_step();
  /// The groups' current lrs.
  std::vector<double> group_lrs() const;
  /// ValueError when groups were added to the optimizer after the scheduler was made.
  void check_groups() const;
  /// Writes lrs into the groups and records them as the last lrs.
  void apply(const std::vector<double>& lrs);
  /// Loads the base entries of a state dict (prefix + key); ValueError naming a missing key.
  void load_base(const StateDict& sd, const std::string& prefix);

  Optimizer* optimizer_;
  std::string name_;
  std::vector<double> base_lrs_, last_lr_;
  int64_t last_epoch_ = -1;
  int64_t step_count_ = 0;
  bool is_initial_ = false;

  friend class SchedulerGroup;
  friend class SequentialLR;
};

/// lr = base_lr * gamma^(epoch / step_size): decays every step_size epochs.
class StepLR final : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;

 private:
  int64_t step_size_;
  double gamma_;
};

/// Decays by gamma at each milestone (a milestone listed twice decays twice).
class MultiStepLR final : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1,
              int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;

 private:
  std::map<int64_t, int> counts_;
  std::vector<int64_t> sorted_;
  double gamma_;
};

/// lr = base_lr * gamma^epoch.
class ExponentialLR final : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;

 private:
  double gamma_;
};

/// lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2, computed
/// recursively (so it composes with other schedulers).
class CosineAnnealingLR final : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min = 0,
                    int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;

 private:
  int64_t T_max_;
  double eta_min_;
};

/// Multiplies the lr by a factor going linearly from start_factor to end_factor over
/// total_iters epochs (warmup).
class LinearLR final : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0,
           int64_t total_iters = 5, int64_t last_epoch = -1);

 protected:
  std::vector<double> get_lr() override;
  std::optional<std::vector<double>> closed_form_lr() const override;

 private:
  double start_, end_;
  int64_t total_iters_;
};

struct OneCycleOptions {
  std::vector<double> max_lr;          ///< one for all groups, or one per group
  std::optional<int64_t> total_steps;  ///< or epochs * steps_per_epoch
  std::optional<int64_t> epochs, steps_per_epoch;
  double pct_start = 0.3;               ///< fraction of the cycle spent warming up
  std::string anneal_strategy = "cos";  ///< "cos" or "linear"
  bool cycle_momentum = true;           ///< cycles "momentum" (or Adam's "beta1")
  std::vector<double> base_momentum = {0.85};
  std::vector<double> max_momentum = {0.95};
  double div_factor = 25;         ///< initial_lr = max_lr / div_factor
  double final_div_factor = 1e4;  ///< min_lr = initial_lr / final_div_factor
  bool three_phase = false;
  int64_t last_epoch = -1;
};

/// The 1cycle policy: lr rises from initial_lr to max_lr, then anneals to min_lr (with
/// three_phase, back to initial_lr first); momentum moves the opposite way.
class OneCycleLR final : public LRScheduler {
 public:
  OneCycleLR(Optimizer& optimizer, const OneCycleOptions& options);
  int64_t total_steps() const { return total_steps_; }

 protected:
  std::vector<double> get_lr() override;

 private:
  struct Phase {
    double end_step;
    const char *start_lr, *end_lr, *start_momentum, *end_momentum;
  };
  double anneal(double start, double end, double pct) const;
  int64_t total_steps_;
  std::vector<Phase> phases_;
  bool cos_, cycle_momentum_, use_beta1_ = false;
};

/// What ChainedScheduler and SequentialLR share: they own other schedulers, have no lr or
/// closed form of their own, and save their children under "schedulers.<i>.".
class SchedulerGroup : public LRScheduler {
 public:
  void step_to(int64_t epoch) override;
  /// "last_epoch", "last_lr" and "schedulers.<i>.<key>".
  StateDict state_dict() const override;
  void load_state_dict(const StateDict& sd) override;

 protected:
  SchedulerGroup(Optimizer& optimizer, std::string name,
                 std::vector<std::shared_ptr<LRScheduler>> schedulers);
  std::vector<double> get_lr() override;
  void undo_initial_step() override;

  std::vector<std::shared_ptr<LRScheduler>> schedulers_;
};

/// Calls several schedulers' step() in turn on each step (their factors multiply).
class ChainedScheduler final : public SchedulerGroup {
 public:
  explicit ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers);
  void step() override;
};

/// Runs schedulers one after another: schedulers[i] from milestones[i - 1] on (each restarts
/// from its base lr at its milestone).
class SequentialLR final : public SchedulerGroup {
 public:
  SequentialLR(Optimizer& optimizer, std::vector<std::shared_ptr<LRScheduler>> schedulers,
               std::vector<int64_t> milestones, int64_t last_epoch = -1);
  void step() override;

 private:
  std::vector<int64_t> milestones_;
};

struct PlateauOptions {
  std::string mode = "min";            ///< "min": lower metrics are better; "max": higher
  double factor = 0.1;                 ///< new_lr = lr * factor (< 1)
  int64_t patience = 10;               ///< bad epochs tolerated before reducing
  double threshold = 1e-4;             ///< what counts as an improvement
  std::string threshold_mode = "rel";  ///< "rel" or "abs"
  int64_t cooldown = 0;                ///< epochs to wait after a reduction
  std::vector<double> min_lr = {0};    ///< one for all groups, or one per group
  double eps = 1e-8;                   ///< smaller reductions are skipped
};

/// Reduces the lr when a metric stops improving; step(metric) once per epoch.
class ReduceLROnPlateau {
 public:
  explicit ReduceLROnPlateau(Optimizer& optimizer, PlateauOptions options = {});
  void step(double metric);
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  double best() const { return best_; }
  int64_t num_bad_epochs() const { return num_bad_epochs_; }
  /// "last_epoch", "num_bad_epochs", "cooldown_counter" (int64), "best" (float64),
  /// "last_lr", "min_lrs" (1-d float64).
  StateDict state_dict() const;
  void load_state_dict(const StateDict& sd);

 private:
  bool is_better(double a, double best) const;
  Optimizer* optimizer_;
  PlateauOptions o_;
  std::vector<double> min_lrs_, last_lr_;
  int64_t last_epoch_ = 0, num_bad_epochs_ = 0, cooldown_counter_ = 0;
  double best_;
};

}  // namespace tessera::optim
