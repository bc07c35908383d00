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
  kC64 = 10,  ///< complex64: moved, converted, and the elementwise ops of complex_kernels.h
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

// Elementwise ops with a device functor (indices into the launch tables of unary.cu /
// unary_more.cu and binary.cu / division.cu; their rules for one element: functors.cuh).
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
  kAsin,
  kAcos,
  kAtan,
  kSinh,
  kCosh,
  kSign,      ///< -1, 0, 1; NaN gives 0
  kSoftplus,  ///< params: beta, threshold
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
  kFloorDivide,   ///< Python's a // b
  kRemainder,     ///< Python's a % b (the divisor's sign)
  kNumBinary
};
/// Integer and bool ops (integer.cu): wrapping arithmetic, Python's division rules, bitwise.
/// Bool is allowed where the CPU allows it (add: or, mul: and, extrema, bitwise, sign).
enum IntUnaryOp : int { kINeg, kIAbs, kIRelu, kISign, kISquare, kIBitNot, kNumIntUnary };
enum IntBinaryOp : int {
  kIAdd,  ///< a + alpha * b
  kISub,
  kIMul,
  kIMaximum,
  kIMinimum,
  kIPow,          ///< by squaring; a negative exponent gives 0 except for bases 1 and -1
  kIFloorDivide,  ///< b == 0: the element is 0 and the fault is recorded (ValueError)
  kIRemainder,    ///< likewise
  kIBitAnd,
  kIBitOr,
  kIBitXor,
  kNumIntBinary
};
/// Float predicates with a bool output (compare.cu); integer and bool inputs are constants.
enum PredicateOp : int { kIsNan, kIsInf, kIsFinite, kNumPredicate };
/// Ternary ops (ternary.cu): clamp(x, lo, hi) for integers and floats, lerp(a, b, w) for floats.
enum TernaryOp : int { kClamp, kLerp, kNumTernary };
/// kAnd and kOr take bool operands only (the host converts other dtypes to bool first).
enum CompareOp : int { kEq, kNe, kLt, kLe, kGt, kGe, kAnd, kOr, kNumCompare };
/// Reductions with a device functor (mean is kSum with scale 1/n).
enum ReduceOp : int { kRSum, kRMax, kRMin, kNumReduce };

/// Whether the float kernels cover a dtype code (float16, bfloat16, float32, float64).
inline bool float_code(int code) { return code >= kF16 && code <= kF64; }
/// Whether a dtype code is an integer (uint8 ... int64).
inline bool int_code(int code) { return code >= kU8 && code <= kI64; }

struct IndexFault;
struct ReducePlan;  // reduce_plan.h

// Each launcher queues work on `stream` (a cudaStream_t) of the current device.
/// out = op(in); both of dtype `code` (a float). p0 and p1 are the op's parameters (softplus:
/// beta, threshold), ignored by the others.
void unary(int op, int code, const void* in, void* out, const Geometry& g, double p0, double p1,
           void* stream);
/// out = op(a, b) (add: a + alpha * b); all of dtype `code` (a float).
void binary(int op, int code, const void* a, const void* b, void* out, double alpha,
            const Geometry& g, void* stream);
/// out = op(in) (an IntUnaryOp); both of dtype `code` (bool or an integer).
void int_unary(int op, int code, const void* in, void* out, const Geometry& g, void* stream);
/// out = op(a, b) (an IntBinaryOp; add: a + alpha * b, alpha converted to the dtype); all of
/// dtype `code` (bool or an integer). Division by zero writes 0 and records the first such
/// element in `fault` (kFloorDivideByZero / kRemainderByZero, the dividend as its index);
/// `fault` may be null for the other ops.
void int_binary(int op, int code, const void* a, const void* b, void* out, int64_t alpha,
                const Geometry& g, IndexFault* fault, void* stream);
/// out (bool, operand 0) = op(in) (a PredicateOp); in (operand 1) of a float dtype `code`.
void predicate(int op, int code, const void* in, void* out, const Geometry& g, void* stream);
/// out (operand 0) = op(a, b, c) (a TernaryOp; operands 1, 2, 3), all of dtype `code`.
void ternary(int op, int code, const void* a, const void* b, const void* c, void* out,
             const Geometry& g, void* stream);
/// out (bool, operand 0) = op(a, b); a and b of dtype `code` (any real dtype, bool included).
void compare(int op, int code, const void* a, const void* b, void* out, const Geometry& g,
             void* stream);
/// out (operand 0) = cond (1, bool) ? a (2) : b (3), elements of `width` bytes (1, 2, 4, 8).
void where(int width, const void* cond, const void* a, const void* b, void* out, const Geometry& g,
           void* stream);
/// A reduction of n_out rows of n_red elements: row o starts at offset `outer`(o) of `in`, its
/// element j at `inner`(j) from there (operand 0 of each geometry). Writes row o's result,
/// times `scale` for kRSum, to out[o] (contiguous). 16-bit floats accumulate in float32.
/// `plan` is k::plan_reduce(outer, inner) (reduce_plan.h: rows or columns, and the parts each
/// output's elements are split into); `work` holds plan.work accumulators (float32, or float64
/// for code kF64), none when the reduction is not split.
void reduce(int op, int code, const void* in, void* out, const Geometry& outer,
            const Geometry& inner, int64_t n_out, int64_t n_red, double scale,
            const ReducePlan& plan, void* work, void* stream);
/// Softmax (log_softmax when log) of n_rows lanes of n elements: lane r starts at offsets
/// `rows`(r) (operand 0: out, 1: in) and steps by out_stride / in_stride elements.
void softmax(bool log, int code, const void* in, void* out, const Geometry& rows, int64_t n,
             int64_t in_stride, int64_t out_stride, void* stream);
/// Fills n elements of `width` bytes (1, 2, 4, 8) with the same bit pattern.
void fill(void* out, int64_t n, int width, uint64_t bits, void* stream);
/// Copies elements of `width` bytes from operand 1 to operand 0 of g.
void copy(int width, const void* src, void* dst, const Geometry& g, void* stream);
/// Converts from dtype src_code (operand 1) to dst_code (operand 0), any two of kBool ... kC64,
/// with the CPU's rules (NaN -> 0 and saturation for float -> integer, round to nearest even
/// for 16-bit floats; complex64 -> real takes the real part, -> bool either part nonzero).
void convert(int src_code, int dst_code, const void* src, void* dst, const Geometry& g,
             void* stream);

/// Where the index kernels record the first out-of-range index they meet instead of reading
/// or writing outside a tensor (mapped host memory: the host reads it after a synchronization).
struct IndexFault {
  /// kFaultNone; kFaultClaimed while the first faulting thread writes op/index/size, then
  /// kFaultPublished. A synchronization of one stream can see a claim made by a kernel still
  /// running on another: it raises only published records.
  int32_t flag;
  int32_t op;    ///< an IndexOp
  int64_t index, size;
};
enum FaultState : int32_t { kFaultNone = 0, kFaultClaimed, kFaultPublished };
enum IndexOp : int32_t { kGather = 1, kScatterAdd, kIndexSelect, kIndexAdd };
/// Integer division by zero (int_binary) is recorded in the same place and raised as
/// ValueError, the CPU's error; `index` holds the dividend. Values apart from IndexOp's.
enum ArithFault : int32_t { kFloorDivideByZero = 64, kRemainderByZero };

/// out (operand 0) = x (operand 1, its stride along the indexed dim zeroed) moved along the
/// indexed dim by idx (operand 2, int64): out[o] = x[o1 + idx[o2] * dim_stride]. Elements of
/// `width` bytes; an index outside [0, dim_size) writes 0 and is recorded in `fault` as `op`.
/// With x and out null the indices are only checked (an empty result: nothing is read).
void gather(int op, int width, const void* x, const int64_t* idx, void* out, const Geometry& g,
            int64_t dim_stride, int64_t dim_size, IndexFault* fault, void* stream);
/// out (operand 0, stride along the dim zeroed) [o0 + idx[o2] * dim_stride] += src (operand 1)
/// with atomic adds, for every dtype code kBool ... kC64 (atomic_add.cuh). Out-of-range indices
/// are skipped and recorded in `fault` as `op`.
void scatter_add(int op, int code, const void* src, const int64_t* idx, void* out,
                 const Geometry& g, int64_t dim_stride, int64_t dim_size, IndexFault* fault,
                 void* stream);
/// argmax (max) or argmin of n_out rows of n_red elements (the geometries of reduce()): the
/// first index of the extreme, a NaN counting as the extreme (the CPU's rule). Float dtypes.
void arg_reduce(bool max, int code, const void* in, int64_t* out, const Geometry& outer,
                const Geometry& inner, int64_t n_out, int64_t n_red, void* stream);

/// One SGD step over n contiguous elements (kF32 or kF64); buf is null without momentum.
struct SgdArgs {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first;  ///< first: the momentum buffer starts as the gradient
};
void sgd(int code, void* p, const void* g, void* buf, int64_t n, const SgdArgs& a, void* stream);
/// One Adam / AdamW step over n contiguous elements (kF32 or kF64); vmax is null without
/// amsgrad. step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t).
struct AdamArgs {
  double lr, beta1, beta2, eps, weight_decay, step_size, bc2_sqrt;
  bool decoupled, maximize;
};
void adam(int code, void* p, const void* g, void* m, void* v, void* vmax, int64_t n,
          const AdamArgs& a, void* stream);
/// One RMSprop step over n contiguous elements (kF32 or kF64); grad_avg is null unless
/// centered, buf (the momentum buffer) null unless momentum > 0.
struct RmspropArgs {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered, maximize;
};
void rmsprop(int code, void* p, const void* g, void* square_avg, void* grad_avg, void* buf,
             int64_t n, const RmspropArgs& a, void* stream);
/// One Adagrad step over n contiguous elements (kF32 or kF64); clr = lr / (1 + (step - 1) *
/// lr_decay), computed on the host.
struct AdagradArgs {
  double clr, weight_decay, eps;
  bool maximize;
};
void adagrad(int code, void* p, const void* g, void* sum, int64_t n, const AdagradArgs& a,
             void* stream);

}  // namespace tessera::cuda::k
