#include "tessera/core/storage.h"

#include "tessera/core/error.h"

namespace tessera {

Allocator& allocator_for(Device device);  // runtime/devices.cpp

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
  auto s = std::make_shared<Storage>(Key{});
  s->device_ = device;
  s->allocator_ = &allocator_for(device);
  s->data_ = s->allocator_->allocate(nbytes, &s->capacity_);
  s->nbytes_ = nbytes;
  return s;
}

std::shared_ptr<Storage> Storage::wrap(void* data, size_t nbytes, Device device,
                                       std::function<void(void*)> deleter) {
  auto s = std::make_shared<Storage>(Key{});
  s->data_ = data;
  s->nbytes_ = nbytes;
  s->device_ = device;
  s->deleter_ = std::move(deleter);
  return s;
}

void Storage::release() {
  if (released_) return;
  if (allocator_)
    allocator_->deallocate(data_, capacity_);
  else if (deleter_)
    deleter_(data_);
  data_ = nullptr;
  released_ = true;
}

Storage::~Storage() { release(); }

}  // namespace tessera
