// CUDA kernels of the elementwise primitives beyond ops.cpp's float tables: integer and bool
// arithmetic (integer.cu), rounding of integers (a copy), the predicates isnan / isinf /
// isfinite (compare.cu for floats, a constant for the other dtypes), clamp and lerp
// (ternary.cu). Host code only; each table row names the primitive, its device op and whether
// bool is allowed, mirroring the CPU kernels' dtype sets, so a dtype the CPU refuses stays
// "no cuda kernel" here too.
#include <array>
#include <utility>

#include "backends/cuda/common.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/ops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

struct IntEntry {
  const char* name;
  int op;
  bool bools;  ///< bool inputs allowed (as on the CPU)
};

constexpr std::array kIntUnary = {
    IntEntry{"neg", k::kINeg, false},       IntEntry{"abs", k::kIAbs, false},
    IntEntry{"relu", k::kIRelu, false},     IntEntry{"sign", k::kISign, true},
    IntEntry{"square", k::kISquare, false}, IntEntry{"bitwise_not", k::kIBitNot, true},
};

constexpr std::array kIntBinary = {
    IntEntry{"add", k::kIAdd, true},
    IntEntry{"sub", k::kISub, false},
    IntEntry{"mul", k::kIMul, true},
    IntEntry{"maximum", k::kIMaximum, true},
    IntEntry{"minimum", k::kIMinimum, true},
    IntEntry{"pow", k::kIPow, false},
    IntEntry{"floor_divide", k::kIFloorDivide, false},
    IntEntry{"remainder", k::kIRemainder, false},
    IntEntry{"bitwise_and", k::kIBitAnd, true},
    IntEntry{"bitwise_or", k::kIBitOr, true},
    IntEntry{"bitwise_xor", k::kIBitXor, true},
};

// Rounding an integer leaves it as it is: a copy (the CPU's kernels do the same).
constexpr std::array kIntIdentity = {"floor", "ceil", "round", "trunc"};

struct Entry {
  const char* name;
  int op;
};
constexpr std::array kPredicate = {
    Entry{"isnan", k::kIsNan},
    Entry{"isinf", k::kIsInf},
    Entry{"isfinite", k::kIsFinite},
};
constexpr std::array kTernary = {
    Entry{"clamp", k::kClamp},
    Entry{"lerp", k::kLerp},
};

// Every input of in[0]'s dtype, and that dtype an integer (or bool where `bools`).
bool int_inputs(Inputs in, bool bools) {
  const DType dt = in[0].dtype();
  for (const Tensor& t : in)
    if (t.dtype() != dt) return false;
  const int c = dtype_code(dt);
  return k::int_code(c) || (bools && c == k::kBool);
}
template <const auto& kTable, size_t K>
bool int_supports(Inputs in, const Attrs&) {
  return int_inputs(in, kTable[K].bools);
}
bool int_only(Inputs in, const Attrs&) { return int_inputs(in, false); }

// The work of one launch on y's device.
template <class F>
void on_device(const Tensor& y, const char* op, F&& launch) {
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  launch(dev, current_stream(dev));
  launched(dev, op);
}

template <size_t K>
void int_unary_kernel(Inputs in, Outputs out, const Attrs&) {
  const IntEntry& e = kIntUnary[K];
  const Tensor &x = in[0], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = unary_geometry(x, y, e.name);
  on_device(y, e.name, [&](int, cudaStream_t s) {
    k::int_unary(e.op, dtype_code(x.dtype()), x.raw_data(), y.raw_data(), g, s);
  });
}

// add's alpha as the CPU converts it: Scalar::to<bool> for bool, a static_cast otherwise
// (the kernel casts the int64 to the element type).
int64_t int_alpha(const Attrs& a, DType dt) {
  if (!a.has("alpha")) return 1;
  const Scalar s = a.get<Scalar>("alpha");
  return dt == kBool ? int64_t{s.to<bool>()} : s.to<int64_t>();
}

template <size_t K>
void int_binary_kernel(Inputs in, Outputs out, const Attrs& a) {
  const IntEntry& e = kIntBinary[K];
  const Tensor &x = in[0], &w = in[1], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = binary_geometry(x, w, y, e.name);
  const bool divides = e.op == k::kIFloorDivide || e.op == k::kIRemainder;
  on_device(y, e.name, [&](int dev, cudaStream_t s) {
    k::int_binary(e.op, dtype_code(x.dtype()), x.raw_data(), w.raw_data(), y.raw_data(),
                  int_alpha(a, x.dtype()), g, divides ? index_fault(dev) : nullptr, s);
  });
}

template <size_t K>
void int_identity_kernel(Inputs in, Outputs out, const Attrs&) {
  convert_into(in[0], out[0], kIntIdentity[K]);
}

// isnan / isinf / isfinite: a kernel for floats; bool and integers are never NaN or infinite,
// so their output is a constant (the output is a fresh contiguous tensor).
template <size_t K>
void predicate_kernel(Inputs in, Outputs out, const Attrs&) {
  const Entry& e = kPredicate[K];
  const Tensor &x = in[0], &y = out[0];
  if (y.numel() == 0) return;
  const int code = dtype_code(x.dtype());
  if (!k::float_code(code)) {
    const uint64_t value = e.op == k::kIsFinite ? 1 : 0;
    on_device(y, e.name,
              [&](int, cudaStream_t s) { k::fill(y.raw_data(), y.numel(), 1, value, s); });
    return;
  }
  const k::Geometry g = unary_geometry(x, y, e.name);
  on_device(y, e.name, [&](int, cudaStream_t s) {
    k::predicate(e.op, code, x.raw_data(), y.raw_data(), g, s);
  });
}
bool real_input(Inputs in, const Attrs&) { return dtype_code(in[0].dtype()) >= 0; }

// clamp: integers and floats; lerp: floats. All three inputs of one dtype (the op layer casts).
bool same_dtype(Inputs in) {
  return in[1].dtype() == in[0].dtype() && in[2].dtype() == in[0].dtype();
}
bool clamp_dtypes(Inputs in, const Attrs&) {
  const int c = dtype_code(in[0].dtype());
  return same_dtype(in) && (k::int_code(c) || k::float_code(c));
}
bool lerp_dtypes(Inputs in, const Attrs&) {
  return same_dtype(in) && k::float_code(dtype_code(in[0].dtype()));
}

template <size_t K>
void ternary_kernel(Inputs in, Outputs out, const Attrs&) {
  const Entry& e = kTernary[K];
  const Tensor &a = in[0], &b = in[1], &c = in[2], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = ternary_geometry(a, b, c, y, e.name);
  on_device(y, e.name, [&](int, cudaStream_t s) {
    k::ternary(e.op, dtype_code(a.dtype()), a.raw_data(), b.raw_data(), c.raw_data(), y.raw_data(),
               g, s);
  });
}

template <size_t... K>
void register_int(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kIntUnary[K].name,
                {DeviceType::CUDA, "cuda", &int_unary_kernel<K>, &int_supports<kIntUnary, K>}),
   ...);
}
template <size_t... K>
void register_int_binary(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kIntBinary[K].name,
                {DeviceType::CUDA, "cuda", &int_binary_kernel<K>, &int_supports<kIntBinary, K>}),
   ...);
}
template <size_t... K>
void register_identity(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kIntIdentity[K], {DeviceType::CUDA, "cuda", &int_identity_kernel<K>, int_only}),
   ...);
}
template <size_t... K>
void register_predicates(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kPredicate[K].name, {DeviceType::CUDA, "cuda", &predicate_kernel<K>, real_input}),
   ...);
}

}  // namespace

void register_more_elementwise_kernels(Registry& r) {
  register_int(r, std::make_index_sequence<kIntUnary.size()>{});
  register_int_binary(r, std::make_index_sequence<kIntBinary.size()>{});
  register_identity(r, std::make_index_sequence<kIntIdentity.size()>{});
  register_predicates(r, std::make_index_sequence<kPredicate.size()>{});
  r.add_kernel("clamp", {DeviceType::CUDA, "cuda", &ternary_kernel<0>, clamp_dtypes});
  r.add_kernel("lerp", {DeviceType::CUDA, "cuda", &ternary_kernel<1>, lerp_dtypes});
}

}  // namespace tessera::cuda
