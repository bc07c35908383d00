"""tessera.nn.functional: layers as functions of their inputs and parameters (mirrors
``torch.nn.functional``), all running in the C++ library."""
from .._C import _nn

_F = _nn.functional

__all__ = [name for name in dir(_F) if not name.startswith("_")]
globals().update({name: getattr(_F, name) for name in __all__})
