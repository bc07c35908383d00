#pragma once
// Datasets: map-style (size() and get(i)) and iterable (next()). An example is a vector of
// tensors, e.g. {input, target}; a batch is an example whose tensors gained a leading dim.
//
//   auto ds = std::make_shared<TensorDataset>(std::vector<Tensor>{x, y});  // x: (N, 3), y: (N)
//   Generator gen(42);
//   auto parts = random_split(ds, {800, 200}, gen);  // train, validation
//   Example e = parts[0]->get(0);                    // {x[k], y[k]} for some k
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "tessera/core/generator.h"
#include "tessera/core/tensor.h"
#include "tessera/data/transforms.h"

namespace tessera::data {

/// One example (or one batch): its fields, e.g. {input, target}.
using Example = std::vector<Tensor>;

/// Stacks each field of the examples along a new dim 0. Fields must agree in count, shape and
/// dtype (ShapeError / DTypeError naming the field and the example index otherwise).
Example default_collate(const std::vector<Example>& examples);

/// Builds a batch from examples (default_collate when a loader is given none).
using CollateFn = std::function<Example(const std::vector<Example>&)>;

/// A map-style dataset. get() may be called from several loader threads at once.
class Dataset {
 public:
  virtual ~Dataset() = default;
  /// Number of examples.
  virtual int64_t size() const = 0;
  /// Example i, 0 <= i < size() (IndexError otherwise).
  virtual Example get(int64_t i) const = 0;
  /// The default-collated batch of these examples; override when whole batches can be
  /// gathered faster than example by example (TensorDataset does).
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
};

/// A stream of examples read in order. reset() starts a new pass (a new epoch).
class IterableDataset {
 public:
  virtual ~IterableDataset() = default;
  /// The next example, or nullopt at the end of the pass.
  virtual std::optional<Example> next() = 0;
  /// Rewinds to the start of the stream; the loader calls it at the start of every epoch.
  virtual void reset() {}
};

/// Examples are the rows of tensors that share their first dim: get(i) = {t[i] for t}.
class TensorDataset : public Dataset {
 public:
  explicit TensorDataset(std::vector<Tensor> tensors);
  int64_t size() const override { return size_; }
  Example get(int64_t i) const override;
  /// Gathers the rows with one index_select per tensor (no per-example copies).
  Example get_batch(const std::vector<int64_t>& indices) const override;
  const std::vector<Tensor>& tensors() const { return tensors_; }

 private:
  std::vector<Tensor> tensors_;
  int64_t size_ = 0;
};

/// The examples of `base` at `indices`, in that order.
class Subset : public Dataset {
 public:
  Subset(std::shared_ptr<Dataset> base, std::vector<int64_t> indices);
  int64_t size() const override { return static_cast<int64_t>(indices_.size()); }
  Example get(int64_t i) const override;
  /// Forwards to the base's get_batch, so fast paths survive a split.
  Example get_batch(const std::vector<int64_t>& indices) const override;
  const std::vector<int64_t>& indices() const { return indices_; }

 private:
  std::shared_ptr<Dataset> base_;
  std::vector<int64_t> indices_;
};

/// The datasets one after another.
class ConcatDataset : public Dataset {
 public:
  explicit ConcatDataset(std::vector<std::shared_ptr<Dataset>> datasets);
  int64_t size() const override { return ends_.empty() ? 0 : ends_.back(); }
  Example get(int64_t i) const override;

 private:
  std::vector<std::shared_ptr<Dataset>> datasets_;
  std::vector<int64_t> ends_;  // cumulative sizes
};

/// `base` with `transform` applied to one field of every example (default: the first).
class TransformDataset : public Dataset {
 public:
  TransformDataset(std::shared_ptr<Dataset> base, Transform transform, int64_t field = 0);
  int64_t size() const override { return base_->size(); }
  Example get(int64_t i) const override;

 private:
  std::shared_ptr<Dataset> base_;
  Transform transform_;
  int64_t field_;
};

/// Splits into non-overlapping random subsets of the given lengths (which must sum to the
/// dataset's size); the same generator state gives the same split (PyTorch's random_split).
std::vector<std::shared_ptr<Subset>> random_split(std::shared_ptr<Dataset> dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  Generator& gen);
/// Like random_split with fractions summing to 1: lengths floor(f * n), and the remainder
/// handed out one by one from the first subset on (as PyTorch does).
std::vector<std::shared_ptr<Subset>> random_split_fractions(std::shared_ptr<Dataset> dataset,
                                                            const std::vector<double>& fractions,
                                                            Generator& gen);

/// A uniformly random permutation of [0, n) drawn from gen (Fisher-Yates on Philox words).
std::vector<int64_t> randperm(int64_t n, Generator& gen);

}  // namespace tessera::data
