#include "tessera/core/allocator.h"
#include "tessera/core/error.h"
#include "tessera/runtime/info.h"

namespace tessera {

namespace cuda {
Allocator& allocator(int device);  // backends/cuda (or its stub)
}

Allocator& allocator_for(Device device) {
  switch (device.type) {
    case DeviceType::CPU:
      return cpu_allocator();
    case DeviceType::CUDA:
      return cuda::allocator(device.index);
    case DeviceType::Auto:
      return cpu_allocator();
  }
  fail<DeviceError>("allocator", "unknown device {}", device.str());
}

}  // namespace tessera
