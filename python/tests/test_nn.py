"""tessera.nn: Python subclasses of Module (automatic registration, traversal, state dicts, modes),
the containers, functional, init, NumPy/float64 references and bad input."""
import gc
import math

import numpy as np
import pytest

import tessera as ts
from tessera import nn
import tessera.nn.functional as F
from conftest import requires_torch, torch


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def tensor(a, requires_grad=False):
    return ts.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


class Block(nn.Module):
    """A Python module with a parameter, a buffer, a child and a plain attribute."""

    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(ts.ones(n))
        self.register_buffer("calls", ts.zeros(()))
        self.fc = nn.Linear(n, n)
        self.name = "block"

    def forward(self, x, shift=0.0):
        self.calls += 1
        return self.fc(x) * self.scale + shift


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([Block(4), Block(4)])
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))

    def forward(self, x):
        x = self.embed(x)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


# ---- Python subclasses and registration ------------------------------------------------------

def test_python_subclass_registers_parameters_buffers_and_children_in_order():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["embed.weight", "embed.bias",
                     "blocks.0.scale", "blocks.0.fc.weight", "blocks.0.fc.bias",
                     "blocks.1.scale", "blocks.1.fc.weight", "blocks.1.fc.bias",
                     "head.1.weight", "head.1.bias"]
    assert [n for n, _ in net.named_buffers()] == ["blocks.0.calls", "blocks.1.calls"]
    assert [n for n, _ in net.named_children()] == ["embed", "blocks", "head"]
    assert [n for n, _ in net.named_modules()] == [
        "", "embed", "blocks", "blocks.0", "blocks.0.fc", "blocks.1", "blocks.1.fc", "head",
        "head.0", "head.1"]
    assert len(list(net.parameters())) == 10 and len(list(net.modules())) == 10
    # PyTorch's state_dict order: each module's parameters, its buffers, then its children.
    assert list(net.state_dict()) == [
        "embed.weight", "embed.bias", "blocks.0.scale", "blocks.0.calls", "blocks.0.fc.weight",
        "blocks.0.fc.bias", "blocks.1.scale", "blocks.1.calls", "blocks.1.fc.weight",
        "blocks.1.fc.bias", "head.1.weight", "head.1.bias"]
    assert isinstance(net, nn.Module) and isinstance(nn.Linear(2, 3), nn.Module)
    assert net.blocks[0].name == "block" and isinstance(net.blocks[1], Block)
    assert net.get_submodule("blocks.1.fc") is net.blocks[1].fc
    assert net.get_parameter("head.1.bias").shape == (2,)


@requires_torch
def test_python_module_state_dict_keys_match_the_same_pytorch_model():
    class TorchBlock(torch.nn.Module):
        def __init__(self, n):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(n))
            self.register_buffer("calls", torch.zeros(()))
            self.fc = torch.nn.Linear(n, n)

    class TorchNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(3, 4)
            self.blocks = torch.nn.ModuleList([TorchBlock(4), TorchBlock(4)])
            self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 2))

    theirs, ours = TorchNet(), Net()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_forward_through_call_with_keyword_arguments_and_plain_attributes():
    b = Block(2)
    x = tensor([[1.0, -1.0]])
    y = b(x, shift=10.0)
    expected = x.numpy() @ b.fc.weight.detach().numpy().T + b.fc.bias.detach().numpy() + 10.0
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-6)
    assert float(b.calls) == 1.0  # the buffer was updated in place through the attribute
    b.threshold = 0.5  # plain attributes stay plain
    assert b.threshold == 0.5 and "threshold" not in dict(b.named_parameters())
    t = ts.zeros(2)  # a tensor that doesn't require grad is a plain attribute too
    b.cache = t
    assert "cache" not in dict(b.named_parameters()) and "cache" not in dict(b.named_buffers())


def test_python_module_inside_cpp_sequential_is_called_through_the_trampoline():
    b1, b2 = Block(3), Block(3)
    seq = nn.Sequential(b1, nn.Tanh(), b2)
    x = tensor(randn(4, 3))
    y = seq(x)
    expected = b2(ts.tanh(b1(x)))
    np.testing.assert_allclose(y.detach().numpy(), expected.detach().numpy(), rtol=1e-6)
    assert float(b1.calls) == 2.0  # once through Sequential (C++), once directly
    assert seq[0] is b1 and seq[-1] is b2 and len(seq) == 3
    assert [type(m).__name__ for m in seq] == ["Block", "Tanh", "Block"]
    assert "(0): Block(" in repr(seq) and "(1): Tanh()" in repr(seq)
    # gradients flow through the Python module inside the C++ container
    seq(x).sum().backward()
    assert b1.scale.grad is not None and b1.fc.weight.grad is not None


def test_python_module_called_from_cpp_with_the_gil_released():
    # Inputs this large make the C++ forward release the GIL; the trampoline takes it back to run
    # the Python forward, and a Python exception raised there comes back as itself.
    class Scale(nn.Module):
        def __init__(self, fail=False):
            super().__init__()
            self.fail = fail

        def forward(self, x):
            if self.fail:
                raise ZeroDivisionError("from forward")
            return x * 2.0

    x = ts.ones(300, 200)
    y = nn.Sequential(Scale(), nn.ReLU(), Scale())(x)
    assert float(y.sum()) == 4.0 * 300 * 200
    with pytest.raises(ZeroDivisionError, match="from forward"):
        nn.Sequential(nn.ReLU(), Scale(fail=True))(x)
    with pytest.raises(TypeError, match="Bad.forward returned a str"):
        nn.Sequential(type("Bad", (nn.Module,), {"forward": lambda self, x: "no"})())(x)


def test_python_overrides_reach_the_cpp_printout():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def extra_repr(self):
            return "factor=3" + super().extra_repr()

    text = repr(nn.Sequential(Scaled()))
    assert "(0): Scaled(\n    factor=3\n    (fc): Linear(in_features=2" in text


def test_parameter_reassignment_none_and_deletion():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(ts.ones(2))
            self.b = nn.Parameter(ts.zeros(2))

    m = M()
    m.b = None  # like PyTorch: the attribute reads None and the parameter is gone
    assert m.b is None and [n for n, _ in m.named_parameters()] == ["w"]
    with pytest.raises(TypeError, match="parameter 'w'"):
        m.w = ts.zeros(2)  # a tensor that doesn't require grad can't replace a parameter
    m.w = nn.Parameter(ts.full((3,), 2.0))
    assert m.w.shape == (3,)
    del m.w
    assert list(m.parameters()) == []
    assert isinstance(nn.Parameter(ts.ones(1)), nn.Parameter)
    assert not isinstance(ts.ones(1), nn.Parameter)
    frozen = nn.Parameter(ts.ones(1), requires_grad=False)
    assert not frozen.requires_grad


def test_registration_before_super_init_raises():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)
            super().__init__()

    with pytest.raises(AttributeError, match="super"):
        Bad()


def test_register_buffer_persistence_and_register_module():
    m = nn.Module()
    m.register_buffer("kept", ts.ones(2))
    m.register_buffer("scratch", ts.zeros(2), persistent=False)
    m.add_module("child", nn.Linear(2, 2))
    assert [n for n, _ in m.named_buffers()] == ["kept", "scratch"]
    assert list(m.state_dict()) == ["kept", "child.weight", "child.bias"]
    m.scratch = ts.full((2,), 5.0)  # reassigning keeps it a non-persistent buffer
    assert float(m.scratch[0]) == 5.0 and "scratch" not in m.state_dict()
    with pytest.raises(KeyError, match="forward"):
        m.register_module("forward", nn.Linear(1, 1))
    with pytest.raises(AttributeError, match="nothing"):
        m.nothing  # noqa: B018


def test_tied_weights_through_the_layer_property():
    emb, out = nn.Embedding(5, 3), nn.Linear(3, 5, bias=False)
    out.weight = emb.weight  # tie: one parameter, used by both layers
    model = nn.Sequential(emb, out)
    assert len(list(model.parameters())) == 1
    x = ts.tensor([1, 4])
    np.testing.assert_allclose(model(x).detach().numpy(),
                               emb.weight.detach().numpy()[[1, 4]] @ emb.weight.detach().numpy().T,
                               rtol=1e-6)


# ---- modes, conversion, gradients --------------------------------------------------------------

def test_train_and_eval_switch_dropout_and_batch_norm():
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5))
    assert model.training and model[1].training
    x = tensor(randn(400, 3) * 2 + 5)
    y = model(x).detach().numpy()
    assert 0.4 < np.mean(y == 0) < 0.6  # dropout zeroes about half
    bn = model[0]
    assert int(bn.num_batches_tracked) == 1 and abs(float(bn.running_mean[0]) - 0.5) < 0.1
    assert model.eval() is model and not model.training and not bn.training
    before = bn.running_mean.numpy().copy()
    y = model(x).detach().numpy()
    assert np.all(y != 0) and np.array_equal(bn.running_mean.numpy(), before)
    model.train()
    assert model[1].training


def test_zero_grad_requires_grad_to_and_apply():
    net = Net()
    net(tensor(randn(2, 3))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(float(p.grad.abs().sum()) == 0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    assert net.requires_grad_(False) is net
    assert not any(p.requires_grad for p in net.parameters())
    w = net.embed.weight
    assert net.to(ts.float64) is net and net.embed.weight.dtype == ts.float64
    assert w.dtype == ts.float64  # converted in place: handles stay valid
    assert net.float() is net and net.embed.weight.dtype == ts.float32
    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen[-1] == "Net" and seen.count("Block") == 2 and len(seen) == 10


def test_load_state_dict_strict_and_non_strict():
    a, b = Net(), Net()
    report = b.load_state_dict(a.state_dict())
    assert report.missing_keys == [] and report.unexpected_keys == []
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy(), err_msg=n)
    sd = a.state_dict()
    del sd["head.1.bias"]
    sd["extra"] = ts.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys: \"head.1.bias\".*unexpected keys: "
                                         r"\"extra\""):
        b.load_state_dict(sd)
    missing, unexpected = b.load_state_dict(sd, strict=False)
    assert missing == ["head.1.bias"] and unexpected == ["extra"]
    sd = a.state_dict()
    sd["embed.bias"] = np.zeros(7, dtype=np.float32)  # arrays are accepted; sizes are checked
    with pytest.raises(ValueError, match="size mismatch"):
        b.load_state_dict(sd)
    with pytest.raises(TypeError, match="dict"):
        b.load_state_dict([1, 2])


def test_state_dict_shares_storage_and_keep_vars():
    lin = nn.Linear(2, 2)
    sd = lin.state_dict()
    assert not sd["weight"].requires_grad
    sd["weight"].fill_(3.0)  # detached but sharing storage, like PyTorch
    assert float(lin.weight[0, 0]) == 3.0
    assert lin.state_dict(keep_vars=True)["weight"].requires_grad
    assert list(lin.state_dict(prefix="m.")) == ["m.weight", "m.bias"]


# ---- containers --------------------------------------------------------------------------------

def test_containers_index_slice_append_and_dict_access():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    assert seq.append(nn.Linear(3, 1)) is seq and len(seq) == 3
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and [n for n, _ in sub.named_children()] == ["1", "2"]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    with pytest.raises(IndexError):
        seq[3]  # noqa: B018
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict(first=nn.Linear(2, 2), act=nn.ReLU()))
    assert [n for n, _ in named.named_children()] == ["first", "act"] and named.first is named[0]
    lst = nn.ModuleList([nn.ReLU()])
    lst.extend([nn.Tanh(), nn.Sigmoid()])
    assert [type(m).__name__ for m in lst] == ["ReLU", "Tanh", "Sigmoid"]
    d = nn.ModuleDict({"a": nn.ReLU(), "b": nn.Tanh()})
    d["c"] = nn.Linear(1, 1)
    assert list(d) == ["a", "b", "c"] and "b" in d and len(d) == 3
    assert [k for k, _ in d.items()] == list(d.keys())
    with pytest.raises(KeyError, match="keys: a, b, c"):
        d["z"]  # noqa: B018
    with pytest.raises(TypeError, match="not a tessera.nn.Module"):
        nn.Sequential(nn.ReLU(), 3)


def test_reference_cycles_through_containers_are_collected():
    freed = []

    class Tracker:
        def __del__(self):
            freed.append(True)

    for _ in range(3):
        block = Block(2)
        seq = nn.Sequential(block)
        block.__dict__["owner"] = seq  # a plain back reference: a cycle through C++
        block.tracker = Tracker()
        del block, seq
    gc.collect()
    assert len(freed) == 3


# ---- NumPy / float64 references (no PyTorch needed) --------------------------------------------

def test_linear_matches_numpy():
    lin = nn.Linear(4, 3).double()
    x = randn(5, 4)
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    np.testing.assert_allclose(lin(tensor(x)).detach().numpy(), x @ w.T + b, rtol=1e-12)
    bound = 1 / math.sqrt(4)  # PyTorch's default init U(-1/sqrt(in), 1/sqrt(in))
    assert np.all(np.abs(w) <= bound) and np.all(np.abs(b) <= bound)


def conv2d_reference(x, w, b, stride, pad):
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + kh, j * stride:j * stride + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, w) + b
    return out


def test_conv2d_matches_float64_loops():
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=1).double()
    x = randn(2, 2, 6, 5)
    expected = conv2d_reference(x, conv.weight.detach().numpy(), conv.bias.detach().numpy(), 2, 1)
    np.testing.assert_allclose(conv(tensor(x)).detach().numpy(), expected, rtol=1e-10)


def test_layer_norm_matches_numpy_and_its_gradient_matches_finite_differences():
    ln = nn.LayerNorm(4).double()
    nn.init.normal_(ln.weight)
    nn.init.normal_(ln.bias)
    x = randn(3, 4)
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    w, b = ln.weight.detach().numpy(), ln.bias.detach().numpy()
    np.testing.assert_allclose(ln(tensor(x)).detach().numpy(), (x - mu) / np.sqrt(var + 1e-5) * w + b,
                               rtol=1e-10)
    g = randn(3, 4, seed=1)
    xt = tensor(x, requires_grad=True)
    (ln(xt) * tensor(g)).sum().backward()

    def f(v):
        return float((ln(tensor(v)) * tensor(g)).sum())

    eps, numeric = 1e-6, np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[idx] = eps
        numeric[idx] = (f(x + d) - f(x - d)) / (2 * eps)
    np.testing.assert_allclose(xt.grad.numpy(), numeric, rtol=1e-5, atol=1e-8)


@requires_torch
@pytest.mark.parametrize("shape,normalized,affine", [
    ((3, 5), (5,), "both"), ((2, 3, 4), (3, 4), "both"), ((4, 6), (6,), "weight"),
    ((2, 3, 4), (3, 4), "none"), ((5, 4, 3), (3,), "transposed")])
def test_layer_norm_values_and_gradients_match_pytorch(shape, normalized, affine):
    """The fused layer_norm: values, first and second derivatives, float64 and float32."""
    x = randn(*shape)
    w, b = randn(*normalized, seed=1) + 1.5, randn(*normalized, seed=2)
    g, v = randn(*shape, seed=3), randn(*shape, seed=4)
    for dt, tdt, tol in ((ts.float64, torch.float64, 1e-10), (ts.float32, torch.float32, 2e-5)):
        ours = [ts.tensor(a, dtype=dt, requires_grad=True) for a in (x, w, b)]
        theirs = [torch.tensor(a, dtype=tdt, requires_grad=True) for a in (x, w, b)]
        xo, xt = ours[0], theirs[0]
        if affine == "transposed":  # a non-contiguous input
            xo = xo.transpose(0, 2).contiguous().transpose(0, 2)
            xt = xt.transpose(0, 2).contiguous().transpose(0, 2)
        used = {"both": 3, "transposed": 3, "weight": 2, "none": 1}[affine]
        yo = F.layer_norm(xo, normalized, *ours[1:used])
        yt = torch.nn.functional.layer_norm(xt, normalized, *theirs[1:used])
        np.testing.assert_allclose(yo.detach().numpy(), yt.detach().numpy(), rtol=tol, atol=tol)
        go = ts.autograd.grad((yo * ts.tensor(g, dtype=dt)).sum(), ours[:used], create_graph=True)
        gt = torch.autograd.grad((yt * torch.tensor(g, dtype=tdt)).sum(), theirs[:used],
                                 create_graph=True)
        for a, c in zip(go, gt):
            np.testing.assert_allclose(a.detach().numpy(), c.detach().numpy(), rtol=tol * 10,
                                       atol=tol * 10)
        # Second derivatives of <d/dx, v>.
        ho = ts.autograd.grad((go[0] * ts.tensor(v, dtype=dt)).sum(), ours[:used],
                              allow_unused=True)
        ht = torch.autograd.grad((gt[0] * torch.tensor(v, dtype=tdt)).sum(), theirs[:used],
                                 allow_unused=True)
        for a, c in zip(ho, ht):
            if c is None:
                assert a is None or not a.numpy().any()
                continue
            np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=tol * 100, atol=tol * 100)


def test_layer_norm_16_bit_floats_compute_in_float32():
    x = randn(4, 64)
    ref = F.layer_norm(ts.tensor(x, dtype=ts.float32), (64,)).numpy()
    for dt, tol in ((ts.float16, 2e-3), (ts.bfloat16, 1.6e-2)):
        xr = ts.tensor(x, dtype=dt)
        got = F.layer_norm(xr, (64,))
        assert got.dtype == dt
        want = F.layer_norm(xr.to(ts.float32), (64,)).numpy()
        np.testing.assert_allclose(got.to(ts.float32).numpy(), want, rtol=tol, atol=tol)
        np.testing.assert_allclose(got.to(ts.float32).numpy(), ref, rtol=8 * tol, atol=8 * tol)


# ---- functional ----------------------------------------------------------------------------------

def test_cross_entropy_options_match_numpy():
    logits, target = randn(6, 4), np.array([0, 3, 1, 1, 2, 3])
    weight = np.array([1.0, 2.0, 0.5, 3.0])
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    keep = target != 1  # ignore_index=1
    nll = -logp[np.arange(6), target] * weight[target]
    expected = nll[keep].sum() / weight[target][keep].sum()
    got = F.cross_entropy(tensor(logits), ts.tensor(target), weight=tensor(weight), ignore_index=1)
    np.testing.assert_allclose(float(got), expected, rtol=1e-10)
    smooth = F.cross_entropy(tensor(logits), ts.tensor(target), label_smoothing=0.2,
                             reduction="none").numpy()
    expected = 0.8 * -logp[np.arange(6), target] + 0.2 * -logp.mean(1)
    np.testing.assert_allclose(smooth, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(tensor(logits), ts.tensor(target), reduction="avg")


@requires_torch
def test_functional_matches_pytorch():
    x, w, b = randn(2, 3, 6, 6), randn(4, 3, 3, 3, seed=1), randn(4, seed=2)
    lw, lb = randn(5, 6, seed=3), randn(5, seed=4)
    tf = torch.nn.functional
    T = torch.tensor
    checks = [
        (F.conv2d(tensor(x), tensor(w), tensor(b), stride=2, padding=1),
         tf.conv2d(T(x), T(w), T(b), stride=2, padding=1)),
        (F.linear(tensor(x), tensor(lw), tensor(lb)), tf.linear(T(x), T(lw), T(lb))),
        (F.max_pool2d(tensor(x), 2), tf.max_pool2d(T(x), 2)),
        (F.avg_pool2d(tensor(x), 3, stride=1, padding=1), tf.avg_pool2d(T(x), 3, 1, 1)),
        (F.layer_norm(tensor(x), (6,)), tf.layer_norm(T(x), (6,))),
        (F.group_norm(tensor(x), 3), tf.group_norm(T(x), 3)),
        (F.softmax(tensor(x), dim=1), tf.softmax(T(x), dim=1)),
        (F.log_softmax(tensor(x), -1), tf.log_softmax(T(x), -1)),
        (F.gelu(tensor(x), approximate="tanh"), tf.gelu(T(x), approximate="tanh")),
        (F.softplus(tensor(x), beta=2.0), tf.softplus(T(x), beta=2.0)),
        (F.pad(tensor(x), (1, 2, 0, 1), mode="reflect"), tf.pad(T(x), (1, 2, 0, 1), mode="reflect")),
        (F.mse_loss(tensor(x), tensor(x * 0.5), reduction="sum"),
         tf.mse_loss(T(x), T(x * 0.5), reduction="sum")),
        (F.binary_cross_entropy_with_logits(tensor(x), tensor(x > 0)),
         tf.binary_cross_entropy_with_logits(T(x), T((x > 0).astype(np.float64)))),
    ]
    for ours, theirs in checks:
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-9, atol=1e-12)


@requires_torch
def test_scaled_dot_product_attention_matches_pytorch():
    q, k, v = randn(2, 3, 5, 4), randn(2, 3, 6, 4, seed=1), randn(2, 3, 6, 2, seed=2)
    mask = np.random.default_rng(3).uniform(size=(5, 6)) > 0.3
    mask[:, 0] = True
    T = torch.tensor
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for kwargs, tkwargs in [({}, {}), ({"is_causal": True}, {"is_causal": True}),
                            ({"attn_mask": ts.tensor(mask), "scale": 0.3},
                             {"attn_mask": T(mask), "scale": 0.3})]:
        ours = F.scaled_dot_product_attention(tensor(q), tensor(k), tensor(v), **kwargs)
        np.testing.assert_allclose(ours.numpy(), sdpa(T(q), T(k), T(v), **tkwargs).numpy(),
                                   rtol=1e-9, atol=1e-12)


# ---- init --------------------------------------------------------------------------------------

def test_init_functions_fill_in_place_and_return_the_tensor():
    ts.manual_seed(0)
    w = ts.empty(64, 32, dtype=ts.float64)
    assert nn.init.xavier_uniform_(w) is w
    bound = math.sqrt(6 / (64 + 32))
    a = w.numpy()
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.9 * bound
    nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    assert abs(w.numpy().std() - math.sqrt(2 / 64)) < 0.1 * math.sqrt(2 / 64)
    nn.init.normal_(w, mean=3.0, std=0.5)
    assert abs(w.numpy().mean() - 3.0) < 0.05 and abs(w.numpy().std() - 0.5) < 0.05
    nn.init.trunc_normal_(w, std=1.0, a=-0.5, b=0.5)
    assert np.abs(w.numpy()).max() <= 0.5
    q = nn.init.orthogonal_(ts.empty(8, 5, dtype=ts.float64), gain=2.0).numpy()
    np.testing.assert_allclose(q.T @ q, 4 * np.eye(5), atol=1e-10)
    p = nn.Parameter(ts.empty(3))
    assert nn.init.constant_(p, 0.25) is p and p.requires_grad and p.tolist() == [0.25] * 3
    assert nn.init.zeros_(p).tolist() == [0.0] * 3 and nn.init.ones_(p).tolist() == [1.0] * 3
    assert nn.init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert nn.init._calculate_fan_in_and_fan_out(ts.empty(4, 3, 5)) == (15, 20)
    with pytest.raises(ValueError, match="fan_in"):
        nn.init.kaiming_uniform_(w, mode="fan")


# ---- bad input ---------------------------------------------------------------------------------

def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match=r"Linear.*last dim 3"):
        nn.Linear(3, 2)(ts.zeros(4, 5))
    with pytest.raises(ValueError, match="Conv2d"):
        nn.Conv2d(3, 4, 3)(ts.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match="LSTM"):
        nn.LSTM(3, 4)(ts.zeros(5, 2, 7))
    with pytest.raises(NotImplementedError):
        nn.Module()(ts.zeros(1))
    with pytest.raises(TypeError):
        nn.Linear(3, 2, bias=True, nonsense=1)
    with pytest.raises(TypeError):
        nn.Linear(3, 2)("not a tensor")
    with pytest.raises(ValueError, match="GRU"):
        nn.GRU(2, 3, proj_size=1)
    with pytest.raises(IndexError):
        F.cross_entropy(ts.zeros(2, 3), ts.tensor([0, 5]))


def test_every_public_callable_has_a_docstring():
    for mod in (nn, F, nn.init, nn.utils):
        for name in getattr(mod, "__all__", dir(mod)):
            obj = getattr(mod, name)
            if name.startswith("_") or not callable(obj):
                continue
            assert obj.__doc__, f"{mod.__name__}.{name}"
            if isinstance(obj, type):
                for attr in dir(obj):
                    member = getattr(obj, attr)
                    if not attr.startswith("_") and callable(member):
                        assert member.__doc__, f"{name}.{attr}"
