// Random draws (uniform, normal, randint, bernoulli) and creation (arange, linspace, eye): a
// thread per element, the element's value from random_math.cuh (the CPU kernels' formulas),
// so a seed and offset give the CPU's numbers. Launch tables are indexed by element code;
// only the dtypes a primitive accepts are instantiated.
#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/random_kernels.h"
#include "backends/cuda/random_math.cuh"

namespace tessera::cuda::k {
namespace {

using rng::CreateArgs;
using rng::kNormalDraw;
using rng::kRandintDraw;
using rng::kUniformDraw;
using rng::RandomArgs;

template <class T, int K>
__global__ void random_kernel(T* out, int64_t n, RandomArgs a) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    out[i] = rng::random_element<T, K>(a, i);
}

template <class T, int K>
void launch_random(void* out, int64_t n, const RandomArgs& a, cudaStream_t s) {
  random_kernel<T, K><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, a);
}
using RandomLaunch = void (*)(void*, int64_t, const RandomArgs&, cudaStream_t);

// Float tables are indexed by code - kF16, the randint table by code - kU8.
template <int K>
constexpr std::array<RandomLaunch, 4> kFloatRandom = {
    &launch_random<__half, K>, &launch_random<__nv_bfloat16, K>, &launch_random<float, K>,
    &launch_random<double, K>};
constexpr std::array<RandomLaunch, 9> kRandints = {
    &launch_random<uint8_t, kRandintDraw>,       &launch_random<int8_t, kRandintDraw>,
    &launch_random<int16_t, kRandintDraw>,       &launch_random<int32_t, kRandintDraw>,
    &launch_random<int64_t, kRandintDraw>,       &launch_random<__half, kRandintDraw>,
    &launch_random<__nv_bfloat16, kRandintDraw>, &launch_random<float, kRandintDraw>,
    &launch_random<double, kRandintDraw>};

// ---- bernoulli ----------------------------------------------------------------------------

template <class T>
__global__ void bernoulli_kernel(const T* p, T* out, Geometry g, Draw d, IndexFault* fault) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[2];
    offsets<2>(g, i, o);
    const double pi = rng::to_double(p[o[1]]);
    if (!rng::valid_probability(pi)) {
      // The host raises ValueError at the next sync; size carries the probability's bits.
      record_fault(fault, kBernoulliFault, i, __double_as_longlong(pi));
      out[o[0]] = rng::from_int<T>(0);
      continue;
    }
    out[o[0]] = rng::bernoulli_element<T>(d, i, pi);
  }
}

template <class T>
void launch_bernoulli(const void* p, void* out, const Geometry& g, Draw d, IndexFault* fault,
                      cudaStream_t s) {
  bernoulli_kernel<T><<<blocks_for(g.numel), kThreads, 0, s>>>(static_cast<const T*>(p),
                                                               static_cast<T*>(out), g, d, fault);
}
using BernoulliLaunch = void (*)(const void*, void*, const Geometry&, Draw, IndexFault*,
                                 cudaStream_t);
constexpr std::array<BernoulliLaunch, 4> kBernoulli = {
    &launch_bernoulli<__half>, &launch_bernoulli<__nv_bfloat16>, &launch_bernoulli<float>,
    &launch_bernoulli<double>};

// ---- creation -----------------------------------------------------------------------------

// One kernel per dtype; the kind is the same for every thread.
template <class T>
__global__ void create_kernel(T* out, int64_t n, CreateArgs a) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    out[i] = rng::create_element<T>(a, n, i);
}

template <class T>
void launch_create(void* out, int64_t n, const CreateArgs& a, cudaStream_t s) {
  create_kernel<T><<<blocks_for(n), kThreads, 0, s>>>(static_cast<T*>(out), n, a);
}
using CreateLaunch = void (*)(void*, int64_t, const CreateArgs&, cudaStream_t);
// Indexed by element code (kBool ... kF64, kC64).
constexpr std::array<CreateLaunch, 11> kCreate = {
    &launch_create<bool>,    &launch_create<uint8_t>,       &launch_create<int8_t>,
    &launch_create<int16_t>, &launch_create<int32_t>,       &launch_create<int64_t>,
    &launch_create<__half>,  &launch_create<__nv_bfloat16>, &launch_create<float>,
    &launch_create<double>,  &launch_create<rng::Complex>};

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }
size_t float_index(int code) { return static_cast<size_t>(code - kF16); }

}  // namespace

void uniform(int code, void* out, int64_t n, Draw d, double low, double high, void* stream) {
  const RandomArgs a{d, low, high, 0, 0, code == kF64};
  kFloatRandom<kUniformDraw>[float_index(code)](out, n, a, as_stream(stream));
}

void normal(int code, void* out, int64_t n, Draw d, double mean, double std, void* stream) {
  const RandomArgs a{d, mean, std, 0, 0, false};
  kFloatRandom<kNormalDraw>[float_index(code)](out, n, a, as_stream(stream));
}

void randint(int code, void* out, int64_t n, Draw d, int64_t low, uint64_t range, void* stream) {
  const RandomArgs a{d, 0, 0, low, range, false};
  kRandints[static_cast<size_t>(code - kU8)](out, n, a, as_stream(stream));
}

void bernoulli(int code, const void* p, void* out, const Geometry& g, Draw d, IndexFault* fault,
               void* stream) {
  kBernoulli[float_index(code)](p, out, g, d, fault, as_stream(stream));
}

void arange(int code, void* out, int64_t n, const Arange& r, void* stream) {
  const CreateArgs a{
      r.ints ? rng::kArangeInt : rng::kArangeDouble, r.istart, r.istep, 0, r.start, 0, r.step};
  kCreate[static_cast<size_t>(code)](out, n, a, as_stream(stream));
}

void linspace(int code, void* out, int64_t n, double start, double end, double step, void* stream) {
  const CreateArgs a{rng::kLinspace, 0, 0, 0, start, end, step};
  kCreate[static_cast<size_t>(code)](out, n, a, as_stream(stream));
}

void eye(int code, void* out, int64_t n, int64_t cols, void* stream) {
  const CreateArgs a{rng::kEye, 0, 0, cols, 0, 0, 0};
  kCreate[static_cast<size_t>(code)](out, n, a, as_stream(stream));
}

}  // namespace tessera::cuda::k
