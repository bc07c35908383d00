#include "tessera/runtime/task_graph.h"

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>

#include "tessera/core/error.h"

namespace tessera {
namespace {

std::atomic<uint64_t> next_graph_serial{1};

struct Node {
  std::function<void()> fn;
  std::string name;
  std::vector<uint32_t> deps;   // nodes this one waits for
  std::vector<uint32_t> succs;  // nodes waiting for this one
};

// Per-run bookkeeping, rebuilt by every run().
struct RunSlot {
  std::atomic<size_t> waiting{0};     // unfinished dependencies
  std::atomic<bool> poisoned{false};  // a dependency failed or was skipped
  std::atomic<TaskState> state{TaskState::pending};
};

// The node names along path[from..], closed into a loop: "a -> b -> a".
std::string cycle_text(const std::vector<Node>& nodes, const std::vector<uint32_t>& path,
                       size_t from) {
  std::string s;
  for (size_t k = from; k < path.size(); ++k) s += "'" + nodes[path[k]].name + "' -> ";
  return s + "'" + nodes[path[from]].name + "'";
}

}  // namespace

struct TaskGraph::Impl {
  uint64_t serial = next_graph_serial.fetch_add(1);
  std::vector<Node> nodes;
  std::unique_ptr<RunSlot[]> slots;
  size_t slot_count = 0;
  std::atomic<bool> running{false};
  std::mutex error_mu;
  std::exception_ptr first_error;

  uint32_t check(TaskId id, const char* op) const;
  void check_idle(const char* op) const;
  void check_acyclic() const;
  void reset_slots();
  void execute(uint32_t i, tbb::task_group& tg);
  void record(std::exception_ptr e);
};

uint32_t TaskGraph::Impl::check(TaskId id, const char* op) const {
  if (id.graph != serial)
    fail<ValueError>(op, "task id {} belongs to {} (graph #{}), not to this graph (#{})", id.index,
                     id.graph == 0 ? "no graph" : "another graph", id.graph, serial);
  if (id.index >= nodes.size())
    fail<ValueError>(op, "unknown task id {}: the graph has {} tasks", id.index, nodes.size());
  return id.index;
}

void TaskGraph::Impl::check_idle(const char* op) const {
  if (running.load(std::memory_order_acquire))
    fail<ValueError>(op, "the graph is running; add nodes and edges before run()");
}

// Kahn's algorithm; if some nodes never become ready, each of them waits on another such
// node, so walking dependencies from one of them must revisit a node: that loop is a cycle.
void TaskGraph::Impl::check_acyclic() const {
  std::vector<size_t> waiting(nodes.size());
  std::vector<uint32_t> ready;
  for (uint32_t i = 0; i < nodes.size(); ++i)
    if ((waiting[i] = nodes[i].deps.size()) == 0) ready.push_back(i);
  size_t seen = 0;
  while (!ready.empty()) {
    uint32_t i = ready.back();
    ready.pop_back();
    ++seen;
    for (uint32_t s : nodes[i].succs)
      if (--waiting[s] == 0) ready.push_back(s);
  }
  if (seen == nodes.size()) return;
  uint32_t v = static_cast<uint32_t>(
      std::find_if(waiting.begin(), waiting.end(), [](size_t w) { return w > 0; }) -
      waiting.begin());
  std::vector<uint32_t> path;
  std::vector<int64_t> pos(nodes.size(), -1);
  while (pos[v] < 0) {
    pos[v] = static_cast<int64_t>(path.size());
    path.push_back(v);
    v = *std::find_if(nodes[v].deps.begin(), nodes[v].deps.end(),
                      [&](uint32_t d) { return waiting[d] > 0; });
  }
  fail<ValueError>("TaskGraph.run",
                   "dependency cycle {} ('a -> b' = a waits for b); "
                   "no task was run",
                   cycle_text(nodes, path, static_cast<size_t>(pos[v])));
}

void TaskGraph::Impl::reset_slots() {
  if (slot_count != nodes.size()) {
    slots = std::make_unique<RunSlot[]>(nodes.size());
    slot_count = nodes.size();
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    slots[i].waiting.store(nodes[i].deps.size(), std::memory_order_relaxed);
    slots[i].poisoned.store(false, std::memory_order_relaxed);
    slots[i].state.store(TaskState::pending, std::memory_order_relaxed);
  }
  first_error = nullptr;
}

void TaskGraph::Impl::record(std::exception_ptr e) {
  std::lock_guard lock(error_mu);
  if (!first_error) first_error = std::move(e);
}

// Runs (or skips) node i, then releases its successors. The acq_rel countdown on `waiting`
// orders everything a dependency wrote before the dependent starts.
void TaskGraph::Impl::execute(uint32_t i, tbb::task_group& tg) {
  RunSlot& slot = slots[i];
  TaskState outcome = TaskState::skipped;
  if (!slot.poisoned.load(std::memory_order_relaxed)) {
    try {
      nodes[i].fn();
      outcome = TaskState::done;
    } catch (...) {
      record(std::current_exception());  // before publishing `failed` (see state())
      outcome = TaskState::failed;
    }
  }
  slot.state.store(outcome, std::memory_order_release);
  for (uint32_t s : nodes[i].succs) {
    if (outcome != TaskState::done) slots[s].poisoned.store(true, std::memory_order_relaxed);
    if (slots[s].waiting.fetch_sub(1, std::memory_order_acq_rel) == 1)
      tg.run([this, s, &tg] { execute(s, tg); });
  }
}

TaskGraph::TaskGraph() : impl_(std::make_unique<Impl>()) {}
TaskGraph::~TaskGraph() = default;
TaskGraph::TaskGraph(TaskGraph&&) noexcept = default;
TaskGraph& TaskGraph::operator=(TaskGraph&&) noexcept = default;

TaskId TaskGraph::add(std::function<void()> fn, std::string name, const std::vector<TaskId>& deps) {
  impl_->check_idle("TaskGraph.add");
  if (!fn) fail<ValueError>("TaskGraph.add", "task '{}' has no function", name);
  for (TaskId d : deps) impl_->check(d, "TaskGraph.add");
  auto index = static_cast<uint32_t>(impl_->nodes.size());
  if (name.empty()) name = fmt::format("task{}", index);
  impl_->nodes.push_back(Node{std::move(fn), std::move(name), {}, {}});
  TaskId id{impl_->serial, index};
  for (TaskId d : deps) depend(id, d);
  return id;
}

void TaskGraph::depend(TaskId node, TaskId on) {
  impl_->check_idle("TaskGraph.depend");
  uint32_t n = impl_->check(node, "TaskGraph.depend"), o = impl_->check(on, "TaskGraph.depend");
  auto& nodes = impl_->nodes;
  if (n == o)
    fail<ValueError>("TaskGraph.depend", "task '{}' cannot depend on itself", nodes[n].name);
  auto& deps = nodes[n].deps;
  if (std::find(deps.begin(), deps.end(), o) != deps.end()) return;
  deps.push_back(o);
  nodes[o].succs.push_back(n);
}

void TaskGraph::run() {
  Impl& g = *impl_;
  if (g.running.exchange(true, std::memory_order_acq_rel))
    fail<ValueError>("TaskGraph.run", "the graph is already running");
  struct Idle {
    std::atomic<bool>& flag;
    ~Idle() { flag.store(false, std::memory_order_release); }
  } idle{g.running};
  g.check_acyclic();
  g.reset_slots();
  tbb::task_group tg;
  for (uint32_t i = 0; i < g.nodes.size(); ++i)
    if (g.nodes[i].deps.empty()) tg.run([&g, i, &tg] { g.execute(i, tg); });
  tg.wait();  // the caller works on the graph too
  if (g.first_error) std::rethrow_exception(g.first_error);
}

size_t TaskGraph::size() const { return impl_->nodes.size(); }

const std::string& TaskGraph::name(TaskId id) const {
  return impl_->nodes[impl_->check(id, "TaskGraph.name")].name;
}

TaskState TaskGraph::state(TaskId id) const {
  uint32_t i = impl_->check(id, "TaskGraph.state");
  if (i >= impl_->slot_count) return TaskState::pending;
  return impl_->slots[i].state.load(std::memory_order_acquire);
}

// ---- launch -----------------------------------------------------------------------------

namespace detail {

bool AsyncJob::try_run() {
  int expected = kQueued;
  if (!stage_.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) return false;
  try {
    body_();
  } catch (...) {
    error_ = std::current_exception();
  }
  body_ = nullptr;  // drop the captures now, not when the last future goes away
  {
    std::lock_guard lock(mu_);  // a waiter between its check and its sleep must not miss this
    stage_.store(kDone, std::memory_order_release);
  }
  cv_.notify_all();
  return true;
}

void AsyncJob::wait() {
  if (try_run()) return;
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return stage_.load(std::memory_order_acquire) == kDone; });
}

void submit(std::shared_ptr<AsyncJob> job) {
  static auto* arena = new tbb::task_arena();  // leaked: workers may outlive static destruction
  arena->enqueue([job = std::move(job)] { job->try_run(); });
}

}  // namespace detail

void throw_invalid_future() {
  fail<ValueError>("Future",
                   "no result to wait for: get() was already called, or the future "
                   "was not made by launch()");
}

}  // namespace tessera
