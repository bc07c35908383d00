// Max and average pooling, forward and backward, one thread per output (forward) or input
// (backward) element. Backward passes gather over the windows covering an element instead of
// scattering with atomics, so results are deterministic and summed in window order, like the
// CPU's. Window taps outside the input are skipped; the tap ranges are the CPU's (nn.cpp).
#include <type_traits>

#include "backends/cuda/device.cuh"
#include "backends/cuda/pool_kernels.h"

namespace tessera::cuda::k {
namespace {

__device__ __forceinline__ int64_t ceil_div(int64_t a, int64_t b) {
  return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}
__device__ __forceinline__ int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// The taps [lo, hi) of window o along dim i that land inside the input; tap t reads
// start + t * d. `incl`: the window clipped to input + padding (count_include_pad's divisor).
struct Taps {
  int64_t start, lo, hi, incl;
};
__device__ __forceinline__ Taps taps(const Pool& g, int i, int64_t o) {
  const int64_t start = o * g.s[i] - g.p[i];
  const int64_t lo = clamp64(ceil_div(-start, g.d[i]), 0, g.k[i]);
  const int64_t hi = clamp64(ceil_div(g.in[i] - start, g.d[i]), lo, g.k[i]);
  const int64_t end = start + g.k[i] < g.in[i] + g.p[i] ? start + g.k[i] : g.in[i] + g.p[i];
  return {start, lo, hi, end - start};
}

// Spatial coordinates of flat index r of a plane of `size`.
__device__ __forceinline__ void coords(int64_t r, const int64_t (&size)[3], int64_t (&c)[3]) {
  c[2] = r % size[2];
  c[1] = r / size[2] % size[1];
  c[0] = r / size[2] / size[1];
}

__device__ __forceinline__ int64_t plane_at(const Strides5& s, int64_t p, int64_t c) {
  return (p / c) * s.n + (p % c) * s.c;
}

template <class T>
__global__ void max_pool_fwd(const T* x, Strides5 xs, T* out, int64_t* idx, Pool g,
                             int64_t total) {
  using A = typename Io<T>::C;
  const int64_t olen = g.out[0] * g.out[1] * g.out[2];
  for (int64_t q = first_index(); q < total; q += grid_stride()) {
    int64_t o[3];
    coords(q % olen, g.out, o);
    const Taps t0 = taps(g, 0, o[0]), t1 = taps(g, 1, o[1]), t2 = taps(g, 2, o[2]);
    const T* plane = x + plane_at(xs, q / olen, g.c);
    A best = A(-INFINITY);
    int64_t at = ((t0.start + t0.lo * g.d[0]) * g.in[1] + t1.start + t1.lo * g.d[1]) * g.in[2] +
                 t2.start + t2.lo * g.d[2];
    for (int64_t a = t0.lo; a < t0.hi; ++a)
      for (int64_t b = t1.lo; b < t1.hi; ++b)
        for (int64_t c = t2.lo; c < t2.hi; ++c) {
          const int64_t i0 = t0.start + a * g.d[0], i1 = t1.start + b * g.d[1],
                        i2 = t2.start + c * g.d[2];
          const A v = Io<T>::up(plane[i0 * xs.sp[0] + i1 * xs.sp[1] + i2 * xs.sp[2]]);
          if (v > best || v != v) {
            best = v;
            at = (i0 * g.in[1] + i1) * g.in[2] + i2;
          }
        }
    out[q] = Io<T>::down(best);
    idx[q] = at;
  }
}

__device__ __forceinline__ int64_t divisor(const Pool& g, const Taps& a, const Taps& b,
                                           const Taps& c) {
  if (g.count_include_pad) return a.incl * b.incl * c.incl;
  return (a.hi - a.lo) * (b.hi - b.lo) * (c.hi - c.lo);
}

template <class T>
__global__ void avg_pool_fwd(const T* x, Strides5 xs, T* out, Pool g, int64_t total) {
  using A = typename Io<T>::C;
  const int64_t olen = g.out[0] * g.out[1] * g.out[2];
  for (int64_t q = first_index(); q < total; q += grid_stride()) {
    int64_t o[3];
    coords(q % olen, g.out, o);
    const Taps t0 = taps(g, 0, o[0]), t1 = taps(g, 1, o[1]), t2 = taps(g, 2, o[2]);
    const T* plane = x + plane_at(xs, q / olen, g.c);
    A sum = 0;
    for (int64_t a = t0.lo; a < t0.hi; ++a)
      for (int64_t b = t1.lo; b < t1.hi; ++b)
        for (int64_t c = t2.lo; c < t2.hi; ++c)
          sum += Io<T>::up(plane[(t0.start + a * g.d[0]) * xs.sp[0] +
                                 (t1.start + b * g.d[1]) * xs.sp[1] +
                                 (t2.start + c * g.d[2]) * xs.sp[2]]);
    out[q] = Io<T>::down(sum / static_cast<A>(divisor(g, t0, t1, t2)));
  }
}

// The windows [lo, hi] along dim i that may cover input coordinate v (those whose tap lands
// on v are the ones with (v + p - o * s) % d == 0).
struct Span {
  int64_t lo, hi;
};
__device__ __forceinline__ Span covering(const Pool& g, int i, int64_t v) {
  const int64_t reach = v + g.p[i];  // >= 0
  const int64_t lo = ceil_div(reach - (g.k[i] - 1) * g.d[i], g.s[i]);
  const int64_t hi = reach / g.s[i];
  return {lo < 0 ? 0 : lo, hi < g.out[i] - 1 ? hi : g.out[i] - 1};
}
__device__ __forceinline__ bool hits(const Pool& g, int i, int64_t v, int64_t o) {
  return (v + g.p[i] - o * g.s[i]) % g.d[i] == 0;
}

template <class T>
__global__ void max_pool_bwd(const T* grad, Strides5 gs, const int64_t* idx, Strides5 is, T* dx,
                             Pool g, int64_t total) {
  const int64_t ilen = g.in[0] * g.in[1] * g.in[2];
  for (int64_t e = first_index(); e < total; e += grid_stride()) {
    const int64_t p = e / ilen, r = e % ilen;
    int64_t v[3];
    coords(r, g.in, v);
    const Span s0 = covering(g, 0, v[0]), s1 = covering(g, 1, v[1]), s2 = covering(g, 2, v[2]);
    const T* gp = grad + plane_at(gs, p, g.c);
    const int64_t* ip = idx + plane_at(is, p, g.c);
    T acc = Io<T>::down(0);
    for (int64_t a = s0.lo; a <= s0.hi; ++a) {
      if (!hits(g, 0, v[0], a)) continue;
      for (int64_t b = s1.lo; b <= s1.hi; ++b) {
        if (!hits(g, 1, v[1], b)) continue;
        for (int64_t c = s2.lo; c <= s2.hi; ++c) {
          if (!hits(g, 2, v[2], c)) continue;
          if (ip[a * is.sp[0] + b * is.sp[1] + c * is.sp[2]] != r) continue;
          // Rounded to T at each step, as the CPU's scatter does.
          acc = Io<T>::down(Io<T>::up(acc) +
                            Io<T>::up(gp[a * gs.sp[0] + b * gs.sp[1] + c * gs.sp[2]]));
        }
      }
    }
    dx[e] = acc;
  }
}

template <class T>
__global__ void avg_pool_bwd(const T* grad, Strides5 gs, T* dx, Pool g, int64_t total) {
  using A = typename Io<T>::C;
  const int64_t ilen = g.in[0] * g.in[1] * g.in[2];
  for (int64_t e = first_index(); e < total; e += grid_stride()) {
    int64_t v[3];
    coords(e % ilen, g.in, v);
    const Span s0 = covering(g, 0, v[0]), s1 = covering(g, 1, v[1]), s2 = covering(g, 2, v[2]);
    const T* gp = grad + plane_at(gs, e / ilen, g.c);
    A acc = 0;
    for (int64_t a = s0.lo; a <= s0.hi; ++a) {
      if (!hits(g, 0, v[0], a)) continue;
      const Taps t0 = taps(g, 0, a);
      for (int64_t b = s1.lo; b <= s1.hi; ++b) {
        if (!hits(g, 1, v[1], b)) continue;
        const Taps t1 = taps(g, 1, b);
        for (int64_t c = s2.lo; c <= s2.hi; ++c) {
          if (!hits(g, 2, v[2], c)) continue;
          const A w = Io<T>::up(gp[a * gs.sp[0] + b * gs.sp[1] + c * gs.sp[2]]);
          acc += w / static_cast<A>(divisor(g, t0, t1, taps(g, 2, c)));
        }
      }
    }
    dx[e] = Io<T>::down(acc);
  }
}

// Calls f(T{}) for the float dtype of `code`.
template <class F>
void visit_float(int code, F&& f) {
  switch (code) {
    case kF16:
      return f(__half{});
    case kBF16:
      return f(__nv_bfloat16{});
    case kF32:
      return f(float{});
    default:
      return f(double{});
  }
}

int64_t plane_size(const int64_t (&s)[3]) { return s[0] * s[1] * s[2]; }

}  // namespace

void max_pool(int code, const void* x, const Strides5& xs, void* out, int64_t* idx,
              const Pool& g, void* stream) {
  const int64_t total = g.n * g.c * plane_size(g.out);
  visit_float(code, [&](auto t) {
    using T = decltype(t);
    max_pool_fwd<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), xs, static_cast<T*>(out), idx, g, total);
  });
}

void avg_pool(int code, const void* x, const Strides5& xs, void* out, const Pool& g,
              void* stream) {
  const int64_t total = g.n * g.c * plane_size(g.out);
  visit_float(code, [&](auto t) {
    using T = decltype(t);
    avg_pool_fwd<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(x), xs, static_cast<T*>(out), g, total);
  });
}

void max_pool_backward(int code, const void* grad, const Strides5& gs, const int64_t* idx,
                       const Strides5& is, void* dx, const Pool& g, void* stream) {
  const int64_t total = g.n * g.c * plane_size(g.in);
  visit_float(code, [&](auto t) {
    using T = decltype(t);
    max_pool_bwd<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(grad), gs, idx, is, static_cast<T*>(dx), g, total);
  });
}

void avg_pool_backward(int code, const void* grad, const Strides5& gs, void* dx, const Pool& g,
                       void* stream) {
  const int64_t total = g.n * g.c * plane_size(g.in);
  visit_float(code, [&](auto t) {
    using T = decltype(t);
    avg_pool_bwd<T><<<blocks_for(total), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
        static_cast<const T*>(grad), gs, static_cast<T*>(dx), g, total);
  });
}

}  // namespace tessera::cuda::k
