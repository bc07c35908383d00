#pragma once
// Transforms: composable functions Tensor -> Tensor for preprocessing and augmentation.
//
//   Transform t = Compose({to_tensor(), random_crop({32, 32}, 4, &gen),
//                          random_horizontal_flip(0.5, &gen), normalize({0.5}, {0.25})});
//   Tensor chw = t(hwc_uint8_image);
//
// Random transforms draw from the Generator they were given (the default generator when
// null); a generator is thread-safe, but with several loader threads the order in which
// examples draw from it depends on scheduling.
#include <functional>
#include <vector>

#include "tessera/core/generator.h"
#include "tessera/core/tensor.h"

namespace tessera::data {

/// A transform maps one tensor to another.
using Transform = std::function<Tensor(const Tensor&)>;

/// Applies its transforms in order.
class Compose {
 public:
  explicit Compose(std::vector<Transform> transforms);
  Tensor operator()(const Tensor& x) const;

 private:
  std::vector<Transform> transforms_;
};

/// (x - mean[c]) / stdev[c] per channel of a floating (..., C, H, W) tensor; a single value
/// applies to every channel.
Transform normalize(std::vector<double> mean, std::vector<double> stdev);

/// A uint8 image (H, W, C) or (H, W) -> float32 (C, H, W) with values in [0, 1].
Transform to_tensor();

/// Pads the last two dims by `padding` zeros on each side, then crops a random (h, w) window.
Transform random_crop(std::vector<int64_t> size, int64_t padding = 0, Generator* gen = nullptr);

/// Flips the last dim (width) with probability p.
Transform random_horizontal_flip(double p = 0.5, Generator* gen = nullptr);

}  // namespace tessera::data
