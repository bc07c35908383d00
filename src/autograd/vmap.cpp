// The funnel's vmap layer. Inside vmap, functions see logical tensors (the example shape);
// each primitive call on them is turned into one call on the physical tensors through the
// primitive's batch rule, or, without a rule, a loop over the examples and a stack.
#include "autograd/vmap.h"

#include "autograd/rules.h"
#include "tessera/ops/shape.h"

namespace tessera::autograd {
namespace {

thread_local std::vector<int64_t> t_batch_sizes;  // index level - 1

// The physical tensors and batch dims of a call at `level` (-1 = not batched there).
int top_level(Inputs in) {
  int best = 0;
  for (const Tensor& t : in)
    if (const Batched* b = batch_of(t)) best = std::max(best, b->level);
  return best;
}

std::vector<Tensor> loop_and_stack(const Primitive& p, Inputs phys, std::span<const int64_t> bdims,
                                   const Attrs& a, std::vector<int64_t>& out_bdims) {
  if (p.has(kDynamicShape))
    fail<NotImplementedError>(p.name, "vmap over an op whose output size depends on the data");
  const int64_t batch = rules::batch_size(phys, bdims, p.name);
  std::vector<std::vector<Tensor>> per_output;
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Tensor> args(phys.begin(), phys.end());
    for (size_t i = 0; i < args.size(); ++i)
      if (bdims[i] >= 0) args[i] = phys[i].select(bdims[i], b);
    std::vector<Tensor> out = dispatch(p, args, a);
    per_output.resize(out.size());
    for (size_t o = 0; o < out.size(); ++o) per_output[o].push_back(out[o]);
  }
  if (p.has(kMutatesInput0)) {  // the loop wrote each example through its view
    out_bdims = {bdims[0]};
    return {phys[0]};
  }
  std::vector<Tensor> out;
  for (auto& examples : per_output) out.push_back(stack(examples, 0));
  out_bdims.assign(out.size(), 0);
  return out;
}

std::vector<Tensor> vmap_layer(const Primitive& p, Inputs in, const Attrs& a) {
  const int level = top_level(in);
  if (level == 0) return redispatch(p, in, a, Layer::Vmap);
  std::vector<Tensor> phys(in.begin(), in.end());
  std::vector<int64_t> bdims(in.size(), -1);
  for (size_t i = 0; i < in.size(); ++i)
    if (const Batched* b = batch_of(in[i]); b && b->level == level) {
      phys[i] = b->value;
      bdims[i] = b->bdim;
    }
  if (p.has(kMutatesInput0) && bdims[0] < 0)
    fail<ValueError>(p.name,
                     "vmap: cannot write a batched value into an unbatched tensor in place");
  std::vector<int64_t> out_bdims;
  std::vector<Tensor> out =
      p.batch ? p.batch(phys, bdims, a, out_bdims) : loop_and_stack(p, phys, bdims, a, out_bdims);
  if (p.has(kMutatesInput0)) return {in[0]};
  for (size_t o = 0; o < out.size(); ++o)
    if (out_bdims[o] >= 0) out[o] = wrap_batched(out[o], level, out_bdims[o]);
  return out;
}

const bool g_installed = [] {
  set_layer_handler(Layer::Vmap, vmap_layer);
  return true;
}();

}  // namespace

Tensor wrap_batched(const Tensor& value, int level, int64_t bdim) {
  Shape shape = value.shape();
  Strides strides = value.strides();
  shape.erase(shape.begin() + bdim);
  strides.erase(strides.begin() + bdim);
  auto impl = std::make_shared<TensorImpl>(
      TensorImpl{value.storage(), std::move(shape), std::move(strides), value.offset(),
                 value.dtype(), std::make_shared<AutogradMeta>(), true});
  impl->autograd->batch = std::make_shared<Batched>(Batched{level, bdim, value});
  return Tensor(std::move(impl));
}

int vmap_depth() { return static_cast<int>(t_batch_sizes.size()); }
int64_t vmap_batch_size(int level) { return t_batch_sizes.at(static_cast<size_t>(level - 1)); }

int push_vmap_level(int64_t batch) {
  t_batch_sizes.push_back(batch);
  set_layer_active(Layer::Vmap, true);
  return vmap_depth();
}

void pop_vmap_level(int level) {
  t_batch_sizes.resize(static_cast<size_t>(level - 1));
  set_layer_active(Layer::Vmap, !t_batch_sizes.empty());
}

namespace {
// t seen at `level` -> plain tensor [B_1..B_level, logical...].
Tensor canonical_at(const Tensor& t, int level) {
  if (level == 0) {
    if (batch_of(t)) fail<ValueError>("vmap", "a batched tensor escaped its vmap level");
    return t;
  }
  const Batched* b = batch_of(t);
  if (b && b->level == level) {
    Tensor c = canonical_at(b->value, level - 1);
    return movedim(c, level - 1 + b->bdim, level - 1);
  }
  Tensor c = canonical_at(t, level - 1);
  Shape s = c.shape();
  s.insert(s.begin() + level - 1, vmap_batch_size(level));
  return c.unsqueeze(level - 1).expand(s);
}
}  // namespace

Tensor to_canonical(const Tensor& t) { return canonical_at(t, vmap_depth()); }

Tensor from_canonical(const Tensor& phys) {
  Tensor w = phys;
  for (int level = 1; level <= vmap_depth(); ++level) w = wrap_batched(w, level, 0);
  return w;
}

}  // namespace tessera::autograd
