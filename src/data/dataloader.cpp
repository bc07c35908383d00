// DataLoader: the epoch order, and the ring of batches that loader threads fill in order.
#include "tessera/data/dataloader.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>
#include <utility>

#include "data/random.h"
#include "tessera/core/error.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/parallel.h"
#include "tessera/runtime/profiler.h"

namespace tessera::data {
namespace detail {

// Builds batch k of an epoch, or returns nullopt when the stream has no batch k.
using BatchFn = std::function<std::optional<Example>(int64_t)>;

// One pass over the data. With workers, batch k lives in slot k % capacity from the moment a
// worker finishes it until the consumer takes it; workers only claim batches below
// consumed + capacity, so a slot is never overwritten before it is read.
class Epoch {
 public:
  Epoch(BatchFn make, int64_t count, int64_t workers, int64_t capacity)
      : make_(std::move(make)),
        end_(count),
        slots_(static_cast<size_t>(std::max<int64_t>(capacity, 1))) {
    try {
      for (int64_t w = 0; w < workers; ++w) threads_.emplace_back([this] { work(); });
    } catch (...) {  // no thread left running when the constructor fails
      stop();
      throw;
    }
  }

  ~Epoch() { stop(); }
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  /// Moves to the next batch; false at the end. Rethrows the error of a failed batch.
  bool advance() {
    if (done_) return false;
    // Without workers the previous batch goes first, so its memory (still warm in cache) can
    // hold the next one; a caller that kept a copy of it keeps it alive regardless.
    if (threads_.empty()) current_ = {};
    Slot s = threads_.empty() ? make_here() : take();
    if (s.error) {
      done_ = true;
      std::rethrow_exception(s.error);
    }
    if (!s.value) {
      done_ = true;
      return false;
    }
    current_ = std::move(*s.value);
    return true;
  }
  bool done() const { return done_; }
  const Example& current() const { return current_; }

 private:
  struct Slot {
    std::optional<Example> value;  // empty with no error: the stream ended here
    std::exception_ptr error;
    bool ready = false;
  };

  // Lets each worker finish the batch in its hands, then joins them.
  void stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  Slot build(int64_t k) {
    Slot s;
    try {
      profiler::Scope scope("DataLoader.batch");
      s.value = make_(k);
    } catch (...) {
      s.error = std::current_exception();
    }
    s.ready = true;
    return s;
  }

  // num_workers == 0: the consumer builds each batch itself.
  Slot make_here() {
    if (consumed_ >= end_) return {};
    return build(consumed_++);
  }

  // Waits for batch `consumed_` and frees its slot for the workers.
  Slot take() {
    std::unique_lock lock(mu_);
    Slot& slot = slots_[slot_of(consumed_)];
    ready_cv_.wait(lock, [&] { return slot.ready || consumed_ >= end_; });
    if (!slot.ready) return {};
    Slot s = std::move(slot);
    slot = Slot{};
    ++consumed_;
    lock.unlock();
    work_cv_.notify_all();
    return s;
  }

  void work() {
    std::unique_lock lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return stop_ || can_claim(); });
      if (stop_) return;
      const int64_t k = claimed_++;
      lock.unlock();
      Slot s;
      run_serially([&] { s = build(k); });  // one core for loading, the pool for the step
      lock.lock();
      // After a stream end or an error nothing past k is built.
      if (!s.value) end_ = std::min(end_, s.error ? k + 1 : k);
      slots_[slot_of(k)] = std::move(s);
      ready_cv_.notify_all();
    }
  }

  bool can_claim() const {
    return claimed_ < end_ && claimed_ < consumed_ + static_cast<int64_t>(slots_.size());
  }
  size_t slot_of(int64_t k) const { return static_cast<size_t>(k) % slots_.size(); }

  BatchFn make_;
  std::mutex mu_;
  std::condition_variable work_cv_, ready_cv_;
  int64_t end_;           // batches in the epoch (lowered when a stream ends or a batch fails)
  int64_t claimed_ = 0;   // next batch a worker will build
  int64_t consumed_ = 0;  // batches handed to the consumer (changed under mu_ with workers)
  bool stop_ = false;
  bool done_ = false;
  std::vector<Slot> slots_;
  Example current_;
  std::vector<std::thread> threads_;  // last: started after everything they use exists
};

}  // namespace detail

namespace {

// With pin, make's batches have their CPU tensors copied into pinned memory.
detail::BatchFn pinned_if(bool pin, detail::BatchFn make) {
  if (!pin) return make;
  return [make = std::move(make)](int64_t k) {
    std::optional<Example> e = make(k);
    if (e)
      for (Tensor& t : *e)
        if (t.defined() && t.device().is_cpu()) t = cuda::pin_memory(t);
    return e;
  };
}

void check_options(const DataLoaderOptions& o) {
  TS_CHECK(o.batch_size >= 1, ValueError, "DataLoader", "batch_size must be >= 1, got {}",
           o.batch_size);
  TS_CHECK(o.num_workers >= 0, ValueError, "DataLoader", "num_workers must be >= 0, got {}",
           o.num_workers);
  TS_CHECK(o.prefetch_factor >= 1, ValueError, "DataLoader", "prefetch_factor must be >= 1, got {}",
           o.prefetch_factor);
  TS_CHECK(!o.pin_memory || cuda::is_available(), DeviceError, "DataLoader",
           "pin_memory needs a CUDA device, and there is none: {} (set pin_memory only when "
           "cuda::is_available())",
           cuda::is_built() ? cuda::unavailable_reason() : "Tessera was built without CUDA");
}

// Up to batch_size examples from the stream, collated; nullopt when none are left.
std::optional<Example> next_stream_batch(IterableDataset& ds, const DataLoaderOptions& o,
                                         int64_t k) {
  std::vector<Example> examples;
  while (static_cast<int64_t>(examples.size()) < o.batch_size) {
    std::optional<Example> e = ds.next();
    if (!e) break;
    examples.push_back(std::move(*e));
  }
  TS_CHECK(k > 0 || !examples.empty(), ValueError, "DataLoader",
           "the iterable dataset yielded no examples");
  const bool partial = static_cast<int64_t>(examples.size()) < o.batch_size;
  if (examples.empty() || (partial && o.drop_last)) return std::nullopt;
  return o.collate ? o.collate(examples) : default_collate(examples);
}

}  // namespace

DataLoader::DataLoader(std::shared_ptr<Dataset> dataset, Options options)
    : map_(std::move(dataset)), opt_(std::move(options)) {
  check_options(opt_);
  TS_CHECK(map_ != nullptr, ValueError, "DataLoader", "the dataset is null");
  TS_CHECK(map_->size() > 0, ValueError, "DataLoader", "the dataset is empty");
  // Only a shuffling loader draws a seed, so a plain loader leaves the default generator alone.
  if (opt_.shuffle && !opt_.generator) {
    auto w = detail::draw_words(nullptr);
    own_gen_ = std::make_unique<Generator>(opt_.seed ? *opt_.seed : detail::to_u64(w[0], w[1]));
  }
}

DataLoader::DataLoader(std::shared_ptr<IterableDataset> dataset, Options options)
    : iterable_(std::move(dataset)), opt_(std::move(options)) {
  check_options(opt_);
  TS_CHECK(iterable_ != nullptr, ValueError, "DataLoader", "the dataset is null");
  TS_CHECK(!opt_.shuffle, ValueError, "DataLoader",
           "shuffle is not possible for an iterable dataset (shuffle inside the stream)");
}

DataLoader::~DataLoader() = default;

int64_t DataLoader::size() const {
  TS_CHECK(map_ != nullptr, ValueError, "DataLoader", "an iterable dataset has no length");
  const int64_t n = map_->size(), b = opt_.batch_size;
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<std::vector<int64_t>> DataLoader::batch_indices() {
  const int64_t n = map_->size();
  std::vector<int64_t> order;
  if (opt_.shuffle) {
    order = randperm(n, opt_.generator ? *opt_.generator : *own_gen_);
  } else {
    order.resize(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t start = 0; start < n; start += opt_.batch_size) {
    const int64_t stop = std::min(n, start + opt_.batch_size);
    if (stop - start < opt_.batch_size && opt_.drop_last) break;
    batches.emplace_back(order.begin() + start, order.begin() + stop);
  }
  return batches;
}

DataLoader::Iterator DataLoader::begin() {
  ++epochs_;
  const int64_t capacity = opt_.prefetch_factor * opt_.num_workers;
  if (iterable_) {
    iterable_->reset();
    auto make = [ds = iterable_, o = opt_](int64_t k) { return next_stream_batch(*ds, o, k); };
    // next() is sequential: one thread reads ahead.
    const int64_t workers = std::min<int64_t>(opt_.num_workers, 1);
    return Iterator(std::make_shared<detail::Epoch>(
        pinned_if(opt_.pin_memory, make), std::numeric_limits<int64_t>::max(), workers, capacity));
  }
  auto batches = std::make_shared<const std::vector<std::vector<int64_t>>>(batch_indices());
  auto make = [ds = map_, batches, collate = opt_.collate](int64_t k) -> std::optional<Example> {
    const auto& idx = (*batches)[static_cast<size_t>(k)];
    if (!collate) return ds->get_batch(idx);
    std::vector<Example> examples;
    examples.reserve(idx.size());
    for (int64_t i : idx) examples.push_back(ds->get(i));
    return collate(examples);
  };
  const auto count = static_cast<int64_t>(batches->size());
  return Iterator(std::make_shared<detail::Epoch>(pinned_if(opt_.pin_memory, make), count,
                                                  opt_.num_workers, capacity));
}

// ---- Iterator -----------------------------------------------------------------------------

DataLoader::Iterator::Iterator(std::shared_ptr<detail::Epoch> epoch) : epoch_(std::move(epoch)) {
  epoch_->advance();
}

const Example& DataLoader::Iterator::operator*() const {
  TS_CHECK(!at_end(), IndexError, "DataLoader", "dereferencing an iterator past the last batch");
  return epoch_->current();
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  TS_CHECK(!at_end(), IndexError, "DataLoader", "advancing an iterator past the last batch");
  epoch_->advance();
  return *this;
}

bool DataLoader::Iterator::at_end() const { return !epoch_ || epoch_->done(); }

bool DataLoader::Iterator::operator==(const Iterator& o) const {
  if (at_end() || o.at_end()) return at_end() && o.at_end();
  return epoch_ == o.epoch_;
}

}  // namespace tessera::data
