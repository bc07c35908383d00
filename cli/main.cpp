// The `tessera` command: info, demo, bench.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "demo.h"
#include "tessera/tessera.h"

#ifdef TESSERA_WITH_BENCHMARKS
#include "bench.h"
#endif

namespace {

void print_info() {
  using namespace tessera;
  BuildInfo b = build_info();
  fmt::print("Tessera {}\n", b.version);
  fmt::print("  compiler      : {}\n", b.compiler);
  fmt::print("  cpu           : {}\n", cpu_description());
  fmt::print("  simd target   : {} (chosen at run time)\n", simd_target());
  fmt::print("  threads       : {} (TESSERA_NUM_THREADS to change)\n", num_threads());
  fmt::print("  blas          : {}\n", b.blas_vendor);
  fmt::print("  backends      : {}\n", fmt::join(b.backends, ", "));
  fmt::print("  cuda          : {}\n", b.cuda_built ? fmt::format("{} device(s)", cuda::device_count())
                                                    : std::string("not built with CUDA"));
  fmt::print("  primitives    : {}\n", registry().all().size());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Tessera: tensors, kernels and the tools around them"};
  app.require_subcommand(1);
  app.add_subcommand("info", "Build, CPU, SIMD, BLAS and backend facts")->callback(print_info);

  auto* demo = app.add_subcommand("demo", "Run the worked example");
  demo->callback([] { tessera::demo::run(); });

#ifdef TESSERA_WITH_BENCHMARKS
  auto* bench = app.add_subcommand("bench", "Run a benchmark suite");
  std::string suite;
  bool json = false;
  tessera::bench::Options opt;
  bench->add_option("suite", suite, "Suite name (core)")->required();
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
