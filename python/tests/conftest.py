"""Shared fixtures: a seeded NumPy generator, the optional PyTorch reference, and central
differences for gradient checks."""
import numpy as np
import pytest

import tessera as ts

try:  # the parity tests compare with PyTorch where it is importable and skip otherwise
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")


def numerical_grad(f, x, eps=1e-6):
    """Central differences of f (tensor -> scalar tensor) at the float64 array x."""
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(ts.tensor(xp)).item() - f(ts.tensor(xm)).item()) / (2 * eps)
    return g
