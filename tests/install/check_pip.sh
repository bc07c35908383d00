#!/usr/bin/env bash
# `pip install .` from the repository root builds and installs the Python package: install it
# into a fresh virtual environment and use it from outside the source tree.
# Usage: check_pip.sh <source dir> <work dir>
set -euo pipefail
src=$1
work=$2
rm -rf "$work"
mkdir -p "$work"
# The build requirements (scikit-build-core, nanobind) come from the system's site-packages,
# which `make deps` fills; --no-build-isolation keeps the check off the network.
python3 -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-deps "$src"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import pathlib
import tessera as ts
assert "site-packages" in ts.__file__, ts.__file__
x = ts.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
(x @ x).sum().backward()
# d sum(X @ X) / dX = ones @ X^T + X^T @ ones
assert x.grad.tolist() == [[7.0, 11.0], [9.0, 13.0]], x.grad
stub = pathlib.Path(ts.__file__).with_name("_C") / "__init__.pyi"
assert stub.exists() and "class Tensor" in stub.read_text()
print("PASS: pip-installed tessera", ts.__version__, "from", ts.__file__)
PY
