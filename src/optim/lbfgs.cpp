// L-BFGS with an optional strong-Wolfe line search: torch.optim.LBFGS's algorithm, step for
// step. The parameters are handled as one flat vector; scalars (step lengths, curvature) are
// doubles. Its state lives with the first parameter, with the history as numbered entries
// ("old_dirs.0", "old_stps.0", "ro.0", ...).
//
// Everything is tensor ops on the parameters' device, so CUDA parameters work as they are. The
// host reads a device scalar only where the algorithm branches on it, as PyTorch does: the loss
// per evaluation, the stopping tests, the descent test (gtd), the curvature test (y.s, read
// with y.y in one copy) and the line search's directional derivatives. The two-loop recursion
// keeps its coefficients as 0-d float64 tensors on the device, so it reads nothing back (it
// would otherwise wait on the device twice per history entry).
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"
#include "tessera/optim/optimizer.h"

namespace tessera::optim {
namespace {

double to_double(const Tensor& t) { return t.item<double>(); }
double dotd(const Tensor& a, const Tensor& b) { return to_double(dot(a, b)); }
double max_abs(const Tensor& t) { return to_double(abs(t).max()); }
// a . b as a 0-d float64 tensor on their device: the value dotd would read, left unread.
Tensor dot64(const Tensor& a, const Tensor& b) { return dot(a, b).to(kFloat64); }

// The parameters seen as one flat vector.
class Flat {
 public:
  explicit Flat(const std::vector<Tensor>& params) : params_(params) {}

  // The gradients, concatenated (zeros for parameters without one); always a new tensor.
  Tensor gather_grad() const {
    std::vector<Tensor> views;
    for (const Tensor& p : params_) {
      const Tensor g = p.grad();
      views.push_back(g.defined() ? g.reshape({-1}).to(p.device()).to(p.dtype())
                                  : zeros({p.numel()}, TensorOptions(p.dtype(), p.device())));
    }
    return cat(views, 0);
  }
  // params += t * d
  void add(double t, const Tensor& d) const {
    int64_t offset = 0;
    for (const Tensor& p : params_) {
      Tensor(p).add_(d.narrow(0, offset, p.numel()).view(p.shape()) * t);
      offset += p.numel();
    }
  }
  std::vector<Tensor> clone() const {
    std::vector<Tensor> out;
    for (const Tensor& p : params_) out.push_back(p.clone());
    return out;
  }
  void set(const std::vector<Tensor>& x) const {
    for (size_t i = 0; i < params_.size(); ++i) Tensor(params_[i]).copy_(x[i]);
  }

 private:
  std::vector<Tensor> params_;
};

// L-BFGS's state between steps (PyTorch's state dict entries of the first parameter).
struct History {
  int64_t func_evals = 0, n_iter = 0;
  Tensor d, prev_flat_grad;  // undefined before the first iteration
  double t = 0, H_diag = 1, prev_loss = 0;
  std::deque<Tensor> old_dirs, old_stps;
  std::deque<double> ro;
};

int64_t count_of(const StateDict& s, const std::string& key) {
  const auto it = s.find(key);
  return it == s.end() ? 0 : it->second.item<int64_t>();
}

History read_history(const StateDict& s) {
  History h;
  h.func_evals = count_of(s, "func_evals");
  h.n_iter = count_of(s, "n_iter");
  if (!s.count("d")) return h;
  h.d = s.at("d");
  h.prev_flat_grad = s.at("prev_flat_grad");
  h.t = to_double(s.at("t"));
  h.H_diag = to_double(s.at("H_diag"));
  h.prev_loss = to_double(s.at("prev_loss"));
  for (size_t j = 0; s.count(fmt::format("old_dirs.{}", j)); ++j) {
    h.old_dirs.push_back(s.at(fmt::format("old_dirs.{}", j)));
    h.old_stps.push_back(s.at(fmt::format("old_stps.{}", j)));
    h.ro.push_back(to_double(s.at(fmt::format("ro.{}", j))));
  }
  return h;
}

void write_history(const History& h, StateDict& s) {
  s.clear();
  s["func_evals"] = scalar_tensor(h.func_evals, kInt64);
  s["n_iter"] = scalar_tensor(h.n_iter, kInt64);
  if (!h.d.defined()) return;
  s["d"] = h.d;
  s["prev_flat_grad"] = h.prev_flat_grad;
  s["t"] = scalar_tensor(h.t, kFloat64);
  s["H_diag"] = scalar_tensor(h.H_diag, kFloat64);
  s["prev_loss"] = scalar_tensor(h.prev_loss, kFloat64);
  for (size_t j = 0; j < h.old_dirs.size(); ++j) {
    s[fmt::format("old_dirs.{}", j)] = h.old_dirs[j];
    s[fmt::format("old_stps.{}", j)] = h.old_stps[j];
    s[fmt::format("ro.{}", j)] = scalar_tensor(h.ro[j], kFloat64);
  }
}

// Minimizer of the cubic through (x1, f1, g1) and (x2, f2, g2), clamped to the bounds
// (default: the interval between the points); the midpoint when the cubic has no minimum.
double cubic_interpolate(double x1, double f1, double g1, double x2, double f2, double g2,
                         std::optional<std::pair<double, double>> bounds = {}) {
  const auto [lo, hi] = bounds ? *bounds : std::pair{std::min(x1, x2), std::max(x1, x2)};
  const double d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2);
  const double d2_square = d1 * d1 - g1 * g2;
  if (d2_square < 0) return (lo + hi) / 2.0;
  const double d2 = std::sqrt(d2_square);
  const double min_pos = x1 <= x2 ? x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
                                  : x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2));
  return std::min(std::max(min_pos, lo), hi);
}

struct Evaluation {
  double f;
  Tensor g;
};
using ObjFunc = std::function<Evaluation(double t)>;  // loss and gradient at x + t * d

struct LineSearchResult {
  double f;
  Tensor g;
  double t;
  int64_t evals;
};

// A point on the line: step t, loss f, gradient g, directional derivative gtd.
struct Point {
  double t, f;
  Tensor g;
  double gtd;
};

// Zoom phase of the strong-Wolfe search: shrinks the bracket [b[0], b[1]] until a point meets
// the conditions, the bracket is tiny, or the evaluations run out.
Point zoom(const ObjFunc& obj, const Tensor& d, const Point& start, std::array<Point, 2> b,
           double c1, double c2, double tolerance_change, int64_t max_ls, int64_t* ls_iter,
           int64_t* evals) {
  const double d_norm = max_abs(d);
  bool insuf_progress = false;
  int low = b[0].f <= b[1].f ? 0 : 1;
  while (*ls_iter < max_ls) {
    if (std::abs(b[1].t - b[0].t) * d_norm < tolerance_change) break;
    double t = cubic_interpolate(b[0].t, b[0].f, b[0].gtd, b[1].t, b[1].f, b[1].gtd);
    // Keep the trial point at least 10% of the bracket away from its ends.
    const double hi_t = std::max(b[0].t, b[1].t), lo_t = std::min(b[0].t, b[1].t);
    const double eps = 0.1 * (hi_t - lo_t);
    if (std::min(hi_t - t, t - lo_t) < eps) {
      if (insuf_progress || t >= hi_t || t <= lo_t) {
        t = std::abs(t - hi_t) < std::abs(t - lo_t) ? hi_t - eps : lo_t + eps;
        insuf_progress = false;
      } else {
        insuf_progress = true;
      }
    } else {
      insuf_progress = false;
    }
    Evaluation ev = obj(t);
    ++*evals;
    ++*ls_iter;
    const Point p{t, ev.f, ev.g, dotd(ev.g, d)};
    const int high = 1 - low;
    if (p.f > start.f + c1 * t * start.gtd || p.f >= b[low].f) {
      b[high] = p;  // Armijo fails or no lower than the lowest point: p becomes the high end
      low = b[0].f <= b[1].f ? 0 : 1;
      continue;
    }
    if (std::abs(p.gtd) <= -c2 * start.gtd) return p;           // strong Wolfe conditions hold
    if (p.gtd * (b[high].t - b[low].t) >= 0) b[high] = b[low];  // the old low becomes high
    b[low] = p;
  }
  return b[low];
}

// Strong-Wolfe line search from step t along d (PyTorch's _strong_wolfe, after minFunc).
LineSearchResult strong_wolfe(const ObjFunc& obj, double t, const Tensor& d, double f,
                              const Tensor& g, double gtd, double tolerance_change) {
  constexpr double c1 = 1e-4, c2 = 0.9;
  constexpr int64_t max_ls = 25;
  const Point start{0, f, g, gtd};
  Evaluation ev = obj(t);
  int64_t evals = 1, ls_iter = 0;
  Point prev = start, cur{t, ev.f, ev.g, dotd(ev.g, d)};
  // Bracket an interval containing a point that satisfies the conditions.
  std::optional<std::array<Point, 2>> bracket;
  while (ls_iter < max_ls) {
    const bool armijo_fails = cur.f > f + c1 * cur.t * gtd || (ls_iter > 1 && cur.f >= prev.f);
    if (!armijo_fails && std::abs(cur.gtd) <= -c2 * gtd) return {cur.f, cur.g, cur.t, evals};
    if (armijo_fails || cur.gtd >= 0) {
      bracket = std::array<Point, 2>{prev, cur};
      break;
    }
    const double min_step = cur.t + 0.01 * (cur.t - prev.t), max_step = cur.t * 10;
    const double next_t =
        cubic_interpolate(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, {{min_step, max_step}});
    prev = cur;
    ev = obj(next_t);
    ++evals;
    cur = Point{next_t, ev.f, ev.g, dotd(ev.g, d)};
    ++ls_iter;
  }
  if (ls_iter == max_ls) {  // out of evaluations: no zoom, take the better end of [0, t]
    const Point& best = start.f <= cur.f ? start : cur;
    return {best.f, best.g, best.t, evals};
  }
  const Point p = zoom(obj, d, start, *bracket, c1, c2, tolerance_change, max_ls, &ls_iter, &evals);
  return {p.f, p.g, p.t, evals};
}

// The L-BFGS direction: minus the inverse Hessian estimate times the gradient (two-loop
// recursion with PyTorch's single buffer). al and be are 0-d float64 tensors holding exactly
// the doubles a host loop would compute; multiplying a vector by one rounds it to the vector's
// dtype first, as a number would be, so the CPU result is the same bit for bit.
Tensor lbfgs_direction(const History& h, const Tensor& flat_grad) {
  const size_t num_old = h.old_dirs.size();
  std::vector<Tensor> al(num_old);
  Tensor q = neg(flat_grad);
  for (size_t k = num_old; k-- > 0;) {
    al[k] = dot64(h.old_stps[k], q) * h.ro[k];
    q.add_(h.old_dirs[k] * neg(al[k]));
  }
  Tensor r = q * h.H_diag;
  for (size_t k = 0; k < num_old; ++k) {
    const Tensor be_i = dot64(h.old_dirs[k], r) * h.ro[k];
    r.add_(h.old_stps[k] * (al[k] - be_i));
  }
  return r;
}

// Adds the last step to the history when the curvature is positive enough.
void update_history(History& h, const Tensor& flat_grad, int64_t history_size) {
  const Tensor y = flat_grad - h.prev_flat_grad;
  const Tensor s = h.d * h.t;
  // y.s decides whether the pair is kept; y.y comes along in the same copy to the host.
  const std::vector<double> dots =
      stack({dot64(y, s), dot64(y, y)}).to(Device::cpu()).to_vector<double>();
  const double ys = dots[0], yy = dots[1];
  if (ys <= 1e-10) return;
  if (static_cast<int64_t>(h.old_dirs.size()) == history_size) {
    h.old_dirs.pop_front();
    h.old_stps.pop_front();
    h.ro.pop_front();
  }
  h.old_dirs.push_back(y);
  h.old_stps.push_back(s);
  h.ro.push_back(1.0 / ys);
  h.H_diag = ys / yy;
}

}  // namespace

GroupOptions LBFGSOptions::to_map() const {
  TS_CHECK(line_search_fn.empty() || line_search_fn == "strong_wolfe", ValueError, "LBFGS",
           "line_search_fn must be \"\" or \"strong_wolfe\", got \"{}\"", line_search_fn);
  return {{"lr", lr},
          {"max_iter", static_cast<double>(max_iter)},
          {"max_eval", static_cast<double>(max_eval.value_or(max_iter * 5 / 4))},
          {"tolerance_grad", tolerance_grad},
          {"tolerance_change", tolerance_change},
          {"history_size", static_cast<double>(history_size)},
          {"strong_wolfe", line_search_fn.empty() ? 0.0 : 1.0}};
}

LBFGSOptions LBFGSOptions::from_map(const GroupOptions& o) {
  LBFGSOptions r;
  r.lr = o.at("lr");
  r.max_iter = static_cast<int64_t>(o.at("max_iter"));
  r.max_eval = static_cast<int64_t>(o.at("max_eval"));
  r.tolerance_grad = o.at("tolerance_grad");
  r.tolerance_change = o.at("tolerance_change");
  r.history_size = static_cast<int64_t>(o.at("history_size"));
  r.line_search_fn = o.at("strong_wolfe") != 0 ? "strong_wolfe" : "";
  return r;
}

LBFGS::LBFGS(std::vector<Tensor> params, LBFGSOptions options)
    : Optimizer("LBFGS", options.to_map()) {
  for (const Tensor& p : params) {
    if (!p.defined() || !params[0].defined()) continue;
    TS_CHECK(p.dtype() == params[0].dtype(), DTypeError, "LBFGS",
             "all parameters must have one dtype (got {} and {})", dtype_name(params[0].dtype()),
             dtype_name(p.dtype()));
    // The parameters are one flat vector (cat), so they must share a device.
    TS_CHECK(p.device() == params[0].device(), DeviceError, "LBFGS",
             "all parameters must be on one device (got {} and {})", params[0].device().str(),
             p.device().str());
  }
  init_groups({ParamGroup{std::move(params), {}}});
}

// Tensor ops only (see the top of this file): CUDA parameters need no kernel of their own.
bool LBFGS::supports_device(const Device& device) const {
  return device.is_cpu() || device.is_cuda();
}

void LBFGS::check_options(const GroupOptions& o) const {
  for (const char* k : {"max_iter", "max_eval", "history_size"}) {
    const double v = o.at(k);
    TS_CHECK(v >= 1 && v == std::floor(v), ValueError, name(),
             "invalid {} = {} (must be an "
             "integer >= 1)",
             k, v);
  }
  for (const char* k : {"lr", "tolerance_grad", "tolerance_change"})
    TS_CHECK(o.at(k) >= 0, ValueError, name(), "invalid {} = {} (must be >= 0)", k, o.at(k));
}

Optimizer::StateKind LBFGS::state_kind(std::string_view name) const {
  if (name == "func_evals" || name == "n_iter") return StateKind::kCount;
  if (name == "t" || name == "H_diag" || name == "prev_loss") return StateKind::kScalar;
  if (name == "d" || name == "prev_flat_grad") return StateKind::kFlat;
  const auto numbered = [&](std::string_view prefix) {
    if (name.substr(0, prefix.size()) != prefix || name.size() == prefix.size()) return false;
    return std::all_of(name.begin() + prefix.size(), name.end(),
                       [](char c) { return c >= '0' && c <= '9'; });
  };
  if (numbered("old_dirs.") || numbered("old_stps.")) return StateKind::kFlat;
  return numbered("ro.") ? StateKind::kScalar : StateKind::kUnknown;
}

void LBFGS::check_param_state(const std::string& prefix, const StateDict& state) const {
  const std::string op = "LBFGS.load_state_dict";
  size_t k = 0;
  while (state.count(fmt::format("old_dirs.{}", k))) ++k;
  size_t listed = 0;
  for (const auto& kv : state)
    listed += kv.first.rfind("old_dirs.", 0) == 0 || kv.first.rfind("old_stps.", 0) == 0 ||
              kv.first.rfind("ro.", 0) == 0;
  for (size_t j = 0; j < k; ++j)
    for (const char* list : {"old_stps", "ro"})
      TS_CHECK(state.count(fmt::format("{}.{}", list, j)), ValueError, op,
               "{}{}.{} is missing (the history has {} entries)", prefix, list, j, k);
  TS_CHECK(listed == 3 * k, ValueError, op, "{}old_dirs/old_stps/ro are not numbered 0..{} alike",
           prefix, k);
  const bool has_d = state.count("d") > 0;
  for (const char* key : {"prev_flat_grad", "t", "H_diag", "prev_loss"})
    TS_CHECK(state.count(key) == (has_d ? 1u : 0u), ValueError, op,
             "{}{} must be present exactly when {}d is", prefix, key, prefix);
  TS_CHECK(has_d || k == 0, ValueError, op, "{}d is missing but the history has {} entries", prefix,
           k);
}

Tensor LBFGS::do_step(const Closure& closure) {
  TS_CHECK(static_cast<bool>(closure), ValueError, "LBFGS.step",
           "needs a closure that re-evaluates the loss and calls backward");
  TS_CHECK(param_groups().size() == 1, ValueError, "LBFGS.step",
           "LBFGS doesn't support parameter groups (it has {})", param_groups().size());
  autograd::NoGradGuard no_grad;
  const ParamGroup& group = param_groups()[0];
  const LBFGSOptions o = LBFGSOptions::from_map(group.options);
  const Flat flat(group.params);
  const auto evaluate = [&]() {
    autograd::EnableGradGuard grad_on;
    return closure();
  };
  StateDict& state = mutable_state(group.params[0]);
  History h = read_history(state);

  const Tensor orig_loss = evaluate();
  double loss = to_double(orig_loss);
  int64_t current_evals = 1;
  h.func_evals += 1;
  Tensor flat_grad = flat.gather_grad();
  bool opt_cond = max_abs(flat_grad) <= o.tolerance_grad;
  if (opt_cond) {
    write_history(h, state);
    return orig_loss;
  }
  for (int64_t n_iter = 1; n_iter <= o.max_iter; ++n_iter) {
    h.n_iter += 1;
    if (h.n_iter == 1) {  // steepest descent to start
      h.d = neg(flat_grad);
      h.old_dirs.clear();
      h.old_stps.clear();
      h.ro.clear();
      h.H_diag = 1;
    } else {
      update_history(h, flat_grad, o.history_size);
      h.d = lbfgs_direction(h, flat_grad);
    }
    h.prev_flat_grad = flat_grad.clone();
    h.prev_loss = loss;
    // The first step is scaled by the gradient so it cannot overshoot wildly.
    h.t = h.n_iter == 1 ? std::min(1.0, 1.0 / to_double(abs(flat_grad).sum())) * o.lr : o.lr;
    const double gtd = dotd(flat_grad, h.d);
    if (gtd > -o.tolerance_change) break;  // not a descent direction any more

    int64_t ls_func_evals = 0;
    if (!o.line_search_fn.empty()) {
      const std::vector<Tensor> x_init = flat.clone();
      const ObjFunc obj = [&](double t) {
        flat.add(t, h.d);
        const double f = to_double(evaluate());
        Tensor g = flat.gather_grad();
        flat.set(x_init);
        return Evaluation{f, g};
      };
      const LineSearchResult ls =
          strong_wolfe(obj, h.t, h.d, loss, flat_grad, gtd, o.tolerance_change);
      loss = ls.f;
      flat_grad = ls.g;
      h.t = ls.t;
      ls_func_evals = ls.evals;
      flat.add(h.t, h.d);
      opt_cond = max_abs(flat_grad) <= o.tolerance_grad;
    } else {
      flat.add(h.t, h.d);
      if (n_iter != o.max_iter) {  // the last iteration's loss would go unused
        loss = to_double(evaluate());
        flat_grad = flat.gather_grad();
        opt_cond = max_abs(flat_grad) <= o.tolerance_grad;
        ls_func_evals = 1;
      }
    }
    current_evals += ls_func_evals;
    h.func_evals += ls_func_evals;

    if (n_iter == o.max_iter || current_evals >= *o.max_eval || opt_cond) break;
    if (max_abs(h.d * h.t) <= o.tolerance_change) break;           // no progress in x
    if (std::abs(loss - h.prev_loss) < o.tolerance_change) break;  // nor in the loss
  }
  write_history(h, state);
  return orig_loss;
}

}  // namespace tessera::optim
