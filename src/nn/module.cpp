// nn::Module: registries, traversal, modes, conversion, state dicts and printing.
#include "tessera/nn/module.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>
#include <set>
#include <sstream>
#include <typeinfo>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"

namespace tessera::nn {
namespace {

template <class T>
T* find_entry(Named<T>& v, const std::string& name) {
  for (auto& [n, x] : v)
    if (n == name) return &x;
  return nullptr;
}
template <class T>
const T* find_entry(const Named<T>& v, const std::string& name) {
  for (const auto& [n, x] : v)
    if (n == name) return &x;
  return nullptr;
}
template <class T>
void put_entry(Named<T>& v, const std::string& name, T x) {
  if (T* e = find_entry(v, name))
    *e = std::move(x);
  else
    v.emplace_back(name, std::move(x));
}
template <class T>
void erase_entry(Named<T>& v, const std::string& name) {
  std::erase_if(v, [&](const auto& e) { return e.first == name; });
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// Points dst's handle at src's data, so every holder of dst (a layer's member, an optimizer)
// sees the converted tensor. Parameters are leaves, so no history is invalidated.
void rebind(const Tensor& dst, const Tensor& src) {
  TensorImpl& d = dst.impl();
  d.storage = src.storage();
  d.shape = src.shape();
  d.strides = src.strides();
  d.offset = src.offset();
  d.dtype = src.dtype();
}

std::string indent_tail(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '\n') out += "  ";
  }
  return out;
}

std::string join_keys(const std::vector<std::string>& keys) {
  std::string s;
  for (const auto& k : keys) s += (s.empty() ? "\"" : ", \"") + k + "\"";
  return s;
}

}  // namespace

Tensor Module::forward(const Tensor& /*x*/) {
  fail<NotImplementedError>(type_name(),
                            "this module has no forward(const Tensor&); call its own forward");
}

void Module::check_new_name(const std::string& name, const char* kind) const {
  TS_CHECK(!name.empty() && name.find('.') == std::string::npos, ValueError,
           "register_" + std::string(kind),
           "invalid name \"{}\": names must be non-empty and contain no '.'", name);
  const bool p = find_entry(params_, name) != nullptr, b = find_entry(buffers_, name) != nullptr,
             m = find_entry(children_, name) != nullptr;
  const std::string k = kind;
  if ((p && k != "parameter") || (b && k != "buffer") || (m && k != "module"))
    fail<ValueError>("register_" + k, "\"{}\" is already registered as a {}", name,
                     p   ? "parameter"
                     : b ? "buffer"
                         : "module");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name, "parameter");
  if (!t.defined()) {
    erase_entry(params_, name);
    return t;
  }
  if (!t.is_leaf()) t = t.detach();
  if (t.requires_grad() != requires_grad) t.requires_grad_(requires_grad);
  put_entry(params_, name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_new_name(name, "buffer");
  if (!t.defined()) {
    erase_entry(buffers_, name);
    return t;
  }
  put_entry(buffers_, name, BufferEntry{t, persistent});
  return t;
}

void Module::add_child(const std::string& name, ModulePtr m) {
  check_new_name(name, "module");
  TS_CHECK(m != nullptr, ValueError, "register_module", "module \"{}\" is null", name);
  TS_CHECK(m.get() != this, ValueError, "register_module", "a module can't be its own child");
  put_entry(children_, name, std::move(m));
}

// ---- traversal --------------------------------------------------------------------------------

void Module::collect_params(const std::string& prefix, bool recurse, Named<Tensor>& out) const {
  for (const auto& [n, t] : params_) out.emplace_back(join(prefix, n), t);
  if (!recurse) return;
  for (const auto& [n, c] : children_) c->collect_params(join(prefix, n), true, out);
}

void Module::collect_buffers(const std::string& prefix, bool recurse, bool persistent_only,
                             Named<Tensor>& out) const {
  for (const auto& [n, b] : buffers_)
    if (b.persistent || !persistent_only) out.emplace_back(join(prefix, n), b.tensor);
  if (!recurse) return;
  for (const auto& [n, c] : children_)
    c->collect_buffers(join(prefix, n), true, persistent_only, out);
}

namespace {
// Drops repeats of the same tensor (tied weights), keeping the first name.
Named<Tensor> unique_tensors(Named<Tensor> all) {
  std::set<const TensorImpl*> seen;
  Named<Tensor> out;
  for (auto& e : all)
    if (seen.insert(e.second.impl_ptr().get()).second) out.push_back(std::move(e));
  return out;
}
std::vector<Tensor> values_of(const Named<Tensor>& v) {
  std::vector<Tensor> out;
  out.reserve(v.size());
  for (const auto& e : v) out.push_back(e.second);
  return out;
}
}  // namespace

Named<Tensor> Module::named_parameters(bool recurse) const {
  Named<Tensor> all;
  collect_params("", recurse, all);
  return unique_tensors(std::move(all));
}
std::vector<Tensor> Module::parameters(bool recurse) const {
  return values_of(named_parameters(recurse));
}
Named<Tensor> Module::named_buffers(bool recurse) const {
  Named<Tensor> all;
  collect_buffers("", recurse, false, all);
  return unique_tensors(std::move(all));
}
std::vector<Tensor> Module::buffers(bool recurse) const {
  return values_of(named_buffers(recurse));
}

std::vector<ModulePtr> Module::children() const {
  std::vector<ModulePtr> out;
  for (const auto& e : children_) out.push_back(e.second);
  return out;
}
Named<ModulePtr> Module::named_children() const { return children_; }

void Module::collect_modules(const std::string& prefix, Named<ModulePtr>& out) const {
  for (const auto& [n, c] : children_) {
    out.emplace_back(join(prefix, n), c);
    c->collect_modules(join(prefix, n), out);
  }
}

Named<ModulePtr> Module::named_modules(const std::string& prefix) {
  ModulePtr self = weak_from_this().lock();
  TS_CHECK(self != nullptr, ValueError, type_name(),
           "modules() needs the module to be owned by a std::shared_ptr (use std::make_shared)");
  Named<ModulePtr> out{{prefix, self}};
  collect_modules(prefix, out);
  return out;
}
std::vector<ModulePtr> Module::modules() {
  std::vector<ModulePtr> out;
  for (auto& e : named_modules()) out.push_back(std::move(e.second));
  return out;
}

ModulePtr Module::get_submodule(const std::string& path) const {
  const Module* m = this;
  ModulePtr cur;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '.');) {
    const ModulePtr* c = find_entry(m->children_, part);
    TS_CHECK(c != nullptr, ValueError, "get_submodule", "{} has no submodule \"{}\" (in \"{}\")",
             m->type_name(), part, path);
    cur = *c;
    m = cur.get();
  }
  TS_CHECK(cur != nullptr, ValueError, "get_submodule", "empty path");
  return cur;
}

namespace {
// Splits "a.b.c" into ("a.b", "c").
std::pair<std::string, std::string> split_last(const std::string& path) {
  const auto dot = path.rfind('.');
  if (dot == std::string::npos) return {"", path};
  return {path.substr(0, dot), path.substr(dot + 1)};
}
}  // namespace

Tensor Module::get_parameter(const std::string& path) const {
  auto [owner, leaf] = split_last(path);
  const Module* m = owner.empty() ? this : get_submodule(owner).get();
  const Tensor* t = find_entry(m->params_, leaf);
  TS_CHECK(t != nullptr, ValueError, "get_parameter", "no parameter \"{}\"", path);
  return *t;
}

Tensor Module::get_buffer(const std::string& path) const {
  auto [owner, leaf] = split_last(path);
  const Module* m = owner.empty() ? this : get_submodule(owner).get();
  const BufferEntry* b = find_entry(m->buffers_, leaf);
  TS_CHECK(b != nullptr, ValueError, "get_buffer", "no buffer \"{}\"", path);
  return b->tensor;
}

Module& Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& e : children_) e.second->apply(fn);
  fn(*this);
  return *this;
}

// ---- modes and conversion ---------------------------------------------------------------------

Module& Module::train(bool on) {
  training_ = on;
  for (auto& e : children_) e.second->train(on);
  return *this;
}

void Module::convert_tensors(const std::function<Tensor(const Tensor&)>& convert) {
  autograd::NoGradGuard no_grad;
  for (auto& e : params_) {
    const Tensor g = e.second.grad();
    rebind(e.second, convert(e.second));
    if (g.defined()) e.second.set_grad(convert(g));
  }
  for (auto& e : buffers_) rebind(e.second.tensor, convert(e.second.tensor));
  for (auto& e : children_) e.second->convert_tensors(convert);
}

Module& Module::to(DType dtype) {
  TS_CHECK(is_floating(dtype), DTypeError, "Module.to",
           "modules convert to floating-point dtypes only, got {}", dtype_name(dtype));
  convert_tensors([dtype](const Tensor& t) { return is_floating(t.dtype()) ? t.to(dtype) : t; });
  return *this;
}

Module& Module::to(Device device) {
  convert_tensors([device](const Tensor& t) { return t.to(device); });
  return *this;
}

void Module::zero_grad() {
  for (auto& p : parameters())
    if (p.grad().defined()) p.set_grad(Tensor());
}

// ---- state ------------------------------------------------------------------------------------

StateDict Module::state_dict() const {
  Named<Tensor> all;
  collect_params("", true, all);
  collect_buffers("", true, true, all);
  StateDict out;
  for (auto& [n, t] : all) out.emplace(n, t.detach());
  return out;
}

LoadStateDictReport Module::load_state_dict(const StateDict& state, bool strict) {
  Named<Tensor> own;
  collect_params("", true, own);
  collect_buffers("", true, true, own);
  LoadStateDictReport report;
  std::vector<std::string> mismatched;
  std::set<std::string> own_keys;
  for (const auto& [n, t] : own) {
    own_keys.insert(n);
    auto it = state.find(n);
    if (it == state.end())
      report.missing_keys.push_back(n);
    else if (!it->second.defined() || it->second.shape() != t.shape())
      mismatched.push_back(fmt::format(
          "\"{}\": expected {}, got {}", n, shape_str(t.shape()),
          it->second.defined() ? shape_str(it->second.shape()) : std::string("undefined")));
  }
  for (const auto& [n, t] : state)
    if (!own_keys.count(n)) report.unexpected_keys.push_back(n);
  const bool bad_keys = strict && (!report.missing_keys.empty() || !report.unexpected_keys.empty());
  if (bad_keys || !mismatched.empty()) {
    std::string msg = "error(s) loading the state dict of " + type_name() + ":";
    if (strict && !report.missing_keys.empty())
      msg += " missing keys: " + join_keys(report.missing_keys) + ".";
    if (strict && !report.unexpected_keys.empty())
      msg += " unexpected keys: " + join_keys(report.unexpected_keys) + ".";
    for (const auto& m : mismatched) msg += " size mismatch for " + m + ".";
    fail<ValueError>("load_state_dict", "{}", msg);
  }
  autograd::NoGradGuard no_grad;  // nothing is loaded until every check has passed
  for (auto& [n, t] : own)
    if (auto it = state.find(n); it != state.end()) t.copy_(it->second);
  return report;
}

// ---- printing ---------------------------------------------------------------------------------

std::string Module::type_name() const {
  const char* mangled = typeid(*this).name();
  int status = 0;
  char* raw = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = status == 0 && raw ? raw : mangled;
  std::free(raw);  // NOLINT(cppcoreguidelines-no-malloc): __cxa_demangle allocates with malloc
  const auto colon = name.rfind("::", name.find('<'));
  return colon == std::string::npos ? name : name.substr(colon + 2);
}

std::string Module::str() const {
  const std::string extra = extra_repr();
  if (children_.empty()) return type_name() + "(" + extra + ")";
  std::string s = type_name() + "(\n";
  if (!extra.empty()) s += "  " + indent_tail(extra) + "\n";
  for (const auto& [n, c] : children_) s += "  (" + n + "): " + indent_tail(c->str()) + "\n";
  return s + ")";
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace tessera::nn
