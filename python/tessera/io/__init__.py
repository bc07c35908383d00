"""tessera.io: safetensors, NumPy .npy/.npz and training checkpoints.

Writers take what to write first, then the path (like ``torch.save`` and safetensors'
``save_file``); paths are ``str`` or ``os.PathLike``. ``save_file``/``load_file`` are the
safetensors package's names for ``save_safetensors``/``load_safetensors``. Files written here
are read by ``safetensors`` and ``numpy.load`` and the other way round. A malformed or truncated
file raises ``tessera.IOError`` (an ``OSError``). Everything runs in the C++ library
(``tessera._C._io``).
"""
from .._C._io import (  # noqa: F401  (re-exported)
    Checkpoint,
    RngState,
    capture_rng,
    load_checkpoint,
    load_npy,
    load_npz,
    load_safetensors,
    load_safetensors_metadata,
    restore_rng,
    save_checkpoint,
    save_npy,
    save_npz,
    save_safetensors,
)

# The safetensors package's names.
save_file = save_safetensors
load_file = load_safetensors

__all__ = [
    "save_safetensors", "load_safetensors", "load_safetensors_metadata", "save_file",
    "load_file", "save_npy", "load_npy", "save_npz", "load_npz", "save_checkpoint",
    "load_checkpoint", "Checkpoint", "RngState", "capture_rng", "restore_rng",
]
