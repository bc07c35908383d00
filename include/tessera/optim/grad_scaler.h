#pragma once
// Loss scaling for mixed-precision training (torch.amp.GradScaler's semantics and numbers).
// Small 16-bit gradients underflow to zero; scaling the loss by a large factor keeps them
// representable. The scaler divides the gradients back before the optimizer sees them, skips
// the step when any gradient is inf/NaN (the scale was too large), and adapts the scale: it
// backs off after an overflow and grows after growth_interval clean steps.
//
//   optim::GradScaler scaler;
//   for (...) {
//     opt.zero_grad();
//     Tensor loss;
//     {
//       amp::Autocast guard({.device = DeviceType::CPU, .dtype = kBFloat16});
//       loss = nn::cross_entropy(model->forward(x), y);
//     }
//     scaler.scale(loss).backward();
//     scaler.unscale_(opt);                      // optional: to clip the true gradients
//     optim::clip_grad_norm_(model->parameters(), 1.0);
//     scaler.step(opt);                          // skipped when a gradient is inf/NaN
//     scaler.update();
//   }
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "tessera/core/tensor.h"
#include "tessera/io/state_dict.h"

namespace tessera::optim {

class Optimizer;

struct GradScalerOptions {
  double init_scale = 65536.0;  ///< 2^16
  double growth_factor = 2.0;   ///< > 1
  double backoff_factor = 0.5;  ///< in (0, 1)
  int64_t growth_interval = 2000;
  bool enabled = true;  ///< false: every method is a pass-through (step() just steps)
};

class GradScaler {
 public:
  explicit GradScaler(GradScalerOptions options = {});

  /// loss * scale (the scale as a float32 0-d tensor on loss's device, as PyTorch).
  Tensor scale(const Tensor& loss);
  std::vector<Tensor> scale(const std::vector<Tensor>& outputs);
  /// Divides opt's gradients by the scale in place and records whether any is inf/NaN (one
  /// small reduction per gradient, combined on its device; nothing is read on the host yet).
  /// Once per optimizer between update()s: a second call, or one after step(), is an Error.
  void unscale_(Optimizer& opt);
  /// Unscales (unless unscale_ ran) and steps opt unless a gradient was inf/NaN; returns
  /// whether it stepped. The one host read of the step is here.
  bool step(Optimizer& opt);
  /// Adapts the scale from the steps since the last update (backoff after an inf/NaN,
  /// growth after growth_interval clean updates), or sets it to new_scale.
  void update(std::optional<double> new_scale = std::nullopt);

  /// The current scale (init_scale before the first scale()); 1 when disabled.
  double get_scale() const;
  double get_growth_factor() const { return opt_.growth_factor; }
  void set_growth_factor(double f);
  double get_backoff_factor() const { return opt_.backoff_factor; }
  void set_backoff_factor(double f);
  int64_t get_growth_interval() const { return opt_.growth_interval; }
  void set_growth_interval(int64_t n);
  /// Clean updates since the scale last changed.
  int64_t growth_tracker() const { return tracker_; }
  bool is_enabled() const { return opt_.enabled; }

  /// "scale", "growth_factor", "backoff_factor" (0-d float64), "growth_interval",
  /// "_growth_tracker" (0-d int64); empty when disabled.
  StateDict state_dict() const;
  /// Restores state_dict(); ValueError for an empty or malformed dict (nothing changes then).
  void load_state_dict(const StateDict& sd);

 private:
  enum class Stage : uint8_t { Ready, Unscaled, Stepped };
  struct PerOptimizer {
    Stage stage = Stage::Ready;
    std::vector<Tensor> found_inf;  ///< one bool 0-d flag per device that holds gradients
    std::optional<bool> read;       ///< the flags, once read on the host
  };
  float current_scale(const char* op) const;
  bool found_inf(PerOptimizer& s);

  GradScalerOptions opt_;
  std::optional<float> scale_;  ///< float32 like PyTorch's; set by the first scale()
  int64_t tracker_ = 0;
  std::unordered_map<const Optimizer*, PerOptimizer> per_opt_;
};

}  // namespace tessera::optim
