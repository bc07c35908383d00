"""tessera ops, part 2: reductions, scans and softmax against NumPy (float64 references) on
non-contiguous inputs, with every dim form (None, int, negative, tuple), keepdim and dtype."""
import numpy as np
import pytest

import tessera as ts
from conftest import requires_torch, torch

LAYOUTS = ["contiguous", "permuted", "strided"]
DIMS = [None, 0, -1, (0, 2), [1, 2], ()]


def pair(rng, layout, dtype=np.float64, shape=(3, 4, 5)):
    """A NumPy array of `shape` and the equal tessera tensor, laid out as asked."""
    if layout == "contiguous":
        a = rng.uniform(-2, 2, size=shape).astype(dtype)
        return a, ts.tensor(a)
    if layout == "permuted":
        base = rng.uniform(-2, 2, size=shape[::-1]).astype(dtype)
        a, t = base.transpose(2, 1, 0), ts.tensor(base).permute(2, 1, 0)
    else:
        base = rng.uniform(-2, 2, size=shape[:-1] + (2 * shape[-1],)).astype(dtype)
        a, t = base[..., ::2], ts.tensor(base)[..., ::2]
    assert not t.is_contiguous()
    return a, t


def np_dim(dim):
    if dim is None or dim == ():
        return None
    return tuple(dim) if isinstance(dim, (tuple, list)) else dim


def close(t, ref, rtol=1e-12, atol=1e-12):
    assert isinstance(t, ts.Tensor)
    np.testing.assert_allclose(t.numpy(), ref, rtol=rtol, atol=atol)


REDUCTIONS = [  # name, reference
    ("sum", np.sum), ("mean", np.mean), ("prod", np.prod), ("amax", np.max), ("amin", np.min),
    ("logsumexp", lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis,
                                                          keepdims=keepdims))),
    ("count_nonzero", lambda a, axis, keepdims: np.count_nonzero(a, axis=axis)),
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dim", DIMS, ids=repr)
@pytest.mark.parametrize("name, ref", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reductions_match_numpy(name, ref, dim, layout, rng):
    a, t = pair(rng, layout)
    if name == "count_nonzero":
        a, t = np.round(a), ts.round(t)
    if name == "logsumexp" and dim is None:
        dim = (0, 1, 2)  # PyTorch's logsumexp needs a dim
    fn = getattr(ts, name)
    kw = {} if dim is None else {"dim": dim}
    close(fn(t, **kw), ref(a, axis=np_dim(dim), keepdims=False))
    if name != "count_nonzero":
        got = getattr(t, name)(**kw, keepdim=True)
        close(got, ref(a, axis=np_dim(dim), keepdims=True))
        if dim is not None:
            close(fn(t, dim, True), ref(a, axis=np_dim(dim), keepdims=True))


@pytest.mark.parametrize("name, ref", [("all", np.all), ("any", np.any)])
@pytest.mark.parametrize("dim", [None, 1, (0, -1)], ids=repr)
def test_all_any(name, ref, dim, rng):
    a = rng.uniform(size=(3, 4, 2)) < 0.7
    t = ts.tensor(a)
    kw = {} if dim is None else {"dim": dim}
    assert getattr(ts, name)(t, **kw).tolist() == ref(a, axis=np_dim(dim)).tolist()
    assert getattr(t, name)(**kw, keepdim=True).tolist() == \
        ref(a, axis=np_dim(dim), keepdims=True).tolist()
    assert ts.all(ts.tensor([1.0, 2.0])).item() and not ts.any(ts.zeros(3)).item()


def test_reduction_dtypes():
    i = ts.tensor([[1, 2], [3, 4]], dtype=ts.int32)
    assert ts.sum(i).dtype == ts.int64 and ts.sum(ts.tensor([True, True])).item() == 2
    assert ts.sum(i, dtype=ts.float64).dtype == ts.float64
    assert ts.mean(i, dtype=ts.float64).item() == 2.5
    assert ts.prod(i, 1, dtype=ts.float32).tolist() == [2.0, 12.0]
    assert ts.cumsum(i, 0, dtype=ts.float64).dtype == ts.float64
    assert ts.softmax(i, 0, dtype=ts.float64).dtype == ts.float64
    with pytest.raises(TypeError):
        ts.mean(i)  # like PyTorch: mean needs a floating input


@pytest.mark.parametrize("name, np_fn, np_arg", [("max", np.max, np.argmax),
                                                 ("min", np.min, np.argmin)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_max_min_overloads(name, np_fn, np_arg, layout, rng):
    a, t = pair(rng, layout)
    fn = getattr(ts, name)
    close(fn(t), np_fn(a))
    close(getattr(t, name)(), np_fn(a))
    for dim in (0, 1, -1):
        r = fn(t, dim)
        assert isinstance(r, tuple) and type(r).__name__ == name and len(r) == 2
        close(r.values, np_fn(a, axis=dim))
        assert r.indices.tolist() == np_arg(a, axis=dim).tolist()
        values, indices = getattr(t, name)(dim=dim, keepdim=True)
        close(values, np_fn(a, axis=dim, keepdims=True))
        assert indices.shape == values.shape and indices.dtype == ts.int64
        assert r[0] is r.values and "values=" in repr(r)
    b = rng.uniform(-2, 2, size=(5,))
    close(fn(t, ts.tensor(b)), (np.maximum if name == "max" else np.minimum)(a, b))
    assert isinstance(ts.return_types.max, type) and ts.return_types.sort.__doc__
    with pytest.raises(ValueError):
        fn(ts.zeros(0))
    with pytest.raises(IndexError):
        fn(t, 3)


@pytest.mark.parametrize("name, ref", [("argmax", np.argmax), ("argmin", np.argmin)])
def test_argmax_argmin(name, ref, rng):
    a, t = pair(rng, "permuted")
    fn = getattr(ts, name)
    assert fn(t).item() == ref(a) and fn(t).dtype == ts.int64
    for dim in (0, 2, -2):
        assert fn(t, dim).tolist() == ref(a, axis=dim).tolist()
        assert getattr(t, name)(dim=dim, keepdim=True).tolist() == \
            ref(a, axis=dim, keepdims=True).tolist()
    assert fn(ts.tensor([1, 3, 3, 0])).item() == ref(np.array([1, 3, 3, 0]))  # first of ties


@pytest.mark.parametrize("name, ref", [("var", np.var), ("std", np.std)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_var_std_correction_and_unbiased_forms(name, ref, layout, rng):
    a, t = pair(rng, layout)
    fn = getattr(ts, name)
    close(fn(t), ref(a, ddof=1))
    close(fn(t, False), ref(a, ddof=0))
    close(fn(t, unbiased=False), ref(a, ddof=0))
    close(fn(t, 1), ref(a, axis=1, ddof=1))
    close(fn(t, (0, 2), True, True), ref(a, axis=(0, 2), ddof=1, keepdims=True))
    close(fn(t, dim=-1, correction=0, keepdim=True), ref(a, axis=-1, ddof=0, keepdims=True))
    close(getattr(t, name)(dim=[0, 1], correction=2), ref(a, axis=(0, 1), ddof=2))
    with pytest.raises(ValueError, match="either"):
        fn(t, 0, unbiased=True, correction=1)
    with pytest.raises(IndexError):
        fn(t, dim=5)


def vec_norm(a, p, dim):
    """The p-norm over the dims `dim` (all when None), as np.linalg.norm of a flattened vector."""
    axes = list(range(a.ndim)) if dim is None else [d % a.ndim for d in np.atleast_1d(dim)]
    rest = [d for d in range(a.ndim) if d not in axes]
    flat = a.transpose(rest + axes).reshape([a.shape[d] for d in rest] + [-1])
    return np.linalg.norm(flat, ord=p, axis=-1)


@pytest.mark.parametrize("p", [1, 2, 3.5, float("inf"), -float("inf"), "fro"], ids=repr)
@pytest.mark.parametrize("dim", [None, 1, (0, 2)], ids=repr)
def test_norm(p, dim, rng):
    a, t = pair(rng, "strided")
    ref = vec_norm(a, 2 if p == "fro" else p, dim)
    kw = {} if dim is None else {"dim": dim}
    close(ts.norm(t, p, **kw), ref)
    close(t.norm(p=p, keepdim=True, **kw).squeeze(), ref)
    with pytest.raises(ValueError):
        ts.norm(t, "nuc")


@pytest.mark.parametrize("name, ref", [("cumsum", np.cumsum), ("cumprod", np.cumprod)])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_scans(name, ref, layout, rng):
    a, t = pair(rng, layout)
    for dim in (0, 1, -1):
        close(getattr(ts, name)(t, dim), ref(a, axis=dim))
        close(getattr(t, name)(dim=dim), ref(a, axis=dim))
    with pytest.raises(IndexError):
        getattr(ts, name)(t, 3)
    with pytest.raises(TypeError):
        getattr(ts, name)(t)  # dim is required


def np_softmax(a, axis):
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_softmax_log_softmax(layout, rng):
    a, t = pair(rng, layout)
    for dim in (0, -1):
        close(ts.softmax(t, dim), np_softmax(a, dim))
        close(t.softmax(dim), np_softmax(a, dim))
        close(ts.log_softmax(t, dim=dim), np.log(np_softmax(a, dim)))
        close(t.log_softmax(dim), np.log(np_softmax(a, dim)))
    big = ts.tensor([1000.0, 1001.0])
    close(ts.softmax(big, 0), np_softmax(np.array([1000.0, 1001.0]), 0), rtol=1e-6)


def test_reduction_bad_inputs(rng):
    _, t = pair(rng, "contiguous")
    with pytest.raises(IndexError):
        ts.sum(t, dim=3)
    with pytest.raises(IndexError):
        t.mean(dim=(0, -4))
    with pytest.raises(TypeError):
        ts.sum(t, dim="0")
    with pytest.raises(TypeError):
        ts.sum([1, 2])
    with pytest.raises(TypeError):
        ts.logsumexp(t)  # dim is required
    with pytest.raises(TypeError):
        ts.sum(t, 0, False, ts.float64)  # dtype is keyword-only


@requires_torch
@pytest.mark.parametrize("expr", [
    lambda M, x: M.var(x, 1, keepdim=True),
    lambda M, x: M.std(x, unbiased=False),
    lambda M, x: x.var(dim=(0, 2), correction=0),
    lambda M, x: M.norm(x, 1, dim=1),
    lambda M, x: M.logsumexp(x, (0, 1)),
    lambda M, x: x.sum(dim=-1, keepdim=True),
    lambda M, x: M.max(x, 1).values,
    lambda M, x: M.min(x, dim=0, keepdim=True).indices,
    lambda M, x: M.cumprod(x, 2),
    lambda M, x: x.log_softmax(1),
], ids=[f"expr{i}" for i in range(10)])
def test_reduction_keywords_match_pytorch(expr, rng):
    a = rng.uniform(-2, 2, size=(3, 4, 5))
    got, ref = expr(ts, ts.tensor(a)), expr(torch, torch.tensor(a))
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    assert got.shape == tuple(ref.shape)


def test_large_inputs_release_the_gil_and_stay_correct(rng):
    """Above the GIL threshold the ops run without the GIL: results from several Python
    threads at once must still be right."""
    import threading
    a = rng.uniform(-1, 1, size=(300, 400))
    t = ts.tensor(a)
    results, errors = {}, []

    def work(i):
        try:
            results[i] = (ts.sum(t * i, dim=1).numpy(), ts.max(t, 0).indices.numpy(),
                          ts.sort(t, -1).values.numpy(), ts.softmax(t, 1).numpy())
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    for i, (s, idx, srt, sm) in results.items():
        np.testing.assert_allclose(s, (a * i).sum(1), rtol=1e-10, atol=1e-10)
        assert (idx == a.argmax(0)).all() and (srt == np.sort(a, -1)).all()
        np.testing.assert_allclose(sm, np_softmax(a, 1), rtol=1e-12)
