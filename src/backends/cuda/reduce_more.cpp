// CUDA kernels of the reductions beyond the float sum / mean / amax / amin of reduce.cpp: sum,
// prod, amax, amin of bool and integer inputs (reduce_int.cu); prod, var, std, logsumexp, norm
// of floats (reduce_stats.cu; logsumexp of integers through float64); max / min along a dim
// with indices (argreduce.cu). Host code only, with the CPU's output dtype rules: the op layer
// allocated the outputs, and an output the kernels cannot write directly (strided, or of
// another dtype than theirs) goes through a contiguous temporary.
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/reduce_host.h"
#include "backends/cuda/reduce_more.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

bool int_input(Inputs in, const Attrs&) { return k::int_or_bool_code(dtype_code(in[0].dtype())); }
bool float_input(Inputs in, const Attrs&) { return k::float_code(dtype_code(in[0].dtype())); }
bool real_input(Inputs in, const Attrs&) { return dtype_code(in[0].dtype()) >= 0; }

// sum and prod write int64 (a "dtype" attr may ask for another integer dtype: converted after,
// as the CPU's writer does); amax and amin write the input's dtype.
void run_int(const char* name, int op, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const auto [outer, inner] = split_dims(x, a, name);
  const k::ReducePlan plan = k::plan_reduce(outer, inner);
  const Tensor work = reduce_workspace(plan, k::kPartBytes, y.device());
  const bool extreme = op == k::kIMax || op == k::kIMin;
  const Tensor dst = staging(y, extreme ? x.dtype() : kInt64);
  const int dev = y.device().index;
  {
    DeviceGuard guard(dev);
    k::reduce_int(op, dtype_code(x.dtype()), x.raw_data(), dst.raw_data(), outer, inner,
                  outer.numel, inner.numel, plan, work_ptr(work), current_stream(dev));
    launched(dev, name);
  }
  done_into(dst, y, name);
}

// Float statistics in the input's dtype. Integer inputs (logsumexp) are reduced as float64,
// exact like the CPU's int64 -> double, and the result converted to the output's dtype.
void run_stat(const char* name, int op, double param, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  Tensor x = in[0];
  if (!k::float_code(dtype_code(x.dtype()))) {
    const Tensor f = Tensor::empty(x.shape(), kFloat64, x.device());
    convert_into(x, f, name);
    x = f;
  }
  const auto [outer, inner] = split_dims(x, a, name);
  const k::ReducePlan plan = k::plan_reduce(outer, inner);
  const Tensor work = reduce_workspace(plan, k::kPartBytes, y.device());
  const Tensor dst = staging(y, x.dtype());
  const int dev = y.device().index;
  {
    DeviceGuard guard(dev);
    k::reduce_stat(op, dtype_code(x.dtype()), x.raw_data(), dst.raw_data(), outer, inner,
                   outer.numel, inner.numel, param, plan, work_ptr(work), current_stream(dev));
    launched(dev, name);
  }
  done_into(dst, y, name);
}

// max_dim / min_dim: values in the input's dtype and int64 indices.
void run_extreme_dim(const char* name, bool max, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  if (out[0].numel() == 0) return;
  const auto [outer, inner] = split_dims(x, a, name);
  TS_CHECK(inner.numel > 0, IndexError, name, "cannot reduce over an empty dim");
  const Tensor values = staging(out[0], x.dtype()), indices = staging(out[1], kInt64);
  const int dev = x.device().index;
  {
    DeviceGuard guard(dev);
    k::extreme_dim(max, dtype_code(x.dtype()), x.raw_data(), values.raw_data(),
                   indices.data_ptr<int64_t>(), outer, inner, outer.numel, inner.numel,
                   current_stream(dev));
    launched(dev, name);
  }
  done_into(values, out[0], name);
  done_into(indices, out[1], name);
}

double correction(const Attrs& a) {
  return static_cast<double>(a.get_or<int64_t>("correction", 1));
}

void sum_int(Inputs in, Outputs out, const Attrs& a) { run_int("sum", k::kISum, in, out, a); }
void prod_int(Inputs in, Outputs out, const Attrs& a) { run_int("prod", k::kIProd, in, out, a); }
void amax_int(Inputs in, Outputs out, const Attrs& a) { run_int("amax", k::kIMax, in, out, a); }
void amin_int(Inputs in, Outputs out, const Attrs& a) { run_int("amin", k::kIMin, in, out, a); }
void prod_float(Inputs in, Outputs out, const Attrs& a) {
  run_stat("prod", k::kSProd, 0, in, out, a);
}
void var_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_stat("var", k::kSVar, correction(a), in, out, a);
}
void std_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_stat("std", k::kSStd, correction(a), in, out, a);
}
void logsumexp_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_stat("logsumexp", k::kSLogSumExp, 0, in, out, a);
}
void norm_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_stat("norm", k::kSNorm, a.get<double>("p"), in, out, a);
}
void max_dim_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_extreme_dim("max_dim", true, in, out, a);
}
void min_dim_kernel(Inputs in, Outputs out, const Attrs& a) {
  run_extreme_dim("min_dim", false, in, out, a);
}

struct Entry {
  const char* name;
  KernelFn fn;
  SupportsFn supports;
};
constexpr std::array kMore = {
    Entry{"sum", sum_int, int_input},
    Entry{"prod", prod_int, int_input},
    Entry{"amax", amax_int, int_input},
    Entry{"amin", amin_int, int_input},
    Entry{"prod", prod_float, float_input},
    Entry{"var", var_kernel, float_input},
    Entry{"std", std_kernel, float_input},
    Entry{"logsumexp", logsumexp_kernel, real_input},
    Entry{"norm", norm_kernel, float_input},
    Entry{"max_dim", max_dim_kernel, real_input},
    Entry{"min_dim", min_dim_kernel, real_input},
};

}  // namespace

void register_reduce_more_kernels(Registry& r) {
  for (const Entry& e : kMore) r.add_kernel(e.name, {DeviceType::CUDA, "cuda", e.fn, e.supports});
}

}  // namespace tessera::cuda
