// Parallel runtime: parallel_for/parallel_reduce, thread-count control, TaskGraph ordering,
// concurrency, errors, re-runs and cycles, and launch() futures.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>

#include "tessera/runtime/task_graph.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

using namespace std::chrono_literals;
// Long enough never to expire on a loaded machine; only bounds a failure, never a pass.
constexpr auto kBoundedWait = 20s;

// Restores the thread count a test changed.
struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

// A type Tessera knows nothing about: proves exceptions cross threads unchanged.
struct WorkerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

// ---- parallel_for / parallel_reduce ------------------------------------------------------

TEST(Parallel, ForCoversEveryIndexOnce) {
  const int64_t n = 100003;
  std::vector<std::atomic<int>> hits(n);
  parallel_for(n, 1000, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1, std::memory_order_relaxed);
  });
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << i;
}

// Inside run_serially every chunk of a parallel loop runs on the calling thread. Each chunk
// sleeps, so without it an idle pool thread would take the second chunk.
TEST(Parallel, RunSeriallyKeepsLoopsOnTheCallingThread) {
  std::set<std::thread::id> ids;
  std::mutex mu;
  int64_t covered = 0;
  std::thread background([&] {
    run_serially([&] {
      parallel_for(int64_t{1} << 20, 1024, [&](int64_t b, int64_t e) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        std::lock_guard lock(mu);
        ids.insert(std::this_thread::get_id());
        covered += e - b;
      });
    });
    EXPECT_EQ(ids, std::set<std::thread::id>{std::this_thread::get_id()});
  });
  background.join();
  EXPECT_EQ(covered, int64_t{1} << 20);
}

TEST(Parallel, ForOverRange) {
  std::vector<std::atomic<int>> hits(200);
  parallel_for(50, 150, 7, [&](int64_t b, int64_t e) {
    ASSERT_GE(b, 50);
    ASSERT_LE(e, 150);
    for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
  });
  for (int64_t i = 0; i < 200; ++i) EXPECT_EQ(hits[i].load(), i >= 50 && i < 150 ? 1 : 0) << i;
  bool called = false;
  parallel_for(5, 5, 1, [&](int64_t, int64_t) { called = true; });
  EXPECT_FALSE(called);
}

TEST(Parallel, WorkerExceptionArrivesUnchanged) {
  if (num_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  // Every chunk waits (bounded) until two threads are inside, then chunks on threads other
  // than the caller throw: the exception surely comes from a worker thread.
  const auto caller = std::this_thread::get_id();
  std::mutex mu;
  std::set<std::thread::id> inside;
  std::condition_variable cv;
  std::atomic<bool> worker_threw{false};
  std::string message = "<no exception>";
  try {
    parallel_for(1 << 20, 1 << 10, [&](int64_t, int64_t) {
      std::unique_lock lock(mu);
      inside.insert(std::this_thread::get_id());
      cv.notify_all();
      cv.wait_for(lock, kBoundedWait, [&] { return inside.size() >= 2; });
      if (std::this_thread::get_id() != caller) {
        worker_threw = true;
        throw WorkerError("[worker] chunk failed: 42");
      }
    });
  } catch (const WorkerError& e) {
    message = e.what();
  }
  if (!worker_threw) GTEST_SKIP() << "no worker thread joined the loop";
  EXPECT_EQ(message, "[worker] chunk failed: 42");
  // Tessera's own error types keep their type too.
  EXPECT_THROW(parallel_for(1 << 16, 1, [](int64_t, int64_t) { fail<ShapeError>("w", "x"); }),
               ShapeError);
}

TEST(Parallel, ReduceMatchesSerialSum) {
  const int64_t n = 1000001;
  auto sum = parallel_reduce(
      n, 4096, int64_t{0},
      [](int64_t b, int64_t e, int64_t acc) {
        for (int64_t i = b; i < e; ++i) acc += i;
        return acc;
      },
      [](int64_t a, int64_t b) { return a + b; });
  EXPECT_EQ(sum, n * (n - 1) / 2);
  EXPECT_EQ(parallel_reduce(
                0, 10, 7, [](int64_t, int64_t, int a) { return a + 1; },
                [](int a, int b) { return a + b; }),
            7);
}

TEST(Parallel, ReduceIsBitwiseReproducibleAcrossThreadCounts) {
  ThreadCountGuard guard;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-20.f, 20.f);
  std::vector<float> x(300007);
  for (auto& v : x) v = std::ldexp(mag(rng) > 0 ? 1.f : -1.f, static_cast<int>(mag(rng)));
  const int64_t grain = 1000;
  auto sum = [&] {
    return parallel_reduce(
        static_cast<int64_t>(x.size()), grain, 0.0f,
        [&](int64_t b, int64_t e, float acc) {
          for (int64_t i = b; i < e; ++i) acc += x[i];
          return acc;
        },
        [](float a, float b) { return a + b; });
  };
  // The documented order: each chunk summed left to right, chunk sums folded left to right.
  float expected = 0.f;
  for (size_t c = 0; c < x.size(); c += grain) {
    float part = 0.f;
    for (size_t i = c; i < std::min(x.size(), c + grain); ++i) part += x[i];
    expected = c == 0 ? part : expected + part;
  }
  set_num_threads(1);
  const float one = sum();
  set_num_threads(2);
  const float two = sum();
  set_num_threads(4);
  const float four = sum();
  EXPECT_EQ(std::memcmp(&one, &expected, sizeof(float)), 0) << one << " vs " << expected;
  EXPECT_EQ(std::memcmp(&two, &one, sizeof(float)), 0) << two << " vs " << one;
  EXPECT_EQ(std::memcmp(&four, &one, sizeof(float)), 0) << four << " vs " << one;
}

TEST(Parallel, ThreadCountControl) {
  ThreadCountGuard guard;
  set_num_threads(3);
  EXPECT_EQ(num_threads(), 3);
  EXPECT_THROW(set_num_threads(0), ValueError);
  EXPECT_EQ(num_threads(), 3);
  // One thread: everything runs on the caller.
  set_num_threads(1);
  const auto caller = std::this_thread::get_id();
  std::atomic<int> elsewhere{0};
  parallel_for(1 << 18, 1, [&](int64_t, int64_t) {
    if (std::this_thread::get_id() != caller) ++elsewhere;
  });
  EXPECT_EQ(elsewhere.load(), 0);
}

TEST(Parallel, ParsesThreadCountVariable) {
  EXPECT_EQ(parse_num_threads("4"), 4);
  EXPECT_EQ(parse_num_threads("1"), 1);
  EXPECT_EQ(parse_num_threads("0"), std::nullopt);
  EXPECT_EQ(parse_num_threads("-2"), std::nullopt);
  EXPECT_EQ(parse_num_threads(""), std::nullopt);
  EXPECT_EQ(parse_num_threads("4x"), std::nullopt);
  EXPECT_EQ(parse_num_threads(" 4"), std::nullopt);
  EXPECT_EQ(parse_num_threads("eight"), std::nullopt);
  EXPECT_EQ(parse_num_threads("99999999999"), std::nullopt);
}

// ---- TaskGraph ------------------------------------------------------------------------------

TEST(TaskGraph, RunsEachNodeAfterAllItsDependencies) {
  // A random DAG: node i may depend on any earlier node; nodes are added in a shuffled
  // order of indices so graph insertion order is not a valid schedule by accident.
  const int n = 60;
  std::mt19937 rng(3);
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  TaskGraph g;
  std::atomic<int> clock{0};
  std::vector<int> stamp(n, -1);  // written by one node, read after run(): ordered by run()
  std::vector<TaskId> id(n);
  for (int i : order) id[i] = g.add([&stamp, &clock, i] { stamp[i] = clock.fetch_add(1); });
  std::vector<std::pair<int, int>> edges;  // (node, dependency)
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < i; ++j)
      if (rng() % 6 == 0) {
        g.depend(id[i], id[j]);
        edges.emplace_back(i, j);
      }
  g.run();
  EXPECT_EQ(clock.load(), n);
  for (auto [i, j] : edges)
    EXPECT_LT(stamp[j], stamp[i]) << i << " ran before its dependency " << j;
  for (int i = 0; i < n; ++i) EXPECT_EQ(g.state(id[i]), TaskState::done);
}

TEST(TaskGraph, IndependentNodesRunConcurrently) {
  if (num_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  // Each node waits (bounded) until the other has started: both can only succeed together.
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  std::atomic<int> met{0};
  auto meet = [&] {
    std::unique_lock lock(mu);
    ++arrived;
    cv.notify_all();
    if (cv.wait_for(lock, kBoundedWait, [&] { return arrived == 2; })) ++met;
  };
  TaskGraph g;
  auto a = g.add(meet, "a");
  auto b = g.add(meet, "b");
  std::atomic<bool> joined{false};
  g.add([&] { joined = true; }, "join", {a, b});
  g.run();
  EXPECT_EQ(met.load(), 2);
  EXPECT_TRUE(joined.load());
}

TEST(TaskGraph, FailureSkipsDependentsAndRethrowsTheError) {
  TaskGraph g;
  std::atomic<int> ran_after{0}, ran_independent{0};
  auto bad = g.add([] { throw WorkerError("[bad] broke at 3"); }, "bad");
  auto mid = g.add(
      [&] {
        ++ran_after;
        throw WorkerError("[mid] must not run");
      },
      "mid", {bad});
  auto last = g.add([&] { ++ran_after; }, "last", {mid});
  auto other = g.add([&] { ++ran_independent; }, "other");
  auto both = g.add([&] { ++ran_after; }, "both", {other, bad});
  EXPECT_EQ(message_of<WorkerError>([&] { g.run(); }), "[bad] broke at 3");
  EXPECT_EQ(ran_after.load(), 0);
  EXPECT_EQ(ran_independent.load(), 1);  // independent nodes still run (documented)
  EXPECT_EQ(g.state(bad), TaskState::failed);
  EXPECT_EQ(g.state(mid), TaskState::skipped);
  EXPECT_EQ(g.state(last), TaskState::skipped);
  EXPECT_EQ(g.state(both), TaskState::skipped);
  EXPECT_EQ(g.state(other), TaskState::done);
}

TEST(TaskGraph, RethrowsTheFirstErrorInTime) {
  if (num_threads() < 2) GTEST_SKIP() << "needs 2 threads";
  // `second` throws only after it has seen `first` marked failed (its error is recorded by
  // then), so the first error in time is known.
  TaskGraph g;
  TaskId first = g.add([] { throw ValueError("[first] 1"); }, "first");
  g.add(
      [&] {
        auto until = std::chrono::steady_clock::now() + kBoundedWait;
        while (g.state(first) != TaskState::failed && std::chrono::steady_clock::now() < until)
          std::this_thread::yield();
        throw IndexError("[second] 2");
      },
      "second");
  EXPECT_EQ(message_of<ValueError>([&] { g.run(); }), "[first] 1");
}

TEST(TaskGraph, CanBeRunAgain) {
  TaskGraph g;
  std::atomic<int> count{0};
  bool fail_once = true;
  auto a = g.add([&] { ++count; }, "a");
  auto b = g.add(
      [&] {
        if (std::exchange(fail_once, false)) throw ValueError("[b] first time");
        ++count;
      },
      "b", {a});
  auto c = g.add([&] { ++count; }, "c", {b});
  EXPECT_THROW(g.run(), ValueError);
  EXPECT_EQ(count.load(), 1);
  EXPECT_EQ(g.state(c), TaskState::skipped);
  g.run();  // state is reset: b succeeds now and c runs
  EXPECT_EQ(count.load(), 4);
  EXPECT_EQ(g.state(c), TaskState::done);
  auto d = g.add([&] { ++count; }, "d", {c});  // grows between runs
  EXPECT_EQ(g.state(d), TaskState::pending);
  g.run();
  EXPECT_EQ(count.load(), 8);
  EXPECT_EQ(g.state(d), TaskState::done);
}

TEST(TaskGraph, CycleIsReportedBeforeAnythingRuns) {
  TaskGraph g;
  std::atomic<int> ran{0};
  auto x = g.add([&] { ++ran; }, "x");
  auto a = g.add([&] { ++ran; }, "a", {x});
  auto b = g.add([&] { ++ran; }, "b", {a});
  auto c = g.add([&] { ++ran; }, "c", {b});
  g.add([&] { ++ran; }, "free");
  g.depend(a, c);
  std::string msg = message_of<ValueError>([&] { g.run(); });
  EXPECT_NE(msg.find("[TaskGraph.run] dependency cycle"), std::string::npos) << msg;
  // The loop is a -> c -> b -> a in some rotation; x is not on it.
  EXPECT_TRUE(msg.find("'a' -> 'c' -> 'b' -> 'a'") != std::string::npos ||
              msg.find("'c' -> 'b' -> 'a' -> 'c'") != std::string::npos ||
              msg.find("'b' -> 'a' -> 'c' -> 'b'") != std::string::npos)
      << msg;
  EXPECT_EQ(msg.find("'x'"), std::string::npos) << msg;
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(message_of<ValueError>([&] { g.depend(b, b); }),
            "[TaskGraph.depend] task 'b' cannot depend on itself");
}

TEST(TaskGraph, RejectsUnknownIds) {
  TaskGraph g, other;
  auto a = g.add([] {}, "a");
  auto foreign = other.add([] {});
  EXPECT_THROW(g.depend(a, foreign), ValueError);
  EXPECT_THROW(g.depend(a, TaskId{}), ValueError);
  TaskId past_end = a;
  past_end.index = 7;
  EXPECT_EQ(message_of<ValueError>([&] { g.state(past_end); }),
            "[TaskGraph.state] unknown task id 7: the graph has 1 tasks");
  EXPECT_THROW(g.add([] {}, "b", {foreign}), ValueError);
  EXPECT_EQ(g.size(), 1u);  // the rejected add left nothing behind
  EXPECT_THROW(g.add(nullptr, "empty"), ValueError);
  EXPECT_EQ(g.name(a), "a");
  EXPECT_EQ(other.name(foreign), "task0");
}

TEST(TaskGraph, RejectsChangesAndReentryWhileRunning) {
  TaskGraph g;
  std::string add_error, run_error;
  g.add(
      [&] {
        add_error = message_of<ValueError>([&] { g.add([] {}); });
        run_error = message_of<ValueError>([&] { g.run(); });
      },
      "self");
  g.run();
  EXPECT_NE(add_error.find("[TaskGraph.add] the graph is running"), std::string::npos);
  EXPECT_EQ(run_error, "[TaskGraph.run] the graph is already running");
  EXPECT_EQ(g.size(), 1u);
}

TEST(TaskGraph, NodesCanBeTensorPrograms) {
  Tensor x = arange(12, kFloat64).reshape({3, 4});
  Tensor y, z, w;
  TaskGraph g;
  auto ty = g.add([&] { y = matmul(x, x.mT()); }, "gram");
  auto tz = g.add([&] { z = x.sum({1}); }, "rowsum");
  g.add([&] { w = y.sum({1}) - z * z; }, "combine", {ty, tz});
  g.run();
  // sum_j (x x^T)_ij = x_i . (sum of rows) ; compare against plain loops.
  auto xv = x.to_vector<double>();
  auto wv = w.to_vector<double>();
  for (int i = 0; i < 3; ++i) {
    double gram = 0, rs = 0;
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) gram += xv[i * 4 + k] * xv[j * 4 + k];
    for (int k = 0; k < 4; ++k) rs += xv[i * 4 + k];
    EXPECT_DOUBLE_EQ(wv[i], gram - rs * rs) << i;
  }
}

TEST(TaskGraph, EmptyGraphRuns) {
  TaskGraph g;
  g.run();
  EXPECT_EQ(g.size(), 0u);
}

// ---- launch ---------------------------------------------------------------------------------

TEST(Parallel, LaunchDeliversValue) {
  std::vector<Future<int64_t>> futures;
  for (int64_t i = 0; i < 64; ++i) futures.push_back(launch([i] { return i * i; }));
  int64_t total = 0;
  for (auto& f : futures) total += f.get();
  EXPECT_EQ(total, 63 * 64 * 127 / 6);
  auto moved = launch([p = std::make_unique<int>(5)] { return *p + 1; });  // move-only callable
  EXPECT_EQ(moved.get(), 6);
  EXPECT_FALSE(moved.valid());
  EXPECT_EQ(message_of<ValueError>([&] { moved.get(); }).rfind("[Future] no result", 0), 0u);
  std::atomic<bool> ran{false};
  auto v = launch([&] { ran = true; });
  v.get();
  EXPECT_TRUE(ran.load());
}

TEST(Parallel, LaunchDeliversException) {
  auto f = launch([]() -> int { throw WorkerError("[job] failed with 9"); });
  f.wait();
  EXPECT_TRUE(f.ready());
  EXPECT_EQ(message_of<WorkerError>([&] { f.get(); }), "[job] failed with 9");
  auto g = launch([] { fail<DTypeError>("job", "bad dtype {}", "int8"); });
  EXPECT_THROW(g.get(), DTypeError);
}

TEST(Parallel, LaunchNestedWaitsDoNotDeadlockOnOneThread) {
  ThreadCountGuard guard;
  set_num_threads(1);
  // A job waiting on a job it launched: the waiter runs the inner job itself if needed.
  auto outer = launch([] {
    auto inner = launch([] { return (ones({4}) * 3.0).sum().item<double>(); });
    return inner.get() + 1;
  });
  EXPECT_EQ(outer.get(), 13.0);
}

}  // namespace
}  // namespace tessera
