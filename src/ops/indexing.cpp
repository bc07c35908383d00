// PLACEHOLDER: replaced by the real indexing family.
#include "tessera/ops/indexing.h"
#include "tessera/ops/primitive.h"
#include "ops/internal.h"

namespace tessera {
void register_indexing_prims(Registry&) {}
Tensor masked_fill(const Tensor&, const Tensor&, const Scalar&) { fail<NotImplementedError>("masked_fill", "not implemented yet"); }
Tensor detail::index_expr(const Tensor&, const std::vector<TensorIndex>&) { fail<NotImplementedError>("detail::index_expr", "not implemented yet"); }
void detail::index_put_expr(Tensor&, const std::vector<TensorIndex>&, const Tensor&) { fail<NotImplementedError>("detail::index_put_expr", "not implemented yet"); }
}  // namespace tessera
