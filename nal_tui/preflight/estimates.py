"""Torch-free estimates: parameters, memory for a batch, disk for checkpoints."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nal_tui.preflight.report import (
    BYTES_CKPT_PER_PARAM,
    BYTES_STATE_PER_PARAM,
    EVENT_LINE_BYTES,
    FRAMEWORK_OVERHEAD,
    SAMPLE_SECONDS,
)

# ------------------------------------------------------------------- estimates


def _conv(cin: int, cout: int, k: int, groups: int = 1) -> int:
    return cin * cout * k // groups + cout


def estimate_params(cfg: Any) -> dict[str, int]:
    """Parameter counts computed from the config alone (no torch), per model part."""
    g, d = cfg.generator, cfg.discriminator
    ch = g.upsample_initial_channel
    gen = _conv(cfg.audio.n_mels, ch, 7)
    for u_k in g.upsample_kernel_sizes:
        gen += _conv(ch, ch // 2, u_k)
        ch //= 2
        for k, dil in zip(g.resblock_kernel_sizes, g.resblock_dilation_sizes, strict=False):
            gen += _conv(ch, ch, k) * len(dil) * (2 if g.resblock == "1" else 1)
    gen += _conv(ch, 1, 7)
    mpd, cin = 0, 1
    for c in d.mpd_channels:
        mpd += _conv(cin, c, 5)
        cin = c
    mpd = (mpd + _conv(cin, 1, 3)) * len(d.periods)
    groups = (1, 4, 16, 16, 16, 16)
    msd, cin = 0, 1
    for i, c in enumerate(d.msd_channels):
        k = 15 if i == 0 else (5 if i == len(d.msd_channels) - 1 else 41)
        gr = groups[i] if i < len(groups) and i != len(d.msd_channels) - 1 else 1
        gr = _gcd3(gr, cin, c)
        msd += _conv(cin, c, k, gr)
        cin = c
    msd = (msd + _conv(cin, 1, 3)) * d.msd_scales
    return {"generator": gen, "mpd": mpd, "msd": msd}


def _gcd3(a: int, b: int, c: int) -> int:
    return math.gcd(a, math.gcd(b, c))


def estimate_memory(cfg: Any, params: int) -> int:
    """Training memory in bytes, on the high side.

    state = params x 16 B (weights, grads, Adam m and v). Activations per batch item, in
    floats: generator: sum over upsampling stages of channels x length x (2 + 2 x convs in
    the stage's resblocks); each discriminator pass: 2 x sum over layers of channels x
    length (conv output + leaky ReLU), MPD strided by 3 per layer, MSD by its strides over
    1, 1/2, 1/4... of the audio; 4 discriminator passes (real and fake, D and G steps).
    activations x 4 B x 2 (their gradients) x batch_size, plus a fixed 512 MiB overhead.
    """
    a, g, d = cfg.audio, cfg.generator, cfg.discriminator
    t = a.segment_size
    n_convs = sum(len(dil) * (2 if g.resblock == "1" else 1) for dil in g.resblock_dilation_sizes)
    ch, length, gen = g.upsample_initial_channel, t // a.hop_length, 0.0
    for r in g.upsample_rates:
        ch, length = ch // 2, length * r
        gen += ch * length * (2 + 2 * n_convs)
    mpd = 0.0
    for p in d.periods:
        n = -(-t // p) * p  # padded to a multiple of the period
        for i, c in enumerate(d.mpd_channels):
            n = n / 3 if i < len(d.mpd_channels) - 1 else n
            mpd += 2 * c * n
    msd = 0.0
    strides = (1, 2, 2, 4, 4, 1, 1)
    for s in range(d.msd_scales):
        n = t / 2**s
        for i, c in enumerate(d.msd_channels):
            n = n / (strides[i] if i < len(strides) else 1)
            msd += 2 * c * n
    act_floats = gen + 4 * (mpd + msd)
    return int(
        params * BYTES_STATE_PER_PARAM
        + act_floats * 4 * 2 * cfg.train.batch_size
        + FRAMEWORK_OVERHEAD
    )


@dataclass(frozen=True)
class DiskEstimate:
    checkpoint: int  # one checkpoint, bytes
    required: int  # keep_last + 1 checkpoints (one being written) + samples + logs
    with_milestones: int  # required + every milestone checkpoint kept to the target step
    samples: int
    logs: int


def estimate_disk(cfg: Any, params: int) -> DiskEstimate:
    """Disk the run will use: checkpoints at params x 12 B, samples, event log."""
    ck = params * BYTES_CKPT_PER_PARAM
    steps = cfg.train.max_steps
    n_vals = steps // cfg.log.val_every
    samples = int(n_vals * cfg.log.val_samples * SAMPLE_SECONDS * cfg.audio.sample_rate * 2)
    logs = (steps // cfg.log.log_every + 1) * EVENT_LINE_BYTES
    required = (cfg.checkpoint.keep_last + 1) * ck + samples + logs
    ms = steps // cfg.checkpoint.milestone_every if cfg.checkpoint.milestone_every else 0
    return DiskEstimate(ck, required, required + ms * ck, samples, logs)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _human_count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"
