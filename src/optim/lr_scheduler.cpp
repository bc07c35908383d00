// LR schedulers: torch.optim.lr_scheduler's recursive (chainable) forms for step() and closed
// forms for step_to(), with Python's integer division and modulo where PyTorch uses them.
#include "tessera/optim/lr_scheduler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <set>

#include "tessera/core/error.h"
#include "tessera/ops/creation.h"

namespace tessera::optim {
namespace {

constexpr double kPi = std::numbers::pi;

// Python's a % b and a // b (the sign follows the divisor).
int64_t py_mod(int64_t a, int64_t b) {
  const int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
int64_t py_floordiv(int64_t a, int64_t b) { return (a - py_mod(a, b)) / b; }

Tensor vector_tensor(const std::vector<double>& v) {
  return v.empty() ? zeros({0}, kFloat64) : tensor(v);
}

const Tensor& require(const StateDict& sd, const std::string& key, const std::string& op) {
  const auto it = sd.find(key);
  TS_CHECK(it != sd.end() && it->second.defined(), ValueError, op, "{} is missing", key);
  return it->second;
}

double get_scalar(const StateDict& sd, const std::string& key, const std::string& op) {
  const Tensor& t = require(sd, key, op);
  TS_CHECK(t.numel() == 1 && !is_complex(t.dtype()), ValueError, op,
           "{} should be a real scalar, got shape {}", key, shape_str(t.shape()));
  return t.item<double>();
}

int64_t get_int(const StateDict& sd, const std::string& key, const std::string& op) {
  const Tensor& t = require(sd, key, op);
  TS_CHECK(t.numel() == 1 && is_integral(t.dtype()), ValueError, op,
           "{} should be an integer scalar, got {} {}", key, shape_str(t.shape()),
           dtype_name(t.dtype()));
  return t.item<int64_t>();
}

std::vector<double> get_vector(const StateDict& sd, const std::string& key, size_t size,
                               const std::string& op) {
  const Tensor& t = require(sd, key, op);
  TS_CHECK(t.dim() == 1 && static_cast<size_t>(t.numel()) == size && !is_complex(t.dtype()),
           ValueError, op, "{} has shape {} but the optimizer has {} parameter groups", key,
           shape_str(t.shape()), size);
  return t.to_vector<double>();
}

// Every key must be one of `known` or start with "schedulers.<i>." for i < children.
void check_keys(const StateDict& sd, const std::set<std::string>& known, size_t children,
                const std::string& op) {
  for (const auto& kv : sd) {
    if (known.count(kv.first)) continue;
    bool child = false;
    for (size_t i = 0; i < children && !child; ++i)
      child = kv.first.rfind(fmt::format("schedulers.{}.", i), 0) == 0;
    TS_CHECK(child, ValueError, op, "unexpected key '{}'", kv.first);
  }
}

// The entries under "<prefix>" with the prefix removed.
StateDict sub_dict(const StateDict& sd, const std::string& prefix) {
  StateDict out;
  for (const auto& [key, value] : sd)
    if (key.rfind(prefix, 0) == 0) out[key.substr(prefix.size())] = value;
  return out;
}

// A value for every group: one for all, or one each (PyTorch's _format_param).
std::vector<double> per_group(const std::string& op, const char* what, const std::vector<double>& v,
                              size_t groups) {
  TS_CHECK(v.size() == 1 || v.size() == groups, ValueError, op,
           "{} must have one value or one per parameter group ({}), got {}", what, groups,
           v.size());
  return v.size() == 1 ? std::vector<double>(groups, v[0]) : v;
}

Optimizer& first_optimizer(const std::vector<std::shared_ptr<LRScheduler>>& s, const char* op) {
  TS_CHECK(!s.empty() && s[0], ValueError, op, "expects at least one scheduler");
  return s[0]->optimizer();
}

void check_same_optimizer(const std::vector<std::shared_ptr<LRScheduler>>& s, const Optimizer& opt,
                          const char* op) {
  for (size_t i = 0; i < s.size(); ++i) {
    TS_CHECK(s[i] != nullptr, ValueError, op, "scheduler {} is null", i);
    TS_CHECK(&s[i]->optimizer() == &opt, ValueError, op,
             "expects all schedulers to belong to the same optimizer, but scheduler {} ({}) "
             "has another one",
             i, s[i]->name());
  }
}

}  // namespace

// ---- LRScheduler ------------------------------------------------------------------------

LRScheduler::LRScheduler(Optimizer& optimizer, std::string name)
    : optimizer_(&optimizer), name_(std::move(name)) {}

LRScheduler::~LRScheduler() = default;

void LRScheduler::attach(int64_t last_epoch) {
  TS_CHECK(last_epoch >= -1, ValueError, name_, "last_epoch must be >= -1, got {}", last_epoch);
  std::vector<ParamGroup>& groups = optimizer_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i) {
    if (last_epoch == -1)
      groups[i].options.emplace("initial_lr", groups[i].lr());
    else
      TS_CHECK(groups[i].options.count("initial_lr"), ValueError, name_,
               "param 'initial_lr' is not specified in param_groups[{}] when resuming "
               "(last_epoch = {})",
               i, last_epoch);
  }
  base_lrs_.clear();
  for (const ParamGroup& g : groups) base_lrs_.push_back(g.get("initial_lr"));
  last_epoch_ = last_epoch;
  initial_step();
}

void LRScheduler::initial_step() {
  step_count_ = 0;
  is_initial_ = true;
  try {
    step();
  } catch (...) {
    is_initial_ = false;
    throw;
  }
  is_initial_ = false;
}

void LRScheduler::undo_initial_step() { --last_epoch_; }

void LRScheduler::check_groups() const {
  TS_CHECK(optimizer_->param_groups().size() == base_lrs_.size(), ValueError, name_,
           "the optimizer has {} parameter groups but had {} when the scheduler was made",
           optimizer_->param_groups().size(), base_lrs_.size());
}

void LRScheduler::step() {
  check_groups();
  ++step_count_;
  ++last_epoch_;
  apply(get_lr());
}

void LRScheduler::step_to(int64_t epoch) {
  check_groups();
  last_epoch_ = epoch;
  const std::optional<std::vector<double>> closed = closed_form_lr();
  apply(closed ? *closed : get_lr());
}

std::optional<std::vector<double>> LRScheduler::closed_form_lr() const { return std::nullopt; }

std::vector<double> LRScheduler::group_lrs() const {
  std::vector<double> out;
  for (const ParamGroup& g : optimizer_->param_groups()) out.push_back(g.lr());
  return out;
}

void LRScheduler::apply(const std::vector<double>& lrs) {
  std::vector<ParamGroup>& groups = optimizer_->param_groups();
  TS_CHECK(lrs.size() == groups.size(), ValueError, name_,
           "the optimizer has {} parameter groups but the scheduler was made for {}", groups.size(),
           lrs.size());
  for (size_t i = 0; i < groups.size(); ++i) groups[i].set_lr(lrs[i]);
  last_lr_ = group_lrs();
}

StateDict LRScheduler::state_dict() const {
  return {{"last_epoch", scalar_tensor(last_epoch_, kInt64)},
          {"step_count", scalar_tensor(step_count_, kInt64)},
          {"base_lrs", vector_tensor(base_lrs_)},
          {"last_lr", vector_tensor(last_lr_)}};
}

void LRScheduler::load_base(const StateDict& sd, const std::string& prefix) {
  const std::string op = name_ + ".load_state_dict";
  const size_t n = optimizer_->param_groups().size();
  const int64_t last_epoch = get_int(sd, prefix + "last_epoch", op);
  const int64_t step_count = get_int(sd, prefix + "step_count", op);
  std::vector<double> base = get_vector(sd, prefix + "base_lrs", n, op);
  std::vector<double> last = get_vector(sd, prefix + "last_lr", n, op);
  last_epoch_ = last_epoch;
  step_count_ = step_count;
  base_lrs_ = std::move(base);
  last_lr_ = std::move(last);
}

void LRScheduler::load_state_dict(const StateDict& sd) {
  check_keys(sd, {"last_epoch", "step_count", "base_lrs", "last_lr"}, 0,
             name_ + ".load_state_dict");
  load_base(sd, "");
}

// ---- the schedules ----------------------------------------------------------------------

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma, int64_t last_epoch)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  TS_CHECK(step_size > 0, ValueError, name_, "step_size must be positive, got {}", step_size);
  attach(last_epoch);
}

std::vector<double> StepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0 || py_mod(last_epoch_, step_size_) != 0) return lrs;
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

std::optional<std::vector<double>> StepLR::closed_form_lr() const {
  std::vector<double> lrs;
  const double k = static_cast<double>(py_floordiv(last_epoch_, step_size_));
  for (double base : base_lrs_) lrs.push_back(base * std::pow(gamma_, k));
  return lrs;
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma,
                         int64_t last_epoch)
    : LRScheduler(optimizer, "MultiStepLR"), sorted_(std::move(milestones)), gamma_(gamma) {
  std::sort(sorted_.begin(), sorted_.end());
  for (int64_t m : sorted_) ++counts_[m];
  attach(last_epoch);
}

std::vector<double> MultiStepLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  const auto it = counts_.find(last_epoch_);
  if (it == counts_.end()) return lrs;
  for (double& lr : lrs) lr *= std::pow(gamma_, static_cast<double>(it->second));
  return lrs;
}

std::optional<std::vector<double>> MultiStepLR::closed_form_lr() const {
  const auto passed = std::upper_bound(sorted_.begin(), sorted_.end(), last_epoch_);
  const double k = static_cast<double>(passed - sorted_.begin());  // bisect_right
  std::vector<double> lrs;
  for (double base : base_lrs_) lrs.push_back(base * std::pow(gamma_, k));
  return lrs;
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma, int64_t last_epoch)
    : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  attach(last_epoch);
}

std::vector<double> ExponentialLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (is_initial_) return lrs;  // resuming must not step ahead of itself
  for (double& lr : lrs) lr *= gamma_;
  return lrs;
}

std::optional<std::vector<double>> ExponentialLR::closed_form_lr() const {
  std::vector<double> lrs;
  for (double base : base_lrs_)
    lrs.push_back(base * std::pow(gamma_, static_cast<double>(last_epoch_)));
  return lrs;
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t T_max, double eta_min,
                                     int64_t last_epoch)
    : LRScheduler(optimizer, "CosineAnnealingLR"), T_max_(T_max), eta_min_(eta_min) {
  TS_CHECK(T_max > 0, ValueError, name_, "T_max must be positive, got {}", T_max);
  attach(last_epoch);
}

std::vector<double> CosineAnnealingLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (is_initial_) return lrs;
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_);
  for (size_t i = 0; i < lrs.size(); ++i) {
    const double span = base_lrs_[i] - eta_min_;
    if (step_count_ == 1 && last_epoch_ > 0)  // resumed: start from the closed form
      lrs[i] = eta_min_ + span * (1 + std::cos(e * kPi / T)) / 2;
    else if (py_mod(last_epoch_ - 1 - T_max_, 2 * T_max_) == 0)  // the bottom of a period
      lrs[i] = lrs[i] + span * (1 - std::cos(kPi / T)) / 2;
    else
      lrs[i] =
          (1 + std::cos(kPi * e / T)) / (1 + std::cos(kPi * (e - 1) / T)) * (lrs[i] - eta_min_) +
          eta_min_;
  }
  return lrs;
}

std::optional<std::vector<double>> CosineAnnealingLR::closed_form_lr() const {
  const double e = static_cast<double>(last_epoch_), T = static_cast<double>(T_max_);
  std::vector<double> lrs;
  for (double base : base_lrs_)
    lrs.push_back(eta_min_ + (base - eta_min_) * (1 + std::cos(kPi * e / T)) / 2);
  return lrs;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor,
                   int64_t total_iters, int64_t last_epoch)
    : LRScheduler(optimizer, "LinearLR"),
      start_(start_factor),
      end_(end_factor),
      total_iters_(total_iters) {
  TS_CHECK(start_factor > 0 && start_factor <= 1, ValueError, name_,
           "start_factor must be in (0, 1], got {}", start_factor);
  TS_CHECK(end_factor >= 0 && end_factor <= 1, ValueError, name_,
           "end_factor must be in [0, 1], got {}", end_factor);
  TS_CHECK(total_iters > 0, ValueError, name_, "total_iters must be positive, got {}", total_iters);
  attach(last_epoch);
}

std::vector<double> LinearLR::get_lr() {
  std::vector<double> lrs = group_lrs();
  if (last_epoch_ == 0) {
    for (double& lr : lrs) lr *= start_;
    return lrs;
  }
  if (is_initial_ || last_epoch_ > total_iters_) return lrs;
  const double T = static_cast<double>(total_iters_), e = static_cast<double>(last_epoch_);
  for (double& lr : lrs) lr *= 1.0 + (end_ - start_) / (T * start_ + (e - 1) * (end_ - start_));
  return lrs;
}

std::optional<std::vector<double>> LinearLR::closed_form_lr() const {
  const double T = static_cast<double>(total_iters_);
  const double done = static_cast<double>(std::min(total_iters_, last_epoch_));
  std::vector<double> lrs;
  for (double base : base_lrs_) lrs.push_back(base * (start_ + (end_ - start_) * done / T));
  return lrs;
}

// ---- OneCycleLR -------------------------------------------------------------------------

OneCycleLR::OneCycleLR(Optimizer& optimizer, const OneCycleOptions& o)
    : LRScheduler(optimizer, "OneCycleLR"), cycle_momentum_(o.cycle_momentum) {
  if (o.total_steps) {
    TS_CHECK(*o.total_steps > 0, ValueError, name_, "expected a positive total_steps, got {}",
             *o.total_steps);
    total_steps_ = *o.total_steps;
  } else {
    TS_CHECK(o.epochs && o.steps_per_epoch, ValueError, name_,
             "you must define either total_steps or (epochs and steps_per_epoch)");
    TS_CHECK(*o.epochs > 0 && *o.steps_per_epoch > 0, ValueError, name_,
             "expected positive epochs and steps_per_epoch, got {} and {}", *o.epochs,
             *o.steps_per_epoch);
    total_steps_ = *o.epochs * *o.steps_per_epoch;
  }
  TS_CHECK(o.pct_start >= 0 && o.pct_start <= 1, ValueError, name_,
           "expected pct_start between 0 and 1, got {}", o.pct_start);
  TS_CHECK(o.anneal_strategy == "cos" || o.anneal_strategy == "linear", ValueError, name_,
           "anneal_strategy must be 'cos' or 'linear', got '{}'", o.anneal_strategy);
  cos_ = o.anneal_strategy == "cos";
  const double T = static_cast<double>(total_steps_);
  if (o.three_phase)
    phases_ = {{o.pct_start * T - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {2 * o.pct_start * T - 2, "max_lr", "initial_lr", "base_momentum", "max_momentum"},
               {T - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"}};
  else
    phases_ = {{o.pct_start * T - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"},
               {T - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"}};

  std::vector<ParamGroup>& groups = optimizer.param_groups();
  const std::vector<double> max_lrs = per_group(name_, "max_lr", o.max_lr, groups.size());
  if (o.last_epoch == -1)
    for (size_t i = 0; i < groups.size(); ++i) {
      const double initial = max_lrs[i] / o.div_factor;
      groups[i].options["initial_lr"] = initial;
      groups[i].options["max_lr"] = max_lrs[i];
      groups[i].options["min_lr"] = initial / o.final_div_factor;
    }
  if (cycle_momentum_) {
    const GroupOptions& defaults = optimizer.defaults();
    TS_CHECK(defaults.count("momentum") || defaults.count("beta1"), ValueError, name_,
             "optimizer {} must support momentum or beta1 with cycle_momentum enabled",
             optimizer.name());
    use_beta1_ = defaults.count("beta1") > 0;
    const auto maxs = per_group(name_, "max_momentum", o.max_momentum, groups.size());
    const auto bases = per_group(name_, "base_momentum", o.base_momentum, groups.size());
    if (o.last_epoch == -1)
      for (size_t i = 0; i < groups.size(); ++i) {
        groups[i].options[use_beta1_ ? "beta1" : "momentum"] = maxs[i];
        groups[i].options["max_momentum"] = maxs[i];
        groups[i].options["base_momentum"] = bases[i];
      }
  }
  attach(o.last_epoch);
}

double OneCycleLR::anneal(double start, double end, double pct) const {
  if (!cos_) return (end - start) * pct + start;
  const double cos_out = std::cos(kPi * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}

std::vector<double> OneCycleLR::get_lr() {
  TS_CHECK(last_epoch_ <= total_steps_, ValueError, name_,
           "tried to step {} times; the specified number of total steps is {}", last_epoch_,
           total_steps_);
  const double step_num = static_cast<double>(last_epoch_);
  std::vector<double> lrs;
  for (ParamGroup& group : optimizer_->param_groups()) {
    double start_step = 0.0;
    for (size_t i = 0; i < phases_.size(); ++i) {
      const Phase& ph = phases_[i];
      if (step_num <= ph.end_step || i + 1 == phases_.size()) {
        // A phase of zero length is already over (PyTorch divides by zero here).
        const double len = ph.end_step - start_step;
        const double pct = len == 0 ? 1.0 : (step_num - start_step) / len;
        lrs.push_back(anneal(group.get(ph.start_lr), group.get(ph.end_lr), pct));
        if (cycle_momentum_)
          group.options[use_beta1_ ? "beta1" : "momentum"] =
              anneal(group.get(ph.start_momentum), group.get(ph.end_momentum), pct);
        break;
      }
      start_step = ph.end_step;
    }
  }
  return lrs;
}

// ---- ChainedScheduler and SequentialLR --------------------------------------------------

SchedulerGroup::SchedulerGroup(Optimizer& optimizer, std::string name,
                               std::vector<std::shared_ptr<LRScheduler>> schedulers)
    : LRScheduler(optimizer, std::move(name)), schedulers_(std::move(schedulers)) {
  check_same_optimizer(schedulers_, optimizer, name_.c_str());
}

void SchedulerGroup::step_to(int64_t) {
  fail<NotImplementedError>(name_, "has no closed form to jump to an epoch");
}

std::vector<double> SchedulerGroup::get_lr() {
  fail<NotImplementedError>(name_, "has no lr of its own; step() steps its schedulers");
}

void SchedulerGroup::undo_initial_step() {
  for (const auto& s : schedulers_) s->undo_initial_step();
}

StateDict SchedulerGroup::state_dict() const {
  StateDict out = {{"last_epoch", scalar_tensor(last_epoch_, kInt64)},
                   {"last_lr", vector_tensor(last_lr_)}};
  for (size_t i = 0; i < schedulers_.size(); ++i)
    for (auto& [key, value] : schedulers_[i]->state_dict())
      out[fmt::format("schedulers.{}.{}", i, key)] = value;
  return out;
}

void SchedulerGroup::load_state_dict(const StateDict& sd) {
  const std::string op = name_ + ".load_state_dict";
  check_keys(sd, {"last_epoch", "last_lr"}, schedulers_.size(), op);
  const int64_t last_epoch = get_int(sd, "last_epoch", op);
  std::vector<double> last = get_vector(sd, "last_lr", optimizer_->param_groups().size(), op);
  for (size_t i = 0; i < schedulers_.size(); ++i)
    schedulers_[i]->load_state_dict(sub_dict(sd, fmt::format("schedulers.{}.", i)));
  last_epoch_ = last_epoch;
  last_lr_ = std::move(last);
}

ChainedScheduler::ChainedScheduler(std::vector<std::shared_ptr<LRScheduler>> schedulers)
    // Copied, not moved: the optimizer is read from the list in the same argument list.
    : SchedulerGroup(first_optimizer(schedulers, "ChainedScheduler"), "ChainedScheduler",
                     schedulers) {
  last_lr_ = group_lrs();
}

void ChainedScheduler::step() {
  for (const auto& s : schedulers_) s->step();
  ++last_epoch_;
  last_lr_ = group_lrs();
}

SequentialLR::SequentialLR(Optimizer& optimizer,
                           std::vector<std::shared_ptr<LRScheduler>> schedulers,
                           std::vector<int64_t> milestones, int64_t last_epoch)
    : SchedulerGroup(optimizer, "SequentialLR", std::move(schedulers)),
      milestones_(std::move(milestones)) {
  TS_CHECK(!schedulers_.empty(), ValueError, name_, "expects at least one scheduler");
  TS_CHECK(milestones_.size() + 1 == schedulers_.size(), ValueError, name_,
           "expects one milestone fewer than schedulers, got {} schedulers and {} milestones",
           schedulers_.size(), milestones_.size());
  TS_CHECK(std::is_sorted(milestones_.begin(), milestones_.end()), ValueError, name_,
           "milestones must be increasing, got {}", milestones_);
  last_epoch_ = last_epoch + 1;
  for (ParamGroup& g : optimizer.param_groups()) g.set_lr(g.get("initial_lr"));
  undo_initial_step();  // the schedulers stepped once when they were made
  schedulers_[0]->initial_step();
  last_lr_ = schedulers_[0]->get_last_lr();
}

void SequentialLR::step() {
  ++last_epoch_;
  const size_t idx =
      std::upper_bound(milestones_.begin(), milestones_.end(), last_epoch_) - milestones_.begin();
  LRScheduler& s = *schedulers_[idx];
  if (idx > 0 && milestones_[idx - 1] == last_epoch_)
    s.step_to(0);  // the next schedule starts from its base lr
  else
    s.step();
  last_lr_ = s.get_last_lr();
}

// ---- ReduceLROnPlateau ------------------------------------------------------------------

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, PlateauOptions options)
    : optimizer_(&optimizer), o_(std::move(options)) {
  const char* op = "ReduceLROnPlateau";
  TS_CHECK(o_.factor < 1.0, ValueError, op, "factor should be < 1.0, got {}", o_.factor);
  TS_CHECK(o_.mode == "min" || o_.mode == "max", ValueError, op,
           "mode must be 'min' or 'max', got '{}'", o_.mode);
  TS_CHECK(o_.threshold_mode == "rel" || o_.threshold_mode == "abs", ValueError, op,
           "threshold_mode must be 'rel' or 'abs', got '{}'", o_.threshold_mode);
  TS_CHECK(o_.patience >= 0 && o_.cooldown >= 0, ValueError, op,
           "patience and cooldown must be >= 0, got {} and {}", o_.patience, o_.cooldown);
  const size_t n = optimizer.param_groups().size();
  min_lrs_ = per_group(op, "min_lr", o_.min_lr, n);
  for (const ParamGroup& g : optimizer.param_groups()) last_lr_.push_back(g.lr());
  best_ = o_.mode == "min" ? std::numeric_limits<double>::infinity()
                           : -std::numeric_limits<double>::infinity();
}

bool ReduceLROnPlateau::is_better(double a, double best) const {
  const bool rel = o_.threshold_mode == "rel";
  if (o_.mode == "min") return rel ? a < best * (1.0 - o_.threshold) : a < best - o_.threshold;
  return rel ? a > best * (o_.threshold + 1.0) : a > best + o_.threshold;
}

void ReduceLROnPlateau::step(double metric) {
  last_epoch_ += 1;
  if (is_better(metric, best_)) {
    best_ = metric;
    num_bad_epochs_ = 0;
  } else {
    num_bad_epochs_ += 1;
  }
  if (cooldown_counter_ > 0) {  // bad epochs during the cooldown do not count
    cooldown_counter_ -= 1;
    num_bad_epochs_ = 0;
  }
  std::vector<ParamGroup>& groups = optimizer_->param_groups();
  if (num_bad_epochs_ > o_.patience) {
    if (min_lrs_.size() != groups.size())  // a group was added since construction
      min_lrs_ = per_group("ReduceLROnPlateau", "min_lr", o_.min_lr, groups.size());
    for (size_t i = 0; i < groups.size(); ++i) {
      const double old_lr = groups[i].lr();
      const double new_lr = std::max(old_lr * o_.factor, min_lrs_[i]);
      if (old_lr - new_lr > o_.eps) groups[i].set_lr(new_lr);
    }
    cooldown_counter_ = o_.cooldown;
    num_bad_epochs_ = 0;
  }
  last_lr_.clear();
  for (const ParamGroup& g : groups) last_lr_.push_back(g.lr());
}

StateDict ReduceLROnPlateau::state_dict() const {
  return {{"last_epoch", scalar_tensor(last_epoch_, kInt64)},
          {"num_bad_epochs", scalar_tensor(num_bad_epochs_, kInt64)},
          {"cooldown_counter", scalar_tensor(cooldown_counter_, kInt64)},
          {"best", scalar_tensor(best_, kFloat64)},
          {"last_lr", vector_tensor(last_lr_)},
          {"min_lrs", vector_tensor(min_lrs_)}};
}

void ReduceLROnPlateau::load_state_dict(const StateDict& sd) {
  const std::string op = "ReduceLROnPlateau.load_state_dict";
  check_keys(sd, {"last_epoch", "num_bad_epochs", "cooldown_counter", "best", "last_lr", "min_lrs"},
             0, op);
  const size_t n = optimizer_->param_groups().size();
  const int64_t last_epoch = get_int(sd, "last_epoch", op);
  const int64_t bad = get_int(sd, "num_bad_epochs", op);
  const int64_t cooldown = get_int(sd, "cooldown_counter", op);
  const double best = get_scalar(sd, "best", op);
  std::vector<double> last = get_vector(sd, "last_lr", n, op);
  std::vector<double> min_lrs = get_vector(sd, "min_lrs", n, op);
  last_epoch_ = last_epoch;
  num_bad_epochs_ = bad;
  cooldown_counter_ = cooldown;
  best_ = best;
  last_lr_ = std::move(last);
  min_lrs_ = std::move(min_lrs);
}

}  // namespace tessera::optim
