"""tessera.func: grad, value_and_grad, vjp, jvp, vmap, jacrev, jacfwd, hessian over pytrees,
their compositions, checked against central differences, loops and torch.func."""
import collections

import numpy as np
import pytest

import tessera as ts
from tessera import func as F
from conftest import numerical_grad, requires_torch, torch

# Scalar functions of one tensor, written with methods tessera and PyTorch share.
FUNCS = {
    "sin_mul": lambda x: (x.sin() * x).sum(),
    "exp_tanh": lambda x: x.tanh().exp().sum(),
    "cubic_form": lambda x: ((x @ x) * x).sum(),
    "log1p_exp_mean": lambda x: (1 + x.exp()).log().mean(),
}


def t64(a):
    return ts.tensor(np.asarray(a, dtype=np.float64))


def numerical_jacobian(f, x, eps=1e-6):
    """Central-difference Jacobian of f (tensor -> tensor), shape out.shape + x.shape."""
    cols = []
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        cols.append((f(t64(xp)).numpy() - f(t64(xm)).numpy()) / (2 * eps))
    out_shape = cols[0].shape
    return np.stack(cols, axis=-1).reshape(out_shape + x.shape)


# ---- grad --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
def test_grad_matches_central_differences(name, rng):
    f = FUNCS[name]
    x = rng.uniform(-1, 1, size=(4, 4))
    g = F.grad(f)(t64(x))
    assert not g.requires_grad
    np.testing.assert_allclose(g.numpy(), numerical_grad(f, x), rtol=1e-6, atol=1e-8)


@requires_torch
@pytest.mark.parametrize("name", FUNCS)
def test_grad_vmap_jvp_jacrev_hessian_match_torch_func(name, rng):
    f = FUNCS[name]
    x, v = rng.uniform(-1, 1, size=(3, 3)), rng.standard_normal((3, 3))
    xb = rng.uniform(-1, 1, size=(5, 3, 3))
    X, V, XB = t64(x), t64(v), t64(xb)
    tx, tv, txb = torch.tensor(x), torch.tensor(v), torch.tensor(xb)

    def close(a, b):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)

    close(F.grad(f)(X), torch.func.grad(f)(tx))
    close(F.vmap(F.grad(f))(XB), torch.func.vmap(torch.func.grad(f))(txb))
    val, tan = F.jvp(f, (X,), (V,))
    tval, ttan = torch.func.jvp(f, (tx,), (tv,))
    close(val, tval)
    close(tan, ttan)
    close(F.jacrev(F.grad(f))(X), torch.func.jacrev(torch.func.grad(f))(tx))
    close(F.hessian(f)(X), torch.func.hessian(f)(tx))


def test_grad_argnums_has_aux_and_value_and_grad(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)

    def f(x, y, scale=1.0):
        out = ((x * y).sin()).sum() * scale
        return out, {"prod": x * y, "tag": "kept"}

    ga, aux = F.grad(f, argnums=0, has_aux=True)(t64(a), t64(b), scale=2.0)
    np.testing.assert_allclose(ga.numpy(), 2 * np.cos(a * b) * b)
    assert aux["tag"] == "kept" and not aux["prod"].requires_grad
    np.testing.assert_allclose(aux["prod"].numpy(), a * b)
    (value, aux), (ga, gb) = F.value_and_grad(f, argnums=(0, 1), has_aux=True)(t64(a), t64(b))
    np.testing.assert_allclose(value.item(), np.sin(a * b).sum())
    np.testing.assert_allclose(gb.numpy(), np.cos(a * b) * a)
    g_last = F.grad(lambda x, y: (x * y).sum(), argnums=-1)(t64(a), t64(b))
    np.testing.assert_allclose(g_last.numpy(), a)


Params = collections.namedtuple("Params", ["w", "b"])


def linear_loss(params, x, y):
    r = x @ params["w"] + params["b"] - y
    return (r * r).mean()


def linear_loss_grads(w, b, x, y):
    """Closed form: d/dW mean(r^2) = 2 x^T r / r.size, d/db = 2 sum_rows(r) / r.size."""
    r = x @ w + b - y
    return 2 * x.T @ r / r.size, 2 * r.sum(axis=0) / r.size


def test_grad_over_a_dict_of_params(rng):
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    params = {"w": t64(w), "b": t64(b)}
    g = F.grad(linear_loss)(params, t64(x), t64(y))
    assert isinstance(g, dict) and list(g) == ["w", "b"]
    gw, gb = linear_loss_grads(w, b, x, y)
    np.testing.assert_allclose(g["w"].numpy(), gw, rtol=1e-12)
    np.testing.assert_allclose(g["b"].numpy(), gb, rtol=1e-12)


def test_grad_over_nested_tuples_lists_and_namedtuples(rng):
    a, b, c = rng.standard_normal(2), rng.standard_normal(2), rng.standard_normal(2)

    def f(tree, n):  # n: a non-tensor argument, passed through
        (p, [q, nt]) = tree
        return ((p * q).sum() + (nt.w * nt.b).sum()) * n

    tree = (t64(a), [t64(b), Params(w=t64(c), b=t64(a))])
    g = F.grad(f)(tree, 3)
    assert isinstance(g, tuple) and isinstance(g[1], list) and isinstance(g[1][1], Params)
    np.testing.assert_allclose(g[0].numpy(), 3 * b)
    np.testing.assert_allclose(g[1][0].numpy(), 3 * a)
    np.testing.assert_allclose(g[1][1].w.numpy(), 3 * a)
    np.testing.assert_allclose(g[1][1].b.numpy(), 3 * c)


# ---- vjp / jvp ---------------------------------------------------------------------------------

def test_vjp_over_pytrees(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    ca, cb = rng.standard_normal(3), rng.standard_normal(3)

    def f(x, y):
        return {"prod": x * y, "sin": x.sin()}

    out, vjp_fn = F.vjp(f, t64(a), t64(b))
    assert set(out) == {"prod", "sin"} and not out["prod"].requires_grad
    np.testing.assert_allclose(out["prod"].numpy(), a * b)
    ga, gb = vjp_fn({"prod": t64(ca), "sin": t64(cb)})
    np.testing.assert_allclose(ga.numpy(), ca * b + cb * np.cos(a))
    np.testing.assert_allclose(gb.numpy(), ca * a)
    ga2, _ = vjp_fn({"prod": t64(ca), "sin": None})  # callable again; None is a zero cotangent
    np.testing.assert_allclose(ga2.numpy(), ca * b)
    with pytest.raises(ValueError, match="structure"):
        vjp_fn((t64(ca), t64(cb)))


def test_jvp_over_pytrees_matches_directional_differences(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    ta, tb = rng.standard_normal(3), rng.standard_normal(3)

    def f(pair):
        x, y = pair
        return [x * y, (x * x).sum()]

    (vals, tans) = F.jvp(f, ((t64(a), t64(b)),), ((t64(ta), t64(tb)),))
    np.testing.assert_allclose(vals[0].numpy(), a * b)
    np.testing.assert_allclose(tans[0].numpy(), ta * b + a * tb)
    np.testing.assert_allclose(tans[1].item(), 2 * (a * ta).sum())
    with pytest.raises(ValueError, match="structure"):
        F.jvp(f, ((t64(a), t64(b)),), (t64(ta),))


# ---- vmap --------------------------------------------------------------------------------------

def test_per_example_gradients_match_a_loop(rng):
    w, b = rng.standard_normal((3, 2)), rng.standard_normal(2)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    params = {"w": t64(w), "b": t64(b)}
    per_example = F.vmap(F.grad(linear_loss), in_axes=(None, 0, 0))(params, t64(x), t64(y))
    assert per_example["w"].shape == (6, 3, 2) and per_example["b"].shape == (6, 2)
    for i in range(6):
        gw, gb = linear_loss_grads(w, b, x[i:i + 1], y[i:i + 1])
        np.testing.assert_allclose(per_example["w"].numpy()[i], gw, rtol=1e-12)
        np.testing.assert_allclose(per_example["b"].numpy()[i], gb, rtol=1e-12)


def test_vmap_nested_in_axes_out_axes_and_shared_inputs(rng):
    a, b, c = rng.standard_normal((4, 3)), rng.standard_normal((3, 4)), rng.standard_normal(3)

    def f(pair, bias, label):
        x, y = pair
        assert label == "ok"  # a non-tensor leaf passes through
        return {"s": x + y + bias, "p": (x * y).sum()}

    out = F.vmap(f, in_axes=((0, 1), None, None), out_axes={"s": 1, "p": 0})(
        (t64(a), t64(b)), t64(c), "ok")
    np.testing.assert_allclose(out["s"].numpy(), (a + b.T + c).T)
    np.testing.assert_allclose(out["p"].numpy(), (a * b.T).sum(axis=1))
    neg = F.vmap(lambda x: x * 2, in_axes=-1, out_axes=-1)(t64(b))
    np.testing.assert_allclose(neg.numpy(), 2 * b)


def test_vmap_of_vmap_and_vmap_of_jacrev(rng):
    x = rng.standard_normal((2, 3, 4))
    out = F.vmap(F.vmap(lambda v: (v * v).sum()))(t64(x))
    np.testing.assert_allclose(out.numpy(), (x * x).sum(axis=2))
    jac = F.vmap(F.jacrev(lambda v: v.sin() * v[0]))(t64(x[0]))
    for i in range(3):
        expect = numerical_jacobian(lambda v: v.sin() * v[0], x[0, i])
        np.testing.assert_allclose(jac.numpy()[i], expect, rtol=1e-6, atol=1e-9)


# ---- Jacobians and composition -----------------------------------------------------------------

def test_jacrev_and_jacfwd_match_finite_differences(rng):
    x = rng.uniform(-1, 1, size=(2, 3))
    f = lambda v: (v.sin() * v.sum()).T  # noqa: E731  (shape (3, 2))
    expect = numerical_jacobian(f, x)
    np.testing.assert_allclose(F.jacrev(f)(t64(x)).numpy(), expect, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(F.jacfwd(f)(t64(x)).numpy(), expect, rtol=1e-6, atol=1e-9)


def test_jacobians_over_several_arguments_and_outputs(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(2)

    def f(x, y):
        return {"outer": x.unsqueeze(1) * y, "sum": (x * x).sum() + y.sum()}

    for jac in (F.jacrev, F.jacfwd):
        j = jac(f, argnums=(0, 1))(t64(a), t64(b))
        d_outer_dx, d_outer_dy = j["outer"]
        assert d_outer_dx.shape == (3, 2, 3) and d_outer_dy.shape == (3, 2, 2)
        np.testing.assert_allclose(d_outer_dx.numpy(), np.einsum("ik,j->ijk", np.eye(3), b))
        np.testing.assert_allclose(d_outer_dy.numpy(), np.einsum("i,jk->ijk", a, np.eye(2)))
        np.testing.assert_allclose(j["sum"][0].numpy(), 2 * a)
        np.testing.assert_allclose(j["sum"][1].numpy(), np.ones(2))


def test_compositions_give_second_derivatives(rng):
    x = rng.uniform(-1, 1, size=4)
    f = lambda v: (v.sin() * v).sum()  # noqa: E731
    d2 = F.grad(F.grad(lambda s: (s.sin() * s)))(t64(0.7))  # scalar second derivative
    np.testing.assert_allclose(d2.item(), 2 * np.cos(0.7) - 0.7 * np.sin(0.7), rtol=1e-12)
    h_expect = np.diag(2 * np.cos(x) - x * np.sin(x))
    for h in (F.hessian(f), F.jacfwd(F.jacrev(f)), F.jacrev(F.jacrev(f)), F.jacrev(F.grad(f))):
        np.testing.assert_allclose(h(t64(x)).numpy(), h_expect, rtol=1e-10, atol=1e-12)
    # d/dx [x * d/dy (x + y)] = 1: the inner and outer inputs are kept apart.
    inner = lambda x0: F.grad(lambda y: (x0 + y).sum())(t64([0.3]))  # noqa: E731
    np.testing.assert_allclose(F.grad(lambda x0: (x0 * inner(x0)).sum())(t64([2.0])).numpy(), [1])


def test_forward_mode_inside_reverse_mode():
    # d/dx [x * (tangent of x + y along 1)] = 1 (the jvp closes over the outer input)
    def outer(x):
        _, tan = F.jvp(lambda y: x + y, (t64([1.0]),), (t64([1.0]),))
        return (x * tan).sum()

    np.testing.assert_allclose(F.grad(outer)(t64([2.0])).numpy(), [1.0])
    # forward over reverse: the tangent of grad(sum x^3) along v is 6 x v
    x, v = t64([1.0, -2.0]), t64([0.5, 3.0])
    _, tan = F.jvp(F.grad(lambda u: (u ** 3).sum()), (x,), (v,))
    np.testing.assert_allclose(tan.numpy(), [3.0, -36.0])


def test_reverse_over_forward_with_respect_to_the_primal():
    ones = t64([1.0, 1.0, 1.0])
    g = F.grad(lambda x: F.jvp(lambda u: (u ** 3).sum(), (x,), (ones,))[1])(t64([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(g.numpy(), [6.0, 12.0, 18.0])


def test_hessian_of_a_dict_function(rng):
    a, b = rng.standard_normal(2), rng.standard_normal(2)

    def f(p):
        return (p["x"] * p["x"] * p["y"]).sum()

    h = F.hessian(f)({"x": t64(a), "y": t64(b)})
    np.testing.assert_allclose(h["x"]["x"].numpy(), np.diag(2 * b))
    np.testing.assert_allclose(h["x"]["y"].numpy(), np.diag(2 * a))
    np.testing.assert_allclose(h["y"]["y"].numpy(), np.zeros((2, 2)))


# ---- pytrees and bad input ---------------------------------------------------------------------

def test_tree_flatten_round_trip():
    tree = {"a": (1, [2, None]), "b": Params(w=3, b={"c": 4})}
    leaves, treedef = F.tree_flatten(tree)
    assert leaves == [1, 2, None, 3, 4] and treedef.num_leaves == 5
    assert F.tree_unflatten(treedef, leaves) == tree
    assert F.tree_map(lambda v: v, tree) == tree
    assert F.tree_flatten({"b": 1, "a": 2})[1] != F.tree_flatten({"a": 1, "b": 2})[1]
    with pytest.raises(ValueError, match="leaves"):
        F.tree_unflatten(treedef, [1, 2])


def test_vmap_bad_in_axes_are_value_errors(rng):
    x = t64(rng.standard_normal((3, 2)))
    with pytest.raises(ValueError, match="in_axes has 2 entries for 1 positional"):
        F.vmap(lambda v: v, in_axes=(0, 0))(x)
    with pytest.raises(ValueError, match="does not match the structure"):
        F.vmap(lambda p: p[0], in_axes=((0, 0, 0),))((x, x))
    with pytest.raises(ValueError, match="only tensors can be mapped"):
        F.vmap(lambda v, n: v * n, in_axes=(0, 0))(x, 2)
    with pytest.raises(ValueError, match="different sizes"):
        F.vmap(lambda u, v: u + v)(x, t64(np.ones((4, 2))))
    with pytest.raises(ValueError, match="no input is mapped"):
        F.vmap(lambda v: v, in_axes=None)(x)
    with pytest.raises(TypeError, match="outputs must be tensors"):
        F.vmap(lambda v: 1.0)(x)


def test_transforms_reject_non_tensor_leaves_and_bad_outputs(rng):
    x = t64(rng.standard_normal(3))
    with pytest.raises(TypeError, match="argument 0 has a leaf of type int"):
        F.grad(lambda p: (p["w"] * p["n"]).sum())({"w": x, "n": 3})
    with pytest.raises(TypeError, match="primals must be tensors"):
        F.vjp(lambda v, n: v * n, x, 2.0)
    with pytest.raises(TypeError, match="must return a scalar Tensor, got float"):
        F.grad(lambda v: 1.0)(x)
    with pytest.raises(ValueError, match="must return a scalar"):
        F.grad(lambda v: v * 2)(x)
    with pytest.raises(TypeError, match=r"pair \(output, aux\)"):
        F.grad(lambda v: v.sum(), has_aux=True)(x)
    with pytest.raises(ValueError, match="argnums 2 is out of range"):
        F.grad(lambda v: v.sum(), argnums=2)(x)
    with pytest.raises(TypeError, match="floating point"):
        F.grad(lambda v: v.sum())(ts.tensor([1, 2]))
