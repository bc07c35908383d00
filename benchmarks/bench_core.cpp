// `tessera bench core`: memory-bound elementwise/reduction kernels and layer_norm against a
// plain multi-threaded copy, GEMM against cblas_sgemm called directly, and the funnel's fixed
// cost.
#include <cblas.h>
#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "bench.h"
#include "tessera/tessera.h"

namespace tessera::bench {
namespace {

constexpr int64_t kBigN = int64_t{1} << 24;

Record bandwidth_case(const std::string& name, double bytes, double seconds, double copy_bw,
                      const std::string& target) {
  double bw = bytes / seconds;
  return {name, bw / 1e9, "GB/s", "multi-threaded copy", copy_bw / 1e9, bw / copy_bw, target};
}

// Memory-bound kernels against their peer, a memcpy split across the same threads, timed
// in alternation with it so both see the same machine.
std::vector<Record> memory_cases(const Options& opt) {
  Tensor src = ones({kBigN}), dst = zeros({kBigN});
  const auto* s = static_cast<const char*>(src.raw_data());
  auto* d = static_cast<char*>(dst.raw_data());
  const auto bytes = static_cast<int64_t>(src.nbytes());
  auto copy = [&] {
    parallel_for(bytes, 1 << 20, [&](int64_t b, int64_t e) { std::memcpy(d + b, s + b, e - b); });
  };
  Tensor a = rand({kBigN}), b = rand({kBigN});
  const auto t = median_seconds_interleaved({copy, [&] { add(a, b); }, [&] { sum(a); }}, opt);
  const double n4 = 4.0 * static_cast<double>(kBigN);
  const double copy_bw = 2.0 * static_cast<double>(bytes) / t[0];  // read + write
  return {bandwidth_case("add f32 2^24", 3 * n4, t[1], copy_bw, ">= 0.90"),
          bandwidth_case("sum f32 2^24", n4, t[2], copy_bw, ">= 0.85")};
}

// The formula nn::functional::layer_norm was before the fused primitive (a pass per op).
Tensor composite_layer_norm(const Tensor& x, const Tensor& w, const Tensor& b) {
  const Tensor mean = tessera::mean(x, {-1}, true), var = tessera::var(x, {-1}, 0, true);
  return (x - mean) * rsqrt(var + 1e-5) * w + b;
}

// layer_norm over the last dim against a copy of the same bytes (read + write) and against
// the composite formula it replaced, the three in alternation.
std::vector<Record> layer_norm_cases(const Shape& shape, const std::string& label,
                                     const Options& opt) {
  const Tensor x = rand(shape), w = rand({shape.back()}), b = rand({shape.back()});
  Tensor dst = zeros(shape);
  const auto* s = static_cast<const char*>(x.raw_data());
  auto* d = static_cast<char*>(dst.raw_data());
  const auto bytes = static_cast<int64_t>(x.nbytes());
  auto copy = [&] {
    parallel_for(bytes, 1 << 20,
                 [&](int64_t lo, int64_t hi) { std::memcpy(d + lo, s + lo, hi - lo); });
  };
  const Shape last{shape.back()};
  const auto t =
      median_seconds_interleaved({copy, [&] { (void)nn::functional::layer_norm(x, last, w, b); },
                                  [&] { (void)composite_layer_norm(x, w, b); }},
                                 opt);
  const double copy_bw = 2.0 * static_cast<double>(bytes) / t[0];
  const std::string name = "layer_norm f32 " + label;
  // No bandwidth target on the CPU (the 0.75 of the copy is for the GPU): the three
  // passes over a row in cache cost about as much as reading it from memory.
  return {bandwidth_case(name, 2.0 * static_cast<double>(bytes), t[1], copy_bw, ""),
          {name + " vs the mean/var composite", t[2] / t[1], "x faster", "the composite", 1.0,
           t[2] / t[1], ">= 2"}};
}

Record gemm_case(int64_t n, const Options& opt) {
  Tensor a = rand({n, n}), b = rand({n, n}), c = zeros({n, n});
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* pc = c.data_ptr<float>();
  const int ni = static_cast<int>(n);
  // The peer is cblas_sgemm as a plain program calls it, on OpenBLAS's own threads. Those keep
  // spinning for a while after each call and would slow whatever runs next, while Tessera keeps
  // OpenBLAS single-threaded and splits a product over its own pool; so the two are timed in
  // separate blocks (not in alternation), ours first, and a pause after the peer lets
  // OpenBLAS's threads park before the next case.
  const double t_ts = median_seconds([&] { matmul(a, b); }, opt);
#ifdef OPENBLAS_VERSION
  openblas_set_num_threads(num_threads());
#endif
  const double t_blas = median_seconds(
      [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ni, ni, ni, 1.f, pa, ni, pb, ni, 0.f,
                    pc, ni);
      },
      opt);
#ifdef OPENBLAS_VERSION
  openblas_set_num_threads(1);
#endif
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double flops =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  return {fmt::format("matmul f32 {}^3", n),
          flops / t_ts / 1e9,
          "GFLOP/s",
          "cblas_sgemm direct",
          flops / t_blas / 1e9,
          t_blas / t_ts,
          ">= 0.95"};
}

Record tiny_op_case(const Options& opt) {
  Tensor a = ones({1}), b = ones({1});
  double t = median_seconds([&] { add(a, b); }, opt);
  constexpr double kBudget = 0.5e-6;
  return {"add 1-element (funnel fixed cost)",
          t * 1e6,
          "us",
          "budget 0.5 us",
          kBudget * 1e6,
          kBudget / t,
          ">= 1.00"};
}

}  // namespace

std::vector<Record> run_core(const Options& opt) {
  std::vector<Record> out = memory_cases(opt);
  for (const auto& r : layer_norm_cases({1024, 4096}, "1024 rows of 4096", opt)) out.push_back(r);
  for (const auto& r : layer_norm_cases({64, 128, 256}, "(64, 128, 256) over 256", opt))
    out.push_back(r);
  for (int64_t n : {256, 1024, 2048}) out.push_back(gemm_case(n, opt));
  out.push_back(tiny_op_case(opt));
  return out;
}

}  // namespace tessera::bench
