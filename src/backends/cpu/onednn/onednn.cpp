// oneDNN calls for the CPU kernels (onednn.h).
#include "backends/cpu/onednn/onednn.h"

#include <fmt/format.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include "tessera/core/error.h"

namespace tessera::cpu::onednn {
namespace {

// Debian's oneDNN runs on OpenMP and gives a call as many threads as the calling thread's
// OpenMP setting allows. Tessera already splits work over its own pool, so each call is run
// with one OpenMP thread: libgomp then starts no team whose idle workers would spin on the
// cores the pool needs next. The caller's own setting is restored, so a program's OpenMP code
// on the same thread is unaffected.
class OneOpenMpThread {
 public:
  OneOpenMpThread() : saved_(omp_get_max_threads()) {
    if (saved_ != 1) omp_set_num_threads(1);
  }
  ~OneOpenMpThread() {
    if (saved_ != 1) omp_set_num_threads(saved_);
  }
  OneOpenMpThread(const OneOpenMpThread&) = delete;
  OneOpenMpThread& operator=(const OneOpenMpThread&) = delete;

 private:
  int saved_;
};

void check(dnnl_status_t status, const char* what) {
  if (status != dnnl_success)
    fail("onednn", "{} failed with status {}", what, static_cast<int>(status));
}

}  // namespace

bool built() { return true; }

std::string version() {
  const dnnl_version_t* v = dnnl_version();
  return fmt::format("oneDNN {}.{}.{} (cpu runtime: OpenMP)", v->major, v->minor, v->patch);
}

void sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  OneOpenMpThread one;
  check(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.f, a, lda, b, ldb, beta,
                   c, ldc),
        "sgemm");
}

}  // namespace tessera::cpu::onednn
