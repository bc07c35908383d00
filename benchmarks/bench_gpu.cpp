// `tessera bench gpu`: the CUDA backend against the device's own limits measured in the same
// run (a device-to-device copy for bandwidth, cuBLAS called directly for GEMM), the host cost of
// a tiny op, and the MLP and LeNet-5 training steps of `tessera bench train` on the GPU (the
// same steps in PyTorch: benchmarks/compare/gpu_compare.py). Device work is timed with CUDA
// events, the cases of a comparison in alternation so that clock changes hit them alike.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "bench.h"
#include "tessera/runtime/cuda.h"
#include "tessera/tessera.h"

namespace tessera::bench {
namespace {

namespace F = nn::functional;

constexpr int kDevice = 0;
constexpr int64_t kBigN = int64_t{1} << 28;

// Median milliseconds per call of each fn, timed with events in alternation: each repetition
// runs every fn `inner` times between two events on the current stream.
std::vector<double> median_ms(const std::vector<std::function<void()>>& fns, int inner,
                              const Options& opt) {
  for (const auto& fn : fns) fn();  // warm-up: kernels loaded, allocator cache filled
  std::vector<std::vector<double>> ms(fns.size());
  for (int r = 0; r < opt.repeats; ++r)
    for (size_t i = 0; i < fns.size(); ++i) {
      cuda::Event start(kDevice), end(kDevice);
      start.record();
      for (int k = 0; k < inner; ++k) fns[i]();
      end.record();
      ms[i].push_back(start.elapsed_ms(end) / inner);
    }
  std::vector<double> out;
  for (auto& v : ms) {
    std::sort(v.begin(), v.end());
    out.push_back(v[v.size() / 2]);
  }
  return out;
}

Record bandwidth(const std::string& name, double bytes, double ms, double copy_bw,
                 const std::string& target) {
  const double bw = bytes / (ms * 1e-3);
  return {name, bw / 1e9, "GB/s", "device-to-device copy", copy_bw / 1e9, bw / copy_bw, target};
}

// Runs a case that may need a kernel the CUDA backend does not have yet, or fail on the device:
// the row then says so instead of ending the suite (and losing the other rows). A failure that
// leaves the CUDA context unusable fails the later cases too, each with its message.
void attempt(std::vector<Record>& out, const std::string& name,
             const std::function<std::vector<Record>()>& run) {
  try {
    for (Record& r : run()) out.push_back(std::move(r));
  } catch (const NotImplementedError& e) {
    out.push_back({name, 0, "-", fmt::format("not run: {}", e.what()), 0, 0, ""});
  } catch (const Error& e) {
    out.push_back({name, 0, "-", fmt::format("failed: {}", e.what()), 0, 0, ""});
  }
}

std::vector<Record> memory_cases(const Options& opt) {
  const Device d = Device::cuda(kDevice);
  // Values do not matter for bandwidth; fills keep the set-up on the device.
  const Tensor a = full({kBigN}, 0.25, {kFloat32, d}), b = full({kBigN}, 0.5, {kFloat32, d});
  Tensor dst = empty({kBigN}, {kFloat32, d});
  const Tensor rows = full({kBigN / 4096, 4096}, 0.5, {kFloat32, d});
  // layer_norm with its weight and bias (the rows vary so the statistics are not trivial).
  const Tensor ln_x = add(rows, arange(4096, kFloat32).to(d)), w = full({4096}, 1.5, {kFloat32, d}),
               bias = full({4096}, 0.25, {kFloat32, d});
  const Shape last{4096};
  const auto t = median_ms(
      {[&] { dst.copy_(a); }, [&] { (void)add(a, b); }, [&] { (void)sum(a); },
       [&] { (void)softmax(rows, -1); }, [&] { (void)F::layer_norm(ln_x, last, w, bias); }},
      3, opt);
  const double n4 = 4.0 * static_cast<double>(kBigN), copy_bw = 2 * n4 / (t[0] * 1e-3);
  std::vector<Record> out{
      bandwidth("add f32 2^28", 3 * n4, t[1], copy_bw, ">= 0.90"),
      bandwidth("sum f32 2^28", n4, t[2], copy_bw, ">= 0.85"),
      bandwidth("softmax f32 rows of 4096 (2^28)", 2 * n4, t[3], copy_bw, ">= 0.75"),
      bandwidth("layer_norm f32 rows of 4096 (2^28)", 2 * n4, t[4], copy_bw, ">= 0.75")};
  // The fused backward (dx, dweight, dbias): reads dy and x, writes dx.
  auto [y, mean, rstd] = native_layer_norm(ln_x, 1, w, bias);
  static const Primitive& bw = prim("layer_norm_backward");
  const std::vector<Tensor> args{rows, ln_x, mean, rstd, w};
  const Attrs attrs{{"ndim", int64_t{1}}, {"weight_grads", true}};
  const double ms = median_ms({[&] { (void)dispatch(bw, args, attrs); }}, 3, opt)[0];
  out.push_back(bandwidth("layer_norm backward f32 rows of 4096 (2^28)", 3 * n4, ms, copy_bw, ""));
  return out;
}

Record gemm_case(DType dt, int64_t n, const Options& opt) {
  const Device d = Device::cuda(kDevice);
  const Tensor a = full({n, n}, 0.25, {dt, d}), b = full({n, n}, 0.5, {dt, d});
  const Tensor c = empty({n, n}, {dt, d});
  const auto t =
      median_ms({[&] { (void)matmul(a, b); }, [&] { cuda::cublas_gemm(a, b, c); }}, 3, opt);
  const double flop =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  return {fmt::format("matmul {} {}^3", dtype_name(dt), n),
          flop / (t[0] * 1e-3) / 1e12,
          "TFLOP/s",
          "cuBLAS called directly",
          flop / (t[1] * 1e-3) / 1e12,
          t[1] / t[0],
          ">= 0.97"};
}

// Host time to queue one 1-element add on the GPU (no synchronization): batches of 256 calls,
// the queue drained between batches so it never fills and blocks the host.
Record tiny_op_case(const Options& opt) {
  const Device d = Device::cuda(kDevice);
  const Tensor a = ones({1}, {kFloat32, d}), b = ones({1}, {kFloat32, d});
  constexpr int kBatch = 256;
  std::vector<double> us;
  for (int r = 0; r < std::max(opt.repeats, 30); ++r) {
    cuda::synchronize(kDevice);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kBatch; ++i) (void)add(a, b);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
        kBatch);
  }
  cuda::synchronize(kDevice);
  std::sort(us.begin(), us.end());
  const double med = us[us.size() / 2];
  return {"1-element add on the GPU, host cost per op (no sync)",
          med,
          "us",
          "budget 4 us",
          4.0,
          4.0 / med,
          "<= 4 us"};
}

// Milliseconds per training step (forward, cross-entropy, backward, AdamW) on the GPU, each
// step waited for, as a training loop that reads its loss would.
Record step_case(const std::string& name, const std::shared_ptr<nn::Module>& model, const Tensor& x,
                 const Tensor& y, const Options& opt) {
  const Device d = Device::cuda(kDevice);
  model->to(d);
  const Tensor xd = x.to(d), yd = y.to(d);
  optim::AdamW optimizer(model->parameters(), {.lr = 1e-3});
  auto step = [&] {
    Tensor loss = F::cross_entropy((*model)(xd), yd);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    cuda::synchronize(kDevice);
  };
  return {name,
          median_seconds(step, opt) * 1e3,
          "ms",
          "",
          0,
          0,
          "PyTorch: benchmarks/compare/gpu_compare.py"};
}

}  // namespace

std::vector<Record> run_gpu(const Options& opt) {
  cuda::check_device(kDevice);  // DeviceError naming the reason when there is no GPU
  manual_seed(0);
  std::vector<Record> out;
  attempt(out, "add, sum, softmax, layer_norm f32 2^28", [&] { return memory_cases(opt); });
  attempt(out, "matmul bfloat16 8192^3",
          [&] { return std::vector<Record>{gemm_case(kBFloat16, 8192, opt)}; });
  attempt(out, "matmul float32 4096^3",
          [&] { return std::vector<Record>{gemm_case(kFloat32, 4096, opt)}; });
  attempt(out, "1-element add on the GPU, host cost per op (no sync)",
          [&] { return std::vector<Record>{tiny_op_case(opt)}; });
  const std::string mlp_name = "MLP 784-128-10 batch 256 train step (AdamW) on the GPU";
  attempt(out, mlp_name, [&] {
    return std::vector<Record>{
        step_case(mlp_name, mlp_model(), randn({256, 784}), randint(0, 10, {256}), opt)};
  });
  const std::string lenet_name = "LeNet-5 28x28 batch 64 train step (AdamW) on the GPU";
  attempt(out, lenet_name, [&] {
    return std::vector<Record>{
        step_case(lenet_name, lenet5_model(), randn({64, 1, 28, 28}), randint(0, 10, {64}), opt)};
  });
  return out;
}

}  // namespace tessera::bench
