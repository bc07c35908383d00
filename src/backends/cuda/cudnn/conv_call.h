#pragma once
// Private to cudnn/conv.cpp and cudnn/conv_algos.cpp: the descriptors of one cuDNN
// convolution call and the three passes that run it with a remembered (or newly chosen)
// algorithm.
#include <cudnn.h>

#include "backends/cuda/cudnn/algo_cache.h"
#include "ops/nn_geometry.h"
#include "tessera/core/error.h"

namespace tessera::cuda {

// The policy's enums (algo_cache.h, no cuDNN header there) carry cuDNN's values.
static_assert(static_cast<int>(cudnn::DataType::kFloat) == CUDNN_DATA_FLOAT);
static_assert(static_cast<int>(cudnn::DataType::kDouble) == CUDNN_DATA_DOUBLE);
static_assert(static_cast<int>(cudnn::DataType::kHalf) == CUDNN_DATA_HALF);
static_assert(static_cast<int>(cudnn::DataType::kBFloat16) == CUDNN_DATA_BFLOAT16);
static_assert(static_cast<int>(cudnn::MathType::kDefault) == CUDNN_DEFAULT_MATH);
static_assert(static_cast<int>(cudnn::MathType::kTensorOp) == CUDNN_TENSOR_OP_MATH);
static_assert(static_cast<int>(cudnn::MathType::kTensorOpAllowConversion) ==
              CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION);
static_assert(static_cast<int>(cudnn::MathType::kFma) == CUDNN_FMA_MATH);

inline void check(cudnnStatus_t st, const char* op, const char* call) {
  if (st != CUDNN_STATUS_SUCCESS)
    fail<DeviceError>(op, "cuDNN error {} in {}", cudnnGetErrorString(st), call);
}

// Owners of cuDNN descriptors.
template <class D, cudnnStatus_t (*Create)(D*), cudnnStatus_t (*Destroy)(D)>
struct Desc {
  D d{};
  explicit Desc(const char* op) { check(Create(&d), op, "cudnnCreate*Descriptor"); }
  ~Desc() { Destroy(d); }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
};
using TensorDesc =
    Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc =
    Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;

// Everything one cuDNN convolution call needs: image (n, c, *img), grid (n, o, *grid) and
// weight (o, c / groups, *k) descriptors, all NCHW-contiguous, in `types`.
struct Call {
  const char* op;
  cudnnHandle_t h;
  int dev;
  DType dtype;
  cudnn::ConvTypes types;
  TensorDesc image{op}, grid{op};
  FilterDesc w{op};
  ConvDesc conv{op};
  // cuDNN's scaling factors are double for double data, float for every other type (16-bit
  // data included).
  double one64 = 1, zero64 = 0;
  float one32 = 1, zero32 = 0;

  cudnnDataType_t data() const { return static_cast<cudnnDataType_t>(types.data); }
  bool wide() const { return types.data == cudnn::DataType::kDouble; }
  const void* one() const { return wide() ? static_cast<const void*>(&one64) : &one32; }
  const void* zero() const { return wide() ? static_cast<const void*>(&zero64) : &zero32; }
};

// The device buffers of one pass: forward reads the image x (in0) and the weight (in1) and
// writes the grid y (out); backward data reads the weight (in0) and the grid (in1) and writes
// the image; backward filter reads the image (in0) and the grid's gradient (in1) and writes
// the weight's gradient.
struct Buffers {
  const void* in0;
  const void* in1;
  void* out;
};

// Each runs its pass of a described call (c.conv's math type is set here) with the algorithm
// remembered for the call's key, or chosen now (cuDNN's heuristics, or a timed search under
// set_cudnn_benchmark(true)) and remembered. False when cuDNN supports no algorithm for the
// call (nothing was written then, or only scratch values a timed search left in b.out).
bool run_forward(Call& c, const detail::ConvGeom& g, const Buffers& b);
bool run_backward_data(Call& c, const detail::ConvGeom& g, const Buffers& b);
bool run_backward_filter(Call& c, const detail::ConvGeom& g, const Buffers& b);

}  // namespace tessera::cuda
