#pragma once
// Parameter initializers (torch.nn.init). Each fills its tensor in place without recording
// gradients, draws from the global generator (seed it with tessera::manual_seed) and returns
// the tensor.
//
//   nn::init::kaiming_normal_(conv->weight, 0.0, nn::init::FanMode::FanOut, "relu");
#include <string_view>
#include <utility>

#include "tessera/core/tensor.h"

namespace tessera::nn::init {

enum class FanMode { FanIn, FanOut };

/// The recommended gain for a nonlinearity: "linear", "conv1d/2d/3d", "conv_transpose1d/2d/3d",
/// "sigmoid" (1), "tanh" (5/3), "relu" (sqrt 2), "leaky_relu" (sqrt(2 / (1 + slope^2)), slope
/// `param`, default 0.01), "selu" (3/4).
double calculate_gain(std::string_view nonlinearity, double param = 0.01);
/// (fan_in, fan_out) of a weight of shape (out, in, *kernel); needs at least 2 dims.
std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t);

Tensor uniform_(Tensor t, double a = 0.0, double b = 1.0);
Tensor normal_(Tensor t, double mean = 0.0, double std = 1.0);
/// Normal(mean, std) redrawn until inside [a, b].
Tensor trunc_normal_(Tensor t, double mean = 0.0, double std = 1.0, double a = -2.0,
                     double b = 2.0);
Tensor constant_(Tensor t, double value);
Tensor zeros_(Tensor t);
Tensor ones_(Tensor t);
/// U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot).
Tensor xavier_uniform_(Tensor t, double gain = 1.0);
/// N(0, std) with std = gain * sqrt(2 / (fan_in + fan_out)).
Tensor xavier_normal_(Tensor t, double gain = 1.0);
/// U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a) (He).
Tensor kaiming_uniform_(Tensor t, double a = 0.0, FanMode mode = FanMode::FanIn,
                        std::string_view nonlinearity = "leaky_relu");
/// N(0, std) with std = gain / sqrt(fan).
Tensor kaiming_normal_(Tensor t, double a = 0.0, FanMode mode = FanMode::FanIn,
                       std::string_view nonlinearity = "leaky_relu");
/// A (semi-)orthogonal matrix (the tensor viewed as (size(0), rest)) times gain.
Tensor orthogonal_(Tensor t, double gain = 1.0);

}  // namespace tessera::nn::init
