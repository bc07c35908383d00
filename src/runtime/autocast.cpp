// Automatic mixed precision: the per-thread state, the policy table and the funnel's autocast
// layer, the first layer of the funnel (docs/design/autocast.md says why there).
#include "tessera/runtime/autocast.h"

#include <algorithm>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tessera/autograd/autograd.h"
#include "tessera/core/error.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::amp {
namespace {

using enum CastPolicy;

// ---- the policy: one row per primitive; primitives not listed keep their dtypes ----------
struct PolicyRow {
  const char* primitive;
  CastPolicy policy;
};
constexpr PolicyRow kPolicy[] = {
    // Matmul-like: the work is in multiply-adds, which 16-bit inputs make cheaper (tensor
    // cores on CUDA); kernels accumulate in float32. Linear and bmm are matmul here.
    {"matmul", Lower},
    {"conv", Lower},
    {"conv_transpose", Lower},
    // Reductions, scans and softmax: long sums lose too much in 16 bits. Losses are built
    // from these (log_softmax, mean, sum), so their results come out float32.
    {"sum", Float32},
    {"mean", Float32},
    {"prod", Float32},
    {"var", Float32},
    {"std", Float32},
    {"logsumexp", Float32},
    {"norm", Float32},
    {"cumsum", Float32},
    {"cumprod", Float32},
    {"softmax", Float32},
    {"log_softmax", Float32},
    // Functions whose range overflows 16 bits or whose results lose too much there
    // (PyTorch's CUDA float32 list).
    {"exp", Float32},
    {"exp2", Float32},
    {"expm1", Float32},
    {"log", Float32},
    {"log2", Float32},
    {"log1p", Float32},
    {"pow", Float32},
    {"reciprocal", Float32},
    {"rsqrt", Float32},
    {"tan", Float32},
    {"asin", Float32},
    {"acos", Float32},
    {"sinh", Float32},
    {"cosh", Float32},
    {"softplus", Float32},
    // Several floating inputs that the kernel needs in one dtype: the widest wins. The
    // public elementwise ops and cat already promote (PyTorch's rules) before the funnel, so
    // for them this only covers direct calls of the primitive.
    {"add", Promote},
    {"sub", Promote},
    {"mul", Promote},
    {"div", Promote},
    {"remainder", Promote},
    {"maximum", Promote},
    {"minimum", Promote},
    {"atan2", Promote},
    {"eq", Promote},
    {"ne", Promote},
    {"lt", Promote},
    {"le", Promote},
    {"gt", Promote},
    {"ge", Promote},
    {"where", Promote},
    {"clamp", Promote},
    {"lerp", Promote},
    {"cat", Promote},
    {"index_put", Promote},
    {"scatter", Promote},
    {"scatter_add", Promote},
};

constexpr std::pair<CastPolicy, std::string_view> kPolicyNames[] = {
    {Keep, "keep"}, {Lower, "lower"}, {Float32, "float32"}, {Promote, "promote"}};

// The table by primitive address, resolved once (the registry's addresses are stable).
using Resolved = std::vector<std::pair<const Primitive*, CastPolicy>>;
const Resolved& resolved() {
  static const Resolved table = [] {
    Resolved r;
    for (const PolicyRow& row : kPolicy) r.emplace_back(&prim(row.primitive), row.policy);
    std::sort(r.begin(), r.end());
    return r;
  }();
  return table;
}

CastPolicy policy_of(const Primitive& p) {
  const Resolved& r = resolved();
  auto it = std::lower_bound(r.begin(), r.end(), &p,
                             [](const auto& row, const Primitive* q) { return row.first < q; });
  return it != r.end() && it->first == &p ? it->second : Keep;
}

// ---- per-thread state ----------------------------------------------------------------------
thread_local AutocastSnapshot t_states{AutocastState{false, kBFloat16},
                                       AutocastState{false, kFloat16}};

int slot(DeviceType d) { return d == DeviceType::CPU ? 0 : d == DeviceType::CUDA ? 1 : -1; }

void set_all(const AutocastSnapshot& s) {
  t_states = s;
  set_layer_active(Layer::Autocast, s[0].enabled || s[1].enabled);
}

void check_device(DeviceType d) {
  if (slot(d) < 0)
    fail<ValueError>("autocast",
                     "device_type must be cpu or cuda (not auto: autocast follows "
                     "where each input lives)");
}

void check_dtype(DType t) {
  if (t != kFloat16 && t != kBFloat16)
    fail<DTypeError>("autocast", "dtype must be float16 or bfloat16, got {}", dtype_name(t));
}

// ---- the cast cache ------------------------------------------------------------------------
// One entry per (parameter, view geometry, dtype): the cast of the parameter, or of a view of
// it (linear transposes its weight before the matmul sees it). The entry holds the parameter,
// so its address cannot name another tensor while the entry lives, and its version, so an
// in-place update in the region misses instead of reusing a stale cast.
struct CachedCast {
  Tensor source;  // the parameter
  Shape shape;
  Strides strides;
  int64_t offset;
  DType to;
  uint64_t version;
  Tensor cast;
};
thread_local std::unordered_multimap<const TensorImpl*, CachedCast> t_cache;
thread_local int t_nesting = 0;

bool same_view(const CachedCast& c, const Tensor& t, DType to) {
  return c.to == to && c.shape == t.shape() && c.strides == t.strides() && c.offset == t.offset();
}

// The cast of t to `to`, from the cache when t is (a view of) a parameter. Only while a
// region is open and grad mode is on (a cast made under no_grad has no history to reuse), and
// not under vmap or tracing, whose tensors belong to one transform call.
Tensor cached_cast(const Tensor& t, DType to, const AutocastState& st) {
  const bool can_cache = t_nesting > 0 && st.cache_enabled && t.dtype() == kFloat32 &&
                         autograd::is_grad_enabled() && !layer_active(Layer::Vmap) &&
                         !layer_active(Layer::Tracing);
  const Tensor source = can_cache ? autograd::parameter_source(t) : Tensor();
  if (!source.defined()) return cast(t, to);
  auto [first, last] = t_cache.equal_range(&source.impl());
  for (auto it = first; it != last; ++it) {
    CachedCast& e = it->second;
    if (!same_view(e, t, to)) continue;
    // The parameter changed in place (an optimizer step inside the region): recast into the
    // same entry, so a training loop run under one region does not grow the cache each step.
    if (e.version != source.version()) {
      e.cast = cast(t, to);
      e.version = source.version();
    }
    return e.cast;
  }
  Tensor c = cast(t, to);
  t_cache.emplace(&source.impl(),
                  CachedCast{source, t.shape(), t.strides(), t.offset(), to, source.version(), c});
  return c;
}

// ---- the funnel layer ----------------------------------------------------------------------
bool is_half(DType t) { return t == kFloat16 || t == kBFloat16; }

// The enabled state of the device type t lives on, or null.
const AutocastState* state_of(const Tensor& t, const AutocastSnapshot& s) {
  if (!t.defined() || !is_floating(t.dtype())) return nullptr;
  const int i = slot(t.device().type);
  return i >= 0 && s[static_cast<size_t>(i)].enabled ? &s[static_cast<size_t>(i)] : nullptr;
}

// The widest dtype of the inputs the policy applies to.
DType widest(Inputs in, const AutocastSnapshot& s) {
  std::optional<DType> w;
  for (const Tensor& t : in)
    if (state_of(t, s)) w = w ? promote_types(*w, t.dtype()) : t.dtype();
  return w.value_or(kFloat32);
}

DType target(CastPolicy pol, const Tensor& t, const AutocastState& st, DType wide) {
  const DType d = t.dtype();
  if (pol == Lower) return d == kFloat64 ? d : st.dtype;  // float64 is left alone, as PyTorch
  if (pol == Float32) return is_half(d) ? kFloat32 : d;
  return wide;
}

std::vector<Tensor> autocast_layer(const Primitive& p, Inputs in, const Attrs& a) {
  const AutocastSnapshot states = t_states;
  // The casts, the rules and kernels below (vmap batch rules, jvp rules, kernels that call
  // ops) see no autocast: the policy applies to the primitives the program calls, once.
  NoAutocast below;
  const CastPolicy pol = policy_of(p);
  // In-place primitives keep their destination's dtype; an explicit dtype attr (sum(x,
  // dtype=...)) is the caller's choice.
  if (pol == Keep || p.has(kMutatesInput0) || (pol == Float32 && a.has("dtype")))
    return redispatch(p, in, a, Layer::Autocast);
  const DType wide = pol == Promote ? widest(in, states) : kFloat32;
  std::vector<Tensor> cast_in;
  for (size_t i = 0; i < in.size(); ++i) {
    const AutocastState* st = state_of(in[i], states);
    if (!st) continue;
    const DType to = target(pol, in[i], *st, wide);
    if (to == in[i].dtype()) continue;
    if (cast_in.empty()) cast_in.assign(in.begin(), in.end());
    // An ordinary cast (recorded by autograd, batched by vmap); lowered parameters are cached.
    cast_in[i] = pol == Lower ? cached_cast(in[i], to, *st) : cast(in[i], to);
  }
  return redispatch(p, cast_in.empty() ? in : Inputs(cast_in), a, Layer::Autocast);
}

const bool g_installed = [] {
  set_layer_handler(Layer::Autocast, autocast_layer);
  return true;
}();

}  // namespace

// ---- public API ----------------------------------------------------------------------------

AutocastState autocast_state(DeviceType device) {
  const int i = slot(device);
  return i < 0 ? AutocastState{} : t_states[static_cast<size_t>(i)];
}

void set_autocast_state(DeviceType device, AutocastState state) {
  check_device(device);
  check_dtype(state.dtype);
  AutocastSnapshot s = t_states;
  s[static_cast<size_t>(slot(device))] = state;
  set_all(s);
}

bool is_autocast_enabled(DeviceType device) { return autocast_state(device).enabled; }
DType autocast_dtype(DeviceType device) { return autocast_state(device).dtype; }

AutocastSnapshot autocast_snapshot() { return t_states; }

Autocast::Autocast(AutocastOptions o) : device_(o.device) {
  check_device(o.device);
  prev_ = autocast_state(o.device);
  if (o.dtype) check_dtype(*o.dtype);
  set_autocast_state(o.device, {o.enabled, o.dtype.value_or(prev_.dtype), o.cache_enabled});
  autocast_increment_nesting();
}

Autocast::~Autocast() {
  AutocastSnapshot s = t_states;
  s[static_cast<size_t>(slot(device_))] = prev_;
  set_all(s);
  autocast_decrement_nesting();
}

int autocast_increment_nesting() { return ++t_nesting; }

int autocast_decrement_nesting() {
  if (t_nesting > 0 && --t_nesting == 0) clear_autocast_cache();
  return t_nesting;
}

void clear_autocast_cache() { t_cache.clear(); }
size_t autocast_cache_size() { return t_cache.size(); }

AutocastStateGuard::AutocastStateGuard(const AutocastSnapshot& states) : prev_(t_states) {
  set_all(states);
}
AutocastStateGuard::~AutocastStateGuard() { set_all(prev_); }

NoAutocast::NoAutocast()
    : AutocastStateGuard({AutocastState{false, t_states[0].dtype, t_states[0].cache_enabled},
                          AutocastState{false, t_states[1].dtype, t_states[1].cache_enabled}}) {}

bool unifies(const Primitive& primitive, std::initializer_list<Tensor> inputs) {
  const CastPolicy pol = policy_of(primitive);
  if (pol != Lower && pol != Promote) return false;
  for (const Tensor& t : inputs) {
    if (!t.defined()) continue;
    if (!state_of(t, t_states) || (pol == Lower && t.dtype() == kFloat64)) return false;
  }
  return true;
}

CastPolicy cast_policy(std::string_view primitive) {
  for (const PolicyRow& row : kPolicy)
    if (primitive == row.primitive) return row.policy;
  return Keep;
}

std::string_view policy_name(CastPolicy p) {
  for (const auto& [policy, name] : kPolicyNames)
    if (policy == p) return name;
  return "unknown";
}

}  // namespace tessera::amp
