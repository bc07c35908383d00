// sort / argsort / topk, unique, nonzero and the last-write winners of index_put and scatter:
// the backend's only CUB user (its headers are heavy; every CUB call of the backend is here).
//
// Values become unsigned keys whose order is the CPU's (sort_key in sort_keys.cuh), sorted with
// their flat positions as values by CUB's stable radix sort: equal keys keep their input order,
// which is the CPU's tie rule, and topk is the head of the full sort, as on the CPU. Two CUB
// instantiations in all (a radix sort of 64-bit keys with int64 values, an int64 inclusive
// sum): a segmented sort for each key width cost 19 s more of nvcc.
// Launchers return the first CUDA error (0: none); the host raises it.
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_scan.cuh>

#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/sort_keys.cuh"

namespace tessera::cuda::k {
namespace {

// Runs a CUB algorithm twice: the size query, then the work on scratch memory of that size.
template <class F>
cudaError_t with_temp(const Scratch& s, F&& f) {
  size_t bytes = 0;
  if (const cudaError_t e = f(nullptr, bytes); e != cudaSuccess) return e;
  return f(s.get(s.ctx, bytes > 0 ? bytes : 1), bytes);  // a null pointer would be a query
}

int bit_width(uint64_t v) {
  int b = 0;
  while (v) ++b, v >>= 1;
  return b > 0 ? b : 1;
}

// ---- sort_lines -----------------------------------------------------------------------------

// One radix sort of (64-bit key, int64 flat position) pairs serves every call below, so CUB is
// instantiated once: keys narrower than 8 bytes carry their line above them (line << bits), which
// sorts all lines in one device-wide pass with no segmented sort; 8-byte keys (or more lines
// than the spare bits hold) take a second stable pass by line, which keeps the key order
// inside each line.
cudaError_t radix_sort(const uint64_t* keys, uint64_t* keys_out, const int64_t* pos,
                       int64_t* pos_out, int64_t n, int end_bit, const Scratch& s,
                       cudaStream_t st) {
  return with_temp(s, [&](void* t, size_t& b) {
    return cub::DeviceRadixSort::SortPairs(t, b, keys, keys_out, pos, pos_out, n, 0, end_bit, st);
  });
}

// keys[i], pos[i] = the key (with its line above `line_shift` bits when line_shift > 0) and the
// flat position i of element i % len of line i / len.
template <class U>
__global__ void pack_lines(const U* x, SortLines l, KeyCode c, bool desc, int line_shift,
                           uint64_t* keys, int64_t* pos) {
  const int64_t n = l.count * l.len;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t line = i / l.len, j = i - line * l.len;
    int64_t o[1];
    offsets<1>(l.outer, line, o);
    const uint64_t key = sort_key<U>(x[o[0] + j * l.x_step], c, desc);
    keys[i] = line_shift > 0 ? static_cast<uint64_t>(line) << line_shift | key : key;
    pos[i] = i;
  }
}

// seg[j] = the line of sorted flat position pos[j] (the second pass).
__global__ void line_of(const int64_t* pos, int64_t n, int64_t len, uint64_t* seg) {
  for (int64_t i = first_index(); i < n; i += grid_stride())
    seg[i] = static_cast<uint64_t>(pos[i] / len);
}

// The first k sorted elements of each line: positions in the line, and values read back from
// x (the original bits: -0.0 stays -0.0 and NaN payloads survive, as on the CPU).
template <class U>
__global__ void write_lines(const U* x, SortLines l, const int64_t* sorted, U* values,
                            int64_t* indices) {
  const int64_t n = l.count * l.k;
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    const int64_t line = i / l.k, j = i - line * l.k;
    int64_t o[3];
    offsets<3>(l.outer, line, o);
    const int64_t p = sorted[line * l.len + j] - line * l.len;
    if (values) values[o[1] + j * l.v_step] = x[o[0] + p * l.x_step];
    indices[o[2] + j * l.i_step] = p;
  }
}

template <class U>
cudaError_t sort_lines_as(const KeyCode& c, bool desc, const void* xv, void* values,
                          int64_t* indices, const SortLines& l, const Scratch& s, cudaStream_t st) {
  const auto* x = static_cast<const U*>(xv);
  const int64_t n = l.count * l.len;
  constexpr int kBits = static_cast<int>(sizeof(U) * 8);
  const int line_bits = l.count > 1 ? bit_width(static_cast<uint64_t>(l.count - 1)) : 0;
  const bool combined = line_bits > 0 && kBits + line_bits <= 64;
  auto* keys = s.take<uint64_t>(n);
  auto* keys_out = s.take<uint64_t>(n);
  int64_t* pos = s.take<int64_t>(n);
  int64_t* pos_out = s.take<int64_t>(n);
  pack_lines<U><<<blocks_for(n), kThreads, 0, st>>>(x, l, c, desc, combined ? kBits : 0, keys, pos);
  cudaError_t e =
      radix_sort(keys, keys_out, pos, pos_out, n, combined ? kBits + line_bits : kBits, s, st);
  if (e == cudaSuccess && line_bits > 0 && !combined) {
    line_of<<<blocks_for(n), kThreads, 0, st>>>(pos_out, n, l.len, keys);
    e = radix_sort(keys, keys_out, pos_out, pos, n, line_bits, s, st);
    pos_out = pos;
  }
  if (e != cudaSuccess) return e;
  if (l.count * l.k > 0)
    write_lines<U><<<blocks_for(l.count * l.k), kThreads, 0, st>>>(
        x, l, pos_out, static_cast<U*>(values), indices);
  return cudaGetLastError();
}

// ---- unique ---------------------------------------------------------------------------------

template <class U>
__global__ void pack_flat(const U* x, Geometry g, KeyCode c, uint64_t* keys, int64_t* pos) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[1];
    offsets<1>(g, i, o);
    keys[i] = sort_key<U>(x[o[0]], c, false);
    pos[i] = i;
  }
}

template <class U>
__global__ void group_starts(const uint64_t* keys, int64_t n, KeyCode c, int64_t* flags) {
  for (int64_t j = first_index(); j < n; j += grid_stride()) {
    const auto key = static_cast<U>(keys[j]), prev = static_cast<U>(j > 0 ? keys[j - 1] : 0);
    flags[j] = new_group<U>(j == 0, prev, key, c) ? 1 : 0;
  }
}

template <class U>
cudaError_t unique_sort_as(const KeyCode& c, const void* x, const Geometry& g, int64_t n,
                           int64_t* pos, int64_t* group, const Scratch& s, cudaStream_t st) {
  auto* keys = s.take<uint64_t>(n);
  auto* keys_out = s.take<uint64_t>(n);
  int64_t* pos_in = s.take<int64_t>(n);
  pack_flat<U><<<blocks_for(n), kThreads, 0, st>>>(static_cast<const U*>(x), g, c, keys, pos_in);
  const cudaError_t e =
      radix_sort(keys, keys_out, pos_in, pos, n, static_cast<int>(sizeof(U) * 8), s, st);
  if (e != cudaSuccess) return e;
  group_starts<U><<<blocks_for(n), kThreads, 0, st>>>(keys_out, n, c, group);
  return with_temp(s, [&](void* t, size_t& b) {
    return cub::DeviceScan::InclusiveSum(t, b, group, group, n, st);
  });
}

template <class U>
__global__ void unique_scatter(const U* x, Geometry g, const int64_t* pos, const int64_t* group,
                               U* values, int64_t* inverse, int64_t* starts) {
  for (int64_t j = first_index(); j < g.numel; j += grid_stride()) {
    const int64_t gid = group[j] - 1, p = pos[j];
    inverse[p] = gid;
    if (j == 0 || group[j - 1] != group[j]) {
      int64_t o[1];
      offsets<1>(g, p, o);
      values[gid] = x[o[0]];
      starts[gid] = j;
    }
  }
}

__global__ void group_counts(const int64_t* starts, int64_t groups, int64_t n, int64_t* counts) {
  for (int64_t i = first_index(); i < groups; i += grid_stride())
    counts[i] = (i + 1 < groups ? starts[i + 1] : n) - starts[i];
}

template <class U>
cudaError_t unique_write_as(const void* x, const Geometry& g, int64_t n, int64_t groups,
                            const int64_t* pos, const int64_t* group, void* values,
                            int64_t* inverse, int64_t* counts, const Scratch& s, cudaStream_t st) {
  int64_t* starts = s.take<int64_t>(groups);
  unique_scatter<U><<<blocks_for(n), kThreads, 0, st>>>(static_cast<const U*>(x), g, pos, group,
                                                        static_cast<U*>(values), inverse, starts);
  group_counts<<<blocks_for(groups), kThreads, 0, st>>>(starts, groups, n, counts);
  return cudaGetLastError();
}

// ---- nonzero --------------------------------------------------------------------------------

template <class U>
__global__ void nonzero_flags(const U* x, Geometry g, uint64_t mask, int64_t* flags) {
  for (int64_t i = first_index(); i < g.numel; i += grid_stride()) {
    int64_t o[1];
    offsets<1>(g, i, o);
    flags[i] = nonzero_bits(static_cast<uint64_t>(x[o[0]]), mask) ? 1 : 0;
  }
}

template <class U>
cudaError_t nonzero_scan_as(uint64_t mask, const void* x, const Geometry& g, int64_t* scan,
                            const Scratch& s, cudaStream_t st) {
  nonzero_flags<U>
      <<<blocks_for(g.numel), kThreads, 0, st>>>(static_cast<const U*>(x), g, mask, scan);
  return with_temp(s, [&](void* t, size_t& b) {
    return cub::DeviceScan::InclusiveSum(t, b, scan, scan, g.numel, st);
  });
}

__global__ void nonzero_coords(const int64_t* scan, int64_t n, Dims dims, int64_t* out) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) {
    if (scan[i] == (i > 0 ? scan[i - 1] : 0)) continue;
    int64_t* row = out + (scan[i] - 1) * dims.n;
    int64_t rem = i;
    for (int d = dims.n - 1; d >= 0; --d) {
      row[d] = rem % dims.size[d];
      rem /= dims.size[d];
    }
  }
}

// ---- last_of_keys ---------------------------------------------------------------------------

__global__ void iota(int64_t n, int64_t* out) {
  for (int64_t i = first_index(); i < n; i += grid_stride()) out[i] = i;
}

// pos is a permutation, so every winner entry is written exactly once.
__global__ void mark_last(const uint64_t* keys, const int64_t* pos, int64_t n, uint64_t invalid,
                          uint8_t* winner) {
  for (int64_t j = first_index(); j < n; j += grid_stride())
    winner[pos[j]] = keys[j] != invalid && (j + 1 == n || keys[j + 1] != keys[j]) ? 1 : 0;
}

// ---- width dispatch -------------------------------------------------------------------------

// Tables below are indexed by log2 of the element width.
size_t slot(int width) { return width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3; }

using SortFn = cudaError_t (*)(const KeyCode&, bool, const void*, void*, int64_t*, const SortLines&,
                               const Scratch&, cudaStream_t);
constexpr std::array<SortFn, 4> kSorts = {&sort_lines_as<uint8_t>, &sort_lines_as<uint16_t>,
                                          &sort_lines_as<uint32_t>, &sort_lines_as<uint64_t>};
using UniqueSortFn = cudaError_t (*)(const KeyCode&, const void*, const Geometry&, int64_t,
                                     int64_t*, int64_t*, const Scratch&, cudaStream_t);
constexpr std::array<UniqueSortFn, 4> kUniqueSorts = {
    &unique_sort_as<uint8_t>, &unique_sort_as<uint16_t>, &unique_sort_as<uint32_t>,
    &unique_sort_as<uint64_t>};
using UniqueWriteFn = cudaError_t (*)(const void*, const Geometry&, int64_t, int64_t,
                                      const int64_t*, const int64_t*, void*, int64_t*, int64_t*,
                                      const Scratch&, cudaStream_t);
constexpr std::array<UniqueWriteFn, 4> kUniqueWrites = {
    &unique_write_as<uint8_t>, &unique_write_as<uint16_t>, &unique_write_as<uint32_t>,
    &unique_write_as<uint64_t>};
using NonzeroFn = cudaError_t (*)(uint64_t, const void*, const Geometry&, int64_t*, const Scratch&,
                                  cudaStream_t);
constexpr std::array<NonzeroFn, 4> kNonzeros = {
    &nonzero_scan_as<uint8_t>, &nonzero_scan_as<uint16_t>, &nonzero_scan_as<uint32_t>,
    &nonzero_scan_as<uint64_t>};

}  // namespace

int sort_lines(const KeyCode& key, bool descending, const void* x, void* values, int64_t* indices,
               const SortLines& l, const Scratch& s, void* stream) {
  return kSorts[slot(key.width)](key, descending, x, values, indices, l, s,
                                 static_cast<cudaStream_t>(stream));
}

int unique_sort(const KeyCode& key, const void* x, const Geometry& g, int64_t n, int64_t* pos,
                int64_t* group, const Scratch& s, void* stream) {
  return kUniqueSorts[slot(key.width)](key, x, g, n, pos, group, s,
                                       static_cast<cudaStream_t>(stream));
}

int unique_write(int width, const void* x, const Geometry& g, int64_t n, int64_t groups,
                 const int64_t* pos, const int64_t* group, void* values, int64_t* inverse,
                 int64_t* counts, const Scratch& s, void* stream) {
  return kUniqueWrites[slot(width)](x, g, n, groups, pos, group, values, inverse, counts, s,
                                    static_cast<cudaStream_t>(stream));
}

int nonzero_scan(int width, uint64_t mask, const void* x, const Geometry& g, int64_t* scan,
                 const Scratch& s, void* stream) {
  return kNonzeros[slot(width)](mask, x, g, scan, s, static_cast<cudaStream_t>(stream));
}

int nonzero_write(const int64_t* scan, int64_t n, const Dims& dims, int64_t* out, void* stream) {
  nonzero_coords<<<blocks_for(n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(scan, n, dims,
                                                                                    out);
  return cudaGetLastError();
}

int last_of_keys(const uint64_t* keys, int64_t n, uint64_t invalid, uint8_t* winner,
                 const Scratch& s, void* stream) {
  const auto st = static_cast<cudaStream_t>(stream);
  int64_t* pos = s.take<int64_t>(n);
  int64_t* pos_out = s.take<int64_t>(n);
  auto* keys_out = s.take<uint64_t>(n);
  iota<<<blocks_for(n), kThreads, 0, st>>>(n, pos);
  const cudaError_t e = radix_sort(keys, keys_out, pos, pos_out, n, bit_width(invalid), s, st);
  if (e != cudaSuccess) return e;
  mark_last<<<blocks_for(n), kThreads, 0, st>>>(keys_out, pos_out, n, invalid, winner);
  return cudaGetLastError();
}

}  // namespace tessera::cuda::k
