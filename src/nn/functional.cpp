// nn::functional: linear layers, normalization, dropout, embedding, activations, attention,
// composed of public differentiable ops.
#include "tessera/nn/functional.h"

#include <cmath>
#include <limits>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"
#include "tessera/ops/linalg.h"
#include "tessera/ops/reduce.h"

namespace tessera::nn {

std::vector<int64_t> Ints::expand(size_t n, std::string_view op, std::string_view what) const {
  if (v.size() == n) return v;
  TS_CHECK(v.size() == 1, ValueError, op, "{} needs 1 or {} values, got {}", what, n,
           fmt::join(v, ", "));
  return std::vector<int64_t>(n, v[0]);
}

}  // namespace tessera::nn

namespace tessera::nn::functional {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

void check_defined(const Tensor& t, std::string_view op, std::string_view what) {
  TS_CHECK(t.defined(), ValueError, op, "{} is undefined", what);
}

// The shape (1, C, 1, ..., 1) that lines a per-channel vector up with x (N, C, *).
Shape channel_shape(const Tensor& x) {
  Shape s(static_cast<size_t>(x.dim()), 1);
  s[1] = x.size(1);
  return s;
}

// The dims of x that are reduced for per-channel statistics: all but dim 1.
Dims all_but_channel(const Tensor& x) {
  Dims d{0};
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}

// The last n dims, as negative indices.
Dims trailing_dims(size_t n) {
  Dims d;
  for (auto i = static_cast<int64_t>(n); i > 0; --i) d.push_back(-i);
  return d;
}

void check_trailing(const Tensor& x, const Shape& shape, std::string_view op) {
  const auto k = static_cast<int64_t>(shape.size());
  bool ok = k > 0 && x.dim() >= k;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.size(x.dim() - k + i) == shape[i];
  TS_CHECK(ok, ShapeError, op, "expected input with trailing dims {}, got {}", shape_str(shape),
           shape_str(x.shape()));
}

void check_vector(const Tensor& t, int64_t n, std::string_view op, std::string_view what) {
  if (!t.defined()) return;
  TS_CHECK(t.dim() == 1 && t.size(0) == n, ShapeError, op, "{} must have shape {}, got {}", what,
           shape_str({n}), shape_str(t.shape()));
}

Tensor affine(Tensor y, const Tensor& w, const Tensor& b, const Shape& shape) {
  if (w.defined()) y = y * w.reshape(shape);
  if (b.defined()) y = y + b.reshape(shape);
  return y;
}

// Machine epsilon per floating dtype (torch.finfo(dtype).eps), rms_norm's default.
double dtype_eps(DType t) {
  if (t == kFloat64) return std::numeric_limits<double>::epsilon();
  if (t == kFloat16) return 0.0009765625;
  if (t == kBFloat16) return 0.0078125;
  return std::numeric_limits<float>::epsilon();
}

}  // namespace

// ---- linear -----------------------------------------------------------------------------------

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  check_defined(x, "linear", "input");
  check_defined(w, "linear", "weight");
  TS_CHECK(w.dim() == 2, ShapeError, "linear", "weight must be 2-d (out, in), got {}",
           shape_str(w.shape()));
  TS_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), ShapeError, "linear",
           "expected input with last dim {}, got {}", w.size(1), shape_str(x.shape()));
  check_vector(b, w.size(0), "linear", "bias");
  Tensor y = matmul(x, w.t());
  // The bias joins in the product's dtype, as in PyTorch's one-op linear (addmm): under
  // autocast the product is 16-bit, and so is the layer's output.
  return b.defined() ? y + b.to(y.dtype()) : y;
}

Tensor bilinear(const Tensor& x1, const Tensor& x2, const Tensor& w, const Tensor& b) {
  check_defined(w, "bilinear", "weight");
  TS_CHECK(w.dim() == 3, ShapeError, "bilinear", "weight must be 3-d (out, in1, in2), got {}",
           shape_str(w.shape()));
  const int64_t out = w.size(0), in1 = w.size(1), in2 = w.size(2);
  TS_CHECK(x1.dim() >= 1 && x1.size(-1) == in1, ShapeError, "bilinear",
           "expected input1 with last dim {}, got {}", in1, shape_str(x1.shape()));
  TS_CHECK(x2.dim() >= 1 && x2.size(-1) == in2, ShapeError, "bilinear",
           "expected input2 with last dim {}, got {}", in2, shape_str(x2.shape()));
  Shape lead(x1.shape().begin(), x1.shape().end() - 1);
  TS_CHECK(Shape(x2.shape().begin(), x2.shape().end() - 1) == lead, ShapeError, "bilinear",
           "inputs must have the same leading dims, got {} and {}", shape_str(x1.shape()),
           shape_str(x2.shape()));
  check_vector(b, out, "bilinear", "bias");
  // t[n, k, j] = sum_i x1[n, i] w[k, i, j]; y[n, k] = sum_j t[n, k, j] x2[n, j].
  const Tensor a = x1.reshape({-1, in1}), c = x2.reshape({-1, in2});
  const Tensor t = matmul(a, w.permute({1, 0, 2}).reshape({in1, out * in2}));
  Tensor y = (t.reshape({-1, out, in2}) * c.unsqueeze(1)).sum({2});
  if (b.defined()) y = y + b;
  lead.push_back(out);
  return y.reshape(lead);
}

// ---- normalization ----------------------------------------------------------------------------

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  check_defined(x, "batch_norm", "input");
  TS_CHECK(x.dim() >= 2, ShapeError, "batch_norm", "expected input (N, C, *), got {}",
           shape_str(x.shape()));
  const int64_t c = x.size(1);
  for (auto [t, what] : {std::pair{&running_mean, "running_mean"},
                         {&running_var, "running_var"},
                         {&weight, "weight"},
                         {&bias, "bias"}})
    check_vector(*t, c, "batch_norm", what);
  const Shape cs = channel_shape(x);
  if (!training) {
    TS_CHECK(running_mean.defined() && running_var.defined(), ValueError, "batch_norm",
             "eval mode needs running_mean and running_var");
    const Tensor inv = rsqrt(running_var.to(x.dtype()) + eps);
    return affine((x - running_mean.to(x.dtype()).reshape(cs)) * inv.reshape(cs), weight, bias, cs);
  }
  const int64_t n = x.numel() / std::max<int64_t>(c, 1);
  TS_CHECK(n > 1, ValueError, "batch_norm",
           "expected more than 1 value per channel when training, got input {}",
           shape_str(x.shape()));
  const Dims dims = all_but_channel(x);
  const Tensor mean = tessera::mean(x, dims), var = tessera::var(x, dims, 0);
  if (running_mean.defined() && running_var.defined()) {
    autograd::NoGradGuard no_grad;  // running statistics are state, not part of the graph
    const double unbias = static_cast<double>(n) / static_cast<double>(n - 1);
    Tensor rm = running_mean, rv = running_var;
    rm.mul_(1.0 - momentum).add_((mean.detach() * momentum).to(rm.dtype()));
    rv.mul_(1.0 - momentum).add_((var.detach() * (momentum * unbias)).to(rv.dtype()));
  }
  return affine((x - mean.reshape(cs)) * rsqrt(var + eps).reshape(cs), weight, bias, cs);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  check_defined(x, "layer_norm", "input");
  check_trailing(x, normalized_shape, "layer_norm");
  for (auto [t, what] : {std::pair{&weight, "weight"}, {&bias, "bias"}})
    TS_CHECK(!t->defined() || t->shape() == normalized_shape, ShapeError, "layer_norm",
             "{} must have shape {}, got {}", what, shape_str(normalized_shape),
             shape_str(t->shape()));
  // One fused primitive (a read of x and a write of y); weight and bias in x's dtype, or all
  // three in their common one, as the composite's promotion gave.
  DType dt = x.dtype();
  for (const Tensor* t : {&weight, &bias})
    if (t->defined()) dt = promote_types(dt, t->dtype());
  auto as = [dt](const Tensor& t) { return t.defined() && t.dtype() != dt ? t.to(dt) : t; };
  return std::get<0>(native_layer_norm(as(x), static_cast<int64_t>(normalized_shape.size()),
                                       as(weight), as(bias), eps));
}

Tensor group_norm(const Tensor& x, int64_t num_groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  check_defined(x, "group_norm", "input");
  TS_CHECK(x.dim() >= 2, ShapeError, "group_norm", "expected input (N, C, *), got {}",
           shape_str(x.shape()));
  const int64_t c = x.size(1);
  TS_CHECK(num_groups > 0 && c % num_groups == 0, ValueError, "group_norm",
           "{} channels can't be split into {} groups", c, num_groups);
  check_vector(weight, c, "group_norm", "weight");
  check_vector(bias, c, "group_norm", "bias");
  const int64_t per_group = x.numel() / std::max<int64_t>(x.size(0) * num_groups, 1);
  const Tensor g = x.reshape({x.size(0), num_groups, per_group});
  const Tensor mean = tessera::mean(g, {2}, true), var = tessera::var(g, {2}, 0, true);
  const Tensor y = ((g - mean) * rsqrt(var + eps)).reshape(x.shape());
  return affine(y, weight, bias, channel_shape(x));
}

Tensor rms_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                std::optional<double> eps) {
  check_defined(x, "rms_norm", "input");
  check_trailing(x, normalized_shape, "rms_norm");
  TS_CHECK(!weight.defined() || weight.shape() == normalized_shape, ShapeError, "rms_norm",
           "weight must have shape {}, got {}", shape_str(normalized_shape),
           shape_str(weight.shape()));
  const Dims dims = trailing_dims(normalized_shape.size());
  const double e = eps.value_or(dtype_eps(x.dtype()));
  const Tensor y = x * rsqrt(tessera::mean(square(x), dims, true) + e);
  return weight.defined() ? y * weight : y;
}

// ---- dropout and embedding --------------------------------------------------------------------

Tensor dropout(const Tensor& x, double p, bool training) {
  TS_CHECK(p >= 0.0 && p <= 1.0, ValueError, "dropout", "p must be in [0, 1], got {}", p);
  check_defined(x, "dropout", "input");
  if (!training || p == 0.0) return x;
  TS_CHECK(is_floating(x.dtype()), DTypeError, "dropout", "needs a floating-point input, got {}",
           dtype_name(x.dtype()));
  if (p == 1.0) return x * 0.0;  // keeps the graph: the gradient is zero too
  const Tensor keep = bernoulli(x.shape(), 1.0 - p, {x.dtype(), x.device()});
  return x * (keep * (1.0 / (1.0 - p)));
}

Tensor embedding(const Tensor& indices, const Tensor& weight, std::optional<int64_t> padding_idx) {
  check_defined(indices, "embedding", "indices");
  check_defined(weight, "embedding", "weight");
  TS_CHECK(is_integral(indices.dtype()), DTypeError, "embedding",
           "indices must be integers, got {}", dtype_name(indices.dtype()));
  TS_CHECK(weight.dim() == 2, ShapeError, "embedding", "weight must be 2-d (num, dim), got {}",
           shape_str(weight.shape()));
  const int64_t num = weight.size(0);
  // Inside vmap the values can't be read; index_select still rejects bad indices itself.
  if (indices.numel() > 0 && !indices.impl().batched) {
    const auto lo = amin(indices).item<int64_t>(), hi = amax(indices).item<int64_t>();
    const int64_t bad = lo < 0 ? lo : hi;
    TS_CHECK(lo >= 0 && hi < num, IndexError, "embedding",
             "index {} is out of range for {} embeddings", bad, num);
  }
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.size(1));
  Tensor y = index_select(weight, 0, indices.reshape({-1}).to(kInt64)).reshape(out_shape);
  if (!padding_idx) return y;
  const int64_t pad_row = *padding_idx < 0 ? *padding_idx + num : *padding_idx;
  TS_CHECK(pad_row >= 0 && pad_row < num, IndexError, "embedding",
           "padding_idx {} is out of range for {} embeddings", *padding_idx, num);
  // The padding row's value is used as is but passes no gradient back to the weight.
  return where(eq(indices, pad_row).unsqueeze(-1), y.detach(), y);
}

// ---- activations ------------------------------------------------------------------------------

Tensor relu(const Tensor& x) { return tessera::relu(x); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return where(gt(x, 0), x, x * negative_slope);
}
Tensor elu(const Tensor& x, double alpha) {
  // expm1 sees only the non-positive part, so large x can't overflow into a NaN gradient.
  return where(gt(x, 0), x, expm1(clamp(x, std::nullopt, Scalar(0))) * alpha);
}
Tensor gelu(const Tensor& x, std::string_view approximate) { return tessera::gelu(x, approximate); }
Tensor silu(const Tensor& x) { return tessera::silu(x); }
Tensor mish(const Tensor& x) { return x * tessera::tanh(tessera::softplus(x)); }
Tensor tanh(const Tensor& x) { return tessera::tanh(x); }
Tensor sigmoid(const Tensor& x) { return tessera::sigmoid(x); }
Tensor softplus(const Tensor& x, double beta, double threshold) {
  return tessera::softplus(x, beta, threshold);
}
Tensor softmax(const Tensor& x, int64_t dim) { return tessera::softmax(x, dim); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return tessera::log_softmax(x, dim); }

// ---- attention --------------------------------------------------------------------------------

namespace {

void check_attention(const Tensor& q, const Tensor& k, const Tensor& v) {
  for (auto [t, what] : {std::pair{&q, "query"}, {&k, "key"}, {&v, "value"}}) {
    check_defined(*t, "scaled_dot_product_attention", what);
    TS_CHECK(t->dim() >= 2, ShapeError, "scaled_dot_product_attention",
             "{} must have at least 2 dims (*, L, E), got {}", what, shape_str(t->shape()));
  }
  TS_CHECK(q.size(-1) == k.size(-1), ShapeError, "scaled_dot_product_attention",
           "query and key must have the same embedding size, got {} and {}", shape_str(q.shape()),
           shape_str(k.shape()));
  TS_CHECK(k.size(-2) == v.size(-2), ShapeError, "scaled_dot_product_attention",
           "key and value must have the same sequence length, got {} and {}", shape_str(k.shape()),
           shape_str(v.shape()));
}

// scores where allowed, -inf elsewhere (allowed broadcasts against scores).
Tensor mask_scores(const Tensor& scores, const Tensor& allowed) {
  return where(allowed, scores, full({}, -kInf, scores.dtype()));
}

}  // namespace

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    const Tensor& attn_mask, double dropout_p, bool is_causal,
                                    std::optional<double> scale) {
  check_attention(q, k, v);
  TS_CHECK(!(is_causal && attn_mask.defined()), ValueError, "scaled_dot_product_attention",
           "give either attn_mask or is_causal, not both");
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  Tensor scores = matmul(q, k.mT()) * s;
  if (is_causal) {
    const int64_t L = q.size(-2), S = k.size(-2);
    scores = mask_scores(scores, le(arange(S).unsqueeze(0), arange(L).unsqueeze(1)));
  } else if (attn_mask.defined()) {
    if (attn_mask.dtype() == kBool)
      scores = mask_scores(scores, attn_mask);
    else if (is_floating(attn_mask.dtype()))
      scores = scores + attn_mask;
    else
      fail<DTypeError>("scaled_dot_product_attention",
                       "attn_mask must be bool or floating point, got {}",
                       dtype_name(attn_mask.dtype()));
  }
  Tensor attn = tessera::softmax(scores, -1);
  if (dropout_p > 0.0) attn = dropout(attn, dropout_p, true);
  return matmul(attn, v);
}

}  // namespace tessera::nn::functional
