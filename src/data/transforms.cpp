// Image transforms, written with tensor ops (so they run on any device the ops support).
#include "tessera/data/transforms.h"

#include <utility>

#include "data/random.h"
#include "tessera/core/error.h"
#include "tessera/ops/creation.h"
#include "tessera/ops/elementwise.h"
#include "tessera/ops/shape.h"

namespace tessera::data {

Compose::Compose(std::vector<Transform> transforms) : transforms_(std::move(transforms)) {
  for (size_t k = 0; k < transforms_.size(); ++k) {
    TS_CHECK(transforms_[k] != nullptr, ValueError, "Compose", "transform {} is empty", k);
  }
}

Tensor Compose::operator()(const Tensor& x) const {
  Tensor y = x;
  for (const Transform& t : transforms_) y = t(y);
  return y;
}

namespace {

// Per-channel values as a (C, 1, 1) tensor of x's dtype (a 0-d tensor for one value).
Tensor channel_values(const std::vector<double>& v, const Tensor& x) {
  Tensor t = tensor(v).to(x.dtype());
  return v.size() == 1 ? t.reshape({}) : t.reshape({static_cast<int64_t>(v.size()), 1, 1});
}

}  // namespace

Transform normalize(std::vector<double> mean, std::vector<double> stdev) {
  TS_CHECK(!mean.empty() && mean.size() == stdev.size(), ValueError, "normalize",
           "mean ({}) and std ({}) need the same non-zero length", fmt::join(mean, ", "),
           fmt::join(stdev, ", "));
  for (double s : stdev) {
    TS_CHECK(s != 0, ValueError, "normalize", "std ({}) contains a zero", fmt::join(stdev, ", "));
  }
  return [mean = std::move(mean), stdev = std::move(stdev)](const Tensor& x) {
    TS_CHECK(is_floating(x.dtype()), DTypeError, "normalize",
             "needs a floating tensor, got {} (use to_tensor first)", dtype_name(x.dtype()));
    const auto c = static_cast<int64_t>(mean.size());
    TS_CHECK(c == 1 || (x.dim() >= 3 && x.size(-3) == c), ShapeError, "normalize",
             "{} channel values for a tensor of shape {}: expected (..., {}, H, W)", c,
             shape_str(x.shape()), c);
    return (x - channel_values(mean, x)) / channel_values(stdev, x);
  };
}

Transform to_tensor() {
  return [](const Tensor& x) {
    TS_CHECK(x.dtype() == kUInt8, DTypeError, "to_tensor", "needs a uint8 image, got {}",
             dtype_name(x.dtype()));
    TS_CHECK(x.dim() == 2 || x.dim() == 3, ShapeError, "to_tensor",
             "needs an (H, W, C) or (H, W) image, got shape {}", shape_str(x.shape()));
    Tensor hwc = x.dim() == 2 ? x.unsqueeze(2) : x;
    return (hwc.permute({2, 0, 1}).to(kFloat32) / 255.0).contiguous();
  };
}

Transform random_crop(std::vector<int64_t> size, int64_t padding, Generator* gen) {
  if (size.size() == 1) size.push_back(size[0]);
  TS_CHECK(size.size() == 2 && size[0] > 0 && size[1] > 0, ValueError, "random_crop",
           "size must be (h, w) or (s) with positive values, got ({})", fmt::join(size, ", "));
  TS_CHECK(padding >= 0, ValueError, "random_crop", "padding must be >= 0, got {}", padding);
  return [size = std::move(size), padding, gen](const Tensor& x) {
    TS_CHECK(x.dim() >= 2, ShapeError, "random_crop", "needs (..., H, W), got shape {}",
             shape_str(x.shape()));
    Tensor p = padding > 0 ? pad(x, {padding, padding, padding, padding}) : x;
    const int64_t hd = p.dim() - 2, wd = p.dim() - 1;
    TS_CHECK(size[0] <= p.size(hd) && size[1] <= p.size(wd), ShapeError, "random_crop",
             "crop ({}, {}) is larger than the padded image ({}, {})", size[0], size[1], p.size(hd),
             p.size(wd));
    auto w = detail::draw_words(gen);
    const auto top = static_cast<int64_t>(detail::to_u64(w[0], w[1]) %
                                          static_cast<uint64_t>(p.size(hd) - size[0] + 1));
    const auto left = static_cast<int64_t>(detail::to_u64(w[2], w[3]) %
                                           static_cast<uint64_t>(p.size(wd) - size[1] + 1));
    return p.slice(hd, top, top + size[0]).slice(wd, left, left + size[1]);
  };
}

Transform random_horizontal_flip(double p, Generator* gen) {
  TS_CHECK(p >= 0 && p <= 1, ValueError, "random_horizontal_flip", "p must lie in [0, 1], got {}",
           p);
  return [p, gen](const Tensor& x) {
    TS_CHECK(x.dim() >= 1, ShapeError, "random_horizontal_flip", "needs at least one dim");
    auto w = detail::draw_words(gen);
    return detail::to_unit(w[0], w[1]) < p ? flip(x, {x.dim() - 1}) : x;
  };
}

}  // namespace tessera::data
