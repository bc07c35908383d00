"""tessera.optim: optimizers, parameter groups, LR schedulers and gradient clipping against
PyTorch (identical parameters and gradients give the same values), plus a small training run."""
import math

import numpy as np
import pytest

import tessera as ts
from tessera import nn, optim
from tessera.optim import lr_scheduler
from conftest import requires_torch, torch


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


SHAPES = [(3, 4), (5,)]


def make_params(dtype=np.float64):
    arrays = [randn(*s, seed=i).astype(dtype) for i, s in enumerate(SHAPES)]
    ours = [ts.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays] if torch else None
    return ours, theirs


def run_steps(opt, params, steps, lib, dtype=np.float64, seed=10):
    """Gives every parameter the same synthetic gradients each step and steps the optimizer."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = lib.tensor(rng.standard_normal(tuple(p.shape)).astype(dtype))
        opt.step()


def assert_same(ours, theirs, rtol=1e-10, atol=1e-12):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=rtol, atol=atol)


# ---- optimizers against torch.optim ------------------------------------------------------------

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "maximize": True}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("Adam", {"lr": 0.02, "amsgrad": True, "eps": 1e-6}),
    ("AdamW", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}),
    ("AdamW", {"lr": 0.01, "maximize": True}),
    ("RMSprop", {"lr": 0.01}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.5, "centered": True, "weight_decay": 0.01,
                 "alpha": 0.9}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.2}),
]


@requires_torch
@pytest.mark.parametrize("name,kwargs", CONFIGS,
                         ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
def test_optimizers_match_torch_optim(name, kwargs):
    ours, theirs = make_params()
    run_steps(getattr(optim, name)(ours, **kwargs), ours, 5, ts)
    run_steps(getattr(torch.optim, name)(theirs, **kwargs), theirs, 5, torch)
    assert_same(ours, theirs)


@requires_torch
def test_float32_adam_matches_torch_to_single_precision():
    ours, theirs = make_params(np.float32)
    run_steps(optim.Adam(ours, lr=0.01), ours, 5, ts, np.float32)
    run_steps(torch.optim.Adam(theirs, lr=0.01), theirs, 5, torch, np.float32)
    assert_same(ours, theirs, rtol=1e-6, atol=1e-6)


@requires_torch
def test_param_groups_with_their_own_lr_match_torch():
    ours, theirs = make_params()
    opt = optim.SGD([{"params": [ours[0]], "lr": 0.5}, {"params": ours[1:]}], lr=0.1,
                    momentum=0.9)
    topt = torch.optim.SGD([{"params": [theirs[0]], "lr": 0.5}, {"params": theirs[1:]}], lr=0.1,
                           momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    run_steps(opt, ours, 3, ts)
    run_steps(topt, theirs, 3, torch)
    assert_same(ours, theirs)
    # changing a group's lr through the view changes the optimizer, as in PyTorch
    opt.param_groups[1]["lr"] = 0.01
    topt.param_groups[1]["lr"] = 0.01
    run_steps(opt, ours, 2, ts, seed=3)
    run_steps(topt, theirs, 2, torch, seed=3)
    assert_same(ours, theirs)


def test_param_group_views_read_and_write_options():
    p = ts.zeros(2, requires_grad=True)
    opt = optim.Adam([p], lr=0.01, betas=(0.8, 0.9), amsgrad=True)
    g = opt.param_groups[0]
    assert g["betas"] == (0.8, 0.9) and g["amsgrad"] is True and g["lr"] == 0.01
    assert set(g.keys()) == {"params", "lr", "betas", "eps", "weight_decay", "amsgrad",
                             "maximize"}
    assert len(g["params"]) == 1 and g["params"][0].shape == (2,)
    g["betas"] = (0.5, 0.6)
    g["lr"] = 0.1
    assert opt.param_groups[0]["betas"] == (0.5, 0.6) and opt.param_groups[0]["lr"] == 0.1
    assert opt.defaults["lr"] == 0.01 and "lr" in g and g.get("missing", 7) == 7
    q = ts.zeros(3, requires_grad=True)
    opt.add_param_group({"params": q, "lr": 0.3})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["betas"] == (0.8, 0.9)
    assert "Parameter Group 1" in repr(opt)
    with pytest.raises(KeyError):
        g["momentum"]  # noqa: B018
    assert optim.LBFGS([p]).param_groups[0]["line_search_fn"] is None


def test_sgd_step_updates_with_the_formula_and_zero_grad():
    p = ts.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.5)
    for _ in range(2):
        p.grad = ts.tensor([1.0, 1.0])
        opt.step()
    # buf1 = g, p1 = p0 - lr g; buf2 = 0.5 g + g, p2 = p1 - lr 1.5 g
    np.testing.assert_allclose(p.detach().numpy(), [1.0 - 0.25, -2.0 - 0.25], rtol=1e-6)
    opt.zero_grad(set_to_none=False)
    assert p.grad.tolist() == [0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None
    opt.step()  # parameters without a gradient are skipped
    np.testing.assert_allclose(p.detach().numpy(), [0.75, -2.25], rtol=1e-6)


def test_step_with_a_closure_returns_its_loss_and_propagates_errors():
    p = ts.tensor([2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 4.0 and float(p) == 1.0
    assert opt.step() is None

    def failing():
        raise ZeroDivisionError("inside the closure")

    with pytest.raises(ZeroDivisionError, match="inside the closure"):
        opt.step(failing)


# ---- LBFGS -----------------------------------------------------------------------------------

A = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.3], [0.0, 0.3, 1.0]])
B = np.array([1.0, -2.0, 0.5])


def lbfgs_run(lib, opt_cls, **kwargs):
    x = lib.tensor(np.zeros(3), requires_grad=True)
    a, b = lib.tensor(A), lib.tensor(B)
    opt = opt_cls([x], **kwargs)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (x * (a @ x)).sum() - (b * x).sum()
        loss.backward()
        return loss

    losses = [opt.step(closure).detach().item() for _ in range(2)]
    return x.detach().numpy(), losses


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_lbfgs_minimizes_a_quadratic(line_search):
    x, _ = lbfgs_run(ts, optim.LBFGS, lr=1 if line_search else 0.5, line_search_fn=line_search,
                     tolerance_grad=1e-12, tolerance_change=1e-15)
    np.testing.assert_allclose(x, np.linalg.solve(A, B), rtol=1e-6, atol=1e-8)


@requires_torch
@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_lbfgs_matches_torch(line_search):
    kwargs = {"lr": 0.3, "max_iter": 4, "history_size": 3, "line_search_fn": line_search}
    ours, our_losses = lbfgs_run(ts, optim.LBFGS, **kwargs)
    theirs, their_losses = lbfgs_run(torch, torch.optim.LBFGS, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-10)


# ---- state dicts -------------------------------------------------------------------------------

def test_optimizer_state_dict_round_trip_continues_identically():
    ours, _ = make_params()
    copies = [ts.tensor(p.detach().numpy(), requires_grad=True) for p in ours]
    opt = optim.Adam(ours, lr=0.05, amsgrad=True)
    run_steps(opt, ours, 3, ts)
    sd = opt.state_dict()
    assert "state.0.exp_avg" in sd and float(sd["param_groups.0.lr"]) == 0.05
    for c, p in zip(copies, ours):
        c.detach().copy_(p.detach())
    fresh = optim.Adam(copies, lr=0.05, amsgrad=True)
    fresh.load_state_dict(sd)
    run_steps(opt, ours, 2, ts, seed=4)
    run_steps(fresh, copies, 2, ts, seed=4)
    assert_same(ours, copies, rtol=0, atol=0)
    sd["state.0.exp_avg"] = ts.zeros(7, dtype=ts.float64)
    with pytest.raises(ValueError, match="state.0.exp_avg"):
        fresh.load_state_dict(sd)


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_optimizer_arguments():
    p = ts.zeros(2, requires_grad=True)
    with pytest.raises(TypeError):
        optim.SGD([p], lr=0.1, foreach=True)  # an option Tessera doesn't have
    with pytest.raises(TypeError):
        optim.Adam([p], betas=0.9)
    with pytest.raises(TypeError, match="iterable"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1.0)
    with pytest.raises(ValueError, match="empty"):
        optim.Adam([])
    with pytest.raises(ValueError, match="nonsense"):
        optim.SGD([{"params": [p], "nonsense": 1.0}])
    with pytest.raises(TypeError, match="must be a number"):
        optim.SGD([{"params": [p], "lr": "fast"}])
    with pytest.raises(TypeError, match="params"):
        optim.SGD([{"lr": 0.1}])
    with pytest.raises(TypeError, match="mixes"):
        optim.SGD([p, {"params": [p]}])
    with pytest.raises(ValueError, match="groups"):
        optim.LBFGS([{"params": [p], "lr": 0.1}])
    with pytest.raises(TypeError):
        optim.SGD([ts.zeros(2, dtype=ts.int64)], lr=0.1)


# ---- LR schedulers against torch.optim.lr_scheduler ---------------------------------------------

def lr_sequence(lib_optim, make_sched, steps, lrs=(0.1, 0.02), opt_name="SGD", **opt_kwargs):
    """Each group's lr after construction and after each of `steps` epochs."""
    lib = ts if lib_optim is optim else torch
    ps = [lib.zeros(1, requires_grad=True) for _ in lrs]
    opt = getattr(lib_optim, opt_name)([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs)],
                                       **opt_kwargs)
    sched = make_sched(lib_optim.lr_scheduler, opt)
    seq = [[g["lr"] for g in opt.param_groups]]
    for _ in range(steps):
        opt.step()
        sched.step()
        seq.append(list(sched.get_last_lr()))
        assert seq[-1] == pytest.approx([g["lr"] for g in opt.param_groups], rel=1e-12)
    return np.array(seq), opt


SCHEDULERS = [
    ("StepLR", lambda s, o: s.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda s, o: s.MultiStepLR(o, milestones=[2, 5, 5], gamma=0.3)),
    ("ExponentialLR", lambda s, o: s.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", lambda s, o: s.CosineAnnealingLR(o, T_max=6, eta_min=0.001)),
    ("LinearLR", lambda s, o: s.LinearLR(o, start_factor=0.2, total_iters=4)),
    ("OneCycleLR", lambda s, o: s.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=12,
                                             three_phase=True)),
    ("OneCycleLR-linear", lambda s, o: s.OneCycleLR(o, max_lr=0.8, epochs=3, steps_per_epoch=4,
                                                    anneal_strategy="linear")),
    ("ChainedScheduler", lambda s, o: s.ChainedScheduler([s.StepLR(o, 2, gamma=0.5),
                                                          s.ExponentialLR(o, gamma=0.9)])),
    ("SequentialLR", lambda s, o: s.SequentialLR(
        o, [s.LinearLR(o, start_factor=0.1, total_iters=3), s.CosineAnnealingLR(o, T_max=5)],
        milestones=[3])),
]


@requires_torch
@pytest.mark.parametrize("name,make", SCHEDULERS, ids=[e[0] for e in SCHEDULERS])
def test_schedulers_match_torch(name, make):
    kwargs = {"momentum": 0.9} if name.startswith("OneCycle") else {}
    ours, opt = lr_sequence(optim, make, 11, **kwargs)
    theirs, topt = lr_sequence(torch.optim, make, 11, **kwargs)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    if name.startswith("OneCycle"):  # momentum cycles the opposite way
        assert [g["momentum"] for g in opt.param_groups] == pytest.approx(
            [g["momentum"] for g in topt.param_groups], rel=1e-12)


@requires_torch
def test_one_cycle_cycles_adams_beta1_like_torch():
    make = SCHEDULERS[5][1]
    ours, opt = lr_sequence(optim, make, 7, opt_name="Adam")
    theirs, topt = lr_sequence(torch.optim, make, 7, opt_name="Adam")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert opt.param_groups[0]["betas"] == pytest.approx(topt.param_groups[0]["betas"])


@requires_torch
def test_reduce_lr_on_plateau_matches_torch():
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94]
    results = []
    for lib in (optim, torch.optim):
        p = (ts if lib is optim else torch).zeros(1, requires_grad=True)
        opt = lib.SGD([p], lr=1.0)
        sched = lib.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, cooldown=1,
                                                   min_lr=0.1, threshold=0.01)
        seq = []
        for m in metrics:
            opt.step()
            sched.step(m)
            seq.append(opt.param_groups[0]["lr"])
        results.append(seq)
    assert results[0] == pytest.approx(results[1], rel=1e-12)
    assert sched.best == pytest.approx(0.89)


def test_scheduler_step_epoch_state_dict_and_optimizer_property():
    p = ts.zeros(1, requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    assert sched.optimizer is opt and sched.base_lrs == [1.0]
    for _ in range(3):
        sched.step()
    assert sched.last_epoch == 3 and sched.get_last_lr() == pytest.approx([0.1])
    sd = sched.state_dict()
    sched.step(epoch=6)  # closed form
    assert sched.get_last_lr() == pytest.approx([1e-3])
    sched.load_state_dict(sd)
    assert sched.last_epoch == 3
    opt = optim.SGD([p], lr=1.0)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, patience=0)
    plateau.step(ts.tensor(1.0))  # a 0-d tensor metric works like a float
    plateau.step(2.0)
    assert plateau.num_bad_epochs == 0 and plateau.get_last_lr() == pytest.approx([0.1])
    with pytest.raises(ValueError):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0)  # neither total_steps nor epochs


def test_scheduler_keeps_its_optimizer_alive():
    p = ts.zeros(1, requires_grad=True)
    sched = lr_scheduler.ExponentialLR(optim.SGD([p], lr=1.0), gamma=0.5)
    sched.step()
    assert sched.optimizer.param_groups[0]["lr"] == 0.5


# ---- gradient clipping -------------------------------------------------------------------------

@requires_torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_matches_torch(norm_type):
    ours, theirs = make_params()
    for p, q, s in zip(ours, theirs, range(2)):
        g = randn(*p.shape, seed=20 + s) * 3
        p.grad, q.grad = ts.tensor(g), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm=1.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.5, norm_type=norm_type)
    assert float(total) == pytest.approx(float(ttotal), rel=1e-12)
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_clamps_every_element():
    p = ts.zeros(3, requires_grad=True)
    p.grad = ts.tensor([-5.0, 0.2, 3.0])
    nn.utils.clip_grad_value_(p, 0.5)  # a single tensor works too
    assert p.grad.tolist() == pytest.approx([-0.5, 0.2, 0.5])


# ---- training -----------------------------------------------------------------------------------

def test_small_mlp_learns_a_toy_regression():
    ts.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(128, 2)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:] ** 2).astype(np.float32)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                          nn.Linear(32, 1))
    opt = optim.Adam(model.parameters(), lr=0.01)
    sched = lr_scheduler.StepLR(opt, step_size=200, gamma=0.3)
    loss_fn = nn.MSELoss()
    xt, yt = ts.tensor(x), ts.tensor(y)
    first = None
    for _ in range(400):
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()
        first = first if first is not None else float(loss)
    final = float(loss_fn(model(xt), yt))
    assert final < 0.01 < first


def test_every_public_callable_has_a_docstring():
    for mod in (optim, lr_scheduler):
        for name in mod.__all__:
            obj = getattr(mod, name)
            if not callable(obj):
                continue
            assert obj.__doc__, f"{mod.__name__}.{name}"
            for attr in dir(obj) if isinstance(obj, type) else []:
                if not attr.startswith("_") and callable(getattr(obj, attr)):
                    assert getattr(obj, attr).__doc__, f"{name}.{attr}"
