// Fused optimizer steps: one kernel per parameter that reads the gradient and updates the
// parameter and its state buffers in one pass, with the same per-element formulas as the CPU
// loops of src/optim/optimizers.cpp (coefficients computed in double on the host, cast to the
// parameter's dtype). The per-element updates live in optim_rules.cuh, shared with a host test
// against the CPU loops.
#include "backends/cuda/device.cuh"
#include "backends/cuda/optim_rules.cuh"

namespace tessera::cuda::k {
namespace {

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdArgs a) {
  const fn::SgdRule<T> rule(a);
  for (int64_t i = first_index(); i < n; i += grid_stride()) rule(i, p, g, buf);
}

template <class T>
__global__ void adam_kernel(T* p, const T* g, T* m, T* v, T* vmax, int64_t n, AdamArgs a) {
  const fn::AdamRule<T> rule(a);
  for (int64_t i = first_index(); i < n; i += grid_stride()) rule(i, p, g, m, v, vmax);
}

template <class T>
__global__ void rmsprop_kernel(T* p, const T* g, T* sq, T* ga, T* buf, int64_t n, RmspropArgs a) {
  const fn::RmspropRule<T> rule(a);
  for (int64_t i = first_index(); i < n; i += grid_stride()) rule(i, p, g, sq, ga, buf);
}

template <class T>
__global__ void adagrad_kernel(T* p, const T* g, T* sum, int64_t n, AdagradArgs a) {
  const fn::AdagradRule<T> rule(a);
  for (int64_t i = first_index(); i < n; i += grid_stride()) rule(i, p, g, sum);
}

}  // namespace

void sgd(int code, void* p, const void* g, void* buf, int64_t n, const SgdArgs& a, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (code == kF64)
    sgd_kernel<double><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(buf), n, a);
  else
    sgd_kernel<float><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(buf), n, a);
}

void adam(int code, void* p, const void* g, void* m, void* v, void* vmax, int64_t n,
          const AdamArgs& a, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (code == kF64)
    adam_kernel<double><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(m),
        static_cast<double*>(v), static_cast<double*>(vmax), n, a);
  else
    adam_kernel<float><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(m),
        static_cast<float*>(v), static_cast<float*>(vmax), n, a);
}

void rmsprop(int code, void* p, const void* g, void* square_avg, void* grad_avg, void* buf,
             int64_t n, const RmspropArgs& a, void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (code == kF64)
    rmsprop_kernel<double><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(square_avg),
        static_cast<double*>(grad_avg), static_cast<double*>(buf), n, a);
  else
    rmsprop_kernel<float><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(square_avg),
        static_cast<float*>(grad_avg), static_cast<float*>(buf), n, a);
}

void adagrad(int code, void* p, const void* g, void* sum, int64_t n, const AdagradArgs& a,
             void* stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  if (code == kF64)
    adagrad_kernel<double><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<double*>(p), static_cast<const double*>(g), static_cast<double*>(sum), n, a);
  else
    adagrad_kernel<float><<<blocks_for(n), kThreads, 0, s>>>(
        static_cast<float*>(p), static_cast<const float*>(g), static_cast<float*>(sum), n, a);
}

}  // namespace tessera::cuda::k
