// Tensor methods: each is a thin call into the public ops (which go through the funnel).
#include <algorithm>

#include "../ops/internal.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera {
namespace {

Tensor view_call(const char* name, const Tensor& x, Attrs attrs) {
  return dispatch1(prim(name), {x}, attrs);
}

// Resolves one -1 in a target shape against numel.
Shape infer_size(Shape shape, int64_t numel, std::string_view op) {
  int64_t known = 1, infer_at = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer_at >= 0)
        fail<ShapeError>(op, "only one dimension can be -1 in {}", shape_str(shape));
      infer_at = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      fail<ShapeError>(op, "invalid size {} in shape {}", shape[i], shape_str(shape));
    } else {
      known *= shape[i];
    }
  }
  if (infer_at >= 0) {
    if (known == 0 || numel % known != 0)
      fail<ShapeError>(op, "shape {} is invalid for input of size {}", shape_str(shape), numel);
    shape[infer_at] = numel / known;
  } else if (known != numel) {
    fail<ShapeError>(op, "shape {} is invalid for input of size {}", shape_str(shape), numel);
  }
  return shape;
}

}  // namespace

namespace detail {
bool can_cast(DType from, DType to) {
  if (is_complex(from) && !is_complex(to)) return false;
  if (is_floating(from) && is_integral(to, true)) return false;
  if (from != kBool && to == kBool) return false;
  return true;
}
}  // namespace detail

Tensor Tensor::view(Shape shape) const {
  return view_call("view", *this, {{"shape", infer_size(std::move(shape), numel(), "view")}});
}

Tensor Tensor::reshape(Shape shape) const {
  shape = infer_size(std::move(shape), numel(), "reshape");
  try {
    return view(shape);
  } catch (const ShapeError&) {
    return contiguous().view(shape);
  }
}

Tensor Tensor::permute(std::vector<int64_t> dims) const {
  return view_call("permute", *this, {{"dims", std::move(dims)}});
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) return *this;
  std::vector<int64_t> dims(dim());
  for (int64_t i = 0; i < dim(); ++i) dims[i] = i;
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::t() const {
  if (dim() > 2)
    fail<ShapeError>("t", "expects a tensor with <= 2 dims, got shape {}", shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::mT() const {
  if (dim() < 2)
    fail<ShapeError>("mT", "expects at least 2 dims, got shape {}", shape_str(shape()));
  return transpose(-2, -1);
}

Tensor Tensor::slice(int64_t d, std::optional<int64_t> start, std::optional<int64_t> stop,
                     int64_t step) const {
  if (dim() == 0) fail<IndexError>("slice", "cannot slice a 0-d tensor");
  d = wrap_dim(d, dim(), "slice");
  if (step <= 0) fail<ValueError>("slice", "step must be positive, got {}", step);
  const int64_t n = shape()[d];
  auto clamp_bound = [n](std::optional<int64_t> v, int64_t dflt) {
    if (!v) return dflt;
    int64_t x = *v < 0 ? *v + n : *v;
    return std::clamp<int64_t>(x, 0, n);
  };
  int64_t b = clamp_bound(start, 0), e = clamp_bound(stop, n);
  return view_call("slice", *this,
                   {{"dim", d}, {"start", b}, {"stop", std::max(b, e)}, {"step", step}});
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  const int64_t n = shape()[d];
  if (start < 0) start += n;
  if (start < 0 || length < 0 || start + length > n)
    fail<IndexError>("narrow", "start {} + length {} exceeds dim {} of size {}", start, length, d,
                     n);
  return view_call("slice", *this,
                   {{"dim", d}, {"start", start}, {"stop", start + length}, {"step", int64_t{1}}});
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  return view_call("select", *this, {{"dim", d}, {"index", index}});
}

Tensor Tensor::expand(Shape shape) const {
  return view_call("expand", *this, {{"shape", std::move(shape)}});
}
Tensor Tensor::broadcast_to(Shape shape) const { return expand(std::move(shape)); }

Tensor Tensor::squeeze() const {
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < dim(); ++d)
    if (shape()[d] == 1) dims.push_back(d);
  return view_call("squeeze", *this, {{"dims", dims}});
}

Tensor Tensor::squeeze(int64_t d) const {
  return view_call("squeeze", *this,
                   {{"dims", std::vector<int64_t>{wrap_dim(d, dim(), "squeeze")}}});
}

Tensor Tensor::unsqueeze(int64_t d) const { return view_call("unsqueeze", *this, {{"dim", d}}); }

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = wrap_dim(start, dim(), "flatten");
  end = wrap_dim(end, dim(), "flatten");
  if (start > end) fail<ValueError>("flatten", "start_dim {} comes after end_dim {}", start, end);
  Shape s(shape().begin(), shape().begin() + start);
  int64_t n = 1;
  for (int64_t i = start; i <= end; ++i) n *= shape()[i];
  s.push_back(n);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::unflatten(int64_t d, Shape sizes) const {
  d = wrap_dim(d, dim(), "unflatten");
  sizes = infer_size(std::move(sizes), shape()[d], "unflatten");
  Shape s(shape().begin(), shape().begin() + d);
  s.insert(s.end(), sizes.begin(), sizes.end());
  s.insert(s.end(), shape().begin() + d + 1, shape().end());
  return view(s);
}

Tensor Tensor::diagonal(int64_t offset, int64_t d1, int64_t d2) const {
  return view_call("diagonal", *this, {{"offset", offset}, {"dim1", d1}, {"dim2", d2}});
}

Tensor Tensor::as_strided(Shape shape, Strides strides, std::optional<int64_t> off) const {
  return view_call("as_strided", *this,
                   {{"shape", std::move(shape)},
                    {"strides", std::move(strides)},
                    {"offset", off.value_or(offset())}});
}

Tensor Tensor::index(std::initializer_list<TensorIndex> idx) const {
  return detail::index_expr(*this, std::vector<TensorIndex>(idx));
}
Tensor Tensor::index(const std::vector<TensorIndex>& idx) const {
  return detail::index_expr(*this, idx);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }
Tensor Tensor::clone() const { return dispatch1(prim("clone"), {*this}); }
Tensor Tensor::to(DType dtype) const { return cast(*this, dtype); }

Tensor Tensor::to(Device device) const { return to(device, false); }

Tensor Tensor::to(Device device, bool non_blocking) const {
  if (device.type == DeviceType::Auto || device == this->device()) return *this;
  // An asynchronous download needs page-locked memory to land in.
  Tensor out = non_blocking && device.is_cpu() && this->device().is_cuda()
                   ? cuda::empty_pinned(shape(), dtype())
                   : Tensor::empty(shape(), dtype(), device);  // NotBuiltError without it
  return out.copy_(*this, non_blocking);
}

Tensor& Tensor::copy_(const Tensor& src, bool non_blocking) {
  // A source sharing our storage is snapshotted first, so overlapping copies are exact.
  const Tensor s = src.storage() == storage() ? src.clone() : src;
  Attrs a;
  if (non_blocking) a.set("non_blocking", true);
  dispatch(prim("copy_"), std::vector<Tensor>{*this, s}, a);
  return *this;
}

Tensor& Tensor::fill_(const Scalar& v) {
  return copy_(full({}, v, TensorOptions(dtype(), device())));
}
Tensor& Tensor::zero_() { return fill_(0); }

namespace {
Tensor& assign_result(Tensor& self, const Tensor& r, std::string_view op) {
  if (!detail::can_cast(r.dtype(), self.dtype()))
    fail<DTypeError>(op, "result type {} can't be cast to the desired output type {}",
                     dtype_name(r.dtype()), dtype_name(self.dtype()));
  if (r.shape() != self.shape())
    fail<ShapeError>(op, "output with shape {} doesn't match the broadcast shape {}",
                     shape_str(self.shape()), shape_str(r.shape()));
  return self.copy_(r);
}

// self as the operand of an in-place op whose backward reads it: the copy_ that follows
// would change what the recorded op saved, so under recording it reads a snapshot.
Tensor snapshot_if_recorded(const Tensor& self) {
  return autograd::is_grad_enabled() && self.requires_grad() ? self.clone() : self;
}
}  // namespace

Tensor& Tensor::add_(const Tensor& o) { return assign_result(*this, add(*this, o), "add_"); }
Tensor& Tensor::add_(const Scalar& o) { return assign_result(*this, add(*this, o), "add_"); }
Tensor& Tensor::sub_(const Tensor& o) { return assign_result(*this, sub(*this, o), "sub_"); }
Tensor& Tensor::sub_(const Scalar& o) { return assign_result(*this, sub(*this, o), "sub_"); }
Tensor& Tensor::mul_(const Tensor& o) {
  return assign_result(*this, mul(snapshot_if_recorded(*this), o), "mul_");
}
Tensor& Tensor::mul_(const Scalar& o) {
  return assign_result(*this, mul(snapshot_if_recorded(*this), o), "mul_");
}
Tensor& Tensor::div_(const Tensor& o) {
  return assign_result(*this, div(snapshot_if_recorded(*this), o), "div_");
}
Tensor& Tensor::div_(const Scalar& o) {
  return assign_result(*this, div(snapshot_if_recorded(*this), o), "div_");
}
Tensor& Tensor::clamp_(std::optional<Scalar> lo, std::optional<Scalar> hi) {
  return assign_result(*this, clamp(snapshot_if_recorded(*this), lo, hi), "clamp_");
}
Tensor& Tensor::masked_fill_(const Tensor& mask, const Scalar& v) {
  return assign_result(*this, masked_fill(*this, mask, v), "masked_fill_");
}
Tensor& Tensor::index_put_(const std::vector<TensorIndex>& idx, const Tensor& value) {
  detail::index_put_expr(*this, idx, value);
  return *this;
}
Tensor& Tensor::index_put_(const std::vector<TensorIndex>& idx, const Scalar& value) {
  return index_put_(idx, full({}, value, TensorOptions(dtype(), device())));
}

Tensor Tensor::sum(std::vector<int64_t> dims, bool keepdim) const {
  return tessera::sum(*this, dims, keepdim);
}
Tensor Tensor::mean(std::vector<int64_t> dims, bool keepdim) const {
  return tessera::mean(*this, dims, keepdim);
}
Tensor Tensor::max() const { return tessera::max(*this); }
Tensor Tensor::min() const { return tessera::min(*this); }
Tensor Tensor::argmax(std::optional<int64_t> d, bool keepdim) const {
  return tessera::argmax(*this, d, keepdim);
}
Tensor Tensor::abs() const { return tessera::abs(*this); }
Tensor Tensor::exp() const { return tessera::exp(*this); }
Tensor Tensor::log() const { return tessera::log(*this); }
Tensor Tensor::sqrt() const { return tessera::sqrt(*this); }
Tensor Tensor::matmul(const Tensor& o) const { return tessera::matmul(*this, o); }

}  // namespace tessera
