// Helpers shared by the rule files, and the generic rules (linear jvp, elementwise batching).
#include <algorithm>
#include <array>

#include "autograd/rules.h"
#include "tessera/autograd/autograd.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/reduce.h"

namespace tessera::rules {

// Complex autograd is not implemented: complex tensors carry no gradients (and cannot be
// marked requires_grad), so no rule is ever asked for one.
bool is_differentiable(DType dt) { return is_floating(dt); }

Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - static_cast<int64_t>(shape.size());
  if (lead < 0)
    fail<ShapeError>("sum_to", "cannot sum {} down to {}", shape_str(g.shape()), shape_str(shape));
  Dims dims;
  for (int64_t d = 0; d < lead; ++d) dims.push_back(d);
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] == 1 && g.shape()[lead + d] != 1) dims.push_back(lead + static_cast<int64_t>(d));
  Tensor s = dims.empty() ? g : sum(g, dims, /*keepdim=*/true);
  return s.reshape(shape);
}

namespace {
thread_local bool t_wanted_active = false;  // false: not in a backward step
thread_local uint64_t t_wanted = 0;
}  // namespace

bool grad_wanted(size_t i) { return !t_wanted_active || i >= 64 || ((t_wanted >> i) & 1) != 0; }

WantedGradsScope::WantedGradsScope(uint64_t wanted)
    : prev_active_(t_wanted_active), prev_wanted_(t_wanted) {
  t_wanted_active = true;
  t_wanted = wanted;
}
WantedGradsScope::~WantedGradsScope() {
  t_wanted_active = prev_active_;
  t_wanted = prev_wanted_;
}

Tensor or_zeros(const Tensor& t, const Tensor& like) { return t.defined() ? t : zeros_like(like); }

Tensor add_opt(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

Tensor to_dtype(const Tensor& g, DType dtype) {
  return g.defined() && g.dtype() != dtype ? cast(g, dtype) : g;
}

Tensor stand_in(const Tensor& t) {
  if (t.device() != Device::cpu())
    return zeros({}, TensorOptions(t.dtype(), t.device())).expand(t.shape());
  // One zero element per dtype and thread, viewed with zero strides: no dispatch, no
  // allocation per recorded op.
  thread_local std::array<Tensor, kNumDTypes> zero;
  Tensor& z = zero[static_cast<size_t>(t.dtype())];
  if (!z.defined()) {
    autograd::NoGradGuard no_grad;
    z = zeros({1}, t.dtype());
  }
  return Tensor::make(z.storage(), t.shape(), Strides(t.shape().size(), 0), 0, t.dtype());
}

JvpFn jvp_linear(const Primitive& p) {
  return [&p](Inputs in, Inputs out, Inputs tangents, const Attrs& a) {
    std::vector<Tensor> args(in.begin(), in.end());
    bool any = false;
    for (size_t i = 0; i < in.size(); ++i) {
      if (!is_differentiable(in[i].dtype())) continue;
      any = any || tangents[i].defined();
      args[i] = or_zeros(tangents[i], in[i]);
    }
    std::vector<Tensor> res(out.size());
    if (!any) return res;
    std::vector<Tensor> t = dispatch(p, args, a);
    for (size_t o = 0; o < out.size(); ++o)
      if (is_differentiable(out[o].dtype())) res[o] = std::move(t[o]);
    return res;
  };
}

int64_t batch_size(Inputs in, std::span<const int64_t> bdims, std::string_view op) {
  int64_t b = -1;
  for (size_t i = 0; i < in.size(); ++i) {
    if (bdims[i] < 0) continue;
    const int64_t n = in[i].shape()[bdims[i]];
    if (b >= 0 && n != b)
      fail<ShapeError>(op, "vmap: batched inputs have batch sizes {} and {}", b, n);
    b = n;
  }
  if (b < 0) fail<ValueError>(op, "vmap batch rule called without a batched input");
  return b;
}

Tensor bdim_to_front(const Tensor& x, int64_t bdim) { return bdim <= 0 ? x : movedim(x, bdim, 0); }

Tensor batched_front(const Tensor& x, int64_t bdim, int64_t batch) {
  if (bdim >= 0) return bdim_to_front(x, bdim);
  Shape s = x.shape();
  s.insert(s.begin(), batch);
  return x.unsqueeze(0).expand(s);
}

std::vector<Tensor> align_for_broadcast(Inputs in, std::span<const int64_t> bdims) {
  int64_t rank = 0;
  for (size_t i = 0; i < in.size(); ++i) rank = std::max(rank, logical_rank(in[i], bdims[i]));
  std::vector<Tensor> out(in.begin(), in.end());
  for (size_t i = 0; i < in.size(); ++i) {
    if (bdims[i] < 0) continue;
    Tensor x = bdim_to_front(in[i], bdims[i]);
    Shape s = x.shape();
    s.insert(s.begin() + 1, rank - logical_rank(in[i], bdims[i]), 1);
    out[i] = x.reshape(s);
  }
  return out;
}

BatchFn batch_elementwise(const Primitive& p) {
  return [&p](Inputs in, std::span<const int64_t> bdims, const Attrs& a,
              std::vector<int64_t>& out_bdims) {
    std::vector<Tensor> args = align_for_broadcast(in, bdims);
    std::vector<Tensor> out = dispatch(p, args, a);
    out_bdims.assign(out.size(), 0);
    return out;
  };
}

void register_vjp_skips(Registry& r) {
  // Linear in their floating inputs: the vjp needs only shapes (and index inputs).
  for (const char* name :
       {"view",      "permute",    "slice",        "select", "expand",  "squeeze",     "unsqueeze",
        "diagonal",  "clone",      "cast",         "copy_",  "add",     "sub",         "neg",
        "sum",       "mean",       "cat",          "flip",   "roll",    "repeat",      "pad",
        "tril",      "triu",       "index_select", "gather", "scatter", "scatter_add", "index",
        "index_put", "index_put_", "masked_fill",  "cumsum"})
    r.get(name).vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;
  r.get("as_strided").vjp_skips = kVjpSkipsOutputs;                    // reads the input's strides
  r.get("where").vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;  // reads the condition
  // Derivatives written with the inputs only.
  for (const char* name :
       {"abs",       "acos",   "asin",    "atan",     "atan2",  "clamp", "cos",
        "cosh",      "erf",    "gelu",    "lerp",     "log",    "log1p", "log2",
        "logsumexp", "matmul", "maximum", "minimum",  "mul",    "prod",  "remainder",
        "silu",      "sin",    "sinh",    "softplus", "square", "var"})
    r.get(name).vjp_skips = kVjpSkipsOutputs;
  // Derivatives written with the outputs only (indices of max_dim/min_dim are outputs).
  for (const char* name :
       {"exp", "exp2", "expm1", "log_softmax", "max_dim", "min_dim", "reciprocal", "relu", "rsqrt",
        "sigmoid", "softmax", "sqrt", "tan", "tanh"})
    r.get(name).vjp_skips = kVjpSkipsFloatInputs;
  // Piecewise constant: zero gradients need neither.
  for (const char* name : {"ceil", "floor", "round", "sign", "trunc"})
    r.get(name).vjp_skips = kVjpSkipsFloatInputs | kVjpSkipsOutputs;
}

}  // namespace tessera::rules
