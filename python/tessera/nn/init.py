"""tessera.nn.init: in-place parameter initializers (mirrors ``torch.nn.init``). Each fills the
tensor without recording gradients, draws from the global generator and returns the tensor."""
from .._C import _nn

_I = _nn.init

__all__ = [name for name in dir(_I) if not name.startswith("_")]
globals().update({name: getattr(_I, name) for name in __all__})
# PyTorch's private spelling, which model code often uses.
_calculate_fan_in_and_fan_out = _I.calculate_fan_in_and_fan_out
