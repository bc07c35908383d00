// PLACEHOLDER: replaced by the real elementwise family.
#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "ops/internal.h"

namespace tessera {
void register_elementwise_prims(Registry&) {}
Tensor add(const Tensor&, const Scalar&) { fail<NotImplementedError>("add", "not implemented yet"); }
Tensor add(const Tensor&, const Tensor&) { fail<NotImplementedError>("add", "not implemented yet"); }
Tensor sub(const Tensor&, const Tensor&) { fail<NotImplementedError>("sub", "not implemented yet"); }
Tensor sub(const Tensor&, const Scalar&) { fail<NotImplementedError>("sub", "not implemented yet"); }
Tensor mul(const Tensor&, const Tensor&) { fail<NotImplementedError>("mul", "not implemented yet"); }
Tensor mul(const Tensor&, const Scalar&) { fail<NotImplementedError>("mul", "not implemented yet"); }
Tensor div(const Tensor&, const Tensor&) { fail<NotImplementedError>("div", "not implemented yet"); }
Tensor div(const Tensor&, const Scalar&) { fail<NotImplementedError>("div", "not implemented yet"); }
Tensor clamp(const Tensor&, std::optional<Scalar>, std::optional<Scalar>) { fail<NotImplementedError>("clamp", "not implemented yet"); }
Tensor abs(const Tensor&) { fail<NotImplementedError>("abs", "not implemented yet"); }
Tensor log(const Tensor&) { fail<NotImplementedError>("log", "not implemented yet"); }
Tensor exp(const Tensor&) { fail<NotImplementedError>("exp", "not implemented yet"); }
Tensor sqrt(const Tensor&) { fail<NotImplementedError>("sqrt", "not implemented yet"); }
}  // namespace tessera
