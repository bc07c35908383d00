#pragma once
// Task graphs (nodes are functions, edges are dependencies; independent nodes run concurrently
// on oneTBB) and launch() for one asynchronous CPU job. See docs/design/parallel.md.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace tessera {

/// Handle to one node of one TaskGraph (ids of another graph are rejected).
struct TaskId {
  uint64_t graph = 0;  ///< serial number of the owning graph; 0 = no graph
  uint32_t index = 0;  ///< position in that graph
  bool operator==(const TaskId&) const = default;
};

/// What happened to a node in the latest run().
enum class TaskState : uint8_t {
  pending,  ///< not run (yet, or added after the latest run)
  done,     ///< its function returned
  failed,   ///< its function threw
  skipped,  ///< a node it depends on (directly or not) failed, so it was not started
};

/// A dependency graph of functions. run() executes every node once, each after all of its
/// dependencies, independent nodes concurrently; a graph can be run again.
class TaskGraph {
 public:
  TaskGraph();
  ~TaskGraph();
  TaskGraph(TaskGraph&&) noexcept;
  TaskGraph& operator=(TaskGraph&&) noexcept;
  TaskGraph(const TaskGraph&) = delete;
  TaskGraph& operator=(const TaskGraph&) = delete;

  /// Adds a node running fn after every node in deps; an empty name becomes "task<index>".
  TaskId add(std::function<void()> fn, std::string name = {}, const std::vector<TaskId>& deps = {});
  /// Makes `node` wait for `on` (a repeated edge is a no-op; a self-edge is a ValueError).
  void depend(TaskId node, TaskId on);
  /// Runs the graph and returns when every node has finished or been skipped. Checks for
  /// cycles first (ValueError naming the cycle; nothing runs). Rethrows the first error a node
  /// threw; nodes depending on a failed node are skipped, independent nodes still run.
  void run();
  /// Number of nodes.
  size_t size() const;
  /// The node's name.
  const std::string& name(TaskId id) const;
  /// The node's outcome in the latest run() (safe to call from a running node).
  TaskState state(TaskId id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace detail {

/// Shared state of one launched job. Whichever thread claims it first runs it, so a thread
/// waiting on a job nobody has started runs it itself instead of blocking (no deadlock when
/// every worker is busy waiting, or when only one thread is allowed).
class AsyncJob {
 public:
  explicit AsyncJob(std::function<void()> body) : body_(std::move(body)) {}
  /// Claims and runs the job; false when another thread already claimed it.
  bool try_run();
  /// Returns once the job has finished, running it here if still unclaimed.
  void wait();
  /// True once the job has finished.
  bool ready() const { return stage_.load(std::memory_order_acquire) == kDone; }
  /// The exception the job threw, if any (valid once ready()).
  std::exception_ptr error() const { return error_; }

 private:
  static constexpr int kQueued = 0, kRunning = 1, kDone = 2;
  std::function<void()> body_;
  std::exception_ptr error_;
  std::atomic<int> stage_{kQueued};
  std::mutex mu_;
  std::condition_variable cv_;
};

/// Queues the job on the oneTBB workers.
void submit(std::shared_ptr<AsyncJob> job);

}  // namespace detail

/// The result of launch(): get() waits, then returns the value or rethrows the job's error.
template <class T>
class Future {
  static_assert(!std::is_reference_v<T>, "launch() returns values, not references");
  using Slot = std::conditional_t<std::is_void_v<T>, std::monostate, std::optional<T>>;

 public:
  Future() = default;
  /// True until get() has been called.
  bool valid() const { return job_ != nullptr; }
  /// True once the job has finished (get() will not block).
  bool ready() const { return job_ && job_->ready(); }
  /// Waits for the job (running it on this thread if no worker has started it).
  void wait() const {
    check_valid();
    job_->wait();
  }
  /// Waits, then returns the value or rethrows the job's exception; the future becomes invalid.
  T get() {
    wait();
    auto job = std::move(job_);
    auto slot = std::move(slot_);
    if (auto e = job->error()) std::rethrow_exception(e);
    if constexpr (!std::is_void_v<T>) return std::move(**slot);
  }

 private:
  template <class F>
  friend auto launch(F&& fn) -> Future<std::invoke_result_t<std::decay_t<F>&>>;
  void check_valid() const;
  std::shared_ptr<detail::AsyncJob> job_;
  std::shared_ptr<Slot> slot_;
};

[[noreturn]] void throw_invalid_future();

template <class T>
void Future<T>::check_valid() const {
  if (!job_) throw_invalid_future();
}

/// Runs fn() asynchronously on the oneTBB workers; its value or exception arrives via the future.
template <class F>
auto launch(F&& fn) -> Future<std::invoke_result_t<std::decay_t<F>&>> {
  using T = std::invoke_result_t<std::decay_t<F>&>;
  Future<T> fut;
  fut.slot_ = std::make_shared<typename Future<T>::Slot>();
  // shared_ptr makes move-only callables fit in std::function.
  auto f = std::make_shared<std::decay_t<F>>(std::forward<F>(fn));
  fut.job_ = std::make_shared<detail::AsyncJob>([f, slot = fut.slot_] {
    if constexpr (std::is_void_v<T>)
      (*f)();
    else
      slot->emplace((*f)());
  });
  detail::submit(fut.job_);
  return fut;
}

}  // namespace tessera
