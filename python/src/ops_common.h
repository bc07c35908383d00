#pragma once
// Pieces shared by the op binding files (ops*.cpp): binding an op both as a module function and
// as a Tensor method, Python numbers as operands, work sizes for the GIL policy, and the
// tessera.return_types named tuples.
#include <algorithm>
#include <vector>

#include "bind.h"

namespace tessera::py::ops {

/// Binds f(input, ...) as the module function `name` and as the method Tensor.name(self, ...).
/// `extra` holds the annotations of the arguments after `input`, then the docstring.
template <class F, class... Extra>
void def_both(nb::module_& m, nb::class_<Tensor>& c, const char* name, F f, const Extra&... extra) {
  m.def(name, f, nb::arg("input"), extra...);
  c.def(name, f, extra...);
}

/// A Python number as a 0-d tensor of the dtype a binary op with t gives, so the value is not
/// rounded before the op (0.1 next to a float64 tensor stays float64) and the result dtype
/// follows PyTorch's wrapped-number rule.
inline Tensor operand(const Tensor& t, const Scalar& s) {
  return scalar_tensor(s, result_type(t, s));
}

/// Elements touched by a call, for ReleaseGilIfLarge (outputs of broadcasts are ignored: a
/// rough size is enough to decide whether releasing the GIL is worth it).
inline int64_t work(const Tensor& a) { return a.numel(); }
inline int64_t work(const Tensor& a, const Tensor& b) { return std::max(a.numel(), b.numel()); }
/// The element count of a shape, saturating instead of throwing (the op reports bad sizes).
int64_t work(const Shape& s);

/// The named tuples of tessera.return_types (tuple subclasses with .values and .indices, like
/// torch.return_types).
enum class Named { Max, Min, Sort, Topk };
using TensorPair = nb::typed<nb::tuple, Tensor, Tensor>;
TensorPair values_indices(Named kind, Tensor values, Tensor indices);
/// A Python tuple of tensors (PyTorch returns tuples from split, chunk, unbind, ...).
using TensorTuple = nb::typed<nb::tuple, Tensor, nb::ellipsis>;
TensorTuple tensor_tuple(std::vector<Tensor> v);

// One per file; init_ops (ops.cpp) calls them in order.
void init_return_types(nb::module_& m);
void init_creation(nb::module_& m, nb::class_<Tensor>& c);     // ops_creation.cpp
void init_elementwise(nb::module_& m, nb::class_<Tensor>& c);  // ops_elementwise.cpp
void init_reduce(nb::module_& m, nb::class_<Tensor>& c);       // ops_reduce.cpp
void init_shape(nb::module_& m, nb::class_<Tensor>& c);        // ops_shape.cpp
void init_indexing(nb::module_& m, nb::class_<Tensor>& c);     // ops_index.cpp: + sort, linalg

}  // namespace tessera::py::ops
