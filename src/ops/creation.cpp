// Creation primitives (fill, arange, linspace, eye, random draws) and host-data constructors.
#include "tessera/ops/creation.h"

#include <cmath>
#include <cstring>

#include "tessera/ops/elementwise.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

std::vector<TensorMeta> attr_meta(Inputs, const Attrs& a) {
  const auto& shape = a.get<std::vector<int64_t>>("shape");
  checked_numel(shape, "creation");
  return {{shape, a.get<DType>("dtype")}};
}
std::vector<TensorMeta> like_input_meta(Inputs in, const Attrs&) {
  return {{in[0].shape(), in[0].dtype()}};
}
Cost write_cost(Inputs, std::span<const Tensor> out, const Attrs&) {
  return {static_cast<double>(out[0].numel()), static_cast<double>(out[0].nbytes())};
}

Attrs creation_attrs(const Shape& shape, TensorOptions opt) {
  return {{"shape", shape}, {"dtype", opt.dtype}, {"device", opt.device}};
}

// Attributes of one random draw: the generator's seed and the counters reserved for it.
Attrs random_attrs(const Shape& shape, TensorOptions opt, Generator* gen) {
  Generator& g = gen ? *gen : default_generator();
  const int64_t n = checked_numel(shape, "random");
  Attrs a = creation_attrs(shape, opt);
  a.set("seed", static_cast<int64_t>(g.seed()));
  a.set("offset", static_cast<int64_t>(g.reserve(static_cast<uint64_t>(n))));
  return a;
}

void check_float(std::string_view op, DType d) {
  if (!is_floating(d)) fail<DTypeError>(op, "expects a floating dtype, got {}", dtype_name(d));
}

}  // namespace

void register_creation_prims(Registry& r) {
  for (const char* name : {"fill", "arange", "linspace", "eye"})
    r.define({.name = name,
              .kind = PrimKind::Creation,
              .traits = kNonDifferentiable,
              .infer = attr_meta,
              .cost = write_cost});
  for (const char* name : {"uniform", "normal", "randint"})
    r.define({.name = name,
              .kind = PrimKind::Random,
              .traits = kNonDifferentiable | kRandom,
              .infer = attr_meta,
              .cost = write_cost});
  r.define({.name = "bernoulli",
            .kind = PrimKind::Random,
            .traits = kNonDifferentiable | kRandom,
            .infer = like_input_meta,
            .cost = write_cost});
}

Tensor empty(Shape shape, TensorOptions opt) {
  return Tensor::empty(std::move(shape), opt.dtype, opt.device);
}

Tensor full(Shape shape, const Scalar& value, TensorOptions opt) {
  Attrs a = creation_attrs(shape, opt);
  a.set("value", value);
  return dispatch1(prim("fill"), {}, a);
}
Tensor full(Shape shape, const Scalar& value, std::optional<DType> dtype) {
  return full(std::move(shape), value, TensorOptions(dtype.value_or(value.default_dtype())));
}
Tensor full(Shape shape, const Scalar& value, DType dtype) {
  return full(std::move(shape), value, TensorOptions(dtype));
}
Tensor zeros(Shape shape, TensorOptions opt) { return full(std::move(shape), Scalar(0), opt); }
Tensor ones(Shape shape, TensorOptions opt) { return full(std::move(shape), Scalar(1), opt); }

Tensor empty_like(const Tensor& t, std::optional<DType> d) {
  return empty(t.shape(), {d.value_or(t.dtype()), t.device()});
}
Tensor zeros_like(const Tensor& t, std::optional<DType> d) { return full_like(t, 0, d); }
Tensor ones_like(const Tensor& t, std::optional<DType> d) { return full_like(t, 1, d); }
Tensor full_like(const Tensor& t, const Scalar& v, std::optional<DType> d) {
  return full(t.shape(), v, TensorOptions{d.value_or(t.dtype()), t.device()});
}

Tensor scalar_tensor(const Scalar& v, std::optional<DType> dtype) { return full({}, v, dtype); }

Tensor arange(Scalar end, std::optional<DType> dtype) { return arange(0, end, 1, dtype); }

Tensor arange(Scalar start, Scalar end, Scalar step, std::optional<DType> dtype) {
  const bool ints = start.is_integral() && end.is_integral() && step.is_integral();
  const DType dt = dtype.value_or(ints ? kInt64 : kFloat32);
  const double s = start.to<double>(), e = end.to<double>(), st = step.to<double>();
  if (st == 0 || !std::isfinite(s) || !std::isfinite(e) || !std::isfinite(st))
    fail<ValueError>("arange", "invalid range start={} end={} step={}", start.str(), end.str(),
                     step.str());
  if ((e - s) * st < 0)
    fail<ValueError>("arange", "step {} goes away from end (start={}, end={})", step.str(),
                     start.str(), end.str());
  const auto n = static_cast<int64_t>(std::ceil((e - s) / st));
  Attrs a = creation_attrs({n}, dt);
  a.set("start", start).set("step", step);
  return dispatch1(prim("arange"), {}, a);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions opt) {
  if (steps < 0)
    fail<ValueError>("linspace", "number of steps must be non-negative, got {}", steps);
  Attrs a = creation_attrs({steps}, opt);
  a.set("start", start).set("end", end);
  return dispatch1(prim("linspace"), {}, a);
}

Tensor eye(int64_t n, std::optional<int64_t> m, TensorOptions opt) {
  return dispatch1(prim("eye"), {}, creation_attrs({n, m.value_or(n)}, opt));
}

template <class T>
Tensor tensor(const std::vector<T>& values, std::optional<Shape> shape) {
  Shape s = shape.value_or(Shape{static_cast<int64_t>(values.size())});
  if (checked_numel(s, "tensor") != static_cast<int64_t>(values.size()))
    fail<ShapeError>("tensor", "{} values do not fill shape {}", values.size(), shape_str(s));
  Tensor t = Tensor::empty(s, dtype_v<T>);
  if constexpr (std::is_same_v<T, bool>) {
    auto* p = t.data_ptr<bool>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else if (!values.empty()) {
    std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  }
  return t;
}
#define TS_INSTANTIATE_TENSOR(T) \
  template Tensor tensor<T>(const std::vector<T>&, std::optional<Shape>);
TS_INSTANTIATE_TENSOR(bool)
TS_INSTANTIATE_TENSOR(uint8_t)
TS_INSTANTIATE_TENSOR(int8_t)
TS_INSTANTIATE_TENSOR(int16_t)
TS_INSTANTIATE_TENSOR(int32_t)
TS_INSTANTIATE_TENSOR(int64_t)
TS_INSTANTIATE_TENSOR(Half)
TS_INSTANTIATE_TENSOR(BFloat16)
TS_INSTANTIATE_TENSOR(float)
TS_INSTANTIATE_TENSOR(double)
TS_INSTANTIATE_TENSOR(Complex64)

Tensor from_blob(void* data, Shape shape, DType dtype, std::optional<Strides> strides,
                 std::function<void(void*)> deleter, Device device) {
  if (!data && checked_numel(shape, "from_blob") > 0)
    fail<ValueError>("from_blob", "null data pointer for shape {}", shape_str(shape));
  Strides st = strides.value_or(contiguous_strides(shape));
  if (st.size() != shape.size())
    fail<ShapeError>("from_blob", "{} strides for a {}-d shape", st.size(), shape.size());
  int64_t extent = 0;  // elements spanned, to size the wrapped storage
  if (checked_numel(shape, "from_blob") > 0) {
    extent = 1;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (st[i] < 0) fail<ValueError>("from_blob", "negative stride {} is not supported", st[i]);
      extent += (shape[i] - 1) * st[i];
    }
  }
  auto storage = Storage::wrap(data, static_cast<size_t>(extent) * itemsize(dtype), device,
                               std::move(deleter));
  return Tensor::make(std::move(storage), std::move(shape), std::move(st), 0, dtype);
}

Tensor from_buffer_copy(const void* data, Shape shape, DType dtype) {
  Tensor t = Tensor::empty(std::move(shape), dtype);
  if (t.nbytes() > 0) {
    if (!data) fail<ValueError>("from_buffer_copy", "null data pointer");
    std::memcpy(t.raw_data(), data, t.nbytes());
  }
  return t;
}

Tensor uniform(double low, double high, Shape shape, TensorOptions opt, Generator* gen) {
  check_float("uniform", opt.dtype);
  if (!(low <= high)) fail<ValueError>("uniform", "low {} must not exceed high {}", low, high);
  Attrs a = random_attrs(shape, opt, gen);
  a.set("low", low).set("high", high);
  return dispatch1(prim("uniform"), {}, a);
}
Tensor rand(Shape shape, TensorOptions opt, Generator* gen) {
  return uniform(0, 1, std::move(shape), opt, gen);
}

Tensor normal(double mean, double std, Shape shape, TensorOptions opt, Generator* gen) {
  check_float("normal", opt.dtype);
  if (!(std >= 0)) fail<ValueError>("normal", "std must be non-negative, got {}", std);
  Attrs a = random_attrs(shape, opt, gen);
  a.set("mean", mean).set("std", std);
  return dispatch1(prim("normal"), {}, a);
}
Tensor randn(Shape shape, TensorOptions opt, Generator* gen) {
  return normal(0, 1, std::move(shape), opt, gen);
}

Tensor randint(int64_t low, int64_t high, Shape shape, TensorOptions opt, Generator* gen) {
  if (low >= high) fail<ValueError>("randint", "low {} must be less than high {}", low, high);
  if (opt.dtype == kBool || is_complex(opt.dtype))
    fail<DTypeError>("randint", "unsupported dtype {}", dtype_name(opt.dtype));
  Attrs a = random_attrs(shape, opt, gen);
  a.set("low", low).set("high", high);
  return dispatch1(prim("randint"), {}, a);
}

Tensor bernoulli(const Tensor& p, Generator* gen) {
  check_float("bernoulli", p.dtype());
  Attrs a = random_attrs(p.shape(), {p.dtype(), p.device()}, gen);
  return dispatch1(prim("bernoulli"), {p}, a);
}
Tensor bernoulli(Shape shape, double p, TensorOptions opt, Generator* gen) {
  if (!(p >= 0 && p <= 1))
    fail<ValueError>("bernoulli", "probability must be in [0, 1], got {}", p);
  return bernoulli(full(std::move(shape), p, opt), gen);
}

}  // namespace tessera
