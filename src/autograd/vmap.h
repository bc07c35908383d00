#pragma once
// vmap internals shared with the function transforms: logical (wrapped) tensors and the
// canonical physical layout of a tensor across all active vmap levels.
#include "autograd/graph.h"

namespace tessera::autograd {

/// The batch info of a logical tensor inside vmap, or null.
inline const Batched* batch_of(const Tensor& t) {
  return t.defined() && t.impl().batched ? t.impl().autograd->batch.get() : nullptr;
}
/// The logical tensor for `value` batched along `bdim` at `level`.
Tensor wrap_batched(const Tensor& value, int level, int64_t bdim);
/// Active vmap levels on this thread (1 = outermost), with their batch sizes.
int vmap_depth();
int64_t vmap_batch_size(int level);
/// Opens a vmap level with this batch size; close with pop_vmap_level.
int push_vmap_level(int64_t batch);
void pop_vmap_level(int level);

/// t as a plain tensor with one leading dim per active vmap level ([B_1, ..., B_n, logical
/// shape...]), expanding where t is not batched at a level. Views, so gradients flow.
Tensor to_canonical(const Tensor& t);
/// The inverse: a canonical physical tensor as the logical tensor at every active level.
Tensor from_canonical(const Tensor& phys);

}  // namespace tessera::autograd
