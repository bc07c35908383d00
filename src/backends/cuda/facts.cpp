// Measured facts of a CUDA device for the scheduler and the profiler: GEMM peaks per dtype
// (cuBLAS, as matmul runs), copy bandwidth on the device, pinned host<->device bandwidth,
// transfer latency and the funnel's overhead per GPU op. Timed with CUDA events where the
// work is on the device, with the host clock where the host waits anyway.
#include <functional>

#include "backends/cuda/common.h"
#include "runtime/calibration.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/linalg.h"
#include "tessera/runtime/cuda.h"

namespace tessera::cuda {
namespace {

// Best per-call milliseconds of fn over `reps` timed runs of `inner` calls each (after one
// warm-up call), measured with events on the current stream.
template <class F>
double best_ms(int device, int reps, int inner, F&& fn) {
  fn();
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    Event start(device), end(device);
    start.record();
    for (int i = 0; i < inner; ++i) fn();
    end.record();
    best = std::min(best, start.elapsed_ms(end) / inner);
  }
  return best;
}

// Best host-clock seconds of fn after one warm-up call (where the host waits anyway).
double best_host_seconds(int reps, const std::function<void()>& fn) {
  fn();
  return detail::best_seconds(reps, fn);
}

double gemm_peak(Device d, DType dt, int64_t n) {
  const Tensor a = full({n, n}, 1.0 / 3, {dt, d}), b = full({n, n}, 0.5, {dt, d});
  const double ms = best_ms(d.index, 3, 3, [&] { (void)matmul(a, b); });
  return 2.0 * static_cast<double>(n * n) * static_cast<double>(n) / (ms * 1e-3);
}

}  // namespace

DeviceFacts measure_facts(int device) {
  const int d = resolve(device);
  DeviceGuard guard(d);
  const Device dev = Device::cuda(d);
  const DeviceProperties p = device_properties(d);
  DeviceFacts f;
  f.device = dev;
  f.name = fmt::format("{} ({} SMs, sm_{}{}, {:.0f} GiB)", p.name, p.multiprocessors, p.major,
                       p.minor, static_cast<double>(p.total_memory) / (1 << 30));
  f.peak_flops[kFloat32] = gemm_peak(dev, kFloat32, 4096);
  f.peak_flops[kFloat64] = gemm_peak(dev, kFloat64, 2048);
  f.peak_flops[kFloat16] = gemm_peak(dev, kFloat16, 4096);
  f.peak_flops[kBFloat16] = gemm_peak(dev, kBFloat16, 4096);

  constexpr int64_t kBytes = int64_t{256} << 20;
  {
    const Tensor src = zeros({kBytes / 4}, {kFloat32, dev});
    Tensor dst = empty({kBytes / 4}, {kFloat32, dev});
    const double ms = best_ms(d, 3, 2, [&] { dst.copy_(src); });
    f.mem_bandwidth = 2.0 * static_cast<double>(kBytes) / (ms * 1e-3);
  }
  {
    constexpr int64_t kHost = int64_t{64} << 20;
    Tensor host = empty_pinned({kHost / 4});
    host.zero_();
    Tensor on_dev = empty({kHost / 4}, {kFloat32, dev});
    f.host_to_device_bandwidth =
        static_cast<double>(kHost) / best_host_seconds(3, [&] { on_dev.copy_(host); });
    f.device_to_host_bandwidth =
        static_cast<double>(kHost) / best_host_seconds(3, [&] { host.copy_(on_dev); });
    Tensor one_host = empty_pinned({1}), one_dev = empty({1}, {kFloat32, dev});
    one_host.zero_();
    f.transfer_latency = best_host_seconds(3,
                                           [&] {
                                             for (int i = 0; i < 20; ++i) one_dev.copy_(one_host);
                                           }) /
                         20;
  }
  {
    const Tensor a = ones({1}, {kFloat32, dev});
    constexpr int kOps = 2000;
    f.op_overhead = best_host_seconds(3,
                                      [&] {
                                        for (int i = 0; i < kOps; ++i) (void)add(a, a);
                                        synchronize(d);
                                      }) /
                    kOps;
  }
  synchronize(d);
  f.measured = true;
  return f;
}

}  // namespace tessera::cuda
