#pragma once
// Private to the CPU elementwise kernels: the generic unary/binary/ternary kernel templates over
// the strided loop driver, the functor conventions, and the Highway fast-path table.
//
// A functor is a template over the compute type C (float for f16/bf16, T otherwise):
//   kName   op name for errors;  kTypes  dtype bits it supports (others never instantiate);
//   kSimd   index into the SIMD table or -1;  Out<T>  element type of the output;
//   a constructor from Attrs (parameters converted once per call) and operator().
#include <cstdint>
#include <type_traits>

#include "loops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cpu::ew {

// ---- dtype sets ----
template <class T>
inline constexpr uint32_t bit_of = 1u << static_cast<int>(dtype_v<T>);
inline constexpr uint32_t kB = 1u << static_cast<int>(kBool);
inline constexpr uint32_t kI = (1u << static_cast<int>(kUInt8)) | (1u << static_cast<int>(kInt8)) |
                               (1u << static_cast<int>(kInt16)) | (1u << static_cast<int>(kInt32)) |
                               (1u << static_cast<int>(kInt64));
inline constexpr uint32_t kF =
    (1u << static_cast<int>(kFloat16)) | (1u << static_cast<int>(kBFloat16)) |
    (1u << static_cast<int>(kFloat32)) | (1u << static_cast<int>(kFloat64));
inline constexpr uint32_t kC = 1u << static_cast<int>(kComplex64);
inline constexpr uint32_t kAll = kB | kI | kF | kC;

// ---- integer helpers: wrap like PyTorch, never signed-overflow UB ----
template <class C>
inline constexpr bool is_int_v = std::is_integral_v<C> && !std::is_same_v<C, bool>;
// Unsigned type wide enough that the usual promotions never turn it back into signed int.
template <class C>
using wide_u = std::conditional_t<(sizeof(C) < 4), uint32_t, std::make_unsigned_t<C>>;

template <class C>
inline C wrap_add(C a, C b) {
  if constexpr (is_int_v<C>)
    return static_cast<C>(static_cast<wide_u<C>>(a) + static_cast<wide_u<C>>(b));
  else
    return a + b;
}
template <class C>
inline C wrap_sub(C a, C b) {
  if constexpr (is_int_v<C>)
    return static_cast<C>(static_cast<wide_u<C>>(a) - static_cast<wide_u<C>>(b));
  else
    return a - b;
}
template <class C>
inline C wrap_mul(C a, C b) {
  if constexpr (is_int_v<C>)
    return static_cast<C>(static_cast<wide_u<C>>(a) * static_cast<wide_u<C>>(b));
  else
    return a * b;
}
template <class C>
inline C wrap_neg(C a) {
  if constexpr (is_int_v<C>)
    return static_cast<C>(wide_u<C>{0} - static_cast<wide_u<C>>(a));
  else
    return -a;
}

template <class T>
inline T load(const char* p) {
  return *reinterpret_cast<const T*>(p);
}
template <class T, class V>
inline void store(char* p, V v) {
  *reinterpret_cast<T*>(p) = convert<T>(v);
}

[[noreturn]] void unsupported(std::string_view op, DType dt);

// ---- the Highway fast path (elementwise_simd.cpp) ----
enum SimdUnaryOp : int {
  kSimdNeg,
  kSimdAbs,
  kSimdRelu,
  kSimdExp,
  kSimdLog,
  kSimdSqrt,
  kSimdTanh,
  kSimdSigmoid,
  kNumSimdUnary
};
enum SimdBinaryOp : int {
  kSimdAdd,
  kSimdSub,
  kSimdMul,
  kSimdDiv,
  kSimdMax,
  kSimdMin,
  kSimdReluBackward,
  kNumSimdBinary
};
/// Which binary operand is a broadcast scalar (stride 0) in a row.
enum SimdMode : int { kBothRows = 0, kScalarA = 1, kScalarB = 2 };

using SimdUnaryFn = void (*)(const void* in, void* out, int64_t n, bool stream);
using SimdBinaryFn = void (*)(const void* a, const void* b, void* out, int64_t n, int mode,
                              bool stream);
/// Kernels of the best ISA of this CPU; index [op][kSimdSlot: float32, float64, float16,
/// bfloat16]. 16-bit rows compute in float32 lanes and round once, as the scalar loop does.
struct SimdTable {
  SimdUnaryFn unary[kNumSimdUnary][4];
  SimdBinaryFn binary[kNumSimdBinary][4];
};
const SimdTable& simd_table();
/// Fills the float16/bfloat16 slots (elementwise_simd16.cpp).
void fill_simd_table16(SimdTable& t);

/// Outputs at least this large bypass the cache (non-temporal stores): they cannot stay in it.
inline constexpr int64_t kStreamBytes = int64_t{16} << 20;

template <class T>
inline constexpr int kSimdSlot = std::is_same_v<T, float>      ? 0
                                 : std::is_same_v<T, double>   ? 1
                                 : std::is_same_v<T, Half>     ? 2
                                 : std::is_same_v<T, BFloat16> ? 3
                                                               : -1;

// ---- generic kernels ----
template <template <class> class Op>
void unary_kernel(Inputs in, Outputs out, const Attrs& attrs) {
  const Tensor &x = in[0], &y = out[0];
  if (y.numel() == 0) return;
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    using F = Op<C>;
    if constexpr ((F::kTypes & bit_of<T>) != 0) {
      using O = typename F::template Out<T>;
      const F op(attrs);
      auto plan = make_plan<2>(y.shape(),
                               {static_cast<char*>(y.raw_data()), static_cast<char*>(x.raw_data())},
                               {y.strides().data(), x.strides().data()},
                               {int64_t{sizeof(O)}, int64_t{sizeof(T)}}, F::kName);
      [[maybe_unused]] const bool stream = static_cast<int64_t>(y.nbytes()) >= kStreamBytes;
      for_each_row(plan, [&](std::array<char*, 2> p, std::array<int64_t, 2> s, int64_t n) {
        if constexpr (F::kSimd >= 0 && kSimdSlot<T> >= 0 && std::is_same_v<O, T>) {
          if (s[0] == int64_t{sizeof(T)} && s[1] == int64_t{sizeof(T)}) {
            simd_table().unary[F::kSimd][kSimdSlot<T>](p[1], p[0], n, stream);
            return;
          }
        }
        for (int64_t i = 0; i < n; ++i)
          store<O>(p[0] + i * s[0], op(static_cast<C>(load<T>(p[1] + i * s[1]))));
      });
    } else {
      unsupported(F::kName, x.dtype());
    }
  });
}

/// Element strides of t broadcast to `shape`, using `buf` only when t's shape differs.
inline const int64_t* strides_for(const Tensor& t, const Shape& shape, Strides& buf,
                                  std::string_view op) {
  if (t.shape() == shape) return t.strides().data();
  buf = broadcast_strides(t, shape, op);
  return buf.data();
}

template <template <class> class Op>
void binary_kernel(Inputs in, Outputs out, const Attrs& attrs) {
  const Tensor &a = in[0], &b = in[1], &y = out[0];
  if (y.numel() == 0) return;
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    using F = Op<C>;
    if constexpr ((F::kTypes & bit_of<T>) != 0) {
      using O = typename F::template Out<T>;
      const F op(attrs);
      Strides ba, bb;
      auto plan =
          make_plan<3>(y.shape(),
                       {static_cast<char*>(y.raw_data()), static_cast<char*>(a.raw_data()),
                        static_cast<char*>(b.raw_data())},
                       {y.strides().data(), strides_for(a, y.shape(), ba, F::kName),
                        strides_for(b, y.shape(), bb, F::kName)},
                       {int64_t{sizeof(O)}, int64_t{sizeof(T)}, int64_t{sizeof(T)}}, F::kName);
      [[maybe_unused]] const bool stream = static_cast<int64_t>(y.nbytes()) >= kStreamBytes;
      for_each_row(plan, [&](std::array<char*, 3> p, std::array<int64_t, 3> s, int64_t n) {
        if constexpr (F::kSimd >= 0 && kSimdSlot<T> >= 0) {
          constexpr int64_t w = sizeof(T);
          if (s[0] == w && n > 1) {
            const int mode = s[1] == w && s[2] == w   ? kBothRows
                             : s[1] == 0 && s[2] == w ? kScalarA
                             : s[1] == w && s[2] == 0 ? kScalarB
                                                      : -1;
            if (mode >= 0) {
              simd_table().binary[F::kSimd][kSimdSlot<T>](p[1], p[2], p[0], n, mode, stream);
              return;
            }
          }
        }
        for (int64_t i = 0; i < n; ++i)
          store<O>(p[0] + i * s[0], op(static_cast<C>(load<T>(p[1] + i * s[1])),
                                       static_cast<C>(load<T>(p[2] + i * s[2]))));
      });
    } else {
      unsupported(F::kName, a.dtype());
    }
  });
}

/// Three inputs broadcast together; input 0 has element type F::First<T> (bool for where),
/// inputs 1 and 2 have the dispatch dtype T (taken from input 1).
template <template <class> class Op>
void ternary_kernel(Inputs in, Outputs out, const Attrs& attrs) {
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  visit_dtype(in[1].dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = compute_t<T>;
    using F = Op<C>;
    if constexpr ((F::kTypes & bit_of<T>) != 0) {
      using T0 = typename F::template First<T>;
      using C0 = compute_t<T0>;
      const F op(attrs);
      Strides b0, b1, b2;
      auto plan = make_plan<4>(
          y.shape(),
          {static_cast<char*>(y.raw_data()), static_cast<char*>(in[0].raw_data()),
           static_cast<char*>(in[1].raw_data()), static_cast<char*>(in[2].raw_data())},
          {y.strides().data(), strides_for(in[0], y.shape(), b0, F::kName),
           strides_for(in[1], y.shape(), b1, F::kName),
           strides_for(in[2], y.shape(), b2, F::kName)},
          {int64_t{sizeof(T)}, int64_t{sizeof(T0)}, int64_t{sizeof(T)}, int64_t{sizeof(T)}},
          F::kName);
      for_each_row(plan, [&](std::array<char*, 4> p, std::array<int64_t, 4> s, int64_t n) {
        for (int64_t i = 0; i < n; ++i)
          store<T>(p[0] + i * s[0], op(static_cast<C0>(load<T0>(p[1] + i * s[1])),
                                       static_cast<C>(load<T>(p[2] + i * s[2])),
                                       static_cast<C>(load<T>(p[3] + i * s[3]))));
      });
    } else {
      unsupported(F::kName, in[1].dtype());
    }
  });
}

// Sub-registrars of the family (one per source file).
void register_unary_kernels(Registry& r);
void register_binary_kernels(Registry& r);
void register_compare_kernels(Registry& r);

}  // namespace tessera::cpu::ew
