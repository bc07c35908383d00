#pragma once
// Optimizers (torch.optim's formulas, exactly): parameter groups with their own
// hyper-parameters, fused updates (one pass over memory per parameter), and state dicts.
//
//   optim::AdamW opt(params, {.lr = 1e-3, .weight_decay = 0.01});
//   for (...) {
//     opt.zero_grad();
//     loss(batch).backward();
//     opt.step();
//   }
//   optim::SGD two({{backbone, {}}, {head, {{"lr", 0.1}}}}, {.lr = 0.01, .momentum = 0.9});
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/io/state_dict.h"

namespace tessera::optim {

/// Hyper-parameters of a parameter group by name ("lr", "momentum", "beta1", ...). Flags are
/// 0 or 1. LR schedulers add their own ("initial_lr", "max_lr", ...).
using GroupOptions = std::map<std::string, double>;

/// Parameters that share hyper-parameters; options missing here come from the defaults.
struct ParamGroup {
  std::vector<Tensor> params;
  GroupOptions options;
  /// The option's value; ValueError naming the key when the group has no such option.
  double get(const std::string& key) const;
  double lr() const { return get("lr"); }
  void set_lr(double lr) { options["lr"] = lr; }
};

/// Re-evaluates the loss (and calls backward); run with grad enabled.
using Closure = std::function<Tensor()>;

/// Base of every optimizer: groups, per-parameter state, zero_grad, state dicts.
class Optimizer {
 public:
  virtual ~Optimizer();
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// One optimization step; returns the closure's loss (undefined without a closure).
  /// Parameters without a gradient are skipped.
  Tensor step(const Closure& closure = {});
  /// Drops every parameter's gradient (set_to_none) or fills it with zeros.
  void zero_grad(bool set_to_none = true);
  /// Adds parameters with their own hyper-parameters (the defaults fill in the rest).
  void add_param_group(ParamGroup group);
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  /// The constructor's hyper-parameters.
  const GroupOptions& defaults() const { return defaults_; }
  /// "SGD", "Adam", ...
  const std::string& name() const { return name_; }
  /// The state of one parameter ("step", "exp_avg", ...), empty before its first update.
  const StateDict& state(const Tensor& param) const;
  /// Whether this optimizer updates parameters on `device`: the CPU always (the default);
  /// CUDA for every optimizer here (fused kernels for SGD, Adam, AdamW, RMSprop and Adagrad;
  /// LBFGS's tensor ops). Parameters elsewhere are NotImplementedError when added.
  virtual bool supports_device(const Device& device) const;

  /// A snapshot: "param_groups.<g>.<option>" (0-d float64), "param_groups.<g>.params" (int64
  /// indices, counted across groups in order) and "state.<index>.<name>" (copies).
  StateDict state_dict() const;
  /// Restores a state_dict() of the same optimizer over the same parameter shapes; anything
  /// that does not match raises ValueError naming the key, and nothing is changed then.
  void load_state_dict(const StateDict& sd);

  /// How a state entry is stored, for load_state_dict's checks and conversions.
  enum class StateKind {
    kUnknown,    ///< not state of this optimizer
    kCount,      ///< 0-d int64 (steps, evaluation counts)
    kScalar,     ///< 0-d float64
    kLikeParam,  ///< the parameter's shape and dtype
    kFlat,       ///< 1-d, all parameters' elements (LBFGS), the parameters' dtype
  };

 protected:
  Optimizer(std::string name, GroupOptions defaults);
  /// Adds the constructor's groups (derived constructors call it: it uses check_options).
  void init_groups(std::vector<ParamGroup> groups);
  /// Default step: the closure under grad, then update() for every parameter with a grad.
  virtual Tensor do_step(const Closure& closure);
  /// Updates one parameter in place from its gradient (contiguous, param's dtype).
  virtual void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                      StateDict& state);
  /// ValueError for hyper-parameters out of range (negative lr, beta >= 1, ...).
  virtual void check_options(const GroupOptions& options) const = 0;
  virtual StateKind state_kind(std::string_view name) const = 0;
  /// Cross-entry checks of one parameter's loaded state (LBFGS's history lists).
  virtual void check_param_state(const std::string& prefix, const StateDict& state) const;
  StateDict& mutable_state(const Tensor& param);

 private:
  struct Loaded;
  Loaded parse_state_dict(const StateDict& sd) const;
  void check_state_entry(const std::string& key, std::string_view name, const Tensor& value,
                         const Tensor& param) const;

  std::string name_;
  GroupOptions defaults_;
  std::vector<ParamGroup> groups_;
  std::unordered_map<const TensorImpl*, StateDict> state_;
};

// ---- optimizers ------------------------------------------------------------------------

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;
  bool nesterov = false;
  bool maximize = false;
  GroupOptions to_map() const;
  static SGDOptions from_map(const GroupOptions& o);
};

/// Stochastic gradient descent with momentum (state: "momentum_buffer").
class SGD final : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {});
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              StateDict& state) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
};

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;
  bool amsgrad = false;
  bool maximize = false;
  GroupOptions to_map() const;
  static AdamOptions from_map(const GroupOptions& o);
};

/// Adam, with L2 weight decay added to the gradient (state: "step", "exp_avg",
/// "exp_avg_sq", "max_exp_avg_sq" with amsgrad).
class Adam final : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {});
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              StateDict& state) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  bool amsgrad = false;
  bool maximize = false;
  GroupOptions to_map() const;
  static AdamWOptions from_map(const GroupOptions& o);
};

/// AdamW: Adam with decoupled weight decay (param *= 1 - lr * weight_decay first).
class AdamW final : public Optimizer {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {});
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              StateDict& state) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
};

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0;
  double momentum = 0;
  bool centered = false;
  bool maximize = false;
  GroupOptions to_map() const;
  static RMSpropOptions from_map(const GroupOptions& o);
};

/// RMSprop (state: "step", "square_avg", "momentum_buffer", "grad_avg" when centered).
class RMSprop final : public Optimizer {
 public:
  RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              StateDict& state) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
};

struct AdagradOptions {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 0;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
  bool maximize = false;
  GroupOptions to_map() const;
  static AdagradOptions from_map(const GroupOptions& o);
};

/// Adagrad (state: "step", "sum").
class Adagrad final : public Optimizer {
 public:
  Adagrad(std::vector<Tensor> params, AdagradOptions options = {});
  Adagrad(std::vector<ParamGroup> groups, AdagradOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  void update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
              StateDict& state) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
};

struct LBFGSOptions {
  double lr = 1;
  int64_t max_iter = 20;
  std::optional<int64_t> max_eval;  ///< default max_iter * 5 / 4
  double tolerance_grad = 1e-7;
  double tolerance_change = 1e-9;
  int64_t history_size = 100;
  std::string line_search_fn;  ///< "" (fixed step lr) or "strong_wolfe"
  GroupOptions to_map() const;
  static LBFGSOptions from_map(const GroupOptions& o);
};

/// L-BFGS; step(closure) runs up to max_iter iterations, calling the closure as often as the
/// line search needs. One parameter group; its state lives with the first parameter.
class LBFGS final : public Optimizer {
 public:
  LBFGS(std::vector<Tensor> params, LBFGSOptions options = {});
  bool supports_device(const Device& device) const override;

 protected:
  Tensor do_step(const Closure& closure) override;
  void check_options(const GroupOptions& options) const override;
  StateKind state_kind(std::string_view name) const override;
  void check_param_state(const std::string& prefix, const StateDict& state) const override;
};

}  // namespace tessera::optim
