// flip, roll, repeat, pad, tril and triu as one gather: a thread per output element reads the
// source element its per-dim map names (shape_map.cuh), the fill value outside a constant pad,
// or zero outside tril / triu. One kernel per element width, so every dtype is covered.
#include <array>

#include "backends/cuda/device.cuh"
#include "backends/cuda/shape_map.cuh"

namespace tessera::cuda::k {
namespace {

template <class W>
__global__ void move_kernel(const W* src, W* out, MoveMap m) {
  const W fill = static_cast<W>(m.fill);
  for (int64_t i = first_index(); i < m.numel; i += grid_stride()) {
    const shape::Move e = shape::element(m, i);
    out[e.out] = e.zero ? W(0) : (e.fill ? fill : src[e.src]);
  }
}

template <class W>
void launch_move(const void* src, void* out, const MoveMap& m, cudaStream_t s) {
  move_kernel<W><<<blocks_for(m.numel), kThreads, 0, s>>>(static_cast<const W*>(src),
                                                          static_cast<W*>(out), m);
}
using MoveLaunch = void (*)(const void*, void*, const MoveMap&, cudaStream_t);
// Indexed by log2 of the element width.
constexpr std::array<MoveLaunch, 4> kMoves = {&launch_move<uint8_t>, &launch_move<uint16_t>,
                                              &launch_move<uint32_t>, &launch_move<uint64_t>};

}  // namespace

void move(int width, const void* src, void* out, const MoveMap& m, void* stream) {
  const size_t w = width == 1 ? 0 : width == 2 ? 1 : width == 4 ? 2 : 3;
  kMoves[w](src, out, m, static_cast<cudaStream_t>(stream));
}

}  // namespace tessera::cuda::k
