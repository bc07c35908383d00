"""tessera.optim.lr_scheduler: learning-rate schedulers (mirrors ``torch.optim.lr_scheduler``).

Construct a scheduler after its optimizer and call ``step()`` after ``optimizer.step()``
(``ReduceLROnPlateau.step(metric)`` once per epoch)."""
from .._C import _optim

_S = _optim.lr_scheduler

__all__ = [name for name in dir(_S) if not name.startswith("_")]
globals().update({name: getattr(_S, name) for name in __all__})
# PyTorch's older name for the base class.
_LRScheduler = _S.LRScheduler
