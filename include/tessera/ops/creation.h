#pragma once
// Tensor creation: constants, ranges, from host data, and random tensors.
#include <functional>
#include <optional>
#include <vector>

#include "tessera/core/generator.h"
#include "tessera/core/tensor.h"

namespace tessera {

/// Options shared by creation functions (dtype default float32, device default cpu).
struct TensorOptions {
  DType dtype = kFloat32;
  Device device = Device::cpu();
  TensorOptions() = default;
  TensorOptions(DType d) : dtype(d) {}  // NOLINT(google-explicit-constructor)
  TensorOptions(DType d, Device dev) : dtype(d), device(dev) {}
};

Tensor empty(Shape shape, TensorOptions opt = {});
Tensor zeros(Shape shape, TensorOptions opt = {});
Tensor ones(Shape shape, TensorOptions opt = {});
Tensor full(Shape shape, const Scalar& value, TensorOptions opt);
/// full() whose dtype follows the value (bool, int64, float32, complex64) unless given.
Tensor full(Shape shape, const Scalar& value, std::optional<DType> dtype = {});
Tensor full(Shape shape, const Scalar& value, DType dtype);
Tensor empty_like(const Tensor& t, std::optional<DType> dtype = {});
Tensor zeros_like(const Tensor& t, std::optional<DType> dtype = {});
Tensor ones_like(const Tensor& t, std::optional<DType> dtype = {});
Tensor full_like(const Tensor& t, const Scalar& value, std::optional<DType> dtype = {});
/// A 0-d tensor holding v (dtype from the value unless given).
Tensor scalar_tensor(const Scalar& v, std::optional<DType> dtype = {});
/// [start, end) in steps; dtype int64 when all are integers, else float32, unless given.
Tensor arange(Scalar end, std::optional<DType> dtype = {});
Tensor arange(Scalar start, Scalar end, Scalar step = 1, std::optional<DType> dtype = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opt = {});
Tensor eye(int64_t n, std::optional<int64_t> m = {}, TensorOptions opt = {});

/// Copies host values into a new tensor of the given shape (default: 1-d).
template <class T>
Tensor tensor(const std::vector<T>& values, std::optional<Shape> shape = {});
/// A 1-d tensor from a braced list: tensor({1.f, 2.f}).
template <class T>
Tensor tensor(std::initializer_list<T> values, std::optional<Shape> shape = {}) {
  return tensor(std::vector<T>(values), std::move(shape));
}
/// Wraps external memory without copying. The caller keeps it alive, or passes a deleter.
Tensor from_blob(void* data, Shape shape, DType dtype, std::optional<Strides> strides = {},
                 std::function<void(void*)> deleter = {}, Device device = Device::cpu());
/// Copies external memory into a new tensor.
Tensor from_buffer_copy(const void* data, Shape shape, DType dtype);

// Random tensors from a counter-based generator: same seed, same numbers on any thread count.
Tensor rand(Shape shape, TensorOptions opt = {}, Generator* gen = nullptr);
Tensor randn(Shape shape, TensorOptions opt = {}, Generator* gen = nullptr);
/// Integers uniform in [low, high).
Tensor randint(int64_t low, int64_t high, Shape shape, TensorOptions opt = kInt64,
               Generator* gen = nullptr);
/// 1 with probability p (elementwise when p is a tensor), else 0, in p's dtype.
Tensor bernoulli(const Tensor& p, Generator* gen = nullptr);
Tensor bernoulli(Shape shape, double p, TensorOptions opt = {}, Generator* gen = nullptr);
Tensor normal(double mean, double std, Shape shape, TensorOptions opt = {},
              Generator* gen = nullptr);
Tensor uniform(double low, double high, Shape shape, TensorOptions opt = {},
               Generator* gen = nullptr);

}  // namespace tessera
