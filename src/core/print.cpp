// item() and the numpy-like printout.
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include "tessera/core/tensor.h"

namespace tessera {
namespace {

Scalar read_scalar(const Tensor& t, int64_t elem_offset) {
  const char* base =
      static_cast<const char*>(t.raw_data()) + elem_offset * static_cast<int64_t>(t.itemsize());
  return visit_dtype(t.dtype(), [&](auto tag) -> Scalar {
    using T = typename decltype(tag)::type;
    T v;
    std::memcpy(&v, base, sizeof(T));
    return Scalar(v);
  });
}

constexpr int64_t kSummarizeAbove = 1000, kEdgeItems = 3;

struct Formatter {
  DType dtype;
  bool all_int = true;  // floats that are all whole numbers print as "1."
  bool sci = false;

  std::string operator()(const Scalar& s) const {
    if (dtype == kBool) return s.to<bool>() ? "True" : "False";
    if (is_integral(dtype)) return std::to_string(s.to<int64_t>());
    if (is_complex(dtype)) {
      auto c = s.to<Complex64>();
      return fmt::format("{}{:+.4f}j", real(c.real()), c.imag());
    }
    return real(s.to<double>());
  }
  std::string real(double v) const {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    if (sci) return fmt::format("{:.4e}", v);
    if (all_int) return fmt::format("{:.0f}.", v);
    return fmt::format("{:.4f}", v);
  }
};

void collect(const Tensor& t, int64_t dim, int64_t off, bool summarize, std::vector<Scalar>& out) {
  if (dim == t.dim()) {
    out.push_back(read_scalar(t, off));
    return;
  }
  const int64_t n = t.shape()[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) i = n - kEdgeItems;
    collect(t, dim + 1, off + i * t.strides()[dim], summarize, out);
  }
}

void render(const Tensor& t, int64_t dim, int64_t off, bool summarize, const Formatter& f,
            size_t width, int indent, std::string& s) {
  if (dim == t.dim()) {
    std::string v = f(read_scalar(t, off));
    s += std::string(width > v.size() ? width - v.size() : 0, ' ') + v;
    return;
  }
  s += '[';
  const int64_t n = t.shape()[dim];
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0) {
      s += ',';
      s += dim + 1 == t.dim()
               ? std::string(" ")
               : std::string(t.dim() - dim - 1, '\n') + std::string(indent + dim + 1, ' ');
    }
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      s += "...,";
      s += dim + 1 == t.dim() ? std::string(" ") : "\n" + std::string(indent + dim + 1, ' ');
      i = n - kEdgeItems;
    }
    render(t, dim + 1, off + i * t.strides()[dim], summarize, f, width, indent, s);
  }
  s += ']';
}

}  // namespace

Scalar Tensor::item() const {
  if (numel() != 1)
    fail<ValueError>("item", "a tensor with {} elements cannot be converted to a scalar (shape {})",
                     numel(), shape_str(shape()));
  Tensor c = to(Device::cpu());
  return read_scalar(c, 0);
}

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  Tensor c = to(Device::cpu());
  const bool summarize = c.numel() > kSummarizeAbove;
  std::vector<Scalar> vals;
  collect(c, 0, 0, summarize, vals);
  Formatter f{c.dtype()};
  double maxabs = 0, minabs = INFINITY;
  for (const Scalar& v : vals) {
    if (!is_floating(c.dtype())) break;
    double x = v.to<double>();
    if (!std::isfinite(x)) continue;
    f.all_int = f.all_int && x == std::nearbyint(x);
    maxabs = std::max(maxabs, std::abs(x));
    if (x != 0) minabs = std::min(minabs, std::abs(x));
  }
  f.sci = is_floating(c.dtype()) && (maxabs >= 1e8 || (!f.all_int && minabs < 1e-4));
  size_t width = 0;
  for (const Scalar& v : vals) width = std::max(width, f(v).size());
  std::string s = "tensor(";
  if (c.numel() == 0)
    s += "[]";
  else
    render(c, 0, 0, summarize, f, width, 7, s);
  const bool default_dtype = c.dtype() == kFloat32 || c.dtype() == kInt64 || c.dtype() == kBool;
  if (c.numel() == 0) s += fmt::format(", size={}", shape_str(c.shape()));
  if (!default_dtype) s += fmt::format(", dtype={}", dtype_name(c.dtype()));
  if (!device().is_cpu()) s += fmt::format(", device='{}'", device().str());
  return s + ")";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace tessera
