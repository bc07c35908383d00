#pragma once
// Primitive attributes: a small ordered list of named values (dims, flags, scalars, ...).
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"
#include "tessera/core/scalar.h"

namespace tessera {

using AttrValue = std::variant<bool, int64_t, double, std::vector<int64_t>, DType, Scalar,
                               std::string_view, Device>;

class Attrs {
 public:
  Attrs() = default;
  Attrs(std::initializer_list<std::pair<std::string_view, AttrValue>> items) : items_(items) {}

  /// Sets (or replaces) a value; keys must be string literals (they are not copied).
  Attrs& set(std::string_view key, AttrValue v);
  bool has(std::string_view key) const { return find(key) != nullptr; }
  /// The value of key as T; throws ValueError if missing or of another type.
  template <class T>
  const T& get(std::string_view key) const {
    const AttrValue* v = find(key);
    if (!v) fail<ValueError>("attrs", "missing attribute '{}'", key);
    const T* p = std::get_if<T>(v);
    if (!p) fail<ValueError>("attrs", "attribute '{}' has another type", key);
    return *p;
  }
  template <class T>
  T get_or(std::string_view key, T fallback) const {
    const AttrValue* v = find(key);
    const T* p = v ? std::get_if<T>(v) : nullptr;
    return p ? *p : fallback;
  }
  const auto& items() const { return items_; }
  bool empty() const { return items_.empty(); }

 private:
  const AttrValue* find(std::string_view key) const {
    for (const auto& [k, v] : items_)
      if (k == key) return &v;
    return nullptr;
  }
  std::vector<std::pair<std::string_view, AttrValue>> items_;
};

}  // namespace tessera
