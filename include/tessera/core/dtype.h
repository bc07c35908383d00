#pragma once
// Element types, their traits, PyTorch's promotion rules and dtype dispatch by type tag.
#include <complex>
#include <cstdint>
#include <string_view>

#include "tessera/core/error.h"
#include "tessera/core/half.h"

namespace tessera {

enum class DType : uint8_t {
  Bool,
  UInt8,
  Int8,
  Int16,
  Int32,
  Int64,
  Float16,
  BFloat16,
  Float32,
  Float64,
  Complex64
};
inline constexpr int kNumDTypes = 11;

inline constexpr DType kBool = DType::Bool, kUInt8 = DType::UInt8, kInt8 = DType::Int8,
                       kInt16 = DType::Int16, kInt32 = DType::Int32, kInt64 = DType::Int64,
                       kFloat16 = DType::Float16, kBFloat16 = DType::BFloat16,
                       kFloat32 = DType::Float32, kFloat64 = DType::Float64,
                       kComplex64 = DType::Complex64;

using Complex64 = std::complex<float>;

/// Size of one element in bytes.
size_t itemsize(DType t);
/// Lower-case name as in PyTorch ("float32", "bfloat16", ...).
std::string_view dtype_name(DType t);
/// Parses a dtype name; throws ValueError for unknown names.
DType dtype_from_name(std::string_view name);
bool is_floating(DType t);  ///< f16, bf16, f32, f64
bool is_complex(DType t);   ///< c64
bool is_integral(DType t, bool include_bool = false);
/// The result dtype of a binary op between two tensors of these dtypes (PyTorch's table).
DType promote_types(DType a, DType b);
/// The float dtype an integer input is computed in by ops like exp or mean (float32).
DType to_float_dtype(DType t);
/// Real counterpart of a complex dtype (c64 -> f32); identity otherwise.
DType to_real_dtype(DType t);

template <class T>
struct TypeTag {
  using type = T;
};

template <class T>
struct dtype_of;
template <>
struct dtype_of<bool> {
  static constexpr DType value = kBool;
};
template <>
struct dtype_of<uint8_t> {
  static constexpr DType value = kUInt8;
};
template <>
struct dtype_of<int8_t> {
  static constexpr DType value = kInt8;
};
template <>
struct dtype_of<int16_t> {
  static constexpr DType value = kInt16;
};
template <>
struct dtype_of<int32_t> {
  static constexpr DType value = kInt32;
};
template <>
struct dtype_of<int64_t> {
  static constexpr DType value = kInt64;
};
template <>
struct dtype_of<Half> {
  static constexpr DType value = kFloat16;
};
template <>
struct dtype_of<BFloat16> {
  static constexpr DType value = kBFloat16;
};
template <>
struct dtype_of<float> {
  static constexpr DType value = kFloat32;
};
template <>
struct dtype_of<double> {
  static constexpr DType value = kFloat64;
};
template <>
struct dtype_of<Complex64> {
  static constexpr DType value = kComplex64;
};
template <class T>
inline constexpr DType dtype_v = dtype_of<T>::value;

/// Calls f(TypeTag<T>{}) with the C++ type T of dtype t.
template <class F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case kBool:
      return f(TypeTag<bool>{});
    case kUInt8:
      return f(TypeTag<uint8_t>{});
    case kInt8:
      return f(TypeTag<int8_t>{});
    case kInt16:
      return f(TypeTag<int16_t>{});
    case kInt32:
      return f(TypeTag<int32_t>{});
    case kInt64:
      return f(TypeTag<int64_t>{});
    case kFloat16:
      return f(TypeTag<Half>{});
    case kBFloat16:
      return f(TypeTag<BFloat16>{});
    case kFloat32:
      return f(TypeTag<float>{});
    case kFloat64:
      return f(TypeTag<double>{});
    case kComplex64:
      return f(TypeTag<Complex64>{});
  }
  fail<DTypeError>("visit_dtype", "invalid dtype code {}", static_cast<int>(t));
}

/// The type arithmetic on T happens in: float for the 16-bit floats, T otherwise.
template <class T>
struct compute_type {
  using type = T;
};
template <>
struct compute_type<Half> {
  using type = float;
};
template <>
struct compute_type<BFloat16> {
  using type = float;
};
template <class T>
using compute_t = typename compute_type<T>::type;

}  // namespace tessera
