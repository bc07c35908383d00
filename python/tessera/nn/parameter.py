"""``tessera.nn.Parameter``: a leaf tensor that requires grad, which modules register."""
from .._C import Tensor


class _ParameterMeta(type):
    # Parameters are plain tensors here: a leaf that requires grad counts as one, which is also
    # what Module.__setattr__ registers.
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and obj.is_leaf and obj.requires_grad


class Parameter(metaclass=_ParameterMeta):
    """``Parameter(data, requires_grad=True)``: ``data`` detached (sharing its storage) as a leaf
    that requires grad. Assigning it to a module attribute registers it as a parameter. The
    result is a :class:`tessera.Tensor`; ``isinstance(t, Parameter)`` is true for any leaf that
    requires grad."""

    def __new__(cls, data=None, requires_grad=True):
        from .. import tensor, zeros  # late: the package finishes importing first

        if data is None:
            data = zeros(0)
        elif not isinstance(data, Tensor):
            data = tensor(data)
        return data.detach().requires_grad_(requires_grad)
