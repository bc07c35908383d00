// Reduce family: reductions over any set of dims (sum, mean, prod, amax/amin, max/min with
// indices, argmax/argmin, var/std, logsumexp, norm, all/any), scans (cumsum, cumprod),
// softmax/log_softmax and the fused layer_norm (with its backward). Every reduction takes attrs
// "dims" (empty = all) and "keepdim".
#include "tessera/ops/reduce.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "ops/reduce_dims.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/dispatch.h"

namespace tessera {
namespace {

// ---- output dtype rules (throw DTypeError naming the op) ------------------------------------

// sum/prod/cumsum/cumprod: bool and ints accumulate in int64, like PyTorch.
DType long_for_ints(DType t, const Attrs& a, std::string_view) {
  return a.get_or<DType>("dtype", is_integral(t, true) ? kInt64 : t);
}
DType float_or_complex(DType t, const Attrs&, std::string_view op) {
  if (!is_floating(t) && !is_complex(t))
    fail<DTypeError>(op, "expects a floating point or complex input, got {}", dtype_name(t));
  return t;
}
DType floats_only(DType t, const Attrs&, std::string_view op) {
  if (is_complex(t)) fail<NotImplementedError>(op, "complex input is not supported yet");
  if (!is_floating(t))
    fail<DTypeError>(op, "expects a floating point input, got {}", dtype_name(t));
  return t;
}
DType ordered(DType t, const Attrs&, std::string_view op) {
  if (is_complex(t)) fail<DTypeError>(op, "is not defined for complex input ({})", dtype_name(t));
  return t;
}
DType index_out(DType t, const Attrs& a, std::string_view op) {
  ordered(t, a, op);
  return kInt64;
}
// logsumexp computes ints in float32, as PyTorch.
DType float_for_ints(DType t, const Attrs&, std::string_view op) {
  if (is_complex(t)) fail<NotImplementedError>(op, "complex input is not supported yet");
  return is_floating(t) ? t : to_float_dtype(t);
}
DType norm_out(DType t, const Attrs& a, std::string_view op) {
  if (std::isnan(a.get<double>("p"))) fail<ValueError>(op, "order p must not be NaN");
  return to_real_dtype(float_or_complex(t, a, op));
}
// all/any: uint8 stays uint8 (PyTorch), everything else gives bool.
DType logical_out(DType t, const Attrs&, std::string_view) { return t == kUInt8 ? kUInt8 : kBool; }

bool always(const Attrs&) { return true; }
bool inf_norm(const Attrs& a) { return std::isinf(a.get<double>("p")); }

// ---- the table ------------------------------------------------------------------------------

struct ReduceSpec {
  const char* name;
  DType (*out_dtype)(DType, const Attrs&, std::string_view op);
  uint32_t traits = kNoTraits;
  bool (*no_identity)(const Attrs&) = nullptr;  ///< empty reductions are an error when true
  int max_dims = -1;                            ///< -1 = any number; 1 = at most one dim
  bool with_indices = false;                    ///< second output: int64 indices
  double flops_per_elem = 1;
};

constexpr ReduceSpec kReductions[] = {
    {.name = "sum", .out_dtype = long_for_ints},
    {.name = "mean", .out_dtype = float_or_complex},
    {.name = "prod", .out_dtype = long_for_ints},
    {.name = "amax", .out_dtype = ordered, .no_identity = always},
    {.name = "amin", .out_dtype = ordered, .no_identity = always},
    {.name = "max_dim",
     .out_dtype = ordered,
     .no_identity = always,
     .max_dims = 1,
     .with_indices = true},
    {.name = "min_dim",
     .out_dtype = ordered,
     .no_identity = always,
     .max_dims = 1,
     .with_indices = true},
    {.name = "argmax",
     .out_dtype = index_out,
     .traits = kNonDifferentiable,
     .no_identity = always,
     .max_dims = 1},
    {.name = "argmin",
     .out_dtype = index_out,
     .traits = kNonDifferentiable,
     .no_identity = always,
     .max_dims = 1},
    {.name = "var", .out_dtype = floats_only, .flops_per_elem = 4},
    {.name = "std", .out_dtype = floats_only, .flops_per_elem = 4},
    {.name = "logsumexp", .out_dtype = float_for_ints, .flops_per_elem = 4},
    {.name = "norm", .out_dtype = norm_out, .no_identity = inf_norm, .flops_per_elem = 2},
    {.name = "all", .out_dtype = logical_out, .traits = kNonDifferentiable},
    {.name = "any", .out_dtype = logical_out, .traits = kNonDifferentiable},
};

// Validates a reduction's dims (IndexError / ValueError) and empty reductions without an
// identity (PyTorch: max of an empty tensor is an error, sum is 0).
std::vector<TensorMeta> reduce_meta(const ReduceSpec& s, Inputs in, const Attrs& a) {
  const Tensor& x = in[0];
  const auto dims = a.get_or<std::vector<int64_t>>("dims", {});
  if (s.max_dims == 1 && dims.size() > 1)
    fail<ValueError>(s.name, "reduces over one dim, got {} dims", dims.size());
  const std::vector<bool> mask = detail::reduce_mask(x.dim(), dims, s.name);
  const DType out = s.out_dtype(x.dtype(), a, s.name);
  if (s.no_identity && s.no_identity(a)) {
    if (dims.empty() && x.numel() == 0)
      fail<ValueError>(s.name,
                       "cannot reduce an empty tensor of shape {} (no identity); specify a dim",
                       shape_str(x.shape()));
    for (size_t d = 0; d < mask.size(); ++d)
      if (mask[d] && x.shape()[d] == 0)
        fail<IndexError>(s.name, "cannot reduce over dim {} of size 0 (input shape {})", d,
                         shape_str(x.shape()));
  }
  Shape shape = detail::reduced_shape(x.shape(), mask, a.get_or<bool>("keepdim", false));
  std::vector<TensorMeta> metas{{shape, out}};
  if (s.with_indices) metas.push_back({shape, kInt64});
  return metas;
}

template <size_t I>
std::vector<TensorMeta> reduce_infer(Inputs in, const Attrs& a) {
  return reduce_meta(kReductions[I], in, a);
}
template <size_t I>
Cost reduce_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  double bytes = static_cast<double>(in[0].nbytes());
  for (const Tensor& t : out) bytes += static_cast<double>(t.nbytes());
  return {kReductions[I].flops_per_elem * static_cast<double>(in[0].numel()), bytes};
}

// ---- scans and softmax: one dim, output shaped like the input ----------------------------

struct AlongSpec {
  const char* name;
  DType (*out_dtype)(DType, const Attrs&, std::string_view op);
  double flops_per_elem;
  PrimKind kind;
};
constexpr AlongSpec kAlongDim[] = {
    {"cumsum", long_for_ints, 1, PrimKind::Scan},
    {"cumprod", long_for_ints, 1, PrimKind::Scan},
    {"softmax", floats_only, 5, PrimKind::Other},
    {"log_softmax", floats_only, 5, PrimKind::Other},
};

template <size_t I>
std::vector<TensorMeta> along_infer(Inputs in, const Attrs& a) {
  const AlongSpec& s = kAlongDim[I];
  wrap_dim(a.get<int64_t>("dim"), in[0].dim(), s.name);
  return {{in[0].shape(), s.out_dtype(in[0].dtype(), a, s.name)}};
}
template <size_t I>
Cost along_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  return {kAlongDim[I].flops_per_elem * static_cast<double>(in[0].numel()),
          static_cast<double>(in[0].nbytes() + out[0].nbytes())};
}

// ---- layer_norm: normalization over the trailing dims, fused -------------------------------
//
// layer_norm(x[, weight[, bias]]; ndim, eps) -> (y, mean, rstd): each row (the last ndim dims,
// n elements) becomes (x - mean) * rstd * weight + bias with rstd = 1 / sqrt(var + eps), var
// the biased variance. mean and rstd (shaped like x with the row dims as 1, like PyTorch's
// native_layer_norm) are outputs so the backward needs no second statistics pass; they are
// float32 for the 16-bit floats (computed there) and x's dtype otherwise.
// layer_norm_backward(dy, x, mean, rstd[, weight]; ndim, weight_grads) -> dx[, dweight, dbias].

DType stats_dtype(DType t) { return t == kFloat16 || t == kBFloat16 ? kFloat32 : t; }

// The rows' count of normalized dims, validated against x.
Shape row_shape(const Tensor& x, const Attrs& a, std::string_view op) {
  const auto k = a.get<int64_t>("ndim");
  if (k < 1 || k > x.dim())
    fail<ShapeError>(op, "cannot normalize over the last {} dims of an input of shape {}", k,
                     shape_str(x.shape()));
  return {x.shape().end() - k, x.shape().end()};
}

Shape stats_shape(const Tensor& x, size_t row_dims) {
  Shape s = x.shape();
  std::fill(s.end() - static_cast<std::ptrdiff_t>(row_dims), s.end(), 1);
  return s;
}

void check_like(std::string_view op, const char* what, const Tensor& t, const Shape& shape,
                DType dt) {
  if (t.shape() != shape)
    fail<ShapeError>(op, "{} must have shape {}, got {}", what, shape_str(shape),
                     shape_str(t.shape()));
  if (t.dtype() != dt)
    fail<DTypeError>(op, "{} has dtype {}, expected {}", what, dtype_name(t.dtype()),
                     dtype_name(dt));
}

std::vector<TensorMeta> layer_norm_infer(Inputs in, const Attrs& a) {
  constexpr std::string_view op = "layer_norm";
  if (in.empty() || in.size() > 3)
    fail<ValueError>(op, "takes x, weight and bias (1 to 3 inputs), got {}", in.size());
  const Tensor& x = in[0];
  floats_only(x.dtype(), a, op);
  const Shape row = row_shape(x, a, op);
  for (size_t i = 1; i < in.size(); ++i)
    check_like(op, i == 1 ? "weight" : "bias", in[i], row, x.dtype());
  const Shape st = stats_shape(x, row.size());
  const DType sd = stats_dtype(x.dtype());
  return {{x.shape(), x.dtype()}, {st, sd}, {st, sd}};
}

std::vector<TensorMeta> layer_norm_backward_infer(Inputs in, const Attrs& a) {
  constexpr std::string_view op = "layer_norm_backward";
  if (in.size() < 4 || in.size() > 5)
    fail<ValueError>(op, "takes dy, x, mean, rstd and weight (4 or 5 inputs), got {}", in.size());
  const Tensor& x = in[1];
  floats_only(x.dtype(), a, op);
  const Shape row = row_shape(x, a, op);
  check_like(op, "dy", in[0], x.shape(), x.dtype());
  const Shape st = stats_shape(x, row.size());
  check_like(op, "mean", in[2], st, stats_dtype(x.dtype()));
  check_like(op, "rstd", in[3], st, stats_dtype(x.dtype()));
  if (in.size() > 4) check_like(op, "weight", in[4], row, x.dtype());
  std::vector<TensorMeta> out{{x.shape(), x.dtype()}};
  if (a.get_or<bool>("weight_grads", false)) {
    if (in.size() < 5) fail<ValueError>(op, "weight_grads needs the weight input");
    out.push_back({row, x.dtype()});
    out.push_back({row, x.dtype()});
  }
  return out;
}

// Read x, write y (the statistics are small); ~8 flops per element.
Cost layer_norm_cost(Inputs in, std::span<const Tensor> out, const Attrs&) {
  double bytes = 0;
  for (const Tensor& t : in) bytes += static_cast<double>(t.nbytes());
  for (const Tensor& t : out) bytes += static_cast<double>(t.nbytes());
  return {8 * static_cast<double>(in[0].numel()), bytes};
}
Cost layer_norm_backward_cost(Inputs in, std::span<const Tensor> out, const Attrs& a) {
  return {12 * static_cast<double>(in[0].numel()), layer_norm_cost(in, out, a).bytes};
}

template <size_t... I, size_t... J>
void define_all(Registry& r, std::index_sequence<I...>, std::index_sequence<J...>) {
  (r.define({.name = kReductions[I].name,
             .kind = PrimKind::Reduction,
             .traits = kReductions[I].traits,
             .infer = reduce_infer<I>,
             .cost = reduce_cost<I>}),
   ...);
  (r.define({.name = kAlongDim[J].name,
             .kind = kAlongDim[J].kind,
             .infer = along_infer<J>,
             .cost = along_cost<J>}),
   ...);
}

Attrs dims_attrs(Dims dims, bool keepdim) {
  return {{"dims", std::move(dims)}, {"keepdim", keepdim}};
}

}  // namespace

void register_reduce_prims(Registry& r) {
  define_all(r, std::make_index_sequence<std::size(kReductions)>{},
             std::make_index_sequence<std::size(kAlongDim)>{});
  r.define({.name = "layer_norm",
            .traits = kAuxOutputs,
            .infer = layer_norm_infer,
            .cost = layer_norm_cost});
  r.define({.name = "layer_norm_backward",
            .infer = layer_norm_backward_infer,
            .cost = layer_norm_backward_cost});
}

// ---- public ops -----------------------------------------------------------------------------

Tensor sum(const Tensor& x, Dims dims, bool keepdim, std::optional<DType> dtype) {
  static const Primitive& p = prim("sum");
  Attrs a = dims_attrs(std::move(dims), keepdim);
  if (!dtype) return dispatch1(p, {x}, a);
  a.set("dtype", *dtype);
  // PyTorch casts the input first, so the accumulation follows the requested dtype.
  return dispatch1(p, {x.to(*dtype)}, a);
}

Tensor mean(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("mean");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor prod(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("prod");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor amax(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("amax");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor amin(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("amin");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor max(const Tensor& x) {
  if (x.numel() == 0)
    fail<ValueError>("max", "cannot take the max of an empty tensor of shape {}; specify a dim",
                     shape_str(x.shape()));
  return amax(x);
}

Tensor min(const Tensor& x) {
  if (x.numel() == 0)
    fail<ValueError>("min", "cannot take the min of an empty tensor of shape {}; specify a dim",
                     shape_str(x.shape()));
  return amin(x);
}

std::tuple<Tensor, Tensor> max(const Tensor& x, int64_t dim, bool keepdim) {
  static const Primitive& p = prim("max_dim");
  auto out = dispatch(p, std::span<const Tensor>(&x, 1), dims_attrs({dim}, keepdim));
  return {out[0], out[1]};
}

std::tuple<Tensor, Tensor> min(const Tensor& x, int64_t dim, bool keepdim) {
  static const Primitive& p = prim("min_dim");
  auto out = dispatch(p, std::span<const Tensor>(&x, 1), dims_attrs({dim}, keepdim));
  return {out[0], out[1]};
}

// dim absent: the index into the flattened input (all dims reduced in row-major order).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  static const Primitive& p = prim("argmax");
  return dispatch1(p, {x}, dims_attrs(dim ? Dims{*dim} : Dims{}, keepdim));
}

Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  static const Primitive& p = prim("argmin");
  return dispatch1(p, {x}, dims_attrs(dim ? Dims{*dim} : Dims{}, keepdim));
}

Tensor var(const Tensor& x, Dims dims, int64_t correction, bool keepdim) {
  static const Primitive& p = prim("var");
  Attrs a = dims_attrs(std::move(dims), keepdim);
  a.set("correction", correction);
  return dispatch1(p, {x}, a);
}

// A primitive of its own (not sqrt(var)) so it needs no elementwise kernel and one pass.
Tensor std(const Tensor& x, Dims dims, int64_t correction, bool keepdim) {
  static const Primitive& p = prim("std");
  Attrs a = dims_attrs(std::move(dims), keepdim);
  a.set("correction", correction);
  return dispatch1(p, {x}, a);
}

Tensor logsumexp(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("logsumexp");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

// Any p (0 counts non-zeros, +-inf are max/min of |x|), like linalg.vector_norm.
Tensor norm(const Tensor& x, double p, Dims dims, bool keepdim) {
  static const Primitive& pr = prim("norm");
  Attrs a = dims_attrs(std::move(dims), keepdim);
  a.set("p", p);
  return dispatch1(pr, {x}, a);
}

Tensor all(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("all");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor any(const Tensor& x, Dims dims, bool keepdim) {
  static const Primitive& p = prim("any");
  return dispatch1(p, {x}, dims_attrs(std::move(dims), keepdim));
}

Tensor cumsum(const Tensor& x, int64_t dim) {
  static const Primitive& p = prim("cumsum");
  return dispatch1(p, {x}, {{"dim", dim}});
}

Tensor cumprod(const Tensor& x, int64_t dim) {
  static const Primitive& p = prim("cumprod");
  return dispatch1(p, {x}, {{"dim", dim}});
}

Tensor softmax(const Tensor& x, int64_t dim) {
  static const Primitive& p = prim("softmax");
  return dispatch1(p, {x}, {{"dim", dim}});
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  static const Primitive& p = prim("log_softmax");
  return dispatch1(p, {x}, {{"dim", dim}});
}

std::tuple<Tensor, Tensor, Tensor> native_layer_norm(const Tensor& x, int64_t normalized_ndim,
                                                     const Tensor& weight, const Tensor& bias,
                                                     double eps) {
  static const Primitive& p = prim("layer_norm");
  std::vector<Tensor> in{x};
  if (weight.defined() || bias.defined())  // a bias alone goes with a weight of ones
    in.push_back(weight.defined() ? weight : ones_like(bias));
  if (bias.defined()) in.push_back(bias);
  auto out = dispatch(p, in, {{"ndim", normalized_ndim}, {"eps", eps}});
  return {out[0], out[1], out[2]};
}

}  // namespace tessera
