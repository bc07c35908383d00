// tessera.optim: the optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, LBFGS) with PyTorch's
// arguments, parameter groups given as dicts and readable/writable through param_groups, and
// gradient clipping. The LR schedulers are bound in optim_sched.cpp.
#include <fmt/format.h>

#include <set>

#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
using optim::GroupOptions;
using optim::Optimizer;
using optim::ParamGroup;

// Group options PyTorch spells differently from the C++ maps, or reads back as bool / int.
const std::set<std::string>& flag_keys() {
  static const std::set<std::string> k = {"nesterov", "maximize", "amsgrad", "centered"};
  return k;
}
const std::set<std::string>& int_keys() {
  static const std::set<std::string> k = {"max_iter", "max_eval", "history_size"};
  return k;
}

[[noreturn]] void bad_option(const char* op, const std::string& key, nb::handle v) {
  throw nb::type_error(fmt::format("{}: option '{}' must be a number, got {}", op, key,
                                   nb::type_name(v.type()).c_str())
                           .c_str());
}

// Writes one Python option (PyTorch's name and type) into a C++ option map.
void put_option(GroupOptions& o, const std::string& key, nb::handle v, const char* op) {
  if (key == "betas") {
    std::pair<double, double> b;
    if (!nb::try_cast(v, b)) bad_option(op, key, v);
    o["beta1"] = b.first;
    o["beta2"] = b.second;
  } else if (key == "line_search_fn") {
    const bool wolfe = !v.is_none() && nb::cast<std::string>(v) == "strong_wolfe";
    if (!v.is_none() && !wolfe)
      throw nb::value_error(
          fmt::format("{}: line_search_fn must be None or 'strong_wolfe'", op).c_str());
    o["strong_wolfe"] = wolfe ? 1.0 : 0.0;
  } else {
    double d = 0;
    if (!nb::try_cast(v, d)) bad_option(op, key, v);
    o[key] = d;
  }
}

// A C++ option back as Python sees it in PyTorch: bools, ints, betas as a tuple.
nb::object get_option(const GroupOptions& o, const std::string& key) {
  if (key == "betas") return nb::make_tuple(o.at("beta1"), o.at("beta2"));
  if (key == "line_search_fn")
    return o.at("strong_wolfe") != 0 ? nb::object(nb::str("strong_wolfe")) : nb::none();
  const double v = o.at(key);
  if (flag_keys().count(key)) return nb::bool_(v != 0);
  if (int_keys().count(key)) return nb::int_(static_cast<int64_t>(v));
  return nb::float_(v);
}

// The Python names of a group's options, in the C++ map's order.
std::vector<std::string> option_keys(const GroupOptions& o) {
  std::vector<std::string> keys;
  for (const auto& kv : o) {
    const std::string& k = kv.first;
    if (k == "beta2") continue;
    keys.push_back(k == "beta1" ? "betas" : k == "strong_wolfe" ? "line_search_fn" : k);
  }
  return keys;
}

bool has_option(const GroupOptions& o, const std::string& key) {
  if (key == "betas") return o.count("beta1") > 0;
  if (key == "line_search_fn") return o.count("strong_wolfe") > 0;
  return o.count(key) > 0;
}

ParamGroup group_from_dict(nb::handle d, const char* op) {
  ParamGroup g;
  if (!PyDict_Contains(d.ptr(), nb::str("params").ptr()))
    throw nb::type_error(fmt::format("{}: a parameter group needs a 'params' entry", op).c_str());
  for (auto [k, v] : nb::borrow<nb::dict>(d)) {
    const std::string key = nb::cast<std::string>(k);
    if (key == "params")
      g.params = tensors_from(v, op);
    else
      put_option(g.options, key, v, op);
  }
  return g;
}

// params: an iterable of tensors (one group) or of dicts ({"params": [...], "lr": ...}).
std::vector<ParamGroup> groups_from(nb::handle params, const char* op) {
  if (nb::isinstance<Tensor>(params) || !nb::hasattr(params, "__iter__"))
    throw nb::type_error(fmt::format("{}: params must be an iterable of tensors or of dicts, "
                                     "got {}",
                                     op, nb::type_name(params.type()).c_str())
                             .c_str());
  nb::list items = nb::list(params);  // consumes a generator (model.parameters()) once
  size_t dicts = 0;
  for (nb::handle h : items) dicts += PyDict_Check(h.ptr()) ? 1 : 0;
  if (dicts == 0) return {ParamGroup{tensors_from(items, op), {}}};
  if (dicts != items.size())
    throw nb::type_error(
        fmt::format("{}: params mixes tensors and parameter-group dicts", op).c_str());
  std::vector<ParamGroup> groups;
  for (nb::handle h : items) groups.push_back(group_from_dict(h, op));
  return groups;
}

// ---- param_groups as dict-like views --------------------------------------------------------

// group["lr"] reads and writes the optimizer's own group (schedulers and user code change it).
struct GroupRef {
  nb::object owner;  // the optimizer, kept alive
  size_t index;
  ParamGroup& group() const {
    auto& groups = nb::cast<Optimizer&>(owner).param_groups();
    if (index >= groups.size()) throw nb::index_error("parameter group no longer exists");
    return groups[index];
  }
};

nb::object group_getitem(const GroupRef& r, const std::string& key) {
  ParamGroup& g = r.group();
  if (key == "params") return nb::cast(g.params);
  if (!has_option(g.options, key))
    throw nb::key_error(fmt::format("parameter group has no option '{}'", key).c_str());
  return get_option(g.options, key);
}

void group_setitem(const GroupRef& r, const std::string& key, nb::handle value) {
  ParamGroup& g = r.group();
  if (key == "params")
    throw nb::type_error("param_groups: 'params' can't be replaced; use add_param_group()");
  put_option(g.options, key, value, "param_groups");
}

nb::dict group_as_dict(const GroupRef& r) {
  nb::dict d;
  d["params"] = group_getitem(r, "params");
  for (const auto& k : option_keys(r.group().options)) d[nb::str(k.c_str())] = group_getitem(r, k);
  return d;
}

void def_group_ref(nb::module_& o) {
  nb::class_<GroupRef>(o, "ParamGroup",
                       "One parameter group of an optimizer, as a dict-like view: group['lr'] "
                       "reads and writes the optimizer's value.")
      .def("__getitem__", &group_getitem, "key"_a)
      .def("__setitem__", &group_setitem, "key"_a, "value"_a)
      .def(
          "__contains__",
          [](const GroupRef& r, const std::string& k) {
            return k == "params" || has_option(r.group().options, k);
          },
          "key"_a)
      .def(
          "keys",
          [](const GroupRef& r) {
            std::vector<std::string> keys = option_keys(r.group().options);
            keys.insert(keys.begin(), "params");
            return keys;
          },
          "The option names ('params' first).")
      .def("__iter__", [](const GroupRef& r) { return nb::iter(group_as_dict(r)); })
      .def("__len__", [](const GroupRef& r) { return option_keys(r.group().options).size() + 1; })
      .def(
          "items", [](const GroupRef& r) { return group_as_dict(r).items(); },
          "(name, value) pairs.")
      .def(
          "get",
          [](const GroupRef& r, const std::string& k, nb::object dflt) {
            return k == "params" || has_option(r.group().options, k) ? group_getitem(r, k) : dflt;
          },
          "key"_a, "default"_a = nb::none(), "The option's value, or default when absent.")
      .def("__repr__", [](const GroupRef& r) { return nb::repr(group_as_dict(r)); });
}

// ---- the optimizer base -----------------------------------------------------------------------

Tensor loss_from(nb::handle r) {
  if (r.is_none()) return Tensor();
  if (nb::isinstance<Tensor>(r)) return nb::cast<Tensor>(r);
  return scalar_tensor(nb::cast<double>(r), kFloat64);
}

std::optional<Tensor> step(Optimizer& self, const std::optional<nb::callable>& closure) {
  optim::Closure c;
  if (closure) {
    // Captures a pointer: the std::function may be copied while the GIL is released.
    const nb::callable* fn = &*closure;
    c = [fn]() {
      nb::gil_scoped_acquire gil;
      return loss_from((*fn)());
    };
  }
  Tensor loss;
  {
    nb::gil_scoped_release release;  // the closure takes the GIL back
    loss = self.step(c);
  }
  return none_if_undefined(loss);
}

nb::dict defaults(const Optimizer& self) {
  nb::dict d;
  for (const auto& k : option_keys(self.defaults()))
    d[nb::str(k.c_str())] = get_option(self.defaults(), k);
  return d;
}

std::string optimizer_repr(nb::handle self) {
  const Optimizer& o = nb::cast<const Optimizer&>(self);
  std::string s = o.name() + " (";
  for (size_t g = 0; g < o.param_groups().size(); ++g) {
    s += fmt::format("\nParameter Group {}", g);
    const auto& opts = o.param_groups()[g].options;
    for (const auto& k : option_keys(opts))
      s += fmt::format("\n    {}: {}", k, nb::repr(get_option(opts, k)).c_str());
  }
  return s + "\n)";
}

void def_optimizer_base(nb::module_& o) {
  nb::class_<Optimizer>(o, "Optimizer",
                        "Base of the optimizers: parameter groups, step(), zero_grad(), state "
                        "dicts.")
      .def("step", &step, "closure"_a = nb::none(),
           "One optimization step (a closure re-evaluates the loss and calls backward; LBFGS "
           "needs one). Returns the closure's loss, or None.")
      .def("zero_grad", &Optimizer::zero_grad, "set_to_none"_a = true,
           "Drops every parameter's gradient (set_to_none) or fills it with zeros.")
      .def(
          "add_param_group",
          [](Optimizer& self, nb::handle group) {
            if (!PyDict_Check(group.ptr()))
              throw nb::type_error("add_param_group: expected a dict with a 'params' entry");
            self.add_param_group(group_from_dict(group, "add_param_group"));
          },
          "param_group"_a, "Adds parameters with their own options (missing ones: the defaults).")
      .def_prop_ro(
          "param_groups",
          [](nb::handle self) {
            nb::list out;
            const size_t n = nb::cast<Optimizer&>(self).param_groups().size();
            for (size_t i = 0; i < n; ++i) out.append(GroupRef{nb::borrow(self), i});
            return out;
          },
          "The parameter groups, as dict-like views (group['lr'] = 0.01 changes it).")
      .def_prop_ro("defaults", &defaults, "The constructor's options.")
      .def(
          "state_dict",
          [](const Optimizer& self) { return state_dict_to_python(self.state_dict()); },
          "A snapshot of the options and per-parameter state as a flat dict of tensors: "
          "'param_groups.<g>.<option>', 'param_groups.<g>.params', 'state.<i>.<name>'.")
      .def(
          "load_state_dict",
          [](Optimizer& self, nb::handle sd) {
            self.load_state_dict(state_dict_from(sd, "Optimizer.load_state_dict"));
          },
          "state_dict"_a,
          "Restores state_dict() of the same optimizer over parameters of the same shapes "
          "(ValueError naming the key otherwise; nothing changes then).")
      .def("__repr__", &optimizer_repr);
}

// ---- the optimizers ---------------------------------------------------------------------------

void def_sgd_adam(nb::module_& o) {
  nb::class_<optim::SGD, Optimizer>(o, "SGD", "Stochastic gradient descent with momentum.")
      .def(
          "__init__",
          [](optim::SGD* self, nb::handle params, double lr, double momentum, double dampening,
             double weight_decay, bool nesterov, bool maximize) {
            auto groups = groups_from(params, "SGD");
            new (self) optim::SGD(
                std::move(groups),
                optim::SGDOptions{lr, momentum, dampening, weight_decay, nesterov, maximize});
          },
          "params"_a, "lr"_a = 1e-3, "momentum"_a = 0.0, "dampening"_a = 0.0,
          "weight_decay"_a = 0.0, "nesterov"_a = false, nb::kw_only(), "maximize"_a = false);
  using Betas = std::pair<double, double>;
  nb::class_<optim::Adam, Optimizer>(o, "Adam", "Adam, with L2 weight decay added to the gradient.")
      .def(
          "__init__",
          [](optim::Adam* self, nb::handle params, double lr, Betas betas, double eps,
             double weight_decay, bool amsgrad, bool maximize) {
            auto groups = groups_from(params, "Adam");
            new (self) optim::Adam(std::move(groups),
                                   optim::AdamOptions{lr, betas.first, betas.second, eps,
                                                      weight_decay, amsgrad, maximize});
          },
          "params"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8,
          "weight_decay"_a = 0.0, "amsgrad"_a = false, nb::kw_only(), "maximize"_a = false);
  nb::class_<optim::AdamW, Optimizer>(o, "AdamW", "Adam with decoupled weight decay.")
      .def(
          "__init__",
          [](optim::AdamW* self, nb::handle params, double lr, Betas betas, double eps,
             double weight_decay, bool amsgrad, bool maximize) {
            auto groups = groups_from(params, "AdamW");
            new (self) optim::AdamW(std::move(groups),
                                    optim::AdamWOptions{lr, betas.first, betas.second, eps,
                                                        weight_decay, amsgrad, maximize});
          },
          "params"_a, "lr"_a = 1e-3, "betas"_a = std::make_pair(0.9, 0.999), "eps"_a = 1e-8,
          "weight_decay"_a = 1e-2, "amsgrad"_a = false, nb::kw_only(), "maximize"_a = false);
}

void def_rmsprop_adagrad_lbfgs(nb::module_& o) {
  nb::class_<optim::RMSprop, Optimizer>(o, "RMSprop", "RMSprop (optionally centered, momentum).")
      .def(
          "__init__",
          [](optim::RMSprop* self, nb::handle params, double lr, double alpha, double eps,
             double weight_decay, double momentum, bool centered, bool maximize) {
            auto groups = groups_from(params, "RMSprop");
            new (self) optim::RMSprop(
                std::move(groups),
                optim::RMSpropOptions{lr, alpha, eps, weight_decay, momentum, centered, maximize});
          },
          "params"_a, "lr"_a = 1e-2, "alpha"_a = 0.99, "eps"_a = 1e-8, "weight_decay"_a = 0.0,
          "momentum"_a = 0.0, "centered"_a = false, nb::kw_only(), "maximize"_a = false);
  nb::class_<optim::Adagrad, Optimizer>(o, "Adagrad", "Adagrad.")
      .def(
          "__init__",
          [](optim::Adagrad* self, nb::handle params, double lr, double lr_decay,
             double weight_decay, double initial_accumulator_value, double eps, bool maximize) {
            auto groups = groups_from(params, "Adagrad");
            new (self) optim::Adagrad(
                std::move(groups), optim::AdagradOptions{lr, lr_decay, weight_decay,
                                                         initial_accumulator_value, eps, maximize});
          },
          "params"_a, "lr"_a = 1e-2, "lr_decay"_a = 0.0, "weight_decay"_a = 0.0,
          "initial_accumulator_value"_a = 0.0, "eps"_a = 1e-10, nb::kw_only(),
          "maximize"_a = false);
  nb::class_<optim::LBFGS, Optimizer>(
      o, "LBFGS", "L-BFGS: step(closure) runs up to max_iter iterations (one parameter group).")
      .def(
          "__init__",
          [](optim::LBFGS* self, nb::handle params, double lr, int64_t max_iter,
             std::optional<int64_t> max_eval, double tolerance_grad, double tolerance_change,
             int64_t history_size, std::optional<std::string> line_search_fn) {
            auto groups = groups_from(params, "LBFGS");
            if (groups.size() != 1 || !groups[0].options.empty())
              fail<ValueError>("LBFGS",
                               "doesn't support per-parameter options (parameter "
                               "groups)");
            new (self) optim::LBFGS(
                std::move(groups[0].params),
                optim::LBFGSOptions{lr, max_iter, max_eval, tolerance_grad, tolerance_change,
                                    history_size, line_search_fn.value_or("")});
          },
          "params"_a, "lr"_a = 1.0, "max_iter"_a = 20, "max_eval"_a = nb::none(),
          "tolerance_grad"_a = 1e-7, "tolerance_change"_a = 1e-9, "history_size"_a = 100,
          "line_search_fn"_a = nb::none());
}

void def_clipping(nb::module_& o) {
  o.def(
       "clip_grad_norm_",
       [](nb::handle params, double max_norm, double norm_type, bool error_if_nonfinite,
          std::optional<bool>) {
         std::vector<Tensor> ps = tensors_from(params, "clip_grad_norm_");
         return optim::clip_grad_norm_(ps, max_norm, norm_type, error_if_nonfinite);
       },
       "parameters"_a, "max_norm"_a, "norm_type"_a = 2.0, "error_if_nonfinite"_a = false,
       "foreach"_a = nb::none(),
       "Scales the gradients so that their joint norm is at most max_norm; returns the norm "
       "before clipping.")
      .def(
          "clip_grad_value_",
          [](nb::handle params, double clip_value, std::optional<bool>) {
            optim::clip_grad_value_(tensors_from(params, "clip_grad_value_"), clip_value);
          },
          "parameters"_a, "clip_value"_a, "foreach"_a = nb::none(),
          "Clamps every gradient element into [-clip_value, clip_value].");
}

}  // namespace

void init_optim(nb::module_& m) {
  nb::module_ o = m.def_submodule("_optim", "Optimizers, LR schedulers and gradient clipping.");
  def_group_ref(o);
  def_optimizer_base(o);
  def_sgd_adam(o);
  def_rmsprop_adagrad_lbfgs(o);
  def_clipping(o);
  init_optim_schedulers(o);
}

}  // namespace tessera::py
