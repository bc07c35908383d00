#pragma once
// The per-element rules of sort.cu and index_adv.cu, as __host__ __device__ functions so that
// they can be checked on a host against the CPU kernels (backends/cpu/sort.cpp, indexing.cpp).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/host_device.h"
#include "backends/cuda/sort_kernels.h"

namespace tessera::cuda::k {

/// The sort key of a value's bits (U: the unsigned type of its width). Unsigned key order is
/// the CPU's KeyOrder: integers by value (signed ones with the sign bit flipped); floats by
/// value with -0.0 == +0.0 (one key, so ties keep their input order) and every NaN one key
/// above +inf. Descending complements the key: the largest (NaN) first, ties still stable.
template <class U>
TS_HD U sort_key(U bits, const KeyCode& c, bool descending) {
  constexpr U kSign = static_cast<U>(U(1) << (sizeof(U) * 8 - 1));
  U key = bits;
  if (c.kind == kKeySigned) {
    key = static_cast<U>(bits ^ kSign);
  } else if (c.kind == kKeyFloat) {
    const U mag = static_cast<U>(bits & static_cast<U>(~kSign));
    if (mag > static_cast<U>(c.inf))
      key = static_cast<U>(~U(0));
    else if (mag == 0)
      key = kSign;
    else
      key = (bits & kSign) ? static_cast<U>(~bits) : static_cast<U>(bits | kSign);
  }
  return descending ? static_cast<U>(~key) : key;
}

/// Whether the sorted element with `key` starts a group of unique(): the first one, a new key,
/// or a NaN (ascending NaN key: all ones), which is never equal to anything, as on the CPU.
template <class U>
TS_HD bool new_group(bool first, U prev, U key, const KeyCode& c) {
  return first || prev != key || (c.kind == kKeyFloat && key == static_cast<U>(~U(0)));
}

/// nonzero's test on an element's bits: the mask drops the sign bit(s) of floats.
TS_HD bool nonzero_bits(uint64_t bits, uint64_t mask) { return (bits & mask) != 0; }

/// An index along a dim of `size` for index / index_put: a negative one counts from the end
/// once (the CPU's rule there); false when it is still outside [0, size).
TS_HD bool wrap_index(int64_t v, int64_t size, int64_t& out) {
  if (v < 0) v += size;
  out = v;
  return v >= 0 && v < size;
}

/// The element offset of an advanced index item: sum_j wrap(idx_j[item]) * stride_j. On an
/// out-of-range index, returns false with `bad` and `size` the first offending value and dim.
TS_HD bool adv_offset(const AdvIndex& a, int64_t item, int64_t& off, int64_t& bad, int64_t& size) {
  off = 0;
  for (int j = 0; j < a.k; ++j) {
    int64_t v;
    if (!wrap_index(a.idx[j][item], a.size[j], v)) {
      bad = a.idx[j][item];
      size = a.size[j];
      return false;
    }
    off += v * a.stride[j];
  }
  return true;
}

/// The key of an advanced index item (its row-major position among the indexed dims).
TS_HD bool adv_key(const AdvIndex& a, int64_t item, uint64_t& key, int64_t& bad, int64_t& size) {
  int64_t lin = 0;
  for (int j = 0; j < a.k; ++j) {
    int64_t v;
    if (!wrap_index(a.idx[j][item], a.size[j], v)) {
      bad = a.idx[j][item];
      size = a.size[j];
      return false;
    }
    lin += v * a.lin[j];
  }
  key = static_cast<uint64_t>(lin);
  return true;
}

/// a + b on the bits of a 1- or 2-byte dtype as the CPU adds them (add_values in
/// backends/cpu/indexing.cpp): bool is or, integers wrap, 16-bit floats add in float32 and round
/// once to nearest even.
TS_HD uint16_t add_small(int code, uint16_t a, uint16_t b) {
  switch (code) {
    case kBool:
      return (a != 0 || b != 0) ? 1 : 0;
    case kU8:
    case kI8:
      return static_cast<uint16_t>((a + b) & 0xFF);
    case kF16:
      return __half_as_ushort(
          __float2half_rn(__half2float(__ushort_as_half(a)) + __half2float(__ushort_as_half(b))));
    case kBF16:
      return __bfloat16_as_ushort(__float2bfloat16_rn(__bfloat162float(__ushort_as_bfloat16(a)) +
                                                      __bfloat162float(__ushort_as_bfloat16(b))));
    default:  // kI16
      return static_cast<uint16_t>(a + b);
  }
}

/// Replaces the `width`-byte field at byte `shift / 8` of a 32-bit word with add_small(field, v):
/// the word a compare-and-swap loop writes back.
TS_HD uint32_t add_into_word(uint32_t word, unsigned shift, int width, int code, uint16_t v) {
  const uint32_t mask = (width == 1 ? 0xFFu : 0xFFFFu) << shift;
  const auto cur = static_cast<uint16_t>((word & mask) >> shift);
  return (word & ~mask) | ((static_cast<uint32_t>(add_small(code, cur, v)) << shift) & mask);
}

}  // namespace tessera::cuda::k
