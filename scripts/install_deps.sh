#!/usr/bin/env bash
# Installs the Debian packages Tessera builds with; does nothing when all are present.
set -euo pipefail
packages=(
  cmake ninja-build ccache g++ pkg-config
  libhwy-dev libtbb-dev libopenblas-dev liblapacke-dev
  libdnnl-dev ocl-icd-opencl-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-pip python3-dev
  libstb-dev zlib1g-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python modules: nanobind and scikit-build-core build the Python package, pytest runs its
# tests, safetensors and numpy serve the interop tests (which skip without them).
# Debian's own Python refuses pip outside a virtual environment unless told otherwise.
py_modules=(nanobind scikit-build-core pytest safetensors numpy)
if ! python3 -c "import nanobind, scikit_build_core, pytest, safetensors, numpy" >/dev/null 2>&1; then
  echo "Installing Python modules: ${py_modules[*]}"
  pip_flags=(--quiet)
  if [ -z "${VIRTUAL_ENV:-}" ] && python3 -m pip help install | grep -q -- --break-system-packages; then
    pip_flags+=(--break-system-packages)
  fi
  python3 -m pip install "${pip_flags[@]}" "${py_modules[@]}" ||
    echo "warning: pip failed; the Python package and interop tests will be skipped"
fi
