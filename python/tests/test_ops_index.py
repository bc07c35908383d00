"""tessera ops, part 3: shape ops, indexing, sorting and products against NumPy on
non-contiguous inputs, keyword forms and bad input."""
import numpy as np
import pytest

import tessera as ts
from conftest import requires_torch, torch


def pair(rng, shape=(4, 6), noncontig=True, dtype=np.float64):
    """A NumPy array and the equal tessera tensor (a transposed view when noncontig)."""
    if not noncontig:
        a = rng.uniform(-2, 2, size=shape).astype(dtype)
        return a, ts.tensor(a)
    base = rng.uniform(-2, 2, size=shape[::-1]).astype(dtype)
    t = ts.tensor(base).permute(*reversed(range(len(shape))))
    assert not t.is_contiguous() or 1 in shape or len(shape) < 2
    return base.transpose(), t


def same(t, ref):
    assert isinstance(t, ts.Tensor) and t.shape == np.shape(ref)
    np.testing.assert_array_equal(t.numpy(), ref)


# ---- joining, splitting, reordering ---------------------------------------------------------

@pytest.mark.parametrize("name", ["cat", "concat"])
def test_cat_and_stack(name, rng):
    a, x = pair(rng, (2, 3))
    b, y = pair(rng, (4, 3), noncontig=False)
    same(getattr(ts, name)([x, y]), np.concatenate([a, b]))
    same(getattr(ts, name)((x, x), dim=-1), np.concatenate([a, a], axis=-1))
    same(ts.cat(tensors=[x], dim=0), a)
    same(ts.stack([x, x * 2]), np.stack([a, a * 2]))
    same(ts.stack((x, x), dim=2), np.stack([a, a], axis=2))
    with pytest.raises(ValueError):
        ts.cat([x, y], dim=1)
    with pytest.raises(ValueError):
        ts.stack([x, y])
    with pytest.raises(IndexError):
        ts.cat([x, x], dim=2)
    with pytest.raises(TypeError):
        ts.cat([x, 1.0])


def test_split_chunk_unbind(rng):
    a, x = pair(rng, (7, 3))
    for got, ref in zip(ts.split(x, 3), np.split(a, [3, 6])):
        same(got, ref)
    parts = x.split([2, 5], dim=0)
    assert isinstance(parts, tuple) and len(parts) == 2
    same(parts[1], a[2:])
    assert ts.split(x, split_size_or_sections=2, dim=1)[1].shape == (7, 1)
    chunks = ts.chunk(x, 3)
    assert [c.shape[0] for c in chunks] == [3, 3, 1]
    same(x.chunk(2, dim=1)[0], a[:, :2])
    rows = ts.unbind(x)
    assert isinstance(rows, tuple) and len(rows) == 7
    same(rows[4], a[4])
    same(x.unbind(dim=1)[2], a[:, 2])
    with pytest.raises(ValueError):
        ts.split(x, [2, 2])
    with pytest.raises(IndexError):
        ts.unbind(x, 2)


def test_flip_roll_repeat_tile_movedim(rng):
    a, x = pair(rng, (3, 4, 2))
    same(ts.flip(x, (0, 2)), np.flip(a, (0, 2)))
    same(x.flip(1), np.flip(a, 1))
    same(ts.roll(x, 2), np.roll(a, 2))
    same(ts.roll(x, (1, -1), (0, 2)), np.roll(a, (1, -1), (0, 2)))
    same(x.roll(shifts=1, dims=1), np.roll(a, 1, 1))
    same(x.repeat(2, 1, 3), np.tile(a, (2, 1, 3)))
    same(x.repeat((1, 2, 1, 1)), np.tile(a, (1, 2, 1, 1)))
    same(ts.tile(x, (2,)), np.tile(a, 2))
    same(x.tile((2, 1, 1, 1)), np.tile(a, (2, 1, 1, 1)))
    for name in ("movedim", "moveaxis"):
        same(getattr(ts, name)(x, 0, 2), np.moveaxis(a, 0, 2))
        same(getattr(x, name)(-1, 0), np.moveaxis(a, -1, 0))
    with pytest.raises(IndexError):
        ts.flip(x, 3)
    with pytest.raises(ValueError):
        x.repeat(2, 2)  # fewer repeats than dims


@pytest.mark.parametrize("k", [-1, 0, 2])
def test_tril_triu_diag(k, rng):
    a, x = pair(rng, (4, 5))
    same(ts.tril(x, k), np.tril(a, k))
    same(x.triu(diagonal=k), np.triu(a, k))
    same(ts.diag(x, k), np.diag(a, k))
    v = a[0]
    same(ts.diag(ts.tensor(v), k), np.diag(v, k))
    same(ts.tensor(v).diag(diagonal=k), np.diag(v, k))
    with pytest.raises(ValueError):
        ts.diag(ts.zeros(2, 2, 2))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate"])
def test_pad(mode, rng):
    a, x = pair(rng, (3, 4))
    np_mode = {"replicate": "edge"}.get(mode, mode)
    same(ts.pad(x, (1, 2), mode=mode), np.pad(a, ((0, 0), (1, 2)), mode=np_mode))
    same(ts.pad(x, (2, 1, 1, 0), mode), np.pad(a, ((1, 0), (2, 1)), mode=np_mode))
    if mode == "constant":
        same(ts.pad(x, [1, 1], value=9.0), np.pad(a, ((0, 0), (1, 1)), constant_values=9.0))
    with pytest.raises(ValueError):
        ts.pad(x, (1, 2, 3))


def test_view_functions_match_the_methods(rng):
    a, x = pair(rng, (2, 3, 4))
    same(ts.reshape(x, (6, -1)), a.reshape(6, -1))
    same(ts.permute(x, (2, 0, 1)), a.transpose(2, 0, 1))
    for name in ("transpose", "swapaxes", "swapdims"):
        same(getattr(ts, name)(x, 0, 2), np.swapaxes(a, 0, 2))
    same(x.swapaxes(0, 1), np.swapaxes(a, 0, 1))
    same(ts.t(ts.tensor(a[0])), a[0].T)
    same(ts.squeeze(ts.unsqueeze(x, 1)), a)
    same(ts.unsqueeze(x, dim=-1), a[..., None])
    same(ts.squeeze(ts.zeros(1, 2, 1), 0), np.zeros((2, 1)))
    same(ts.flatten(x, 1), a.reshape(2, 12))
    same(ts.flatten(x, start_dim=0, end_dim=1), a.reshape(6, 4))
    same(ts.unflatten(x, 2, (2, 2)), a.reshape(2, 3, 2, 2))
    same(ts.narrow(x, 1, 1, 2), a[:, 1:3])
    same(ts.select(x, 2, 3), a[:, :, 3])
    same(ts.diagonal(x, 1, 1, 2), np.diagonal(a, 1, 1, 2))
    c = ts.clone(x)
    same(c, a)
    assert c.is_contiguous() and ts.numel(x) == 24
    assert ts.is_tensor(x) and not ts.is_tensor(a)
    with pytest.raises(ValueError):
        ts.reshape(x, (5, 5))
    with pytest.raises(IndexError):
        ts.transpose(x, 0, 3)


def test_broadcasting_helpers(rng):
    a, x = pair(rng, (3, 1))
    same(ts.broadcast_to(x, (2, 3, 4)), np.broadcast_to(a, (2, 3, 4)))
    same(x.broadcast_to((3, 5)), np.broadcast_to(a, (3, 5)))
    assert ts.broadcast_shapes((3, 1), (4,), (2, 1, 1)) == (2, 3, 4)
    assert ts.broadcast_shapes(5, (1,)) == (5,)
    p, q = ts.broadcast_tensors(x, ts.zeros(2, 1, 4))
    assert p.shape == q.shape == (2, 3, 4)
    same(p, np.broadcast_to(a, (2, 3, 4)))
    with pytest.raises(ValueError):
        ts.broadcast_shapes((2,), (3,))
    with pytest.raises(ValueError):
        ts.broadcast_to(x, (2,))


# ---- indexing -------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather_scatter_index_select(dim, rng):
    a, x = pair(rng, (4, 5))
    idx = rng.integers(0, a.shape[dim], size=(4, 5) if dim == 0 else (4, 3))
    index = ts.tensor(idx)
    same(ts.gather(x, dim, index), np.take_along_axis(a, idx, dim))
    same(x.gather(dim=dim, index=index), np.take_along_axis(a, idx, dim))
    # scatter with distinct targets along dim: each row/column gets a permutation prefix
    n = a.shape[dim]
    perm = np.stack([rng.permutation(n)[:3] for _ in range(a.shape[1 - dim % 2])], axis=1 - dim % 2)
    src = rng.uniform(size=perm.shape)
    ref = a.copy()
    np.put_along_axis(ref, perm, src, dim)
    same(ts.scatter(x, dim, ts.tensor(perm), ts.tensor(src)), ref)
    same(x.scatter(dim, ts.tensor(perm), src=ts.tensor(src)), ref)
    ref_v = a.copy()
    np.put_along_axis(ref_v, perm, 7.0, dim)
    same(ts.scatter(x, dim, ts.tensor(perm), value=7.0), ref_v)
    # scatter_add accumulates repeated indices
    ref_add = a.copy()
    upd = rng.uniform(size=idx.shape)
    for pos in np.ndindex(idx.shape):
        tgt = list(pos)
        tgt[dim] = idx[pos]
        ref_add[tuple(tgt)] += upd[pos]
    np.testing.assert_allclose(ts.scatter_add(x, dim, index, ts.tensor(upd)).numpy(), ref_add,
                               rtol=1e-12)
    sel = rng.integers(0, a.shape[dim], size=6)
    same(ts.index_select(x, dim, ts.tensor(sel)), np.take(a, sel, axis=dim))
    same(x.index_select(dim, ts.tensor(sel)), np.take(a, sel, axis=dim))


def test_inplace_scatter_and_index_put(rng):
    a = np.zeros((3, 4))
    t = ts.zeros(3, 4, dtype=ts.float64)
    idx = np.array([[0, 1, 2, 0]])
    assert t.scatter_(0, ts.tensor(idx), ts.ones(1, 4, dtype=ts.float64)) is t
    np.put_along_axis(a, idx, 1.0, 0)
    same(t, a)
    t.scatter_(1, ts.tensor([[3], [3], [3]]), value=5.0)
    a[:, 3] = 5.0
    same(t, a)
    assert t.scatter_add_(0, ts.tensor([[2, 2, 2, 2]]), ts.ones(1, 4, dtype=ts.float64)) is t
    a[2] += 1
    same(t, a)
    rows, cols = np.array([0, 2, 0]), np.array([1, 1, 1])
    vals = np.array([1.0, 2.0, 3.0])
    ref = a.copy()
    np.add.at(ref, (rows, cols), vals)
    got = ts.index_put(t, (ts.tensor(rows), ts.tensor(cols)), ts.tensor(vals), accumulate=True)
    same(got, ref)
    same(t, a)  # index_put copies
    assert t.index_put_([ts.tensor(rows), ts.tensor(cols)], ts.tensor(vals), True) is t
    same(t, ref)
    with pytest.raises(IndexError):
        ts.index_put(t, (ts.tensor([5]),), ts.tensor([1.0], dtype=ts.float64))


def test_masks_nonzero_take(rng):
    a, x = pair(rng, (4, 3))
    m = a > 0
    mask = ts.tensor(m)
    same(ts.masked_fill(x, mask, -1.0), np.where(m, -1.0, a))
    same(x.masked_fill(mask, ts.tensor(2.5)), np.where(m, 2.5, a))
    same(ts.masked_fill(x, ts.tensor(m[0]), 0.0), np.where(m[0], 0.0, a))  # broadcast mask
    same(ts.masked_select(x, mask), a[m])
    same(x.masked_select(ts.tensor(m[:, :1])), a[np.broadcast_to(m[:, :1], a.shape)])
    same(ts.nonzero(mask), np.argwhere(m))
    same(ts.argwhere(x > 1), np.argwhere(a > 1))
    for got, ref in zip(x.nonzero(as_tuple=True), np.nonzero(a)):
        same(got, ref)
    idx = np.array([[0, 11], [5, 3]])
    same(ts.take(x, ts.tensor(idx)), np.take(a, idx))
    same(x.take(ts.tensor([-1])), np.take(a, [-1]))
    with pytest.raises(TypeError):
        ts.masked_fill(x, ts.tensor(a), 0.0)  # mask must be bool
    with pytest.raises(ValueError):
        ts.masked_fill(x, mask, ts.ones(2))
    with pytest.raises(TypeError):
        ts.nonzero(x, True)  # as_tuple is keyword-only
    with pytest.raises(IndexError):
        ts.take(x, ts.tensor([12]))
    with pytest.raises(IndexError):
        ts.gather(x, 0, ts.tensor([[4, 0, 0]]))
    with pytest.raises(IndexError):
        ts.index_select(x, 2, ts.tensor([0]))


# ---- sorting --------------------------------------------------------------------------------

@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_argsort_topk(dim, descending, rng):
    a, x = pair(rng, (5, 6))
    a = np.round(a, 1)  # ties, to check stability
    x = ts.tensor(a.T.copy()).T
    order = np.argsort(-a if descending else a, axis=dim, kind="stable")
    r = ts.sort(x, dim, descending)
    assert type(r).__name__ == "sort" and isinstance(r, tuple)
    same(r.values, np.take_along_axis(a, order, dim))
    same(r.indices, order)
    values, indices = x.sort(dim=dim, descending=descending, stable=True)
    same(indices, order)
    same(ts.argsort(x, dim, descending=descending), order)
    same(x.argsort(dim=dim, descending=descending), order)
    k = 3
    top = ts.topk(x, k, dim, largest=descending)
    assert type(top).__name__ == "topk"
    same(top.values, np.take_along_axis(a, order, dim).take(range(k), axis=dim))
    same(x.topk(k, dim=dim, largest=descending, sorted=True)[0], top.values)
    with pytest.raises(IndexError):
        ts.topk(x, 7, 0)
    with pytest.raises(IndexError):
        ts.sort(x, 2)


def test_unique(rng):
    a = rng.integers(0, 5, size=(3, 4))
    x = ts.tensor(a)
    same(ts.unique(x), np.unique(a))
    vals, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    got = ts.unique(x, return_inverse=True, return_counts=True)
    assert isinstance(got, tuple) and len(got) == 3
    same(got[0], vals)
    same(got[1], inverse.reshape(a.shape))
    same(got[2], counts)
    v, c = x.unique(sorted=True, return_counts=True)
    same(c, counts)
    with pytest.raises(NotImplementedError):
        ts.unique(x, dim=0)


# ---- products -------------------------------------------------------------------------------

def test_matmul_family(rng):
    a, x = pair(rng, (2, 3, 4))
    b, y = pair(rng, (4, 5))
    tol = dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.matmul(x, y).numpy(), a @ b, **tol)
    np.testing.assert_allclose(x.matmul(y).numpy(), a @ b, **tol)
    np.testing.assert_allclose(ts.matmul(x, ts.tensor(b[:, 0])).numpy(), a @ b[:, 0], **tol)
    np.testing.assert_allclose(ts.mm(x[0], y).numpy(), a[0] @ b, **tol)
    np.testing.assert_allclose(x[1].mm(mat2=y).numpy(), a[1] @ b, **tol)
    c = rng.standard_normal((2, 4, 2))
    np.testing.assert_allclose(ts.bmm(x, ts.tensor(c)).numpy(), a @ c, **tol)
    np.testing.assert_allclose(ts.mv(y.t(), ts.tensor(a[0, 0])).numpy(), b.T @ a[0, 0], **tol)
    u, v = a[0, 0], b[:, 1]
    np.testing.assert_allclose(ts.dot(ts.tensor(u), ts.tensor(v)).numpy(), u @ v, **tol)
    np.testing.assert_allclose(ts.tensor(u).outer(ts.tensor(a[0, 1])).numpy(),
                               np.outer(u, a[0, 1]), **tol)
    with pytest.raises(ValueError, match="mm"):
        ts.mm(x, y)
    with pytest.raises(ValueError, match="bmm"):
        ts.bmm(y, y)
    with pytest.raises(ValueError):
        ts.matmul(y, y)
    with pytest.raises(ValueError):
        ts.dot(ts.tensor(u), ts.tensor(u[:2]))
    with pytest.raises(TypeError):
        ts.matmul(x, b)


@pytest.mark.parametrize("eq, shapes", [
    ("ij,jk->ik", [(3, 4), (4, 5)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
    ("ii->i", [(4, 4)]), ("ij,ij", [(3, 4), (3, 4)]), ("i,j->ij", [(3,), (2,)]),
    ("...ij->...ji", [(2, 3, 4)]), ("ij->", [(3, 4)]),
])
def test_einsum(eq, shapes, rng):
    arrays = [rng.standard_normal(s) for s in shapes]
    tensors = [ts.tensor(a) for a in arrays]
    ref = np.einsum(eq, *arrays)
    np.testing.assert_allclose(ts.einsum(eq, *tensors).numpy(), ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ts.einsum(eq, tensors).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_einsum_bad_inputs():
    with pytest.raises(ValueError):
        ts.einsum("ij,jk->ik", ts.ones(2, 3), ts.ones(2, 3))
    with pytest.raises(TypeError):
        ts.einsum("ij->i", [[1.0]])


# ---- the whole surface ----------------------------------------------------------------------

BOUND = """abs absolute add all amax amin any arange arccos arcsin arctan arctan2 argmax argmin
argsort argwhere asin acos atan atan2 bernoulli bitwise_and bitwise_not bitwise_or bitwise_xor bmm
broadcast_shapes broadcast_tensors broadcast_to can_cast cat ceil chunk clamp clip clone concat
cos cosh count_nonzero cumprod cumsum diag diagonal div divide dot einsum empty empty_like eq erf
exp exp2 expm1 eye fix flatten flip floor floor_divide full full_like gather ge gelu
get_rng_state greater greater_equal gt index_put index_select initial_seed is_tensor isfinite
isinf isnan le lerp less less_equal linspace log log1p log2 log_softmax logical_and logical_not
logical_or logical_xor logsumexp lt manual_seed masked_fill masked_select matmul max maximum mean
min minimum mm movedim moveaxis mul multiply mv narrow ne neg negative nonzero norm normal
not_equal numel ones ones_like outer pad permute pow prod rand rand_like randint randn randn_like
reciprocal relu remainder reshape result_type roll round rsqrt scalar_tensor scatter scatter_add
seed select set_rng_state sigmoid sign silu sin sinh softmax softplus sort split sqrt square
squeeze stack std sub subtract sum swapaxes swapdims t take tan tanh tile topk transpose tril triu
true_divide trunc unbind unflatten unique unsqueeze var where zeros zeros_like""".split()


@pytest.mark.parametrize("name", BOUND)
def test_every_op_is_documented(name):
    fn = getattr(ts, name)
    assert callable(fn) and fn.__doc__ and len(fn.__doc__.strip()) > 10


METHODS = """abs absolute add all amax amin any arccos arcsin arctan arctan2 argmax argmin argsort
argwhere asin acos atan atan2 bernoulli bernoulli_ bitwise_and bitwise_not bitwise_or bitwise_xor
bmm broadcast_to ceil chunk clamp clip cos cosh count_nonzero cumprod cumsum diag div divide dot
eq erf exp exp2 expm1 fix flip floor floor_divide gather ge greater greater_equal gt index_put
index_put_ index_select isfinite isinf isnan le lerp less less_equal log log1p log2 log_softmax
logical_and logical_not logical_or logical_xor logsumexp lt masked_fill masked_select matmul max
maximum mean min minimum mm movedim moveaxis mul multiply mv ne neg negative nonzero norm normal_
not_equal outer pow prod reciprocal relu remainder repeat roll round rsqrt scatter scatter_
scatter_add scatter_add_ sigmoid sign sin sinh softmax sort split sqrt square std sub subtract sum
swapaxes swapdims take tan tanh tile topk tril triu true_divide trunc unbind uniform_ unique var
where""".split()


@pytest.mark.parametrize("name", METHODS)
def test_every_method_is_bound_and_documented(name):
    assert getattr(ts.Tensor, name).__doc__


@requires_torch
def test_method_names_exist_in_pytorch():
    assert [n for n in METHODS if not hasattr(torch.Tensor, n)] == []
