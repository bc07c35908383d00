// CPU kernels of the comparison, logical and bitwise binary primitives (bool outputs for the
// first two groups).
#include "backends/cpu/elementwise.h"

namespace tessera::cpu::ew {
namespace {

struct PredicateBase {
  explicit PredicateBase(const Attrs&) {}
  template <class T>
  using Out = bool;
  static constexpr int kSimd = -1;
};
struct BitwiseBase {
  explicit BitwiseBase(const Attrs&) {}
  template <class T>
  using Out = T;
  static constexpr int kSimd = -1;
};

#define TS_BINARY_FUNCTOR(Name, Base, str, types, ...) \
  template <class C>                                   \
  struct Name : Base {                                 \
    using Base::Base;                                  \
    static constexpr const char* kName = str;          \
    static constexpr uint32_t kTypes = types;          \
    auto operator()(C a, C b) const { __VA_ARGS__; }   \
  };

TS_BINARY_FUNCTOR(Eq, PredicateBase, "eq", kAll, return a == b)
TS_BINARY_FUNCTOR(Ne, PredicateBase, "ne", kAll, return a != b)
TS_BINARY_FUNCTOR(Lt, PredicateBase, "lt", kB | kI | kF, return a < b)
TS_BINARY_FUNCTOR(Le, PredicateBase, "le", kB | kI | kF, return a <= b)
TS_BINARY_FUNCTOR(Gt, PredicateBase, "gt", kB | kI | kF, return a > b)
TS_BINARY_FUNCTOR(Ge, PredicateBase, "ge", kB | kI | kF, return a >= b)
TS_BINARY_FUNCTOR(LogicalAnd, PredicateBase, "logical_and", kAll, return a != C(0) && b != C(0))
TS_BINARY_FUNCTOR(LogicalOr, PredicateBase, "logical_or", kAll, return a != C(0) || b != C(0))
TS_BINARY_FUNCTOR(LogicalXor, PredicateBase, "logical_xor", kAll, return (a != C(0)) != (b != C(0)))
TS_BINARY_FUNCTOR(BitwiseAnd, BitwiseBase, "bitwise_and", kB | kI, return static_cast<C>(a & b))
TS_BINARY_FUNCTOR(BitwiseOr, BitwiseBase, "bitwise_or", kB | kI, return static_cast<C>(a | b))
TS_BINARY_FUNCTOR(BitwiseXor, BitwiseBase, "bitwise_xor", kB | kI, return static_cast<C>(a ^ b))
#undef TS_BINARY_FUNCTOR

}  // namespace

void register_compare_kernels(Registry& r) {
  struct Row {
    const char* name;
    KernelFn fn;
  };
  static constexpr Row kRows[] = {
      {"eq", binary_kernel<Eq>},
      {"ne", binary_kernel<Ne>},
      {"lt", binary_kernel<Lt>},
      {"le", binary_kernel<Le>},
      {"gt", binary_kernel<Gt>},
      {"ge", binary_kernel<Ge>},
      {"logical_and", binary_kernel<LogicalAnd>},
      {"logical_or", binary_kernel<LogicalOr>},
      {"logical_xor", binary_kernel<LogicalXor>},
      {"bitwise_and", binary_kernel<BitwiseAnd>},
      {"bitwise_or", binary_kernel<BitwiseOr>},
      {"bitwise_xor", binary_kernel<BitwiseXor>},
  };
  for (const Row& row : kRows) r.add_kernel(row.name, {DeviceType::CPU, "builtin", row.fn});
}

}  // namespace tessera::cpu::ew
