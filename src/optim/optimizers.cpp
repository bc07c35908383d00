// SGD, Adam, AdamW, RMSprop and Adagrad: torch.optim's single-tensor formulas, each as one
// fused loop per parameter (see fused.h), and as one CUDA kernel per parameter
// (backends/cuda/optim.h, the same formulas) for CUDA parameters. Coefficients are computed in
// double and cast to the parameter's dtype, like PyTorch's scalar arguments.
#include <cmath>
#include <type_traits>

#include "backends/cuda/optim.h"
#include "optim/fused.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {
namespace detail {

Prepared prepare(std::string_view op, const Tensor& param, const Tensor& grad,
                 std::vector<Tensor> bufs) {
  TS_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype() && grad.is_contiguous(),
           ValueError, op, "gradient {} {} does not fit parameter {} {}", shape_str(grad.shape()),
           dtype_name(grad.dtype()), shape_str(param.shape()), dtype_name(param.dtype()));
  Prepared p;
  p.work = param.is_contiguous() ? param : param.contiguous();
  p.grad = grad;
  p.bufs = std::move(bufs);
  return p;
}

void finish(std::string_view op, const Tensor& param, const Prepared& prep) {
  if (prep.work.is_same(param))
    param.storage()->bump_version(op);
  else
    Tensor(param).copy_(prep.work);  // copy_ bumps the version itself
}

Tensor state_buffer(StateDict& state, const std::string& name, const Tensor& param,
                    std::optional<double> init, bool* created) {
  auto it = state.find(name);
  if (created) *created = it == state.end();
  if (it != state.end()) return it->second;
  Tensor t = init ? full(param.shape(), *init, TensorOptions(param.dtype(), param.device()))
                  : Tensor::empty(param.shape(), param.dtype(), param.device());
  state.emplace(name, t);
  return t;
}

int64_t next_step(StateDict& state) {
  auto it = state.find("step");
  if (it == state.end()) it = state.emplace("step", scalar_tensor(int64_t{0}, kInt64)).first;
  int64_t* step = it->second.data_ptr<int64_t>();
  return ++*step;
}

}  // namespace detail

namespace {

using detail::fused_update;
using detail::lerp;
using detail::state_buffer;

// CUDA parameters: the same formulas as one kernel per parameter (backends/cuda/optim.h),
// launch(prepared) called on the contiguous working copy.
template <class Launch>
void device_update(std::string_view op, const Tensor& param, const Tensor& grad,
                   std::vector<Tensor> bufs, Launch&& launch) {
  const detail::Prepared prep = detail::prepare(op, param, grad, std::move(bufs));
  launch(prep);
  detail::finish(op, param, prep);
}

bool cpu_or_cuda(const Device& d) { return d.is_cpu() || d.is_cuda(); }

double flag(bool b) { return b ? 1.0 : 0.0; }

double value(const GroupOptions& o, const char* key) {
  const auto it = o.find(key);
  if (it == o.end()) fail<ValueError>("optim", "the group has no option '{}'", key);
  return it->second;
}

void check_nonnegative(const std::string& op, const GroupOptions& o,
                       std::initializer_list<const char*> keys) {
  for (const char* k : keys)
    TS_CHECK(value(o, k) >= 0, ValueError, op, "invalid {} = {} (must be >= 0)", k, value(o, k));
}

void check_betas(const std::string& op, const GroupOptions& o) {
  for (const char* k : {"beta1", "beta2"})
    TS_CHECK(value(o, k) >= 0 && value(o, k) < 1, ValueError, op,
             "invalid {} = {} (must be in [0, 1))", k, value(o, k));
}

}  // namespace

// ---- SGD --------------------------------------------------------------------------------

GroupOptions SGDOptions::to_map() const {
  return {{"lr", lr},
          {"momentum", momentum},
          {"dampening", dampening},
          {"weight_decay", weight_decay},
          {"nesterov", flag(nesterov)},
          {"maximize", flag(maximize)}};
}

SGDOptions SGDOptions::from_map(const GroupOptions& o) {
  return {value(o, "lr"),           value(o, "momentum"),      value(o, "dampening"),
          value(o, "weight_decay"), value(o, "nesterov") != 0, value(o, "maximize") != 0};
}

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : SGD(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions options) : Optimizer("SGD", options.to_map()) {
  init_groups(std::move(groups));
}

void SGD::check_options(const GroupOptions& o) const {
  check_nonnegative(name(), o, {"lr", "momentum", "weight_decay"});
  const SGDOptions s = SGDOptions::from_map(o);
  TS_CHECK(!s.nesterov || (s.momentum > 0 && s.dampening == 0), ValueError, name(),
           "nesterov momentum requires a momentum and zero dampening (momentum = {}, "
           "dampening = {})",
           s.momentum, s.dampening);
}

bool SGD::supports_device(const Device& device) const { return cpu_or_cuda(device); }

Optimizer::StateKind SGD::state_kind(std::string_view name) const {
  return name == "momentum_buffer" ? StateKind::kLikeParam : StateKind::kUnknown;
}

void SGD::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                 StateDict& state) {
  const SGDOptions o = SGDOptions::from_map(group.options);
  bool first = false;
  std::vector<Tensor> bufs;
  if (o.momentum != 0) bufs.push_back(state_buffer(state, "momentum_buffer", param, {}, &first));
  if (param.device().is_cuda()) {
    const cuda::k::SgdArgs args{o.lr,       o.momentum, o.dampening, o.weight_decay,
                                o.nesterov, o.maximize, first};
    device_update("SGD", param, grad, bufs, [&](const detail::Prepared& p) {
      cuda::sgd_step(p.work, p.grad, p.bufs.empty() ? Tensor() : p.bufs[0], args);
    });
    return;
  }
  fused_update("SGD", param, grad, bufs, [&](auto a, int64_t b, int64_t e) {
    using T = typename decltype(a)::value_type;
    const T wd = T(o.weight_decay), mom = T(o.momentum), keep = T(1 - o.dampening);
    const T neg_lr = T(-o.lr);
    for (int64_t i = b; i < e; ++i) {
      T g = o.maximize ? -a.g[i] : a.g[i];
      if (o.weight_decay != 0) g = g + wd * a.p[i];
      if (o.momentum != 0) {
        T& buf = a.s[0][i];
        buf = first ? g : buf * mom + keep * g;  // the first buffer is the gradient itself
        g = o.nesterov ? g + mom * buf : buf;
      }
      a.p[i] = a.p[i] + neg_lr * g;
    }
  });
}

// ---- Adam and AdamW ---------------------------------------------------------------------

namespace {

struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay;
  bool amsgrad, maximize, decoupled;
};

// One Adam(W) update; `decoupled` is AdamW's param *= 1 - lr * weight_decay.
void adam_update(std::string_view op, const AdamArgs& o, const Tensor& param, const Tensor& grad,
                 StateDict& state) {
  const int64_t step = detail::next_step(state);
  std::vector<Tensor> bufs = {state_buffer(state, "exp_avg", param, 0.0),
                              state_buffer(state, "exp_avg_sq", param, 0.0)};
  if (o.amsgrad) bufs.push_back(state_buffer(state, "max_exp_avg_sq", param, 0.0));
  const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const double step_size = o.lr / bc1, bc2_sqrt = std::sqrt(bc2);
  if (param.device().is_cuda()) {
    const cuda::k::AdamArgs args{o.lr,      o.beta1,  o.beta2,     o.eps,     o.weight_decay,
                                 step_size, bc2_sqrt, o.decoupled, o.maximize};
    device_update(op, param, grad, bufs, [&](const detail::Prepared& p) {
      cuda::adam_step(p.work, p.grad, p.bufs[0], p.bufs[1],
                      p.bufs.size() > 2 ? p.bufs[2] : Tensor(), args);
    });
    return;
  }
  fused_update(op, param, grad, bufs, [&](auto a, int64_t b, int64_t e) {
    using T = typename decltype(a)::value_type;
    const T wd = T(o.weight_decay), decay = T(1 - o.lr * o.weight_decay);
    const T w1 = T(1 - o.beta1), b2 = T(o.beta2), c2 = T(1 - o.beta2);
    const T eps = T(o.eps), neg_step = T(-step_size), bc2s = T(bc2_sqrt);
    const bool coupled_wd = !o.decoupled && o.weight_decay != 0;
    const bool decoupled_wd = o.decoupled && o.weight_decay != 0;
    // amsgrad is a compile-time flag: its conditional store inside the loop kept GCC from
    // vectorizing the common case (about 4x slower).
    auto loop = [&](auto amsgrad) {
      for (int64_t i = b; i < e; ++i) {
        T g = o.maximize ? -a.g[i] : a.g[i];
        if (decoupled_wd) a.p[i] = a.p[i] * decay;
        if (coupled_wd) g = g + wd * a.p[i];
        T& m = a.s[0][i];
        T& v = a.s[1][i];
        m = lerp(m, g, w1);
        v = v * b2 + c2 * g * g;
        T vhat = v;
        if constexpr (decltype(amsgrad)::value) vhat = a.s[2][i] = detail::nan_max(a.s[2][i], v);
        const T denom = std::sqrt(vhat) / bc2s + eps;
        a.p[i] = a.p[i] + neg_step * m / denom;
      }
    };
    if (o.amsgrad)
      loop(std::true_type{});
    else
      loop(std::false_type{});
  });
}

Optimizer::StateKind adam_state_kind(std::string_view name) {
  using K = Optimizer::StateKind;
  if (name == "step") return K::kCount;
  if (name == "exp_avg" || name == "exp_avg_sq" || name == "max_exp_avg_sq") return K::kLikeParam;
  return K::kUnknown;
}

template <class O>
GroupOptions adam_map(const O& o) {
  return {{"lr", o.lr},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"eps", o.eps},
          {"weight_decay", o.weight_decay},
          {"amsgrad", flag(o.amsgrad)},
          {"maximize", flag(o.maximize)}};
}

AdamArgs adam_args(const GroupOptions& o, bool decoupled) {
  return {value(o, "lr"),
          value(o, "beta1"),
          value(o, "beta2"),
          value(o, "eps"),
          value(o, "weight_decay"),
          value(o, "amsgrad") != 0,
          value(o, "maximize") != 0,
          decoupled};
}

}  // namespace

GroupOptions AdamOptions::to_map() const { return adam_map(*this); }
GroupOptions AdamWOptions::to_map() const { return adam_map(*this); }

AdamOptions AdamOptions::from_map(const GroupOptions& o) {
  const AdamArgs a = adam_args(o, false);
  return {a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.amsgrad, a.maximize};
}

AdamWOptions AdamWOptions::from_map(const GroupOptions& o) {
  const AdamArgs a = adam_args(o, true);
  return {a.lr, a.beta1, a.beta2, a.eps, a.weight_decay, a.amsgrad, a.maximize};
}

Adam::Adam(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions options)
    : Optimizer("Adam", options.to_map()) {
  init_groups(std::move(groups));
}

void Adam::check_options(const GroupOptions& o) const {
  check_nonnegative(name(), o, {"lr", "eps", "weight_decay"});
  check_betas(name(), o);
}

bool Adam::supports_device(const Device& device) const { return cpu_or_cuda(device); }

Optimizer::StateKind Adam::state_kind(std::string_view name) const { return adam_state_kind(name); }

void Adam::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                  StateDict& state) {
  adam_update("Adam", adam_args(group.options, false), param, grad, state);
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions options)
    : AdamW(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : Optimizer("AdamW", options.to_map()) {
  init_groups(std::move(groups));
}

void AdamW::check_options(const GroupOptions& o) const {
  check_nonnegative(name(), o, {"lr", "eps", "weight_decay"});
  check_betas(name(), o);
}

bool AdamW::supports_device(const Device& device) const { return cpu_or_cuda(device); }

Optimizer::StateKind AdamW::state_kind(std::string_view name) const {
  return adam_state_kind(name);
}

void AdamW::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                   StateDict& state) {
  adam_update("AdamW", adam_args(group.options, true), param, grad, state);
}

// ---- RMSprop ----------------------------------------------------------------------------

GroupOptions RMSpropOptions::to_map() const {
  return {{"lr", lr},
          {"alpha", alpha},
          {"eps", eps},
          {"weight_decay", weight_decay},
          {"momentum", momentum},
          {"centered", flag(centered)},
          {"maximize", flag(maximize)}};
}

RMSpropOptions RMSpropOptions::from_map(const GroupOptions& o) {
  return {value(o, "lr"),           value(o, "alpha"),    value(o, "eps"),
          value(o, "weight_decay"), value(o, "momentum"), value(o, "centered") != 0,
          value(o, "maximize") != 0};
}

RMSprop::RMSprop(std::vector<Tensor> params, RMSpropOptions options)
    : RMSprop(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options)
    : Optimizer("RMSprop", options.to_map()) {
  init_groups(std::move(groups));
}

void RMSprop::check_options(const GroupOptions& o) const {
  check_nonnegative(name(), o, {"lr", "alpha", "eps", "weight_decay", "momentum"});
}

bool RMSprop::supports_device(const Device& device) const { return cpu_or_cuda(device); }

Optimizer::StateKind RMSprop::state_kind(std::string_view name) const {
  if (name == "step") return StateKind::kCount;
  if (name == "square_avg" || name == "momentum_buffer" || name == "grad_avg")
    return StateKind::kLikeParam;
  return StateKind::kUnknown;
}

void RMSprop::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                     StateDict& state) {
  const RMSpropOptions o = RMSpropOptions::from_map(group.options);
  detail::next_step(state);
  // Buffer slots: 0 square_avg, 1 momentum_buffer (or unused), 2 grad_avg (or unused).
  std::vector<Tensor> bufs = {state_buffer(state, "square_avg", param, 0.0)};
  bufs.push_back(o.momentum > 0 ? state_buffer(state, "momentum_buffer", param, 0.0) : param);
  if (o.centered) bufs.push_back(state_buffer(state, "grad_avg", param, 0.0));
  if (param.device().is_cuda()) {
    const cuda::k::RmspropArgs args{o.lr,       o.alpha,    o.eps,     o.weight_decay,
                                    o.momentum, o.centered, o.maximize};
    device_update("RMSprop", param, grad, bufs, [&](const detail::Prepared& p) {
      cuda::rmsprop_step(p.work, p.grad, p.bufs[0], o.centered ? p.bufs[2] : Tensor(),
                         o.momentum > 0 ? p.bufs[1] : Tensor(), args);
    });
    return;
  }
  fused_update("RMSprop", param, grad, bufs, [&](auto a, int64_t b, int64_t e) {
    using T = typename decltype(a)::value_type;
    const T wd = T(o.weight_decay), alpha = T(o.alpha), c = T(1 - o.alpha);
    const T eps = T(o.eps), mom = T(o.momentum), neg_lr = T(-o.lr);
    for (int64_t i = b; i < e; ++i) {
      T g = o.maximize ? -a.g[i] : a.g[i];
      if (o.weight_decay != 0) g = g + wd * a.p[i];
      T& sq = a.s[0][i];
      sq = sq * alpha + c * g * g;
      T avg;
      if (o.centered) {
        T& ga = a.s[2][i];
        ga = lerp(ga, g, c);
        avg = std::sqrt(sq + T(-1) * ga * ga);
      } else {
        avg = std::sqrt(sq);
      }
      avg = avg + eps;
      if (o.momentum > 0) {
        T& buf = a.s[1][i];
        buf = buf * mom + g / avg;
        a.p[i] = a.p[i] + neg_lr * buf;
      } else {
        a.p[i] = a.p[i] + neg_lr * g / avg;
      }
    }
  });
}

// ---- Adagrad ----------------------------------------------------------------------------

GroupOptions AdagradOptions::to_map() const {
  return {{"lr", lr},
          {"lr_decay", lr_decay},
          {"weight_decay", weight_decay},
          {"initial_accumulator_value", initial_accumulator_value},
          {"eps", eps},
          {"maximize", flag(maximize)}};
}

AdagradOptions AdagradOptions::from_map(const GroupOptions& o) {
  return {value(o, "lr"),           value(o, "lr_decay"),
          value(o, "weight_decay"), value(o, "initial_accumulator_value"),
          value(o, "eps"),          value(o, "maximize") != 0};
}

Adagrad::Adagrad(std::vector<Tensor> params, AdagradOptions options)
    : Adagrad(std::vector<ParamGroup>{ParamGroup{std::move(params), {}}}, options) {}

Adagrad::Adagrad(std::vector<ParamGroup> groups, AdagradOptions options)
    : Optimizer("Adagrad", options.to_map()) {
  init_groups(std::move(groups));
}

void Adagrad::check_options(const GroupOptions& o) const {
  check_nonnegative(name(), o,
                    {"lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"});
}

bool Adagrad::supports_device(const Device& device) const { return cpu_or_cuda(device); }

Optimizer::StateKind Adagrad::state_kind(std::string_view name) const {
  if (name == "step") return StateKind::kCount;
  return name == "sum" ? StateKind::kLikeParam : StateKind::kUnknown;
}

void Adagrad::update(const ParamGroup& group, const Tensor& param, const Tensor& grad,
                     StateDict& state) {
  const AdagradOptions o = AdagradOptions::from_map(group.options);
  const int64_t step = detail::next_step(state);
  const double clr = o.lr / (1 + static_cast<double>(step - 1) * o.lr_decay);
  std::vector<Tensor> bufs = {state_buffer(state, "sum", param, o.initial_accumulator_value)};
  if (param.device().is_cuda()) {
    const cuda::k::AdagradArgs args{clr, o.weight_decay, o.eps, o.maximize};
    device_update("Adagrad", param, grad, bufs, [&](const detail::Prepared& p) {
      cuda::adagrad_step(p.work, p.grad, p.bufs[0], args);
    });
    return;
  }
  fused_update("Adagrad", param, grad, bufs, [&](auto a, int64_t b, int64_t e) {
    using T = typename decltype(a)::value_type;
    const T wd = T(o.weight_decay), eps = T(o.eps), neg_clr = T(-clr);
    for (int64_t i = b; i < e; ++i) {
      T g = o.maximize ? -a.g[i] : a.g[i];
      if (o.weight_decay != 0) g = g + wd * a.p[i];
      T& sum = a.s[0][i];
      sum = sum + T(1) * g * g;
      const T denom = std::sqrt(sum) + eps;
      a.p[i] = a.p[i] + neg_clr * g / denom;
    }
  });
}

}  // namespace tessera::optim
