"""Shared fixtures: a seeded NumPy generator and the optional PyTorch reference."""
import numpy as np
import pytest

try:  # the parity tests compare with PyTorch where it is importable and skip otherwise
    import torch
except ImportError:  # pragma: no cover - depends on the machine
    torch = None


@pytest.fixture
def rng():
    return np.random.default_rng(0)


requires_torch = pytest.mark.skipif(torch is None, reason="PyTorch is not installed")
