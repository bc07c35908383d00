"""tessera.func: JAX-style function transforms (like ``torch.func``).

``grad``, ``value_and_grad``, ``vjp``, ``jvp``, ``vmap``, ``jacrev``, ``jacfwd`` and ``hessian``
take Python functions whose arguments and results are pytrees of tensors: tensors nested in
tuples, lists, dicts and namedtuples. They compose: ``vmap(grad(f))`` gives per-example
gradients, ``grad(grad(f))`` second derivatives, ``jacfwd(jacrev(f))`` Hessians.

The transforms themselves run in C++ (``tessera._C._autograd``) on flat lists of tensors; this
file only flattens pytrees into those lists and rebuilds them. Leaves that are not tensors
(numbers, strings, None) pass through to the function unchanged where nothing needs to be
differentiated or mapped over them.
"""
import functools
import threading

from ._C import Tensor as _Tensor
from ._C import _autograd as _A

__all__ = [
    "grad", "value_and_grad", "vjp", "jvp", "vmap", "jacrev", "jacfwd", "hessian",
    "tree_flatten", "tree_unflatten", "tree_map", "TreeDef",
]


# ---- pytrees -----------------------------------------------------------------------------------

class TreeDef:
    """The structure of a pytree: its containers, with a slot for each leaf.

    Tuples, lists, dicts (in insertion order) and namedtuples are containers; anything else,
    None included, is a leaf.
    """

    __slots__ = ("type", "keys", "children")

    def __init__(self, type_=None, keys=None, children=()):
        self.type = type_  # None for a leaf
        self.keys = keys  # dict keys; "fields" for a namedtuple
        self.children = tuple(children)

    @property
    def num_leaves(self):
        """How many leaves the structure holds."""
        if self.type is None:
            return 1
        return sum(c.num_leaves for c in self.children)

    def _key(self):
        return (self.type, self.keys, self.children)

    def __eq__(self, other):
        return isinstance(other, TreeDef) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        if self.type is None:
            return "*"
        inner = ", ".join(repr(c) for c in self.children)
        if isinstance(self.keys, tuple):
            inner = ", ".join(f"{k!r}: {c!r}" for k, c in zip(self.keys, self.children))
            return f"{{{inner}}}" if self.type is dict else f"{self.type.__name__}({{{inner}}})"
        if self.type is list:
            return f"[{inner}]"
        if self.type is tuple:
            return f"({inner}{',' if len(self.children) == 1 else ''})"
        return f"{self.type.__name__}({inner})"


def tree_flatten(tree):
    """The leaves of tree (depth first) and its TreeDef."""
    leaves = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree, leaves):
    if isinstance(tree, dict):
        keys = tuple(tree)
        return TreeDef(type(tree), keys, [_flatten(tree[k], leaves) for k in keys])
    if isinstance(tree, (tuple, list)):
        kind = "fields" if hasattr(type(tree), "_fields") else None
        return TreeDef(type(tree), kind, [_flatten(x, leaves) for x in tree])
    leaves.append(tree)
    return TreeDef()


def tree_unflatten(treedef, leaves):
    """Rebuilds the pytree treedef describes from its leaves (the inverse of tree_flatten)."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: {treedef!r} has {treedef.num_leaves} leaves, got "
                         f"{len(leaves)}")
    return _build(treedef, iter(leaves))


def _build(d, it):
    if d.type is None:
        return next(it)
    kids = [_build(c, it) for c in d.children]
    if isinstance(d.keys, tuple):
        return d.type(zip(d.keys, kids))
    if d.keys == "fields":
        return d.type(*kids)
    return d.type(kids)


def tree_map(fn, tree):
    """tree with fn applied to every leaf."""
    leaves, treedef = tree_flatten(tree)
    return tree_unflatten(treedef, [fn(x) for x in leaves])


def _broadcast_prefix(prefix, tree, what):
    """One entry per leaf of tree: a leaf of prefix (an int or None) covers its whole subtree,
    a container must match tree's container at that point."""
    if prefix is None or (isinstance(prefix, int) and not isinstance(prefix, bool)):
        return [prefix] * tree_flatten(tree)[1].num_leaves
    if isinstance(prefix, dict):
        if not isinstance(tree, dict) or set(prefix) != set(tree):
            raise ValueError(f"{what}: {prefix!r} does not match the structure "
                             f"{tree_flatten(tree)[1]!r} of its argument")
        return [a for k in tree for a in _broadcast_prefix(prefix[k], tree[k], what)]
    if isinstance(prefix, (tuple, list)):
        if not isinstance(tree, (tuple, list)) or len(prefix) != len(tree):
            raise ValueError(f"{what}: {prefix!r} does not match the structure "
                             f"{tree_flatten(tree)[1]!r} of its argument")
        return [a for p, t in zip(prefix, tree) for a in _broadcast_prefix(p, t, what)]
    raise TypeError(f"{what}: entries must be int, None or tuples/lists/dicts of them, got "
                    f"{type(prefix).__name__}")


class _Flat:
    """A call's arguments split into leaves: the tensor leaves go to C++, the others stay here
    and are put back when the function is called."""

    def __init__(self, args):
        self.leaves, self.treedef = tree_flatten(tuple(args))
        self.where = [i for i, x in enumerate(self.leaves) if isinstance(x, _Tensor)]
        self.tensors = [self.leaves[i] for i in self.where]
        self.starts = []  # index of each argument's first leaf
        at = 0
        for c in self.treedef.children:
            self.starts.append(at)
            at += c.num_leaves

    def rebuild(self, tensors):
        """The argument tuple with the tensor leaves replaced by tensors."""
        leaves = list(self.leaves)
        for i, t in zip(self.where, tensors):
            leaves[i] = t
        return tree_unflatten(self.treedef, leaves)

    def tensor_indices(self, nums, op):
        """Indices into self.tensors of the leaves of arguments nums, which must all be tensors."""
        pos = {leaf: k for k, leaf in enumerate(self.where)}
        out = []
        for n in nums:
            for i in range(self.starts[n], self.starts[n] + self.treedef.children[n].num_leaves):
                if i not in pos:
                    raise TypeError(f"{op}: argument {n} has a leaf of type "
                                    f"{type(self.leaves[i]).__name__}; only tensors can be "
                                    "differentiated")
                out.append(pos[i])
        return out

    def regroup(self, nums, flat):
        """flat (one value per leaf of the arguments nums, in order) as one pytree per argument."""
        out, at = [], 0
        for n in nums:
            d = self.treedef.children[n]
            out.append(tree_unflatten(d, flat[at:at + d.num_leaves]))
            at += d.num_leaves
        return out


def _argnums(argnums, nargs, op):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"{op}: argnums must be an int or a tuple of ints, got {argnums!r}")
        if not -nargs <= n < nargs:
            raise ValueError(f"{op}: argnums {n} is out of range for {nargs} positional "
                             "arguments")
    nums = tuple(n % nargs for n in nums)
    if not nums or len(set(nums)) != len(nums):
        raise ValueError(f"{op}: argnums must be non-empty and without repeats, got {argnums!r}")
    return nums


def _tensor_leaves(tree, op, what):
    leaves, treedef = tree_flatten(tree)
    for x in leaves:
        if not isinstance(x, _Tensor):
            raise TypeError(f"{op}: {what} must be tensors (or pytrees of them), found a leaf of "
                            f"type {type(x).__name__}")
    return leaves, treedef


def _split_aux(out, op):
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
        raise TypeError(f"{op}: with has_aux=True the function must return a pair (output, aux), "
                        f"got {type(out).__name__}")
    return out[0], out[1]


class _OnLeaves:
    """func as a function of flat tensors, for the C++ transforms: ``rebuild`` turns the tensors
    back into func's positional arguments. Each call records the output's tree structure in
    ``out_defs`` and, with has_aux, the aux value in ``aux``, for the caller to rebuild results."""

    def __init__(self, func, rebuild, has_aux, op):
        self.func, self.rebuild, self.has_aux, self.op = func, rebuild, has_aux, op
        self.out_defs, self.aux = [], []

    def __call__(self, tensors):
        out = self.func(*self.rebuild(tensors))
        if self.has_aux:
            out, a = _split_aux(out, self.op)
            self.aux.append(a)
        out_leaves, d = _tensor_leaves(out, self.op, "outputs")
        self.out_defs.append(d)
        return out_leaves


# ---- reverse mode ------------------------------------------------------------------------------

_state = threading.local()  # .depth: reverse-mode transforms running on this thread


class _ReverseScope:
    """Counts the reverse-mode transforms in progress, so vjp knows whether an enclosing one may
    differentiate its outputs (then they keep their history)."""

    def __enter__(self):
        _state.depth = _depth() + 1

    def __exit__(self, *exc):
        _state.depth -= 1


def _depth():
    return getattr(_state, "depth", 0)


def _value_and_grad(func, argnums, has_aux, args, kwargs, op):
    nums = _argnums(argnums, len(args), op)
    flat = _Flat(args)
    diff = flat.tensor_indices(nums, op)
    aux = []

    def f(tensors):
        out = func(*flat.rebuild(tensors), **kwargs)
        if has_aux:
            out, a = _split_aux(out, op)
            aux.append(a)
        if not isinstance(out, _Tensor):
            raise TypeError(f"{op}: the function must return a scalar Tensor, got "
                            f"{type(out).__name__}")
        return [out]

    with _ReverseScope():
        value, grads = _A.value_and_grad(f, flat.tensors, diff)
    per_arg = flat.regroup(nums, grads)
    g = per_arg[0] if isinstance(argnums, int) else tuple(per_arg)
    if not has_aux:
        return value, None, g
    # Outside an enclosing transform the value comes back detached; so does aux.
    a = aux[-1] if value.requires_grad else tree_map(_detach, aux[-1])
    return value, a, g


def _detach(x):
    return x.detach() if isinstance(x, _Tensor) else x


def grad(func, argnums=0, has_aux=False):
    """The gradient of a function returning a scalar tensor, with respect to argument argnums
    (an int: one pytree like that argument; a tuple: a tuple of them).

    With ``has_aux=True`` func returns ``(output, aux)`` and the result is ``(gradient, aux)``.
    Keyword arguments are passed to func and not differentiated.
    """
    @functools.wraps(func)
    def grad_f(*args, **kwargs):
        _, aux, g = _value_and_grad(func, argnums, has_aux, args, kwargs, "grad")
        return (g, aux) if has_aux else g

    return grad_f


def value_and_grad(func, argnums=0, has_aux=False):
    """Like grad, but returns ``(value, gradient)``, or ``((value, aux), gradient)`` with
    has_aux."""
    @functools.wraps(func)
    def value_and_grad_f(*args, **kwargs):
        value, aux, g = _value_and_grad(func, argnums, has_aux, args, kwargs, "value_and_grad")
        return ((value, aux), g) if has_aux else (value, g)

    return value_and_grad_f


def vjp(func, *primals, has_aux=False):
    """``func(*primals)`` and a function mapping cotangents (a pytree like the output) to the
    cotangents of the primals (a tuple, one per primal). Every leaf of primals must be a tensor.
    With has_aux, func returns ``(output, aux)`` and vjp returns ``(output, vjp_fn, aux)``.
    """
    leaves, treedef = _tensor_leaves(primals, "vjp", "primals")
    f = _OnLeaves(func, lambda tensors: tree_unflatten(treedef, tensors), has_aux, "vjp")
    with _ReverseScope():
        outs, pull = _A.vjp(f, leaves)
    out_tree = f.out_defs[-1]
    if _depth() == 0 and not any(p.requires_grad for p in leaves):
        outs = [o.detach() for o in outs]  # nothing outside can differentiate them

    def vjp_fn(cotangents):
        """The cotangents of the primals for the given output cotangents."""
        cot, d = tree_flatten(cotangents)
        if d != out_tree:
            raise ValueError(f"vjp: the cotangents have structure {d!r}, the outputs "
                             f"{out_tree!r}")
        for x in cot:
            if not (x is None or isinstance(x, _Tensor)):
                raise TypeError(f"vjp: cotangents must be tensors, got {type(x).__name__}")
        return tree_unflatten(treedef, pull(cot))

    out = tree_unflatten(out_tree, outs)
    return (out, vjp_fn, f.aux[-1]) if has_aux else (out, vjp_fn)


# ---- forward mode ------------------------------------------------------------------------------

def jvp(func, primals, tangents, *, has_aux=False):
    """``(func(*primals), tangent of the output)`` along tangents (forward mode). primals and
    tangents are tuples of pytrees of tensors with the same structure. With has_aux, func
    returns ``(output, aux)`` and jvp returns ``(output, tangent, aux)``.
    """
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument), got "
                        f"{type(primals).__name__} and {type(tangents).__name__}")
    p_leaves, p_def = _tensor_leaves(tuple(primals), "jvp", "primals")
    t_leaves, t_def = _tensor_leaves(tuple(tangents), "jvp", "tangents")
    if p_def != t_def:
        raise ValueError(f"jvp: tangents have structure {t_def!r}, primals {p_def!r}")
    f = _OnLeaves(func, lambda tensors: tree_unflatten(p_def, tensors), has_aux, "jvp")
    values, out_tangents = _A.jvp(f, p_leaves, t_leaves)
    out_tree = f.out_defs[-1]
    res = (tree_unflatten(out_tree, values), tree_unflatten(out_tree, out_tangents))
    return res + (f.aux[-1],) if has_aux else res


# ---- vmap --------------------------------------------------------------------------------------

def _leaf_axes(in_axes, args):
    if in_axes is None or isinstance(in_axes, int):
        per_arg = [in_axes] * len(args)
    elif isinstance(in_axes, (tuple, list)):
        if len(in_axes) != len(args):
            raise ValueError(f"vmap: in_axes has {len(in_axes)} entries for {len(args)} "
                             "positional arguments")
        per_arg = list(in_axes)
    else:
        raise TypeError(f"vmap: in_axes must be an int, None or a tuple, got "
                        f"{type(in_axes).__name__}")
    return [a for ax, arg in zip(per_arg, args)
            for a in _broadcast_prefix(ax, arg, "vmap: in_axes")]


def _move_batch_dim(t, axis):
    """t with its dim 0 (the batch dim) moved to axis."""
    if axis is None:
        raise ValueError("vmap: out_axes=None is not supported (every output is batched)")
    n = t.dim()
    a = axis + n if axis < 0 else axis
    if not 0 <= a < n:
        raise IndexError(f"vmap: out_axes {axis} is out of range for an output with {n} dims")
    if a == 0:
        return t
    order = list(range(1, n))
    order.insert(a, 0)
    return t.permute(order)


def vmap(func, in_axes=0, out_axes=0):
    """Maps func over a batch dim of its arguments (like ``torch.func.vmap``).

    in_axes says, per positional argument, which dim to map over: an int, None (the argument is
    shared by every example) or a pytree matching the argument; a single int or None applies
    to every argument. Non-tensor leaves must have None. out_axes (an int or a pytree prefix of
    the output) is where the batch dim goes in each output. Keyword arguments are shared.
    """
    @functools.wraps(func)
    def vmapped(*args, **kwargs):
        flat = _Flat(args)
        axes = _leaf_axes(in_axes, args)
        for i, (x, ax) in enumerate(zip(flat.leaves, axes)):
            if ax is not None and not isinstance(x, _Tensor):
                raise ValueError(f"vmap: in_axes gives dim {ax} for a leaf of type "
                                 f"{type(x).__name__}; only tensors can be mapped over "
                                 "(use None for it)")
        f = _OnLeaves(functools.partial(func, **kwargs), flat.rebuild, False, "vmap")
        outs = _A.vmap(f, flat.tensors, [axes[i] for i in flat.where])
        out = tree_unflatten(f.out_defs[-1], outs)
        moved = [_move_batch_dim(t, a) for t, a in
                 zip(outs, _broadcast_prefix(out_axes, out, "vmap: out_axes"))]
        return tree_unflatten(f.out_defs[-1], moved)

    return vmapped


# ---- Jacobians ---------------------------------------------------------------------------------

def _jacobian(func, argnums, has_aux, forward):
    op = "jacfwd" if forward else "jacrev"

    @functools.wraps(func)
    def jac_f(*args, **kwargs):
        nums = _argnums(argnums, len(args), op)
        flat = _Flat(args)
        diff = flat.tensor_indices(nums, op)
        f = _OnLeaves(functools.partial(func, **kwargs), flat.rebuild, has_aux, op)
        with _ReverseScope():
            blocks = _A.jacobian(f, flat.tensors, diff, forward)
        per_out = [flat.regroup(nums, row) for row in blocks]
        per_out = [p[0] if isinstance(argnums, int) else tuple(p) for p in per_out]
        jac = tree_unflatten(f.out_defs[-1], per_out)
        return (jac, f.aux[0]) if has_aux else jac

    return jac_f


def jacrev(func, argnums=0, has_aux=False):
    """The Jacobian of func by reverse mode (one vjp per output element). For an output leaf
    of shape S and an input leaf of shape T the block has shape S + T; the result has the
    output's structure, each leaf holding argument argnums' structure (a tuple of them for a
    tuple argnums)."""
    return _jacobian(func, argnums, has_aux, forward=False)


def jacfwd(func, argnums=0, has_aux=False):
    """The Jacobian of func by forward mode (one jvp per input element); laid out like
    jacrev's."""
    return _jacobian(func, argnums, has_aux, forward=True)


def hessian(func, argnums=0):
    """The Hessian of a scalar-valued func: ``jacfwd(jacrev(func, argnums), argnums)``."""
    return jacfwd(jacrev(func, argnums), argnums)
