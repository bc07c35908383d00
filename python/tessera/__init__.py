"""Tessera: tensors, automatic differentiation and a training stack on a C++20 core.

The public names mirror PyTorch's (``tessera.zeros(2, 3, dtype=tessera.float32)``,
``tessera.sum(x, dim=1, keepdim=True)``, ``x.backward()``) and JAX's function transforms live
in ``tessera.func``. Everything runs in the C++ library; this package only arranges names.
"""
from . import _C
from ._C import *  # noqa: F401,F403  (the ops: tessera.zeros, tessera.sum, ...)
from ._C import (  # noqa: F401  (re-exported)
    Tensor,
    device,
    dtype,
    promote_types,
    tensor,
    from_numpy,
    from_dlpack,
    asarray,
    Error,
    ShapeError,
    DTypeError,
    DeviceError,
    IndexError,
    ValueError,
    IOError,
    NotImplementedError,
    NotBuiltError,
)

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

dtype.__repr__ = lambda self: f"tessera.{self.name}"
dtype.__str__ = dtype.__repr__

# The submodules, each a thin arrangement of the C++ stack.
from . import autograd, func, nn, optim, data, io  # noqa: E402,F401
