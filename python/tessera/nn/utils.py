"""tessera.nn.utils: gradient clipping (mirrors ``torch.nn.utils``)."""
from .._C import _optim

clip_grad_norm_ = _optim.clip_grad_norm_
clip_grad_value_ = _optim.clip_grad_value_

__all__ = ["clip_grad_norm_", "clip_grad_value_"]
