#pragma once
// The generic CPU loop driver: N operands over one iteration shape, each with its own byte
// strides (0 for broadcast dims). Dims are coalesced so contiguous data becomes one long row,
// and the innermost row is handed to a kernel functor with its stride per operand.
#include <array>
#include <cstdint>

#include "tessera/core/tensor.h"
#include "tessera/runtime/parallel.h"

namespace tessera::cpu {

inline constexpr int kMaxLoopDims = 16;

template <int N>
struct LoopPlan {
  int ndim = 0;  // after coalescing; innermost last
  std::array<int64_t, kMaxLoopDims> shape{};
  std::array<std::array<int64_t, kMaxLoopDims>, N> strides{};  // bytes
  std::array<char*, N> base{};
  int64_t numel = 0;

  /// True when every operand's innermost stride equals its item size (a contiguous row).
  bool inner_contiguous(const std::array<int64_t, N>& item) const {
    for (int k = 0; k < N; ++k)
      if (ndim > 0 && strides[k][ndim - 1] != item[k] && shape[ndim - 1] > 1) return false;
    return true;
  }
};

/// Element strides of t when broadcast to out_shape (0 on broadcast dims).
Strides broadcast_strides(const Tensor& t, const Shape& out_shape, std::string_view op);

/// Builds a plan over `shape` for operands with element strides and item sizes.
template <int N>
LoopPlan<N> make_plan(const Shape& shape, const std::array<char*, N>& base,
                      const std::array<const int64_t*, N>& elem_strides,
                      const std::array<int64_t, N>& itemsize, std::string_view op) {
  LoopPlan<N> p;
  p.base = base;
  p.numel = 1;
  for (int64_t s : shape) p.numel *= s;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = p.ndim > 0;
    for (int k = 0; k < N && merge; ++k)
      merge = p.strides[k][p.ndim - 1] == elem_strides[k][d] * itemsize[k] * shape[d];
    if (merge) {
      p.shape[p.ndim - 1] *= shape[d];
      for (int k = 0; k < N; ++k) p.strides[k][p.ndim - 1] = elem_strides[k][d] * itemsize[k];
      continue;
    }
    if (p.ndim == kMaxLoopDims)
      fail<ShapeError>(op, "more than {} dims that cannot be merged", kMaxLoopDims);
    p.shape[p.ndim] = shape[d];
    for (int k = 0; k < N; ++k) p.strides[k][p.ndim] = elem_strides[k][d] * itemsize[k];
    ++p.ndim;
  }
  return p;
}

/// Element offsets in two operands of the row-major flat index i over `shape`, given each
/// operand's element strides for those dims (batch loops in matmul, line loops in sort).
inline std::pair<int64_t, int64_t> flat_offsets(int64_t i, const Shape& shape, const Strides& s0,
                                                const Strides& s1) {
  int64_t o0 = 0, o1 = 0;
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t idx = i % shape[d];
    i /= shape[d];
    o0 += idx * s0[d];
    o1 += idx * s1[d];
  }
  return {o0, o1};
}

/// Calls inner(ptrs, inner_strides, n) for the rows covering flat indices [begin, end).
template <int N, class F>
void run_plan(const LoopPlan<N>& p, int64_t begin, int64_t end, F&& inner) {
  if (begin >= end) return;
  if (p.ndim == 0) {
    inner(p.base, std::array<int64_t, N>{}, int64_t{1});
    return;
  }
  const int last = p.ndim - 1;
  const int64_t row = p.shape[last];
  std::array<int64_t, N> inner_strides;
  for (int k = 0; k < N; ++k) inner_strides[k] = p.strides[k][last];
  std::array<int64_t, kMaxLoopDims> idx{};
  int64_t rem = begin / row;
  for (int d = last - 1; d >= 0; --d) {
    idx[d] = rem % p.shape[d];
    rem /= p.shape[d];
  }
  int64_t col = begin % row, i = begin;
  while (i < end) {
    std::array<char*, N> ptr = p.base;
    for (int k = 0; k < N; ++k) {
      int64_t off = col * p.strides[k][last];
      for (int d = 0; d < last; ++d) off += idx[d] * p.strides[k][d];
      ptr[k] += off;
    }
    const int64_t n = std::min(row - col, end - i);
    inner(ptr, inner_strides, n);
    i += n;
    col = 0;
    for (int d = last - 1; d >= 0; --d) {
      if (++idx[d] < p.shape[d]) break;
      idx[d] = 0;
    }
  }
}

/// run_plan over the whole iteration space, split across threads when it is large.
template <int N, class F>
void for_each_row(const LoopPlan<N>& p, F&& inner, int64_t grain = kParallelGrain) {
  if (p.numel <= grain) {
    run_plan(p, 0, p.numel, inner);
    return;
  }
  parallel_for(p.numel, grain, [&](int64_t b, int64_t e) { run_plan(p, b, e, inner); });
}

/// Converts one value between element types with defined results (NaN -> 0 and saturation
/// for float -> int, real part for complex -> real).
template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, Complex64>) {
    if constexpr (std::is_same_v<To, bool>)
      return v != Complex64(0, 0);
    else
      return convert<To>(v.real());
  } else if constexpr (std::is_same_v<To, Complex64>) {
    return Complex64(static_cast<float>(static_cast<compute_t<From>>(v)), 0.f);
  } else if constexpr (std::is_same_v<To, bool>) {
    return static_cast<compute_t<From>>(v) != 0;
  } else if constexpr (std::is_integral_v<To> && !std::is_integral_v<compute_t<From>>) {
    using C = compute_t<From>;
    C x = static_cast<C>(v);
    if (!(x == x)) return To(0);
    if (x <= static_cast<C>(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    if (x >= static_cast<C>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(x);
  } else if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(static_cast<compute_t<From>>(v)));
  } else {
    return static_cast<To>(static_cast<compute_t<From>>(v));
  }
}

}  // namespace tessera::cpu
