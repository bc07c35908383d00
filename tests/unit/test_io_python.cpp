// Interop with the Python reference implementations: files written by safetensors and NumPy are
// read here, and files written here are read and checked by them. Both sides compute the same
// per-element formulas (ref_tensor in test_io_util.h, ref() below). Skips when python3 lacks the
// safetensors or numpy modules (scripts/install_deps.sh installs them).
#include <gtest/gtest.h>

#include <cstdio>

#include "test_io_util.h"

namespace tessera {
namespace {

using namespace iotest;

// Shapes known to both sides by index.
const Shape kPyShapes[] = {{2, 3}, {}, {0, 4}, {3, 1, 2}};

constexpr const char* kPrelude = R"PY(
import sys, os
import numpy as np
import safetensors
from safetensors.numpy import save_file, load_file

out = sys.argv[1]
SHAPES = [(2, 3), (), (0, 4), (3, 1, 2)]
NUMPY_DTYPES = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "float32",
                "float64", "complex64"]

def ref(code, shape):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    if code == "bool": v = i % 3 == 0
    elif code == "uint8": v = ((i * 37) % 256).astype(np.uint8)
    elif code == "int8": v = ((i * 37) % 256 - 128).astype(np.int8)
    elif code == "int16": v = (i * 1000 - 5000).astype(np.int16)
    elif code == "int32": v = (i * 100000 - 7).astype(np.int32)
    elif code == "int64": v = i * 10**12 - 3
    elif code == "float16": v = ((i - 3) * 0.25).astype(np.float16)
    elif code == "float32": v = ((i - 3.0) * 0.1).astype(np.float32)
    elif code == "float64": v = (i - 3.0) * 0.1
    elif code == "complex64":  # parts set one by one: the imaginary part of element 0 is -0.0
        v = np.empty(i.shape, np.complex64)
        v.real, v.imag = i * 0.5, i * -0.25
    return v.reshape(shape)

def bf16_bits(shape):  # (i - 3) * 0.5 is exact in bfloat16: the top half of the float32
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    f = ((i - 3) * 0.5).astype(np.float32)
    return (f.view(np.uint32) >> 16).astype(np.uint16).reshape(shape)

def spec(dtype, arr):  # the torch-free low-level API (its signature changed in 0.6)
    arr = arr.copy(order="C")  # (np.ascontiguousarray would make a 0-d array 1-d)
    if hasattr(safetensors, "TensorSpec"):
        return safetensors.TensorSpec(dtype=dtype, shape=list(arr.shape),
                                      data_ptr=arr.ctypes.data, data_len=arr.nbytes), arr
    return {"dtype": dtype, "shape": list(arr.shape), "data": arr.tobytes()}, arr

failures = []
def check(name, got, want):
    if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
        failures.append(f"{name}: got {got.dtype}{got.shape} {got.ravel()[:6]}, "
                        f"want {want.dtype}{want.shape} {want.ravel()[:6]}")

def finish():
    if failures:
        print("\n".join(failures))
        sys.exit(1)
    print("PYTHON-OK")
)PY";

bool have_python() {
  static const bool ok = std::system("python3 -c 'import safetensors, numpy' >/dev/null 2>&1") == 0;
  return ok;
}

#define REQUIRE_PYTHON()                                                   \
  if (!have_python())                                                      \
  GTEST_SKIP() << "python3 with the safetensors and numpy modules is not " \
                  "available (scripts/install_deps.sh installs them)"

// Runs the prelude plus body with the folder as argv[1]; returns the exit status and output.
std::pair<int, std::string> run_python(const TempDir& dir, const std::string& body) {
  write_bytes(dir / "script.py", std::string(kPrelude) + body);
  std::string cmd =
      fmt::format("python3 '{}' '{}' 2>&1", (dir / "script.py").string(), dir.path().string());
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, "popen failed"};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  return {::pclose(p), out};
}

void expect_python_ok(const TempDir& dir, const std::string& body) {
  auto [status, out] = run_python(dir, body);
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("PYTHON-OK"), std::string::npos) << out;
}

std::string key(DType t, size_t k) { return fmt::format("{}_{}", dtype_name(t), k); }

TEST(IoPython, SafetensorsWrittenByPython) {
  REQUIRE_PYTHON();
  TempDir dir;
  expect_python_ok(dir, R"PY(
save_file({f"{c}_{k}": ref(c, s) for c in NUMPY_DTYPES for k, s in enumerate(SHAPES)},
          os.path.join(out, "np.safetensors"), metadata={"writer": "python"})
keep = [spec("bfloat16", bf16_bits(s)) for s in SHAPES]
safetensors.serialize_file({f"bfloat16_{k}": sp for k, (sp, _) in enumerate(keep)},
                           os.path.join(out, "bf16.safetensors"))
finish()
)PY");
  for (io::LoadMode mode : {io::LoadMode::Read, io::LoadMode::Map}) {
    io::SafetensorsFile f = io::read_safetensors(dir / "np.safetensors", mode);
    EXPECT_EQ(f.metadata, (io::Metadata{{"writer", "python"}}));
    StateDict bf16 = io::load_safetensors(dir / "bf16.safetensors", mode);
    for (size_t k = 0; k < std::size(kPyShapes); ++k) {
      for (DType t : kAllDTypes) {
        const StateDict& sd = t == kBFloat16 ? bf16 : f.tensors;
        ASSERT_EQ(sd.count(key(t, k)), 1u) << key(t, k);
        expect_same(sd.at(key(t, k)), ref_tensor(t, kPyShapes[k]), key(t, k));
      }
    }
  }
}

TEST(IoPython, SafetensorsReadByPython) {
  REQUIRE_PYTHON();
  TempDir dir;
  StateDict sd;
  for (DType t : kAllDTypes)
    for (size_t k = 0; k < std::size(kPyShapes); ++k) sd[key(t, k)] = ref_tensor(t, kPyShapes[k]);
  io::save_safetensors(dir / "cpp.safetensors", sd, {{"writer", "tessera"}});
  expect_python_ok(dir, R"PY(
path = os.path.join(out, "cpp.safetensors")
with safetensors.safe_open(path, framework="np") as f:
    if f.metadata() != {"writer": "tessera"}:
        failures.append(f"metadata {f.metadata()}")
raw = dict(safetensors.deserialize(open(path, "rb").read()))
for k, s in enumerate(SHAPES):
    info = raw[f"bfloat16_{k}"]
    if info["dtype"] != "BF16" or list(info["shape"]) != list(s):
        failures.append(f"bfloat16_{k}: {info['dtype']} {info['shape']}")
    got = np.frombuffer(bytes(info["data"]), dtype="<u2").reshape(s)
    check(f"bfloat16_{k}", got, bf16_bits(s))
with safetensors.safe_open(path, framework="np") as f:
    for c in NUMPY_DTYPES:
        for k, s in enumerate(SHAPES):
            check(f"{c}_{k}", f.get_tensor(f"{c}_{k}"), ref(c, s))
finish()
)PY");
}

TEST(IoPython, NpyAndNpzWrittenByNumPy) {
  REQUIRE_PYTHON();
  TempDir dir;
  expect_python_ok(dir, R"PY(
for c in NUMPY_DTYPES:
    for k, s in enumerate(SHAPES):
        v = ref(c, s)
        np.save(os.path.join(out, f"{c}_{k}.npy"), v)
        np.save(os.path.join(out, f"{c}_{k}_f.npy"), v.copy(order="F"))
        np.save(os.path.join(out, f"{c}_{k}_be.npy"), v.astype(v.dtype.newbyteorder(">")))
arrays = {f"{c}_{k}": ref(c, s) for c in NUMPY_DTYPES for k, s in enumerate(SHAPES)}
np.savez(os.path.join(out, "plain.npz"), **arrays)
np.savez_compressed(os.path.join(out, "packed.npz"), **arrays)
finish()
)PY");
  StateDict plain = io::load_npz(dir / "plain.npz"), packed = io::load_npz(dir / "packed.npz");
  for (DType t : kAllDTypes) {
    if (t == kBFloat16) continue;
    for (size_t k = 0; k < std::size(kPyShapes); ++k) {
      Tensor want = ref_tensor(t, kPyShapes[k]);
      for (const char* suffix : {"", "_f", "_be"})
        expect_same(io::load_npy(dir / (key(t, k) + suffix + ".npy")), want, key(t, k) + suffix);
      expect_same(plain.at(key(t, k)), want, "plain.npz " + key(t, k));
      expect_same(packed.at(key(t, k)), want, "packed.npz " + key(t, k));
    }
  }
}

TEST(IoPython, NpyAndNpzReadByNumPy) {
  REQUIRE_PYTHON();
  TempDir dir;
  StateDict all;
  for (DType t : kAllDTypes) {
    if (t == kBFloat16) continue;
    for (size_t k = 0; k < std::size(kPyShapes); ++k) {
      all[key(t, k)] = ref_tensor(t, kPyShapes[k]);
      io::save_npy(dir / (key(t, k) + ".npy"), all[key(t, k)]);
    }
  }
  io::save_npz(dir / "cpp.npz", all);
  expect_python_ok(dir, R"PY(
with np.load(os.path.join(out, "cpp.npz")) as z:
    if sorted(z.files) != sorted(f"{c}_{k}" for c in NUMPY_DTYPES for k in range(len(SHAPES))):
        failures.append(f"npz members {sorted(z.files)}")
    for c in NUMPY_DTYPES:
        for k, s in enumerate(SHAPES):
            check(f"{c}_{k}.npy", np.load(os.path.join(out, f"{c}_{k}.npy")), ref(c, s))
            check(f"cpp.npz {c}_{k}", z[f"{c}_{k}"], ref(c, s))
import zipfile
bad = zipfile.ZipFile(os.path.join(out, "cpp.npz")).testzip()
if bad is not None:
    failures.append(f"zip CRC check failed for {bad}")
finish()
)PY");
}

}  // namespace
}  // namespace tessera
