// The Optimizer base: parameter groups, per-parameter state, zero_grad, and state dicts.
#include "tessera/optim/optimizer.h"

#include <charconv>
#include <unordered_set>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"

namespace tessera::optim {
namespace {

// Options LR schedulers write into groups; add_param_group accepts them besides the defaults.
bool is_scheduler_key(const std::string& key) {
  static const std::unordered_set<std::string> keys = {"initial_lr", "max_lr", "min_lr",
                                                       "max_momentum", "base_momentum"};
  return keys.count(key) > 0;
}

std::vector<std::string> keys_of(const GroupOptions& o) {
  std::vector<std::string> out;
  for (const auto& kv : o) out.push_back(kv.first);
  return out;
}

// Parses "<int>.<rest>" at the front of s; false when s does not start that way.
bool split_index(std::string_view s, int64_t* index, std::string* rest) {
  const size_t dot = s.find('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + dot, *index);
  if (ec != std::errc() || end != s.data() + dot || *index < 0) return false;
  *rest = std::string(s.substr(dot + 1));
  return !rest->empty();
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// A 0-d (or one-element) real tensor as a double, else ValueError naming the key.
double scalar_value(const std::string& op, const std::string& key, const Tensor& t) {
  TS_CHECK(t.defined() && t.numel() == 1 && !is_complex(t.dtype()), ValueError, op,
           "{} should be a real scalar, got {}", key,
           t.defined() ? shape_str(t.shape()) + " " + std::string(dtype_name(t.dtype()))
                       : std::string("an undefined tensor"));
  return t.item<double>();
}

}  // namespace

double ParamGroup::get(const std::string& key) const {
  const auto it = options.find(key);
  if (it == options.end())
    fail<ValueError>("ParamGroup", "the group has no option '{}' (it has {})", key,
                     keys_of(options));
  return it->second;
}

Optimizer::Optimizer(std::string name, GroupOptions defaults)
    : name_(std::move(name)), defaults_(std::move(defaults)) {}

Optimizer::~Optimizer() = default;

void Optimizer::init_groups(std::vector<ParamGroup> groups) {
  size_t count = 0;
  for (const ParamGroup& g : groups) count += g.params.size();
  TS_CHECK(count > 0, ValueError, name_, "optimizer got an empty parameter list");
  check_options(defaults_);
  for (ParamGroup& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  const std::string op = name_ + ".add_param_group";
  for (const auto& kv : group.options)
    TS_CHECK(defaults_.count(kv.first) || is_scheduler_key(kv.first), ValueError, op,
             "unknown option '{}' (the options of {} are {})", kv.first, name_, keys_of(defaults_));
  for (const auto& kv : defaults_) group.options.emplace(kv);  // keeps the group's overrides
  check_options(group.options);

  std::unordered_set<const TensorImpl*> seen;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) seen.insert(p.impl_ptr().get());
  const size_t gi = groups_.size();
  for (size_t i = 0; i < group.params.size(); ++i) {
    const Tensor& p = group.params[i];
    TS_CHECK(p.defined(), ValueError, op, "parameter {} of group {} is an undefined tensor", i, gi);
    TS_CHECK(p.is_leaf(), ValueError, op,
             "can't optimize a non-leaf tensor (parameter {} of group {} comes from {}); "
             "optimize the leaf it was computed from, or detach() it",
             i, gi, autograd::grad_fn_name(p));
    TS_CHECK(!is_complex(p.dtype()), NotImplementedError, op,
             "complex parameters are not supported yet (parameter {} of group {})", i, gi);
    TS_CHECK(is_floating(p.dtype()), DTypeError, op,
             "parameter {} of group {} has dtype {}; only floating point tensors can be optimized",
             i, gi, dtype_name(p.dtype()));
    TS_CHECK(p.dtype() == kFloat32 || p.dtype() == kFloat64, NotImplementedError, op,
             "parameter {} of group {} has dtype {}: only float32 and float64 parameters are "
             "supported yet",
             i, gi, dtype_name(p.dtype()));
    TS_CHECK(supports_device(p.device()), NotImplementedError, op,
             "parameter {} of group {} is on {}: {} has no update for that device yet (CPU "
             "parameters work)",
             i, gi, p.device().str(), name_);
    TS_CHECK(seen.insert(p.impl_ptr().get()).second, ValueError, op,
             "some parameters appear more than once (parameter {} of group {})", i, gi);
  }
  groups_.push_back(std::move(group));
}

bool Optimizer::supports_device(const Device& device) const { return device.is_cpu(); }

Tensor Optimizer::step(const Closure& closure) { return do_step(closure); }

Tensor Optimizer::do_step(const Closure& closure) {
  Tensor loss;
  if (closure) {
    autograd::EnableGradGuard grad_on;
    loss = closure();
  }
  autograd::NoGradGuard no_grad;
  for (const ParamGroup& g : groups_)
    for (const Tensor& p : g.params) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      update(g, p, grad.to(p.device()).to(p.dtype()).contiguous(), mutable_state(p));
    }
  return loss;
}

void Optimizer::update(const ParamGroup&, const Tensor&, const Tensor&, StateDict&) {
  fail<NotImplementedError>(name_, "has no per-parameter update");
}

void Optimizer::zero_grad(bool set_to_none) {
  autograd::NoGradGuard no_grad;
  for (const ParamGroup& g : groups_)
    for (Tensor p : g.params) {
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none)
        p.set_grad(Tensor());
      else if (grad.requires_grad())  // a gradient with history (create_graph): drop it
        p.set_grad(zeros_like(grad));
      else
        p.grad().zero_();
    }
}

const StateDict& Optimizer::state(const Tensor& param) const {
  static const StateDict empty;
  const auto it = state_.find(param.impl_ptr().get());
  return it == state_.end() ? empty : it->second;
}

StateDict& Optimizer::mutable_state(const Tensor& param) { return state_[param.impl_ptr().get()]; }

void Optimizer::check_param_state(const std::string&, const StateDict&) const {}

// ---- state dicts ------------------------------------------------------------------------

StateDict Optimizer::state_dict() const {
  StateDict out;
  int64_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    const std::string prefix = fmt::format("param_groups.{}.", g);
    for (const auto& [key, value] : groups_[g].options)
      out[prefix + key] = scalar_tensor(value, kFloat64);
    std::vector<int64_t> ids;
    for (const Tensor& p : groups_[g].params) {
      const auto it = state_.find(p.impl_ptr().get());
      if (it != state_.end())
        for (const auto& [name, t] : it->second)
          out[fmt::format("state.{}.{}", index, name)] = t.clone();
      ids.push_back(index++);
    }
    out[prefix + "params"] = ids.empty() ? zeros({0}, kInt64) : tensor(ids);
  }
  return out;
}

struct Optimizer::Loaded {
  std::vector<GroupOptions> options;
  std::vector<std::pair<Tensor, StateDict>> state;  // (parameter, its state)
};

void Optimizer::check_state_entry(const std::string& key, std::string_view name,
                                  const Tensor& value, const Tensor& param) const {
  const std::string op = name_ + ".load_state_dict";
  TS_CHECK(value.defined(), ValueError, op, "{} is an undefined tensor", key);
  const StateKind kind = state_kind(name);
  TS_CHECK(kind != StateKind::kUnknown, ValueError, op, "{}: '{}' is not state of {}", key, name,
           name_);
  TS_CHECK(!is_complex(value.dtype()), ValueError, op, "{} is complex", key);
  if (kind == StateKind::kCount || kind == StateKind::kScalar) {
    TS_CHECK(value.dim() == 0, ValueError, op, "{} should be a 0-d scalar, got shape {}", key,
             shape_str(value.shape()));
  } else if (kind == StateKind::kLikeParam) {
    TS_CHECK(value.shape() == param.shape(), ValueError, op,
             "{} has shape {} but its parameter has shape {}", key, shape_str(value.shape()),
             shape_str(param.shape()));
  } else {
    int64_t total = 0;
    for (const ParamGroup& g : groups_)
      for (const Tensor& p : g.params) total += p.numel();
    TS_CHECK(value.dim() == 1 && value.numel() == total, ValueError, op,
             "{} has shape {} but the parameters have {} elements in all", key,
             shape_str(value.shape()), total);
  }
}

namespace {
// The loaded value in the form the optimizer keeps it: a fresh tensor of the right dtype.
// Counts and scalars live on the host (next_step bumps "step" through its pointer; LBFGS
// reads its scalars), whatever device they were saved from; the rest on the parameter's.
Tensor convert_state(const Tensor& value, bool is_count, bool is_scalar, const Tensor& param) {
  if (is_count) return value.to(Device::cpu()).to(kInt64).clone();
  if (is_scalar) return value.to(Device::cpu()).to(kFloat64).clone();
  return value.to(param.device()).to(param.dtype()).clone().contiguous();
}
}  // namespace

Optimizer::Loaded Optimizer::parse_state_dict(const StateDict& sd) const {
  const std::string op = name_ + ".load_state_dict";
  const size_t ng = groups_.size();
  Loaded out;
  out.options.resize(ng);
  std::vector<Tensor> ids(ng);
  std::vector<std::tuple<int64_t, std::string, const std::string*, Tensor>> entries;
  for (const auto& [key, value] : sd) {
    int64_t index = 0;
    std::string rest;
    if (starts_with(key, "param_groups.") && split_index(key.substr(13), &index, &rest)) {
      TS_CHECK(static_cast<size_t>(index) < ng, ValueError, op,
               "{}: the saved state has more parameter groups than the optimizer's {}", key, ng);
      if (rest == "params")
        ids[index] = value;
      else
        out.options[index][rest] = scalar_value(op, key, value);
    } else if (starts_with(key, "state.") && split_index(key.substr(6), &index, &rest)) {
      entries.emplace_back(index, rest, &key, value);
    } else {
      fail<ValueError>(op,
                       "unexpected key '{}' (expected param_groups.<g>.<option> or "
                       "state.<index>.<name>)",
                       key);
    }
  }
  // Saved parameter ids map to the optimizer's parameters by position, like PyTorch.
  std::unordered_map<int64_t, Tensor> by_id;
  for (size_t g = 0; g < ng; ++g) {
    const std::string key = fmt::format("param_groups.{}.params", g);
    TS_CHECK(ids[g].defined(), ValueError, op,
             "{} is missing: the saved state has fewer parameter groups than the optimizer's {}",
             key, ng);
    TS_CHECK(ids[g].dim() == 1 && is_integral(ids[g].dtype()), ValueError, op,
             "{} should be a 1-d integer tensor, got {} {}", key, shape_str(ids[g].shape()),
             dtype_name(ids[g].dtype()));
    const std::vector<int64_t> saved = ids[g].to_vector<int64_t>();
    TS_CHECK(saved.size() == groups_[g].params.size(), ValueError, op,
             "{} lists {} parameters but group {} of the optimizer has {}", key, saved.size(), g,
             groups_[g].params.size());
    for (size_t i = 0; i < saved.size(); ++i)
      TS_CHECK(by_id.emplace(saved[i], groups_[g].params[i]).second, ValueError, op,
               "{} lists parameter {} twice", key, saved[i]);
    for (const auto& kv : defaults_)
      TS_CHECK(out.options[g].count(kv.first), ValueError, op,
               "param_groups.{}.{} is missing (was the state saved by another optimizer?)", g,
               kv.first);
    try {
      check_options(out.options[g]);
    } catch (const Error& e) {
      fail<ValueError>(op, "param_groups.{}: {}", g, e.what());
    }
  }
  std::map<int64_t, StateDict> state;
  for (const auto& [index, name, key, value] : entries) {
    const auto it = by_id.find(index);
    TS_CHECK(it != by_id.end(), ValueError, op,
             "{} is the state of parameter {}, which no saved group lists", *key, index);
    check_state_entry(*key, name, value, it->second);
    const StateKind kind = state_kind(name);
    state[index][name] =
        convert_state(value, kind == StateKind::kCount, kind == StateKind::kScalar, it->second);
  }
  for (auto& [index, st] : state) {
    check_param_state(fmt::format("state.{}.", index), st);
    out.state.emplace_back(by_id.at(index), std::move(st));
  }
  return out;
}

void Optimizer::load_state_dict(const StateDict& sd) {
  Loaded loaded = parse_state_dict(sd);  // everything is checked before anything changes
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].options = std::move(loaded.options[g]);
  state_.clear();
  for (auto& [param, st] : loaded.state) state_[param.impl_ptr().get()] = std::move(st);
}

}  // namespace tessera::optim
