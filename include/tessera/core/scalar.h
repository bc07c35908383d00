#pragma once
// A Python-like number: bool, integer, float or complex, used for fill values and scalar operands.
#include <complex>
#include <cstdint>
#include <string>
#include <type_traits>

#include "tessera/core/dtype.h"

namespace tessera {

class Scalar {
 public:
  enum class Kind : uint8_t { Bool, Int, Float, Complex };

  Scalar() : Scalar(int64_t{0}) {}
  Scalar(bool v) : kind_(Kind::Bool), i_(v) {}  // NOLINT(google-explicit-constructor)
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Scalar(T v) : kind_(Kind::Int), i_(static_cast<int64_t>(v)) {}  // NOLINT
  template <class T, std::enable_if_t<std::is_floating_point_v<T>, int> = 0>
  Scalar(T v) : kind_(Kind::Float), d_(static_cast<double>(v)) {}                        // NOLINT
  Scalar(Half v) : Scalar(static_cast<float>(v)) {}                                      // NOLINT
  Scalar(BFloat16 v) : Scalar(static_cast<float>(v)) {}                                  // NOLINT
  Scalar(std::complex<double> v) : kind_(Kind::Complex), d_(v.real()), im_(v.imag()) {}  // NOLINT
  Scalar(std::complex<float> v) : Scalar(std::complex<double>(v)) {}                     // NOLINT

  Kind kind() const { return kind_; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_integral() const { return kind_ == Kind::Int; }
  bool is_floating() const { return kind_ == Kind::Float; }
  bool is_complex() const { return kind_ == Kind::Complex; }

  /// The value converted to T (as a static_cast would; complex to real keeps the real part).
  template <class T>
  T to() const {
    if constexpr (std::is_same_v<T, Complex64>) {
      return is_complex() ? Complex64(static_cast<float>(d_), static_cast<float>(im_))
                          : Complex64(static_cast<float>(to<double>()), 0.f);
    } else if constexpr (std::is_same_v<T, std::complex<double>>) {
      return is_complex() ? std::complex<double>(d_, im_) : std::complex<double>(to<double>(), 0);
    } else if constexpr (std::is_same_v<T, bool>) {
      return (kind_ == Kind::Bool || kind_ == Kind::Int) ? i_ != 0 : (d_ != 0 || im_ != 0);
    } else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
      return T(to<float>());
    } else {
      return (kind_ == Kind::Bool || kind_ == Kind::Int) ? static_cast<T>(i_) : static_cast<T>(d_);
    }
  }
  /// The dtype a 0-d tensor made from this scalar gets (bool, int64, float32 default, c64).
  DType default_dtype() const;
  std::string str() const;

 private:
  Kind kind_;
  int64_t i_ = 0;
  double d_ = 0, im_ = 0;
};

}  // namespace tessera
