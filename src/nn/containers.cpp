// Sequential, ModuleList, ModuleDict.
#include "tessera/nn/containers.h"

#include "tessera/core/error.h"

namespace tessera::nn {
namespace {

// Wraps a possibly negative position into [0, n); IndexError naming the container.
size_t wrap_index(int64_t i, size_t n, const std::string& who) {
  const auto size = static_cast<int64_t>(n);
  TS_CHECK(i >= -size && i < size, IndexError, who, "index {} is out of range for {} modules", i,
           size);
  return static_cast<size_t>(i < 0 ? i + size : i);
}

}  // namespace

// ---- ModuleSequence, Sequential, ModuleList ----------------------------------------------------

void ModuleSequence::push_back(ModulePtr m) { add_child(std::to_string(size()), std::move(m)); }
ModulePtr ModuleSequence::operator[](int64_t i) const {
  return child_entries()[wrap_index(i, size(), type_name())].second;
}
void ModuleSequence::wrong_type(int64_t i) const {
  fail<ValueError>(type_name(), "module {} is a {}, not the type asked for", i,
                   (*this)[i]->type_name());
}

Sequential::Sequential(const std::vector<ModulePtr>& modules) {
  for (const auto& m : modules) push_back(m);
}
Sequential::Sequential(const Named<ModulePtr>& modules) {
  for (const auto& [n, m] : modules) push_back(n, m);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& e : child_entries()) y = e.second->forward(y);
  return y;
}

void Sequential::push_back(const std::string& name, ModulePtr m) { add_child(name, std::move(m)); }

ModuleList::ModuleList(const std::vector<ModulePtr>& modules) { extend(modules); }
void ModuleList::extend(const std::vector<ModulePtr>& modules) {
  for (const auto& m : modules) push_back(m);
}

// ---- ModuleDict -------------------------------------------------------------------------------

ModuleDict::ModuleDict(const Named<ModulePtr>& modules) {
  for (const auto& [n, m] : modules) insert(n, m);
}
void ModuleDict::insert(const std::string& name, ModulePtr m) { add_child(name, std::move(m)); }
bool ModuleDict::contains(const std::string& name) const {
  for (const auto& e : child_entries())
    if (e.first == name) return true;
  return false;
}
ModulePtr ModuleDict::operator[](const std::string& name) const {
  for (const auto& e : child_entries())
    if (e.first == name) return e.second;
  fail<IndexError>("ModuleDict", "no module \"{}\" (keys: {})", name, fmt::join(keys(), ", "));
}
std::vector<std::string> ModuleDict::keys() const {
  std::vector<std::string> out;
  for (const auto& e : child_entries()) out.push_back(e.first);
  return out;
}
void ModuleDict::wrong_type(const std::string& name) const {
  fail<ValueError>("ModuleDict", "module \"{}\" is a {}, not the type asked for", name,
                   (*this)[name]->type_name());
}

}  // namespace tessera::nn
