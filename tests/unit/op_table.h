#pragma once
// The op test table: one entry per primitive, with sample inputs over shapes (empty, 0-d,
// broadcasting, non-contiguous) and dtypes, a float64 reference written with plain loops
// (independent of the kernels), and the error cases. One harness checks them all.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera::test {

/// A host float64 array: the reference side of every comparison. Complex values keep the
/// imaginary part in `imag` (empty for real arrays).
struct Ref {
  Shape shape;
  std::vector<double> data, imag;
  int64_t numel() const { return static_cast<int64_t>(data.size()); }
};
/// Reads any tensor (any strides/dtype) element by element via raw bytes: no kernels involved.
Ref to_ref(const Tensor& t);
/// Row-major flat index -> multi-index.
std::vector<int64_t> unravel(int64_t flat, const Shape& shape);
/// Broadcast read: element of r at the multi-index idx of a (larger) broadcast shape.
double at_broadcast(const Ref& r, const std::vector<int64_t>& idx);
/// Number of elements of a shape.
int64_t numel_of(const Shape& s);
/// Multi-index -> row-major flat index.
int64_t flat(const std::vector<int64_t>& idx, const Shape& s);
/// A reference of `shape` whose element at index i is src's flat element from(i), or `fill`
/// where from returns -1: the generic reference for ops that only move values.
Ref pick(const Ref& src, const Shape& shape,
         const std::function<int64_t(const std::vector<int64_t>&)>& from, double fill = 0);

/// One set of inputs for an op, with a label for failure messages.
struct Sample {
  std::string label;
  std::vector<Tensor> inputs;
};

struct Tolerance {
  double rtol, atol;
};
/// Per-dtype tolerances (float32: rtol 1.3e-6, atol 1e-5; f16/bf16 looser; ints exact).
Tolerance default_tolerance(DType dt);

struct ErrorCase {
  std::string label;
  std::function<void()> call;
  /// Checks the thrown error's type; the message must contain "[<op>]".
  std::function<bool(const std::exception&)> is_expected;
  std::string op;  ///< the op name expected in brackets
};
/// An ErrorCase that expects exception type E.
template <class E>
ErrorCase expect_error(std::string label, std::string op, std::function<void()> call) {
  return {std::move(label), std::move(call),
          [](const std::exception& e) { return dynamic_cast<const E*>(&e) != nullptr; },
          std::move(op)};
}

struct OpEntry {
  std::string prim;           ///< the primitive this entry covers (registry name)
  std::vector<DType> dtypes;  ///< dtypes the samples are generated in
  std::function<std::vector<Sample>(DType)> samples;
  std::function<Tensor(const std::vector<Tensor>&)> op;          ///< calls the public op
  std::function<Ref(const std::vector<Ref>&, DType)> reference;  ///< float64 loops
  std::vector<ErrorCase> errors;
  /// Optional: tolerance override for a dtype (defaults to default_tolerance).
  std::function<Tolerance(DType)> tolerance;
  /// Optional: check the output dtype (defaults to no check).
  std::function<DType(const std::vector<Tensor>&)> expected_dtype;
};

/// Adds entries to the global table (call from a static initializer in each test file).
bool register_entries(std::vector<OpEntry> entries);
const std::vector<OpEntry>& all_entries();

/// Runs every sample of the entry against its reference, and every error case.
void check_entry(const OpEntry& e);
/// Compares an output with a reference, reporting the first mismatch with context.
::testing::AssertionResult close(const Tensor& out, const Ref& ref, Tolerance tol);

// ---- sample helpers ----
/// Random values of the dtype (uniform in [lo, hi]; ints rounded; bools random).
Tensor random_tensor(Shape shape, DType dt, double lo = -2.0, double hi = 2.0, uint64_t seed = 1);
/// A non-contiguous tensor with the given shape and values like random_tensor (a transposed
/// or strided view of a larger buffer).
Tensor noncontiguous(Shape shape, DType dt, double lo = -2.0, double hi = 2.0, uint64_t seed = 2);
/// Standard unary samples: 0-d, empty, 1-d, 2-d, non-contiguous, larger than the parallel grain.
std::vector<Sample> unary_samples(DType dt, double lo = -2.0, double hi = 2.0);
/// Standard binary samples: same shape, broadcasting both ways, 0-d with n-d, empty,
/// non-contiguous, large.
std::vector<Sample> binary_samples(DType dt, double lo = -2.0, double hi = 2.0);

/// Sorting and selection have kinks where values tie or are NaN: no derivative there, so
/// derivative checks skip such samples.
inline bool is_selection(const std::string& prim) { return prim == "sort" || prim == "topk"; }
bool has_ties_or_nan(const Tensor& x);

inline const std::vector<DType> kAllDTypes = {kBool,    kUInt8,   kInt8,     kInt16,
                                              kInt32,   kInt64,   kFloat16,  kBFloat16,
                                              kFloat32, kFloat64, kComplex64};
inline const std::vector<DType> kFloatDTypes = {kFloat16, kBFloat16, kFloat32, kFloat64};
inline const std::vector<DType> kRealDTypes = {kUInt8,   kInt8,     kInt16,   kInt32,  kInt64,
                                               kFloat16, kBFloat16, kFloat32, kFloat64};
inline const std::vector<DType> kIntDTypes = {kUInt8, kInt8, kInt16, kInt32, kInt64};

}  // namespace tessera::test
