// Loss functions and loss modules.
#include "tessera/nn/loss.h"

#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/indexing.h"
#include "tessera/ops/reduce.h"
#include "tessera/ops/shape.h"

namespace tessera::nn::functional {
namespace {

Tensor reduce(const Tensor& loss, Reduction r, std::string_view op) {
  switch (r) {
    case Reduction::None:
      return loss;
    case Reduction::Mean:
      return loss.mean();
    case Reduction::Sum:
      return loss.sum();
    case Reduction::BatchMean:
      break;
  }
  fail<ValueError>(op, "reduction BatchMean is for kl_div only (use None, Mean or Sum)");
}

void check_same_shape(const Tensor& a, const Tensor& b, std::string_view op,
                      std::string_view what = "input and target") {
  TS_CHECK(a.defined() && b.defined(), ValueError, op, "{} must be defined", what);
  TS_CHECK(a.shape() == b.shape(), ShapeError, op, "{} shapes differ: {} vs {}", what,
           shape_str(a.shape()), shape_str(b.shape()));
}

// cond ? a : v for a scalar v.
Tensor where_scalar(const Tensor& cond, const Tensor& a, double v) {
  return where(cond, a, full({}, v, a.dtype()));
}

// log(p) clamped to >= -100 (PyTorch's BCE), with a finite gradient at p = 0.
Tensor clamped_log(const Tensor& p) {
  const Tensor pos = gt(p, 0);
  return clamp(where_scalar(pos, log(where_scalar(pos, p, 1.0)), -100.0), Scalar(-100.0),
               std::nullopt);
}

// ---- class-index targets ----------------------------------------------------------------------

int64_t class_dim(const Tensor& input) { return input.dim() == 1 ? 0 : 1; }

// Validates input (N, C, *) / (C), integer target (N, *) / (), weight (C); returns C.
int64_t check_class_target(const Tensor& input, const Tensor& target, const Tensor& weight,
                           int64_t ignore_index, std::string_view op) {
  TS_CHECK(input.defined() && target.defined(), ValueError, op, "input and target must be defined");
  TS_CHECK(input.dim() >= 1, ShapeError, op, "input must be (N, C, *) or (C), got {}",
           shape_str(input.shape()));
  const int64_t c = input.size(class_dim(input));
  Shape want = input.shape();
  want.erase(want.begin() + class_dim(input));
  TS_CHECK(target.shape() == want, ShapeError, op,
           "expected target of shape {} for input {}, got {}", shape_str(want),
           shape_str(input.shape()), shape_str(target.shape()));
  TS_CHECK(!weight.defined() || weight.shape() == Shape{c}, ShapeError, op,
           "weight must have shape {}, got {}", shape_str({c}), shape_str(weight.shape()));
  // Inside vmap the labels can't be read on the host (gather still rejects bad ones).
  if (target.numel() == 0 || target.impl().batched) return c;
  const Tensor bad =
      logical_and(ne(target, ignore_index), logical_or(lt(target, 0), ge(target, c)));
  if (any(bad).item<bool>()) {  // rare: find the value on the CPU (any device works)
    const Device cpu = Device::cpu();
    fail<IndexError>(op, "target {} is out of bounds for {} classes",
                     masked_select(target.to(cpu), bad.to(cpu)).reshape({-1})[0].item<int64_t>(),
                     c);
  }
  return c;
}

struct Picked {
  Tensor loss;     // -w[t] * input[t] per target, 0 where ignored
  Tensor weights;  // w[t] per target, 0 where ignored
  Tensor valid;    // target != ignore_index
};

// The per-target terms of nll_loss on already-checked arguments.
Picked pick_targets(const Tensor& logp, const Tensor& target, const Tensor& weight,
                    int64_t ignore_index) {
  const Tensor valid = ne(target, ignore_index);
  const Tensor safe = masked_fill(target.to(kInt64), logical_not(valid), 0);
  const Tensor last = logp.dim() == 1 ? logp : movedim(logp, 1, -1);
  const Tensor picked = gather(last, -1, safe.unsqueeze(-1)).squeeze(-1);
  Tensor w = valid.to(logp.dtype());
  if (weight.defined()) w = w * index_select(weight, 0, safe.reshape({-1})).reshape(safe.shape());
  return {-(picked * w), w, valid};
}

Tensor reduce_weighted(const Picked& p, Reduction r, std::string_view op) {
  if (r == Reduction::Mean) return p.loss.sum() / p.weights.sum();
  return reduce(p.loss, r, op);
}

Tensor cross_entropy_indices(const Tensor& input, const Tensor& target,
                             const CrossEntropyOptions& o) {
  const int64_t c = check_class_target(input, target, o.weight, o.ignore_index, "cross_entropy");
  const Tensor logp = tessera::log_softmax(input, class_dim(input));
  const Picked p = pick_targets(logp, target, o.weight, o.ignore_index);
  const Tensor nll = reduce_weighted(p, o.reduction, "cross_entropy");
  if (o.label_smoothing == 0.0) return nll;
  // The uniform part: -sum_c w_c logp_c per target, normalized like the nll part.
  Shape wshape(static_cast<size_t>(input.dim()), 1);
  wshape[static_cast<size_t>(class_dim(input))] = c;
  const Tensor wl = o.weight.defined() ? logp * o.weight.reshape(wshape) : logp;
  const Tensor smooth = -wl.sum({class_dim(input)}) * p.valid.to(logp.dtype());
  Tensor s;
  if (o.reduction == Reduction::Mean)
    s = smooth.sum() / (o.weight.defined() ? p.weights.sum() : p.valid.to(logp.dtype()).sum());
  else
    s = reduce(smooth, o.reduction, "cross_entropy");
  return nll * (1.0 - o.label_smoothing) + s * (o.label_smoothing / static_cast<double>(c));
}

Tensor cross_entropy_probs(const Tensor& input, const Tensor& target,
                           const CrossEntropyOptions& o) {
  check_same_shape(input, target, "cross_entropy");
  TS_CHECK(o.ignore_index < 0, ValueError, "cross_entropy",
           "ignore_index is not supported for probability targets (got {})", o.ignore_index);
  const int64_t cd = class_dim(input), c = input.size(cd);
  TS_CHECK(!o.weight.defined() || o.weight.shape() == Shape{c}, ShapeError, "cross_entropy",
           "weight must have shape {}, got {}", shape_str({c}), shape_str(o.weight.shape()));
  const Tensor logp = tessera::log_softmax(input, cd);
  Tensor t = target;
  if (o.label_smoothing > 0.0)
    t = t * (1.0 - o.label_smoothing) + o.label_smoothing / static_cast<double>(c);
  Tensor terms = logp * t;
  if (o.weight.defined()) {
    Shape wshape(static_cast<size_t>(input.dim()), 1);
    wshape[static_cast<size_t>(cd)] = c;
    terms = terms * o.weight.reshape(wshape);
  }
  switch (o.reduction) {
    case Reduction::None:
      return -terms.sum({cd});
    case Reduction::Sum:
      return -terms.sum();
    case Reduction::Mean:  // divides by the number of targets (N * spatial), not elements
      return -terms.sum() / static_cast<double>(input.numel() / std::max<int64_t>(c, 1));
    case Reduction::BatchMean:
      break;
  }
  return reduce(terms, o.reduction, "cross_entropy");  // raises for BatchMean
}

}  // namespace

// ---- regression losses ------------------------------------------------------------------------

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "mse_loss");
  return reduce(square(input - target), reduction, "mse_loss");
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same_shape(input, target, "l1_loss");
  return reduce(abs(input - target), reduction, "l1_loss");
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  check_same_shape(input, target, "smooth_l1_loss");
  TS_CHECK(beta >= 0, ValueError, "smooth_l1_loss", "beta must be >= 0, got {}", beta);
  const Tensor d = abs(input - target);
  if (beta == 0.0) return reduce(d, reduction, "smooth_l1_loss");
  return reduce(where(lt(d, beta), square(d) * (0.5 / beta), d - 0.5 * beta), reduction,
                "smooth_l1_loss");
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta) {
  check_same_shape(input, target, "huber_loss");
  TS_CHECK(delta > 0, ValueError, "huber_loss", "delta must be > 0, got {}", delta);
  const Tensor d = abs(input - target);
  return reduce(where(lt(d, delta), square(d) * 0.5, (d - 0.5 * delta) * delta), reduction,
                "huber_loss");
}

// ---- classification losses -------------------------------------------------------------------

Tensor cross_entropy(const Tensor& input, const Tensor& target, const CrossEntropyOptions& opt) {
  TS_CHECK(opt.label_smoothing >= 0.0 && opt.label_smoothing <= 1.0, ValueError, "cross_entropy",
           "label_smoothing must be in [0, 1], got {}", opt.label_smoothing);
  TS_CHECK(input.defined() && target.defined(), ValueError, "cross_entropy",
           "input and target must be defined");
  if (is_floating(target.dtype())) return cross_entropy_probs(input, target, opt);
  TS_CHECK(is_integral(target.dtype()), DTypeError, "cross_entropy",
           "target must hold class indices (integers) or probabilities (floats), got {}",
           dtype_name(target.dtype()));
  return cross_entropy_indices(input, target, opt);
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const NLLLossOptions& opt) {
  TS_CHECK(target.defined() && is_integral(target.dtype()), DTypeError, "nll_loss",
           "target must hold class indices (integers)");
  check_class_target(input, target, opt.weight, opt.ignore_index, "nll_loss");
  return reduce_weighted(pick_targets(input, target, opt.weight, opt.ignore_index), opt.reduction,
                         "nll_loss");
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight,
                            Reduction reduction) {
  check_same_shape(input, target, "binary_cross_entropy");
  if (input.numel() > 0 && !input.impl().batched)  // vmap: values can't be read on the host
    TS_CHECK(!any(logical_or(lt(input, 0), gt(input, 1))).item<bool>(), ValueError,
             "binary_cross_entropy", "all elements of input must be in [0, 1]");
  Tensor loss = -(target * clamped_log(input) + (1.0 - target) * clamped_log(1.0 - input));
  if (weight.defined()) loss = loss * weight;
  return reduce(loss, reduction, "binary_cross_entropy");
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const BCEWithLogitsOptions& opt) {
  check_same_shape(input, target, "binary_cross_entropy_with_logits");
  // log(1 + exp(-x)) = log1p(exp(-|x|)) + max(-x, 0) never overflows.
  const Tensor softplus_neg = log1p(exp(-abs(input))) + clamp(-input, Scalar(0.0), std::nullopt);
  Tensor loss;
  if (opt.pos_weight.defined())
    loss = (1.0 - target) * input + (1.0 + (opt.pos_weight - 1.0) * target) * softplus_neg;
  else
    loss = (1.0 - target) * input + softplus_neg;
  if (opt.weight.defined()) loss = loss * opt.weight;
  return reduce(loss, opt.reduction, "binary_cross_entropy_with_logits");
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction, bool log_target) {
  check_same_shape(input, target, "kl_div");
  Tensor loss;
  if (log_target) {
    loss = exp(target) * (target - input);
  } else {  // 0 log 0 = 0, with a finite gradient there
    const Tensor pos = gt(target, 0);
    loss = where_scalar(pos, target * log(where_scalar(pos, target, 1.0)), 0.0) - target * input;
  }
  if (reduction == Reduction::BatchMean)
    return loss.sum() / static_cast<double>(input.dim() > 0 ? input.size(0) : 1);
  return reduce(loss, reduction, "kl_div");
}

Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin,
                             Reduction reduction) {
  check_same_shape(x1, x2, "cosine_embedding_loss", "x1 and x2");
  TS_CHECK(x1.dim() == 1 || x1.dim() == 2, ShapeError, "cosine_embedding_loss",
           "inputs must be (N, D) or (D), got {}", shape_str(x1.shape()));
  const Shape want = x1.dim() == 2 ? Shape{x1.size(0)} : Shape{};
  TS_CHECK(y.defined() && y.shape() == want, ShapeError, "cosine_embedding_loss",
           "expected y of shape {}, got {}", shape_str(want),
           y.defined() ? shape_str(y.shape()) : std::string("undefined"));
  constexpr double kEps = 1e-12;  // PyTorch's guard against zero vectors
  const int64_t d = x1.dim() - 1;
  const Tensor dot = (x1 * x2).sum({d});
  const Tensor denom = sqrt((square(x1).sum({d}) + kEps) * (square(x2).sum({d}) + kEps));
  const Tensor cos = dot / denom;
  const Tensor pos = where_scalar(eq(y, 1), 1.0 - cos, 0.0);
  const Tensor neg = where_scalar(eq(y, -1), clamp(cos - margin, Scalar(0.0), std::nullopt), 0.0);
  return reduce(pos + neg, reduction, "cosine_embedding_loss");
}

Tensor margin_ranking_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin,
                           Reduction reduction) {
  check_same_shape(x1, x2, "margin_ranking_loss", "x1 and x2");
  check_same_shape(x1, y, "margin_ranking_loss", "x1 and y");
  const Tensor loss = clamp(-y * (x1 - x2) + margin, Scalar(0.0), std::nullopt);
  return reduce(loss, reduction, "margin_ranking_loss");
}

}  // namespace tessera::nn::functional

namespace tessera::nn {
namespace F = functional;

Tensor MSELoss::forward(const Tensor& i, const Tensor& t) { return F::mse_loss(i, t, reduction); }
Tensor L1Loss::forward(const Tensor& i, const Tensor& t) { return F::l1_loss(i, t, reduction); }
Tensor SmoothL1Loss::forward(const Tensor& i, const Tensor& t) {
  return F::smooth_l1_loss(i, t, reduction, beta);
}
Tensor HuberLoss::forward(const Tensor& i, const Tensor& t) {
  return F::huber_loss(i, t, reduction, delta);
}

CrossEntropyLoss::CrossEntropyLoss(CrossEntropyOptions opt) : options(std::move(opt)) {
  register_buffer("weight", options.weight);
}
Tensor CrossEntropyLoss::forward(const Tensor& i, const Tensor& t) {
  return F::cross_entropy(i, t, options);
}

NLLLoss::NLLLoss(NLLLossOptions opt) : options(std::move(opt)) {
  register_buffer("weight", options.weight);
}
Tensor NLLLoss::forward(const Tensor& i, const Tensor& t) { return F::nll_loss(i, t, options); }

BCELoss::BCELoss(Tensor w, Reduction r) : weight(std::move(w)), reduction(r) {
  register_buffer("weight", weight);
}
Tensor BCELoss::forward(const Tensor& i, const Tensor& t) {
  return F::binary_cross_entropy(i, t, weight, reduction);
}

BCEWithLogitsLoss::BCEWithLogitsLoss(BCEWithLogitsOptions opt) : options(std::move(opt)) {
  register_buffer("weight", options.weight);
  register_buffer("pos_weight", options.pos_weight);
}
Tensor BCEWithLogitsLoss::forward(const Tensor& i, const Tensor& t) {
  return F::binary_cross_entropy_with_logits(i, t, options);
}

Tensor KLDivLoss::forward(const Tensor& i, const Tensor& t) {
  return F::kl_div(i, t, reduction, log_target);
}

Tensor CosineEmbeddingLoss::forward(const Tensor& x1, const Tensor& x2, const Tensor& y) {
  return F::cosine_embedding_loss(x1, x2, y, margin, reduction);
}
Tensor MarginRankingLoss::forward(const Tensor& x1, const Tensor& x2, const Tensor& y) {
  return F::margin_ranking_loss(x1, x2, y, margin, reduction);
}

}  // namespace tessera::nn
