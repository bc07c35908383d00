// GradScaler: torch.amp.GradScaler's stages, checks and scale arithmetic (the scale is a
// float32 value updated as PyTorch's _amp_update_scale_ kernel does).
#include "tessera/optim/grad_scaler.h"

#include <cmath>
#include <utility>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"
#include "tessera/optim/optimizer.h"
#include "tessera/runtime/autocast.h"

namespace tessera::optim {
namespace {

void check_growth_factor(double f) {
  TS_CHECK(f > 1.0, ValueError, "GradScaler", "growth_factor must be > 1, got {}", f);
}
void check_backoff_factor(double f) {
  TS_CHECK(f > 0.0 && f < 1.0, ValueError, "GradScaler", "backoff_factor must be in (0, 1), got {}",
           f);
}
void check_growth_interval(int64_t n) {
  TS_CHECK(n >= 1, ValueError, "GradScaler", "growth_interval must be >= 1, got {}", n);
}
void check_scale(double s, const char* op) {
  TS_CHECK(std::isfinite(s) && s > 0, ValueError, op,
           "the scale must be finite and positive, got {}", s);
}

// 0 for a gradient whose elements are all finite, NaN otherwise: inf * 0 and NaN * 0 are NaN,
// and a NaN survives any summation order. Only mul and sum, which every backend has (CUDA has
// no isfinite kernel yet), and no overflow: finite * 0 is exactly 0.
Tensor non_finite_probe(const Tensor& g) { return sum(mul(g, Scalar(0.0))).to(kFloat32); }

}  // namespace

GradScaler::GradScaler(GradScalerOptions options) : opt_(options) {
  check_scale(opt_.init_scale, "GradScaler");
  check_growth_factor(opt_.growth_factor);
  check_backoff_factor(opt_.backoff_factor);
  check_growth_interval(opt_.growth_interval);
}

float GradScaler::current_scale(const char* op) const {
  if (!scale_)
    fail<Error>(op,
                "the scale is not set yet: call scale(loss) and backward() on the result before "
                "unscale_, step or update");
  return *scale_;
}

Tensor GradScaler::scale(const Tensor& loss) {
  if (!opt_.enabled) return loss;
  if (!loss.defined()) fail<ValueError>("GradScaler.scale", "got an undefined tensor");
  if (!scale_) scale_ = static_cast<float>(opt_.init_scale);
  return mul(
      loss, full({}, Scalar(static_cast<double>(*scale_)), TensorOptions(kFloat32, loss.device())));
}

std::vector<Tensor> GradScaler::scale(const std::vector<Tensor>& outputs) {
  std::vector<Tensor> out;
  out.reserve(outputs.size());
  for (const Tensor& t : outputs) out.push_back(scale(t));
  return out;
}

void GradScaler::unscale_(Optimizer& opt) {
  if (!opt_.enabled) return;
  const char* op = "GradScaler.unscale_";
  const float s = current_scale(op);
  PerOptimizer& st = per_opt_[&opt];
  if (st.stage == Stage::Unscaled)
    fail<Error>(op, "unscale_() has already been called on this optimizer since the last update()");
  if (st.stage == Stage::Stepped) fail<Error>(op, "unscale_() is being called after step()");
  // PyTorch: the reciprocal in double, rounded to float32.
  const auto inv = static_cast<float>(1.0 / static_cast<double>(s));
  autograd::NoGradGuard no_grad;
  amp::NoAutocast no_autocast;                        // the probes run in the gradients' own dtypes
  std::vector<std::pair<Device, Tensor>> per_device;  // sum of the probes on each device
  for (const ParamGroup& group : opt.param_groups())
    for (const Tensor& p : group.params) {
      Tensor g = p.defined() ? p.grad() : Tensor();
      if (!g.defined() || g.numel() == 0) continue;
      g.mul_(Scalar(static_cast<double>(inv)));
      // Probed after unscaling, so a gradient that overflows when divided by a scale below 1
      // is caught too (PyTorch probes before and would step with it).
      Tensor probe = non_finite_probe(g);
      auto it = per_device.begin();
      while (it != per_device.end() && it->first != g.device()) ++it;
      if (it == per_device.end())
        per_device.emplace_back(g.device(), probe);
      else
        it->second = add(it->second, probe);
    }
  st.found_inf.clear();
  for (auto& [device, total] : per_device) st.found_inf.push_back(ne(total, total));
  st.read.reset();
  st.stage = Stage::Unscaled;
}

bool GradScaler::found_inf(PerOptimizer& s) {
  if (!s.read) {
    bool any = false;
    for (const Tensor& f : s.found_inf) any = any || f.item<bool>();
    s.read = any;
  }
  return *s.read;
}

bool GradScaler::step(Optimizer& opt) {
  if (!opt_.enabled) {
    opt.step();
    return true;
  }
  const char* op = "GradScaler.step";
  current_scale(op);
  PerOptimizer& st = per_opt_[&opt];
  if (st.stage == Stage::Stepped)
    fail<Error>(op, "step() has already been called since the last update()");
  if (st.stage == Stage::Ready) unscale_(opt);
  const bool skip = found_inf(st);
  if (!skip) opt.step();
  st.stage = Stage::Stepped;
  return !skip;
}

void GradScaler::update(std::optional<double> new_scale) {
  if (!opt_.enabled) return;
  const char* op = "GradScaler.update";
  float s = current_scale(op);
  if (new_scale) {
    check_scale(*new_scale, op);
    s = static_cast<float>(*new_scale);
  } else {
    bool recorded = false, found = false;
    for (auto& [o, st] : per_opt_) {
      if (st.stage == Stage::Ready) continue;
      recorded = true;
      found = found_inf(st) || found;
    }
    if (!recorded)
      fail<Error>(op, "no inf checks were recorded before update(): call unscale_ or step first");
    // PyTorch's _amp_update_scale_: the products in double, stored as float32; growth only
    // to a finite scale.
    if (found) {
      s = static_cast<float>(static_cast<double>(s) * opt_.backoff_factor);
      tracker_ = 0;
    } else if (tracker_ + 1 == opt_.growth_interval) {
      const auto grown = static_cast<float>(static_cast<double>(s) * opt_.growth_factor);
      if (std::isfinite(grown)) s = grown;
      tracker_ = 0;
    } else {
      ++tracker_;
    }
  }
  scale_ = s;
  per_opt_.clear();
}

double GradScaler::get_scale() const {
  if (!opt_.enabled) return 1.0;
  return scale_ ? static_cast<double>(*scale_) : opt_.init_scale;
}

void GradScaler::set_growth_factor(double f) {
  check_growth_factor(f);
  opt_.growth_factor = f;
}
void GradScaler::set_backoff_factor(double f) {
  check_backoff_factor(f);
  opt_.backoff_factor = f;
}
void GradScaler::set_growth_interval(int64_t n) {
  check_growth_interval(n);
  opt_.growth_interval = n;
}

StateDict GradScaler::state_dict() const {
  if (!opt_.enabled) return {};
  return {{"scale", scalar_tensor(get_scale(), kFloat64)},
          {"growth_factor", scalar_tensor(opt_.growth_factor, kFloat64)},
          {"backoff_factor", scalar_tensor(opt_.backoff_factor, kFloat64)},
          {"growth_interval", scalar_tensor(opt_.growth_interval, kInt64)},
          {"_growth_tracker", scalar_tensor(tracker_, kInt64)}};
}

void GradScaler::load_state_dict(const StateDict& sd) {
  if (!opt_.enabled) return;
  const char* op = "GradScaler.load_state_dict";
  if (sd.empty())
    fail<ValueError>(op,
                     "the state dict is empty, possibly because it was saved from a disabled "
                     "GradScaler");
  auto number = [&](const char* key) {
    auto it = sd.find(key);
    if (it == sd.end()) fail<ValueError>(op, "missing key '{}'", key);
    if (!it->second.defined() || it->second.numel() != 1)
      fail<ValueError>(op, "'{}' must hold one number", key);
    return it->second.item<double>();
  };
  const double scale = number("scale"), growth = number("growth_factor");
  const double backoff = number("backoff_factor"), interval = number("growth_interval");
  const double tracker = number("_growth_tracker");
  check_scale(scale, op);
  check_growth_factor(growth);
  check_backoff_factor(backoff);
  check_growth_interval(static_cast<int64_t>(interval));
  TS_CHECK(tracker >= 0 && tracker < interval, ValueError, op,
           "_growth_tracker {} must be in [0, growth_interval {})", tracker, interval);
  opt_.init_scale = scale;
  if (scale_) scale_ = static_cast<float>(scale);
  opt_.growth_factor = growth;
  opt_.backoff_factor = backoff;
  opt_.growth_interval = static_cast<int64_t>(interval);
  tracker_ = static_cast<int64_t>(tracker);
}

}  // namespace tessera::optim
