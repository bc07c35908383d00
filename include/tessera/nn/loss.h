#pragma once
// Loss functions (in nn::functional) and their module forms, with PyTorch's exact semantics
// for reductions, class weights, ignore_index and label smoothing.
//
//   Tensor l = F::cross_entropy(logits, labels, {.weight = w, .label_smoothing = 0.1});
//   nn::CrossEntropyLoss crit({.ignore_index = 0});
//   Tensor l2 = crit(logits, labels);
#include <optional>

#include "tessera/core/tensor.h"
#include "tessera/nn/module.h"

namespace tessera::nn {

/// How per-element losses are combined. BatchMean (sum / batch size) is for kl_div only.
enum class Reduction { None, Mean, Sum, BatchMean };

struct CrossEntropyOptions {
  Tensor weight;                ///< per-class weights (C), or undefined
  int64_t ignore_index = -100;  ///< targets equal to this add nothing (class-index targets)
  Reduction reduction = Reduction::Mean;
  double label_smoothing = 0.0;  ///< in [0, 1]
};
struct NLLLossOptions {
  Tensor weight;
  int64_t ignore_index = -100;
  Reduction reduction = Reduction::Mean;
};
struct BCEWithLogitsOptions {
  Tensor weight;      ///< broadcast against the loss
  Tensor pos_weight;  ///< weight of positive examples, broadcast along the last dim (classes)
  Reduction reduction = Reduction::Mean;
};

}  // namespace tessera::nn

namespace tessera::nn::functional {

/// (x - y)^2.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// |x - y|.
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
/// 0.5 d^2 / beta for d = |x - y| < beta, else d - 0.5 beta (beta = 0: l1).
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::Mean, double beta = 1.0);
/// 0.5 d^2 for d < delta, else delta (d - 0.5 delta).
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                  double delta = 1.0);
/// Cross entropy of logits (N, C, *) or (C): target holds class indices (N, *) / () (integer
/// dtype) or class probabilities (input's shape, floating dtype). With weights, Mean divides
/// by the summed weights of the non-ignored targets (like PyTorch). Labels out of range raise
/// IndexError.
Tensor cross_entropy(const Tensor& input, const Tensor& target,
                     const CrossEntropyOptions& opt = {});
/// -input[target] for log-probabilities input (N, C, *) or (C).
Tensor nll_loss(const Tensor& input, const Tensor& target, const NLLLossOptions& opt = {});
/// -(y log p + (1 - y) log(1 - p)) with each log clamped to >= -100; p must be in [0, 1].
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                            Reduction reduction = Reduction::Mean);
/// binary_cross_entropy(sigmoid(x), y), computed stably for large |x|.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const BCEWithLogitsOptions& opt = {});
/// target (log target - input) for log-probabilities input; log_target: target is log-probs.
/// Use Reduction::BatchMean for the true KL divergence (Mean divides by every element).
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
              bool log_target = false);
/// 1 - cos(x1, x2) where y = 1, max(0, cos(x1, x2) - margin) where y = -1; x (N, D) or (D).
Tensor cosine_embedding_loss(const Tensor& x1, const Tensor& x2, const Tensor& y,
                             double margin = 0.0, Reduction reduction = Reduction::Mean);
/// max(0, -y (x1 - x2) + margin).
Tensor margin_ranking_loss(const Tensor& x1, const Tensor& x2, const Tensor& y, double margin = 0.0,
                           Reduction reduction = Reduction::Mean);

}  // namespace tessera::nn::functional

namespace tessera::nn {

/// Base of the loss modules: forward(input, target).
class Loss : public Module {
 public:
  using Module::forward;
  virtual Tensor forward(const Tensor& input, const Tensor& target) = 0;
  Tensor operator()(const Tensor& input, const Tensor& target) { return forward(input, target); }
};

class MSELoss : public Loss {
 public:
  explicit MSELoss(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Reduction reduction;
};
class L1Loss : public Loss {
 public:
  explicit L1Loss(Reduction reduction = Reduction::Mean) : reduction(reduction) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Reduction reduction;
};
class SmoothL1Loss : public Loss {
 public:
  explicit SmoothL1Loss(Reduction reduction = Reduction::Mean, double beta = 1.0)
      : reduction(reduction), beta(beta) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Reduction reduction;
  double beta;
};
class HuberLoss : public Loss {
 public:
  explicit HuberLoss(Reduction reduction = Reduction::Mean, double delta = 1.0)
      : reduction(reduction), delta(delta) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Reduction reduction;
  double delta;
};
/// The class weights (if any) are registered as buffer "weight", like PyTorch.
class CrossEntropyLoss : public Loss {
 public:
  explicit CrossEntropyLoss(CrossEntropyOptions opt = {});
  Tensor forward(const Tensor& input, const Tensor& target) override;
  CrossEntropyOptions options;
};
class NLLLoss : public Loss {
 public:
  explicit NLLLoss(NLLLossOptions opt = {});
  Tensor forward(const Tensor& input, const Tensor& target) override;
  NLLLossOptions options;
};
class BCELoss : public Loss {
 public:
  explicit BCELoss(Tensor weight = {}, Reduction reduction = Reduction::Mean);
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Tensor weight;
  Reduction reduction;
};
class BCEWithLogitsLoss : public Loss {
 public:
  explicit BCEWithLogitsLoss(BCEWithLogitsOptions opt = {});
  Tensor forward(const Tensor& input, const Tensor& target) override;
  BCEWithLogitsOptions options;
};
class KLDivLoss : public Loss {
 public:
  explicit KLDivLoss(Reduction reduction = Reduction::Mean, bool log_target = false)
      : reduction(reduction), log_target(log_target) {}
  Tensor forward(const Tensor& input, const Tensor& target) override;
  Reduction reduction;
  bool log_target;
};

/// Losses over two inputs and a label y: forward(x1, x2, y).
class CosineEmbeddingLoss : public Module {
 public:
  explicit CosineEmbeddingLoss(double margin = 0.0, Reduction reduction = Reduction::Mean)
      : margin(margin), reduction(reduction) {}
  using Module::forward;
  Tensor forward(const Tensor& x1, const Tensor& x2, const Tensor& y);
  Tensor operator()(const Tensor& x1, const Tensor& x2, const Tensor& y) {
    return forward(x1, x2, y);
  }
  double margin;
  Reduction reduction;
};
class MarginRankingLoss : public Module {
 public:
  explicit MarginRankingLoss(double margin = 0.0, Reduction reduction = Reduction::Mean)
      : margin(margin), reduction(reduction) {}
  using Module::forward;
  Tensor forward(const Tensor& x1, const Tensor& x2, const Tensor& y);
  Tensor operator()(const Tensor& x1, const Tensor& x2, const Tensor& y) {
    return forward(x1, x2, y);
  }
  double margin;
  Reduction reduction;
};

}  // namespace tessera::nn
