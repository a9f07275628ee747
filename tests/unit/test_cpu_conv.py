"""The CPU convolution paths compute PyTorch's convolutions: values, gradients, layouts."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from trainer.config.yamlfile import load
from trainer.models import build_models, cpu_conv
from trainer.models.cpu_conv import apply_conv, grouped_conv1d


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference relative to the reference's max magnitude."""
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def _grads(fn, x, w, b, gy):
    x, w, b = (t.detach().clone().requires_grad_(True) for t in (x, w, b))
    y = fn(x, w, b)
    y.backward(gy)
    return y.detach(), x.grad, w.grad, b.grad


# (in, out, kernel, stride, padding, groups, length): the MSD's layers at several lengths,
# a padding that is not a multiple of the stride, a crop of the padded input's right end,
# stride 1, and outputs of one sample.
CASES = [
    (16, 16, 41, 2, 20, 4, 301),
    (16, 32, 41, 2, 20, 16, 300),
    (32, 64, 41, 4, 20, 16, 257),
    (64, 64, 41, 1, 20, 16, 33),
    (8, 8, 7, 3, 2, 2, 50),
    (8, 12, 5, 2, 1, 4, 17),
    (8, 8, 6, 4, 0, 2, 23),
    (4, 4, 41, 4, 20, 2, 3),
    (4, 8, 9, 2, 4, 4, 9),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
@pytest.mark.parametrize("weight_grad", ["onednn", "bmm"])
def test_grouped_conv1d_matches_conv1d_values_and_gradients(case, weight_grad, monkeypatch):
    cin, cout, k, s, p, g, length = case
    # force one weight-gradient kernel or the other on these small shapes
    monkeypatch.setattr(cpu_conv, "BMM_MIN_ROWS", 0 if weight_grad == "bmm" else 10**12)
    monkeypatch.setattr(cpu_conv, "BMM_MIN_TAPS", 0)
    gen = torch.Generator().manual_seed(sum(case))
    x = torch.randn(3, cin, length, generator=gen)
    w = torch.randn(cout, cin // g, k, generator=gen) * 0.2
    b = torch.randn(cout, generator=gen)
    want = F.conv1d(x, w, b, s, p, 1, g)
    gy = torch.randn(want.shape, generator=gen)
    ref = _grads(lambda x, w, b: F.conv1d(x, w, b, s, p, 1, g), x, w, b, gy)
    got = _grads(lambda x, w, b: grouped_conv1d(x, w, b, s, p, g), x, w, b, gy)
    for name, a, r in zip(("output", "grad x", "grad w", "grad b"), got, ref, strict=True):
        assert a.shape == r.shape, name
        assert _rel(a, r) < 1e-5, f"{name}: {_rel(a, r):.2e}"


def test_grouped_conv1d_output_is_channels_last_and_only_needed_gradients_are_made():
    x = torch.randn(2, 8, 64)
    w = torch.randn(8, 2, 41, requires_grad=True)
    y = grouped_conv1d(x, w, None, 2, 20, 4)
    assert y.stride(1) == 1, "channels-last: [B, T, C] memory"
    (gw,) = torch.autograd.grad(y.sum(), [w])  # x needs no gradient: none is computed
    assert gw.shape == w.shape


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv1d(8, 16, 7, padding=3),
        nn.Conv1d(8, 8, 3, dilation=5, padding=5),
        nn.Conv1d(1, 16, 15, padding=7),  # one input channel: the windowed matmul
        nn.Conv1d(4, 4, 5, stride=2, padding=2, groups=2),
        nn.ConvTranspose1d(16, 8, 16, 8, padding=4),
        nn.ConvTranspose1d(8, 4, 4, 2, padding=1, output_padding=1),
        weight_norm(nn.Conv1d(8, 8, 11, padding=5)),
    ],
    ids=[
        "plain",
        "dilated",
        "one-channel",
        "strided-grouped",
        "upsample",
        "output-padding",
        "weight-norm",
    ],  # fmt: skip
)
def test_apply_conv_matches_the_module(conv):
    x = torch.randn(2, conv.in_channels, 40)
    want = conv(x)
    gy = torch.randn(want.shape)
    xr = x.clone().requires_grad_(True)
    conv.zero_grad()
    conv(xr).backward(gy)
    ref = [xr.grad] + [p.grad.clone() for p in conv.parameters()]
    xg = x.clone().requires_grad_(True)
    conv.zero_grad()
    got_y = apply_conv(conv, xg)
    got_y.backward(gy)
    got = [xg.grad] + [p.grad.clone() for p in conv.parameters()]
    assert got_y.shape == want.shape
    assert _rel(got_y.detach(), want.detach()) < 1e-5
    for a, r in zip(got, ref, strict=True):
        assert _rel(a, r) < 1e-5
    if conv.out_channels > 1:
        assert got_y.stride(1) == 1, "channels-last out"


def test_other_dtypes_and_autocast_take_pytorchs_own_path():
    conv = nn.Conv1d(4, 4, 3, padding=1).double()
    x = torch.randn(2, 4, 16, dtype=torch.float64)
    assert torch.equal(apply_conv(conv, x), conv(x))
    assert torch.equal(
        grouped_conv1d(x, conv.weight, conv.bias, 1, 1, 1),
        F.conv1d(x, conv.weight, conv.bias, 1, 1),
    )
    conv = nn.Conv1d(4, 4, 3, padding=1)
    x = torch.randn(2, 4, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = apply_conv(conv, x)
        assert y.dtype == torch.bfloat16 and y.is_contiguous()


def _native(monkeypatch):
    monkeypatch.setattr(cpu_conv, "_fast_path", lambda x: False)


def test_generator_and_discriminators_match_pytorchs_path(monkeypatch):
    """The whole networks, forward and every parameter's gradient, against the same networks
    with every convolution on PyTorch's own path (float64 of that path as the yardstick:
    the two float32 paths differ by rounding, not by more; leaky ReLU turns a rounding-sized
    difference at an activation near zero into a slope change, hence the floor of 1e-4:
    a wrong tap, phase or group gives errors of order one)."""
    cfg = load("hifigan_v1")
    torch.manual_seed(0)
    g, d = build_models(cfg)
    mel = torch.randn(2, cfg.audio.n_mels, 8)
    audio = torch.randn(2, 1, 8 * g.hop) * 0.3

    def run(dtype, native):
        with monkeypatch.context() as m:
            if native:
                _native(m)
            gg, dd = copy.deepcopy(g).to(dtype), copy.deepcopy(d).to(dtype)  # spectral norm state
            fake = gg(mel.to(dtype))
            logits, feats = dd.score(fake + audio.to(dtype))
            loss = sum((lg**2).mean() for lg in logits) + sum(
                (f**2).mean() for fm in feats for f in fm
            )
            loss.backward()
            return [fake.detach()] + [p.grad for p in [*gg.parameters(), *dd.parameters()]]

    truth = run(torch.float64, True)
    ours, theirs = run(torch.float32, False), run(torch.float32, True)
    for o, t, r in zip(ours, theirs, truth, strict=True):
        err_ours, err_theirs = _rel(o.double(), r), _rel(t.double(), r)
        assert err_ours < max(20 * err_theirs, 1e-4), (err_ours, err_theirs)


def test_inside_torch_compile_pytorchs_own_convolutions_are_traced(monkeypatch):
    """torch.compile lays out and fuses convolutions itself (and the phase bookkeeping's
    shape arithmetic would not trace): while compiling, the plain modules run."""
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert not cpu_conv._fast_path(torch.randn(1, 2, 3))


def test_modules_with_forward_hooks_are_called_not_bypassed():
    """torch's old weight norm recomputes ``weight`` in a forward pre-hook (the reference's
    modules use it): reading ``m.weight`` directly would use a stale weight."""
    import warnings

    from trainer.models.cpu_conv import apply_grouped

    for conv in (nn.Conv1d(8, 8, 5, padding=2), nn.Conv1d(8, 16, 41, 2, padding=20, groups=4)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the old API is deprecated, not gone
            conv = torch.nn.utils.weight_norm(conv)
        x = torch.randn(2, 8, 64)
        conv(x)  # weight computed from the current g, v
        with torch.no_grad():
            conv.weight_v.mul_(2.0).add_(0.5)  # the next call's pre-hook recomputes weight
        fn = apply_grouped if conv.groups > 1 else apply_conv
        with torch.no_grad():
            assert _rel(fn(conv, x), conv(x)) < 1e-6
