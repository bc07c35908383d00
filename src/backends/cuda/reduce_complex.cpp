// CUDA kernels of the reductions the CPU takes complex64 for (backends/cpu/reduce.cpp): sum,
// mean, prod (complex64 out) and norm (float32 out: the modulus' p-norm), through
// reduce_complex.cu. any / all of complex64 are reduce.cpp's (bool(z): either part nonzero) and
// cumsum / cumprod scan.cpp's. Host code only; amax, argmax, var, logsumexp and the rest refuse
// complex64 on the CPU and have no complex kernel here either.
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/reduce_host.h"
#include "backends/cuda/reduce_more.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {
namespace {

bool complex_input(Inputs in, const Attrs&) { return in[0].dtype() == kComplex64; }

void run(const char* name, int op, double param, Inputs in, Outputs out, const Attrs& a) {
  const Tensor& x = in[0];
  const Tensor& y = out[0];
  if (y.numel() == 0) return;
  const auto [outer, inner] = split_dims(x, a, name);
  const k::ReducePlan plan = k::plan_reduce(outer, inner);
  const Tensor work = reduce_workspace(plan, k::kPartBytes, y.device());
  const Tensor dst = staging(y, op == k::kZNorm ? kFloat32 : kComplex64);
  const int dev = y.device().index;
  {
    DeviceGuard guard(dev);
    k::reduce_complex(op, x.raw_data(), dst.raw_data(), outer, inner, outer.numel, inner.numel,
                      param, plan, work_ptr(work), current_stream(dev));
    launched(dev, name);
  }
  done_into(dst, y, name);
}

void sum_kernel(Inputs in, Outputs out, const Attrs& a) { run("sum", k::kZSum, 0, in, out, a); }
void mean_kernel(Inputs in, Outputs out, const Attrs& a) { run("mean", k::kZMean, 0, in, out, a); }
void prod_kernel(Inputs in, Outputs out, const Attrs& a) { run("prod", k::kZProd, 0, in, out, a); }
void norm_kernel(Inputs in, Outputs out, const Attrs& a) {
  run("norm", k::kZNorm, a.get<double>("p"), in, out, a);
}

struct Entry {
  const char* name;
  KernelFn fn;
};
constexpr std::array kComplex = {Entry{"sum", sum_kernel}, Entry{"mean", mean_kernel},
                                 Entry{"prod", prod_kernel}, Entry{"norm", norm_kernel}};

}  // namespace

void register_reduce_complex_kernels(Registry& r) {
  for (const Entry& e : kComplex)
    r.add_kernel(e.name, {DeviceType::CUDA, "cuda", e.fn, complex_input});
}

}  // namespace tessera::cuda
