#pragma once
// The complex64 elementwise kernels' interface (complex.cu), in the style of kernels.h:
// pointers and geometries only, no Tensor and no CUDA header. The per-element rules are in
// complex_rules.cuh.
#include "backends/cuda/kernels.h"

namespace tessera::cuda::k {

/// out = op(in), in complex64. The output is complex64 except for kCAbs (float32) and the
/// predicates kCIsNan, kCIsInf, kCIsFinite (bool).
enum ComplexUnaryOp : int {
  kCNeg,
  kCAbs,
  kCExp,
  kCLog,
  kCSqrt,
  kCSin,
  kCCos,
  kCReciprocal,
  kCSquare,
  kCIsNan,
  kCIsInf,
  kCIsFinite,
  kNumComplexUnary
};
/// out = op(a, b), a and b complex64. The output is complex64 except for kCEq and kCNe (bool).
enum ComplexBinaryOp : int {
  kCAdd,       ///< a + b
  kCAddAlpha,  ///< a + alpha * b: the CPU multiplies (a complex product) whenever alpha is given
  kCSub,
  kCMul,
  kCDiv,
  kCPow,
  kCEq,
  kCNe,
  kNumComplexBinary
};

/// Operand 0 of g is out, 1 is in (unary_geometry).
void complex_unary(int op, const void* in, void* out, const Geometry& g, void* stream);
/// Operands 0, 1, 2 of g are out, a, b (binary_geometry); alpha is kCAddAlpha's.
void complex_binary(int op, const void* a, const void* b, void* out, float alpha_re, float alpha_im,
                    const Geometry& g, void* stream);

}  // namespace tessera::cuda::k
