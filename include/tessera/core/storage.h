#pragma once
// A refcounted buffer on one device, shared by a tensor and all its views.
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>

#include "tessera/core/allocator.h"
#include "tessera/core/device.h"

namespace tessera {

class Storage {
 public:
  /// Allocates nbytes from the device's allocator.
  static std::shared_ptr<Storage> allocate(size_t nbytes, Device device = Device::cpu());
  /// Wraps external memory; deleter (may be empty) runs when the last user goes away.
  static std::shared_ptr<Storage> wrap(void* data, size_t nbytes, Device device,
                                       std::function<void(void*)> deleter);
  /// Only Storage's factories can make the key, so construction goes through them.
  class Key {
    friend class Storage;
    Key() = default;
  };
  explicit Storage(Key) {}
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  /// Frees the memory now; views that still point here raise an error when used.
  void release();
  bool released() const { return released_; }

  /// Bumped by every in-place write, so autograd can detect stale saved tensors.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  /// `writer` names the op that wrote (kept for autograd's error messages).
  void bump_version(std::string_view writer = {}) {
    version_.fetch_add(1, std::memory_order_relaxed);
    last_writer_ = writer;
  }
  /// The op behind the last in-place write (empty if none).
  std::string_view last_writer() const { return last_writer_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0, capacity_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;      // null for wrapped memory
  std::function<void(void*)> deleter_;  // for wrapped memory
  std::atomic<uint64_t> version_{0};
  bool released_ = false;
  std::string_view last_writer_;  // names of primitives live for the whole process
};

}  // namespace tessera
