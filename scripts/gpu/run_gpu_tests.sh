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
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

command -v nvcc >/dev/null || { echo "nvcc not found: the CUDA toolkit is needed" >&2; exit 2; }
nvidia-smi -L || echo "warning: nvidia-smi found no GPU; the CUDA tests will skip"

cmake_args=()
if [[ $use_system -eq 0 ]]; then
  shopt -s nullglob
  files=("$debs"/*.deb)
  [[ ${#files[@]} -gt 0 ]] || { echo "no .deb files in $debs (run --fetch first)" >&2; exit 2; }
  mkdir -p "$prefix"
  for f in "${files[@]}"; do dpkg -x "$f" "$prefix"; done
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

cd "$root"
# Warnings stay warnings here: that machine's compiler may be newer than the one CI gates on.
start=$(date +%s)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTESSERA_CUDA=ON \
  -DTESSERA_PYTHON=OFF "${cmake_args[@]}"
if [[ $configure_only -eq 1 ]]; then
  grep -E '^(fmt|hwy|TBB|GTest|CLI11|nlohmann_json|dnnl)_DIR|^BLAS_|^TESSERA_(CBLAS|STB)|^ZLIB_LIB' \
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
"$build/cli/tessera" info | tee "$results/cuda-info-$stamp.txt"
echo "build seconds: $build_s" >> "$results/cuda-info-$stamp.txt"
status=0
"$build/tests/tessera_tests" --gtest_filter='*Cuda*:*cuda*' \
  --gtest_output="json:$results/cuda-tests-$stamp.json" || status=$?
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
