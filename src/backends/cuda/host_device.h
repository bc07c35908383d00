#pragma once
// TS_HD marks the per-element rules written once for nvcc and g++ (functors.cuh,
// complex_rules.cuh, optim_rules.cuh, random_math.cuh, shape_map.cuh, sort_keys.cuh,
// reduce_ops.cuh, ...): __host__ __device__ code in the kernels, plain inline functions where g++
// compiles them for the host tests that check them against the CPU kernels. The two
// definitions of a rule differ in their attributes, so headers whose rules a host test and the
// library both hold put them in the inline namespace TS_FN_NS: the sets never meet in one
// program.
#ifdef __CUDACC__
#define TS_HD __host__ __device__ __forceinline__
#define TS_FN_NS nvcc
#else
#define TS_HD inline
#define TS_FN_NS gxx
#endif
