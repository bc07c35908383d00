"""Tessera: tensors, automatic differentiation and a training stack on a C++20 core.

The public names mirror PyTorch's (``tessera.zeros(2, 3, dtype=tessera.float32)``,
``tessera.sum(x, dim=1, keepdim=True)``, ``x.backward()``) and JAX's function transforms live
in ``tessera.func``. Everything runs in the C++ library; this package only arranges names.
"""
from . import _C
# Tensor, dtype, device, the ops (tessera.zeros, tessera.sum, ...) and the exception classes
# (tessera.Error and its subclasses; note tessera.ValueError etc. shadow the built-ins here).
from ._C import *  # noqa: F401,F403

__version__ = "0.1.0"

# dtypes as module attributes: tessera.float32, tessera.int64, ...
for _d in dtype:
    globals()[_d.name] = _d
float = float32  # noqa: A001  (PyTorch's aliases)
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16
bool = globals()["bool"]  # noqa: A001  (the dtype, set by the loop above)
cfloat = complex64
del _d

# Submodules defined entirely in C++ are importable by name too (`from tessera.profiler import
# Session`).
import sys as _sys  # noqa: E402

for _name in ("profiler", "scheduler", "cuda"):
    _sys.modules[f"{__name__}.{_name}"] = getattr(_C, _name)
del _name

# The submodules, each a thin arrangement of the C++ stack.
from . import autograd, func, nn, optim, data, io, amp  # noqa: E402,F401
from .autograd import no_grad, enable_grad, set_grad_enabled, inference_mode, is_grad_enabled, is_inference_mode_enabled  # noqa: E402,F401
from .amp import autocast, is_autocast_enabled, get_autocast_dtype  # noqa: E402,F401
