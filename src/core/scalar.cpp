#include "tessera/core/scalar.h"

#include <fmt/format.h>

namespace tessera {

DType Scalar::default_dtype() const {
  switch (kind_) {
    case Kind::Bool:
      return kBool;
    case Kind::Int:
      return kInt64;
    case Kind::Float:
      return kFloat32;
    case Kind::Complex:
      return kComplex64;
  }
  return kFloat32;
}

std::string Scalar::str() const {
  switch (kind_) {
    case Kind::Bool:
      return i_ ? "True" : "False";
    case Kind::Int:
      return std::to_string(i_);
    case Kind::Float:
      return fmt::format("{}", d_);
    case Kind::Complex:
      return fmt::format("({}{:+}j)", d_, im_);
  }
  return "?";
}

}  // namespace tessera
