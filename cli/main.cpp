// The `tessera` command: info, demo, bench.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <fstream>

#include "demo.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/device_facts.h"
#include "tessera/runtime/scheduler.h"
#include "tessera/tessera.h"

#ifdef TESSERA_WITH_BENCHMARKS
#include "bench.h"
#endif

namespace {

// "L1d 48K, L2 2048K, L3 ..." from sysfs (empty when unavailable).
std::string cpu_caches() {
  std::string out;
  for (int i = 0; i < 8; ++i) {
    const std::string dir = fmt::format("/sys/devices/system/cpu/cpu0/cache/index{}/", i);
    std::ifstream level(dir + "level"), type(dir + "type"), size(dir + "size");
    std::string l, t, sz;
    if (!(level >> l) || !(type >> t) || !(size >> sz)) break;
    const std::string suffix = t == "Data" ? "d" : t == "Instruction" ? "i" : "";
    out += fmt::format("{}L{}{} {}", out.empty() ? "" : ", ", l, suffix, sz);
  }
  return out.empty() ? "unknown" : out;
}

std::string rate(double v, std::string_view unit) {
  return v > 0 ? fmt::format("{:.1f} {}", v * 1e-9, unit) : std::string("-");
}

void print_device_facts(bool recalibrate) {
  using namespace tessera;
  if (recalibrate) tessera::recalibrate();
  fmt::print("  device facts  : cache {} ({})\n", calibration_cache_path(),
             recalibrate ? "rewritten now" : "--recalibrate measures again");
  for (Device d : known_devices()) {
    const DeviceFacts& f = device_facts(d);
    fmt::print("    {:<6} {} [{}]\n", d.str(), f.name, device_facts_source(d));
    std::string peaks;
    for (const auto& [dt, v] : f.peak_flops)
      peaks +=
          fmt::format("{}{} {}", peaks.empty() ? "" : ", ", dtype_name(dt), rate(v, "GFLOP/s"));
    fmt::print("           peak          : {}\n", peaks);
    fmt::print("           bandwidth     : {} (copy, read + write)\n",
               rate(f.mem_bandwidth, "GB/s"));
    if (!d.is_cpu())
      fmt::print("           host<->device : {} / {}, latency {:.1f} us\n",
                 rate(f.host_to_device_bandwidth, "GB/s"), rate(f.device_to_host_bandwidth, "GB/s"),
                 f.transfer_latency * 1e6);
    fmt::print("           op overhead   : {:.3f} us per dispatched op\n", f.op_overhead * 1e6);
  }
  fmt::print("  scheduler     : default device {}, tuning {}, deterministic {}\n",
             default_device().str(), tuning() ? "on" : "off", deterministic() ? "on" : "off");
}

// The CUDA line: not built, built without a usable device (and why), or each device.
void print_cuda(bool built) {
  using namespace tessera;
  if (!built) {
    fmt::print("  cuda          : not built with CUDA\n");
    return;
  }
  const int n = cuda::device_count();
  if (n == 0) {
    fmt::print("  cuda          : built, 0 devices ({})\n", cuda::unavailable_reason());
    return;
  }
  fmt::print("  cuda          : {} device(s)\n", n);
  for (int i = 0; i < n; ++i) {
    const cuda::DeviceProperties p = cuda::device_properties(i);
    fmt::print("    cuda:{:<3}     {}, {:.1f} GiB, {} SMs, compute capability {}.{}, {} MHz\n", i,
               p.name, static_cast<double>(p.total_memory) / (1 << 30), p.multiprocessors, p.major,
               p.minor, p.clock_khz / 1000);
  }
}

void print_info(bool recalibrate) {
  using namespace tessera;
  BuildInfo b = build_info();
  fmt::print("Tessera {}\n", b.version);
  fmt::print("  compiler      : {}\n", b.compiler);
  fmt::print("  cpu           : {}\n", cpu_description());
  fmt::print("  caches        : {}\n", cpu_caches());
  fmt::print("  simd target   : {} (chosen at run time)\n", simd_target());
  fmt::print("  threads       : {} (TESSERA_NUM_THREADS to change)\n", num_threads());
  fmt::print("  blas          : {}\n", b.blas_vendor);
  fmt::print("  onednn        : {}\n", b.onednn);
  fmt::print("  backends      : {}\n", fmt::join(b.backends, ", "));
  print_cuda(b.cuda_built);
  fmt::print("  primitives    : {}\n", registry().all().size());
  fmt::print("  plugins       : none loaded (no plugin loader yet)\n");
  print_device_facts(recalibrate);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tessera: tensors, kernels and the tools around them"};
  app.require_subcommand(1);
  auto* info =
      app.add_subcommand("info", "Build, CPU, SIMD, BLAS, backend and measured device facts");
  bool recalibrate = false;
  info->add_flag("--recalibrate", recalibrate,
                 "Measure the device facts again and rewrite the cache file");
  info->callback([&] { print_info(recalibrate); });

  tessera::demo::Options demo_opt;
  auto* demo = app.add_subcommand("demo", "Train a small CNN on the bundled digits");
  demo->add_option("--epochs", demo_opt.epochs, "Training epochs")->capture_default_str();
  demo->add_option("--batch-size", demo_opt.batch_size, "Batch size")->capture_default_str();
  demo->add_option("--model", demo_opt.model, "cnn or mlp")->capture_default_str();
  demo->add_option("--seed", demo_opt.seed, "Seed (split, init, shuffling)")->capture_default_str();
  demo->add_option("--device", demo_opt.device, "cpu (cuda needs the CUDA build)")
      ->capture_default_str();
  demo->add_option("--out", demo_opt.out, "Folder for the checkpoint and metrics")
      ->capture_default_str();
  demo->add_option("--data", demo_opt.data, "digits.csv.gz (default: the bundled copy)");
  demo->add_option("--lr", demo_opt.lr, "Peak learning rate (one-cycle)")->capture_default_str();
  demo->callback([&] { tessera::demo::run(demo_opt); });

#ifdef TESSERA_WITH_BENCHMARKS
  auto* bench = app.add_subcommand("bench", "Run a benchmark suite");
  std::string suite;
  bool json = false;
  tessera::bench::Options opt;
  bench->add_option("suite", suite, "Suite name (core, scheduler, autograd, train, gpu)")->required();
  bench->add_flag("--json", json, "Print JSON records");
  bench->add_option("--repeats", opt.repeats, "Timed runs per case (median reported)");
  bench->callback([&] {
    for (const auto& s : tessera::bench::suites())
      if (s.name == suite) return tessera::bench::print(s.run(opt), json);
    throw CLI::ValidationError("suite", "unknown suite '" + suite + "'");
  });
#endif

  try {
    CLI11_PARSE(app, argc, argv);
  } catch (const tessera::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
