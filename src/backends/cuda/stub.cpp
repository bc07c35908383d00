// Built when Tessera is configured without CUDA: every CUDA request is a clean NotBuiltError.
#include "backends/cuda/optim.h"
#include "tessera/core/allocator.h"
#include "tessera/core/error.h"
#include "tessera/ops/primitive.h"
#include "tessera/runtime/cuda.h"
#include "tessera/runtime/info.h"

namespace tessera::cuda {
namespace {
[[noreturn]] void not_built(std::string_view what) {
  fail<NotBuiltError>("cuda", "not built with CUDA ({})", what);
}
}  // namespace

bool is_built() { return false; }
int device_count() { fail<NotBuiltError>("cuda", "not built with CUDA"); }
bool is_available() { return false; }
std::string unavailable_reason() { return "not built with CUDA"; }
Allocator& allocator(int device) {
  fail<NotBuiltError>("cuda", "not built with CUDA (requested cuda:{})", device);
}
void register_kernels(Registry&) {}

DeviceProperties device_properties(int) { not_built("device_properties"); }
void check_device(int index) {
  fail<NotBuiltError>("cuda", "not built with CUDA (requested cuda:{})", index);
}
int current_device() { not_built("current_device"); }
void set_device(int) { not_built("set_device"); }
void synchronize(int) { not_built("synchronize"); }
DeviceFacts measure_facts(int) { not_built("measure_facts"); }

Stream Stream::default_stream(int) { not_built("Stream"); }
Stream Stream::current(int) { not_built("Stream"); }
Stream Stream::create(int) { not_built("Stream"); }
void Stream::synchronize() const { not_built("Stream"); }
bool Stream::query() const { not_built("Stream"); }
StreamGuard::StreamGuard(const Stream& s) : previous_(s), installed_(s) { not_built("Stream"); }
StreamGuard::~StreamGuard() = default;

Event::Event(int) { not_built("Event"); }
void Event::record() { not_built("Event"); }
void Event::record(const Stream&) { not_built("Event"); }
void Event::block(const Stream&) const { not_built("Event"); }
void Event::synchronize() const { not_built("Event"); }
bool Event::query() const { not_built("Event"); }
double Event::elapsed_ms(const Event&) const { not_built("Event"); }

MemoryStats memory_stats(int) { not_built("memory_stats"); }
int64_t memory_reserved(int) { not_built("memory_reserved"); }
void reset_peak_memory_stats(int) { not_built("reset_peak_memory_stats"); }
void empty_cache(int) { not_built("empty_cache"); }
void set_memory_fraction(double, int) { not_built("set_memory_fraction"); }
int64_t memory_limit(int) { not_built("memory_limit"); }
Tensor empty_pinned(Shape, DType) { not_built("empty_pinned"); }
bool is_pinned(const Tensor&) { return false; }
HostMemoryStats host_memory_stats() { not_built("host_memory_stats"); }
void reset_peak_host_memory_stats() { not_built("reset_peak_host_memory_stats"); }
void empty_host_cache() { not_built("empty_host_cache"); }
void record_stream(const Tensor&, const Stream&) { not_built("record_stream"); }
Tensor pin_memory(const Tensor&) { not_built("pin_memory"); }

void set_allow_tf32(bool) { not_built("set_allow_tf32"); }
void set_cudnn_benchmark(bool) { not_built("set_cudnn_benchmark"); }

void sgd_step(const Tensor&, const Tensor&, const Tensor&, const k::SgdArgs&) {
  not_built("SGD step");
}
void adam_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
               const k::AdamArgs&) {
  not_built("Adam step");
}
void rmsprop_step(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                  const k::RmspropArgs&) {
  not_built("RMSprop step");
}
void adagrad_step(const Tensor&, const Tensor&, const Tensor&, const k::AdagradArgs&) {
  not_built("Adagrad step");
}
bool allow_tf32() { return false; }
bool cudnn_benchmark() { return false; }
void cublas_gemm(const Tensor&, const Tensor&, const Tensor&) { not_built("cublas_gemm"); }

}  // namespace tessera::cuda
