// CUDA kernels of the elementwise primitives for complex64 inputs (complex.cu): exactly the
// primitives whose CPU kernels take complex64 (backends/cpu/elementwise_*.cpp), with their
// results. Host code only; each row names the primitive and its device op. where, fill, copies
// and casts of complex64 are ops.cpp's, and the logical ops convert their operands to bool
// there; every other primitive stays "no cuda kernel" for complex64.
#include <array>
#include <utility>

#include "backends/cuda/common.h"
#include "backends/cuda/complex_kernels.h"
#include "backends/cuda/ops.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

struct Entry {
  const char* name;
  int op;
};

constexpr std::array kUnary = {
    Entry{"neg", k::kCNeg},
    Entry{"abs", k::kCAbs},  // a float32 output (the op layer's real counterpart)
    Entry{"exp", k::kCExp},
    Entry{"log", k::kCLog},
    Entry{"sqrt", k::kCSqrt},
    Entry{"sin", k::kCSin},
    Entry{"cos", k::kCCos},
    Entry{"reciprocal", k::kCReciprocal},
    Entry{"square", k::kCSquare},
    Entry{"isnan", k::kCIsNan},  // bool outputs
    Entry{"isinf", k::kCIsInf},
    Entry{"isfinite", k::kCIsFinite},
};

constexpr std::array kBinary = {
    Entry{"add", k::kCAdd}, Entry{"sub", k::kCSub}, Entry{"mul", k::kCMul}, Entry{"div", k::kCDiv},
    Entry{"pow", k::kCPow}, Entry{"eq", k::kCEq},   Entry{"ne", k::kCNe},
};

bool complex_inputs(Inputs in, const Attrs&) {
  for (const Tensor& t : in)
    if (t.dtype() != kComplex64) return false;
  return true;
}

template <size_t K>
void unary_kernel(Inputs in, Outputs out, const Attrs&) {
  const Entry& e = kUnary[K];
  const Tensor &x = in[0], &y = out[0];
  if (y.numel() == 0) return;
  const k::Geometry g = unary_geometry(x, y, e.name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::complex_unary(e.op, x.raw_data(), y.raw_data(), g, current_stream(dev));
  launched(dev, e.name);
}

template <size_t K>
void binary_kernel(Inputs in, Outputs out, const Attrs& a) {
  const Entry& e = kBinary[K];
  const Tensor &x = in[0], &w = in[1], &y = out[0];
  if (y.numel() == 0) return;
  int op = e.op;
  Complex64 alpha(1.0f, 0.0f);
  // The CPU computes a + alpha * b, a complex product, whenever alpha is given (even 1: the
  // product's signed zeros and infinities are not b's).
  if (op == k::kCAdd && a.has("alpha")) {
    op = k::kCAddAlpha;
    alpha = a.get<Scalar>("alpha").to<Complex64>();
  }
  const k::Geometry g = binary_geometry(x, w, y, e.name);
  const int dev = y.device().index;
  DeviceGuard guard(dev);
  k::complex_binary(op, x.raw_data(), w.raw_data(), y.raw_data(), alpha.real(), alpha.imag(), g,
                    current_stream(dev));
  launched(dev, e.name);
}

template <size_t... K>
void register_unary(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kUnary[K].name, {DeviceType::CUDA, "cuda", &unary_kernel<K>, complex_inputs}), ...);
}
template <size_t... K>
void register_binary(Registry& r, std::index_sequence<K...>) {
  (r.add_kernel(kBinary[K].name, {DeviceType::CUDA, "cuda", &binary_kernel<K>, complex_inputs}),
   ...);
}

}  // namespace

void register_complex_kernels(Registry& r) {
  register_unary(r, std::make_index_sequence<kUnary.size()>{});
  register_binary(r, std::make_index_sequence<kBinary.size()>{});
}

}  // namespace tessera::cuda
