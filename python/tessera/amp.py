"""tessera.amp: automatic mixed precision (mirrors ``torch.amp``).

``autocast`` runs matmul-like primitives (matmul, linear, convolutions) in a 16-bit dtype and
reductions, softmax, losses and functions that overflow in 16 bits in float32, inside a
``with`` block or a decorated function, on one thread and one device type::

    with tessera.autocast(device_type="cpu", dtype=tessera.bfloat16):
        loss = loss_fn(model(x), y)          # bfloat16 matmuls, a float32 loss
    scaler.scale(loss).backward()            # float32 parameters get float32 gradients
    scaler.step(optimizer)                   # skipped when a gradient is inf/NaN
    scaler.update()

The policy is one table in the C++ library, applied where every primitive call passes
(``tessera.amp.policy("matmul") == "lower"``); docs/design/autocast.md explains it.
"""
import functools
import inspect
import threading
import warnings

from ._C import Tensor as _Tensor
from ._C import _amp as _A
from ._C import dtype as _dtype

__all__ = ["autocast", "GradScaler", "is_autocast_enabled", "get_autocast_dtype", "policy"]


def _device_type(device_type):
    name = str(device_type).split(":")[0]
    if name not in ("cpu", "cuda"):
        raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
    return name


def is_autocast_enabled(device_type="cpu"):
    """Whether autocast is on for ``device_type`` on this thread."""
    return _A.get_state(_device_type(device_type))[0]


def get_autocast_dtype(device_type="cpu"):
    """The dtype autocast lowers to on ``device_type`` (bfloat16 on the CPU, float16 on CUDA
    until a scope sets another)."""
    return _A.get_state(_device_type(device_type))[1]


def policy(primitive):
    """What autocast does to a primitive: 'lower', 'float32', 'promote' or 'keep'."""
    return _A.policy(primitive)


class autocast:
    """Mixed precision for its scope, like ``torch.autocast``.

    ``device_type`` is 'cpu' or 'cuda'; ``dtype`` float16 or bfloat16 (None keeps the current
    autocast dtype, so a nested scope inherits it); ``enabled=False`` turns autocast off
    inside. Scopes nest and restore the previous state on exit, also when the block raises.
    The state is per thread. Usable as a decorator.

    Within the outermost scope, the 16-bit casts of parameters (tensors that require grad
    and are leaves, or views of them such as linear's transposed weight) are cached, so a
    weight used several times is cast once; ``cache_enabled=False`` turns that off. The cache
    is dropped when the outermost scope exits.
    """

    def __init__(self, device_type, dtype=None, enabled=True, cache_enabled=None):
        self.device = _device_type(device_type)
        if dtype is not None and not isinstance(dtype, _dtype):
            raise TypeError(f"autocast: dtype must be a tessera.dtype, got {type(dtype).__name__}")
        self.fast_dtype = dtype
        self.enabled = bool(enabled)
        self.cache_enabled = True if cache_enabled is None else bool(cache_enabled)
        self._saved = {}  # thread id -> stack of states to restore

    def __enter__(self):
        prev = _A.get_state(self.device)
        dtype = self.fast_dtype if self.fast_dtype is not None else prev[1]
        _A.set_state(self.device, self.enabled, dtype, self.cache_enabled)
        self._saved.setdefault(threading.get_ident(), []).append(prev)
        _A.increment_nesting()
        return self

    def __exit__(self, exc_type, exc, tb):
        stack = self._saved[threading.get_ident()]
        _A.set_state(self.device, *stack.pop())
        if not stack:
            del self._saved[threading.get_ident()]
        _A.decrement_nesting()
        return False

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            raise TypeError("autocast: decorating a generator function is not supported")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with autocast(self.device, self.fast_dtype, self.enabled, self.cache_enabled):
                return func(*args, **kwargs)

        return wrapper

    def __repr__(self):
        dt = "None" if self.fast_dtype is None else repr(self.fast_dtype)
        return f"autocast(device_type={self.device!r}, dtype={dt}, enabled={self.enabled})"


def _map_tensors(fn, value):
    if isinstance(value, _Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        mapped = [_map_tensors(fn, v) for v in value]
        return type(value)(mapped) if isinstance(value, tuple) else mapped
    if isinstance(value, dict):
        return {k: _map_tensors(fn, v) for k, v in value.items()}
    raise TypeError(f"GradScaler.scale: expected a Tensor or a list/tuple/dict of tensors, "
                    f"got {type(value).__name__}")


class GradScaler(_A.GradScaler):
    """Loss scaling for mixed precision, like ``torch.amp.GradScaler``.

    ``scale(loss)`` multiplies by the scale (2**16 at first); ``unscale_(optimizer)`` divides
    the gradients back in place (once per step, e.g. before clipping); ``step(optimizer)``
    steps unless a gradient is inf/NaN; ``update()`` halves the scale after such a step and
    doubles it after ``growth_interval`` clean ones. ``state_dict()`` / ``load_state_dict``
    round-trip it, and ``tessera.io.save_checkpoint(..., scaler=scaler)`` stores it. With
    ``device="cuda"`` and no CUDA device, the scaler disables itself with a warning (PyTorch
    does the same).
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        self._device = _device_type(device)
        if enabled and self._device == "cuda":
            from . import cuda

            if not cuda.is_available():
                warnings.warn("tessera.amp.GradScaler is enabled, but CUDA is not available. "
                              "Disabling.")
                enabled = False
        super().__init__(init_scale=float(init_scale), growth_factor=float(growth_factor),
                         backoff_factor=float(backoff_factor),
                         growth_interval=int(growth_interval), enabled=bool(enabled))

    def scale(self, outputs):
        """outputs times the scale: a tensor, or lists/tuples/dicts of tensors."""
        return _map_tensors(self._scale_tensor, outputs)

    def step(self, optimizer, *args, **kwargs):
        """Steps optimizer unless its gradients held an inf/NaN (unscaling them first unless
        unscale_ ran). Returns what optimizer.step returns, or None when skipped."""
        if not self.is_enabled():
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs or args:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._step(optimizer)
        return None

    def update(self, new_scale=None):
        """Adapts the scale after the step(s) since the last update, or sets it to new_scale
        (a float or a 1-element tensor that does not require grad)."""
        if isinstance(new_scale, _Tensor):
            if new_scale.numel() != 1 or new_scale.requires_grad:
                raise ValueError("new_scale should be a float or a 1-element tensor with "
                                 "requires_grad=False.")
            new_scale = new_scale.item()
        super().update(None if new_scale is None else float(new_scale))

    def state_dict(self):
        """{'scale', 'growth_factor', 'backoff_factor', 'growth_interval', '_growth_tracker'}
        as Python numbers (PyTorch's layout); empty when disabled."""
        out = {}
        for k, v in self._state_dict_tensors().items():
            out[k] = int(v.item()) if k in ("growth_interval", "_growth_tracker") else float(v.item())
        return out

    def load_state_dict(self, state_dict):
        """Restores state_dict() (numbers or 0-d tensors)."""
        import tessera

        tensors = {}
        for k, v in dict(state_dict).items():
            if isinstance(v, _Tensor):
                tensors[k] = v
            elif k in ("growth_interval", "_growth_tracker"):
                tensors[k] = tessera.tensor(int(v), dtype=tessera.int64)
            else:
                tensors[k] = tessera.tensor(float(v), dtype=tessera.float64)
        self._load_state_dict_tensors(tensors)

    def __repr__(self):
        return (f"GradScaler(device={self._device!r}, scale={self.get_scale()}, "
                f"growth_interval={self.get_growth_interval()}, enabled={self.is_enabled()})")
