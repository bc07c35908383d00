#include "op_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <set>

namespace tessera::test {

std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    idx[i] = shape[i] ? flat % shape[i] : 0;
    flat = shape[i] ? flat / shape[i] : 0;
  }
  return idx;
}

double at_broadcast(const Ref& r, const std::vector<int64_t>& idx) {
  int64_t flat = 0;
  const size_t off = idx.size() - r.shape.size();
  for (size_t i = 0; i < r.shape.size(); ++i)
    flat = flat * r.shape[i] + (r.shape[i] == 1 ? 0 : idx[off + i]);
  return r.data[flat];
}

int64_t numel_of(const Shape& s) {
  return std::accumulate(s.begin(), s.end(), int64_t{1}, std::multiplies<>());
}

int64_t flat(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + idx[d];
  return f;
}

Ref pick(const Ref& src, const Shape& shape,
         const std::function<int64_t(const std::vector<int64_t>&)>& from, double fill) {
  Ref r{shape, std::vector<double>(numel_of(shape)), {}};
  if (!src.imag.empty()) r.imag.resize(r.data.size());
  for (int64_t i = 0; i < r.numel(); ++i) {
    const int64_t f = from(unravel(i, shape));
    r.data[i] = f < 0 ? fill : src.data[f];
    if (!r.imag.empty()) r.imag[i] = f < 0 ? 0 : src.imag[f];
  }
  return r;
}

Ref to_ref(const Tensor& t) {
  Ref r;
  r.shape = t.shape();
  const int64_t n = t.numel();
  r.data.resize(n);
  if (t.dtype() == kComplex64) r.imag.resize(n);
  const char* base = static_cast<const char*>(t.raw_data());
  const auto item = static_cast<int64_t>(t.itemsize());
  const auto nd = static_cast<size_t>(t.dim());
  std::vector<int64_t> idx(nd, 0);  // row-major odometer over the shape
  visit_dtype(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    for (int64_t i = 0; i < n; ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < nd; ++d) off += idx[d] * t.strides()[d];
      T v;
      std::memcpy(&v, base + off * item, sizeof(T));
      if constexpr (std::is_same_v<T, Complex64>) {
        r.data[i] = v.real();
        r.imag[i] = v.imag();
      } else {
        r.data[i] = static_cast<double>(static_cast<compute_t<T>>(v));
      }
      for (size_t d = nd; d-- > 0;) {
        if (++idx[d] < t.shape()[d]) break;
        idx[d] = 0;
      }
    }
  });
  return r;
}

Tolerance default_tolerance(DType dt) {
  switch (dt) {
    case kFloat16:
      return {1e-3, 1e-3};
    case kBFloat16:
      return {8e-3, 8e-3};
    case kFloat32:
      return {1.3e-6, 1e-5};
    case kComplex64:
      return {1.3e-6, 1e-5};
    case kFloat64:
      return {1e-12, 1e-12};
    default:
      return {0, 0};
  }
}

namespace {
std::vector<OpEntry>& table() {
  static std::vector<OpEntry> t;
  return t;
}

bool near(double a, double b, Tolerance tol) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  if (std::isinf(a) || std::isinf(b)) return a == b;
  return std::abs(a - b) <= tol.atol + tol.rtol * std::abs(b);
}

// Rounds a float64 reference to the output dtype, so exact dtypes compare exactly and 16-bit
// floats compare against the correctly rounded value.
double round_to(double v, DType dt) {
  switch (dt) {
    case kFloat16:
      return static_cast<float>(Half(static_cast<float>(v)));
    case kBFloat16:
      return static_cast<float>(BFloat16(static_cast<float>(v)));
    case kFloat32:
      return static_cast<float>(v);
    default:
      return v;
  }
}
}  // namespace

bool register_entries(std::vector<OpEntry> entries) {
  for (auto& e : entries) table().push_back(std::move(e));
  return true;
}
const std::vector<OpEntry>& all_entries() { return table(); }

::testing::AssertionResult close(const Tensor& out, const Ref& ref, Tolerance tol) {
  if (out.shape() != ref.shape)
    return ::testing::AssertionFailure()
           << "shape " << shape_str(out.shape()) << " != reference " << shape_str(ref.shape);
  Ref got = to_ref(out);
  for (int64_t i = 0; i < got.numel(); ++i) {
    double want = round_to(ref.data[i], out.dtype());
    bool ok = near(got.data[i], want, tol);
    if (ok && !got.imag.empty() && !ref.imag.empty()) ok = near(got.imag[i], ref.imag[i], tol);
    if (!ok)
      return ::testing::AssertionFailure()
             << "element " << i << " (index "
             << fmt::format("{}", fmt::join(unravel(i, ref.shape), ",")) << "): got " << got.data[i]
             << (got.imag.empty() ? "" : fmt::format("{:+}j", got.imag[i])) << ", want " << want
             << (ref.imag.empty() ? "" : fmt::format("{:+}j", ref.imag[i])) << " (rtol " << tol.rtol
             << ", atol " << tol.atol << ")";
  }
  return ::testing::AssertionSuccess();
}

void check_entry(const OpEntry& e) {
  for (DType dt : e.dtypes) {
    for (const Sample& s : e.samples(dt)) {
      SCOPED_TRACE(fmt::format("{} [{}] sample '{}'", e.prim, dtype_name(dt), s.label));
      Tensor out;
      try {
        out = e.op(s.inputs);
      } catch (const std::exception& ex) {
        ADD_FAILURE() << "threw: " << ex.what();
        continue;
      }
      if (e.expected_dtype) {
        EXPECT_EQ(dtype_name(out.dtype()), dtype_name(e.expected_dtype(s.inputs)));
      }
      std::vector<Ref> refs;
      for (const Tensor& t : s.inputs) refs.push_back(to_ref(t));
      Tolerance tol = e.tolerance ? e.tolerance(dt) : default_tolerance(out.dtype());
      EXPECT_TRUE(close(out, e.reference(refs, dt), tol));
    }
  }
  for (const ErrorCase& c : e.errors) {
    SCOPED_TRACE(fmt::format("{} error case '{}'", e.prim, c.label));
    try {
      c.call();
      ADD_FAILURE() << "expected an error, none was thrown";
    } catch (const std::exception& ex) {
      EXPECT_TRUE(c.is_expected(ex)) << "wrong error type: " << ex.what();
      EXPECT_NE(std::string(ex.what()).find("[" + c.op + "]"), std::string::npos)
          << "message does not name [" << c.op << "]: " << ex.what();
    }
  }
}

Tensor random_tensor(Shape shape, DType dt, double lo, double hi, uint64_t seed) {
  Generator g(seed);
  Tensor u = uniform(lo, hi, shape, kFloat64, &g);
  if (dt == kBool) return lt(u, Scalar((lo + hi) / 2));
  if (is_integral(dt)) return round(u).to(dt);
  if (dt == kComplex64) {
    Tensor im = uniform(lo, hi, shape, kFloat64, &g);
    // Build complex values by hand so this helper depends on no complex kernels.
    Tensor out = Tensor::empty(shape, kComplex64);
    auto re_v = u.contiguous().to_vector<double>(), im_v = im.contiguous().to_vector<double>();
    auto* p = out.data_ptr<Complex64>();
    for (size_t i = 0; i < re_v.size(); ++i)
      p[i] = Complex64(static_cast<float>(re_v[i]), static_cast<float>(im_v[i]));
    return out;
  }
  return u.to(dt);
}

Tensor noncontiguous(Shape shape, DType dt, double lo, double hi, uint64_t seed) {
  if (shape.size() < 2) {
    Shape big = shape.empty() ? Shape{} : Shape{shape[0] * 2};
    Tensor t = random_tensor(big, dt, lo, hi, seed);
    return shape.empty() ? t : t.slice(0, 0, std::nullopt, 2);
  }
  // Transposed storage of the last two dims: a genuinely strided view.
  Shape swapped = shape;
  std::swap(swapped[swapped.size() - 1], swapped[swapped.size() - 2]);
  return random_tensor(swapped, dt, lo, hi, seed).transpose(-1, -2);
}

std::vector<Sample> unary_samples(DType dt, double lo, double hi) {
  return {
      {"0-d", {random_tensor({}, dt, lo, hi, 11)}},
      {"empty", {random_tensor({0, 3}, dt, lo, hi, 12)}},
      {"1-d", {random_tensor({7}, dt, lo, hi, 13)}},
      {"2-d", {random_tensor({3, 5}, dt, lo, hi, 14)}},
      {"non-contiguous", {noncontiguous({4, 6}, dt, lo, hi, 15)}},
      {"large", {random_tensor({70000}, dt, lo, hi, 16)}},
  };
}

std::vector<Sample> binary_samples(DType dt, double lo, double hi) {
  return {
      {"same shape",
       {random_tensor({3, 4}, dt, lo, hi, 21), random_tensor({3, 4}, dt, lo, hi, 22)}},
      {"broadcast row",
       {random_tensor({3, 4}, dt, lo, hi, 23), random_tensor({4}, dt, lo, hi, 24)}},
      {"broadcast both",
       {random_tensor({3, 1}, dt, lo, hi, 25), random_tensor({1, 5}, dt, lo, hi, 26)}},
      {"0-d with 2-d", {random_tensor({}, dt, lo, hi, 27), random_tensor({2, 3}, dt, lo, hi, 28)}},
      {"empty", {random_tensor({0, 4}, dt, lo, hi, 29), random_tensor({1, 4}, dt, lo, hi, 30)}},
      {"non-contiguous",
       {noncontiguous({4, 6}, dt, lo, hi, 31), noncontiguous({4, 6}, dt, lo, hi, 32)}},
      {"large", {random_tensor({70000}, dt, lo, hi, 33), random_tensor({70000}, dt, lo, hi, 34)}},
  };
}

bool has_ties_or_nan(const Tensor& x) {
  std::vector<double> v = x.to_vector<double>();
  for (double d : v)
    if (std::isnan(d)) return true;
  std::sort(v.begin(), v.end());
  return std::adjacent_find(v.begin(), v.end()) != v.end();
}

// Every primitive in the registry has at least one entry in the test table.
TEST(OpTable, EveryPrimitiveHasAnEntry) {
  std::set<std::string> covered;
  for (const auto& e : all_entries()) covered.insert(e.prim);
  std::vector<std::string> missing;
  for (const auto& p : registry().all())
    if (!covered.count(p.name)) missing.push_back(p.name);
  EXPECT_TRUE(missing.empty()) << "primitives without a test table entry: "
                               << fmt::format("{}", fmt::join(missing, ", "));
}

}  // namespace tessera::test
