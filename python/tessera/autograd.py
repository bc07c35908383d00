"""tessera.autograd: grad modes, gradients of tensors, custom functions and checkpointing.

Mirrors ``torch.autograd``. The modes (``no_grad``, ``enable_grad``, ``set_grad_enabled``,
``inference_mode``, ``detect_anomaly``) are per thread, like PyTorch's: entering one in a thread
does not affect another. Each is a context manager and a decorator. Everything else runs in the
C++ library (``tessera._C._autograd``); this file arranges names and arguments.
"""
import functools
import inspect
import threading

from ._C import Tensor as _Tensor
from ._C import _autograd as _A

__all__ = [
    "no_grad", "enable_grad", "set_grad_enabled", "inference_mode", "is_grad_enabled",
    "is_inference_mode_enabled", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
    "grad", "backward", "Function", "FunctionCtx", "checkpoint",
]


def is_grad_enabled():
    """Whether ops on tensors that require grad are recorded on this thread."""
    return _A.is_grad_enabled()


def is_inference_mode_enabled():
    """Whether this thread is inside ``inference_mode()``."""
    return _A.is_inference_mode_enabled()


def is_anomaly_enabled():
    """Whether backward checks every gradient for NaN/Inf on this thread."""
    return _A.is_anomaly_enabled()


# ---- grad modes --------------------------------------------------------------------------------

class _DecoratorContextManager:
    """A mode usable as ``with mode():`` and as ``@mode()``.

    Each ``with`` creates a C++ guard that remembers the state it found; ``__exit__`` restores it
    on the same thread. Guards are kept per thread so one instance may be shared by threads.
    """

    _mode = None  # the C++ guard's name; None: this instance changes nothing

    def __init__(self):
        self._guards = {}  # thread id -> stack of entered guards

    def __enter__(self):
        if self._mode is not None:
            guard = _A.ModeGuard(self._mode)
            guard.enter()
            self._guards.setdefault(threading.get_ident(), []).append(guard)
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._mode is not None:
            stack = self._guards[threading.get_ident()]
            stack.pop().exit()
            if not stack:
                del self._guards[threading.get_ident()]
        return False

    def clone(self):
        """A fresh instance with the same settings (each decorated call enters its own)."""
        return type(self)()

    def __call__(self, func):
        """Decorates func: each call (each resumption, for a generator) runs in this mode."""
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            with self.clone():
                return func(*args, **kwargs)

        return wrapper

    def _wrap_generator(self, func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            gen = func(*args, **kwargs)
            step = functools.partial(gen.send, None)
            while True:  # the mode holds only while the generator's own code runs
                try:
                    with self.clone():
                        response = step()
                except StopIteration as stop:
                    return stop.value
                try:
                    request = yield response
                except GeneratorExit:
                    with self.clone():
                        gen.close()
                    raise
                except BaseException as e:  # noqa: B036  (forwarded into the generator)
                    step = functools.partial(gen.throw, e)
                else:
                    step = functools.partial(gen.send, request)

        return wrapper


class no_grad(_DecoratorContextManager):
    """Turns off recording for autograd in its scope (on this thread).

    ``with tessera.no_grad(): y = x * 2`` gives a ``y`` with no history; ``@tessera.no_grad()``
    does the same for every call of a function. The previous state comes back on exit, also
    when the block raises.
    """

    _mode = "no_grad"


class enable_grad(_DecoratorContextManager):
    """Turns recording for autograd back on in its scope (inside ``no_grad``)."""

    _mode = "enable_grad"


class inference_mode(_DecoratorContextManager):
    """Inference mode: nothing is recorded and ops skip the autograd layer entirely.

    ``inference_mode(False)`` is a no-op outside inference mode; leaving an enclosing inference
    mode from inside is not supported (NotImplementedError).
    """

    def __init__(self, mode=True):
        super().__init__()
        self.mode = bool(mode)
        self._mode = "inference_mode" if self.mode else None

    def __enter__(self):
        if not self.mode and is_inference_mode_enabled():
            raise NotImplementedError(
                "inference_mode(False) inside inference_mode() is not supported")
        return super().__enter__()

    def clone(self):
        """A fresh instance with the same mode."""
        return type(self)(self.mode)


class set_grad_enabled(_DecoratorContextManager):
    """Sets grad mode on or off: as a plain call (``set_grad_enabled(False)``, which stays in
    effect), as a context manager (restores the previous mode on exit) or as a decorator.

    Like PyTorch, the mode changes when the object is created.
    """

    def __init__(self, mode):
        super().__init__()
        if not isinstance(mode, bool):
            raise TypeError(f"set_grad_enabled: mode must be a bool, got {type(mode).__name__}")
        self.mode = mode
        self._guard = _A.ModeGuard("enable_grad" if mode else "no_grad")
        self._guard.enter()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self._guard.exit()
        return False

    def clone(self):
        """A fresh instance (it sets the mode again)."""
        return type(self)(self.mode)

    def __call__(self, func):
        """Decorates func; the mode set by the constructor is undone first (as in PyTorch)."""
        self._guard.exit()
        return _ModeDecorator(lambda: set_grad_enabled(self.mode))(func)


class _ModeDecorator(_DecoratorContextManager):
    """Decorates with a context manager made by factory() for each call."""

    def __init__(self, factory):
        super().__init__()
        self._factory = factory

    def clone(self):
        """A fresh context manager from the factory."""
        return self._factory()


class detect_anomaly(_DecoratorContextManager):
    """Anomaly detection in its scope: backward checks every gradient it produces for NaN/Inf
    and the error names the op (and its forward op) that produced it.

    ``check_nan=False`` makes the block change nothing (the C++ checks cannot be split).
    """

    def __init__(self, check_nan=True):
        super().__init__()
        self.check_nan = bool(check_nan)
        self._mode = "anomaly" if self.check_nan else None

    def clone(self):
        """A fresh instance with the same setting."""
        return type(self)(self.check_nan)


_thread = threading.local()  # .anomaly: guards entered by plain set_detect_anomaly(True) calls


def _plain_anomaly_guards():
    if not hasattr(_thread, "anomaly"):
        _thread.anomaly = []
    return _thread.anomaly


class set_detect_anomaly:
    """Turns anomaly detection on or off: a plain call stays in effect, a ``with`` block
    restores the previous setting on exit.

    Turning it off undoes earlier ``set_detect_anomaly(True)`` calls on this thread; inside a
    ``detect_anomaly()`` block it cannot be turned off (NotImplementedError).
    """

    def __init__(self, mode):
        self.mode = bool(mode)
        self._guard = None
        self._undone = 0
        guards = _plain_anomaly_guards()
        if self.mode:
            self._guard = _A.ModeGuard("anomaly")
            self._guard.enter()
            guards.append(self._guard)
            return
        while guards and is_anomaly_enabled():
            guards.pop().exit()
            self._undone += 1
        if is_anomaly_enabled():
            self._redo()
            raise NotImplementedError(
                "set_detect_anomaly(False) cannot turn off an enclosing detect_anomaly() block")

    def _redo(self):
        guards = _plain_anomaly_guards()
        for _ in range(self._undone):
            guard = _A.ModeGuard("anomaly")
            guard.enter()
            guards.append(guard)
        self._undone = 0

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        guards = _plain_anomaly_guards()
        if self._guard is not None and self._guard in guards:
            guards.remove(self._guard)
            self._guard.exit()
        self._redo()
        return False


# ---- gradients ---------------------------------------------------------------------------------

def _tensors(value, what, allow_none=False):
    """value (a Tensor or a sequence of them) as a list, with a clear TypeError otherwise."""
    items = [value] if isinstance(value, _Tensor) or value is None else list(value)
    for i, t in enumerate(items):
        if not (isinstance(t, _Tensor) or (allow_none and t is None)):
            raise TypeError(f"{what}[{i}] must be a Tensor{' or None' if allow_none else ''}, "
                            f"got {type(t).__name__}")
    return items


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``sum(grad_outputs[i] * outputs[i])`` with respect to each input, returned
    as a tuple (not accumulated into ``.grad``).

    outputs and inputs are tensors or sequences of tensors; grad_outputs may be omitted (or
    None entries given) for outputs with one element. With ``allow_unused=True`` an input the
    outputs do not depend on gets None; ``create_graph=True`` records the backward pass so the
    gradients can be differentiated again.
    """
    outs = _tensors(outputs, "outputs")
    ins = _tensors(inputs, "inputs")
    seeds = [] if grad_outputs is None else _tensors(grad_outputs, "grad_outputs", True)
    if seeds and len(seeds) != len(outs):
        raise ValueError(f"autograd.grad: got {len(seeds)} grad_outputs for {len(outs)} outputs")
    res = _A.grad(outs, ins, seeds, retain_graph, bool(create_graph), bool(allow_unused))
    return tuple(res)


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulates the gradients of several tensors into the ``.grad`` of the leaves (one
    backward pass; grad_tensors as in ``grad``)."""
    outs = _tensors(tensors, "tensors")
    seeds = [] if grad_tensors is None else _tensors(grad_tensors, "grad_tensors", True)
    if seeds and len(seeds) != len(outs):
        raise ValueError(f"autograd.backward: got {len(seeds)} grad_tensors for {len(outs)} "
                         "tensors")
    _A.backward(outs, seeds, retain_graph, bool(create_graph))


# ---- custom functions --------------------------------------------------------------------------

class FunctionCtx:
    """The ``ctx`` a custom Function's forward fills and its backward reads.

    Any attribute may be set on it (``ctx.k = 3``). Tensors backward needs go through
    ``save_for_backward`` (checked against later in-place changes); storing them as plain
    attributes works too, but an output kept that way keeps its own graph alive.
    """

    def __init__(self, needs_input_grad=()):
        self.needs_input_grad = needs_input_grad
        self._to_save = ()
        self._non_diff = []

    def save_for_backward(self, *tensors):
        """Keeps tensors (or None) for backward, where they come back as ``saved_tensors``."""
        self._to_save = tuple(_tensors(list(tensors), "save_for_backward", allow_none=True))

    def mark_non_differentiable(self, *tensors):
        """Marks outputs that get no gradient (integer outputs never do)."""
        self._non_diff.extend(_tensors(list(tensors), "mark_non_differentiable"))

    @property
    def saved_tensors(self):
        """The tensors given to save_for_backward (only in backward)."""
        try:
            return self._saved
        except AttributeError:
            raise RuntimeError("saved_tensors is only available inside backward") from None


class Function:
    """Base of custom differentiable functions, as in PyTorch::

        class Exp(tessera.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                y = x.exp()
                ctx.save_for_backward(y)
                return y

            @staticmethod
            def backward(ctx, grad):
                (y,) = ctx.saved_tensors
                return grad * y

        y = Exp.apply(x)

    forward runs without recording and returns a Tensor or a tuple of Tensors; backward gets
    one gradient per output and returns one per forward argument (None for arguments that are
    not tensors or need none). Non-tensor arguments are passed to forward unchanged.
    """

    @staticmethod
    def forward(ctx, *args):
        """Computes the outputs from the arguments; override it."""
        raise NotImplementedError("a Function subclass must define forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        """Maps one gradient per output to one per forward argument; override it."""
        raise NotImplementedError("a Function subclass must define backward(ctx, ...)")

    @classmethod
    def apply(cls, *args):
        """Runs forward and records one node whose backward is this class's backward."""
        where = [i for i, a in enumerate(args) if isinstance(a, _Tensor)]
        ctx = FunctionCtx(tuple(isinstance(a, _Tensor) and a.requires_grad for a in args))
        single = []  # whether forward returned one Tensor (set by forward)

        def forward(tensors):
            full = list(args)
            for i, t in zip(where, tensors):
                full[i] = t
            out = cls.forward(ctx, *full)
            single.append(isinstance(out, _Tensor))
            outs = (out,) if single[-1] else out
            if not isinstance(outs, (tuple, list)) or not all(isinstance(o, _Tensor) for o in outs):
                raise TypeError(f"{cls.__name__}.forward must return a Tensor or a tuple of "
                                f"Tensors, got {_describe(out)}")
            saved, ctx._to_save = ctx._to_save, ()  # the C++ ctx keeps them from here on
            non_diff, ctx._non_diff = ctx._non_diff, []
            return list(outs), list(saved), non_diff

        outs = _A.apply_function(cls.__name__, forward,
                                 _custom_backward(cls, ctx, len(args), where), list(
                                     args[i] for i in where))
        return outs[0] if single[-1] else tuple(outs)


def _custom_backward(cls, ctx, n_args, where):
    """The backward callable for one apply: it keeps ctx, not the arguments themselves."""
    def backward(saved, grads):
        ctx._saved = tuple(saved)
        try:
            res = cls.backward(ctx, *grads)
        finally:
            del ctx._saved
        res = tuple(res) if isinstance(res, (tuple, list)) else (res,)
        if len(res) < n_args or any(g is not None for g in res[n_args:]):
            raise ValueError(f"{cls.__name__}.backward returned {len(res)} gradients; expected "
                             f"{n_args} (one per forward argument)")
        for i, g in enumerate(res[:n_args]):
            if g is not None and not isinstance(g, _Tensor):
                raise TypeError(f"{cls.__name__}.backward: gradient {i} must be a Tensor or "
                                f"None, got {type(g).__name__}")
        return [res[i] for i in where]

    return backward


def _describe(value):
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__} of ({', '.join(type(v).__name__ for v in value)})"
    return type(value).__name__


def checkpoint(function, *args, use_reentrant=None, **kwargs):
    """Activation checkpointing (like ``torch.utils.checkpoint.checkpoint``): runs
    ``function(*args, **kwargs)`` without keeping its intermediate results; backward runs it
    again, with recording, to get the gradients. function must be deterministic and return a
    Tensor or a tuple of Tensors; non-tensor arguments are passed through unchanged.
    use_reentrant is accepted for compatibility and ignored.
    """
    del use_reentrant
    where = [i for i, a in enumerate(args) if isinstance(a, _Tensor)]
    single = []

    def run(tensors):
        full = list(args)
        for i, t in zip(where, tensors):
            full[i] = t
        out = function(*full, **kwargs)
        single.append(isinstance(out, _Tensor))
        outs = (out,) if single[-1] else out
        if not isinstance(outs, (tuple, list)) or not all(isinstance(o, _Tensor) for o in outs):
            raise TypeError("checkpoint: the function must return a Tensor or a tuple of Tensors, "
                            f"got {_describe(out)}")
        return list(outs)

    outs = _A.checkpoint(run, [args[i] for i in where])
    return outs[0] if single[0] else tuple(outs)
