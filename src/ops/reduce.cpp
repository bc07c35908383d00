// PLACEHOLDER: replaced by the real reduce family.
#include "tessera/ops/reduce.h"
#include "tessera/ops/primitive.h"
#include "ops/internal.h"

namespace tessera {
void register_reduce_prims(Registry&) {}
Tensor mean(const Tensor&, Dims, bool) { fail<NotImplementedError>("mean", "not implemented yet"); }
Tensor max(const Tensor&) { fail<NotImplementedError>("max", "not implemented yet"); }
Tensor min(const Tensor&) { fail<NotImplementedError>("min", "not implemented yet"); }
Tensor sum(const Tensor&, Dims, bool, std::optional<DType>) { fail<NotImplementedError>("sum", "not implemented yet"); }
Tensor argmax(const Tensor&, std::optional<int64_t>, bool) { fail<NotImplementedError>("argmax", "not implemented yet"); }
}  // namespace tessera
