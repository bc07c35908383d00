// Creation ops (zeros, arange, eye, *_like, ...), random tensors and tessera.Generator.
#include <cstring>
#include <random>

#include "ops_common.h"
#include "tessera/runtime/cuda.h"

namespace tessera::py::ops {
namespace {

using OptDType = std::optional<DType>;
using OptDevice = std::optional<Device>;

TensorOptions options(OptDType dtype, OptDevice device, DType fallback = kFloat32) {
  return {dtype.value_or(fallback), device.value_or(Device::cpu())};
}

// Options of a *_like op: unset fields follow the input.
TensorOptions like(const Tensor& t, OptDType dtype, OptDevice device) {
  return {dtype.value_or(t.dtype()), device.value_or(t.device())};
}

Tensor finish(Tensor t, bool requires_grad) {
  if (requires_grad) t.requires_grad_(true);
  return t;
}

// The keyword-only tail every creation function shares.
#define TS_CREATION_KW \
  nb::arg("dtype") = nb::none(), nb::arg("device") = nb::none(), nb::arg("requires_grad") = false
#define TS_GEN_KW nb::arg("generator").none() = nb::none()

using ShapeFn = Tensor (*)(Shape, TensorOptions);

void def_sized(nb::module_& m, const char* name, ShapeFn fn, const char* doc) {
  m.def(
      name,
      [fn, name](nb::args size, OptDType dtype, OptDevice device, bool requires_grad) {
        Shape s = shape_from_args(size, name);
        ReleaseGilIfLarge gil(work(s));
        return finish(fn(std::move(s), options(dtype, device)), requires_grad);
      },
      nb::arg("size"), nb::kw_only(), TS_CREATION_KW, doc);
}

void def_like(nb::module_& m, const char* name, ShapeFn fn, const char* doc) {
  m.def(
      name,
      [fn](const Tensor& input, OptDType dtype, OptDevice device, bool requires_grad) {
        ReleaseGilIfLarge gil(work(input));
        return finish(fn(input.shape(), like(input, dtype, device)), requires_grad);
      },
      nb::arg("input"), nb::kw_only(), TS_CREATION_KW, doc);
}

// empty(..., pin_memory=True): page-locked host memory, as PyTorch's keyword.
Tensor empty_maybe_pinned(Shape s, const TensorOptions& o, bool pin_memory) {
  if (!pin_memory) return empty(std::move(s), o);
  if (!o.device.is_cpu())
    fail<ValueError>("empty", "only CPU tensors can be pinned, got device {}", o.device.str());
  return cuda::empty_pinned(std::move(s), o.dtype);
}

void def_constants(nb::module_& m) {
  m.def(
      "empty",
      [](nb::args size, OptDType dtype, OptDevice device, bool requires_grad, bool pin_memory) {
        Shape s = shape_from_args(size, "empty");
        ReleaseGilIfLarge gil(pin_memory ? ReleaseGilIfLarge::kThreshold : work(s));
        return finish(empty_maybe_pinned(std::move(s), options(dtype, device), pin_memory),
                      requires_grad);
      },
      nb::arg("size"), nb::kw_only(), TS_CREATION_KW, nb::arg("pin_memory") = false,
      "A tensor of the given size with uninitialized values. pin_memory: in page-locked host "
      "memory (needs a CUDA device), from which copies to a GPU run at full bandwidth.");
  def_sized(
      m, "zeros", [](Shape s, TensorOptions o) { return zeros(std::move(s), o); },
      "A tensor of the given size filled with 0.");
  def_sized(
      m, "ones", [](Shape s, TensorOptions o) { return ones(std::move(s), o); },
      "A tensor of the given size filled with 1.");
  def_like(
      m, "empty_like", [](Shape s, TensorOptions o) { return empty(std::move(s), o); },
      "An uninitialized tensor with the size (and, unless given, dtype and device) of input.");
  def_like(
      m, "zeros_like", [](Shape s, TensorOptions o) { return zeros(std::move(s), o); },
      "Zeros with the size (and, unless given, dtype and device) of input.");
  def_like(
      m, "ones_like", [](Shape s, TensorOptions o) { return ones(std::move(s), o); },
      "Ones with the size (and, unless given, dtype and device) of input.");
  m.def(
      "full",
      [](const Shape& size, const Scalar& v, OptDType dtype, OptDevice device, bool rg) {
        ReleaseGilIfLarge gil(work(size));
        return finish(full(size, v, options(dtype, device, v.default_dtype())), rg);
      },
      nb::arg("size"), nb::arg("fill_value"), nb::kw_only(), TS_CREATION_KW,
      "A tensor of the given size filled with fill_value; the dtype follows the value (bool, "
      "int64, float32 or complex64) unless given.");
  m.def(
      "full_like",
      [](const Tensor& input, const Scalar& v, OptDType dtype, OptDevice device, bool rg) {
        ReleaseGilIfLarge gil(work(input));
        return finish(full(input.shape(), v, like(input, dtype, device)), rg);
      },
      nb::arg("input"), nb::arg("fill_value"), nb::kw_only(), TS_CREATION_KW,
      "fill_value with the size (and, unless given, dtype and device) of input.");
  m.def(
      "scalar_tensor",
      [](const Scalar& s, OptDType dtype, OptDevice device, bool rg) {
        return finish(full({}, s, options(dtype, device)), rg);
      },
      nb::arg("s"), nb::kw_only(), TS_CREATION_KW,
      "A 0-d tensor holding s (float32 unless dtype is given, like PyTorch).");
}

Tensor on_device(Tensor t, OptDevice device) { return device ? t.to(*device) : t; }

void def_ranges(nb::module_& m) {
  m.def(
      "arange",
      [](const Scalar& end, OptDType dtype, OptDevice device, bool rg) {
        return finish(on_device(arange(end, dtype), device), rg);
      },
      nb::arg("end"), nb::kw_only(), TS_CREATION_KW,
      "Values 0, 1, ... below end; int64 when the bounds are integers, else float32.");
  m.def(
      "arange",
      [](const Scalar& start, const Scalar& end, const Scalar& step, OptDType dtype,
         OptDevice device,
         bool rg) { return finish(on_device(arange(start, end, step, dtype), device), rg); },
      nb::arg("start"), nb::arg("end"), nb::arg("step") = 1, nb::kw_only(), TS_CREATION_KW,
      "Values start, start + step, ... below end; int64 when all are integers, else float32.");
  m.def(
      "linspace",
      [](double start, double end, int64_t steps, OptDType dtype, OptDevice device, bool rg) {
        return finish(linspace(start, end, steps, options(dtype, device)), rg);
      },
      nb::arg("start"), nb::arg("end"), nb::arg("steps"), nb::kw_only(), TS_CREATION_KW,
      "steps evenly spaced values from start to end, both included.");
  m.def(
      "eye",
      [](int64_t n, std::optional<int64_t> cols, OptDType dtype, OptDevice device, bool rg) {
        return finish(eye(n, cols, options(dtype, device)), rg);
      },
      nb::arg("n"), nb::arg("m") = nb::none(), nb::kw_only(), TS_CREATION_KW,
      "An n x m (default n x n) matrix with ones on the diagonal.");
}

// ---- random ---------------------------------------------------------------------------------

void def_random_sized(nb::module_& m, const char* name,
                      Tensor (*fn)(Shape, TensorOptions, Generator*), const char* doc) {
  m.def(
      name,
      [fn, name](nb::args size, Generator* gen, OptDType dtype, OptDevice device, bool rg) {
        Shape s = shape_from_args(size, name);
        ReleaseGilIfLarge gil(work(s));
        return finish(fn(std::move(s), options(dtype, device), gen), rg);
      },
      nb::arg("size"), nb::kw_only(), TS_GEN_KW, TS_CREATION_KW, doc);
  const std::string like_name = std::string(name) + "_like";
  m.def(
      like_name.c_str(),
      [fn](const Tensor& input, Generator* gen, OptDType dtype, OptDevice device, bool rg) {
        ReleaseGilIfLarge gil(work(input));
        return finish(fn(input.shape(), like(input, dtype, device), gen), rg);
      },
      nb::arg("input"), nb::kw_only(), TS_GEN_KW, TS_CREATION_KW,
      "Like the function without _like, with the size (and, unless given, dtype and device) "
      "of input.");
}

Tensor randint_sized(int64_t low, int64_t high, const Shape& size, Generator* gen, OptDType dtype,
                     OptDevice device, bool rg) {
  ReleaseGilIfLarge gil(work(size));
  return finish(randint(low, high, size, options(dtype, device, kInt64), gen), rg);
}

// In-place fills from a fresh draw in self's dtype and device.
Tensor& fill_from(Tensor& self, const Tensor& draw) { return self.copy_(draw); }

void def_random(nb::module_& m, nb::class_<Tensor>& c) {
  def_random_sized(
      m, "rand", [](Shape s, TensorOptions o, Generator* g) { return rand(std::move(s), o, g); },
      "Uniform random values in [0, 1).");
  def_random_sized(
      m, "randn", [](Shape s, TensorOptions o, Generator* g) { return randn(std::move(s), o, g); },
      "Standard normal random values.");
  m.def(
      "randint",
      [](int64_t high, const Shape& size, Generator* gen, OptDType dtype, OptDevice device,
         bool rg) { return randint_sized(0, high, size, gen, dtype, device, rg); },
      nb::arg("high"), nb::arg("size"), nb::kw_only(), TS_GEN_KW, TS_CREATION_KW,
      "Random integers uniform in [0, high) (int64 unless dtype is given).");
  m.def("randint", &randint_sized, nb::arg("low"), nb::arg("high"), nb::arg("size"), nb::kw_only(),
        TS_GEN_KW, TS_CREATION_KW,
        "Random integers uniform in [low, high) (int64 unless dtype is given).");
  m.def(
      "normal",
      [](double mean, double std, const Shape& size, Generator* gen, OptDType dtype,
         OptDevice device, bool rg) {
        ReleaseGilIfLarge gil(work(size));
        return finish(normal(mean, std, size, options(dtype, device), gen), rg);
      },
      nb::arg("mean"), nb::arg("std"), nb::arg("size"), nb::kw_only(), TS_GEN_KW, TS_CREATION_KW,
      "Normal random values with the given mean and standard deviation.");
  auto bern_p = [](const Tensor& input, Generator* gen) {
    ReleaseGilIfLarge gil(work(input));
    return bernoulli(input, gen);
  };
  auto bern_scalar = [](const Tensor& input, double p, Generator* gen) {
    ReleaseGilIfLarge gil(work(input));
    return bernoulli(input.shape(), p, {input.dtype(), input.device()}, gen);
  };
  def_both(m, c, "bernoulli", bern_p, nb::kw_only(), TS_GEN_KW,
           "1 with probability input (elementwise), else 0, in input's dtype.");
  def_both(m, c, "bernoulli", bern_scalar, nb::arg("p"), nb::kw_only(), TS_GEN_KW,
           "1 with probability p, else 0, with input's size and dtype.");
  const auto kSelf = nb::rv_policy::reference;
  c.def(
      "uniform_",
      [](Tensor& self, double from, double to, Generator* gen) -> Tensor& {
        ReleaseGilIfLarge gil(work(self));
        return fill_from(self, uniform(from, to, self.shape(), {self.dtype(), self.device()}, gen));
      },
      nb::arg("from_") = 0.0, nb::arg("to") = 1.0, nb::kw_only(), TS_GEN_KW, kSelf,
      "Fills self with uniform random values in [from, to); returns self.");
  c.def(
      "normal_",
      [](Tensor& self, double mean, double std, Generator* gen) -> Tensor& {
        ReleaseGilIfLarge gil(work(self));
        return fill_from(self, normal(mean, std, self.shape(), {self.dtype(), self.device()}, gen));
      },
      nb::arg("mean") = 0.0, nb::arg("std") = 1.0, nb::kw_only(), TS_GEN_KW, kSelf,
      "Fills self with normal random values; returns self.");
  c.def(
      "bernoulli_",
      [](Tensor& self, double p, Generator* gen) -> Tensor& {
        ReleaseGilIfLarge gil(work(self));
        return fill_from(self, bernoulli(self.shape(), p, {self.dtype(), self.device()}, gen));
      },
      nb::arg("p") = 0.5, nb::kw_only(), TS_GEN_KW, kSelf,
      "Fills self with 1 with probability p, else 0; returns self.");
}

// ---- generators -----------------------------------------------------------------------------

// PyTorch's seed range: [-2**63, 2**64 - 1]; negatives wrap to their two's complement.
uint64_t seed_value(const nb::int_& seed) {
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(seed.ptr(), &overflow);
  if (overflow == 0 && !PyErr_Occurred()) return static_cast<uint64_t>(v);
  PyErr_Clear();
  if (overflow > 0) {
    const unsigned long long u = PyLong_AsUnsignedLongLong(seed.ptr());
    if (!PyErr_Occurred()) return u;
    PyErr_Clear();
  }
  fail<ValueError>("manual_seed", "seed must be in [-2**63, 2**64 - 1], got {}",
                   nb::str(seed).c_str());
}

uint64_t fresh_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// The whole state of a counter-based generator is (seed, offset): 16 bytes, as a uint8 tensor
// like PyTorch's get_state.
Tensor get_state(const Generator& g) {
  const uint64_t words[2] = {g.seed(), g.offset()};
  return from_buffer_copy(words, {16}, kUInt8);
}

void set_state(Generator& g, const Tensor& state) {
  if (state.dtype() != kUInt8 || state.numel() != 16)
    fail<ValueError>("Generator.set_state",
                     "expected a uint8 tensor of 16 elements (from get_state), got {} of shape {}",
                     dtype_name(state.dtype()), shape_str(state.shape()));
  std::vector<uint8_t> bytes = state.to_vector<uint8_t>();
  uint64_t words[2];
  std::memcpy(words, bytes.data(), sizeof words);
  g.manual_seed(words[0]);
  g.set_offset(words[1]);
}

void def_generator(nb::module_& m) {
  const auto kRef = nb::rv_policy::reference;
  nb::class_<Generator>(m, "Generator",
                        "A counter-based (Philox) random stream: the numbers depend only on the "
                        "seed and the position, not on thread count or device.")
      .def(
          "__init__", [](Generator* g, const Device&) { new (g) Generator(); },
          nb::arg("device") = Device::cpu(),
          "A generator with the default seed (the stream is the same on every device).")
      .def(
          "manual_seed",
          [](Generator& g, const nb::int_& seed) -> Generator& {
            g.manual_seed(seed_value(seed));
            return g;
          },
          nb::arg("seed"), kRef, "Restarts the stream from seed; returns self.")
      .def(
          "seed",
          [](Generator& g) {
            const uint64_t s = fresh_seed();
            g.manual_seed(s);
            return s;
          },
          "Reseeds from a non-deterministic source and returns the new seed.")
      .def("initial_seed", &Generator::seed, "The seed the stream started from.")
      .def("get_state", &get_state, "The state (seed and position) as a uint8 tensor.")
      .def("set_state", &set_state, nb::arg("new_state"),
           "Restores a state returned by get_state.");
  m.attr("default_generator") = nb::cast(&default_generator(), kRef);
  m.def(
      "manual_seed",
      [](const nb::int_& seed) -> Generator& {
        manual_seed(seed_value(seed));
        return default_generator();
      },
      nb::arg("seed"), kRef, "Seeds the default generator; returns it.");
  m.def(
      "seed",
      [] {
        const uint64_t s = fresh_seed();
        manual_seed(s);
        return s;
      },
      "Seeds the default generator from a non-deterministic source; returns the seed.");
  m.def(
      "initial_seed", [] { return default_generator().seed(); },
      "The seed of the default generator.");
  m.def(
      "get_rng_state", [] { return get_state(default_generator()); },
      "The default generator's state as a uint8 tensor.");
  m.def(
      "set_rng_state", [](const Tensor& s) { set_state(default_generator(), s); },
      nb::arg("new_state"), "Restores the default generator's state.");
}

#undef TS_CREATION_KW
#undef TS_GEN_KW

}  // namespace

void init_creation(nb::module_& m, nb::class_<Tensor>& c) {
  def_generator(m);
  def_constants(m);
  def_ranges(m);
  def_random(m, c);
}

}  // namespace tessera::py::ops
