"""tessera.nn layers and losses against PyTorch: the same weights (copied through state_dict) give
the same outputs and the same gradients for the inputs and every parameter (float64)."""
import numpy as np
import pytest

import tessera as ts
from tessera import nn
from conftest import requires_torch, torch

pytestmark = requires_torch

# ---- helpers ---------------------------------------------------------------------------------


def flat(out):
    """The tensors of a (nested tuple) output, in order, skipping None."""
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat(o)]
    return [out]


def sync(ours, theirs):
    """Copies PyTorch's weights (and buffers) into our module, both in float64."""
    theirs.double()
    ours.double()
    report = ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert report.missing_keys == [] and report.unexpected_keys == []


def lib(m):
    """tessera or torch, whichever the module or module namespace belongs to."""
    return ts if isinstance(m, nn.Module) or m is nn else torch


def compare(ours, theirs, inputs, call=None, rtol=1e-7, atol=1e-9, seed=1, grad_inputs=None):
    """Runs both modules on the same inputs, backpropagates the same random upstream gradient and
    compares outputs, input gradients (of the float inputs, or the first grad_inputs ones) and
    parameter gradients."""
    call = call or (lambda m, *xs: m(*xs))
    sync(ours, theirs)
    is_float = [a.dtype.kind == "f" and (grad_inputs is None or i < grad_inputs)
                for i, a in enumerate(inputs)]
    xs = [ts.tensor(a, requires_grad=f) for a, f in zip(inputs, is_float)]
    txs = [torch.tensor(a, requires_grad=f) for a, f in zip(inputs, is_float)]
    outs, touts = flat(call(ours, *xs)), flat(call(theirs, *txs))
    assert len(outs) == len(touts)
    rng = np.random.default_rng(seed)
    loss, tloss = 0, 0
    for o, t in zip(outs, touts):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=rtol, atol=atol)
        g = rng.standard_normal(tuple(t.shape))
        loss = loss + (o * ts.tensor(g)).sum()
        tloss = tloss + (t * torch.tensor(g)).sum()
    loss.backward()
    tloss.backward()
    for x, tx, f in zip(xs, txs, is_float):
        if f:
            np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=rtol, atol=atol)
    theirs_params = dict(theirs.named_parameters())
    names = [n for n, _ in ours.named_parameters()]
    assert names == list(theirs_params)
    for name, p in ours.named_parameters():
        tg = theirs_params[name].grad
        if tg is None:
            assert p.grad is None or np.all(p.grad.numpy() == 0), name
        else:
            np.testing.assert_allclose(p.grad.numpy(), tg.numpy(), rtol=rtol, atol=atol,
                                       err_msg=name)
    return outs, touts


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- linear, convolution, pooling ------------------------------------------------------------

LAYERS = [
    ("Linear", lambda m: m.Linear(5, 4), [(3, 2, 5)]),
    ("Linear-nobias", lambda m: m.Linear(5, 4, bias=False), [(3, 5)]),
    ("Bilinear", lambda m: m.Bilinear(3, 4, 2), [(5, 3), (5, 4)]),
    ("Conv1d", lambda m: m.Conv1d(3, 4, 3, stride=2, padding=1), [(2, 3, 9)]),
    ("Conv2d", lambda m: m.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)),
     [(2, 3, 7, 8)]),
    ("Conv2d-groups-same", lambda m: m.Conv2d(4, 6, 3, padding="same", groups=2), [(2, 4, 6, 5)]),
    ("Conv2d-reflect", lambda m: m.Conv2d(2, 3, 3, padding=1, padding_mode="reflect"),
     [(1, 2, 5, 5)]),
    ("Conv2d-unbatched", lambda m: m.Conv2d(2, 3, 2, bias=False), [(2, 4, 4)]),
    ("Conv3d", lambda m: m.Conv3d(2, 3, 2, stride=(1, 2, 1)), [(2, 2, 4, 5, 4)]),
    ("ConvTranspose1d", lambda m: m.ConvTranspose1d(3, 2, 3, stride=2, padding=1,
                                                    output_padding=1), [(2, 3, 5)]),
    ("ConvTranspose2d", lambda m: m.ConvTranspose2d(4, 2, 3, stride=2, padding=1, groups=2),
     [(2, 4, 4, 3)]),
    ("MaxPool1d", lambda m: m.MaxPool1d(2), [(2, 3, 9)]),
    ("MaxPool2d", lambda m: m.MaxPool2d(3, stride=2, padding=1), [(2, 3, 7, 6)]),
    ("MaxPool2d-ceil", lambda m: m.MaxPool2d(2, ceil_mode=True), [(1, 2, 5, 5)]),
    ("AvgPool1d", lambda m: m.AvgPool1d(3, stride=2), [(2, 3, 9)]),
    ("AvgPool2d", lambda m: m.AvgPool2d(2, padding=1, count_include_pad=False), [(2, 3, 5, 6)]),
    ("AdaptiveAvgPool2d", lambda m: m.AdaptiveAvgPool2d((2, 3)), [(2, 3, 7, 8)]),
    ("Flatten", lambda m: m.Flatten(), [(2, 3, 4)]),
    ("Identity", lambda m: m.Identity(), [(2, 3)]),
]


@pytest.mark.parametrize("name,make,shapes", LAYERS, ids=[e[0] for e in LAYERS])
def test_linear_conv_pool_layers_match_pytorch(name, make, shapes):
    inputs = [randn(*s, seed=i) for i, s in enumerate(shapes)]
    compare(make(nn), make(torch.nn), inputs)


ACTIVATIONS = [
    ("ReLU", lambda m: m.ReLU()), ("LeakyReLU", lambda m: m.LeakyReLU(0.2)),
    ("ELU", lambda m: m.ELU(alpha=0.7)), ("GELU", lambda m: m.GELU()),
    ("GELU-tanh", lambda m: m.GELU(approximate="tanh")), ("SiLU", lambda m: m.SiLU()),
    ("Mish", lambda m: m.Mish()), ("Tanh", lambda m: m.Tanh()), ("Sigmoid", lambda m: m.Sigmoid()),
    ("Softmax", lambda m: m.Softmax(dim=1)), ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1)),
]


@pytest.mark.parametrize("name,make", ACTIVATIONS, ids=[e[0] for e in ACTIVATIONS])
def test_activations_match_pytorch(name, make):
    compare(make(nn), make(torch.nn), [randn(3, 4, 5) * 2])


# ---- normalization, embedding ----------------------------------------------------------------

NORMS = [
    ("BatchNorm1d-2d", lambda m: m.BatchNorm1d(4), (6, 4)),
    ("BatchNorm1d-3d", lambda m: m.BatchNorm1d(4, momentum=0.3), (6, 4, 5)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3, eps=1e-3), (4, 3, 5, 2)),
    ("BatchNorm2d-noaffine", lambda m: m.BatchNorm2d(3, affine=False), (4, 3, 2, 2)),
    ("LayerNorm", lambda m: m.LayerNorm((4, 5)), (3, 4, 5)),
    ("LayerNorm-nobias", lambda m: m.LayerNorm(5, bias=False), (3, 5)),
    ("GroupNorm", lambda m: m.GroupNorm(2, 4), (3, 4, 5)),
    ("RMSNorm", lambda m: m.RMSNorm(5, eps=1e-6), (3, 5)),
]


@pytest.mark.parametrize("name,make,shape", NORMS, ids=[e[0] for e in NORMS])
def test_normalization_layers_match_pytorch_in_training_and_eval(name, make, shape):
    ours, theirs = make(nn), make(torch.nn)
    # Non-trivial affine parameters, so their gradients and effect are checked.
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(torch.tensor(randn(*p.shape, seed=7)))
    compare(ours, theirs, [randn(*shape) * 3 + 1])
    for (n, b), (tn, tb) in zip(ours.named_buffers(), theirs.named_buffers()):
        assert n == tn
        np.testing.assert_allclose(b.numpy(), tb.numpy(), rtol=1e-10, err_msg=n)
    ours.eval()
    theirs.eval()
    x = randn(*shape, seed=3)
    np.testing.assert_allclose(ours(ts.tensor(x)).detach().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), rtol=1e-7, atol=1e-9)


def test_batch_norm_cumulative_average_with_momentum_none():
    ours, theirs = nn.BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)
    sync(ours, theirs)
    for seed in range(3):
        x = randn(5, 3, seed=seed)
        ours(ts.tensor(x))
        theirs(torch.tensor(x))
    np.testing.assert_allclose(ours.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-10)
    assert int(ours.num_batches_tracked) == 3


def test_embedding_matches_pytorch_and_padding_row_gets_no_gradient():
    ours, theirs = nn.Embedding(10, 3, padding_idx=0), torch.nn.Embedding(10, 3, padding_idx=0)
    idx = np.array([[0, 3, 3], [9, 0, 1]])
    compare(ours, theirs, [idx])
    assert np.all(ours.weight.grad.numpy()[0] == 0)
    frozen = nn.Embedding.from_pretrained(ts.tensor(randn(4, 2)))
    assert not frozen.weight.requires_grad and frozen.weight.shape == (4, 2)
    np.testing.assert_allclose(frozen(ts.tensor([3])).numpy()[0], randn(4, 2)[3], rtol=1e-6)


# ---- recurrent ---------------------------------------------------------------------------------

RECURRENT = [
    ("RNN-tanh", lambda m: m.RNN(3, 4, num_layers=2), (5, 2, 3), None),
    ("RNN-relu-bi", lambda m: m.RNN(3, 4, nonlinearity="relu", bidirectional=True), (5, 2, 3),
     None),
    ("LSTM-2layer-bi", lambda m: m.LSTM(3, 4, num_layers=2, bidirectional=True), (5, 2, 3), None),
    ("LSTM-batch-first-proj", lambda m: m.LSTM(3, 5, batch_first=True, proj_size=2), (2, 4, 3),
     None),
    ("GRU", lambda m: m.GRU(3, 4, num_layers=2, bias=False), (5, 2, 3), None),
    ("GRU-unbatched", lambda m: m.GRU(3, 4), (5, 3), None),
    ("GRU-h0", lambda m: m.GRU(3, 4, batch_first=True), (2, 5, 3), (1, 2, 4)),
]


@pytest.mark.parametrize("name,make,shape,h0", RECURRENT, ids=[e[0] for e in RECURRENT])
def test_recurrent_layers_match_pytorch(name, make, shape, h0):
    inputs = [randn(*shape)] + ([randn(*h0, seed=5)] if h0 else [])
    compare(make(nn), make(torch.nn), inputs)


def test_lstm_takes_and_returns_the_state_tuple_like_pytorch():
    ours, theirs = nn.LSTM(3, 4), torch.nn.LSTM(3, 4)
    h0, c0 = randn(1, 2, 4, seed=1), randn(1, 2, 4, seed=2)
    outs, _ = compare(ours, theirs, [randn(6, 2, 3), h0, c0],
                      call=lambda m, x, h, c: m(x, (h, c)))
    out, (h, c) = ours(ts.tensor(randn(6, 2, 3)))
    assert out.shape == (6, 2, 4) and h.shape == (1, 2, 4) and c.shape == (1, 2, 4)


CELLS = [
    ("RNNCell", lambda m: m.RNNCell(3, 4, nonlinearity="relu"), lambda m, x, h: m(x, h)),
    ("GRUCell", lambda m: m.GRUCell(3, 4), lambda m, x, h: m(x, h)),
    ("LSTMCell", lambda m: m.LSTMCell(3, 4), lambda m, x, h: m(x, (h, h * 0.5))),
]


@pytest.mark.parametrize("name,make,call", CELLS, ids=[e[0] for e in CELLS])
def test_cells_match_pytorch(name, make, call):
    compare(make(nn), make(torch.nn), [randn(2, 3), randn(2, 4, seed=1)], call=call)


# ---- attention and transformers ----------------------------------------------------------------

def test_multihead_attention_with_masks_matches_pytorch():
    ours = nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=5)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True, kdim=6, vdim=5)
    pad = np.where(np.array([[0, 0, 0, 1], [0, 1, 0, 0]]), -np.inf, 0.0)
    mask = randn(3, 4, seed=9)

    def call(m, q, k, v):
        return m(q, k, v, key_padding_mask=lib(m).tensor(pad), attn_mask=lib(m).tensor(mask),
                 average_attn_weights=False)

    compare(ours, theirs, [randn(2, 3, 8), randn(2, 4, 6, seed=1), randn(2, 4, 5, seed=2)],
            call=call)
    out, weights = ours(ts.tensor(randn(2, 3, 8)), ts.tensor(randn(2, 4, 6)),
                        ts.tensor(randn(2, 4, 5)), need_weights=False)
    assert weights is None and out.shape == (2, 3, 8)


def test_multihead_attention_causal_self_attention_matches_pytorch():
    ours, theirs = nn.MultiheadAttention(6, 3), torch.nn.MultiheadAttention(6, 3)
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)

    def call(m, x):
        return m(x, x, x, attn_mask=lib(m).tensor(causal))

    compare(ours, theirs, [randn(4, 2, 6)], call=call)


def test_transformer_encoder_stack_matches_pytorch():
    def make(m, **kw):
        layer = m.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0,
                                          activation="gelu", batch_first=True, norm_first=True)
        return m.TransformerEncoder(layer, 2, norm=m.LayerNorm(8), **kw)

    ours, theirs = make(nn), make(torch.nn, enable_nested_tensor=False)
    pad = np.array([[False] * 5, [False, False, False, True, True]])

    def call(m, x):
        return m(x, src_key_padding_mask=lib(m).tensor(pad))

    compare(ours, theirs, [randn(2, 5, 8)], call=call, rtol=1e-6, atol=1e-8)


def test_transformer_decoder_layer_and_stack_match_pytorch():
    def make(m):
        layer = m.TransformerDecoderLayer(8, 2, dim_feedforward=12, dropout=0.0)
        return m.TransformerDecoder(layer, 2)

    causal = np.triu(np.full((4, 4), -np.inf), 1)

    def call(m, tgt, memory):
        return m(tgt, memory, tgt_mask=lib(m).tensor(causal))

    compare(make(nn), make(torch.nn), [randn(4, 2, 8), randn(3, 2, 8, seed=1)], call=call,
            rtol=1e-6, atol=1e-8)


# ---- losses ------------------------------------------------------------------------------------

def class_targets(n, c, seed=0):
    return np.random.default_rng(seed).integers(0, c, size=n)


LOSSES = [
    ("MSELoss", lambda m: m.MSELoss(), lambda: [randn(4, 3), randn(4, 3, seed=1)]),
    ("L1Loss-sum", lambda m: m.L1Loss(reduction="sum"), lambda: [randn(4, 3), randn(4, 3, seed=1)]),
    ("SmoothL1Loss", lambda m: m.SmoothL1Loss(beta=0.5),
     lambda: [randn(4, 3), randn(4, 3, seed=1)]),
    ("HuberLoss-none", lambda m: m.HuberLoss(reduction="none", delta=0.7),
     lambda: [randn(4, 3), randn(4, 3, seed=1)]),
    ("CrossEntropyLoss", lambda m: m.CrossEntropyLoss(), lambda: [randn(5, 4), class_targets(5, 4)]),
    ("CrossEntropyLoss-options",
     lambda m: m.CrossEntropyLoss(weight=lib(m).tensor([1.0, 2.0, 0.5, 1.5]),
                                  ignore_index=2, label_smoothing=0.1),
     lambda: [randn(6, 4, 3), class_targets((6, 3), 4)]),
    ("CrossEntropyLoss-probs", lambda m: m.CrossEntropyLoss(reduction="sum"),
     lambda: [randn(5, 4), np.random.default_rng(3).dirichlet(np.ones(4), size=5)]),
    ("NLLLoss", lambda m: m.NLLLoss(reduction="sum"), lambda: [randn(5, 4), class_targets(5, 4)]),
    ("BCELoss", lambda m: m.BCELoss(),
     lambda: [np.random.default_rng(0).uniform(0.05, 0.95, (4, 3)),
              np.random.default_rng(1).uniform(0, 1, (4, 3))]),
    ("BCEWithLogitsLoss", lambda m: m.BCEWithLogitsLoss(pos_weight=lib(m).tensor([1.0, 3.0, 0.5])),
     lambda: [randn(4, 3) * 5, np.random.default_rng(1).uniform(0, 1, (4, 3))]),
    ("KLDivLoss", lambda m: m.KLDivLoss(reduction="batchmean"),
     lambda: [np.log(np.random.default_rng(0).dirichlet(np.ones(4), size=3)),
              np.random.default_rng(1).dirichlet(np.ones(4), size=3)]),
]


@pytest.mark.parametrize("name,make,data", LOSSES, ids=[e[0] for e in LOSSES])
def test_loss_modules_match_pytorch(name, make, data):
    compare(make(nn), make(torch.nn), data(), grad_inputs=1)


@pytest.mark.parametrize("name", ["CosineEmbeddingLoss", "MarginRankingLoss"])
def test_three_input_losses_match_pytorch(name):
    y = np.array([1.0, -1.0, 1.0, -1.0])
    shape = (4, 3) if name == "CosineEmbeddingLoss" else (4,)
    compare(getattr(nn, name)(margin=0.2), getattr(torch.nn, name)(margin=0.2),
            [randn(*shape), randn(*shape, seed=1), y], grad_inputs=2)
