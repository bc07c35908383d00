#pragma once
// Where a tensor lives. Device::auto_() lets the scheduler place work.
#include <cstdint>
#include <string>

namespace tessera {

enum class DeviceType : uint8_t { CPU, CUDA, Auto };

/// A device: "cpu", "cuda:N", or "auto" (the scheduler decides).
struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  static Device auto_() { return {DeviceType::Auto, 0}; }
  /// Parses "cpu", "cuda", "cuda:1", "auto"; throws DeviceError otherwise.
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device&) const = default;
};

}  // namespace tessera
