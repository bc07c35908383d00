#pragma once
// Private to unary.cuh and binary.cuh: the rows of their launch tables. A row holds one op's
// launch functions for the float dtypes (columns kF16, kBF16, kF32, kF64); a table holds the
// rows of consecutive op ids, each functor placed by its kId, so each .cu file instantiates
// only its own ops. (Its own namespace: complex.cu has a `complete` of its own, which
// argument-dependent lookup would otherwise find beside this one.)
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstddef>

namespace tessera::cuda::k::rows {

/// Launcher<T, Op>::run for each float element type.
template <template <class, class> class Launcher, class Op>
constexpr auto float_row() {
  return std::array{&Launcher<__half, Op>::run, &Launcher<__nv_bfloat16, Op>::run,
                    &Launcher<float, Op>::run, &Launcher<double, Op>::run};
}

/// The rows of the ops First, First + 1, ... (one functor each, by its kId).
template <template <class, class> class Launcher, int First, class Op, class... Ops>
constexpr auto make_rows() {
  std::array<decltype(float_row<Launcher, Op>()), 1 + sizeof...(Ops)> t{};
  t[Op::kId - First] = float_row<Launcher, Op>();
  ((t[Ops::kId - First] = float_row<Launcher, Ops>()), ...);
  return t;
}

/// Every row filled: no two functors share an id.
template <class Row, size_t N>
constexpr bool complete(const std::array<Row, N>& t) {
  for (const Row& r : t)
    if (!r[0]) return false;
  return true;
}

}  // namespace tessera::cuda::k::rows
