"""tessera.autocast and tessera.amp.GradScaler: output dtypes per op category, scopes (nesting,
disabling, decorators, threads), gradients against explicit casts, the function transforms
under autocast, and PyTorch's torch.autocast / torch.amp.GradScaler where the semantics are
the same (output dtypes of a small MLP and CNN, scale sequences, stage errors)."""
import threading
import warnings

import numpy as np
import pytest

import tessera as ts
from tessera import nn
from conftest import requires_torch, torch

F = nn.functional
HALVES = [ts.bfloat16, ts.float16]


def randn(*shape, seed=0):
    return ts.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def values(t):
    return t.detach().to(ts.float64).numpy()


# ---- the policy and output dtypes ---------------------------------------------------------------

def test_policy_table():
    assert ts.amp.policy("matmul") == "lower"
    assert ts.amp.policy("conv") == "lower"
    assert ts.amp.policy("softmax") == "float32"
    assert ts.amp.policy("sum") == "float32"
    assert ts.amp.policy("cat") == "promote"
    assert ts.amp.policy("relu") == "keep"


@pytest.mark.parametrize("dt", HALVES)
def test_output_dtypes_per_category(dt):
    x, w = randn(4, 6, seed=1), randn(6, 3, seed=2)
    img = randn(2, 3, 8, 8, seed=3)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    lin = nn.Linear(6, 3)
    with ts.autocast(device_type="cpu", dtype=dt):
        assert (x @ w).dtype == dt
        assert lin(x).dtype == dt
        assert conv(img).dtype == dt
        h = x @ w
        for out in (ts.softmax(h, 1), ts.log_softmax(h, 1), h.sum(), h.mean(), ts.exp(h),
                    F.cross_entropy(h, ts.tensor([0, 2, 1, 0])), F.mse_loss(h, h * 2)):
            assert out.dtype == ts.float32
        assert ts.relu(h).dtype == dt
        assert (h + x.sum(1, keepdim=True)).dtype == ts.float32  # mixed: the widest
        assert (x.to(ts.float64) @ w.to(ts.float64)).dtype == ts.float64  # float64 stays
    assert (x @ w).dtype == ts.float32


def test_scopes_nest_disable_and_restore():
    x, w = randn(2, 3, seed=4), randn(3, 2, seed=5)
    assert not ts.is_autocast_enabled("cpu")
    assert ts.get_autocast_dtype("cpu") == ts.bfloat16
    with ts.autocast("cpu", dtype=ts.bfloat16):
        assert ts.is_autocast_enabled("cpu") and not ts.is_autocast_enabled("cuda")
        with ts.autocast("cpu", dtype=ts.float16):
            assert (x @ w).dtype == ts.float16
            with ts.autocast("cpu", enabled=False):
                assert (x @ w).dtype == ts.float32
                with ts.autocast("cpu"):  # no dtype: the current one
                    assert (x @ w).dtype == ts.float16
        assert (x @ w).dtype == ts.bfloat16
        with pytest.raises(ts.ShapeError):
            with ts.autocast("cpu", dtype=ts.float16):
                x @ x
        assert (x @ w).dtype == ts.bfloat16  # restored although the block raised
    assert not ts.is_autocast_enabled("cpu")
    assert (x @ w).dtype == ts.float32


def test_decorator_threads_and_bad_arguments():
    x, w = randn(2, 3, seed=6), randn(3, 2, seed=7)

    @ts.autocast("cpu")
    def f(a, b):
        return a @ b

    assert f(x, w).dtype == ts.bfloat16
    assert not ts.is_autocast_enabled("cpu")
    seen = []
    with ts.autocast("cpu"):
        t = threading.Thread(target=lambda: seen.append((x @ w).dtype))
        t.start()
        t.join()
    assert seen == [ts.float32]  # the state is per thread
    with pytest.raises(ValueError):
        ts.autocast("tpu")
    with pytest.raises(TypeError):
        with ts.autocast("cpu", dtype=ts.float32):
            pass
    assert not ts.is_autocast_enabled("cpu")


def test_cast_cache_lives_for_the_outermost_scope():
    from tessera._C import _amp
    x = randn(2, 3, seed=30)
    w = randn(3, 3, seed=31).requires_grad_()
    with ts.autocast("cpu"):
        with ts.autocast("cpu"):
            a = F.linear(x, w)
            b = F.linear(x, w)  # w.t() cast once
            assert _amp.cache_size() == 1
        assert _amp.cache_size() == 1
        np.testing.assert_array_equal(values(a), values(b))
        with ts.no_grad():
            x @ w  # no history to reuse later: not kept
        assert _amp.cache_size() == 1
    assert _amp.cache_size() == 0
    with ts.autocast("cpu", cache_enabled=False):
        F.linear(x, w)
        assert _amp.cache_size() == 0

    @ts.autocast("cpu", cache_enabled=False)
    def f():
        F.linear(x, w)
        return _amp.cache_size()

    assert f() == 0


# ---- gradients ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", HALVES)
def test_gradients_are_float32_and_match_explicit_casts(dt):
    x, y = randn(6, 8, seed=8), ts.tensor([0, 3, 1, 2, 3, 0])
    params = [randn(16, 8, seed=9) * 0.3, randn(16, seed=10) * 0.1, randn(4, 16, seed=11) * 0.3,
              randn(4, seed=12) * 0.1]
    params = [p.requires_grad_() for p in params]
    w1, b1, w2, b2 = params
    with ts.autocast("cpu", dtype=dt):
        loss = F.cross_entropy(F.linear(ts.relu(F.linear(x, w1, b1)), w2, b2), y)
    got = ts.autograd.grad(loss, params)
    h = ts.relu(x.to(dt) @ w1.t().to(dt) + b1.to(dt))
    ref = F.cross_entropy((h @ w2.t().to(dt) + b2.to(dt)).to(ts.float32), y)
    want = ts.autograd.grad(ref, params)
    assert loss.item() == ref.item()
    for g, r in zip(got, want):
        assert g.dtype == ts.float32
        np.testing.assert_array_equal(values(g), values(r))


def test_transforms_under_autocast():
    x, w, t = randn(3, 5, seed=13), randn(5, 4, seed=14), randn(5, 4, seed=15)

    def f(w):
        return ts.logsumexp(x @ w, 1).sum()

    def by_hand(w):
        return ts.logsumexp((x.to(ts.bfloat16) @ w.to(ts.bfloat16)).to(ts.float32), 1).sum()

    with ts.autocast("cpu"):
        g = ts.func.grad(f)(w)
        out, tan = ts.func.jvp(f, (w,), (t,))
        ws = ts.stack([w, w * 2, w * 3])
        per = ts.func.vmap(ts.func.grad(f))(ws)
    assert g.dtype == ts.float32
    np.testing.assert_array_equal(values(g), values(ts.func.grad(by_hand)(w)))
    ref_out, ref_tan = ts.func.jvp(by_hand, (w,), (t,))
    np.testing.assert_array_equal(values(out), values(ref_out))
    np.testing.assert_array_equal(values(tan), values(ref_tan))
    for i in range(3):
        np.testing.assert_allclose(values(per[i]), values(ts.func.grad(by_hand)(ws[i])),
                                   rtol=1e-6, atol=1e-6)


# ---- against PyTorch ----------------------------------------------------------------------------

# Layer specs built in both libraries: (name, args, kwargs).
MLP = [("Linear", (8, 16), {}), ("ReLU", (), {}), ("Linear", (16, 4), {})]
CNN = [("Conv2d", (1, 4, 3), {"padding": 1}), ("ReLU", (), {}), ("MaxPool2d", (2,), {}),
       ("Conv2d", (4, 6, 3), {}), ("ReLU", (), {}), ("Flatten", (), {}),
       ("Linear", (6 * 2 * 2, 3), {})]


def _build(lib, spec):
    return lib.nn.Sequential(*[getattr(lib.nn, name)(*args, **kw) for name, args, kw in spec])


def _models(spec):
    """The same architecture in both libraries, with our parameters copied into PyTorch's."""
    ts.manual_seed(0)
    model, twin = _build(ts, spec), _build(torch, spec)
    twin.load_state_dict({k: torch.tensor(v.numpy()) for k, v in model.state_dict().items()})
    return model, twin


@requires_torch
@pytest.mark.parametrize("spec,shape", [(MLP, (5, 8)), (CNN, (2, 1, 8, 8))])
def test_forward_dtypes_and_values_match_torch(spec, shape):
    model, twin = _models(spec)
    x = np.random.default_rng(16).standard_normal(shape).astype(np.float32)
    target = np.array([0, 1, 2, 1, 0][: shape[0]])
    with ts.autocast("cpu", dtype=ts.bfloat16):
        out = model(ts.tensor(x))
        loss = F.cross_entropy(out, ts.tensor(target))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tout = twin(torch.tensor(x))
        tloss = torch.nn.functional.cross_entropy(tout, torch.tensor(target))
    assert str(out.dtype).split(".")[-1] == str(tout.dtype).split(".")[-1] == "bfloat16"
    assert loss.dtype == ts.float32 and tloss.dtype == torch.float32
    np.testing.assert_allclose(values(out), tout.float().detach().numpy(), rtol=3e-2, atol=3e-2)
    loss.backward()
    tloss.backward()
    for p, (name, q) in zip(model.parameters(), twin.named_parameters()):
        assert p.grad.dtype == ts.float32 and q.grad.dtype == torch.float32, name
        np.testing.assert_allclose(values(p.grad), q.grad.numpy(), rtol=5e-2, atol=2e-2)


def _scale_sequence(lib, steps, bad, growth_interval=3):
    """Scales after each update, with inf/NaN injected into the gradients at the given steps."""
    if lib == "torch":
        p = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.125)
        scaler = torch.amp.GradScaler("cpu", growth_interval=growth_interval)
        mk = torch.tensor
    else:
        p = ts.tensor([1.0, 2.0, 3.0], requires_grad=True)
        opt = ts.optim.SGD([p], lr=0.125)
        scaler = ts.amp.GradScaler("cpu", growth_interval=growth_interval)
        mk = ts.tensor
    scales, params = [], []
    for step in range(steps):
        opt.zero_grad()
        scaler.scale((p * mk([0.5, -1.0, 2.0])).sum()).backward()
        if step in bad:
            g = p.grad.detach().clone()
            g[step % 3] = bad[step]
            p.grad = g
        scaler.step(opt)
        scaler.update()
        scales.append(scaler.get_scale())
        params.append(p.detach().numpy().copy())
    return scales, params, scaler


BAD = {1: float("inf"), 2: float("inf"), 6: float("nan"), 10: -float("inf")}


def test_grad_scaler_sequence_by_hand():
    scales, params, scaler = _scale_sequence("ts", 12, BAD)
    assert scales == [65536, 32768, 16384, 16384, 16384, 32768, 16384, 16384, 16384, 32768,
                      16384, 16384]
    for step in range(1, 12):  # skipped steps leave the parameter alone
        moved = not np.array_equal(params[step], params[step - 1])
        assert moved == (step not in BAD), step
    assert scaler._get_growth_tracker() == 1


@requires_torch
def test_grad_scaler_sequence_matches_torch():
    ours, our_params, a = _scale_sequence("ts", 14, BAD)
    theirs, their_params, b = _scale_sequence("torch", 14, BAD)
    assert ours == theirs
    for p, q in zip(our_params, their_params):
        np.testing.assert_array_equal(p, q)
    assert a.state_dict() == b.state_dict()


@requires_torch
def test_grad_scaler_errors_match_torch():
    for lib in ("ts", "torch"):
        m = ts if lib == "ts" else torch
        p = m.tensor([1.0, 2.0], requires_grad=True)
        opt = m.optim.SGD([p], lr=0.1)
        scaler = (ts.amp.GradScaler("cpu") if lib == "ts" else torch.amp.GradScaler("cpu"))
        scaler.scale(p.sum()).backward()
        scaler.unscale_(opt)
        with pytest.raises(RuntimeError, match="already been called"):
            scaler.unscale_(opt)
        scaler.step(opt)
        with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
            scaler.step(opt)
        with pytest.raises(RuntimeError, match="after step"):
            scaler.unscale_(opt)
        with pytest.raises(RuntimeError, match="[Cc]losure"):
            scaler.step(opt, closure=lambda: None)
        scaler.update()
        np.testing.assert_array_equal(p.grad.numpy(), [1.0, 1.0])  # unscaled exactly once


def test_grad_scaler_state_dict_checkpoint_and_disabled(tmp_path):
    _, _, a = _scale_sequence("ts", 5, {3: float("inf")}, growth_interval=2)
    sd = a.state_dict()
    # interval 2: growth after steps 0-1 (131072), backoff at step 3, one clean step since.
    assert sd == {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                  "growth_interval": 2, "_growth_tracker": 1}
    b = ts.amp.GradScaler("cpu")
    b.load_state_dict(sd)
    assert b.state_dict() == sd
    with pytest.raises(ValueError, match="empty"):
        b.load_state_dict({})
    path = tmp_path / "ck.safetensors"
    ts.io.save_checkpoint(path, step=5, scaler=a)
    c = ts.optim.GradScaler("cpu")  # the same class under tessera.optim
    back = ts.io.load_checkpoint(path, scaler=c)
    assert c.state_dict() == sd and back.scaler["scale"].item() == 65536.0
    b.scale(ts.tensor(1.0))  # update needs a scale in use, as in PyTorch
    b.update(ts.tensor([1024.0]))
    assert b.get_scale() == 1024.0
    b.update(3.3)
    assert b.get_scale() == float(np.float32(3.3))  # float32, as PyTorch's scale tensor
    with pytest.raises(ValueError):
        b.update(ts.tensor([1.0, 2.0]))
    off = ts.amp.GradScaler("cpu", enabled=False)
    loss = ts.tensor(2.0)
    assert off.scale(loss) is loss or off.scale(loss).item() == 2.0
    assert off.get_scale() == 1.0 and off.state_dict() == {}
    scaled = a.scale([loss, (loss, loss)])
    assert isinstance(scaled, list) and isinstance(scaled[1], tuple)
    assert scaled[1][0].item() == 2.0 * 65536


def test_grad_scaler_on_cuda_without_a_device_disables_itself():
    if ts.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = ts.amp.GradScaler()  # device="cuda", PyTorch's default
    assert not s.is_enabled()
    assert any("CUDA is not available" in str(w.message) for w in caught)
