#pragma once
// The plain interface between the backend's host code (.cpp, which sees Tensors) and its
// device code (.cu, which sees only pointers, sizes and strides). Neither a Tensor nor a CUDA
// header crosses it, so nvcc compiles small files and the host code stays ordinary C++.
#include <cstdint>

namespace tessera::cuda::k {

inline constexpr int kMaxDims = 12;

/// Element codes of the kernels' dtypes: the values of tessera::DType (bool ... float64).
enum Code : int {
  kBool = 0,
  kU8 = 1,
  kI8 = 2,
  kI16 = 3,
  kI32 = 4,
  kI64 = 5,
  kF16 = 6,
  kBF16 = 7,
  kF32 = 8,
  kF64 = 9,
};

/// One iteration space over up to four operands (0 = output), after merging dims that walk
/// memory uniformly. Strides are in elements; 0 repeats (broadcast).
struct Geometry {
  int ndim = 0;
  int64_t numel = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[4][kMaxDims] = {};
  /// True when every operand with a nonzero stride walks memory contiguously in one dim.
  bool contiguous = false;
  /// True when, in addition, every operand pointer is 16-byte aligned (vector loads apply).
  bool aligned = false;
};

// Elementwise ops with a device functor (index into the tables of elementwise.cu).
enum UnaryOp : int {
  kNeg,
  kAbs,
  kExp,
  kExp2,
  kExpm1,
  kLog,
  kLog2,
  kLog1p,
  kSqrt,
  kRsqrt,
  kSin,
  kCos,
  kTan,
  kTanh,
  kSigmoid,
  kRelu,
  kSilu,
  kGelu,
  kGeluTanh,
  kErf,
  kReciprocal,
  kSquare,
  kFloor,
  kCeil,
  kRound,
  kTrunc,
  kNumUnary
};
enum BinaryOp : int {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMaximum,
  kMinimum,
  kPow,
  kAtan2,
  kReluBackward,  ///< a (the gradient) where b (ReLU's output) > 0, else 0
  kNumBinary
};
enum CompareOp : int { kEq, kNe, kLt, kLe, kGt, kGe, kNumCompare };
/// Reductions with a device functor (mean is kSum with scale 1/n).
enum ReduceOp : int { kRSum, kRMax, kRMin, kNumReduce };

/// Whether the float kernels cover a dtype code (float16, bfloat16, float32, float64).
inline bool float_code(int code) { return code >= kF16 && code <= kF64; }

// Each launcher queues work on `stream` (a cudaStream_t) of the current device.
/// out = op(in); both of dtype `code`.
void unary(int op, int code, const void* in, void* out, const Geometry& g, void* stream);
/// out = op(a, b) (add: a + alpha * b); all of dtype `code`.
void binary(int op, int code, const void* a, const void* b, void* out, double alpha,
            const Geometry& g, void* stream);
/// out (bool, operand 0) = op(a, b); a and b of dtype `code`.
void compare(int op, int code, const void* a, const void* b, void* out, const Geometry& g,
             void* stream);
/// out (operand 0) = cond (1, bool) ? a (2) : b (3), elements of `width` bytes (1, 2, 4, 8).
void where(int width, const void* cond, const void* a, const void* b, void* out, const Geometry& g,
           void* stream);
/// A reduction of n_out rows of n_red elements: row o starts at offset `outer`(o) of `in`, its
/// element j at `inner`(j) from there (operand 0 of each geometry). Writes row o's result,
/// times `scale` for kRSum, to out[o] (contiguous). 16-bit floats accumulate in float32.
/// `work` holds n_out * splits accumulators (float32, or float64 for code kF64) when a row is
/// split into `splits` parts reduced in parallel (splits == 1: no workspace).
void reduce(int op, int code, const void* in, void* out, const Geometry& outer,
            const Geometry& inner, int64_t n_out, int64_t n_red, double scale, int splits,
            void* work, void* stream);
/// Softmax (log_softmax when log) of n_rows lanes of n elements: lane r starts at offsets
/// `rows`(r) (operand 0: out, 1: in) and steps by out_stride / in_stride elements.
void softmax(bool log, int code, const void* in, void* out, const Geometry& rows, int64_t n,
             int64_t in_stride, int64_t out_stride, void* stream);
/// Fills n elements of `width` bytes (1, 2, 4, 8) with the same bit pattern.
void fill(void* out, int64_t n, int width, uint64_t bits, void* stream);
/// Copies elements of `width` bytes from operand 1 to operand 0 of g.
void copy(int width, const void* src, void* dst, const Geometry& g, void* stream);
/// Converts from dtype src_code (operand 1) to dst_code (operand 0) with the CPU's rules
/// (NaN -> 0 and saturation for float -> integer, round to nearest even for 16-bit floats).
void convert(int src_code, int dst_code, const void* src, void* dst, const Geometry& g,
             void* stream);

}  // namespace tessera::cuda::k
