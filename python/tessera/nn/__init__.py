"""tessera.nn: modules, layers, losses, ``functional`` and ``init`` (mirrors ``torch.nn``).

Everything runs in the C++ library (``tessera._C._nn``): the layers are C++ classes, and a Python
class deriving from :class:`Module` is called by C++ containers through a trampoline. Assigning a
tensor that requires grad (:class:`Parameter`) or a module to an attribute of a module registers
it, as in PyTorch::

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.scale = nn.Parameter(tessera.ones(8))

        def forward(self, x):
            return self.fc1(x) * self.scale
"""
from .._C import _nn as _C_nn
from .parameter import Parameter
from . import functional, init, utils  # noqa: F401

_PUBLIC = [name for name in dir(_C_nn)
           if not name.startswith("_") and name not in ("functional", "init")]
globals().update({name: getattr(_C_nn, name) for name in _PUBLIC})
# The bases PyTorch code sometimes names (isinstance checks, subclassing).
_ConvNd = _C_nn._ConvNd
_ConvTransposeNd = _C_nn._ConvTransposeNd
_BatchNorm = _C_nn._BatchNorm
_Loss = _C_nn._Loss

__all__ = sorted(_PUBLIC + ["Parameter", "functional", "init", "utils"])
del _PUBLIC
