"""tessera.autograd: grad modes, autograd.grad/backward, custom Functions and checkpointing,
checked against central differences (float64) and PyTorch."""
import threading

import numpy as np
import pytest

import tessera as ts
from tessera import autograd as ag
from conftest import numerical_grad, requires_torch, torch

# Scalar functions written with methods that tessera and PyTorch tensors share, so one lambda
# runs on both.
FUNCS = {
    "sin_mul": lambda x: (x.sin() * x).sum(),
    "exp_tanh": lambda x: x.tanh().exp().sum(),
    "matmul_square": lambda x: ((x @ x.T) ** 2).sum(),
    "log1p_exp_mean": lambda x: (1 + x.exp()).log().mean(),
    "rational_cube": lambda x: (x / (1 + x * x)).pow(3).sum(),
}


def leaf(a):
    return ts.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("name", FUNCS)
def test_grad_matches_central_differences(name, rng):
    f = FUNCS[name]
    x = rng.uniform(-1.5, 1.5, size=(3, 4))
    xt = leaf(x)
    (g,) = ag.grad(f(xt), xt)
    np.testing.assert_allclose(g.numpy(), numerical_grad(f, x), rtol=1e-6, atol=1e-8)


@requires_torch
@pytest.mark.parametrize("name", FUNCS)
def test_grad_matches_pytorch(name, rng):
    f = FUNCS[name]
    x = rng.uniform(-1.5, 1.5, size=(3, 4))
    xt = leaf(x)
    xr = torch.tensor(x, requires_grad=True)
    (g,) = ag.grad(f(xt), xt)
    (gr,) = torch.autograd.grad(f(xr), xr)
    np.testing.assert_allclose(g.numpy(), gr.numpy(), rtol=1e-10, atol=1e-12)


def test_grad_several_inputs_outputs_and_grad_outputs(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    ta, tb = leaf(a), leaf(b)
    p, s = ta * tb, ta + tb.sin()
    wp, ws = rng.standard_normal(3), rng.standard_normal(3)
    ga, gb = ag.grad([p, s], [ta, tb], [ts.tensor(wp), ts.tensor(ws)])
    np.testing.assert_allclose(ga.numpy(), wp * b + ws)
    np.testing.assert_allclose(gb.numpy(), wp * a + ws * np.cos(b))
    assert ta.grad is None  # returned, not accumulated


def test_grad_allow_unused_gives_none():
    x, y = leaf([1.0, 2.0]), leaf([3.0])
    out = (x * x).sum()
    gx, gy = ag.grad(out, (x, y), retain_graph=True, allow_unused=True)
    assert gy is None and gx.tolist() == [2.0, 4.0]
    with pytest.raises(ts.Error, match="not used"):
        ag.grad(out, (x, y))


def test_create_graph_gives_second_derivatives(rng):
    x = rng.uniform(-1, 1, size=4)
    xt = leaf(x)
    (g,) = ag.grad((xt.sin() * xt).sum(), xt, create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), np.cos(x) * x + np.sin(x))
    (h,) = ag.grad(g.sum(), xt)  # d/dx of (x cos x + sin x) = 2 cos x - x sin x
    np.testing.assert_allclose(h.numpy(), 2 * np.cos(x) - x * np.sin(x), rtol=1e-12)


def test_backward_accumulates_from_several_tensors():
    x = leaf([1.0, -2.0])
    ag.backward([(x * x).sum(), x * 3], [None, ts.tensor([1.0, 10.0], dtype=ts.float64)])
    assert x.grad.tolist() == [2.0 + 3.0, -4.0 + 30.0]


def test_grad_of_non_scalar_without_grad_outputs_is_a_clear_error():
    x = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match="only for scalar outputs") as e:
        ag.grad(x * 2, x)
    assert isinstance(e.value, ts.Error)
    with pytest.raises(ValueError, match="3 grad_outputs for 1 outputs"):
        ag.grad(x * 2, x, [None, None, None])


def test_grad_rejects_non_tensors():
    x = leaf([1.0])
    with pytest.raises(TypeError, match=r"inputs\[1\] must be a Tensor, got float"):
        ag.grad(x * 2, [x, 1.0])
    with pytest.raises(TypeError, match="outputs"):
        ag.grad("y", x)


# ---- grad modes --------------------------------------------------------------------------------

def test_no_grad_context_manager_and_decorator():
    x = leaf([1.0, 2.0])
    with ts.no_grad():
        assert not ts.is_grad_enabled()
        y = x * 2
    assert ts.is_grad_enabled() and not y.requires_grad and (x * 2).requires_grad

    @ts.no_grad()
    def double(t):
        assert not ts.is_grad_enabled()
        return t * 2

    assert not double(x).requires_grad and ts.is_grad_enabled()
    assert double.__name__ == "double"


def test_no_grad_restores_after_an_exception():
    with pytest.raises(KeyError):
        with ts.no_grad():
            raise KeyError("boom")
    assert ts.is_grad_enabled()

    @ts.no_grad()
    def fails():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        fails()
    assert ts.is_grad_enabled()


def test_enable_grad_inside_no_grad_and_nesting():
    x = leaf([1.0])
    with ts.no_grad():
        with ts.enable_grad():
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
        ng = ts.no_grad()
        with ng, ng:  # one instance entered twice restores in order
            assert not ts.is_grad_enabled()
    assert ts.is_grad_enabled()


def test_set_grad_enabled_as_call_context_and_decorator():
    try:
        ts.set_grad_enabled(False)
        assert not ts.is_grad_enabled()  # a plain call stays in effect
    finally:
        ts.set_grad_enabled(True)
    assert ts.is_grad_enabled()
    with ts.set_grad_enabled(False):
        assert not ts.is_grad_enabled()
        with ts.set_grad_enabled(True):
            assert ts.is_grad_enabled()
        assert not ts.is_grad_enabled()
    assert ts.is_grad_enabled()

    @ts.set_grad_enabled(False)
    def probe():
        return ts.is_grad_enabled()

    assert ts.is_grad_enabled() and probe() is False and ts.is_grad_enabled()
    with pytest.raises(TypeError, match="bool"):
        ts.set_grad_enabled("no")


def test_no_grad_on_a_generator_applies_while_it_runs():
    @ts.no_grad()
    def gen():
        yield ts.is_grad_enabled()
        yield ts.is_grad_enabled()

    seen = []
    for v in gen():
        seen.append((v, ts.is_grad_enabled()))  # the caller's own mode between resumptions
    assert seen == [(False, True), (False, True)]

    @ts.no_grad()
    def echo():
        got = yield ts.is_grad_enabled()
        try:
            yield got
        except KeyError:
            yield "caught"
        return "done"

    g = echo()
    assert next(g) is False and g.send(5) == 5 and g.throw(KeyError()) == "caught"
    with pytest.raises(StopIteration, match="done"):
        next(g)
    assert list(ts.no_grad()(lambda: (yield from ()))()) == []
    assert ts.is_grad_enabled()


def test_inference_mode_and_grad_mode_nest():
    x = leaf([1.0, 2.0])
    with ts.inference_mode():
        assert ts.is_inference_mode_enabled() and not ts.is_grad_enabled()
        assert not (x * 2).requires_grad
        with ts.no_grad():  # leaving no_grad must not leave grad mode off afterwards
            pass
        with ts.enable_grad():
            assert not ts.is_grad_enabled()  # inference mode wins
        with pytest.raises(NotImplementedError):
            with ts.inference_mode(False):
                pass
    assert ts.is_grad_enabled() and not ts.is_inference_mode_enabled()
    with ts.inference_mode(False):
        assert ts.is_grad_enabled()

    @ts.inference_mode()
    def infer(t):
        return t * 2

    assert not infer(x).requires_grad


def test_grad_modes_are_per_thread():
    entered, checked = threading.Event(), threading.Event()
    seen = {}

    def other():
        entered.wait()
        seen["other"] = ts.is_grad_enabled()
        with ts.no_grad():
            seen["other_inside"] = ts.is_grad_enabled()
        checked.set()

    t = threading.Thread(target=other)
    t.start()
    with ts.no_grad():
        entered.set()
        checked.wait()
        seen["main"] = ts.is_grad_enabled()
    t.join()
    assert seen == {"other": True, "other_inside": False, "main": False}
    assert ts.is_grad_enabled()


def test_a_mode_must_be_left_on_its_own_thread():
    ctx = ts.set_grad_enabled(False)  # entered on this thread
    errors = []

    def leave_elsewhere():
        try:
            ctx.__exit__(None, None, None)
        except RuntimeError as e:
            errors.append(str(e))

    t = threading.Thread(target=leave_elsewhere)
    t.start()
    t.join()
    ctx.__exit__(None, None, None)
    assert ts.is_grad_enabled()
    assert errors and "thread" in errors[0]


class NaNGrad(ag.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


def test_detect_anomaly_names_the_op():
    x = leaf([1.0])
    NaNGrad.apply(x).sum().backward()  # off: NaN gradients pass silently
    assert np.isnan(x.grad.item())
    with ag.detect_anomaly():
        assert ag.is_anomaly_enabled()
        with pytest.raises(ts.Error, match="NaNGrad"):
            NaNGrad.apply(x).sum().backward()
    assert not ag.is_anomaly_enabled()
    ag.set_detect_anomaly(True)
    assert ag.is_anomaly_enabled()
    ag.set_detect_anomaly(False)
    assert not ag.is_anomaly_enabled()
    with ag.set_detect_anomaly(True):
        assert ag.is_anomaly_enabled()
    assert not ag.is_anomaly_enabled()


# ---- custom functions --------------------------------------------------------------------------

class Exp(ag.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad):
        (y,) = ctx.saved_tensors
        return grad * y


class ScaledPow(ag.Function):
    """k * x ** p with a non-tensor exponent and a ctx attribute."""

    @staticmethod
    def forward(ctx, x, p, k):
        ctx.p = p
        ctx.save_for_backward(x, k)
        return k * x ** p

    @staticmethod
    def backward(ctx, grad):
        x, k = ctx.saved_tensors
        return grad * k * ctx.p * x ** (ctx.p - 1), None, (grad * x ** ctx.p).sum()


class SumAndProduct(ag.Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a + b, a * b

    @staticmethod
    def backward(ctx, g_sum, g_prod):
        a, b = ctx.saved_tensors
        return g_sum + g_prod * b, g_sum + g_prod * a


def test_custom_function_exp_matches_finite_differences(rng):
    x = rng.uniform(-1, 1, size=(2, 3))
    xt = leaf(x)
    y = Exp.apply(xt)
    assert y.grad_fn == "Exp_backward"
    np.testing.assert_allclose(y.detach().numpy(), np.exp(x))
    y.sum().backward()
    f = lambda t: Exp.apply(t).sum()  # noqa: E731
    np.testing.assert_allclose(xt.grad.numpy(), numerical_grad(f, x), rtol=1e-7)


def test_custom_function_non_tensor_args_and_ctx_attributes(rng):
    x, k = rng.uniform(0.5, 1.5, size=3), 1.7
    xt, kt = leaf(x), leaf(k)
    y = ScaledPow.apply(xt, 3, kt)
    np.testing.assert_allclose(y.detach().numpy(), k * x ** 3)
    gx, gk = ag.grad(y.sum(), (xt, kt))
    np.testing.assert_allclose(gx.numpy(), 3 * k * x ** 2)
    np.testing.assert_allclose(gk.item(), (x ** 3).sum())


def test_custom_function_tuple_outputs_and_gradients(rng):
    a, b = rng.standard_normal(3), rng.standard_normal(3)
    ta, tb = leaf(a), leaf(b)
    s, p = SumAndProduct.apply(ta, tb)
    ga, gb = ag.grad((2 * s + 3 * p).sum(), (ta, tb))
    np.testing.assert_allclose(ga.numpy(), 2 + 3 * b)
    np.testing.assert_allclose(gb.numpy(), 2 + 3 * a)
    # An output that does not reach the loss gets a zero gradient.
    s, p = SumAndProduct.apply(ta, tb)
    (ga,) = ag.grad(p.sum(), ta)
    np.testing.assert_allclose(ga.numpy(), b)


class ExpSavingInput(ag.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.exp()

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * x.exp()


def second_derivative_through(fn, x):
    xt = leaf(x)
    (g,) = ag.grad(fn.apply(xt * xt).sum(), xt, create_graph=True)
    (h,) = ag.grad(g.sum(), xt)
    return g, h


@requires_torch
def test_custom_function_second_order_and_torch_parity(rng):
    x = rng.uniform(-1, 1, size=4)
    g, h = second_derivative_through(ExpSavingInput, x)
    xr = torch.tensor(x, requires_grad=True)
    (gr,) = torch.autograd.grad((xr * xr).exp().sum(), xr, create_graph=True)
    (hr,) = torch.autograd.grad(gr.sum(), xr)
    np.testing.assert_allclose(g.detach().numpy(), gr.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(h.numpy(), hr.numpy(), rtol=1e-12)


def test_custom_function_second_order_through_a_saved_output(rng):
    x = rng.uniform(-1, 1, size=4)
    _, h = second_derivative_through(Exp, x)
    np.testing.assert_allclose(h.numpy(), (2 + 4 * x * x) * np.exp(x * x), rtol=1e-12)


def test_custom_function_ctx_extras():
    seen = {}

    class Probe(ag.Function):
        @staticmethod
        def forward(ctx, x, y, n):
            seen["needs"] = ctx.needs_input_grad
            idx = (x > 0).long()
            ctx.mark_non_differentiable(idx)
            return x * y, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            with pytest.raises(TypeError, match="save_for_backward"):
                ctx.save_for_backward(1)
            return g, None, None

    x, y = leaf([1.0, -1.0]), ts.tensor([2.0, 3.0], dtype=ts.float64)
    out, idx = Probe.apply(x, y, "n")
    assert seen["needs"] == (True, False, False)
    assert not idx.requires_grad and idx.tolist() == [1, 0]
    with pytest.raises(RuntimeError, match="only available inside backward"):
        ag.FunctionCtx().saved_tensors


def test_custom_function_bad_results_are_clear_errors():
    class NotATensor(ag.Function):
        @staticmethod
        def forward(ctx, x):
            return 3.0

    class WrongCount(ag.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    class WrongShape(ag.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g  # shape () for an input of shape (2,)

    x = leaf([1.0, 2.0])
    with pytest.raises(TypeError, match="NotATensor.forward must return a Tensor"):
        NotATensor.apply(x)
    with pytest.raises(ValueError, match="returned 1 gradients; expected 2"):
        WrongCount.apply(x, x).sum().backward()
    with pytest.raises(ValueError, match="shape"):
        WrongShape.apply(x).backward()


def test_saved_tensor_modified_in_place_is_detected():
    x = leaf([1.0, 2.0])
    h = x * 1
    y = Exp.apply(h)
    with ts.no_grad():
        y.mul_(2)
    with pytest.raises(ValueError, match="modified in place"):
        y.sum().backward()


def test_custom_backward_runs_on_another_thread():
    x = leaf([0.5, 1.5])
    y = Exp.apply(x).sum()
    t = threading.Thread(target=y.backward)
    t.start()
    t.join()
    np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 1.5]))


# ---- checkpointing -----------------------------------------------------------------------------

def test_checkpoint_gives_the_same_gradients_and_recomputes(rng):
    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 3))
    calls = []

    def block(inp, weight, scale):
        calls.append(scale)
        return (inp @ weight).tanh() * scale

    xt, wt = leaf(x), leaf(w)
    out = ag.checkpoint(block, xt, wt, 0.5)
    out.pow(2).sum().backward()
    assert calls == [0.5, 0.5]  # forward once, recomputed once in backward
    xr, wr = leaf(x), leaf(w)
    block(xr, wr, 0.5).pow(2).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), xr.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(wt.grad.numpy(), wr.grad.numpy(), rtol=1e-12)


def test_checkpoint_tuple_outputs_and_bad_output():
    x = leaf([1.0, 2.0])
    a, b = ag.checkpoint(lambda t: (t * 2, t * t), x)
    (a + b).sum().backward()
    assert x.grad.tolist() == [4.0, 6.0]
    with pytest.raises(TypeError, match="checkpoint: the function must return a Tensor"):
        ag.checkpoint(lambda t: [t, 1], x)
