#pragma once
// Tensor: a cheap shared handle to (storage, shape, strides, offset, dtype, autograd metadata).
// Views share storage. Every computation goes through the dispatch funnel (runtime/dispatch.h).
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "tessera/core/device.h"
#include "tessera/core/dtype.h"
#include "tessera/core/scalar.h"
#include "tessera/core/storage.h"

namespace tessera {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;  // in elements

class Tensor;
struct AutogradMeta;  // defined by the autograd layer

/// Python's `None` in index expressions (a new axis) and open slice bounds.
struct NoneT {};
inline constexpr NoneT None{};
/// Python's `...` in index expressions.
struct EllipsisT {};
inline constexpr EllipsisT Ellipsis{};

/// A slice bound: an integer or None.
struct SliceBound {
  std::optional<int64_t> v;
  SliceBound(NoneT) {}             // NOLINT(google-explicit-constructor)
  SliceBound(int64_t x) : v(x) {}  // NOLINT(google-explicit-constructor)
  SliceBound(int x) : v(x) {}      // NOLINT(google-explicit-constructor)
};
/// Python's start:stop:step.
struct Slice {
  std::optional<int64_t> start, stop, step;
  Slice(SliceBound b = None, SliceBound e = None, SliceBound s = None)  // NOLINT
      : start(b.v), stop(e.v), step(s.v) {}
};

/// One entry of an index expression: int, Slice, None, Ellipsis, or an integer/bool Tensor.
class TensorIndex {
 public:
  TensorIndex(int64_t i) : v_(i) {}       // NOLINT(google-explicit-constructor)
  TensorIndex(int i) : v_(int64_t{i}) {}  // NOLINT(google-explicit-constructor)
  TensorIndex(Slice s) : v_(s) {}         // NOLINT(google-explicit-constructor)
  TensorIndex(NoneT n) : v_(n) {}         // NOLINT(google-explicit-constructor)
  TensorIndex(EllipsisT e) : v_(e) {}     // NOLINT(google-explicit-constructor)
  TensorIndex(const Tensor& t);           // NOLINT(google-explicit-constructor)
  const auto& value() const { return v_; }

 private:
  std::variant<int64_t, Slice, NoneT, EllipsisT, std::shared_ptr<Tensor>> v_;
};

/// The shared state behind a Tensor handle.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = kFloat32;
  std::shared_ptr<AutogradMeta> autograd;  // null until autograd needs it
  bool batched = false;  // a logical tensor inside vmap: its values live in autograd->batch
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  /// Builds a tensor over existing storage after validating that the view fits inside it.
  static Tensor make(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset,
                     DType dtype);
  /// A new contiguous tensor with uninitialized memory.
  static Tensor empty(Shape shape, DType dtype = kFloat32, Device device = Device::cpu());

  // ---- metadata -------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t ndim() const { return dim(); }
  /// Size of dim d (negative d counts from the end).
  int64_t size(int64_t d) const;
  int64_t stride(int64_t d) const;
  int64_t numel() const;
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t itemsize() const { return tessera::itemsize(dtype()); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * itemsize(); }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  /// Address of element [0, ..., 0]; T must match dtype (checked).
  template <class T>
  T* data_ptr() const {
    check_dtype_for_access(dtype_v<T>);
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  TensorImpl& impl() const { return *impl_; }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  /// True when both handles point to the same tensor object.
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  uint64_t version() const { return storage()->version(); }

  // ---- values ---------------------------------------------------------------------------
  /// The single element as T (throws unless numel()==1).
  template <class T>
  T item() const {
    return item().to<T>();
  }
  Scalar item() const;
  /// A numpy-like printout.
  std::string str() const;
  /// Contiguous copy of the elements, converted to T.
  template <class T>
  std::vector<T> to_vector() const;

  // ---- views (share storage) ------------------------------------------------------------
  Tensor reshape(Shape shape) const;  ///< a view when strides allow, else a copy; one dim may be -1
  Tensor view(Shape shape) const;     ///< like reshape but never copies (ShapeError instead)
  Tensor permute(std::vector<int64_t> dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;   ///< transpose of a 0/1/2-d tensor
  Tensor mT() const;  ///< swaps the last two dims
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> stop,
               int64_t step = 1) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor expand(Shape shape) const;  ///< -1 keeps a dim
  Tensor broadcast_to(Shape shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, Shape sizes) const;
  Tensor diagonal(int64_t offset = 0, int64_t dim1 = 0, int64_t dim2 = 1) const;
  Tensor as_strided(Shape shape, Strides strides, std::optional<int64_t> offset = {}) const;
  Tensor operator[](int64_t i) const { return select(0, i); }
  /// Python-style indexing: t.index({0, Slice(1, None, 2), None, Ellipsis, idx}).
  Tensor index(std::initializer_list<TensorIndex> idx) const;
  Tensor index(const std::vector<TensorIndex>& idx) const;

  // ---- copies and conversion ------------------------------------------------------------
  Tensor contiguous() const;  ///< self if already contiguous
  Tensor clone() const;
  Tensor to(DType dtype) const;  ///< self if same dtype
  Tensor to(Device device) const;
  /// non_blocking: a copy between pinned host memory and a GPU is queued on the current stream
  /// without waiting (a CUDA tensor moved to the CPU lands in pinned memory for that); the
  /// host side must not be read or changed before that stream is synchronized. Other copies
  /// wait as usual.
  Tensor to(Device device, bool non_blocking) const;

  // ---- in-place (bump the version counter) -----------------------------------------------
  /// Broadcasts src, converts dtype; non_blocking as for to(device, non_blocking).
  Tensor& copy_(const Tensor& src, bool non_blocking = false);
  Tensor& fill_(const Scalar& v);
  Tensor& zero_();
  Tensor& add_(const Tensor& o);
  Tensor& add_(const Scalar& o);
  Tensor& sub_(const Tensor& o);
  Tensor& sub_(const Scalar& o);
  Tensor& mul_(const Tensor& o);
  Tensor& mul_(const Scalar& o);
  Tensor& div_(const Tensor& o);
  Tensor& div_(const Scalar& o);
  Tensor& clamp_(std::optional<Scalar> lo, std::optional<Scalar> hi);
  Tensor& masked_fill_(const Tensor& mask, const Scalar& v);
  /// Assignment through an index expression: t[idx] = value (broadcast).
  Tensor& index_put_(const std::vector<TensorIndex>& idx, const Tensor& value);
  Tensor& index_put_(const std::vector<TensorIndex>& idx, const Scalar& value);

  // ---- autograd (src/autograd; free functions in autograd/autograd.h) ----------------------
  bool requires_grad() const;
  /// Marks a leaf as requiring grad (floating and complex dtypes only).
  Tensor& requires_grad_(bool on = true);
  /// True for tensors not produced by a recorded op (those that require grad collect .grad).
  bool is_leaf() const;
  /// The accumulated gradient of a leaf (or of a tensor that retains grad); undefined before.
  Tensor grad() const;
  void set_grad(const Tensor& g);
  /// Gradients of this tensor with respect to the leaves, accumulated into their .grad.
  /// A non-scalar tensor needs `gradient` (the vector of the vector-Jacobian product).
  void backward(const Tensor& gradient = {}, bool retain_graph = false,
                bool create_graph = false) const;
  /// Shares storage, has no history and does not require grad.
  Tensor detach() const;
  /// Keeps .grad for a non-leaf after backward.
  void retain_grad() const;
  bool retains_grad() const;
  /// Calls hook with the gradient of this tensor when it is computed; a defined return value
  /// replaces the gradient. Returns an id for remove_hook.
  int64_t register_hook(std::function<Tensor(const Tensor&)> hook) const;
  void remove_hook(int64_t id) const;

  // ---- common reductions as methods ------------------------------------------------------
  Tensor sum(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor mean(std::vector<int64_t> dims = {}, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  Tensor argmax(std::optional<int64_t> dim = {}, bool keepdim = false) const;
  Tensor abs() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor matmul(const Tensor& o) const;

 private:
  void check_dtype_for_access(DType want) const;
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

/// Row-major strides for a shape.
Strides contiguous_strides(const Shape& shape);
/// Product of the sizes; throws ValueError on negative sizes or int64 overflow.
int64_t checked_numel(const Shape& shape, std::string_view op);
/// Wraps a possibly negative dim into [0, ndim); throws IndexError naming op.
int64_t wrap_dim(int64_t dim, int64_t ndim, std::string_view op);
/// "(2, 3)" for error messages.
std::string shape_str(const Shape& s);

}  // namespace tessera

namespace tessera {
template <class T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).to(dtype_v<T>).contiguous();
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}
}  // namespace tessera
