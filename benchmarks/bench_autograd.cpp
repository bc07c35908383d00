// `tessera bench autograd`: the engine's per-op cost on a long chain of tiny ops, matmul's
// backward against the two matmuls it consists of, and what grad mode costs when nothing
// requires grad.
#include "bench.h"
#include "tessera/tessera.h"

namespace tessera::bench {
namespace {

constexpr int kChain = 200;

// Forward and backward of 200 elementwise ops on 16 elements, per op, against the budget.
Record chain_case(const Options& opt) {
  Tensor x0 = rand({16}).requires_grad_();
  auto fwd_bwd = [&] {
    Tensor y = x0;
    for (int i = 0; i < kChain; i += 2) y = tanh(sin(y));
    autograd::grad({y.sum()}, {x0});
  };
  const double t = median_seconds(fwd_bwd, opt) / kChain;
  constexpr double kBudget = 1.5e-6;
  return {"chain of 200 ops, 16 elements: forward+backward per op",
          t * 1e6,
          "us",
          "budget 1.5 us",
          kBudget * 1e6,
          kBudget / t,
          ">= 1.00"};
}

// Backward of C = A B (both requiring grad) is dA = G B^T and dB = A^T G: two matmuls.
Record matmul_backward_case(const Options& opt) {
  constexpr int64_t n = 1024;
  Tensor a = rand({n, n}).requires_grad_(), b = rand({n, n}).requires_grad_();
  Tensor g = rand({n, n});
  Tensor c = matmul(a, b);
  const Tensor ad = a.detach(), bd = b.detach();
  auto backward = [&] { autograd::grad({c}, {a, b}, {g}, {.retain_graph = true}); };
  auto two_matmuls = [&] {
    matmul(g, bd.mT());
    matmul(ad.mT(), g);
  };
  const auto t = median_seconds_interleaved({two_matmuls, backward}, opt);
  return {"matmul 1024 f32 backward",
          t[1] * 1e3,
          "ms",
          "the two matmuls it consists of",
          t[0] * 1e3,
          t[0] / t[1],
          ">= 0.952 (<= 1.05x)"};
}

// Grad mode on with nothing requiring grad against grad mode off, on the tiny-op case.
Record grad_mode_overhead_case(const Options& opt) {
  Tensor a = ones({16}), b = ones({16});
  auto on = [&] {
    for (int i = 0; i < 100; ++i) add(a, b);
  };
  auto off = [&] {
    autograd::NoGradGuard no_grad;
    for (int i = 0; i < 100; ++i) add(a, b);
  };
  const auto t = median_seconds_interleaved({off, on}, opt);
  return {"add 16 elements, grad mode on (nothing requires grad)",
          t[1] / 100 * 1e6,
          "us",
          "grad mode off",
          t[0] / 100 * 1e6,
          t[0] / t[1],
          ">= 0.952 (<= 5% cost)"};
}

}  // namespace

std::vector<Record> run_autograd(const Options& opt) {
  return {chain_case(opt), matmul_backward_case(opt), grad_mode_overhead_case(opt)};
}

}  // namespace tessera::bench
