// CUDA kernels of the random primitives (uniform, normal, randint, bernoulli) and of arange,
// linspace and eye. Host code only: it reads the attributes the op layer set (the generator's
// seed and the offset it reserved for this draw, so offsets advance exactly as on the CPU) and
// calls the launchers of random.cu, which compute each element with the CPU's formulas.
//
// bernoulli's probabilities live on the device. Checking them on the host would cost a
// reduction, a copy and a synchronization per call, and dropout calls bernoulli in every
// training step, so the kernel checks each element instead (PyTorch also checks on the
// device): a probability outside [0, 1] or NaN writes 0 and is recorded in the device's
// IndexFault, and the next synchronization raises the CPU's ValueError (runtime.cpp).
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/random_kernels.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

static_assert(static_cast<int>(kComplex64) == k::kC64);

int code_of(const Tensor& t) { return static_cast<int>(t.dtype()); }

k::Draw draw_of(const Attrs& a) {
  return {static_cast<uint64_t>(a.get<int64_t>("seed")),
          static_cast<uint64_t>(a.get<int64_t>("offset"))};
}

// Runs `launch(ptr, stream)` writing y's elements in row-major order: into y when it is
// contiguous, else into a contiguous temporary copied into y.
template <class F>
void generate(const Tensor& y, const char* op, F&& launch) {
  if (y.numel() == 0) return;
  const Tensor dst = y.is_contiguous() ? y : Tensor::empty(y.shape(), y.dtype(), y.device());
  const int dev = y.device().index;
  {
    DeviceGuard guard(dev);
    launch(dst.raw_data(), current_stream(dev));
    launched(dev, op);
  }
  if (!dst.is_same(y)) convert_into(dst, y, op);
}

// ---- random ---------------------------------------------------------------------------------

bool float_dtype(Inputs, const Attrs& a) {
  return k::float_code(static_cast<int>(a.get<DType>("dtype")));
}
bool randint_dtype(Inputs, const Attrs& a) {
  const int c = static_cast<int>(a.get<DType>("dtype"));
  return c >= k::kU8 && c <= k::kF64;
}
bool float_input(Inputs in, const Attrs&) { return k::float_code(code_of(in[0])); }

void uniform_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  const double lo = a.get<double>("low"), hi = a.get<double>("high");
  generate(y, "uniform", [&](void* p, cudaStream_t s) {
    k::uniform(code_of(y), p, y.numel(), draw_of(a), lo, hi, s);
  });
}

void normal_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  const double mean = a.get<double>("mean"), sd = a.get<double>("std");
  generate(y, "normal", [&](void* p, cudaStream_t s) {
    k::normal(code_of(y), p, y.numel(), draw_of(a), mean, sd, s);
  });
}

void randint_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  const int64_t lo = a.get<int64_t>("low");
  const auto range = static_cast<uint64_t>(a.get<int64_t>("high") - lo);
  generate(y, "randint", [&](void* p, cudaStream_t s) {
    k::randint(code_of(y), p, y.numel(), draw_of(a), lo, range, s);
  });
}

// p may be strided: element i (row-major) reads p at its own offset and uses counter
// offset + i, as the CPU's contiguous copy of p does.
void bernoulli_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Tensor &p = in[0], &y = out[0];
  generate(y, "bernoulli", [&](void* dst, cudaStream_t s) {
    const Strides ys = contiguous_strides(y.shape());
    const std::array<const int64_t*, 2> strides{ys.data(), p.strides().data()};
    const std::array<const void*, 2> ptrs{dst, p.raw_data()};
    const k::Geometry g = make_geometry(y.shape(), strides, ptrs, "bernoulli");
    const int dev = y.device().index;
    k::bernoulli(code_of(y), p.raw_data(), dst, g, draw_of(a), index_fault(dev), s);
  });
}

// ---- creation -------------------------------------------------------------------------------

void arange_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  const Scalar &start = a.get<Scalar>("start"), &step = a.get<Scalar>("step");
  const k::Arange r{start.is_integral() && step.is_integral(), start.to<int64_t>(),
                    step.to<int64_t>(), start.to<double>(), step.to<double>()};
  generate(y, "arange",
           [&](void* p, cudaStream_t s) { k::arange(code_of(y), p, y.numel(), r, s); });
}

void linspace_kernel(Inputs, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  const double s0 = a.get<double>("start"), e = a.get<double>("end");
  const int64_t n = y.numel();
  const double step = n > 1 ? (e - s0) / static_cast<double>(n - 1) : 0;  // the CPU's step
  generate(y, "linspace",
           [&](void* p, cudaStream_t s) { k::linspace(code_of(y), p, n, s0, e, step, s); });
}

void eye_kernel(Inputs, Outputs out, const Attrs&) {
  const Tensor& y = out[0];
  generate(y, "eye",
           [&](void* p, cudaStream_t s) { k::eye(code_of(y), p, y.numel(), y.shape()[1], s); });
}

}  // namespace

void register_random_kernels(Registry& r) {
  r.add_kernel("uniform", {DeviceType::CUDA, "cuda", uniform_kernel, float_dtype});
  r.add_kernel("normal", {DeviceType::CUDA, "cuda", normal_kernel, float_dtype});
  r.add_kernel("randint", {DeviceType::CUDA, "cuda", randint_kernel, randint_dtype});
  r.add_kernel("bernoulli", {DeviceType::CUDA, "cuda", bernoulli_kernel, float_input});
  r.add_kernel("arange", {DeviceType::CUDA, "cuda", arange_kernel});
  r.add_kernel("linspace", {DeviceType::CUDA, "cuda", linspace_kernel});
  r.add_kernel("eye", {DeviceType::CUDA, "cuda", eye_kernel});
}

}  // namespace tessera::cuda
