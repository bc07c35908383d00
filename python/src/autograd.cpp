// tessera._C._autograd: the C++ side of tessera.autograd and tessera.func. Grad-mode guards,
// autograd.grad/backward, custom functions, checkpointing and the function transforms, all on
// flat lists of tensors; the Python files add context managers, decorators and pytrees.
//
// GIL: entry points that run autograd or a transform release the GIL. Python callables reach
// C++ through nanobind's std::function caster, which takes the GIL before calling Python and
// before dropping its reference, so a graph node holding one may run or die on any thread.
#include <nanobind/stl/function.h>

#include <new>
#include <thread>

#include "bind.h"

namespace tessera::py {
namespace {

using OptTensors = std::vector<std::optional<Tensor>>;

// None <-> undefined tensor, both ways (a gradient that does not exist, an unused input).
std::vector<Tensor> from_opt(const OptTensors& ts) {
  std::vector<Tensor> out;
  out.reserve(ts.size());
  for (const auto& t : ts) out.push_back(t.value_or(Tensor()));
  return out;
}

OptTensors to_opt(const std::vector<Tensor>& ts) {
  OptTensors out;
  out.reserve(ts.size());
  for (const Tensor& t : ts) out.push_back(t.defined() ? std::optional<Tensor>(t) : std::nullopt);
  return out;
}

// ---- grad modes -----------------------------------------------------------------------------

enum class Mode { NoGrad, EnableGrad, Inference, Anomaly };

Mode parse_mode(const std::string& name) {
  if (name == "no_grad") return Mode::NoGrad;
  if (name == "enable_grad") return Mode::EnableGrad;
  if (name == "inference_mode") return Mode::Inference;
  if (name == "anomaly") return Mode::Anomaly;
  fail<ValueError>("ModeGuard", "unknown mode '{}' (no_grad, enable_grad, inference_mode, anomaly)",
                   name);
}

// One of the library's mode guards, held from enter() to exit(); Python's `with` pairs the two.
// The modes are per thread, so exit() must run on the thread that entered. A guard that is
// never exited keeps its mode (a plain `set_grad_enabled(False)` call relies on this): the
// destructor deliberately does not restore, which is why the guards live in a union.
class ModeGuard {
 public:
  explicit ModeGuard(const std::string& mode) : mode_(parse_mode(mode)) {}
  ~ModeGuard() {}  // NOLINT: variant members are not destroyed on purpose (see above)
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

  void enter() {
    if (entered_) fail<Error>("ModeGuard", "entered twice");
    switch (mode_) {
      case Mode::NoGrad:
        new (&no_grad_) autograd::NoGradGuard();
        break;
      case Mode::EnableGrad:
        new (&enable_grad_) autograd::EnableGradGuard();
        break;
      case Mode::Inference:
        new (&inference_) autograd::InferenceMode();
        break;
      case Mode::Anomaly:
        new (&anomaly_) autograd::AnomalyMode();
        break;
    }
    entered_ = true;
    thread_ = std::this_thread::get_id();
  }

  void exit() {
    if (!entered_) fail<Error>("ModeGuard", "exit() without enter()");
    if (thread_ != std::this_thread::get_id())
      fail<Error>("ModeGuard",
                  "a grad mode must be left on the thread that entered it (the modes are "
                  "per thread)");
    switch (mode_) {
      case Mode::NoGrad:
        no_grad_.~NoGradGuard();
        break;
      case Mode::EnableGrad:
        enable_grad_.~EnableGradGuard();
        break;
      case Mode::Inference:
        inference_.~InferenceMode();
        break;
      case Mode::Anomaly:
        anomaly_.~AnomalyMode();
        break;
    }
    entered_ = false;
  }

 private:
  Mode mode_;
  bool entered_ = false;
  std::thread::id thread_;
  union {
    autograd::NoGradGuard no_grad_;
    autograd::EnableGradGuard enable_grad_;
    autograd::InferenceMode inference_;
    autograd::AnomalyMode anomaly_;
  };
};

// is_grad_enabled() is "grad mode on and not in inference mode"; with grad mode forced on,
// what is left is the inference bit.
bool is_inference_mode_enabled() {
  autograd::EnableGradGuard on;
  return !autograd::is_grad_enabled();
}

void bind_modes(nb::module_& a) {
  nb::class_<ModeGuard>(a, "ModeGuard",
                        "Holds one grad-mode guard ('no_grad', 'enable_grad', 'inference_mode' "
                        "or 'anomaly') between enter() and exit() on one thread.")
      .def(nb::init<const std::string&>(), nb::arg("mode"))
      .def("enter", &ModeGuard::enter, "Turns the mode on, remembering the previous state.")
      .def("exit", &ModeGuard::exit, "Restores the state enter() found (same thread only).");
  a.def("is_grad_enabled", &autograd::is_grad_enabled,
        "Whether ops are recorded for autograd on this thread.");
  a.def("is_inference_mode_enabled", &is_inference_mode_enabled,
        "Whether this thread is in inference mode.");
  a.def("is_anomaly_enabled", &autograd::is_anomaly_enabled,
        "Whether backward checks every gradient for NaN/Inf on this thread.");
}

// ---- autograd.grad / backward -----------------------------------------------------------------

OptTensors grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                const OptTensors& grad_outputs, std::optional<bool> retain_graph, bool create_graph,
                bool allow_unused) {
  autograd::GradOptions opt{retain_graph.value_or(create_graph), create_graph, allow_unused};
  std::vector<Tensor> seeds = from_opt(grad_outputs);
  std::vector<Tensor> res;
  {
    nb::gil_scoped_release release;  // hooks and custom functions take the GIL back
    res = autograd::grad(outputs, inputs, seeds, opt);
  }
  return to_opt(res);
}

void backward(const std::vector<Tensor>& tensors, const OptTensors& grad_tensors,
              std::optional<bool> retain_graph, bool create_graph) {
  std::vector<Tensor> seeds = from_opt(grad_tensors);
  nb::gil_scoped_release release;
  autograd::backward(tensors, seeds, retain_graph.value_or(create_graph), create_graph);
}

// ---- custom functions and checkpointing -----------------------------------------------------

// Python's forward returns (outputs, tensors to save, non-differentiable outputs); its backward
// gets the saved tensors (version-checked by the C++ ctx) and one gradient per output. The
// Python ctx object (with the user's attributes) lives in the Python closures.
using PyForward = std::function<std::tuple<std::vector<Tensor>, OptTensors, std::vector<Tensor>>(
    const std::vector<Tensor>&)>;
using PyBackward = std::function<OptTensors(const OptTensors& saved, const OptTensors& grads)>;

std::vector<Tensor> apply_function(const std::string& name, const PyForward& py_forward,
                                   const PyBackward& py_backward,
                                   const std::vector<Tensor>& inputs) {
  autograd::CustomForward forward = [&py_forward](autograd::FunctionCtx& ctx,
                                                  const std::vector<Tensor>& in) {
    auto [outs, saved, non_diff] = py_forward(in);
    ctx.save_for_backward(from_opt(saved));
    ctx.mark_non_differentiable(std::move(non_diff));
    return outs;
  };
  autograd::CustomBackward backward = [py_backward](autograd::FunctionCtx& ctx,
                                                    const std::vector<Tensor>& grads) {
    return from_opt(py_backward(to_opt(ctx.saved()), to_opt(grads)));
  };
  nb::gil_scoped_release release;
  return autograd::apply_function(name, forward, backward, inputs);
}

std::vector<Tensor> checkpoint(const TensorsFn& fn, const std::vector<Tensor>& inputs) {
  nb::gil_scoped_release release;  // backward reruns fn, possibly on another thread
  return autograd::checkpoint(fn, inputs);
}

void bind_functions(nb::module_& a) {
  a.def("grad", &grad, nb::arg("outputs"), nb::arg("inputs"), nb::arg("grad_outputs"),
        nb::arg("retain_graph").none(), nb::arg("create_graph"), nb::arg("allow_unused"),
        "Gradients of the outputs with respect to the inputs (None for unused inputs).");
  a.def("backward", &backward, nb::arg("tensors"), nb::arg("grad_tensors"),
        nb::arg("retain_graph").none(), nb::arg("create_graph"),
        "Accumulates the gradients of several outputs into the leaves' .grad.");
  a.def("apply_function", &apply_function, nb::arg("name"), nb::arg("forward"), nb::arg("backward"),
        nb::arg("inputs"),
        "Runs forward without recording and records one node whose backward is the given "
        "callable.");
  a.def("checkpoint", &checkpoint, nb::arg("fn"), nb::arg("inputs"),
        "Runs fn without saving activations; backward recomputes them.");
}

// ---- function transforms --------------------------------------------------------------------

std::pair<Tensor, std::vector<Tensor>> value_and_grad(const TensorsFn& f,
                                                      const std::vector<Tensor>& args,
                                                      const std::vector<int64_t>& argnums) {
  auto vg = tessera::value_and_grad(f, argnums);
  nb::gil_scoped_release release;
  return vg(args);
}

using PullFn = std::function<std::vector<Tensor>(const OptTensors&)>;

std::pair<std::vector<Tensor>, PullFn> vjp(const TensorsFn& f, const std::vector<Tensor>& primals) {
  std::pair<std::vector<Tensor>, TensorsFn> res;
  {
    nb::gil_scoped_release release;
    res = tessera::vjp(f, primals);
  }
  PullFn pull = [pull = std::move(res.second)](const OptTensors& cotangents) {
    std::vector<Tensor> cot = from_opt(cotangents);
    nb::gil_scoped_release release;
    return pull(cot);
  };
  return {std::move(res.first), std::move(pull)};
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(const TensorsFn& f,
                                                        const std::vector<Tensor>& primals,
                                                        const std::vector<Tensor>& tangents) {
  nb::gil_scoped_release release;
  return tessera::jvp(f, primals, tangents);
}

// The batch dim of every output comes out at dim 0; Python moves it to out_axes (the number
// of outputs is only known once f has run).
std::vector<Tensor> vmap(const TensorsFn& f, const std::vector<Tensor>& args,
                         const std::vector<std::optional<int64_t>>& in_axes) {
  TensorsFn mapped = tessera::vmap(f, in_axes);
  nb::gil_scoped_release release;
  return mapped(args);
}

// Jacobian blocks of f with respect to args[argnums]: blocks[o][k] has shape
// outputs[o].shape + args[argnums[k]].shape. The differentiated arguments are packed into one
// flat vector (and the outputs into another) so that the library's single-tensor
// jacrev/jacfwd do the work; packing and unpacking are recorded ops, so the blocks stay
// differentiable and jacfwd(jacrev(f)) gives Hessians.
std::vector<std::vector<Tensor>> jacobian(const TensorsFn& f, const std::vector<Tensor>& args,
                                          const std::vector<int64_t>& argnums, bool forward) {
  const char* op = forward ? "jacfwd" : "jacrev";
  std::vector<Tensor> parts;
  for (int64_t k : argnums) {
    if (k < 0 || k >= static_cast<int64_t>(args.size()))
      fail<IndexError>(op, "argnums entry {} is out of range for {} tensors", k, args.size());
    parts.push_back(args[k].reshape({-1}));
  }
  if (parts.empty()) fail<ValueError>(op, "no arguments to differentiate (argnums is empty)");
  std::vector<Tensor> out_meta;  // the last call's outputs, for their shapes
  TensorFn packed = [&](const Tensor& x) {
    std::vector<Tensor> a = args;
    int64_t at = 0;
    for (int64_t k : argnums) {
      const int64_t n = args[k].numel();
      a[k] = x.narrow(0, at, n).reshape(args[k].shape()).to(args[k].dtype());
      at += n;
    }
    std::vector<Tensor> outs = f(a), flat;
    if (outs.empty()) fail<ValueError>(op, "the function returned no tensors");
    for (const Tensor& o : outs) flat.push_back(o.reshape({-1}));
    out_meta = outs;
    return cat(flat, 0);
  };
  Tensor j;
  {
    nb::gil_scoped_release release;
    j = forward ? tessera::jacfwd(packed)(cat(parts, 0)) : tessera::jacrev(packed)(cat(parts, 0));
  }
  std::vector<std::vector<Tensor>> blocks(out_meta.size());
  int64_t row = 0;
  for (size_t o = 0; o < out_meta.size(); ++o) {
    const int64_t rows = out_meta[o].numel();
    int64_t col = 0;
    for (int64_t k : argnums) {
      Shape s = out_meta[o].shape();
      s.insert(s.end(), args[k].shape().begin(), args[k].shape().end());
      blocks[o].push_back(j.narrow(0, row, rows).narrow(1, col, args[k].numel()).reshape(s));
      col += args[k].numel();
    }
    row += rows;
  }
  return blocks;
}

void bind_transforms(nb::module_& a) {
  a.def("value_and_grad", &value_and_grad, nb::arg("f"), nb::arg("args"), nb::arg("argnums"),
        "f(args)[0] (a scalar) and its gradients with respect to args[argnums].");
  a.def("vjp", &vjp, nb::arg("f"), nb::arg("primals"),
        "f's outputs at primals and the function mapping output cotangents (None: zero) to "
        "input cotangents.");
  a.def("jvp", &jvp, nb::arg("f"), nb::arg("primals"), nb::arg("tangents"),
        "f's outputs at primals and their tangents along `tangents` (forward mode).");
  a.def("vmap", &vmap, nb::arg("f"), nb::arg("args"), nb::arg("in_axes"),
        "Maps f over the in_axes dims of args (None: shared); outputs are batched at dim 0.");
  a.def("jacobian", &jacobian, nb::arg("f"), nb::arg("args"), nb::arg("argnums"),
        nb::arg("forward"),
        "Jacobian blocks [output][argnum] of f, by reverse (jacrev) or forward (jacfwd) mode.");
}

}  // namespace

void init_autograd(nb::module_& m) {
  nb::module_ a = m.def_submodule(
      "_autograd", "C++ side of tessera.autograd and tessera.func (use those modules)");
  bind_modes(a);
  bind_functions(a);
  bind_transforms(a);
}

}  // namespace tessera::py
