#pragma once
// The generic CPU reduction driver (private to the reduce family's kernels).
//
// A reduction splits the input's dims into kept dims (outer: one output element each, in the
// row-major order of the contiguous output) and reduced dims (inner: in row-major order, so a
// flat inner index is the index within the reduced slice, as argmax needs). Both sets are
// coalesced by make_plan. Each output element folds its slice into an accumulator with an Op:
//
//   struct Op {
//     using A = ...;                                   // accumulator
//     A init() const;
//     void add(A&, T value, int64_t index) const;      // index within the reduced slice
//     void combine(A&, const A&) const;                // the second covers later indices
//     void finish(const A&, int64_t out_index) const;  // writes the output element(s)
//     void row(A&, const char* p, int64_t stride, int64_t n, int64_t index0) const;  // optional
//   };
//
// Paths: (1) few outputs with long slices (e.g. a full sum): each slice is cut into fixed
// chunks reduced in parallel and combined in chunk order, so results never depend on the
// thread count; (2) kept innermost dim contiguous and reduced dims strided (column sums):
// blocks of adjacent outputs are accumulated side by side, reading whole rows; (3) otherwise
// one slice per output, outputs in parallel.
#include <algorithm>
#include <complex>
#include <memory>
#include <string_view>
#include <vector>

#include "backends/cpu/loops.h"
#include "ops/reduce_dims.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu {

/// Fixed chunk of a long reduction (elements); part of the result's definition.
inline constexpr int64_t kReduceChunk = int64_t{1} << 16;
/// At most this many outputs take the chunked path (a fixed number, not the thread count).
inline constexpr int64_t kFewOutputs = 16;
/// Adjacent outputs accumulated together on the column path.
inline constexpr int64_t kColumnBlock = 256;

struct ReduceGeom {
  LoopPlan<1> outer, inner;  // byte strides of the input
  int64_t n_out = 0, n_red = 1;
  char* in = nullptr;
};

/// Splits x's dims per the "dims" attr (empty = all).
inline ReduceGeom reduce_geom(const Tensor& x, const Attrs& a, std::string_view op) {
  const auto dims = a.get_or<std::vector<int64_t>>("dims", {});
  const std::vector<bool> mask = detail::reduce_mask(x.dim(), dims, op);
  Shape os, is;
  Strides ost, ist;
  for (size_t d = 0; d < mask.size(); ++d) {
    (mask[d] ? is : os).push_back(x.shape()[d]);
    (mask[d] ? ist : ost).push_back(x.strides()[d]);
  }
  ReduceGeom g;
  g.in = static_cast<char*>(x.raw_data());
  const auto item = static_cast<int64_t>(x.itemsize());
  g.outer = make_plan<1>(os, {g.in}, {ost.data()}, {item}, op);
  g.inner = make_plan<1>(is, {g.in}, {ist.data()}, {item}, op);
  g.n_out = g.outer.numel;
  g.n_red = g.inner.numel;
  return g;
}

/// Address of flat element `flat` of a plan rooted at base.
inline char* plan_at(const LoopPlan<1>& p, char* base, int64_t flat) {
  int64_t off = 0;
  for (int d = p.ndim - 1; d >= 0; --d) {
    off += (flat % p.shape[d]) * p.strides[0][d];
    flat /= p.shape[d];
  }
  return base + off;
}

/// Writes accumulated values of type V into an output of any dtype (one store per element, a
/// function chosen once: no dtype x dtype templates).
template <class V>
struct OutWriter {
  using StoreFn = void (*)(char*, V);
  char* base = nullptr;
  int64_t item = 0;
  StoreFn store = nullptr;
  OutWriter() = default;
  explicit OutWriter(const Tensor& t)
      : base(static_cast<char*>(t.raw_data())), item(static_cast<int64_t>(t.itemsize())) {
    store = visit_dtype(t.dtype(), [](auto tag) -> StoreFn {
      using O = typename decltype(tag)::type;
      return [](char* p, V v) { *reinterpret_cast<O*>(p) = convert<O>(v); };
    });
  }
  void put(int64_t o, V v) const { store(base + o * item, v); }
};

template <class T, class Op, class A>
inline void fold_row(const Op& op, A& a, const char* p, int64_t s, int64_t n, int64_t i0) {
  if constexpr (requires { op.row(a, p, s, n, i0); }) {
    op.row(a, p, s, n, i0);
  } else if (s == static_cast<int64_t>(sizeof(T))) {
    const T* q = reinterpret_cast<const T*>(p);
    for (int64_t i = 0; i < n; ++i) op.add(a, q[i], i0 + i);
  } else {
    for (int64_t i = 0; i < n; ++i) op.add(a, *reinterpret_cast<const T*>(p + i * s), i0 + i);
  }
}

/// Folds flat indices [b, e) of the slice at base into a.
template <class T, class Op, class A>
void fold_slice(const Op& op, A& a, const LoopPlan<1>& inner, char* base, int64_t b, int64_t e) {
  if (inner.ndim <= 1) {
    const int64_t s = inner.ndim ? inner.strides[0][0] : 0;
    fold_row<T>(op, a, base + b * s, s, e - b, b);
    return;
  }
  LoopPlan<1> p = inner;
  p.base[0] = base;
  int64_t i = b;
  run_plan(p, b, e, [&](std::array<char*, 1> q, std::array<int64_t, 1> s, int64_t n) {
    fold_row<T>(op, a, q[0], s[0], n, i);
    i += n;
  });
}

// Path (1): each of few outputs reduced in fixed chunks, in parallel.
template <class T, class Op>
void reduce_chunked(const ReduceGeom& g, const Op& op) {
  using A = typename Op::A;
  const int64_t nc = (g.n_red + kReduceChunk - 1) / kReduceChunk;
  auto part = std::make_unique<A[]>(static_cast<size_t>(nc));
  for (int64_t o = 0; o < g.n_out; ++o) {
    char* base = plan_at(g.outer, g.in, o);
    parallel_for(nc, 1, [&](int64_t cb, int64_t ce) {
      for (int64_t c = cb; c < ce; ++c) {
        part[c] = op.init();
        fold_slice<T>(op, part[c], g.inner, base, c * kReduceChunk,
                      std::min(g.n_red, (c + 1) * kReduceChunk));
      }
    });
    A a = part[0];
    for (int64_t c = 1; c < nc; ++c) op.combine(a, part[c]);
    op.finish(a, o);
  }
}

// Path (2): n adjacent outputs at base (contiguous in the input), kColumnBlock at a time.
template <class T, class Op>
void reduce_columns(const ReduceGeom& g, const Op& op, char* base, int64_t n, int64_t o0) {
  using A = typename Op::A;
  A acc[kColumnBlock];
  for (int64_t j0 = 0; j0 < n; j0 += kColumnBlock) {
    const int64_t m = std::min(kColumnBlock, n - j0);
    for (int64_t j = 0; j < m; ++j) acc[j] = op.init();
    LoopPlan<1> p = g.inner;
    p.base[0] = base + j0 * static_cast<int64_t>(sizeof(T));
    int64_t k = 0;
    run_plan(p, 0, p.numel, [&](std::array<char*, 1> q, std::array<int64_t, 1> s, int64_t r) {
      for (int64_t t = 0; t < r; ++t, ++k) {
        const T* col = reinterpret_cast<const T*>(q[0] + t * s[0]);
        for (int64_t j = 0; j < m; ++j) op.add(acc[j], col[j], k);
      }
    });
    for (int64_t j = 0; j < m; ++j) op.finish(acc[j], o0 + j0 + j);
  }
}

/// Runs a reduction over geometry g with accumulator op (T = the input's element type).
template <class T, class Op>
void run_reduce(const ReduceGeom& g, const Op& op) {
  using A = typename Op::A;
  if (g.n_out == 0) return;
  if (g.n_out <= kFewOutputs && g.n_red >= 2 * kReduceChunk) return reduce_chunked<T>(g, op);
  constexpr auto item = static_cast<int64_t>(sizeof(T));
  const bool columns = g.outer.ndim > 0 && g.outer.strides[0][g.outer.ndim - 1] == item &&
                       g.inner.ndim > 0 && g.inner.strides[0][g.inner.ndim - 1] != item;
  const int64_t grain = std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(g.n_red, 1));
  parallel_for(g.n_out, grain, [&](int64_t ob, int64_t oe) {
    int64_t o = ob;
    run_plan(g.outer, ob, oe, [&](std::array<char*, 1> p, std::array<int64_t, 1> s, int64_t n) {
      if (columns && s[0] == item) {
        reduce_columns<T>(g, op, p[0], n, o);
        o += n;
        return;
      }
      for (int64_t i = 0; i < n; ++i, ++o) {
        A a = op.init();
        fold_slice<T>(op, a, g.inner, p[0] + i * s[0], 0, g.n_red);
        op.finish(a, o);
      }
    });
  });
}

// ---- accumulator types shared by sums, products and scans ----

template <class T>
inline constexpr bool kComplex = std::is_same_v<T, Complex64>;

/// Sum/product accumulator: wrapping uint64 for bool/ints (overflow is defined, as in
/// PyTorch's two's-complement result), double for floats, complex<double> for complex.
template <class T>
using SumAcc = std::conditional_t<std::is_integral_v<T>, uint64_t,
                                  std::conditional_t<kComplex<T>, std::complex<double>, double>>;
/// The value handed to the output writer.
template <class T>
using SumOut = std::conditional_t<std::is_integral_v<T>, int64_t,
                                  std::conditional_t<kComplex<T>, Complex64, double>>;

template <class T>
inline SumAcc<T> widen(T v) {
  if constexpr (std::is_integral_v<T>) {
    // Sign-extend, then reinterpret modulo 2^64.
    return static_cast<uint64_t>(static_cast<int64_t>(v));
  } else if constexpr (kComplex<T>) {
    return {v.real(), v.imag()};
  } else {
    return static_cast<double>(static_cast<compute_t<T>>(v));
  }
}

template <class T>
inline SumOut<T> narrow(SumAcc<T> a) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<int64_t>(a);
  else if constexpr (kComplex<T>)
    return Complex64(static_cast<float>(a.real()), static_cast<float>(a.imag()));
  else
    return a;
}

// Kernel sets of the family's other files, registered by register_reduce_kernels.
void register_reduce_minmax_kernels(Registry& r);
void register_scan_softmax_kernels(Registry& r);
void register_layer_norm_kernels(Registry& r);  // layer_norm.cpp

}  // namespace tessera::cpu
