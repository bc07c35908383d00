// tessera.optim.lr_scheduler: the learning-rate schedulers with PyTorch's arguments. Each keeps
// its optimizer alive and writes the groups' "lr" on step().
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
using optim::LRScheduler;
using optim::Optimizer;

/// One value for every group or one per group (max_lr=0.1 or max_lr=[0.1, 0.01]).
using FloatOrList = std::variant<double, std::vector<double>>;
std::vector<double> to_list(const FloatOrList& v) {
  if (const auto* one = std::get_if<double>(&v)) return {*one};
  return std::get<std::vector<double>>(v);
}

std::vector<double> base_lrs(const LRScheduler& s) {
  return s.state_dict().at("base_lrs").to_vector<double>();
}

void def_base(nb::module_& lr) {
  nb::class_<LRScheduler>(lr, "LRScheduler",
                          "Base of the epoch-driven schedulers: construct after the optimizer, "
                          "call step() after optimizer.step().")
      .def(
          "step",
          [](LRScheduler& s, std::optional<int64_t> epoch) {
            if (epoch)
              s.step_to(*epoch);
            else
              s.step();
          },
          "epoch"_a = nb::none(),
          "Advances one epoch (with epoch: jumps there using the closed form where there is "
          "one).")
      .def("get_last_lr", &LRScheduler::get_last_lr, "Each group's lr after the last step.")
      .def_prop_ro("last_epoch", &LRScheduler::last_epoch)
      .def_prop_ro("base_lrs", &base_lrs)
      .def_prop_ro("optimizer", &LRScheduler::optimizer, nb::rv_policy::reference)
      .def(
          "state_dict", [](const LRScheduler& s) { return state_dict_to_python(s.state_dict()); },
          "The step counters and lrs as a flat dict of tensors.")
      .def(
          "load_state_dict",
          [](LRScheduler& s, nb::handle sd) {
            s.load_state_dict(state_dict_from(sd, "LRScheduler.load_state_dict"));
          },
          "state_dict"_a, "Restores state_dict().");
}

void def_simple(nb::module_& lr) {
  nb::class_<optim::StepLR, LRScheduler>(lr, "StepLR", "lr = base_lr * gamma^(epoch // step_size).")
      .def(nb::init<Optimizer&, int64_t, double, int64_t>(), "optimizer"_a, "step_size"_a,
           "gamma"_a = 0.1, "last_epoch"_a = -1, nb::keep_alive<1, 2>());
  nb::class_<optim::MultiStepLR, LRScheduler>(lr, "MultiStepLR",
                                              "Decays the lr by gamma at each milestone.")
      .def(nb::init<Optimizer&, std::vector<int64_t>, double, int64_t>(), "optimizer"_a,
           "milestones"_a, "gamma"_a = 0.1, "last_epoch"_a = -1, nb::keep_alive<1, 2>());
  nb::class_<optim::ExponentialLR, LRScheduler>(lr, "ExponentialLR", "lr = base_lr * gamma^epoch.")
      .def(nb::init<Optimizer&, double, int64_t>(), "optimizer"_a, "gamma"_a, "last_epoch"_a = -1,
           nb::keep_alive<1, 2>());
  nb::class_<optim::CosineAnnealingLR, LRScheduler>(
      lr, "CosineAnnealingLR",
      "lr = eta_min + (base_lr - eta_min) (1 + cos(pi epoch / T_max)) / 2.")
      .def(nb::init<Optimizer&, int64_t, double, int64_t>(), "optimizer"_a, "T_max"_a,
           "eta_min"_a = 0.0, "last_epoch"_a = -1, nb::keep_alive<1, 2>());
  nb::class_<optim::LinearLR, LRScheduler>(
      lr, "LinearLR",
      "Scales the lr by a factor going linearly from start_factor to end_factor (warmup).")
      .def(nb::init<Optimizer&, double, double, int64_t, int64_t>(), "optimizer"_a,
           "start_factor"_a = 1.0 / 3, "end_factor"_a = 1.0, "total_iters"_a = 5,
           "last_epoch"_a = -1, nb::keep_alive<1, 2>());
}

void def_one_cycle(nb::module_& lr) {
  nb::class_<optim::OneCycleLR, LRScheduler>(
      lr, "OneCycleLR",
      "The 1cycle policy: lr rises to max_lr, then anneals far below the start; momentum moves "
      "the opposite way. Step it after every batch.")
      .def(
          "__init__",
          [](optim::OneCycleLR* self, Optimizer& opt, const FloatOrList& max_lr,
             std::optional<int64_t> total_steps, std::optional<int64_t> epochs,
             std::optional<int64_t> steps_per_epoch, double pct_start,
             const std::string& anneal_strategy, bool cycle_momentum,
             const FloatOrList& base_momentum, const FloatOrList& max_momentum, double div_factor,
             double final_div_factor, bool three_phase, int64_t last_epoch) {
            optim::OneCycleOptions o;
            o.max_lr = to_list(max_lr);
            o.total_steps = total_steps;
            o.epochs = epochs;
            o.steps_per_epoch = steps_per_epoch;
            o.pct_start = pct_start;
            o.anneal_strategy = anneal_strategy;
            o.cycle_momentum = cycle_momentum;
            o.base_momentum = to_list(base_momentum);
            o.max_momentum = to_list(max_momentum);
            o.div_factor = div_factor;
            o.final_div_factor = final_div_factor;
            o.three_phase = three_phase;
            o.last_epoch = last_epoch;
            new (self) optim::OneCycleLR(opt, o);
          },
          "optimizer"_a, "max_lr"_a, "total_steps"_a = nb::none(), "epochs"_a = nb::none(),
          "steps_per_epoch"_a = nb::none(), "pct_start"_a = 0.3, "anneal_strategy"_a = "cos",
          "cycle_momentum"_a = true, "base_momentum"_a = 0.85, "max_momentum"_a = 0.95,
          "div_factor"_a = 25.0, "final_div_factor"_a = 1e4, "three_phase"_a = false,
          "last_epoch"_a = -1, nb::keep_alive<1, 2>())
      .def_prop_ro("total_steps", &optim::OneCycleLR::total_steps);
}

void def_groups(nb::module_& lr) {
  using Schedulers = std::vector<std::shared_ptr<LRScheduler>>;
  nb::class_<optim::ChainedScheduler, LRScheduler>(
      lr, "ChainedScheduler", "Steps several schedulers together (their factors multiply).")
      .def(
          "__init__",
          [](optim::ChainedScheduler* self, Schedulers schedulers, nb::handle) {
            new (self) optim::ChainedScheduler(std::move(schedulers));
          },
          "schedulers"_a, "optimizer"_a = nb::none());
  nb::class_<optim::SequentialLR, LRScheduler>(
      lr, "SequentialLR", "Runs schedulers one after another, switching at the milestones.")
      .def(nb::init<Optimizer&, Schedulers, std::vector<int64_t>, int64_t>(), "optimizer"_a,
           "schedulers"_a, "milestones"_a, "last_epoch"_a = -1, nb::keep_alive<1, 2>());
}

void def_plateau(nb::module_& lr) {
  nb::class_<optim::ReduceLROnPlateau>(
      lr, "ReduceLROnPlateau", "Reduces the lr when a metric stops improving; step(metric).")
      .def(
          "__init__",
          [](optim::ReduceLROnPlateau* self, Optimizer& opt, const std::string& mode, double factor,
             int64_t patience, double threshold, const std::string& threshold_mode,
             int64_t cooldown, const FloatOrList& min_lr, double eps) {
            new (self) optim::ReduceLROnPlateau(
                opt, optim::PlateauOptions{mode, factor, patience, threshold, threshold_mode,
                                           cooldown, to_list(min_lr), eps});
          },
          "optimizer"_a, "mode"_a = "min", "factor"_a = 0.1, "patience"_a = 10,
          "threshold"_a = 1e-4, "threshold_mode"_a = "rel", "cooldown"_a = 0, "min_lr"_a = 0.0,
          "eps"_a = 1e-8, nb::keep_alive<1, 2>())
      .def(
          "step", [](optim::ReduceLROnPlateau& s, double metrics) { s.step(metrics); }, "metrics"_a,
          "Records one epoch's metric and reduces the lr after `patience` bad ones.")
      .def("get_last_lr", &optim::ReduceLROnPlateau::get_last_lr,
           "Each group's lr after the last step.")
      .def_prop_ro("last_epoch", &optim::ReduceLROnPlateau::last_epoch)
      .def_prop_ro("best", &optim::ReduceLROnPlateau::best)
      .def_prop_ro("num_bad_epochs", &optim::ReduceLROnPlateau::num_bad_epochs)
      .def(
          "state_dict",
          [](const optim::ReduceLROnPlateau& s) { return state_dict_to_python(s.state_dict()); },
          "The counters, best metric and lrs as a flat dict of tensors.")
      .def(
          "load_state_dict",
          [](optim::ReduceLROnPlateau& s, nb::handle sd) {
            s.load_state_dict(state_dict_from(sd, "ReduceLROnPlateau.load_state_dict"));
          },
          "state_dict"_a, "Restores state_dict().");
}

}  // namespace

void init_optim_schedulers(nb::module_& optim) {
  nb::module_ lr = optim.def_submodule("lr_scheduler", "Learning-rate schedulers.");
  def_base(lr);
  def_simple(lr);
  def_one_cycle(lr);
  def_groups(lr);
  def_plateau(lr);
}

}  // namespace tessera::py
