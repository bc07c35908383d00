#pragma once
// DataLoader: batches of a dataset, optionally shuffled, optionally prefetched by threads.
//
//   DataLoader loader(ds, {.batch_size = 64, .shuffle = true, .num_workers = 2, .seed = 0});
//   for (int epoch = 0; epoch < 10; ++epoch)
//     for (const Example& batch : loader) train_step(batch[0], batch[1]);
//
// Every begin() starts an epoch: the order is drawn on the calling thread (so it is the same
// for any num_workers), then num_workers threads build batches ahead, in order, up to
// prefetch_factor * num_workers batches. An exception thrown while building batch k is
// rethrown by the iterator when it reaches batch k.
#include <cstdint>
#include <memory>
#include <optional>

#include "tessera/core/generator.h"
#include "tessera/data/dataset.h"

namespace tessera::data {

struct DataLoaderOptions {
  int64_t batch_size = 1;
  bool shuffle = false;
  bool drop_last = false;       ///< drop the last batch when it is smaller than batch_size
  int64_t num_workers = 0;      ///< loader threads; 0 builds batches on the iterating thread
  int64_t prefetch_factor = 2;  ///< batches kept ready per worker
  /// Each batch's CPU tensors are copied into pinned (page-locked) memory where they are
  /// built (by the workers, if any), so that `batch[0].to(cuda, true)` is asynchronous.
  /// Needs a usable CUDA device: without one the loader raises DeviceError when made.
  bool pin_memory = false;
  /// Builds a batch from examples; empty means default_collate via Dataset::get_batch (for a
  /// TensorDataset, one index_select per field).
  CollateFn collate;
  /// Shuffling draws from this generator (it must outlive the loader) ...
  Generator* generator = nullptr;
  /// ... or from a loader-owned generator with this seed; with neither, the seed is drawn
  /// from the default generator when the loader is made (so manual_seed fixes the order).
  std::optional<uint64_t> seed;
};

namespace detail {
class Epoch;  // the state of one pass: order, worker threads, the batch ring
}

class DataLoader {
 public:
  using Options = DataLoaderOptions;

  /// A map-style loader; an empty dataset or a bad option raises ValueError.
  explicit DataLoader(std::shared_ptr<Dataset> dataset, Options options = {});
  /// A stream loader: no shuffle; with num_workers > 0 one thread reads ahead (next() is
  /// sequential). An epoch that yields no example raises ValueError.
  explicit DataLoader(std::shared_ptr<IterableDataset> dataset, Options options = {});
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  /// An input iterator over the batches of one epoch; copies share the position.
  class Iterator {
   public:
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    Iterator() = default;
    explicit Iterator(std::shared_ptr<detail::Epoch> epoch);
    const Example& operator*() const;
    const Example* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(const Iterator& o) const;

   private:
    bool at_end() const;
    std::shared_ptr<detail::Epoch> epoch_;
  };

  /// Starts a new epoch (reshuffling when shuffle is on) and returns its first batch.
  Iterator begin();
  Iterator end() const { return {}; }

  /// Number of batches per epoch (ValueError for an iterable dataset).
  int64_t size() const;
  /// Epochs started so far.
  int64_t epochs_started() const { return epochs_; }
  const Options& options() const { return opt_; }

 private:
  std::vector<std::vector<int64_t>> batch_indices();

  std::shared_ptr<Dataset> map_;
  std::shared_ptr<IterableDataset> iterable_;
  Options opt_;
  std::unique_ptr<Generator> own_gen_;
  int64_t epochs_ = 0;
};

}  // namespace tessera::data
