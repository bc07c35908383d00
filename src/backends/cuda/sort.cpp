// CUDA kernels of sort, argsort, topk, unique and nonzero: host code that lays out the lines
// along the sort dim (any strides, read in place) and calls the launchers of sort.cu. The order
// is the CPU's (backends/cpu/sort.cpp): NaN above every number, -0.0 equal to +0.0, ties in
// input order (stable), topk the head of the full sort. unique and nonzero have data-dependent
// sizes: they read the count back (a synchronization), like PyTorch's.
#include <array>

#include "backends/cuda/common.h"
#include "backends/cuda/ops.h"
#include "backends/cuda/scratch.h"
#include "backends/cuda/sort_kernels.h"
#include "tessera/ops/primitive.h"

namespace tessera::cuda {

void check_launch(int err, const char* op) {
  if (err != 0) raise(static_cast<cudaError_t>(err), op, "a CUB algorithm");
}

int64_t read_int64(const int64_t* p, int device, const char* op) {
  DeviceGuard guard(device);
  cudaStream_t s = current_stream(device);
  int64_t v = 0;
  TS_CUDA_CHECK(op, cudaMemcpyAsync(&v, p, sizeof v, cudaMemcpyDeviceToHost, s));
  sync_stream(device, s, op);
  return v;
}

const uint8_t* last_writes(ScratchPool& pool, const uint64_t* keys, int64_t n, uint64_t invalid,
                           int device, const char* op) {
  auto* winner = static_cast<uint8_t*>(pool.tensor(n, kUInt8).raw_data());
  check_launch(k::last_of_keys(keys, n, invalid, winner, pool.scratch(), current_stream(device)),
               op);
  return winner;
}

namespace {

// Sort keys of the real dtypes, by dtype code (sort_key in sort_keys.cuh).
constexpr std::array<k::KeyCode, 10> kKeys = {
    k::KeyCode{1, k::kKeyUnsigned, 0},                    // bool
    k::KeyCode{1, k::kKeyUnsigned, 0},                    // uint8
    k::KeyCode{1, k::kKeySigned, 0},                      // int8
    k::KeyCode{2, k::kKeySigned, 0},                      // int16
    k::KeyCode{4, k::kKeySigned, 0},                      // int32
    k::KeyCode{8, k::kKeySigned, 0},                      // int64
    k::KeyCode{2, k::kKeyFloat, 0x7C00},                  // float16
    k::KeyCode{2, k::kKeyFloat, 0x7F80},                  // bfloat16
    k::KeyCode{4, k::kKeyFloat, 0x7F800000},              // float32
    k::KeyCode{8, k::kKeyFloat, 0x7FF0000000000000ULL}};  // float64

k::KeyCode key_of(DType dt) { return kKeys[static_cast<size_t>(dtype_code(dt))]; }

bool real(Inputs in, const Attrs&) { return dtype_code(in[0].dtype()) >= 0; }

// Sorts the lines of x along dim and writes the first k of each into values (null: argsort)
// and indices.
void sort_along(const Tensor& x, const Tensor* values, const Tensor& indices, int64_t dim,
                int64_t k, bool descending, const char* op) {
  const bool scalar = x.dim() == 0;
  k::SortLines l;
  l.len = scalar ? 1 : x.size(dim);
  l.k = k;
  Shape outer;
  Strides sx, sv, si;
  const Tensor& v = values ? *values : indices;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d == dim) continue;
    outer.push_back(x.size(d));
    sx.push_back(x.stride(d));
    sv.push_back(v.stride(d));
    si.push_back(indices.stride(d));
  }
  if (!scalar) l.x_step = x.stride(dim), l.v_step = v.stride(dim), l.i_step = indices.stride(dim);
  const std::array<const int64_t*, 3> strides{sx.data(), sv.data(), si.data()};
  const std::array<const void*, 3> ptrs{x.raw_data(), v.raw_data(), indices.raw_data()};
  l.outer = make_geometry(outer, strides, ptrs, op);
  l.count = l.outer.numel;
  if (l.count == 0 || l.len == 0 || k == 0) return;
  const int dev = x.device().index;
  DeviceGuard guard(dev);
  ScratchPool pool(x.device());
  check_launch(k::sort_lines(key_of(x.dtype()), descending, x.raw_data(),
                             values ? values->raw_data() : nullptr, indices.data_ptr<int64_t>(), l,
                             pool.scratch(), current_stream(dev)),
               op);
  launched(dev, op);
}

int64_t sort_dim(const Tensor& x, const Attrs& a, std::string_view op) {
  return wrap_dim(a.get<int64_t>("dim"), x.dim(), op);
}
int64_t line_len(const Tensor& x, int64_t dim) { return x.dim() == 0 ? 1 : x.size(dim); }

void sort_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = sort_dim(in[0], a, "sort");
  sort_along(in[0], &out[0], out[1], d, line_len(in[0], d), a.get<bool>("descending"), "sort");
}

void argsort_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = sort_dim(in[0], a, "argsort");
  sort_along(in[0], nullptr, out[0], d, line_len(in[0], d), a.get<bool>("descending"), "argsort");
}

// topk largest = head of the descending order; smallest = head of the ascending one.
void topk_kernel(Inputs in, Outputs out, const Attrs& a) {
  const int64_t d = sort_dim(in[0], a, "topk");
  sort_along(in[0], &out[0], out[1], d, a.get<int64_t>("k"), a.get<bool>("largest"), "topk");
}

// The geometry of x's elements in flat row-major order (operand 0).
k::Geometry flat_geometry(const Tensor& x, const char* op) {
  const std::array<const int64_t*, 1> strides{x.strides().data()};
  const std::array<const void*, 1> ptrs{x.raw_data()};
  return make_geometry(x.shape(), strides, ptrs, op);
}

// Outputs sized for n distinct values (unique_meta); shrunk to the group count read back.
void unique_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor& x = in[0];
  const int64_t n = x.numel();
  int64_t groups = 0;
  if (n > 0) {
    const int dev = x.device().index;
    const k::Geometry g = flat_geometry(x, "unique");
    DeviceGuard guard(dev);
    ScratchPool pool(x.device());
    const Tensor pos = pool.tensor(n, kInt64), group = pool.tensor(n, kInt64);
    const k::Scratch s = pool.scratch();
    check_launch(k::unique_sort(key_of(x.dtype()), x.raw_data(), g, n, pos.data_ptr<int64_t>(),
                                group.data_ptr<int64_t>(), s, current_stream(dev)),
                 "unique");
    launched(dev, "unique");
    groups = read_int64(group.data_ptr<int64_t>() + n - 1, dev, "unique");
    check_launch(k::unique_write(static_cast<int>(x.itemsize()), x.raw_data(), g, n, groups,
                                 pos.data_ptr<int64_t>(), group.data_ptr<int64_t>(),
                                 out[0].raw_data(), out[1].data_ptr<int64_t>(),
                                 out[2].data_ptr<int64_t>(), s, current_stream(dev)),
                 "unique");
    launched(dev, "unique");
  }
  shrink_output(out[0], groups);
  shrink_output(out[2], groups);
}

// nonzero's mask of an element's bits, by dtype (complex64 last): all of them for integers and
// bool, all but the sign bit(s) for floats (-0.0 is zero, NaN is not), as the CPU's compare with 0.
constexpr std::array<uint64_t, 11> kNonzeroMasks = {
    ~uint64_t{0},         ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0}, ~uint64_t{0},
    ~uint64_t{0},         0x7FFF,       0x7FFF,       0x7FFFFFFF,   0x7FFFFFFFFFFFFFFFULL,
    0x7FFFFFFF7FFFFFFFULL};

// The kernel allocates the exact (count, ndim) output itself, as on the CPU.
void nonzero_kernel(Inputs in, Outputs out, const Attrs&) {
  const Tensor& x = in[0];
  const int64_t n = x.numel(), nd = x.dim();
  if (nd > k::kMaxDims)
    fail<NotImplementedError>("nonzero", "no CUDA kernel for more than {} dims (got {})",
                              k::kMaxDims, nd);
  if (n == 0) {
    out[0] = Tensor::empty({0, nd}, kInt64, x.device());
    return;
  }
  const int dev = x.device().index;
  const k::Geometry g = flat_geometry(x, "nonzero");
  DeviceGuard guard(dev);
  ScratchPool pool(x.device());
  const Tensor scan = pool.tensor(n, kInt64);
  check_launch(k::nonzero_scan(static_cast<int>(x.itemsize()),
                               kNonzeroMasks[static_cast<size_t>(x.dtype())], x.raw_data(), g,
                               scan.data_ptr<int64_t>(), pool.scratch(), current_stream(dev)),
               "nonzero");
  launched(dev, "nonzero");
  const int64_t count = read_int64(scan.data_ptr<int64_t>() + n - 1, dev, "nonzero");
  out[0] = Tensor::empty({count, nd}, kInt64, x.device());
  if (count == 0 || nd == 0) return;
  k::Dims dims;
  dims.n = static_cast<int>(nd);
  for (int64_t d = 0; d < nd; ++d) dims.size[d] = x.size(d);
  check_launch(k::nonzero_write(scan.data_ptr<int64_t>(), n, dims, out[0].data_ptr<int64_t>(),
                                current_stream(dev)),
               "nonzero");
  launched(dev, "nonzero");
}

}  // namespace

void register_sort_kernels(Registry& r) {
  r.add_kernel("sort", {DeviceType::CUDA, "cuda", sort_kernel, real});
  r.add_kernel("argsort", {DeviceType::CUDA, "cuda", argsort_kernel, real});
  r.add_kernel("topk", {DeviceType::CUDA, "cuda", topk_kernel, real});
  r.add_kernel("unique", {DeviceType::CUDA, "cuda", unique_kernel, real});
  r.add_kernel("nonzero", {DeviceType::CUDA, "cuda", nonzero_kernel});
}

}  // namespace tessera::cuda
