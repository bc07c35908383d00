// tessera.nn loss modules (MSELoss, CrossEntropyLoss, ...): PyTorch's constructor keywords, called
// as loss(input, target). The deprecated size_average / reduce arguments are not accepted.
#include "nn_bind.h"

namespace tessera::py {
namespace {

using namespace nb::literals;
using nn::Module;

// Losses are cheap next to the model, but cross entropy over a large vocabulary is not.
Tensor call_loss(nn::Loss& loss, const Tensor& input, const Tensor& target) {
  ReleaseGilIfLarge gil(input.numel());
  return loss.forward(input, target);
}

template <class T>
void def_reduction_only(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, nn::Loss>(nn, name, doc)
      .def(
          "__init__",
          [](T* self, const std::string& reduction) {
            new (self) T(to_reduction(reduction, "loss"));
          },
          nb::kw_only(), "reduction"_a = "mean");
}

void def_regression(nb::module_& nn) {
  def_reduction_only<nn::MSELoss>(nn, "MSELoss", "Mean (or sum) of (input - target)^2.");
  def_reduction_only<nn::L1Loss>(nn, "L1Loss", "Mean (or sum) of |input - target|.");
  nb::class_<nn::SmoothL1Loss, nn::Loss>(
      nn, "SmoothL1Loss", "0.5 d^2 / beta where d = |input - target| < beta, else d - 0.5 beta.")
      .def(
          "__init__",
          [](nn::SmoothL1Loss* self, const std::string& reduction, double beta) {
            new (self) nn::SmoothL1Loss(to_reduction(reduction, "SmoothL1Loss"), beta);
          },
          nb::kw_only(), "reduction"_a = "mean", "beta"_a = 1.0);
  nb::class_<nn::HuberLoss, nn::Loss>(nn, "HuberLoss",
                                      "0.5 d^2 where d < delta, else delta (d - 0.5 delta).")
      .def(
          "__init__",
          [](nn::HuberLoss* self, const std::string& reduction, double delta) {
            new (self) nn::HuberLoss(to_reduction(reduction, "HuberLoss"), delta);
          },
          nb::kw_only(), "reduction"_a = "mean", "delta"_a = 1.0);
}

void def_classification(nb::module_& nn) {
  nb::class_<nn::CrossEntropyLoss, nn::Loss>(
      nn, "CrossEntropyLoss",
      "Cross entropy of logits (N, C, *) against class indices or probabilities.")
      .def(
          "__init__",
          [](nn::CrossEntropyLoss* self, const std::optional<Tensor>& weight, int64_t ignore_index,
             const std::string& reduction, double label_smoothing) {
            new (self) nn::CrossEntropyLoss({opt(weight), ignore_index,
                                             to_reduction(reduction, "CrossEntropyLoss"),
                                             label_smoothing});
          },
          "weight"_a = nb::none(), nb::kw_only(), "ignore_index"_a = -100, "reduction"_a = "mean",
          "label_smoothing"_a = 0.0);
  nb::class_<nn::NLLLoss, nn::Loss>(nn, "NLLLoss",
                                    "-input[target] for log-probabilities input (N, C, *).")
      .def(
          "__init__",
          [](nn::NLLLoss* self, const std::optional<Tensor>& weight, int64_t ignore_index,
             const std::string& reduction) {
            new (self) nn::NLLLoss({opt(weight), ignore_index, to_reduction(reduction, "NLLLoss")});
          },
          "weight"_a = nb::none(), nb::kw_only(), "ignore_index"_a = -100, "reduction"_a = "mean");
  nb::class_<nn::BCELoss, nn::Loss>(nn, "BCELoss",
                                    "-(y log p + (1 - y) log(1 - p)) for probabilities p.")
      .def(
          "__init__",
          [](nn::BCELoss* self, const std::optional<Tensor>& weight, const std::string& reduction) {
            new (self) nn::BCELoss(opt(weight), to_reduction(reduction, "BCELoss"));
          },
          "weight"_a = nb::none(), nb::kw_only(), "reduction"_a = "mean");
  nb::class_<nn::BCEWithLogitsLoss, nn::Loss>(nn, "BCEWithLogitsLoss",
                                              "BCELoss of sigmoid(input), computed stably.")
      .def(
          "__init__",
          [](nn::BCEWithLogitsLoss* self, const std::optional<Tensor>& weight,
             const std::string& reduction, const std::optional<Tensor>& pos_weight) {
            new (self) nn::BCEWithLogitsLoss(
                {opt(weight), opt(pos_weight), to_reduction(reduction, "BCEWithLogitsLoss")});
          },
          "weight"_a = nb::none(), nb::kw_only(), "reduction"_a = "mean",
          "pos_weight"_a = nb::none());
  nb::class_<nn::KLDivLoss, nn::Loss>(nn, "KLDivLoss",
                                      "target (log target - input) for log-probabilities input.")
      .def(
          "__init__",
          [](nn::KLDivLoss* self, const std::string& reduction, bool log_target) {
            new (self) nn::KLDivLoss(to_reduction(reduction, "KLDivLoss"), log_target);
          },
          nb::kw_only(), "reduction"_a = "mean", "log_target"_a = false);
}

template <class T>
void def_pair_loss(nb::module_& nn, const char* name, const char* doc) {
  nb::class_<T, Module>(nn, name, doc)
      .def(
          "__init__",
          [name](T* self, double margin, const std::string& reduction) {
            new (self) T(margin, to_reduction(reduction, name));
          },
          "margin"_a = 0.0, nb::kw_only(), "reduction"_a = "mean")
      .def(
          "forward",
          [](T& self, const Tensor& a, const Tensor& b, const Tensor& y) {
            return self.forward(a, b, y);
          },
          "input1"_a, "input2"_a, "target"_a, "The loss of (input1, input2) against target.")
      .def_ro("margin", &T::margin);
}

}  // namespace

void init_nn_losses(nb::module_& nn) {
  nb::class_<nn::Loss, Module>(nn, "_Loss", "Base of the loss modules: loss(input, target).")
      .def("forward", &call_loss, "input"_a, "target"_a, "The loss of input against target.");
  def_regression(nn);
  def_classification(nn);
  def_pair_loss<nn::CosineEmbeddingLoss>(
      nn, "CosineEmbeddingLoss",
      "1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1.");
  def_pair_loss<nn::MarginRankingLoss>(nn, "MarginRankingLoss",
                                       "max(0, -target (input1 - input2) + margin).");
}

}  // namespace tessera::py
