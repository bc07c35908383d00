#!/usr/bin/env bash
# Builds Tessera with CUDA on a GPU machine that has the CUDA toolkit (nvcc, cuBLAS), CMake,
# Ninja and a C++ compiler but no package registry, runs the CUDA tests (and optionally the
# whole suite), and writes the results under benchmarks/results/.
#
# The Debian -dev packages the build needs travel as .deb files and are unpacked with
# `dpkg -x` into a private prefix (nothing is installed system-wide); CMake, the compiler and
# the loader find them through CMAKE_PREFIX_PATH, CPATH, LIBRARY_PATH and LD_LIBRARY_PATH.
#
#   On a machine with the registry (once):  scripts/gpu/run_gpu_tests.sh --fetch [DEBS_DIR]
#   On the GPU machine:                     scripts/gpu/run_gpu_tests.sh [options]
#
# Options on the GPU machine:
#   --debs DIR     the fetched .deb files (default: scripts/gpu/debs)
#   --prefix DIR   where they are unpacked (default: /tmp/tessera-deps)
#   --build DIR    build directory (default: build-gpu)
#   --system       use the machine's own packages instead of the .deb files
#   --full         also run the whole unit-test suite
#   --configure-only  stop after CMake has found everything (checks the carried packages)
#   --jobs N       parallel compile jobs (default: all cores)
#   --bench        also run `tessera bench gpu` and benchmarks/compare/gpu_compare.py
#   --test-timeout S  seconds the CUDA test run may take before it is killed (default 1200)
# When the CUDA tests fail (or hang), each test suite runs again in its own process, so a kernel
# that leaves the CUDA context unusable fails only its own suite: per-suite JSON reports go to
# benchmarks/results/cuda-tests-<date>-<gpu>-by-suite/.
# Exit status: that of the CUDA tests (0 = all passed).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
debs="$root/scripts/gpu/debs"
prefix="/tmp/tessera-deps"
build="$root/build-gpu"
use_system=0
full=0
configure_only=0
bench=0
jobs="$(nproc)"
test_timeout=1200

# Runtime libraries and -dev packages of Debian 12 (bookworm) that the build links with; their
# binaries need glibc >= 2.34 and libstdc++ >= 11, so they also run on newer distributions.
packages=(
  libhwy-dev libhwy1
  libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libhwloc15
  libopenblas-dev libopenblas0 libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
  liblapacke-dev liblapacke libtmglib-dev libtmglib3
  libdnnl-dev libdnnl2 ocl-icd-opencl-dev ocl-icd-libopencl1 opencl-c-headers opencl-clhpp-headers
  libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev
  libgtest-dev googletest
  libstb-dev libstb0 zlib1g-dev zlib1g
)

if [[ "${1:-}" == "--fetch" ]]; then
  out="${2:-$debs}"
  mkdir -p "$out"
  cd "$out"
  apt-get download "${packages[@]}"
  echo "fetched $(find . -name '*.deb' | wc -l) packages into $out"
  exit 0
fi

while [[ $# -gt 0 ]]; do
  case "$1" in
    --debs) debs="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --system) use_system=1; shift ;;
    --full) full=1; shift ;;
    --configure-only) configure_only=1; shift ;;
    --jobs) jobs="$2"; shift 2 ;;
    --bench) bench=1; shift ;;
    --test-timeout) test_timeout="$2"; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then
  export PATH="/usr/local/cuda/bin:$PATH"  # the toolkit's usual place, not always on PATH
fi
command -v nvcc >/dev/null || { echo "nvcc not found: the CUDA toolkit is needed" >&2; exit 2; }
nvidia-smi -L || echo "warning: nvidia-smi found no GPU; the CUDA tests will skip"

# `dpkg -x`, or where there is no dpkg (a distribution without it) the same with Python: a .deb
# is an ar archive whose data.tar.* member holds the files.
extract_deb() {
  if command -v dpkg >/dev/null; then
    dpkg -x "$1" "$2"
    return
  fi
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile
path, dest = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    data = f.read()
if data[:8] != b"!<arch>\n":
    sys.exit(f"{path}: not a .deb (ar) archive")
pos = 8
while pos + 60 <= len(data):
    name = data[pos:pos + 16].decode().strip().rstrip("/")
    size = int(data[pos + 48:pos + 58].decode().strip())
    body = data[pos + 60:pos + 60 + size]
    pos += 60 + size + (size & 1)
    if name.startswith("data.tar"):
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            # Debian's links may be absolute (fixed up below): extract them as they are.
            if hasattr(tarfile, "fully_trusted_filter"):
                t.extractall(dest, filter="fully_trusted")
            else:
                t.extractall(dest)
        sys.exit(0)
sys.exit(f"{path}: no data.tar member")
PY
}

cmake_args=()
shopt -s nullglob
files=("$debs"/*.deb)
if [[ $use_system -eq 0 && ${#files[@]} -eq 0 ]]; then
  # Not carried (scripts/gpu/debs is ignored by git): the machine may have the packages itself;
  # if not, CMake names the first one missing.
  echo "no .deb files in $debs (run --fetch on a machine with the registry): using the" \
    "machine's own packages"
  use_system=1
fi
if [[ $use_system -eq 0 ]]; then
  mkdir -p "$prefix"
  for f in "${files[@]}"; do extract_deb "$f" "$prefix"; done
  lib="$prefix/usr/lib/x86_64-linux-gnu"
  # Debian points libblas/liblapack/libopenblas at /etc/alternatives, which dpkg -x does not
  # create: point them at the pthread OpenBLAS directly.
  for name in libblas.so libblas.so.3 liblapack.so liblapack.so.3 libopenblas.so libopenblas.so.0; do
    [[ -e "$lib/openblas-pthread/$name" ]] && ln -sfn "openblas-pthread/$name" "$lib/$name"
  done
  # Other absolute links (libz.so -> /lib/...) must stay inside the prefix.
  while IFS= read -r link; do
    target="$(readlink "$link")"
    if [[ "$target" == /* && -e "$prefix$target" ]]; then ln -sfn "$prefix$target" "$link"; fi
  done < <(find "$prefix" -type l)
  export CMAKE_PREFIX_PATH="$prefix/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export CPATH="$prefix/usr/include:$prefix/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}"
  export LIBRARY_PATH="$lib:$lib/openblas-pthread${LIBRARY_PATH:+:$LIBRARY_PATH}"
  export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  cmake_args+=("-DCMAKE_LIBRARY_ARCHITECTURE=x86_64-linux-gnu")
fi

# cuDNN (the convolutions): next to the toolkit, on the system or under CUDNN_ROOT; else the
# one PyTorch's wheels carry (nvidia-cudnn-cuNN) when it is for this toolkit's CUDA major
# version. Without any, the build has no CUDA convolutions and their tests fail.
cuda_major="$(nvcc --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
toolkit_include="$(dirname "$(command -v nvcc)")/../include"
if [[ -z "${CUDNN_ROOT:-}" ]] && ! ls "$toolkit_include/cudnn.h" /usr/include/cudnn.h \
    /usr/local/include/cudnn.h /usr/include/x86_64-linux-gnu/cudnn.h >/dev/null 2>&1; then
  wheel="$(python3 - "$cuda_major" 2>/dev/null <<'PY' || true
import importlib.metadata as md, os, sys
md.distribution(f"nvidia-cudnn-cu{sys.argv[1]}")  # PackageNotFoundError: none for this CUDA
import nvidia.cudnn
root = list(nvidia.cudnn.__path__)[0]
if os.path.exists(os.path.join(root, "include", "cudnn.h")):
    print(root)
PY
)"
  if [[ -n "$wheel" ]]; then
    cudnn_root="$prefix/cudnn"
    mkdir -p "$cudnn_root/lib"
    ln -sfn "$wheel/include" "$cudnn_root/include"
    for so in "$wheel"/lib/libcudnn*.so*; do ln -sfn "$so" "$cudnn_root/lib/$(basename "$so")"; done
    [[ -e "$cudnn_root/lib/libcudnn.so" ]] ||
      ln -sfn "$(ls "$wheel"/lib/libcudnn.so.* | head -1)" "$cudnn_root/lib/libcudnn.so"
    export CUDNN_ROOT="$cudnn_root"
    export LD_LIBRARY_PATH="$cudnn_root/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "cuDNN: PyTorch's wheel for CUDA $cuda_major ($wheel)"
  else
    echo "warning: no cuDNN for CUDA $cuda_major found (set CUDNN_ROOT): the CUDA convolution" \
      "tests and the LeNet-5 step of bench gpu will fail"
  fi
fi

cd "$root"
# Warnings stay warnings here: that machine's compiler may be newer than the one CI gates on.
start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTESSERA_CUDA=ON \
  -DTESSERA_PYTHON=OFF "${cmake_args[@]}"
if [[ $configure_only -eq 1 ]]; then
  grep -E '^(fmt|hwy|TBB|GTest|CLI11|nlohmann_json|dnnl)_DIR|^BLAS_|^TESSERA_(CBLAS|STB|CUDNN)|^ZLIB_LIB' \
    "$build/CMakeCache.txt"
  exit 0
fi
cmake --build "$build" -j "$jobs" --target tessera_tests tessera_cli
build_s=$(( $(date +%s) - start ))

results="$root/benchmarks/results"
mkdir -p "$results"
gpu="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr ' ' '-' || true)"
stamp="$(date +%Y-%m-%d)-${gpu:-nogpu}"
export TESSERA_CACHE_DIR="$build/test_cache"
# `tessera info` measures the GPU's facts (its first real work): a failure there is reported
# and the tests still run.
"$build/cli/tessera" info 2>&1 | tee "$results/cuda-info-$stamp.txt" ||
  echo "tessera info failed (see $results/cuda-info-$stamp.txt)"
echo "build seconds: $build_s" >> "$results/cuda-info-$stamp.txt"
tests="$build/tests/tessera_tests"
filter='*Cuda*:*cuda*'
# run_limited SECONDS COMMAND...: killed after SECONDS where coreutils' timeout exists.
run_limited() {
  local seconds="$1"
  shift
  if command -v timeout >/dev/null; then timeout --signal=KILL "$seconds" "$@"; else "$@"; fi
}
status=0
run_limited "$test_timeout" "$tests" --gtest_filter="$filter" \
  --gtest_output="json:$results/cuda-tests-$stamp.json" || status=$?
if [[ $status -ne 0 ]]; then
  # An asynchronous kernel fault leaves the CUDA context unusable, so every later test of the
  # process fails too, and a hang or crash writes no report at all: each suite again, alone.
  echo "CUDA tests failed (status $status): running each suite in its own process"
  by_suite="$results/cuda-tests-$stamp-by-suite"
  mkdir -p "$by_suite"
  failed=()
  while IFS= read -r tests_of_suite; do
    suite="${tests_of_suite%%.*}"
    rc=0
    run_limited 300 "$tests" --gtest_filter="$tests_of_suite" \
      --gtest_output="json:$by_suite/${suite//\//_}.json" < /dev/null &> "$by_suite/${suite//\//_}.log" ||
      rc=$?
    if [[ $rc -ne 0 ]]; then failed+=("$suite (status $rc)"); fi
  done < <("$tests" --gtest_list_tests --gtest_filter="$filter" | awk '
    /^[^ ]/ { if (f != "") print f; s = $1; sub(/\.$/, "", s); f = ""; next }
    /^  / { f = f (f == "" ? "" : ":") s "." $1 }
    END { if (f != "") print f }')
  if [[ ${#failed[@]} -eq 0 ]]; then
    echo "every suite passes alone: the suites interfere when run in one process"
  else
    printf 'failing alone: %s\n' "${failed[@]}" | tee "$by_suite/failed.txt"
  fi
fi
if [[ $full -eq 1 ]]; then
  "$build/tests/tessera_tests" --gtest_output="json:$results/cuda-full-suite-$stamp.json" ||
    echo "the full suite failed (see $results/cuda-full-suite-$stamp.json)"
fi
echo "CUDA tests: $([[ $status -eq 0 ]] && echo passed || echo FAILED); results in $results"
if [[ $bench -eq 1 ]]; then
  # The GPU suite against the device's own limits; with PyTorch present, the training steps
  # against PyTorch eager on the same GPU (three runs, per-run files).
  "$build/cli/tessera" bench gpu --json > "$results/gpu-$stamp.json" ||
    echo "tessera bench gpu failed (see $results/gpu-$stamp.json)"
  if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
    python3 "$root/benchmarks/compare/gpu_compare.py" --tessera "$build/cli/tessera" \
      --out "$results" || echo "gpu_compare.py failed"
  fi
fi
exit $status
