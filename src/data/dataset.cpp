// Map-style datasets, default_collate, random_split and randperm.
#include "tessera/data/dataset.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numeric>
#include <utility>

#include "data/random.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/indexing.h"
#include "tessera/ops/shape.h"

namespace tessera::data {
namespace {

void check_index(int64_t i, int64_t size, std::string_view op) {
  TS_CHECK(i >= 0 && i < size, IndexError, op, "index {} out of range for a dataset of size {}", i,
           size);
}

// The tensors of field f across examples, after checking they can be stacked.
std::vector<Tensor> field_column(const std::vector<Example>& examples, size_t f) {
  const Tensor& ref = examples[0][f];
  std::vector<Tensor> column;
  column.reserve(examples.size());
  for (size_t j = 0; j < examples.size(); ++j) {
    const Tensor& t = examples[j][f];
    TS_CHECK(t.defined(), ValueError, "default_collate", "field {} of example {} is undefined", f,
             j);
    TS_CHECK(t.shape() == ref.shape(), ShapeError, "default_collate",
             "field {}: example {} has shape {} but example 0 has {}", f, j, shape_str(t.shape()),
             shape_str(ref.shape()));
    TS_CHECK(t.dtype() == ref.dtype(), DTypeError, "default_collate",
             "field {}: example {} has dtype {} but example 0 has {}", f, j, dtype_name(t.dtype()),
             dtype_name(ref.dtype()));
    column.push_back(t);
  }
  return column;
}

}  // namespace

Example default_collate(const std::vector<Example>& examples) {
  TS_CHECK(!examples.empty(), ValueError, "default_collate", "no examples to collate");
  const size_t fields = examples[0].size();
  for (size_t j = 1; j < examples.size(); ++j) {
    TS_CHECK(examples[j].size() == fields, ValueError, "default_collate",
             "example {} has {} fields but example 0 has {}", j, examples[j].size(), fields);
  }
  Example batch;
  batch.reserve(fields);
  for (size_t f = 0; f < fields; ++f) batch.push_back(stack(field_column(examples, f), 0));
  return batch;
}

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get(i));
  return default_collate(examples);
}

// ---- TensorDataset ------------------------------------------------------------------------

TensorDataset::TensorDataset(std::vector<Tensor> tensors) : tensors_(std::move(tensors)) {
  TS_CHECK(!tensors_.empty(), ValueError, "TensorDataset", "needs at least one tensor");
  for (size_t k = 0; k < tensors_.size(); ++k) {
    TS_CHECK(tensors_[k].defined(), ValueError, "TensorDataset", "tensor {} is undefined", k);
    TS_CHECK(tensors_[k].dim() >= 1, ShapeError, "TensorDataset",
             "tensor {} is 0-d; every tensor needs a first dim to index", k);
    TS_CHECK(tensors_[k].size(0) == tensors_[0].size(0), ShapeError, "TensorDataset",
             "tensor {} has shape {} but tensor 0 has {}: first dims differ", k,
             shape_str(tensors_[k].shape()), shape_str(tensors_[0].shape()));
  }
  size_ = tensors_[0].size(0);
}

Example TensorDataset::get(int64_t i) const {
  check_index(i, size_, "TensorDataset");
  Example e;
  e.reserve(tensors_.size());
  for (const Tensor& t : tensors_) e.push_back(t.select(0, i));
  return e;
}

Example TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  TS_CHECK(!indices.empty(), ValueError, "TensorDataset", "get_batch needs at least one index");
  for (int64_t i : indices) check_index(i, size_, "TensorDataset");
  Tensor idx = tensor(indices);
  Example batch;
  batch.reserve(tensors_.size());
  for (const Tensor& t : tensors_) batch.push_back(index_select(t, 0, idx));
  return batch;
}

// ---- Subset, ConcatDataset, TransformDataset ------------------------------------------------

Subset::Subset(std::shared_ptr<Dataset> base, std::vector<int64_t> indices)
    : base_(std::move(base)), indices_(std::move(indices)) {
  TS_CHECK(base_ != nullptr, ValueError, "Subset", "the base dataset is null");
  const int64_t n = base_->size();
  for (int64_t i : indices_) check_index(i, n, "Subset");
}

Example Subset::get(int64_t i) const {
  check_index(i, size(), "Subset");
  return base_->get(indices_[static_cast<size_t>(i)]);
}

Example Subset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<int64_t> mapped;
  mapped.reserve(indices.size());
  for (int64_t i : indices) {
    check_index(i, size(), "Subset");
    mapped.push_back(indices_[static_cast<size_t>(i)]);
  }
  return base_->get_batch(mapped);
}

ConcatDataset::ConcatDataset(std::vector<std::shared_ptr<Dataset>> datasets)
    : datasets_(std::move(datasets)) {
  TS_CHECK(!datasets_.empty(), ValueError, "ConcatDataset", "needs at least one dataset");
  int64_t total = 0;
  for (size_t k = 0; k < datasets_.size(); ++k) {
    TS_CHECK(datasets_[k] != nullptr, ValueError, "ConcatDataset", "dataset {} is null", k);
    total += datasets_[k]->size();
    ends_.push_back(total);
  }
}

Example ConcatDataset::get(int64_t i) const {
  check_index(i, size(), "ConcatDataset");
  // The first dataset whose cumulative end lies beyond i holds it.
  auto it = std::upper_bound(ends_.begin(), ends_.end(), i);
  const auto k = static_cast<size_t>(it - ends_.begin());
  const int64_t start = k == 0 ? 0 : ends_[k - 1];
  return datasets_[k]->get(i - start);
}

TransformDataset::TransformDataset(std::shared_ptr<Dataset> base, Transform transform,
                                   int64_t field)
    : base_(std::move(base)), transform_(std::move(transform)), field_(field) {
  TS_CHECK(base_ != nullptr, ValueError, "TransformDataset", "the base dataset is null");
  TS_CHECK(transform_ != nullptr, ValueError, "TransformDataset", "the transform is empty");
  TS_CHECK(field_ >= 0, IndexError, "TransformDataset", "field {} is negative", field_);
}

Example TransformDataset::get(int64_t i) const {
  Example e = base_->get(i);
  TS_CHECK(field_ < static_cast<int64_t>(e.size()), IndexError, "TransformDataset",
           "field {} out of range for an example with {} fields", field_, e.size());
  auto f = static_cast<size_t>(field_);
  e[f] = transform_(e[f]);
  return e;
}

// ---- random splits --------------------------------------------------------------------------

namespace {
__extension__ using U128 = unsigned __int128;  // GCC and Clang, every target we build for
}  // namespace

std::vector<int64_t> randperm(int64_t n, Generator& gen) {
  TS_CHECK(n >= 0, ValueError, "randperm", "n must be non-negative, got {}", n);
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), int64_t{0});
  // Fisher-Yates over steps t = 0 .. n-2 (swapping position i = n-1-t). Each Philox counter
  // gives the 64-bit draws of two steps, and a draw u picks j = floor(u * (i+1) / 2^64): a
  // multiply instead of a division, with a bias below n / 2^64, far under anything measurable.
  const auto steps = static_cast<uint64_t>(std::max<int64_t>(n - 1, 0));
  const uint64_t seed = gen.seed();
  const uint64_t base = gen.reserve((steps + 1) / 2);
  std::array<uint32_t, 4> w{};
  for (uint64_t t = 0; t < steps; ++t) {
    if (t % 2 == 0) w = philox_at(seed, base + t / 2);
    const uint64_t u = t % 2 == 0 ? detail::to_u64(w[0], w[1]) : detail::to_u64(w[2], w[3]);
    const uint64_t i = static_cast<uint64_t>(n) - 1 - t;
    const auto j = static_cast<uint64_t>((static_cast<U128>(u) * (i + 1)) >> 64);
    std::swap(p[i], p[j]);
  }
  return p;
}

std::vector<std::shared_ptr<Subset>> random_split(std::shared_ptr<Dataset> dataset,
                                                  const std::vector<int64_t>& lengths,
                                                  Generator& gen) {
  TS_CHECK(dataset != nullptr, ValueError, "random_split", "the dataset is null");
  int64_t total = 0;
  for (int64_t len : lengths) {
    TS_CHECK(len >= 0, ValueError, "random_split", "lengths must be non-negative, got {}",
             fmt::join(lengths, ", "));
    total += len;
  }
  TS_CHECK(total == dataset->size(), ValueError, "random_split",
           "lengths ({}) sum to {} but the dataset has {} examples", fmt::join(lengths, ", "),
           total, dataset->size());
  std::vector<int64_t> perm = randperm(total, gen);
  std::vector<std::shared_ptr<Subset>> parts;
  auto start = perm.begin();
  for (int64_t len : lengths) {
    parts.push_back(std::make_shared<Subset>(dataset, std::vector<int64_t>(start, start + len)));
    start += len;
  }
  return parts;
}

std::vector<std::shared_ptr<Subset>> random_split_fractions(std::shared_ptr<Dataset> dataset,
                                                            const std::vector<double>& fractions,
                                                            Generator& gen) {
  TS_CHECK(dataset != nullptr, ValueError, "random_split", "the dataset is null");
  TS_CHECK(!fractions.empty(), ValueError, "random_split", "no fractions given");
  double sum = 0;
  for (double f : fractions) {
    TS_CHECK(f >= 0 && f <= 1, ValueError, "random_split", "fractions must lie in [0, 1], got {}",
             fmt::join(fractions, ", "));
    sum += f;
  }
  TS_CHECK(std::abs(sum - 1.0) < 1e-6, ValueError, "random_split",
           "fractions ({}) sum to {} instead of 1", fmt::join(fractions, ", "), sum);
  const int64_t n = dataset->size();
  std::vector<int64_t> lengths;
  for (double f : fractions) lengths.push_back(static_cast<int64_t>(std::floor(f * n)));
  int64_t rest = n - std::accumulate(lengths.begin(), lengths.end(), int64_t{0});
  for (int64_t k = 0; k < rest; ++k) ++lengths[static_cast<size_t>(k) % lengths.size()];
  return random_split(std::move(dataset), lengths, gen);
}

}  // namespace tessera::data
