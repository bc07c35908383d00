"""tessera.data.transforms: tensor transforms for preprocessing and augmentation.

Names follow ``torchvision.transforms``, but every transform maps a tensor to a tensor:
``ToTensor`` turns a uint8 (H, W, C) image into float32 (C, H, W) in [0, 1], and the others
work on such tensors. ``Compose`` also accepts any Python callable tensor -> tensor. Random
transforms draw from ``generator`` (a ``tessera.Generator``; default: the process-wide one).
"""
from .._C._data.transforms import (  # noqa: F401  (re-exported)
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    ToTensor,
    Transform,
)

__all__ = ["Transform", "Compose", "Normalize", "ToTensor", "RandomCrop", "RandomHorizontalFlip"]
