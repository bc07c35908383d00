#pragma once
// Helpers for the nn tests: host values, closeness checks, and a finite-difference gradient
// check (central differences in float64 against autograd::grad).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera::nn_test {

inline std::vector<double> vals(const Tensor& t) { return t.detach().to_vector<double>(); }

inline void expect_close(const Tensor& t, const std::vector<double>& ref, double tol = 1e-9,
                         const std::string& what = "") {
  const auto v = vals(t);
  ASSERT_EQ(v.size(), ref.size()) << what;
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(v[i], ref[i], tol * (1.0 + std::abs(ref[i]))) << what << " at " << i;
}

inline void expect_close(const Tensor& a, const Tensor& b, double tol = 1e-9,
                         const std::string& what = "") {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  expect_close(a, vals(b), tol, what);
}

/// Checks d(sum(f(inputs) * r))/d(input) for every input against central differences, with a
/// fixed random r so that every output element matters with a different weight.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      std::vector<Tensor> inputs, double tol = 1e-6, double h = 1e-6) {
  for (auto& x : inputs) x = x.detach().clone().requires_grad_();
  const Tensor out = f(inputs);
  Generator gen(1234);
  const Tensor r = randn(out.shape(), kFloat64, &gen);
  const auto grads = autograd::grad({(out * r).sum()}, inputs, {}, {.allow_unused = true});
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor base = inputs[k].detach().clone();
    std::vector<double> x = vals(base), numeric(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      auto eval = [&](double delta) {
        std::vector<double> xp = x;
        xp[i] += delta;
        std::vector<Tensor> in = inputs;
        for (auto& t : in) t = t.detach();
        in[k] = tensor(xp, base.shape());
        autograd::NoGradGuard ng;
        return (f(in) * r).sum().item<double>();
      };
      numeric[i] = (eval(h) - eval(-h)) / (2 * h);
    }
    const Tensor g = grads[k].defined() ? grads[k] : zeros_like(base);
    expect_close(g, numeric, tol, "gradient of input " + std::to_string(k));
  }
}

/// Checks autograd's gradient of loss() for every parameter of m against central differences.
inline void check_param_grads(nn::Module& m, const std::function<Tensor()>& loss,
                              double tol = 1e-6) {
  const auto params = m.parameters();
  const auto grads = autograd::grad({loss()}, params, {}, {.allow_unused = true});
  autograd::NoGradGuard no_grad;
  const double h = 1e-6;
  for (size_t k = 0; k < params.size(); ++k) {
    Tensor flat = params[k].view({-1});
    std::vector<double> numeric;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double v = flat[i].item<double>();
      flat[i].fill_(v + h);
      const double up = loss().item<double>();
      flat[i].fill_(v - h);
      const double down = loss().item<double>();
      flat[i].fill_(v);
      numeric.push_back((up - down) / (2 * h));
    }
    ASSERT_TRUE(grads[k].defined()) << "parameter " << k;
    expect_close(grads[k], numeric, tol, "parameter " + std::to_string(k));
  }
}

/// Runs fn and checks it throws E with a message containing every piece of `parts`.
template <class E, class Fn>
void expect_error(Fn&& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no exception thrown";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

}  // namespace tessera::nn_test
