#include "tessera/core/device.h"

#include <charconv>

#include "tessera/core/error.h"

namespace tessera {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "auto") return auto_();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    int idx = -1;
    auto [p, ec] = std::from_chars(s.data() + 5, s.data() + s.size(), idx);
    if (ec == std::errc() && p == s.data() + s.size() && idx >= 0) return cuda(idx);
  }
  fail<DeviceError>("device", "unknown device '{}' (expected cpu, cuda, cuda:N or auto)", s);
}

std::string Device::str() const {
  switch (type) {
    case DeviceType::CPU:
      return "cpu";
    case DeviceType::CUDA:
      return "cuda:" + std::to_string(index);
    case DeviceType::Auto:
      return "auto";
  }
  return "?";
}

}  // namespace tessera
