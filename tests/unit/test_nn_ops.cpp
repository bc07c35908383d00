// Convolution and pooling through the op table. References are float64 loops over Ref written
// from the definitions (a direct sum per output for conv, a scatter per input for
// conv_transpose, PyTorch's window rules for pooling), independent of im2col and the kernels.
// Each sample carries its parameters as a trailing int64 tensor, so one entry covers many
// strides, paddings, dilations and groups (int64 inputs are shared, never mapped, by vmap).
#include "nn_ops_reference.h"

namespace tessera::test {
namespace {

using namespace nnref;  // NOLINT(google-build-using-namespace)

Tolerance conv_tolerance(DType dt) {
  return dt == kFloat64 ? Tolerance{1e-12, 1e-11} : Tolerance{1e-5, 1e-4};
}

struct ConvCase {
  std::string label;
  Shape x, w;
  bool bias;
  ConvArgs args;
  bool noncontig = false;
};

// Bias channels: conv's weight is (C_out, ...), conv_transpose's (C_in, C_out / groups, ...).
std::vector<Sample> conv_samples(const std::vector<ConvCase>& cases, DType dt, bool transpose) {
  std::vector<Sample> out;
  uint64_t seed = 1;
  for (const ConvCase& c : cases) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    Sample s{c.label, {}};
    s.inputs.push_back(c.noncontig ? strided(c.x, dt, seed++) : rnd(c.x, dt, seed++));
    s.inputs.push_back(c.noncontig ? strided(c.w, dt, seed++) : rnd(c.w, dt, seed++));
    if (c.bias) s.inputs.push_back(rnd({transpose ? c.w[1] * c.args.groups : c.w[0]}, dt, seed++));
    s.inputs.push_back(encode(c.args, nsp));
    out.push_back(std::move(s));
  }
  return out;
}

const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d", {2, 3, 7}, {4, 3, 3}, true, {{1}, {0}, {1}, {}, 1, {}}},
      {"1-d stride 2 padding 1 dilation 2",
       {2, 2, 9},
       {3, 2, 2},
       false,
       {{2}, {1}, {2}, {}, 1, {}}},
      {"small 1-d (transforms)", {1, 2, 4}, {2, 2, 2}, true, {{1}, {1}, {1}, {}, 1, {}}},
      {"2-d", {2, 3, 6, 5}, {4, 3, 3, 2}, true, {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"2-d stride (2, 1) padding (1, 2)",
       {1, 2, 7, 6},
       {3, 2, 3, 3},
       false,
       {{2, 1}, {1, 2}, {1, 1}, {}, 1, {}}},
      {"2-d dilation (2, 1)",
       {2, 2, 8, 7},
       {2, 2, 2, 3},
       true,
       {{1, 1}, {1, 0}, {2, 1}, {}, 1, {}}},
      {"2-d groups 2", {2, 4, 5, 5}, {6, 2, 3, 3}, true, {{1, 1}, {1, 1}, {1, 1}, {}, 2, {}}},
      {"2-d depthwise", {1, 3, 5, 4}, {3, 1, 2, 2}, false, {{2, 1}, {0, 1}, {1, 1}, {}, 3, {}}},
      {"2-d 1x1 (no im2col)",
       {2, 3, 4, 5},
       {5, 3, 1, 1},
       true,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"2-d 1x1 stride 2", {2, 3, 5, 5}, {2, 3, 1, 1}, false, {{2, 2}, {0, 0}, {1, 1}, {}, 1, {}}},
      {"small 2-d (transforms)",
       {1, 1, 4, 4},
       {2, 1, 2, 2},
       true,
       {{2, 2}, {1, 1}, {1, 1}, {}, 1, {}}},
      {"small 2-d groups (transforms)",
       {1, 2, 3, 3},
       {2, 1, 2, 2},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 2, {}}},
      {"3-d", {1, 2, 4, 5, 4}, {3, 2, 2, 3, 2}, true, {{1, 2, 1}, {1, 0, 1}, {1, 1, 2}, {}, 1, {}}},
      {"non-contiguous",
       {2, 3, 5, 6},
       {4, 3, 2, 3},
       true,
       {{1, 2}, {1, 0}, {1, 1}, {}, 1, {}},
       true},
      {"non-contiguous 1x1",
       {2, 3, 4, 5},
       {2, 3, 1, 1},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {}},
       true},
      {"empty batch", {0, 3, 5}, {2, 3, 2}, true, {{1}, {0}, {1}, {}, 1, {}}},
      {"batch 64 (parallel items)",
       {64, 3, 10, 10},
       {6, 3, 3, 3},
       true,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {}}},
      {"large items (threaded GEMM)",
       {2, 16, 18, 18},
       {32, 16, 3, 3},
       true,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {}}},
  };
  return cases;
}

const std::vector<ConvCase>& conv_transpose_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d stride 2 output_padding 1", {2, 3, 5}, {3, 2, 3}, true, {{2}, {1}, {1}, {1}, 1, {}}},
      {"small 1-d (transforms)", {1, 2, 3}, {2, 2, 2}, true, {{2}, {0}, {1}, {0}, 1, {}}},
      {"2-d", {2, 4, 3, 4}, {4, 3, 3, 2}, true, {{2, 1}, {1, 0}, {1, 1}, {1, 0}, 1, {}}},
      {"2-d groups 2", {1, 4, 3, 3}, {4, 1, 2, 2}, false, {{1, 1}, {0, 0}, {1, 1}, {0, 0}, 2, {}}},
      // output_padding >= stride (allowed by dilation): the adjoint conv needs cutting.
      {"2-d dilation 2 output_padding 1 stride 1",
       {1, 2, 4, 3},
       {2, 2, 2, 2},
       true,
       {{1, 1}, {0, 1}, {2, 2}, {1, 1}, 1, {}}},
      {"2-d 1x1 (no col2im)",
       {2, 3, 4, 4},
       {3, 5, 1, 1},
       true,
       {{1, 1}, {0, 0}, {1, 1}, {0, 0}, 1, {}}},
      {"small 2-d (transforms)",
       {1, 1, 3, 3},
       {1, 2, 2, 2},
       false,
       {{2, 2}, {1, 0}, {1, 1}, {1, 0}, 1, {}}},
      {"3-d",
       {1, 2, 2, 3, 2},
       {2, 2, 2, 2, 2},
       true,
       {{2, 1, 2}, {0, 1, 0}, {1, 1, 1}, {1, 0, 0}, 1, {}}},
      {"non-contiguous",
       {2, 3, 4, 3},
       {3, 2, 2, 3},
       true,
       {{2, 2}, {1, 1}, {1, 1}, {0, 1}, 1, {}},
       true},
      {"empty batch", {0, 2, 4}, {2, 3, 2}, false, {{1}, {0}, {1}, {0}, 1, {}}},
      {"batch 64 (parallel items)",
       {64, 6, 5, 5},
       {6, 3, 2, 2},
       true,
       {{2, 2}, {0, 0}, {1, 1}, {0, 0}, 1, {}}},
      {"large items (threaded GEMM)",
       {2, 32, 16, 16},
       {32, 16, 3, 3},
       false,
       {{1, 1}, {1, 1}, {1, 1}, {0, 0}, 1, {}}},
  };
  return cases;
}

// conv_weight_grad: x and dy shapes; dy may cover only a prefix of the conv's output.
const std::vector<ConvCase>& weight_grad_cases() {
  static const std::vector<ConvCase> cases = {
      {"1-d", {2, 3, 7}, {2, 4, 5}, false, {{1}, {0}, {1}, {}, 1, {3}}},
      {"small 1-d (transforms)", {1, 2, 4}, {1, 2, 3}, false, {{1}, {0}, {1}, {}, 1, {2}}},
      {"2-d stride/padding/dilation",
       {2, 2, 7, 6},
       {2, 3, 3, 5},
       false,
       {{2, 1}, {1, 1}, {1, 2}, {}, 1, {3, 2}}},
      {"2-d groups 2", {2, 4, 5, 5}, {2, 6, 5, 5}, false, {{1, 1}, {1, 1}, {1, 1}, {}, 2, {3, 3}}},
      {"2-d dy covers a prefix",
       {1, 2, 5, 5},
       {1, 2, 3, 4},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {2, 2}}},
      {"3-d",
       {1, 2, 4, 3, 4},
       {1, 2, 3, 3, 2},
       false,
       {{1, 1, 2}, {0, 1, 0}, {1, 1, 1}, {}, 1, {2, 3, 2}}},
      {"non-contiguous",
       {2, 3, 5, 4},
       {2, 2, 4, 3},
       false,
       {{1, 1}, {0, 0}, {1, 1}, {}, 1, {2, 2}},
       true},
      {"batch 64 (chunked columns)",
       {64, 3, 8, 8},
       {64, 4, 8, 8},
       false,
       {{1, 1}, {1, 1}, {1, 1}, {}, 1, {3, 3}}},
  };
  return cases;
}

std::vector<Sample> weight_grad_samples(DType dt) {
  std::vector<Sample> out;
  uint64_t seed = 300;
  for (const ConvCase& c : weight_grad_cases()) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    out.push_back(
        {c.label,
         {c.noncontig ? strided(c.x, dt, seed) : rnd(c.x, dt, seed),
          c.noncontig ? strided(c.w, dt, seed + 1) : rnd(c.w, dt, seed + 1), encode(c.args, nsp)}});
    seed += 2;
  }
  return out;
}

Attrs conv_attrs(const ConvArgs& a) {
  return {{"stride", a.stride},
          {"padding", a.padding},
          {"dilation", a.dilation},
          {"groups", a.groups},
          {"output_padding", a.output_padding},
          {"kernel", a.kernel}};
}

// ---- pool samples --------------------------------------------------------------------------

const std::vector<PoolCase>& avg_pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"1-d", {2, 3, 9}, {{3}, {2}, {1}, {1}, {}, false, true}},
      {"1-d exclude padding", {2, 2, 8}, {{3}, {2}, {1}, {1}, {}, false, false}},
      {"1-d ceil_mode", {1, 2, 6}, {{2}, {2}, {1}, {1}, {}, true, true}},
      {"2-d 2x2", {2, 3, 6, 8}, {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
      {"2-d ceil_mode include padding",
       {1, 2, 7, 8},
       {{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, true}},
      {"2-d ceil_mode exclude padding",
       {1, 2, 7, 8},
       {{3, 3}, {2, 2}, {1, 1}, {1, 1}, {}, true, false}},
      {"small 2-d (transforms)", {1, 2, 4, 4}, {{2, 2}, {1, 1}, {1, 1}, {1, 1}, {}, false, false}},
      {"3-d", {1, 2, 4, 5, 6}, {{2, 2, 3}, {1, 2, 2}, {0, 1, 1}, {1, 1, 1}, {}, false, true}},
      {"non-contiguous", {2, 3, 6, 7}, {{3, 2}, {2, 2}, {1, 0}, {1, 1}, {}, true, false}, true},
      {"batch 16 (parallel planes)",
       {16, 6, 28, 28},
       {{2, 2}, {}, {0, 0}, {1, 1}, {}, false, true}},
  };
  return cases;
}

std::vector<Sample> pool_samples(const std::vector<PoolCase>& cases, DType dt) {
  std::vector<Sample> out;
  uint64_t seed = 500;
  for (const PoolCase& c : cases)
    out.push_back(
        {c.label, {pool_input(c, dt, seed++), encode(c.args, static_cast<int>(c.x.size() - 2))}});
  return out;
}

Attrs pool_attrs(const PoolArgs& a) {
  return {{"kernel", a.kernel},        {"stride", a.stride},
          {"padding", a.padding},      {"dilation", a.dilation},
          {"ceil_mode", a.ceil_mode},  {"count_include_pad", a.count_include_pad},
          {"input_size", a.input_size}};
}

// Backward samples: a gradient shaped like the pooled output (and the argmax of a forward run).
std::vector<Sample> pool_backward_samples(const std::vector<PoolCase>& cases, DType dt,
                                          bool is_max) {
  std::vector<Sample> out;
  uint64_t seed = 700;
  for (const PoolCase& c : cases) {
    const int nsp = static_cast<int>(c.x.size() - 2);
    PoolArgs a = c.args;
    a.input_size.assign(c.x.begin() + 2, c.x.end());
    if (a.stride.empty()) a.stride = a.kernel;
    const Tensor x = pool_input(c, dt, seed++);
    if (is_max) {
      auto [v, idx] =
          max_pool_with_indices(x, a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
      Tensor g = c.noncontig ? strided(v.shape(), dt, seed) : rnd(v.shape(), dt, seed);
      out.push_back({c.label, {g, idx, encode(a, nsp)}});
    } else {
      const PoolShape ps = pool_shape(pad3(a.input_size, 1), a);
      Shape s{c.x[0], c.x[1]};
      for (int i = 3 - nsp; i < 3; ++i) s.push_back(ps.out[i]);
      out.push_back(
          {c.label, {c.noncontig ? strided(s, dt, seed) : rnd(s, dt, seed), encode(a, nsp)}});
    }
    ++seed;
  }
  return out;
}

Tolerance pool_tolerance(DType dt) {
  return dt == kFloat64 ? Tolerance{1e-12, 1e-12} : default_tolerance(dt);
}

// ---- entries -------------------------------------------------------------------------------

const std::vector<DType> kConvDTypes = {kFloat32, kFloat64};
const std::vector<DType> kPoolDTypes = {kFloat32, kFloat64};

Tensor run_conv(const std::vector<Tensor>& in) {
  const ConvArgs a = decode(in.back(), nsp_of(in[0]));
  const Tensor b = in.size() > 3 ? in[2] : Tensor();
  switch (in[0].dim()) {
    case 3:
      return conv1d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
    case 4:
      return conv2d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
    default:
      return conv3d(in[0], in[1], b, a.stride, a.padding, a.dilation, a.groups);
  }
}

Tensor run_conv_transpose(const std::vector<Tensor>& in) {
  const ConvArgs a = decode(in.back(), nsp_of(in[0]));
  const Tensor b = in.size() > 3 ? in[2] : Tensor();
  if (in[0].dim() == 4)
    return conv_transpose2d(in[0], in[1], b, a.stride, a.padding, a.output_padding, a.groups,
                            a.dilation);
  return conv_transpose(in[0], in[1], b, a.stride, a.padding, a.output_padding, a.groups,
                        a.dilation);
}

Ref ref_conv_entry(const std::vector<Ref>& in, DType, bool transpose) {
  const ConvArgs a = decode(in.back().data, nsp_of(in[0]));
  const Ref* b = in.size() > 3 ? &in[2] : nullptr;
  return transpose ? ref_conv_transpose(in[0], in[1], b, a) : ref_conv(in[0], in[1], b, a);
}

auto zeros_of(Shape s, DType dt = kFloat32) { return zeros(std::move(s), TensorOptions(dt)); }

OpEntry conv_entry() {
  OpEntry e;
  e.prim = "conv";
  e.dtypes = kConvDTypes;
  e.samples = [](DType dt) { return conv_samples(conv_cases(), dt, false); };
  e.op = run_conv;
  e.reference = [](const std::vector<Ref>& in, DType dt) { return ref_conv_entry(in, dt, false); };
  e.tolerance = conv_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  auto z = [](Shape s) { return zeros_of(std::move(s)); };
  e.errors = {
      expect_error<ShapeError>("conv2d of a 3-d input", "conv2d",
                               [z] {
                                 conv2d(z({1, 2, 5}), z({1, 2, 3}));
                               }),
      expect_error<ShapeError>("conv of a 2-d input", "conv",
                               [z] {
                                 conv(z({2, 5}), z({1, 2}));
                               }),
      expect_error<ShapeError>("weight rank", "conv2d",
                               [z] {
                                 conv2d(z({1, 2, 5, 5}), z({1, 2, 3}));
                               }),
      expect_error<ShapeError>("channels differ", "conv2d",
                               [z] {
                                 conv2d(z({1, 3, 5, 5}), z({4, 2, 3, 3}));
                               }),
      expect_error<ValueError>("groups do not divide the input channels", "conv2d",
                               [z] {
                                 conv2d(z({1, 3, 5, 5}), z({4, 1, 3, 3}), {}, {1}, {0}, {1}, 2);
                               }),
      expect_error<ValueError>("groups do not divide the output channels", "conv2d",
                               [z] {
                                 conv2d(z({1, 4, 5, 5}), z({3, 2, 3, 3}), {}, {1}, {0}, {1}, 2);
                               }),
      expect_error<ShapeError>("kernel larger than the padded input", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 7, 3}), {}, {1}, {1});
                               }),
      expect_error<ShapeError>("dilated kernel too large", "conv1d",
                               [z] {
                                 conv1d(z({1, 1, 5}), z({1, 1, 3}), {}, {1}, {0}, {3});
                               }),
      expect_error<ValueError>("stride 0", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {0});
                               }),
      expect_error<ValueError>("negative padding", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1}, {-1});
                               }),
      expect_error<ValueError>("stride of 3 values for 2 dims", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1, 1, 1});
                               }),
      expect_error<ValueError>("groups 0", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({1, 1, 2, 2}), {}, {1}, {0}, {1}, 0);
                               }),
      expect_error<ShapeError>("bias size", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), z({2, 1, 2, 2}), z({3}));
                               }),
      expect_error<DTypeError>("dtypes differ", "conv2d",
                               [z] {
                                 conv2d(z({1, 1, 4, 4}), zeros_of({1, 1, 2, 2}, kFloat64));
                               }),
      expect_error<DTypeError>(
          "integer input", "conv2d",
          [] {
            conv2d(zeros_of({1, 1, 4, 4}, kInt64), zeros_of({1, 1, 2, 2}, kInt64));
          }),
  };
  return e;
}

OpEntry conv_transpose_entry() {
  OpEntry e;
  e.prim = "conv_transpose";
  e.dtypes = kConvDTypes;
  e.samples = [](DType dt) { return conv_samples(conv_transpose_cases(), dt, true); };
  e.op = run_conv_transpose;
  e.reference = [](const std::vector<Ref>& in, DType dt) { return ref_conv_entry(in, dt, true); };
  e.tolerance = conv_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  auto z = [](Shape s) { return zeros_of(std::move(s)); };
  e.errors = {
      expect_error<ShapeError>("3-d input", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 2, 5}), z({2, 1, 3}));
                               }),
      expect_error<ShapeError>("input channels differ from weight dim 0", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 3, 4, 4}), z({2, 1, 3, 3}));
                               }),
      expect_error<ValueError>(
          "groups do not divide", "conv_transpose2d",
          [z] {
            conv_transpose2d(z({1, 3, 4, 4}), z({3, 1, 3, 3}), {}, {1}, {0}, {0}, 2);
          }),
      expect_error<ValueError>(
          "output_padding not below stride or dilation", "conv_transpose2d",
          [z] {
            conv_transpose2d(z({1, 1, 4, 4}), z({1, 1, 3, 3}), {}, {2}, {0}, {2});
          }),
      expect_error<ShapeError>("empty output", "conv_transpose1d",
                               [z] {
                                 conv_transpose1d(z({1, 1, 1}), z({1, 1, 1}), {}, {1}, {1});
                               }),
      expect_error<ShapeError>("bias size", "conv_transpose2d",
                               [z] {
                                 conv_transpose2d(z({1, 2, 4, 4}), z({2, 3, 2, 2}), z({2}));
                               }),
      expect_error<DTypeError>(
          "integer input", "conv_transpose1d",
          [] {
            conv_transpose1d(zeros_of({1, 1, 4}, kInt32), zeros_of({1, 1, 2}, kInt32));
          }),
  };
  return e;
}

OpEntry conv_weight_grad_entry() {
  OpEntry e;
  e.prim = "conv_weight_grad";
  e.dtypes = kConvDTypes;
  e.samples = weight_grad_samples;
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("conv_weight_grad");
    return dispatch1(p, {in[0], in[1]}, conv_attrs(decode(in[2], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_conv_weight_grad(in[0], in[1], decode(in[2].data, nsp_of(in[0])));
  };
  e.tolerance = conv_tolerance;
  auto wg = [](Shape x, Shape dy, ConvArgs a) {
    dispatch1(prim("conv_weight_grad"), {zeros_of(std::move(x)), zeros_of(std::move(dy))},
              conv_attrs(a));
  };
  e.errors = {
      expect_error<ShapeError>("dy larger than the conv output", "conv_weight_grad",
                               [wg] {
                                 wg({1, 2, 5}, {1, 2, 5}, {{1}, {0}, {1}, {0}, 1, {2}});
                               }),
      expect_error<ShapeError>("batch sizes differ", "conv_weight_grad",
                               [wg] {
                                 wg({2, 2, 5}, {1, 2, 4}, {{1}, {0}, {1}, {0}, 1, {2}});
                               }),
      expect_error<ValueError>("groups do not divide dy's channels", "conv_weight_grad",
                               [wg] {
                                 wg({1, 2, 5}, {1, 3, 4}, {{1}, {0}, {1}, {0}, 2, {2}});
                               }),
  };
  return e;
}

Tensor run_max_pool(const std::vector<Tensor>& in) {
  const PoolArgs a = decode_pool(in[1], nsp_of(in[0]));
  switch (in[0].dim()) {
    case 3:
      return max_pool1d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
    case 4:
      return max_pool2d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
    default:
      return max_pool3d(in[0], a.kernel, a.stride, a.padding, a.dilation, a.ceil_mode);
  }
}

Tensor run_avg_pool(const std::vector<Tensor>& in) {
  const PoolArgs a = decode_pool(in[1], nsp_of(in[0]));
  switch (in[0].dim()) {
    case 3:
      return avg_pool1d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
    case 4:
      return avg_pool2d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
    default:
      return avg_pool3d(in[0], a.kernel, a.stride, a.padding, a.ceil_mode, a.count_include_pad);
  }
}

std::vector<ErrorCase> pool_errors(bool is_max) {
  const std::string op2 = is_max ? "max_pool2d" : "avg_pool2d";
  const std::string op1 = is_max ? "max_pool1d" : "avg_pool1d";
  auto pool2 = [is_max](Shape s, Ints k, Ints st, Ints p, DType dt = kFloat32) {
    const Tensor x = zeros_of(std::move(s), dt);
    if (is_max)
      max_pool2d(x, k, st, p);
    else
      avg_pool2d(x, k, st, p);
  };
  auto pool1 = [is_max](Shape s, Ints k) {
    const Tensor x = zeros_of(std::move(s));
    if (is_max)
      max_pool1d(x, k);
    else
      avg_pool1d(x, k);
  };
  return {
      expect_error<ShapeError>("3-d input to the 2-d pool", op2,
                               [pool2] {
                                 pool2({1, 4, 4}, {2}, {}, {0});
                               }),
      expect_error<ShapeError>("kernel larger than the input", op2,
                               [pool2] {
                                 pool2({1, 1, 3, 3}, {4, 2}, {}, {0});
                               }),
      expect_error<ValueError>("padding over half the kernel", op2,
                               [pool2] {
                                 pool2({1, 1, 6, 6}, {2}, {1}, {2});
                               }),
      expect_error<ValueError>("kernel 0", op1,
                               [pool1] {
                                 pool1({1, 1, 6}, {0});
                               }),
      expect_error<ValueError>("kernel of 2 values for 1 dim", op1,
                               [pool1] {
                                 pool1({1, 1, 6}, {2, 2});
                               }),
      expect_error<ValueError>("stride 0", op2,
                               [pool2] {
                                 pool2({1, 1, 6, 6}, {2}, {0}, {0});
                               }),
      expect_error<DTypeError>("integer input", op2,
                               [pool2] {
                                 pool2({1, 1, 4, 4}, {2}, {}, {0}, kInt64);
                               }),
  };
}

OpEntry max_pool_entry() {
  OpEntry e;
  e.prim = "max_pool";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_samples(max_pool_cases(), dt); };
  e.op = run_max_pool;
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_max_pool(in[0], decode_pool(in[1].data, nsp_of(in[0]))).first;
  };
  e.tolerance = pool_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  e.errors = pool_errors(true);
  return e;
}

OpEntry avg_pool_entry() {
  OpEntry e;
  e.prim = "avg_pool";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_samples(avg_pool_cases(), dt); };
  e.op = run_avg_pool;
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_avg_pool(in[0], decode_pool(in[1].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  e.expected_dtype = [](const std::vector<Tensor>& in) { return in[0].dtype(); };
  e.errors = pool_errors(false);
  return e;
}

OpEntry max_pool_backward_entry() {
  OpEntry e;
  e.prim = "max_pool_backward";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_backward_samples(max_pool_cases(), dt, true); };
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("max_pool_backward");
    return dispatch1(p, {in[0], in[1]}, pool_attrs(decode_pool(in[2], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_max_pool_backward(in[0], in[1], decode_pool(in[2].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  const PoolArgs a{{2}, {2}, {0}, {1}, {6}, false, true};
  e.errors = {
      expect_error<IndexError>("index outside the plane", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 3}), full({1, 1, 3}, 6, kInt64)},
                                           pool_attrs(a));
                               }),
      expect_error<ShapeError>("indices of another shape", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 3}), zeros_of({1, 1, 2}, kInt64)},
                                           pool_attrs(a));
                               }),
      expect_error<ShapeError>("gradient not the pooled size", "max_pool_backward",
                               [a] {
                                 dispatch1(prim("max_pool_backward"),
                                           {zeros_of({1, 1, 4}), zeros_of({1, 1, 4}, kInt64)},
                                           pool_attrs(a));
                               }),
  };
  return e;
}

OpEntry avg_pool_backward_entry() {
  OpEntry e;
  e.prim = "avg_pool_backward";
  e.dtypes = kPoolDTypes;
  e.samples = [](DType dt) { return pool_backward_samples(avg_pool_cases(), dt, false); };
  e.op = [](const std::vector<Tensor>& in) {
    static const Primitive& p = prim("avg_pool_backward");
    return dispatch1(p, {in[0]}, pool_attrs(decode_pool(in[1], nsp_of(in[0]))));
  };
  e.reference = [](const std::vector<Ref>& in, DType) {
    return ref_avg_pool_backward(in[0], decode_pool(in[1].data, nsp_of(in[0])));
  };
  e.tolerance = pool_tolerance;
  const PoolArgs a{{2}, {2}, {0}, {1}, {6}, false, true};
  e.errors = {expect_error<ShapeError>("gradient not the pooled size", "avg_pool_backward", [a] {
    dispatch1(prim("avg_pool_backward"), {zeros_of({1, 1, 4})}, pool_attrs(a));
  })};
  return e;
}

bool registered = register_entries({conv_entry(), conv_transpose_entry(), conv_weight_grad_entry(),
                                    max_pool_entry(), avg_pool_entry(), max_pool_backward_entry(),
                                    avg_pool_backward_entry()});

bool is_nn_prim(const std::string& p) {
  for (const char* n : {"conv", "conv_transpose", "conv_weight_grad", "max_pool", "avg_pool",
                        "max_pool_backward", "avg_pool_backward"})
    if (p == n) return true;
  return false;
}

}  // namespace

TEST(NnOps, Table) {
  for (const OpEntry& e : all_entries())
    if (is_nn_prim(e.prim)) check_entry(e);
}

}  // namespace tessera::test
