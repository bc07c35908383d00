"""tessera.optim: optimizers (SGD, Adam, AdamW, RMSprop, Adagrad, LBFGS) and learning-rate
schedulers (mirrors ``torch.optim``).

The updates run in the C++ library as fused loops (one pass over memory per parameter), with the
GIL released. ``params`` is an iterable of tensors or of parameter-group dicts::

    opt = optim.SGD([{"params": backbone.parameters()},
                     {"params": head.parameters(), "lr": 0.1}], lr=0.01, momentum=0.9)
    for group in opt.param_groups:
        group["lr"] *= 0.5
"""
from .._C import _optim as _C_optim
from . import lr_scheduler  # noqa: F401
from ..amp import GradScaler  # noqa: F401  (also tessera.amp.GradScaler)

Optimizer = _C_optim.Optimizer
SGD = _C_optim.SGD
Adam = _C_optim.Adam
AdamW = _C_optim.AdamW
RMSprop = _C_optim.RMSprop
Adagrad = _C_optim.Adagrad
LBFGS = _C_optim.LBFGS
ParamGroup = _C_optim.ParamGroup

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LBFGS", "ParamGroup",
           "GradScaler", "lr_scheduler"]
