// Tensor metadata, construction and validation.
#include "tessera/core/tensor.h"

#include <fmt/format.h>

namespace tessera {

TensorIndex::TensorIndex(const Tensor& t) : v_(std::make_shared<Tensor>(t)) {}

Strides contiguous_strides(const Shape& shape) {
  Strides s(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    s[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
  return s;
}

int64_t checked_numel(const Shape& shape, std::string_view op) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail<ValueError>(op, "negative dimension {} in shape {}", d, shape_str(shape));
    if (__builtin_mul_overflow(n, d, &n))
      fail<ValueError>(op, "shape {} has more elements than int64 can count", shape_str(shape));
  }
  return n;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, std::string_view op) {
  int64_t n = std::max<int64_t>(ndim, 1);  // a 0-d tensor accepts dim 0 and -1, like PyTorch
  if (dim < -n || dim >= n)
    fail<IndexError>(op, "dimension {} out of range for a {}-d tensor (expected [{}, {}])", dim,
                     ndim, -n, n - 1);
  return dim < 0 ? dim + n : dim;
}

std::string shape_str(const Shape& s) {
  if (s.size() == 1) return fmt::format("({},)", s[0]);
  return fmt::format("({})", fmt::join(s, ", "));
}

namespace {
// Byte extent [lo, hi) a view touches relative to the storage start; checks it fits.
void check_view_fits(const Storage& st, const Shape& shape, const Strides& strides, int64_t offset,
                     DType dtype) {
  if (shape.size() != strides.size())
    fail<ShapeError>("as_strided", "shape {} and strides have different lengths ({} vs {})",
                     shape_str(shape), shape.size(), strides.size());
  if (checked_numel(shape, "as_strided") == 0) return;
  int64_t lo = offset, hi = offset;
  for (size_t i = 0; i < shape.size(); ++i) {
    int64_t span = 0;
    if (__builtin_mul_overflow(shape[i] - 1, strides[i], &span))
      fail<ValueError>("as_strided", "stride overflow in shape {}", shape_str(shape));
    (span < 0 ? lo : hi) += span;
  }
  const auto item = static_cast<int64_t>(itemsize(dtype));
  if (lo < 0 || (hi + 1) * item > static_cast<int64_t>(st.nbytes()))
    fail<IndexError>("as_strided",
                     "view with shape {}, strides ({}), offset {} reaches elements [{}, {}] of a "
                     "storage holding {} elements",
                     shape_str(shape), fmt::join(strides, ", "), offset, lo, hi,
                     static_cast<int64_t>(st.nbytes()) / item);
}
}  // namespace

Tensor Tensor::make(std::shared_ptr<Storage> storage, Shape shape, Strides strides, int64_t offset,
                    DType dtype) {
  check_view_fits(*storage, shape, strides, offset, dtype);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::empty(Shape shape, DType dtype, Device device) {
  if (device.type == DeviceType::Auto) device = Device::cpu();
  int64_t n = checked_numel(shape, "empty");
  int64_t bytes = 0;
  if (__builtin_mul_overflow(n, static_cast<int64_t>(tessera::itemsize(dtype)), &bytes))
    fail<ValueError>("empty", "shape {} of {} needs more bytes than int64 can count",
                     shape_str(shape), dtype_name(dtype));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<size_t>(bytes), device);
  impl->strides = contiguous_strides(shape);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape()) n *= d;
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  const auto& sh = shape();
  const auto& st = strides();
  for (size_t i = sh.size(); i-- > 0;) {
    if (sh[i] == 1) continue;
    if (sh[i] == 0) return true;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  if (!defined()) fail<ValueError>("data_ptr", "tensor is undefined");
  if (impl().batched)
    fail<ValueError>("data_ptr",
                     "a tensor inside vmap (logical shape {}) has no data of its own: return it "
                     "from the vmapped function instead of reading it",
                     shape_str(shape()));
  const auto& st = *storage();
  if (st.released())
    fail<ValueError>("data_ptr", "the storage of this tensor (shape {}) was freed",
                     shape_str(shape()));
  return static_cast<char*>(st.data()) + offset() * static_cast<int64_t>(itemsize());
}

void Tensor::check_dtype_for_access(DType want) const {
  if (dtype() != want)
    fail<DTypeError>("data_ptr", "tensor has dtype {} but {} was requested", dtype_name(dtype()),
                     dtype_name(want));
}

}  // namespace tessera
