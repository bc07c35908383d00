#pragma once
// The fused update driver: one loop over a parameter's elements that reads the gradient and
// writes the parameter and its state buffers together, so an update is one pass over memory
// instead of a chain of elementwise ops each reading and writing whole tensors.
#include <array>
#include <cmath>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tessera/core/dtype.h"
#include "tessera/core/tensor.h"
#include "tessera/io/state_dict.h"
#include "tessera/runtime/parallel.h"

namespace tessera::optim::detail {

/// Raw arrays of one update: the parameter, its gradient and up to four state buffers.
template <class T>
struct Arrays {
  using value_type = T;
  T* p;
  const T* g;
  std::array<T*, 4> s;
};

/// A parameter ready for a fused loop. `work` is the parameter itself, or a contiguous copy
/// that finish() writes back when the parameter is a non-contiguous view.
struct Prepared {
  Tensor work, grad;
  std::vector<Tensor> bufs;
  template <class T>
  Arrays<T> arrays() const {
    Arrays<T> a{work.data_ptr<T>(), grad.data_ptr<T>(), {}};
    for (size_t k = 0; k < bufs.size(); ++k) a.s[k] = bufs[k].data_ptr<T>();
    return a;
  }
};

/// Checks dtypes and shapes and makes the working copy if needed.
Prepared prepare(std::string_view op, const Tensor& param, const Tensor& grad,
                 std::vector<Tensor> bufs);
/// Writes a working copy back, or bumps the parameter's version for the in-place write.
/// `op` must be a string literal: the storage keeps it as the last writer's name.
void finish(std::string_view op, const Tensor& param, const Prepared& prep);

/// Runs body(arrays, begin, end) over the parameter's elements, in parallel chunks for large
/// parameters (each element is independent, so results do not depend on the thread count).
template <class Body>
void fused_update(std::string_view op, const Tensor& param, const Tensor& grad,
                  std::vector<Tensor> bufs, Body&& body) {
  const Prepared prep = prepare(op, param, grad, std::move(bufs));
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const Arrays<T> a = prep.arrays<T>();
    parallel_for(prep.work.numel(), kParallelGrain, [&](int64_t b, int64_t e) { body(a, b, e); });
  };
  if (prep.work.dtype() == kFloat64)
    run(TypeTag<double>{});
  else
    run(TypeTag<float>{});
  finish(op, param, prep);
}

/// PyTorch's lerp: self + w * (end - self), computed from the nearer end for accuracy.
template <class T>
inline T lerp(T self, T end, T w) {
  return std::abs(w) < T(0.5) ? self + w * (end - self) : end - (end - self) * (T(1) - w);
}

/// torch.maximum: NaN wins.
template <class T>
inline T nan_max(T a, T b) {
  return (std::isnan(a) || a > b) ? a : b;
}

/// The named state buffer of the parameter's shape and dtype, made on first use (filled with
/// `init`, or left uninitialized when the first update writes every element: *created says so).
Tensor state_buffer(StateDict& state, const std::string& name, const Tensor& param,
                    std::optional<double> init, bool* created = nullptr);
/// Increments the "step" count (a 0-d int64 tensor, made on first use) and returns it.
int64_t next_step(StateDict& state);

}  // namespace tessera::optim::detail
