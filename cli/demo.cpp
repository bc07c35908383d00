// `tessera demo`: a small worked example of the tensor API. Fits a linear model by gradient
// descent with a hand-written gradient, estimates pi by Monte Carlo, and shows a softmax.
#include "demo.h"

#include <fmt/format.h>

#include <chrono>
#include <sstream>

#include "tessera/tessera.h"

namespace tessera::demo {
namespace {

std::string show(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

void linear_regression() {
  fmt::print("\n== 1. Linear regression by gradient descent ==\n");
  Generator gen(2026);
  const int64_t n = 4096;
  Tensor w_true = tensor<float>({2.0f, -3.0f, 0.5f}, Shape{3, 1});
  const float b_true = 1.0f;
  Tensor x = randn({n, 3}, kFloat32, &gen);
  Tensor y = matmul(x, w_true) + b_true + 0.01 * randn({n, 1}, kFloat32, &gen);
  Tensor w = zeros({3, 1});
  Tensor b = zeros({1});
  const double lr = 0.1;
  for (int step = 0; step <= 100; ++step) {
    Tensor err = matmul(x, w) + b - y;  // (n, 1)
    Tensor loss = mean(square(err));
    Tensor grad_w = matmul(x.t(), err) * (2.0 / n);  // d loss / d w
    Tensor grad_b = sum(err) * (2.0 / n);
    w.sub_(grad_w * lr);
    b.sub_(grad_b * lr);
    if (step % 25 == 0) fmt::print("  step {:3d}  loss {:.6f}\n", step, loss.item<float>());
  }
  fmt::print("  learned w = {}\n  true    w = {}\n", show(w.flatten()), show(w_true.flatten()));
  fmt::print("  learned b = {:.4f} (true {:.4f})\n", b.item<float>(), b_true);
}

void monte_carlo_pi() {
  fmt::print("\n== 2. Monte Carlo estimate of pi with 2^22 points ==\n");
  Generator gen(7);
  const int64_t n = int64_t{1} << 22;
  auto t0 = std::chrono::steady_clock::now();
  Tensor p = rand({n, 2}, kFloat32, &gen);
  Tensor inside = le(sum(square(p), {1}), Scalar(1.0));
  double pi = 4.0 * mean(inside.to(kFloat64)).item<double>();
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  fmt::print("  pi ~= {:.5f}   ({:.1f} ms)\n", pi, ms);
}

void softmax_example() {
  fmt::print("\n== 3. Softmax stays finite for large logits ==\n");
  Tensor logits = tensor<float>({1000.f, 1001.f, 1002.f, -1000.f, 0.f, 1000.f}, Shape{2, 3});
  fmt::print("  logits  = {}\n  softmax = {}\n", show(logits), show(softmax(logits, 1)));
  fmt::print("  argmax per row = {}\n", show(argmax(logits, 1)));
}

}  // namespace

void run() {
  fmt::print("Tessera {} — worked example ({}, {} threads, SIMD {})\n", build_info().version,
             build_info().blas_vendor, num_threads(), simd_target());
  linear_regression();
  monte_carlo_pi();
  softmax_example();
  fmt::print(
      "\nDone. Run `tessera info` for the machine and `tessera bench core` for the kernels.\n");
}

}  // namespace tessera::demo
