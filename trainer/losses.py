"""Losses as pure functions (HiFi-GAN, FastSpeech 2, STFT reconstruction) plus ``LossTracker``.

Depends on torch and the config only; a mel reconstruction loss takes a ``mel_fn`` callable so
this module does not import the audio code.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from trainer.config.schema import RECON_LOSSES, LossConfig

Resolution = tuple[int, int, int]  # (n_fft, hop, win)
DEFAULT_RESOLUTIONS: tuple[Resolution, ...] = (
    (512, 128, 512),
    (1024, 256, 1024),
    (2048, 512, 2048),
)
# Floor on |STFT|^2 before sqrt/log: keeps gradients finite on silent frames (as Parallel WaveGAN).
MAG_EPS = 1e-7


# ---------------------------------------------------------------------------- elementary


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def mse_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


def binary_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean BCE of ``sigmoid(logits)`` against ``target`` (computed stably from the logits)."""
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


# ---------------------------------------------------------------------------- FastSpeech 2


class FastSpeech2Loss(NamedTuple):
    total: torch.Tensor
    mel: torch.Tensor
    duration: torch.Tensor
    pitch: torch.Tensor
    energy: torch.Tensor


def _masked(
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    if mask is None:
        return loss(pred, target)
    # mask is [B, T] (True = valid); broadcast over any trailing feature dims.
    m = mask.reshape(mask.shape + (1,) * (pred.dim() - mask.dim()))
    m = m.expand_as(pred)
    return loss(pred[m], target[m])


def fastspeech2_loss(
    mel_pred: torch.Tensor,
    mel_target: torch.Tensor,
    log_duration_pred: torch.Tensor,
    duration_target: torch.Tensor,
    pitch_pred: torch.Tensor,
    pitch_target: torch.Tensor,
    energy_pred: torch.Tensor,
    energy_target: torch.Tensor,
    *,
    mel_weight: float = 1.0,
    duration_weight: float = 0.1,
    pitch_weight: float = 0.1,
    energy_weight: float = 0.1,
    src_mask: torch.Tensor | None = None,
    mel_mask: torch.Tensor | None = None,
) -> FastSpeech2Loss:
    """Mel L1 + duration MSE against log(d + 1) + pitch MSE + energy MSE, weighted.

    ``src_mask`` ([B, phonemes]) masks duration/pitch/energy and ``mel_mask`` ([B, frames]) the mel;
    True marks valid positions. Pitch/energy are phoneme-level (use ``src_mask``).
    """
    log_d_target = torch.log(duration_target.to(log_duration_pred.dtype) + 1.0)
    mel = _masked(l1_loss, mel_pred, mel_target, mel_mask)
    dur = _masked(mse_loss, log_duration_pred, log_d_target, src_mask)
    pitch = _masked(mse_loss, pitch_pred, pitch_target, src_mask)
    energy = _masked(mse_loss, energy_pred, energy_target, src_mask)
    total = mel_weight * mel + duration_weight * dur + pitch_weight * pitch + energy_weight * energy
    return FastSpeech2Loss(total, mel, dur, pitch, energy)


# ---------------------------------------------------------------------------- STFT losses

_WINDOWS: dict[tuple[int, torch.device, torch.dtype], torch.Tensor] = {}


def hann_window(
    win_length: int, device: torch.device, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A periodic Hann window, cached per (length, device, dtype) so steps do not rebuild it."""
    key = (win_length, device, dtype)
    w = _WINDOWS.get(key)
    if w is None:
        w = torch.hann_window(win_length, device=device, dtype=dtype)
        _WINDOWS[key] = w
    return w


def _as_batch(x: torch.Tensor, name: str) -> torch.Tensor:
    """[B, 1, T] or [B, T] -> float32 [B, T]."""
    if x.dim() == 3:
        if x.shape[1] != 1:
            raise ValueError(f"{name}: expected [B, 1, T] or [B, T] audio, got {tuple(x.shape)}")
        x = x.squeeze(1)
    elif x.dim() != 2:
        raise ValueError(f"{name}: expected [B, 1, T] or [B, T] audio, got {tuple(x.shape)}")
    return x.float()


def _pair(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p, t = _as_batch(pred, "pred"), _as_batch(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return p, t


def _stft_power(x: torch.Tensor, res: Sequence[int]) -> torch.Tensor:
    """|STFT|^2 of float32 [B, T] audio, floored at MAG_EPS: [B, freq, frames]."""
    n_fft, hop, win = (int(v) for v in res)
    if x.shape[-1] <= n_fft // 2:
        raise ValueError(
            f"audio of {x.shape[-1]} samples is too short for an STFT with n_fft={n_fft} "
            f"(needs more than {n_fft // 2}); use shorter loss.stft_resolutions"
        )
    spec = torch.stft(x, n_fft, hop, win, hann_window(win, x.device), return_complex=True)
    spec = torch.view_as_real(spec)
    return (spec[..., 0] ** 2 + spec[..., 1] ** 2).clamp_min(MAG_EPS)


def _stft_pair(
    pred: torch.Tensor, target: torch.Tensor, res: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    # One STFT over the concatenated batch: half the launches of two calls.
    b = pred.shape[0]
    power = _stft_power(torch.cat([pred, target.detach()], 0), res)
    return power[:b], power[b:]


def _no_autocast(x: torch.Tensor) -> torch.autocast:
    return torch.autocast(device_type=x.device.type, enabled=False)


def multi_resolution_stft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[Sequence[int]] = DEFAULT_RESOLUTIONS,
) -> torch.Tensor:
    """L1 between STFT magnitudes, averaged over (n_fft, hop, win) resolutions; float32 always."""
    p, t = _pair(pred, target)
    with _no_autocast(p):
        total = p.new_zeros(())
        for res in resolutions:
            pp, tp = _stft_pair(p, t, res)
            total = total + F.l1_loss(pp.sqrt(), tp.sqrt())
        return total / len(resolutions)


def pwg_stft_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    resolutions: Sequence[Sequence[int]] = DEFAULT_RESOLUTIONS,
) -> torch.Tensor:
    """Parallel WaveGAN's loss: spectral convergence + log-magnitude L1, averaged over resolutions."""
    p, t = _pair(pred, target)
    with _no_autocast(p):
        total = p.new_zeros(())
        for res in resolutions:
            pp, tp = _stft_pair(p, t, res)
            pm, tm = pp.sqrt(), tp.sqrt()
            sc = torch.linalg.vector_norm(tm - pm) / torch.linalg.vector_norm(tm)
            # log|S| = 0.5 * log|S|^2: skips a sqrt in the graph.
            log_mag = 0.5 * F.l1_loss(pp.log(), tp.log())
            total = total + sc + log_mag
        return total / len(resolutions)


def mel_l1_loss(
    pred: torch.Tensor, target: torch.Tensor, mel_fn: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The original HiFi-GAN reconstruction loss: L1 between ``mel_fn`` of each ([B, T] float32)."""
    p, t = _pair(pred, target)
    with _no_autocast(p):
        with torch.no_grad():
            tm = mel_fn(t)
        return F.l1_loss(mel_fn(p), tm)


class ReconstructionLoss(nn.Module):
    """The configured reconstruction loss (``cfg.recon``): ``loss(pred, target) -> scalar``."""

    def __init__(
        self, cfg: LossConfig, mel_fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> None:
        super().__init__()
        if cfg.recon not in RECON_LOSSES:
            raise ValueError(
                f"loss.recon must be one of {', '.join(RECON_LOSSES)}; got {cfg.recon!r}"
            )
        if cfg.recon == "mel" and mel_fn is None:
            raise ValueError("loss.recon = 'mel' needs a mel_fn (wav [B, T] -> mel)")
        self.name = cfg.recon
        self.resolutions = tuple(tuple(r) for r in cfg.stft_resolutions)
        self.mel_fn = mel_fn

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.name == "mrstft":
            return multi_resolution_stft_loss(pred, target, self.resolutions)
        if self.name == "pwg":
            return pwg_stft_loss(pred, target, self.resolutions)
        assert self.mel_fn is not None
        return mel_l1_loss(pred, target, self.mel_fn)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, resolutions={self.resolutions}"


# ---------------------------------------------------------------------------- HiFi-GAN adversarial


class DiscriminatorLoss(NamedTuple):
    total: torch.Tensor
    parts: list[torch.Tensor]  # per sub-discriminator: mean((1-D(real))^2) + mean(D(fake)^2)


class GeneratorLoss(NamedTuple):
    total: torch.Tensor
    recon: torch.Tensor
    adv: torch.Tensor
    fm: torch.Tensor


class _L1(torch.autograd.Function):
    """``F.l1_loss(pred, target)`` in float32 for a constant ``target``, with a gradient laid
    out as ``pred`` is: ``l1_loss``'s own backward returns ``[B, C, T]`` memory even for a
    channels-last ``pred``, and a gradient in another layout than its activations slows
    every elementwise op of the backward (~0.3 s of a V1 CPU step: models/cpu_conv.py).
    Saves nothing but its inputs, as ``l1_loss`` does."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, pred: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(pred, target)
        return (pred.float() - target.float()).abs().sum() / pred.numel()

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        pred, target = ctx.saved_tensors  # type: ignore[attr-defined]
        scale = (grad / pred.numel()).to(pred.dtype)
        return torch.sign(pred - target).mul_(scale), None


def _l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if pred.shape != target.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
    return _L1.apply(pred, target)


def feature_matching_loss(
    real_feats: Sequence[Sequence[torch.Tensor]], fake_feats: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """L1 between real and fake feature maps, averaged over every layer of every discriminator.

    Real feature maps are constants (detached): no gradient reaches the real branch.
    """
    if len(real_feats) != len(fake_feats):
        raise ValueError(
            f"{len(real_feats)} real vs {len(fake_feats)} fake discriminator feature lists"
        )
    losses = []
    for rd, fd in zip(real_feats, fake_feats, strict=True):
        if len(rd) != len(fd):
            raise ValueError(f"discriminator has {len(rd)} real vs {len(fd)} fake feature maps")
        losses.extend(_l1(f, r.detach()) for r, f in zip(rd, fd, strict=True))
    if not losses:
        raise ValueError("feature_matching_loss needs at least one feature map")
    return torch.stack(losses).mean()


def hifigan_discriminator_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor]
) -> DiscriminatorLoss:
    """Least-squares GAN loss (real -> 1, fake -> 0), averaged over sub-discriminators."""
    if len(real_logits) != len(fake_logits) or not real_logits:
        raise ValueError(
            f"need matching non-empty logit lists, got {len(real_logits)} and {len(fake_logits)}"
        )
    parts = [
        torch.mean((1 - r.float()) ** 2) + torch.mean(f.float() ** 2)
        for r, f in zip(real_logits, fake_logits, strict=True)
    ]
    return DiscriminatorLoss(torch.stack(parts).mean(), parts)


def generator_adversarial_loss(fake_logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """Least-squares generator loss: mean over sub-discriminators of mean((1 - D(fake))^2)."""
    if not fake_logits:
        raise ValueError("generator_adversarial_loss needs at least one discriminator output")
    return torch.stack([torch.mean((1 - f.float()) ** 2) for f in fake_logits]).mean()


def hifigan_generator_loss(
    recon: torch.Tensor,
    fake_logits: Sequence[torch.Tensor],
    real_feats: Sequence[Sequence[torch.Tensor]],
    fake_feats: Sequence[Sequence[torch.Tensor]],
    lambda_recon: float = 45.0,
    lambda_adv: float = 1.0,
    lambda_fm: float = 2.0,
) -> GeneratorLoss:
    """``lambda_recon * recon + lambda_adv * adv + lambda_fm * fm``, with every component."""
    adv = generator_adversarial_loss(fake_logits)
    fm = feature_matching_loss(real_feats, fake_feats)
    total = lambda_recon * recon + lambda_adv * adv + lambda_fm * fm
    return GeneratorLoss(total, recon, adv, fm)


# ---------------------------------------------------------------------------- tracking


class LossTracker:
    """Per-component averages: running (since the last ``clear()``) and over the last ``window`` updates.

    Tensors are kept on their device and only turned into floats when read, so ``update`` never
    forces a device sync. Components may differ between updates; each is averaged over its own count.
    """

    def __init__(self, window: int = 100) -> None:
        if window < 1:
            raise ValueError(f"LossTracker window must be >= 1, got {window}")
        self.window = window
        self._sum: dict[str, torch.Tensor | float] = {}
        self._count: dict[str, int] = {}
        self._recent: dict[str, deque[torch.Tensor | float]] = {}

    def update(self, **components: torch.Tensor | float) -> None:
        """Add one value per named component (scalar tensors or numbers)."""
        for k, v in components.items():
            if isinstance(v, torch.Tensor):
                if v.numel() != 1:
                    raise ValueError(
                        f"LossTracker.update: '{k}' must be a scalar, got shape {tuple(v.shape)}"
                    )
                v = v.detach().float().reshape(())  # fp32 sums, even for bf16 losses
            else:
                v = float(v)
            self._sum[k] = self._sum.get(k, 0.0) + v
            self._count[k] = self._count.get(k, 0) + 1
            q = self._recent.get(k)
            if q is None:
                q = self._recent[k] = deque(maxlen=self.window)
            q.append(v)

    def running(self) -> dict[str, float]:
        """Average of each component since the last ``clear()``."""
        return {k: _to_float(s) / self._count[k] for k, s in self._sum.items()}

    def windowed(self) -> dict[str, float]:
        """Average of each component over its last ``window`` updates."""
        return {k: _mean(q) for k, q in self._recent.items() if q}

    def counts(self) -> dict[str, int]:
        """Updates per component since the last ``clear()``."""
        return dict(self._count)

    def clear(self, window: bool = False) -> None:
        """Start a new epoch: reset running averages (and the window too when ``window``)."""
        self._sum.clear()
        self._count.clear()
        if window:
            self._recent.clear()


def _to_float(v: torch.Tensor | float) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def _mean(values: deque[torch.Tensor | float]) -> float:
    # One stack + one sync for all tensor entries instead of one .item() per entry.
    tensors = [v for v in values if isinstance(v, torch.Tensor)]
    total = math.fsum(v for v in values if not isinstance(v, torch.Tensor))
    if tensors:
        dev = tensors[0].device
        total += float(torch.stack([t.to(dev) for t in tensors]).sum().item())
    return total / len(values)


def as_floats(components: Mapping[str, torch.Tensor | float]) -> dict[str, float]:
    """Scalar tensors -> plain floats (one sync per value), e.g. for an event record."""
    return {k: _to_float(v) for k, v in components.items()}
