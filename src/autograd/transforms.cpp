// Function transforms on top of the engine (grad, vjp), the forward-mode layer (jvp) and
// the vmap layer. Inside vmap, a differentiated input is first given one leading dim per vmap
// level (to_canonical): each example then has its own copy, so reverse mode on the physical
// tensors yields per-example gradients (vmap(grad(f)) with a shared weight gives one gradient
// per example, not their sum).
#include "tessera/autograd/transforms.h"

#include "autograd/rules.h"
#include "autograd/vmap.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/shape.h"

namespace tessera {
namespace {

using autograd::from_canonical;
using autograd::needs_grad;
using autograd::to_canonical;

thread_local int t_grad_transforms = 0;  // reverse-mode transforms running on this thread

struct GradTransformScope {
  GradTransformScope() { ++t_grad_transforms; }
  ~GradTransformScope() { --t_grad_transforms; }
  GradTransformScope(const GradTransformScope&) = delete;
  GradTransformScope& operator=(const GradTransformScope&) = delete;
};

// A fresh tensor to differentiate with respect to: a new node of its own (so gradients are
// captured there and never confused with another transform's input), connected to x's
// history when x has one (so an enclosing transform can differentiate the result).
Tensor differentiable_input(const Tensor& x, std::string_view op, size_t index) {
  Tensor c = to_canonical(x);
  if (!rules::is_differentiable(c.dtype()))
    fail<DTypeError>(op,
                     "argument {} has dtype {}; only floating point inputs can be differentiated",
                     index, dtype_name(c.dtype()));
  autograd::EnableGradGuard grad_on;
  if (needs_grad(c)) return c.view(c.shape());
  Tensor leaf = c.detach();
  if (const AutogradMeta* m = autograd::meta_if(c))  // an enclosing jvp's tangents stay
    autograd::meta_of(leaf).tangents = m->tangents;
  leaf.requires_grad_(true);
  return leaf;
}

struct Lifted {
  std::vector<Tensor> args;      // what f receives
  std::vector<Tensor> physical;  // the differentiated inputs, canonical layout
  bool outer = false;            // an enclosing transform needs gradients of the results
};

Lifted lift(const std::vector<Tensor>& args, const std::vector<int64_t>& argnums,
            std::string_view op) {
  Lifted l{args, {}, t_grad_transforms > 1};
  for (int64_t k : argnums) {
    if (k < 0 || k >= static_cast<int64_t>(args.size()))
      fail<IndexError>(op, "argnums entry {} is out of range for {} arguments", k, args.size());
    l.outer = l.outer || needs_grad(to_canonical(args[k]));
    Tensor c = differentiable_input(args[k], op, static_cast<size_t>(k));
    l.physical.push_back(c);
    l.args[k] = from_canonical(c);
  }
  return l;
}

std::vector<Tensor> pull_back(const Lifted& l, const std::vector<Tensor>& outs,
                              const std::vector<Tensor>& cotangents, bool retain) {
  std::vector<Tensor> roots, seeds;
  for (size_t o = 0; o < outs.size(); ++o) {
    if (!outs[o].defined() || !cotangents[o].defined()) continue;
    if (!needs_grad(outs[o])) continue;
    roots.push_back(outs[o]);
    seeds.push_back(to_canonical(cotangents[o]).to(outs[o].dtype()).contiguous());
  }
  std::vector<Tensor> res(l.physical.size());
  if (!roots.empty())
    res = autograd::grad(roots, l.physical, seeds, {retain, l.outer, /*allow_unused=*/true});
  for (size_t k = 0; k < res.size(); ++k)
    res[k] = from_canonical(res[k].defined() ? res[k] : zeros_like(l.physical[k]));
  return res;
}

std::pair<Tensor, std::vector<Tensor>> value_and_grad_impl(const TensorsFn& f,
                                                           const std::vector<Tensor>& args,
                                                           const std::vector<int64_t>& argnums) {
  GradTransformScope scope;
  Lifted l = lift(args, argnums, "grad");
  std::vector<Tensor> outs;
  {
    autograd::EnableGradGuard grad_on;
    outs = f(l.args);
  }
  if (outs.empty() || !outs[0].defined())
    fail<ValueError>("grad", "the function returned no output");
  if (outs[0].numel() != 1)
    fail<ValueError>("grad", "the function must return a scalar, got shape {}",
                     shape_str(outs[0].shape()));
  Tensor phys = to_canonical(outs[0]);
  std::vector<Tensor> g = pull_back(l, {phys}, {ones_like(outs[0])}, false);
  return {l.outer ? outs[0] : outs[0].detach(), std::move(g)};
}

struct FwdLevel {
  int level = autograd::push_fwd_level();
  ~FwdLevel() { autograd::pop_fwd_level(level); }
};

struct VmapLevel {
  int level;
  explicit VmapLevel(int64_t batch) : level(autograd::push_vmap_level(batch)) {}
  ~VmapLevel() { autograd::pop_vmap_level(level); }
};

}  // namespace

TensorsFn grad(TensorsFn f, std::vector<int64_t> argnums) {
  return [f = std::move(f), argnums = std::move(argnums)](const std::vector<Tensor>& args) {
    return value_and_grad_impl(f, args, argnums).second;
  };
}

TensorFn grad(TensorFn f) {
  return [f = std::move(f)](const Tensor& x) {
    TensorsFn g = [&f](const std::vector<Tensor>& a) { return std::vector<Tensor>{f(a[0])}; };
    return value_and_grad_impl(g, {x}, {0}).second[0];
  };
}

std::function<std::pair<Tensor, std::vector<Tensor>>(const std::vector<Tensor>&)> value_and_grad(
    TensorsFn f, std::vector<int64_t> argnums) {
  return [f = std::move(f), argnums = std::move(argnums)](const std::vector<Tensor>& args) {
    return value_and_grad_impl(f, args, argnums);
  };
}

std::pair<std::vector<Tensor>, TensorsFn> vjp(TensorsFn f, const std::vector<Tensor>& primals) {
  GradTransformScope scope;
  std::vector<int64_t> all(primals.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  auto l = std::make_shared<Lifted>(lift(primals, all, "vjp"));
  std::vector<Tensor> outs;
  {
    autograd::EnableGradGuard grad_on;
    outs = f(l->args);
  }
  auto phys = std::make_shared<std::vector<Tensor>>();
  std::vector<Shape> shapes;
  for (const Tensor& o : outs) {
    phys->push_back(to_canonical(o));
    shapes.push_back(o.shape());
  }
  TensorsFn pull = [l, phys, shapes](const std::vector<Tensor>& cot) {
    if (cot.size() != shapes.size())
      fail<ValueError>("vjp", "got {} cotangents for {} outputs", cot.size(), shapes.size());
    for (size_t o = 0; o < cot.size(); ++o)
      if (cot[o].defined() && cot[o].shape() != shapes[o])
        fail<ShapeError>("vjp", "cotangent {} has shape {}, the output has shape {}", o,
                         shape_str(cot[o].shape()), shape_str(shapes[o]));
    GradTransformScope scope;
    return pull_back(*l, *phys, cot, /*retain=*/true);
  };
  return {outs, pull};
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(TensorsFn f,
                                                        const std::vector<Tensor>& primals,
                                                        const std::vector<Tensor>& tangents) {
  if (primals.size() != tangents.size())
    fail<ValueError>("jvp", "got {} tangents for {} primals", tangents.size(), primals.size());
  for (size_t i = 0; i < primals.size(); ++i)
    if (tangents[i].shape() != primals[i].shape())
      fail<ShapeError>("jvp", "tangent {} has shape {}, its primal has shape {}", i,
                       shape_str(tangents[i].shape()), shape_str(primals[i].shape()));
  FwdLevel level;
  std::vector<Tensor> args(primals.size());
  for (size_t i = 0; i < primals.size(); ++i) {
    Tensor c = autograd::history_alias(to_canonical(primals[i]));
    if (rules::is_differentiable(c.dtype()))
      autograd::set_tangent(c, level.level, rules::to_dtype(to_canonical(tangents[i]), c.dtype()));
    args[i] = from_canonical(c);
  }
  std::vector<Tensor> outs = f(args), values, out_tangents;
  for (const Tensor& o : outs) {
    Tensor p = to_canonical(o);
    Tensor t = autograd::tangent_at(p, level.level);
    values.push_back(from_canonical(autograd::history_alias(p)));
    out_tangents.push_back(from_canonical(t.defined() ? t : zeros_like(p)));
  }
  return {values, out_tangents};
}

TensorsFn vmap(TensorsFn f, std::vector<std::optional<int64_t>> in_axes,
               std::vector<int64_t> out_axes) {
  return [f = std::move(f), in_axes = std::move(in_axes),
          out_axes = std::move(out_axes)](const std::vector<Tensor>& args) {
    std::vector<std::optional<int64_t>> axes = in_axes;
    if (axes.empty()) axes.assign(args.size(), 0);
    if (axes.size() != args.size())
      fail<ValueError>("vmap", "in_axes has {} entries for {} inputs", axes.size(), args.size());
    int64_t batch = -1;
    for (size_t i = 0; i < args.size(); ++i) {
      if (!axes[i]) continue;
      if (*axes[i] < -args[i].dim() || *axes[i] >= std::max<int64_t>(args[i].dim(), 1) ||
          args[i].dim() == 0)
        fail<IndexError>("vmap", "in_axes[{}] = {} is out of range for input {} of shape {}", i,
                         *axes[i], i, shape_str(args[i].shape()));
      axes[i] = wrap_dim(*axes[i], args[i].dim(), "vmap");
      const int64_t n = args[i].shape()[*axes[i]];
      if (batch >= 0 && n != batch)
        fail<ShapeError>("vmap", "inputs have different sizes along in_axes: {} and {} (input {})",
                         batch, n, i);
      batch = n;
    }
    if (batch < 0) fail<ValueError>("vmap", "no input is mapped (every in_axes entry is None)");
    VmapLevel level(batch);
    std::vector<Tensor> wrapped(args);
    for (size_t i = 0; i < args.size(); ++i)
      if (axes[i]) wrapped[i] = autograd::wrap_batched(args[i], level.level, *axes[i]);
    std::vector<Tensor> outs = f(wrapped);
    if (!out_axes.empty() && out_axes.size() != outs.size())
      fail<ValueError>("vmap", "out_axes has {} entries for {} outputs", out_axes.size(),
                       outs.size());
    for (size_t o = 0; o < outs.size(); ++o) {
      const int64_t axis = out_axes.empty() ? 0 : out_axes[o];
      const autograd::Batched* b = autograd::batch_of(outs[o]);
      if (b && b->level == level.level) {
        outs[o] = movedim(b->value, b->bdim, wrap_dim(axis, b->value.dim(), "vmap"));
        continue;
      }
      const int64_t d = wrap_dim(axis, outs[o].dim() + 1, "vmap");  // shared by every example
      Shape s = outs[o].shape();
      s.insert(s.begin() + d, batch);
      outs[o] = outs[o].unsqueeze(d).expand(s);
    }
    return outs;
  };
}

TensorFn vmap(TensorFn f, int64_t in_axis, int64_t out_axis) {
  TensorsFn g = vmap(
      [f = std::move(f)](const std::vector<Tensor>& a) { return std::vector<Tensor>{f(a[0])}; },
      {in_axis}, {out_axis});
  return [g](const Tensor& x) { return g({x})[0]; };
}

TensorFn jacrev(TensorFn f) {
  return [f = std::move(f)](const Tensor& x) {
    auto [outs, pull] =
        vjp([&f](const std::vector<Tensor>& a) { return std::vector<Tensor>{f(a[0])}; }, {x});
    const Tensor& y = outs[0];
    Shape js = y.shape();
    js.insert(js.end(), x.shape().begin(), x.shape().end());
    const int64_t n = y.numel();
    if (n == 0 || x.numel() == 0) return zeros(js, x.dtype());
    Tensor basis = eye(n, n, y.dtype());
    std::vector<Tensor> rows;
    for (int64_t i = 0; i < n; ++i)
      rows.push_back(pull({basis.select(0, i).reshape(y.shape())})[0]);
    return stack(rows, 0).reshape(js);
  };
}

TensorFn jacfwd(TensorFn f) {
  return [f = std::move(f)](const Tensor& x) {
    TensorsFn g = [&f](const std::vector<Tensor>& a) { return std::vector<Tensor>{f(a[0])}; };
    const int64_t m = x.numel();
    Tensor basis = eye(std::max<int64_t>(m, 1), std::max<int64_t>(m, 1), x.dtype());
    std::vector<Tensor> cols;
    Shape ys;
    for (int64_t j = 0; j < m; ++j) {
      auto [values, tans] = jvp(g, {x}, {basis.select(0, j).narrow(0, 0, m).reshape(x.shape())});
      ys = values[0].shape();
      cols.push_back(tans[0].reshape({-1}));
    }
    if (m == 0) ys = f(x).shape();
    Shape js = ys;
    js.insert(js.end(), x.shape().begin(), x.shape().end());
    if (m == 0 || checked_numel(ys, "jacfwd") == 0) return zeros(js, x.dtype());
    return stack(cols, -1).reshape(js);
  };
}

TensorFn hessian(TensorFn f) { return jacfwd(jacrev(std::move(f))); }

}  // namespace tessera
