#include "tessera/core/dtype.h"

#include <array>

namespace tessera {
namespace {

struct DTypeInfo {
  std::string_view name;
  size_t size;
  bool floating, complex, integral;
};

constexpr std::array<DTypeInfo, kNumDTypes> kInfo{{
    {"bool", 1, false, false, false},
    {"uint8", 1, false, false, true},
    {"int8", 1, false, false, true},
    {"int16", 2, false, false, true},
    {"int32", 4, false, false, true},
    {"int64", 8, false, false, true},
    {"float16", 2, true, false, false},
    {"bfloat16", 2, true, false, false},
    {"float32", 4, true, false, false},
    {"float64", 8, true, false, false},
    {"complex64", 8, false, true, false},
}};

const DTypeInfo& info(DType t) {
  auto i = static_cast<size_t>(t);
  if (i >= kInfo.size()) fail<DTypeError>("dtype", "invalid dtype code {}", i);
  return kInfo[i];
}

// PyTorch's promotion table (c10/core/ScalarType.cpp), restricted to our dtypes.
// Order: b1 u1 i1 i2 i4 i8 f2 bf f4 f8 c8
constexpr DType b1 = kBool, u1 = kUInt8, i1 = kInt8, i2 = kInt16, i4 = kInt32, i8 = kInt64,
                f2 = kFloat16, bf = kBFloat16, f4 = kFloat32, f8 = kFloat64, c8 = kComplex64;
constexpr DType kPromote[kNumDTypes][kNumDTypes] = {
    /* b1 */ {b1, u1, i1, i2, i4, i8, f2, bf, f4, f8, c8},
    /* u1 */ {u1, u1, i2, i2, i4, i8, f2, bf, f4, f8, c8},
    /* i1 */ {i1, i2, i1, i2, i4, i8, f2, bf, f4, f8, c8},
    /* i2 */ {i2, i2, i2, i2, i4, i8, f2, bf, f4, f8, c8},
    /* i4 */ {i4, i4, i4, i4, i4, i8, f2, bf, f4, f8, c8},
    /* i8 */ {i8, i8, i8, i8, i8, i8, f2, bf, f4, f8, c8},
    /* f2 */ {f2, f2, f2, f2, f2, f2, f2, f4, f4, f8, c8},
    /* bf */ {bf, bf, bf, bf, bf, bf, f4, bf, f4, f8, c8},
    /* f4 */ {f4, f4, f4, f4, f4, f4, f4, f4, f4, f8, c8},
    /* f8 */ {f8, f8, f8, f8, f8, f8, f8, f8, f8, f8, c8},  // c128 would be exact; c64 is ours
    /* c8 */ {c8, c8, c8, c8, c8, c8, c8, c8, c8, c8, c8},
};

}  // namespace

size_t itemsize(DType t) { return info(t).size; }
std::string_view dtype_name(DType t) { return info(t).name; }
bool is_floating(DType t) { return info(t).floating; }
bool is_complex(DType t) { return info(t).complex; }
bool is_integral(DType t, bool include_bool) {
  return info(t).integral || (include_bool && t == kBool);
}

DType dtype_from_name(std::string_view name) {
  for (size_t i = 0; i < kInfo.size(); ++i)
    if (kInfo[i].name == name) return static_cast<DType>(i);
  if (name == "float" || name == "f32") return kFloat32;
  if (name == "double" || name == "f64") return kFloat64;
  if (name == "half" || name == "f16") return kFloat16;
  if (name == "long") return kInt64;
  if (name == "int") return kInt32;
  fail<ValueError>("dtype", "unknown dtype name '{}'", name);
}

DType promote_types(DType a, DType b) {
  info(a), info(b);  // validates
  return kPromote[static_cast<int>(a)][static_cast<int>(b)];
}

DType to_float_dtype(DType t) { return is_integral(t, true) ? kFloat32 : t; }
DType to_real_dtype(DType t) { return t == kComplex64 ? kFloat32 : t; }

}  // namespace tessera
