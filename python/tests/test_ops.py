"""tessera ops, part 1: creation, random numbers and elementwise ops against NumPy (float64
references) on broadcast and non-contiguous inputs, keyword forms and bad input.
(Reductions: test_ops_reduce.py; shape, indexing, sorting, products: test_ops_index.py.)"""
import math

import numpy as np
import pytest

import tessera as ts
from conftest import requires_torch, torch

LAYOUTS = ["contiguous", "transposed", "strided"]


def pair(rng, shape, layout="contiguous", dtype=np.float64, low=-2.0, high=2.0):
    """A NumPy array and the equal tessera tensor, laid out as asked (2-d for the others)."""
    def draw(s):
        if np.issubdtype(dtype, np.integer):
            return rng.integers(int(low), int(high), size=s).astype(dtype)
        if dtype == np.bool_:
            return rng.uniform(size=s) < 0.5
        return rng.uniform(low, high, size=s).astype(dtype)
    if layout == "contiguous":
        a = draw(shape)
        return a, ts.tensor(a)
    if layout == "transposed":
        base = draw(shape[::-1])
        a, t = base.T, ts.tensor(base).T
    else:  # every other column
        base = draw((shape[0], 2 * shape[1]))
        a, t = base[:, ::2], ts.tensor(base)[:, ::2]
    assert not t.is_contiguous()
    return a, t


def close(t, ref, rtol=1e-5, atol=1e-6):
    assert isinstance(t, ts.Tensor)
    np.testing.assert_allclose(t.numpy(), ref, rtol=rtol, atol=atol)


# ---- creation -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["zeros", "ones", "empty"])
def test_sized_constructors_take_varargs_or_a_sequence(name):
    fn = getattr(ts, name)
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3) and t.dtype == ts.float32
    t = fn(4, dtype=ts.int64, requires_grad=False, device="cpu")
    assert t.dtype == ts.int64 and t.device == "cpu" and not t.requires_grad
    assert fn(2, requires_grad=True).requires_grad
    if name != "empty":
        assert fn(2, 2, dtype=ts.float64).tolist() == [[float(name == "ones")] * 2] * 2
    assert fn(()).shape == () and fn(0, 3).numel() == 0
    with pytest.raises(TypeError):
        fn("a")
    with pytest.raises(TypeError):
        fn(2, 3.5)
    with pytest.raises(ValueError):
        fn(-1, 2)


def test_full_and_like_constructors(rng):
    assert ts.full((2, 2), 7).dtype == ts.int64 and ts.full((2,), 7).tolist() == [7, 7]
    assert ts.full((2,), 1.5).dtype == ts.float32 and ts.full((1,), True).dtype == ts.bool
    assert ts.full([3], 2, dtype=ts.float64).tolist() == [2.0] * 3
    a, x = pair(rng, (3, 4), "transposed")
    for name, value in [("zeros_like", 0), ("ones_like", 1)]:
        t = getattr(ts, name)(x)
        assert t.shape == (3, 4) and t.dtype == ts.float64 and (t.numpy() == value).all()
    assert ts.empty_like(x, dtype=ts.int32).dtype == ts.int32
    close(ts.full_like(x, 2.5), np.full(a.shape, 2.5))
    assert ts.full_like(x, 3, dtype=ts.int64).tolist() == [[3] * 4] * 3
    assert ts.zeros_like(x, requires_grad=True).requires_grad
    assert ts.scalar_tensor(3).dtype == ts.float32 and ts.scalar_tensor(3).shape == ()
    assert ts.scalar_tensor(3, dtype=ts.int64).item() == 3


@pytest.mark.parametrize("args, kwargs", [
    ((5,), {}), ((2, 9), {}), ((1, 10, 3), {}), ((0.5, 3.0, 0.25), {}), ((10, 0, -3), {}),
    ((5,), {"dtype": ts.float64}), ((), {"end": 4}), ((), {"start": 1, "end": 4, "step": 2}),
])
def test_arange_matches_numpy(args, kwargs):
    t = ts.arange(*args, **kwargs)
    np_args = args or tuple(kwargs.get(k) for k in ("start", "end", "step") if k in kwargs)
    ref = np.arange(*np_args)
    np.testing.assert_allclose(t.numpy(), ref)
    floats = any(isinstance(v, float) for v in np_args)
    assert t.dtype == kwargs.get("dtype", ts.float32 if floats else ts.int64)


def test_linspace_eye():
    close(ts.linspace(-1, 2, 7), np.linspace(-1, 2, 7))
    assert ts.linspace(0, 1, steps=5, dtype=ts.float64).dtype == ts.float64
    close(ts.eye(3), np.eye(3))
    close(ts.eye(2, 4), np.eye(2, 4))
    assert ts.eye(3, m=1, dtype=ts.int64).tolist() == np.eye(3, 1, dtype=np.int64).tolist()
    with pytest.raises(ValueError):
        ts.linspace(0, 1, -2)


# ---- random ---------------------------------------------------------------------------------

def test_generators_reproduce_streams_and_restore_state():
    g = ts.Generator()
    assert g.manual_seed(42) is g and g.initial_seed() == 42
    a = ts.rand(5, generator=g)
    state = g.get_state()
    assert state.dtype == ts.uint8 and state.shape == (16,)
    b = ts.randn(2, 3, generator=g)
    g.set_state(state)
    close(ts.randn((2, 3), generator=g), b.numpy(), rtol=0, atol=0)
    close(ts.rand(5, generator=ts.Generator().manual_seed(42)), a.numpy(), rtol=0, atol=0)
    assert ts.manual_seed(7) is ts.default_generator and ts.initial_seed() == 7
    first = ts.rand(4)
    ts.manual_seed(7)
    close(ts.rand(4), first.numpy(), rtol=0, atol=0)
    saved = ts.get_rng_state()
    x = ts.randn(3)
    ts.set_rng_state(saved)
    close(ts.randn(3), x.numpy(), rtol=0, atol=0)
    assert ts.seed() == ts.initial_seed() and g.seed() == g.initial_seed()
    assert g.manual_seed(2**64 - 1).initial_seed() == 2**64 - 1
    assert g.manual_seed(-1).initial_seed() == 2**64 - 1  # wraps, like PyTorch
    with pytest.raises(ValueError, match="seed"):
        ts.manual_seed(2**64)
    with pytest.raises(TypeError):
        ts.manual_seed(1.5)
    with pytest.raises(ValueError, match="16"):
        g.set_state(ts.zeros(3, dtype=ts.uint8))


def test_random_distributions_have_the_right_range_and_moments():
    g = ts.Generator().manual_seed(1)
    u = ts.rand(20000, generator=g, dtype=ts.float64).numpy()
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    n = ts.randn(20000, generator=g).numpy()
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
    r = ts.randint(3, 9, (20000,), generator=g)
    assert r.dtype == ts.int64 and set(np.unique(r.numpy())) == set(range(3, 9))
    assert ts.randint(4, size=(2, 2)).numpy().max() < 4
    assert ts.randint(0, 5, (3,), dtype=ts.int32).dtype == ts.int32
    v = ts.normal(3.0, 0.5, (20000,), generator=g).numpy()
    assert abs(v.mean() - 3) < 0.02 and abs(v.std() - 0.5) < 0.02
    p = ts.tensor([0.0, 1.0, 0.0, 1.0])
    assert ts.bernoulli(p, generator=g).tolist() == [0.0, 1.0, 0.0, 1.0]
    assert abs(ts.bernoulli(ts.zeros(20000), 0.25, generator=g).numpy().mean() - 0.25) < 0.02
    assert p.bernoulli().shape == (4,)
    w = ts.empty(20000, dtype=ts.float64).uniform_(2.0, 5.0, generator=g).numpy()
    assert w.min() >= 2 and w.max() < 5 and abs(w.mean() - 3.5) < 0.03
    z = ts.zeros(20000)
    assert z.normal_(1.0, 2.0) is z and abs(z.numpy().std() - 2) < 0.05
    like = ts.rand_like(ts.zeros(3, 2, dtype=ts.float64))
    assert like.shape == (3, 2) and like.dtype == ts.float64
    assert ts.randn_like(ts.zeros(5), generator=g).shape == (5,)
    with pytest.raises(ValueError):
        ts.bernoulli(ts.zeros(2), 1.5)
    with pytest.raises(TypeError):
        ts.rand(2, generator="seed")


# ---- elementwise: unary ---------------------------------------------------------------------

def gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


erf = np.vectorize(math.erf)

UNARY = [  # name, reference, low, high
    ("abs", np.abs, -2, 2), ("absolute", np.abs, -2, 2), ("neg", np.negative, -2, 2),
    ("negative", np.negative, -2, 2), ("exp", np.exp, -2, 2), ("exp2", np.exp2, -2, 2),
    ("expm1", np.expm1, -1, 1), ("log", np.log, 0.1, 3), ("log2", np.log2, 0.1, 3),
    ("log1p", np.log1p, -0.5, 2), ("sqrt", np.sqrt, 0.1, 4),
    ("rsqrt", lambda x: 1 / np.sqrt(x), 0.1, 4), ("sin", np.sin, -3, 3), ("cos", np.cos, -3, 3),
    ("tan", np.tan, -1.2, 1.2), ("asin", np.arcsin, -0.9, 0.9), ("arcsin", np.arcsin, -0.9, 0.9),
    ("acos", np.arccos, -0.9, 0.9), ("arccos", np.arccos, -0.9, 0.9),
    ("atan", np.arctan, -3, 3), ("arctan", np.arctan, -3, 3), ("sinh", np.sinh, -2, 2),
    ("cosh", np.cosh, -2, 2), ("tanh", np.tanh, -2, 2),
    ("sigmoid", lambda x: 1 / (1 + np.exp(-x)), -4, 4), ("relu", lambda x: np.maximum(x, 0), -2, 2),
    ("silu", lambda x: x / (1 + np.exp(-x)), -4, 4), ("erf", erf, -2, 2),
    ("floor", np.floor, -3, 3), ("ceil", np.ceil, -3, 3), ("round", np.round, -3, 3),
    ("trunc", np.trunc, -3, 3), ("fix", np.trunc, -3, 3), ("sign", np.sign, -2, 2),
    ("reciprocal", lambda x: 1 / x, 0.2, 3), ("square", np.square, -2, 2),
]
NO_METHOD = {"silu"}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, ref, low, high", UNARY, ids=[u[0] for u in UNARY])
def test_unary_ops_match_numpy(name, ref, low, high, dtype, layout, rng):
    a, t = pair(rng, (3, 4), layout, dtype, low, high)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    out = getattr(ts, name)(t)
    assert out.dtype == t.dtype and out.shape == a.shape
    close(out, ref(a.astype(np.float64)), **tol)
    close(getattr(ts, name)(input=t), ref(a.astype(np.float64)), **tol)
    if name not in NO_METHOD:
        close(getattr(t, name)(), ref(a.astype(np.float64)), **tol)


@pytest.mark.parametrize("name, ref", [
    ("abs", np.abs), ("neg", np.negative), ("sign", np.sign), ("square", np.square),
    ("bitwise_not", np.invert), ("relu", lambda x: np.maximum(x, 0)),
])
def test_unary_ops_on_integers_keep_the_dtype(name, ref, rng):
    a, t = pair(rng, (4, 5), "transposed", np.int64, -9, 9)
    out = getattr(ts, name)(t)
    assert out.dtype == ts.int64 and out.tolist() == ref(a).tolist()


def test_float_only_unary_ops_on_integers_give_float32():
    out = ts.sqrt(ts.tensor([4, 9]))
    assert out.dtype == ts.float32 and out.tolist() == [2.0, 3.0]


def test_predicates_and_logical_not():
    a = np.array([1.0, np.nan, np.inf, -np.inf, 0.0])
    t = ts.tensor(a)
    for name in ("isnan", "isinf", "isfinite"):
        out = getattr(ts, name)(t)
        assert out.dtype == ts.bool and out.tolist() == getattr(np, name)(a).tolist()
        assert getattr(t, name)().tolist() == getattr(np, name)(a).tolist()
    assert ts.logical_not(t).tolist() == np.logical_not(a).tolist()
    assert ts.bitwise_not(ts.tensor([True, False])).tolist() == [False, True]


def test_round_halves_to_even():
    assert ts.round(ts.tensor([0.5, 1.5, 2.5, -0.5, -1.5])).tolist() == [0, 2, 2, -0.0, -2]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_gelu_and_softplus_keywords(layout, rng):
    a, t = pair(rng, (3, 4), layout, np.float64, -4, 4)
    close(ts.gelu(t), 0.5 * a * (1 + erf(a / math.sqrt(2))), rtol=1e-12)
    close(ts.gelu(t, approximate="tanh"), gelu_tanh(a), rtol=1e-12)
    close(ts.softplus(t), np.log1p(np.exp(a)), rtol=1e-12)
    beta, thr = 2.0, 3.0
    ref = np.where(beta * a > thr, a, np.log1p(np.exp(beta * a)) / beta)
    close(ts.softplus(t, beta=beta, threshold=thr), ref, rtol=1e-12)
    with pytest.raises(TypeError):
        ts.gelu(t, "tanh")  # approximate is keyword-only, like PyTorch
    with pytest.raises(ValueError):
        ts.gelu(t, approximate="cubic")


def test_unary_bad_input_types():
    with pytest.raises(TypeError):
        ts.exp([1.0, 2.0])
    with pytest.raises(TypeError):
        ts.sin("x")
    with pytest.raises(TypeError):
        ts.bitwise_not(ts.tensor([1.5]))


# ---- elementwise: binary --------------------------------------------------------------------

BINARY = [  # name, reference, low, high, integer inputs allowed, number as input allowed
    ("add", np.add, -2, 2, True, True), ("sub", np.subtract, -2, 2, True, True),
    ("subtract", np.subtract, -2, 2, True, True), ("mul", np.multiply, -2, 2, True, True),
    ("multiply", np.multiply, -2, 2, True, True), ("div", np.divide, 0.5, 2, False, True),
    ("divide", np.divide, 0.5, 2, False, True), ("true_divide", np.divide, 0.5, 2, False, True),
    ("floor_divide", np.floor_divide, 0.5, 3, True, True),
    ("remainder", np.mod, -3, 3, True, True), ("pow", np.power, 0.5, 2, False, True),
    ("maximum", np.maximum, -2, 2, True, False), ("minimum", np.minimum, -2, 2, True, False),
    ("atan2", np.arctan2, -2, 2, False, False), ("arctan2", np.arctan2, -2, 2, False, False),
    ("eq", np.equal, -2, 2, True, False), ("ne", np.not_equal, -2, 2, True, False),
    ("not_equal", np.not_equal, -2, 2, True, False), ("lt", np.less, -2, 2, True, False),
    ("less", np.less, -2, 2, True, False), ("le", np.less_equal, -2, 2, True, False),
    ("less_equal", np.less_equal, -2, 2, True, False), ("gt", np.greater, -2, 2, True, False),
    ("greater", np.greater, -2, 2, True, False), ("ge", np.greater_equal, -2, 2, True, False),
    ("greater_equal", np.greater_equal, -2, 2, True, False),
    ("logical_and", np.logical_and, -1, 2, True, False),
    ("logical_or", np.logical_or, -1, 2, True, False),
    ("logical_xor", np.logical_xor, -1, 2, True, False),
]


def other_kw(name):
    return "exponent" if name == "pow" else "other"


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("name, ref, low, high, ints, number_first", BINARY,
                         ids=[b[0] for b in BINARY])
def test_binary_ops_broadcast_like_numpy(name, ref, low, high, ints, number_first, layout, rng):
    a, x = pair(rng, (4, 3), layout, np.float64, low, high)
    b, y = pair(rng, (3,), "contiguous", np.float64, low, high)
    if name in ("floor_divide", "remainder"):  # keep away from the divisor's zero
        b, y = np.abs(b) + 0.5, ts.tensor(np.abs(b) + 0.5)
    fn = getattr(ts, name)
    close(fn(x, y), ref(a, b), rtol=1e-12, atol=1e-12)
    close(fn(input=x, **{other_kw(name): y}), ref(a, b), rtol=1e-12, atol=1e-12)
    close(getattr(x, name)(y), ref(a, b), rtol=1e-12, atol=1e-12)
    close(fn(x, 1.25), ref(a, 1.25), rtol=1e-12, atol=1e-12)  # a number as other
    assert fn(x, 1.25).dtype in (ts.float64, ts.bool)  # the number does not raise the dtype
    close(getattr(x, name)(1.25), ref(a, 1.25), rtol=1e-12, atol=1e-12)
    if number_first:
        close(fn(1.25, x), ref(1.25, a), rtol=1e-12, atol=1e-12)
    if ints:
        ai, xi = pair(rng, (4, 3), layout, np.int64, -5, 6)
        bi = np.array([2, 3, 5]) if name in ("floor_divide", "remainder") else b.round()
        out = fn(xi, ts.tensor(bi.astype(np.int64)))
        assert out.dtype in (ts.int64, ts.bool)
        assert out.tolist() == ref(ai, bi.astype(np.int64)).tolist()


@pytest.mark.parametrize("name, ref", [
    ("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
    ("bitwise_xor", np.bitwise_xor),
])
def test_bitwise_ops_on_integers_and_bools(name, ref, rng):
    a, x = pair(rng, (3, 4), "strided", np.int64, -20, 20)
    b = rng.integers(-20, 20, size=(4,))
    fn = getattr(ts, name)
    assert fn(x, ts.tensor(b)).tolist() == ref(a, b).tolist()
    assert fn(x, 6).tolist() == ref(a, 6).tolist() and fn(6, x).tolist() == ref(6, a).tolist()
    assert getattr(x, name)(6).tolist() == ref(a, 6).tolist()
    p, q = np.array([True, False, True]), np.array([True, True, False])
    assert fn(ts.tensor(p), ts.tensor(q)).tolist() == ref(p, q).tolist()
    with pytest.raises(TypeError):
        fn(ts.tensor([1.5]), ts.tensor([1.0]))


def test_promotion_follows_pytorch():
    i, f32, f64 = ts.tensor([1, 2]), ts.tensor([1.0]), ts.tensor([1.0], dtype=ts.float64)
    assert ts.add(i, 2).dtype == ts.int64 and ts.add(i, 2.5).dtype == ts.float32
    assert ts.mul(f32, f64).dtype == ts.float64 and ts.maximum(i, 0.5).dtype == ts.float32
    assert ts.maximum(f64, 0.1).item() == 1.0 and ts.add(f64, 0.1).item() == 1.1  # no rounding
    assert ts.div(i, i).dtype == ts.float32
    assert ts.pow(2, i).tolist() == [2, 4] and ts.pow(2.0, i).dtype == ts.float32


def test_add_sub_alpha():
    x, y = ts.tensor([1.0, 2.0], dtype=ts.float64), ts.tensor([10.0, 20.0], dtype=ts.float64)
    assert ts.add(x, y, alpha=0.5).tolist() == [6.0, 12.0]
    assert ts.sub(x, y, alpha=2).tolist() == [-19.0, -38.0]
    assert x.add(y, alpha=-1).tolist() == [-9.0, -18.0] and x.sub(3, alpha=2).tolist() == [-5, -4]
    assert ts.add(1, x, alpha=2).tolist() == [3.0, 5.0]
    assert ts.add(ts.tensor([1, 2]), ts.tensor([3, 4]), alpha=3).tolist() == [10, 14]
    with pytest.raises(TypeError):
        ts.add(ts.tensor([1, 2]), ts.tensor([3, 4]), alpha=0.5)  # float alpha, int inputs
    with pytest.raises(TypeError):
        ts.add(x, y, 2)  # alpha is keyword-only


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
def test_div_rounding_modes(dtype):
    a = np.array([-7, 7, -6, 6, 5, -5, 0]).astype(dtype)
    b = np.array([2, -2, 4, 4, -3, -3, 3]).astype(dtype)
    x, y = ts.tensor(a), ts.tensor(b)
    close(ts.div(x, y), a / b, rtol=1e-7)
    trunc, floor = ts.div(x, y, rounding_mode="trunc"), x.div(y, rounding_mode="floor")
    assert trunc.tolist() == np.trunc(a / b).tolist()
    assert floor.tolist() == np.floor_divide(a, b).tolist()
    assert trunc.dtype == floor.dtype == x.dtype
    assert ts.div(x, 4, rounding_mode="trunc").tolist() == np.trunc(a / 4).tolist()
    assert ts.div(9, y, rounding_mode="floor").tolist() == np.floor_divide(9, b).tolist()
    with pytest.raises(ValueError, match="rounding_mode"):
        ts.div(x, y, rounding_mode="nearest")


def test_binary_bad_inputs():
    x = ts.tensor([1.0, 2.0, 3.0])
    with pytest.raises(TypeError):
        ts.add(x, "1")
    with pytest.raises(TypeError):
        ts.maximum(1.0, x)  # PyTorch takes no number as input here
    with pytest.raises(ValueError):
        ts.mul(x, ts.ones(2))
    with pytest.raises(ts.ShapeError):
        ts.atan2(x, ts.ones(4))
    with pytest.raises(ValueError):
        ts.pow(ts.tensor([2]), -1)


# ---- clamp, lerp, where, types --------------------------------------------------------------

@pytest.mark.parametrize("name", ["clamp", "clip"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_clamp_with_numbers_tensors_and_none(name, layout, rng):
    a, x = pair(rng, (4, 3), layout)
    lo, hi = rng.uniform(-1, 0, size=(3,)), rng.uniform(0, 1, size=(4, 1))
    fn = getattr(ts, name)
    close(fn(x, -0.5, 0.5), np.clip(a, -0.5, 0.5), rtol=1e-12)
    close(fn(x, min=-0.5), np.maximum(a, -0.5), rtol=1e-12)
    close(getattr(x, name)(max=0.25), np.minimum(a, 0.25), rtol=1e-12)
    close(fn(x, ts.tensor(lo), ts.tensor(hi)), np.minimum(np.maximum(a, lo), hi), rtol=1e-12)
    close(fn(x, min=ts.tensor(lo)), np.maximum(a, lo), rtol=1e-12)
    close(fn(x, max=ts.tensor(hi)), np.minimum(a, hi), rtol=1e-12)
    close(fn(x, ts.tensor(lo), 0.5), np.minimum(np.maximum(a, lo), 0.5), rtol=1e-12)
    close(fn(x, -0.5, ts.tensor(hi)), np.minimum(np.maximum(a, -0.5), hi), rtol=1e-12)
    assert fn(ts.tensor([1, 5, 9]), 2, 6).tolist() == [2, 5, 6]
    with pytest.raises(ValueError):
        fn(x)
    with pytest.raises(TypeError):
        fn(x, "0")


def test_lerp(rng):
    a, x = pair(rng, (3, 4), "transposed")
    b, y = pair(rng, (4,))
    w = rng.uniform(size=(3, 1))
    close(ts.lerp(x, y, 0.3), a + 0.3 * (b - a), rtol=1e-12)
    close(x.lerp(y, ts.tensor(w)), a + w * (b - a), rtol=1e-12)
    close(ts.lerp(x, end=y, weight=0.5), (a + b) / 2, rtol=1e-12)
    with pytest.raises(TypeError):
        ts.lerp(x, ts.tensor([1.0, 2.0, 3.0, 4.0]), 0.5)  # end must have input's dtype


def test_where_with_tensors_and_numbers(rng):
    a, x = pair(rng, (4, 3), "strided")
    b, y = pair(rng, (3,))
    c = a > 0
    cond = ts.tensor(c)
    close(ts.where(cond, x, y), np.where(c, a, b), rtol=1e-12)
    close(ts.where(cond, x, 0.5), np.where(c, a, 0.5), rtol=1e-12)
    close(ts.where(cond, -1.0, y), np.where(c, -1.0, b), rtol=1e-12)
    assert ts.where(cond, 1, 0).tolist() == np.where(c, 1, 0).tolist()
    assert ts.where(cond, 1, 0).dtype == ts.int64
    close(x.where(cond, y), np.where(c, a, b), rtol=1e-12)
    close(x.where(cond, 0.0), np.where(c, a, 0.0), rtol=1e-12)
    close(ts.where(condition=cond, input=x, other=y), np.where(c, a, b), rtol=1e-12)
    for got, ref in zip(ts.where(cond), np.nonzero(c)):
        assert got.tolist() == ref.tolist()
    with pytest.raises(TypeError):
        ts.where(x, x, y)  # condition must be bool
    with pytest.raises(ValueError):
        ts.where(cond, x, ts.ones(2))


def test_result_type_and_can_cast():
    i, f = ts.tensor([1]), ts.tensor([1.0])
    assert ts.result_type(i, f) == ts.float32 and ts.result_type(i, 2) == ts.int64
    assert ts.result_type(i, 2.5) == ts.float32 and ts.result_type(2.5, i) == ts.float32
    assert ts.result_type(ts.tensor(1.0, dtype=ts.float64), ts.tensor([1], dtype=ts.int32)) \
        == ts.float64
    assert ts.result_type(1, 2.0) == ts.float32 and ts.result_type(True, 2) == ts.int64
    assert ts.can_cast(ts.int32, ts.float32) and not ts.can_cast(ts.float32, ts.int64)
    assert not ts.can_cast(ts.int64, ts.bool) and ts.can_cast(ts.bool, ts.int8)


@requires_torch
@pytest.mark.parametrize("expr", [
    lambda M, x, y: M.div(x, y, rounding_mode="trunc"),
    lambda M, x, y: M.div(x, y, rounding_mode="floor"),
    lambda M, x, y: M.remainder(x, y),
    lambda M, x, y: M.floor_divide(-3, y),
    lambda M, x, y: M.sub(x, y, alpha=3),
    lambda M, x, y: M.clamp(x, min=y),
    lambda M, x, y: M.where(x > 0, x, 2.5),
    lambda M, x, y: M.pow(x, 2),
    lambda M, x, y: M.bitwise_xor(x, y),
], ids=["div_trunc", "div_floor", "remainder", "floor_divide_number", "sub_alpha",
        "clamp_tensor", "where_number", "pow", "bitwise_xor"])
def test_integer_semantics_match_pytorch(expr):
    a, b = np.array([-7, 7, -6, 5, 0]), np.array([2, -2, 4, -3, 3])
    got = expr(ts, ts.tensor(a), ts.tensor(b))
    ref = expr(torch, torch.tensor(a), torch.tensor(b))
    assert got.tolist() == ref.tolist() and str(got.dtype).split(".")[1] == \
        str(ref.dtype).split(".")[1]


def test_composed_bindings_are_differentiable(rng):
    """The ops the binding composes (diag, take, number operands, tensor clamp bounds, alpha)
    keep the graph: gradients match the closed forms."""
    a = rng.uniform(-1, 1, size=4)
    b = rng.uniform(-1, 1, size=(4, 4))
    x = ts.tensor(a, requires_grad=True)
    y = ts.tensor(a[::-1].copy(), requires_grad=True)
    lo = ts.tensor(np.full(4, 0.1))
    total = (ts.sum(ts.diag(x, 1)[:4, 1:] * ts.tensor(b)) + ts.where(x > 0, x, 0.5).sum()
             + ts.clamp(x, min=lo).sum() + ts.take(x, ts.tensor([0, 0, 3])).sum()
             + ts.sub(x, y, alpha=2).sum())
    total.backward()
    ref = np.diag(b) + (a > 0) + (a > 0.1) + np.array([2, 0, 0, 1]) + 1
    np.testing.assert_allclose(x.grad.numpy(), ref, rtol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), np.full(4, -2.0))
