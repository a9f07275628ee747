"""Losses: hand-computed values, gradients, weighting, STFT variants and LossTracker."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.config.schema import LossConfig
from trainer.losses import (
    LossTracker,
    ReconstructionLoss,
    binary_cross_entropy,
    fastspeech2_loss,
    feature_matching_loss,
    hann_window,
    hifigan_discriminator_loss,
    hifigan_generator_loss,
    l1_loss,
    mse_loss,
    multi_resolution_stft_loss,
)

SMALL_RES = ((128, 32, 128), (256, 64, 256))


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


def _wave(seed: int, n: int = 2048, b: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 1, n, generator=g) * 0.3


def test_l1_and_mse_hand_values() -> None:
    a, b = t(1, 2, 3), t(1.5, 2.5, 2.5)
    assert l1_loss(a, b).item() == pytest.approx(0.5)
    assert mse_loss(a, b).item() == pytest.approx(0.25)


def test_bce_takes_logits() -> None:
    logits, target = t(0.0, 2.0), t(1.0, 0.0)
    # sigmoid(0) = 0.5 -> -log 0.5; sigmoid(2) vs 0 -> -log(1 - sigmoid(2)) = log(1 + e^2)
    expected = (math.log(2) + math.log(1 + math.e**2)) / 2
    assert binary_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    # Large logits stay finite (computed from logits, not from a saturated sigmoid).
    assert math.isfinite(binary_cross_entropy(t(100.0), t(0.0)).item())


def test_fastspeech2_components_and_weights() -> None:
    mel_p, mel_t = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)  # L1 = 1
    dur_t = t(0, 1, 3).unsqueeze(0)
    log_d_p = torch.zeros(1, 3)  # MSE vs log(d+1) = (0 + log2^2 + log4^2) / 3
    pitch_p, pitch_t = t(1, 2, 3).unsqueeze(0), t(1, 2, 5).unsqueeze(0)  # 4/3
    en_p, en_t = t(0, 0, 0).unsqueeze(0), t(1, 1, 1).unsqueeze(0)  # 1
    out = fastspeech2_loss(mel_p, mel_t, log_d_p, dur_t, pitch_p, pitch_t, en_p, en_t)
    dur = (math.log(2) ** 2 + math.log(4) ** 2) / 3
    assert out.mel.item() == pytest.approx(1.0)
    assert out.duration.item() == pytest.approx(dur, rel=1e-6)
    assert out.pitch.item() == pytest.approx(4 / 3, rel=1e-6)
    assert out.energy.item() == pytest.approx(1.0)
    assert out.total.item() == pytest.approx(1.0 + 0.1 * (dur + 4 / 3 + 1.0), rel=1e-6)
    heavier = fastspeech2_loss(
        mel_p, mel_t, log_d_p, dur_t, pitch_p, pitch_t, en_p, en_t, pitch_weight=1.1
    )
    assert (heavier.total - out.total).item() == pytest.approx(4 / 3, rel=1e-5)


def test_fastspeech2_mask_ignores_padding() -> None:
    mask = torch.tensor([[True, True, False]])
    pred, target = t(1, 2, 100).unsqueeze(0), t(1, 2, 0).unsqueeze(0)
    out = fastspeech2_loss(
        torch.zeros(1, 3, 2),
        torch.zeros(1, 3, 2),
        torch.zeros(1, 3),
        torch.zeros(1, 3),
        pred,
        target,
        pred,
        target,
        src_mask=mask,
    )
    assert out.pitch.item() == 0.0 and out.energy.item() == 0.0


def test_discriminator_loss_least_squares() -> None:
    real = [t(1.0, 1.0), t(0.0, 2.0)]
    fake = [t(0.0, 0.0), t(1.0, -1.0)]
    out = hifigan_discriminator_loss(real, fake)
    # D0: 0 + 0 = 0; D1: mean(1, 1) + mean(1, 1) = 2
    assert [p.item() for p in out.parts] == pytest.approx([0.0, 2.0])
    assert out.total.item() == pytest.approx(1.0)


def test_feature_matching_hand_value_and_no_grad_to_real() -> None:
    real = [[t(1.0, 1.0).requires_grad_()], [t(0.0).requires_grad_(), t(2.0, 2.0).requires_grad_()]]
    fake = [[t(2.0, 0.0).requires_grad_()], [t(0.5).requires_grad_(), t(2.0, 3.0).requires_grad_()]]
    fm = feature_matching_loss(real, fake)
    assert fm.item() == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    fm.backward()
    assert all(f.grad is not None for d in fake for f in d)
    assert all(r.grad is None for d in real for r in d)


def _gen_inputs() -> tuple[
    torch.Tensor, list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]
]:
    recon = torch.tensor(0.2, requires_grad=True)
    fake_logits = [t(0.0, 1.0).requires_grad_(), t(0.5).requires_grad_()]
    real_feats = [[t(1.0, 2.0)], [t(0.0)]]
    fake_feats = [[t(1.5, 2.0).requires_grad_()], [t(1.0).requires_grad_()]]
    return recon, fake_logits, real_feats, fake_feats


def test_generator_loss_components() -> None:
    recon, fl, rf, ff = _gen_inputs()
    out = hifigan_generator_loss(recon, fl, rf, ff)
    adv = (0.5 + 0.25) / 2
    fm = (0.25 + 1.0) / 2
    assert out.adv.item() == pytest.approx(adv)
    assert out.fm.item() == pytest.approx(fm)
    assert out.recon.item() == pytest.approx(0.2)
    assert out.total.item() == pytest.approx(45 * 0.2 + adv + 2 * fm, rel=1e-6)
    out.total.backward()
    assert recon.grad.item() == pytest.approx(45.0)
    assert all(x.grad is not None for x in fl)


def test_generator_loss_weights_actually_weight() -> None:
    recon, fl, rf, ff = _gen_inputs()
    base = hifigan_generator_loss(recon, fl, rf, ff)
    plus_one = hifigan_generator_loss(recon, fl, rf, ff, lambda_fm=3.0)
    assert (plus_one.total - base.total).item() == pytest.approx(base.fm.item(), rel=1e-6)
    doubled = hifigan_generator_loss(recon, fl, rf, ff, lambda_fm=4.0)  # 2 -> 4 adds 2 * fm
    assert (doubled.total - base.total).item() == pytest.approx(2 * base.fm.item(), rel=1e-6)
    more_adv = hifigan_generator_loss(recon, fl, rf, ff, lambda_adv=2.0)
    assert (more_adv.total - base.total).item() == pytest.approx(base.adv.item(), rel=1e-6)
    no_recon = hifigan_generator_loss(recon, fl, rf, ff, lambda_recon=0.0)
    assert (base.total - no_recon.total).item() == pytest.approx(45 * 0.2, rel=1e-6)


def test_mrstft_zero_for_identical_positive_otherwise() -> None:
    x = _wave(0)
    assert multi_resolution_stft_loss(x, x.clone(), SMALL_RES).item() == 0.0
    y = _wave(1)
    assert multi_resolution_stft_loss(x, y, SMALL_RES).item() > 0.01
    # [B, T] and [B, 1, T] are the same loss.
    a = multi_resolution_stft_loss(x, y, SMALL_RES)
    b = multi_resolution_stft_loss(x.squeeze(1), y.squeeze(1), SMALL_RES)
    assert a.item() == pytest.approx(b.item())


def test_mrstft_averages_over_resolutions() -> None:
    x, y = _wave(2), _wave(3)
    each = [multi_resolution_stft_loss(x, y, (r,)).item() for r in SMALL_RES]
    both = multi_resolution_stft_loss(x, y, SMALL_RES).item()
    assert both == pytest.approx(sum(each) / 2, rel=1e-6)


def test_mrstft_default_resolutions_gradient() -> None:
    x = _wave(4, n=4096).requires_grad_()
    loss = multi_resolution_stft_loss(x, _wave(5, n=4096))
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_mrstft_float32_under_bf16_autocast() -> None:
    x, y = _wave(6).bfloat16(), _wave(7).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = multi_resolution_stft_loss(x, y, SMALL_RES)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(
        multi_resolution_stft_loss(x.float(), y.float(), SMALL_RES).item()
    )


def test_stft_loss_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        multi_resolution_stft_loss(torch.zeros(1, 1, 2048), torch.zeros(1, 1, 1024), SMALL_RES)
    with pytest.raises(ValueError, match="too short"):
        multi_resolution_stft_loss(torch.zeros(1, 100), torch.zeros(1, 100), SMALL_RES)
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        multi_resolution_stft_loss(torch.zeros(1, 2, 2048), torch.zeros(1, 2, 2048), SMALL_RES)


def test_hann_window_is_cached() -> None:
    a = hann_window(256, torch.device("cpu"))
    assert a is hann_window(256, torch.device("cpu"))
    assert torch.allclose(a, torch.hann_window(256))


def _fake_mel(wav: torch.Tensor) -> torch.Tensor:
    """A stand-in mel: log power STFT pooled into 8 bands."""
    spec = torch.stft(wav, 256, 64, 256, torch.hann_window(256), return_complex=True).abs() ** 2
    return torch.log(
        torch.nn.functional.avg_pool1d(spec.transpose(1, 2), 16).transpose(1, 2) + 1e-5
    )


@pytest.mark.parametrize("name", ["mrstft", "pwg", "mel"])
def test_reconstruction_loss_variants(name: str) -> None:
    cfg = LossConfig(recon=name, stft_resolutions=SMALL_RES)
    loss = ReconstructionLoss(cfg, mel_fn=_fake_mel if name == "mel" else None)
    assert loss.name == name
    x = _wave(8)
    assert loss(x, x.clone()).item() == pytest.approx(0.0, abs=1e-6)
    pred = _wave(9).requires_grad_()
    val = loss(pred, x)
    assert val.dim() == 0 and val.item() > 0.01
    val.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_reconstruction_variants_differ_and_mel_needs_fn() -> None:
    x, y = _wave(10), _wave(11)
    vals = {
        n: ReconstructionLoss(LossConfig(recon=n, stft_resolutions=SMALL_RES))(x, y).item()
        for n in ("mrstft", "pwg")
    }
    assert vals["mrstft"] != pytest.approx(vals["pwg"])
    with pytest.raises(ValueError, match="mel_fn"):
        ReconstructionLoss(LossConfig(recon="mel"))


def test_pwg_hand_value_single_resolution() -> None:
    # Scaling the target by 2 doubles every magnitude (above the eps floor):
    # SC = ||S - 2S|| / ||2S|| = 0.5 and log-mag L1 = log 2.
    x = _wave(12, n=1024, b=1)
    cfg = LossConfig(recon="pwg", stft_resolutions=((128, 32, 128),))
    val = ReconstructionLoss(cfg)(x, 2 * x).item()
    assert val == pytest.approx(0.5 + math.log(2), rel=1e-3)


def test_loss_tracker_running_windowed_clear() -> None:
    tr = LossTracker(window=2)
    tr.update(g=1.0, d=torch.tensor(10.0))
    tr.update(g=2.0, d=torch.tensor(20.0))
    tr.update(g=6.0)
    assert tr.running() == pytest.approx({"g": 3.0, "d": 15.0})
    assert tr.windowed() == pytest.approx({"g": 4.0, "d": 15.0})
    assert tr.counts() == {"g": 3, "d": 2}
    tr.clear()
    assert tr.running() == {}
    assert tr.windowed() == pytest.approx({"g": 4.0, "d": 15.0})  # window spans epochs
    tr.update(g=0.0)
    assert tr.running() == pytest.approx({"g": 0.0})
    assert tr.windowed()["g"] == pytest.approx(3.0)
    tr.clear(window=True)
    assert tr.windowed() == {}


def test_loss_tracker_detaches_and_rejects_non_scalars() -> None:
    tr = LossTracker()
    x = torch.tensor(3.0, requires_grad=True)
    tr.update(loss=x * 2)
    assert tr.running() == {"loss": 6.0}
    with pytest.raises(ValueError, match="'loss' must be a scalar"):
        tr.update(loss=torch.ones(2))
    with pytest.raises(ValueError):
        LossTracker(window=0)


def test_feature_matching_l1_matches_l1_loss_and_keeps_the_gradients_layout():
    """The feature-matching L1 is ``F.l1_loss`` (value and gradient), and a channels-last
    feature map gets a channels-last gradient (l1_loss's own is [B, C, T] memory)."""
    from trainer.losses import _l1

    torch.manual_seed(0)
    target = torch.randn(2, 64, 5).transpose(1, 2)
    base = torch.randn(2, 64, 5).transpose(1, 2)  # [B, C, T] with [B, T, C] memory
    ours = base.clone().requires_grad_(True)
    theirs = base.clone().requires_grad_(True)
    feat = ours * 1.0  # not a leaf: a leaf's gradient is laid out as the leaf anyway
    seen = []
    feat.register_hook(lambda g: seen.append(g.stride()))
    a, b = _l1(feat, target), F.l1_loss(theirs, target)
    a.backward()
    b.backward()
    assert torch.allclose(a, b, rtol=1e-6)
    assert torch.allclose(ours.grad, theirs.grad)
    assert seen == [feat.stride()]
    with pytest.raises(ValueError, match="shapes differ"):
        _l1(ours, target[:, :2])
