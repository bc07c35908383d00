#include "tessera/ops/primitive.h"

namespace tessera {

void register_all(Registry& r);  // src/register_all.cpp

Attrs& Attrs::set(std::string_view key, AttrValue v) {
  for (auto& [k, old] : items_)
    if (k == key) {
      old = std::move(v);
      return *this;
    }
  items_.emplace_back(key, std::move(v));
  return *this;
}

const Kernel* Primitive::find_kernel(DeviceType dt, Inputs in, const Attrs& a) const {
  const Kernel* best = nullptr;
  for (const Kernel& k : kernels)
    if (k.device == dt && (!best || k.priority > best->priority) &&
        (!k.supports || k.supports(in, a)))
      best = &k;
  return best;
}

Primitive& Registry::define(Primitive p) {
  if (find(p.name)) fail<ValueError>("registry", "primitive '{}' defined twice", p.name);
  return prims_.emplace_back(std::move(p));
}

const Primitive* Registry::find(std::string_view name) const {
  for (const Primitive& p : prims_)
    if (p.name == name) return &p;
  return nullptr;
}

Primitive& Registry::get(std::string_view name) {
  const Primitive* p = find(name);
  if (!p) fail<ValueError>("registry", "unknown primitive '{}'", name);
  return const_cast<Primitive&>(*p);
}

void Registry::add_kernel(std::string_view prim, Kernel k) { get(prim).kernels.push_back(k); }

Registry& registry() {
  // Built once, in a fixed order: primitives first, then the kernels of each backend.
  static Registry* r = [] {
    auto* reg = new Registry();
    register_all(*reg);
    return reg;
  }();
  return *r;
}

}  // namespace tessera
