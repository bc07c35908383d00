"""tessera.data: datasets, the DataLoader, transforms and readers.

Mirrors ``torch.utils.data``. ``Dataset`` (``__getitem__``/``__len__``) and ``IterableDataset``
(``__iter__``) are subclassed in Python; any object with ``__getitem__`` and ``__len__`` (a list
of samples, a PyTorch-style dataset) works too. Samples may be tensors, NumPy arrays, numbers,
strings, or dicts/tuples/lists of them, and ``default_collate`` batches them as PyTorch does.
``DataLoader`` runs in C++: batches are built in order by ``num_workers`` threads (which take the
GIL to call Python code), and the shuffle order depends only on ``seed``/``generator``, so
``num_workers`` never changes the batches. ``TensorDataset``, ``ImageFolder`` and their
``Subset``/``ConcatDataset`` gather whole batches in C++ without touching Python.

Readers: ``read_csv``/``write_csv``, ``read_idx`` (MNIST), ``read_image``; transforms live in
``tessera.data.transforms``. Everything runs in the C++ library (``tessera._C._data``).
"""
from .._C._data import (  # noqa: F401  (re-exported)
    ConcatDataset,
    DataLoader,
    Dataset,
    ImageFolder,
    IterableDataset,
    Subset,
    TensorDataset,
    default_collate,
    random_split,
    read_csv,
    read_idx,
    read_image,
    write_csv,
)
from . import transforms  # noqa: F401

__all__ = [
    "Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset", "ImageFolder",
    "DataLoader", "default_collate", "random_split", "read_csv", "write_csv", "read_idx",
    "read_image", "transforms",
]
