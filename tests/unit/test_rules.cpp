// Checks the autodiff rules of every primitive directly, driven by the op test table: each
// float64 sample is run once with a capturing layer to learn the primitive call (inputs and
// attrs) the public op makes, then the rules of that call are checked against independent
// references: vjp against central differences, jvp against directional differences, and the
// batch rule against a loop over the batch. TESSERA_RULES_ONLY=a,b restricts the primitives.
#include <gtest/gtest-spi.h>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "op_table.h"
#include "tessera/runtime/dispatch.h"

namespace tessera::test {
namespace {

struct Call {
  const Primitive* prim;
  std::vector<Tensor> inputs, outputs;
  Attrs attrs;
};

thread_local std::vector<Call>* t_calls = nullptr;
thread_local int t_depth = 0;

std::vector<Tensor> capture(const Primitive& p, Inputs in, const Attrs& a) {
  std::vector<Tensor> before(in.begin(), in.end());
  if (p.has(kMutatesInput0) && t_depth == 0) before[0] = before[0].clone();
  ++t_depth;
  std::vector<Tensor> out = redispatch(p, in, a, Layer::Tracing);
  --t_depth;
  if (t_depth == 0 && t_calls) t_calls->push_back({&p, std::move(before), out, a});
  return out;
}

// The primitive calls a public op makes (outermost only).
std::vector<Call> calls_of(const OpEntry& e, const std::vector<Tensor>& inputs) {
  std::vector<Call> calls;
  t_calls = &calls;
  set_layer_handler(Layer::Tracing, capture);
  set_layer_active(Layer::Tracing, true);
  try {
    e.op(inputs);
  } catch (...) {
    set_layer_active(Layer::Tracing, false);
    t_calls = nullptr;
    throw;
  }
  set_layer_active(Layer::Tracing, false);
  t_calls = nullptr;
  return calls;
}

std::set<std::string> only_filter() {
  std::set<std::string> s;
  if (const char* env = std::getenv("TESSERA_RULES_ONLY")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ',')) s.insert(item);
  }
  return s;
}

bool wanted(const std::string& prim) {
  static const std::set<std::string> only = only_filter();
  return only.empty() || only.count(prim);
}

// Runs the primitive on fresh copies of the inputs (in-place primitives mutate input 0).
std::vector<Tensor> eval(const Call& c, std::vector<Tensor> in) {
  for (Tensor& t : in) t = t.clone();
  return dispatch(*c.prim, in, c.attrs);
}

bool floating(const Tensor& t) { return t.dtype() == kFloat64; }

double inner(const Tensor& a, const Tensor& b) {
  Ref ra = to_ref(a), rb = to_ref(b);
  double s = 0;
  for (int64_t i = 0; i < ra.numel(); ++i) s += ra.data[i] * rb.data[i];
  return s;
}

// <v, f(inputs)> over the floating outputs.
double weighted(const Call& c, const std::vector<Tensor>& in, const std::vector<Tensor>& v) {
  std::vector<Tensor> out = eval(c, in);
  double s = 0;
  for (size_t o = 0; o < out.size(); ++o)
    if (v[o].defined()) s += inner(out[o], v[o]);
  return s;
}

// Up to 24 flat positions of a tensor with n elements (all when small).
std::vector<int64_t> probe_positions(int64_t n) {
  std::vector<int64_t> pos;
  const int64_t step = n <= 48 ? 1 : n / 24;
  for (int64_t i = 0; i < n; i += step) pos.push_back(i);
  return pos;
}

Tensor with_delta(const Tensor& x, int64_t flat_pos, double delta) {
  Tensor c = x.contiguous().clone();
  c.data_ptr<double>()[flat_pos] += delta;
  return c;
}

bool agree(double got, double want) {
  if (std::isnan(got) && std::isnan(want)) return true;
  return std::abs(got - want) <= 1e-5 + 1e-4 * std::abs(want);
}

constexpr double kStep = 1e-6;

// Central differences at two steps agree: the function is smooth enough there to serve as
// a reference (not at kinks, ties, NaN, or too close to a singularity).
bool converged(double coarse, double fine) {
  return !std::isnan(coarse) && std::abs(coarse - fine) <= 1e-5 + 1e-4 * std::abs(fine);
}

void check_vjp(const Call& c, const std::string& label) {
  std::vector<Tensor> cot(c.outputs.size());
  for (size_t o = 0; o < cot.size(); ++o)
    if (floating(c.outputs[o]))
      cot[o] = random_tensor(c.outputs[o].shape(), kFloat64, -1, 1, 100 + o);
  // What the primitive says its vjp does not read reaches it as zeros, as in the engine.
  std::vector<Tensor> rin = c.inputs, rout = c.outputs;
  for (Tensor& t : rin)
    if ((c.prim->vjp_skips & kVjpSkipsFloatInputs) && floating(t))
      t = zeros({}, t.dtype()).expand(t.shape());
  for (Tensor& t : rout)
    if (c.prim->vjp_skips & kVjpSkipsOutputs) t = zeros({}, t.dtype()).expand(t.shape());
  std::vector<Tensor> grads = c.prim->vjp(rin, rout, cot, c.attrs);
  ASSERT_EQ(grads.size(), c.inputs.size()) << label << ": vjp returned the wrong count";
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& x = c.inputs[i];
    if (!floating(x)) continue;
    if (!grads[i].defined()) {
      ADD_FAILURE() << label << ": vjp gave no gradient for floating input " << i;
      continue;
    }
    ASSERT_EQ(grads[i].shape(), x.shape()) << label << ": gradient " << i << " shape";
    ASSERT_EQ(grads[i].dtype(), x.dtype()) << label << ": gradient " << i << " dtype";
    Ref g = to_ref(grads[i]);
    for (int64_t pos : probe_positions(x.numel())) {
      std::vector<Tensor> plus = c.inputs, minus = c.inputs;
      plus[i] = with_delta(x, pos, kStep).reshape(x.shape());
      minus[i] = with_delta(x, pos, -kStep).reshape(x.shape());
      const double fd = (weighted(c, plus, cot) - weighted(c, minus, cot)) / (2 * kStep);
      plus[i] = with_delta(x, pos, kStep / 10).reshape(x.shape());
      minus[i] = with_delta(x, pos, -kStep / 10).reshape(x.shape());
      const double fine = (weighted(c, plus, cot) - weighted(c, minus, cot)) / (kStep / 5);
      if (!converged(fd, fine)) continue;  // a kink or NaN: no reference there
      EXPECT_TRUE(agree(g.data[pos], fd)) << label << ": d/d input " << i << "[" << pos << "]: vjp "
                                          << g.data[pos] << ", differences " << fd;
    }
  }
}

void check_jvp(const Call& c, const std::string& label) {
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Tensor& x = c.inputs[i];
    if (!floating(x)) continue;
    std::vector<Tensor> tangents(c.inputs.size());
    tangents[i] = random_tensor(x.shape(), kFloat64, -1, 1, 200 + i);
    std::vector<Tensor> jv = c.prim->jvp(c.inputs, c.outputs, tangents, c.attrs);
    ASSERT_EQ(jv.size(), c.outputs.size()) << label << ": jvp returned the wrong count";
    std::vector<Tensor> plus = c.inputs, minus = c.inputs;
    plus[i] = add(x, mul(tangents[i], Scalar(kStep)));
    minus[i] = sub(x, mul(tangents[i], Scalar(kStep)));
    std::vector<Tensor> fp = eval(c, plus), fm = eval(c, minus);
    std::vector<Tensor> plus2 = c.inputs, minus2 = c.inputs;
    plus2[i] = add(x, mul(tangents[i], Scalar(kStep / 10)));
    minus2[i] = sub(x, mul(tangents[i], Scalar(kStep / 10)));
    std::vector<Tensor> fp2 = eval(c, plus2), fm2 = eval(c, minus2);
    for (size_t o = 0; o < jv.size(); ++o) {
      if (!floating(c.outputs[o])) continue;
      Ref want = to_ref(div(sub(fp[o], fm[o]), Scalar(2 * kStep)));
      Ref fine = to_ref(div(sub(fp2[o], fm2[o]), Scalar(kStep / 5)));
      Ref got =
          jv[o].defined() ? to_ref(jv[o]) : Ref{want.shape, std::vector<double>(want.numel()), {}};
      ASSERT_EQ(got.shape, want.shape) << label << ": tangent " << o << " shape";
      for (int64_t k = 0; k < want.numel(); ++k)
        if (converged(want.data[k], fine.data[k]) && !agree(got.data[k], want.data[k])) {
          ADD_FAILURE() << label << ": output " << o << "[" << k << "] along input " << i
                        << ": jvp " << got.data[k] << ", differences " << want.data[k];
          break;
        }
    }
  }
}

constexpr int64_t kBatch = 3;

// Example b of the batch: floating inputs shrink toward zero (stays in every op's domain),
// other inputs (indices, masks) are the same in every example.
Tensor example(const Tensor& x, int64_t b) {
  return floating(x) && b > 0 ? mul(x, Scalar(1.0 - 0.2 * static_cast<double>(b))) : x;
}

void check_batch_config(const Call& c, const std::vector<int64_t>& bdims,
                        const std::string& label) {
  std::vector<Tensor> phys(c.inputs.size());
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (bdims[i] < 0) {
      phys[i] = c.inputs[i];
      continue;
    }
    std::vector<Tensor> ex;
    for (int64_t b = 0; b < kBatch; ++b) ex.push_back(example(c.inputs[i], b).clone());
    phys[i] = stack(ex, bdims[i]);
  }
  std::vector<int64_t> out_bdims;
  std::vector<Tensor> in = phys;
  if (c.prim->has(kMutatesInput0)) in[0] = in[0].clone();
  std::vector<Tensor> got = c.prim->batch(in, bdims, c.attrs, out_bdims);
  ASSERT_EQ(out_bdims.size(), got.size()) << label << ": out_bdims count";
  std::vector<std::vector<Tensor>> loop(got.size());
  for (int64_t b = 0; b < kBatch; ++b) {
    std::vector<Tensor> ex(c.inputs.size());
    for (size_t i = 0; i < ex.size(); ++i)
      ex[i] = bdims[i] < 0 ? c.inputs[i] : example(c.inputs[i], b);
    std::vector<Tensor> out = eval(c, ex);
    for (size_t o = 0; o < out.size(); ++o) loop[o].push_back(out[o]);
  }
  for (size_t o = 0; o < got.size(); ++o) {
    Tensor want = stack(loop[o], 0);
    Tensor g = out_bdims[o] < 0 ? got[o].unsqueeze(0).expand(want.shape())
                                : movedim(got[o], out_bdims[o], 0);
    EXPECT_TRUE(close(g, to_ref(want), default_tolerance(want.dtype())))
        << label << ": output " << o;
  }
}

void check_batch(const Call& c, const std::string& label) {
  const size_t n = c.inputs.size();
  std::vector<std::vector<int64_t>> configs;
  std::vector<int64_t> front(n, 0), last(n, -1), middle(n, -1);
  for (size_t i = 0; i < n; ++i)
    middle[i] = i == 0 || n == 1 ? std::min<int64_t>(1, c.inputs[i].dim()) : -1;
  last[0] = c.inputs[0].dim();
  configs = {front, last, middle};
  if (n > 1) {
    std::vector<int64_t> second_only(n, -1);
    second_only[1] = c.inputs[1].dim();
    if (!c.prim->has(kMutatesInput0)) configs.push_back(second_only);
  }
  for (const auto& cfg : configs) {
    std::string l = label + " bdims";
    for (int64_t b : cfg) l += " " + std::to_string(b);
    check_batch_config(c, cfg, l);
  }
}

using Checker = void (*)(const Call&, const std::string&);

struct Coverage {
  std::set<std::string> checked, missing;
};

// Runs `check` on the captured call of every float64 sample of every entry.
Coverage run_rules(Checker check, bool (*has_rule)(const Primitive&),
                   bool (*applies)(const Primitive&)) {
  Coverage cov;
  for (const OpEntry& e : all_entries()) {
    if (!wanted(e.prim)) continue;
    const Primitive& p = registry().get(e.prim);
    if (!applies(p)) continue;
    if (!has_rule(p)) {
      cov.missing.insert(e.prim);
      continue;
    }
    if (std::find(e.dtypes.begin(), e.dtypes.end(), kFloat64) == e.dtypes.end()) continue;
    for (const Sample& s : e.samples(kFloat64)) {
      std::vector<Call> calls = calls_of(e, s.inputs);
      for (const Call& c : calls) {
        if (c.prim != &p) continue;
        if (check != check_batch && is_selection(e.prim) && has_ties_or_nan(c.inputs[0])) break;
        check(c, e.prim + " [" + s.label + "]");
        cov.checked.insert(e.prim);
        break;
      }
    }
  }
  return cov;
}

bool differentiable(const Primitive& p) { return !p.has(kNonDifferentiable); }
bool batchable(const Primitive& p) {
  return !p.has(kDynamicShape) && !p.has(kRandom) && p.kind != PrimKind::Creation;
}

void report(const char* what, const Coverage& cov) {
  std::printf("[rules] %s: %zu primitives checked; without a rule: %s\n", what, cov.checked.size(),
              fmt::format("{}", fmt::join(cov.missing, ", ")).c_str());
}

}  // namespace

TEST(AutodiffRules, VjpMatchesCentralDifferences) {
  Coverage cov = run_rules(
      check_vjp, [](const Primitive& p) { return bool(p.vjp); }, differentiable);
  report("vjp", cov);
}

TEST(AutodiffRules, JvpMatchesDirectionalDifferences) {
  Coverage cov = run_rules(
      check_jvp, [](const Primitive& p) { return bool(p.jvp); }, differentiable);
  report("jvp", cov);
}

TEST(AutodiffRules, BatchRuleMatchesLoop) {
  Coverage cov = run_rules(
      check_batch, [](const Primitive& p) { return bool(p.batch); }, batchable);
  report("batch (the others use the loop-and-stack fallback)", cov);
}

}  // namespace tessera::test

namespace tessera::test {
// Development aid (run with --gtest_also_run_disabled_tests): which primitives' vjp rules
// pass the checker without their outputs / floating inputs, i.e. candidates for vjp_skips.
TEST(AutodiffRules, DISABLED_ProbeVjpSkips) {
  for (uint8_t skip : {uint8_t{kVjpSkipsOutputs}, uint8_t{kVjpSkipsFloatInputs}}) {
    std::set<std::string> ok;
    for (Primitive& p : const_cast<std::deque<Primitive>&>(registry().all())) {
      if (!p.vjp || (p.vjp_skips & skip)) continue;
      const uint8_t before = p.vjp_skips;
      p.vjp_skips |= skip;
      const bool saved = ::testing::Test::HasFailure();
      ::testing::TestPartResultArray results;
      {
        ::testing::ScopedFakeTestPartResultReporter rep(
            ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
        for (const OpEntry& e : all_entries()) {
          if (e.prim != p.name ||
              std::find(e.dtypes.begin(), e.dtypes.end(), kFloat64) == e.dtypes.end())
            continue;
          for (const Sample& smp : e.samples(kFloat64))
            for (const Call& c : calls_of(e, smp.inputs))
              if (c.prim == &p) {
                try {
                  check_vjp(c, p.name);
                } catch (...) {
                  ADD_FAILURE();
                }
                break;
              }
        }
      }
      (void)saved;
      if (results.size() == 0) ok.insert(p.name);
      p.vjp_skips = before;
    }
    std::printf("[probe] %s: %s\n",
                skip == kVjpSkipsOutputs ? "skips outputs" : "skips float inputs",
                fmt::format("{}", fmt::join(ok, ", ")).c_str());
  }
}
}  // namespace tessera::test
