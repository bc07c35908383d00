#pragma once
// Tessera's exception hierarchy. Every message starts with "[op] " and shows the offending values.
#include <stdexcept>
#include <string>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace tessera {

/// Base of every error Tessera raises on bad input or an unavailable feature.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {
  using Error::Error;
};  ///< incompatible shapes or dims
class DTypeError : public Error {
  using Error::Error;
};  ///< unsupported or mismatched dtype
class DeviceError : public Error {
  using Error::Error;
};  ///< wrong, mixed or missing device
/// A device allocator could not serve a request even after returning its cache to the device.
class OutOfMemoryError : public DeviceError {
  using DeviceError::DeviceError;
};
class IndexError : public Error {
  using Error::Error;
};  ///< index out of range
class ValueError : public Error {
  using Error::Error;
};  ///< bad argument value
class IOError : public Error {
  using Error::Error;
};  ///< malformed or unreadable file
class NotBuiltError : public Error {
  using Error::Error;
};  ///< backend not compiled in
class NotImplementedError : public Error {
  using Error::Error;
};  ///< feature not done yet

/// Throws E with the message "[op] <formatted>".
template <class E = Error, class... Args>
[[noreturn]] void fail(std::string_view op, fmt::format_string<Args...> f, Args&&... args) {
  throw E(fmt::format("[{}] ", op) + fmt::format(f, std::forward<Args>(args)...));
}

/// Throws E("[op] ...") unless cond holds.
#define TS_CHECK(cond, E, op, ...)                    \
  do {                                                \
    if (!(cond)) ::tessera::fail<E>(op, __VA_ARGS__); \
  } while (0)

}  // namespace tessera
