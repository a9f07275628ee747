"""HiFi-GAN discriminators: multi-period (MPD), multi-scale (MSD) and both behind one interface.

Every sub-discriminator maps audio [B, 1, T] to ``(logits [B, N], feats)``, where ``feats`` is the
list of its layer outputs (post-activation, then the final conv) used by feature matching.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from trainer.config.schema import DiscriminatorConfig

from .cpu_conv import apply_conv, apply_grouped
from .generator import LRELU_SLOPE, get_padding

Feats = list[torch.Tensor]

# MPD: every conv but the last strides by MPD_STRIDE along time.
MPD_KERNEL, MPD_STRIDE = 5, 3
# MSD (reference): first conv k=15, middle convs k=41 with these strides/groups, last conv k=5.
MSD_FIRST_KERNEL, MSD_MID_KERNEL, MSD_LAST_KERNEL = 15, 41, 5
MSD_MID_STRIDES = (2, 2, 4, 4, 1)
MSD_MID_GROUPS = (4, 16, 16, 16, 16)


class PeriodDiscriminator(nn.Module):
    """Folds audio into [B, 1, T/p, p] and applies (k x 1) 2-D convs, so each column is one phase."""

    def __init__(self, period: int, channels: tuple[int, ...]) -> None:
        super().__init__()
        self.period = period
        pad = (get_padding(MPD_KERNEL), 0)
        layers = []
        cin = 1
        for i, cout in enumerate(channels):
            stride = (MPD_STRIDE, 1) if i < len(channels) - 1 else (1, 1)
            layers.append(weight_norm(nn.Conv2d(cin, cout, (MPD_KERNEL, 1), stride, padding=pad)))
            cin = cout
        self.convs = nn.ModuleList(layers)
        self.conv_post = weight_norm(nn.Conv2d(cin, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Feats]:
        b, c, t = x.shape
        if t % self.period:
            # Reflect-pad up to a multiple of the period (as the reference does).
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        feats: Feats = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            feats.append(x)
        x = self.conv_post(x)
        feats.append(x)
        return torch.flatten(x, 1, -1), feats


def _groups(ref: int, cin: int, cout: int) -> int:
    """The reference group count, reduced until it divides both channel counts."""
    return math.gcd(ref, math.gcd(cin, cout))


class ScaleDiscriminator(nn.Module):
    """1-D strided, grouped convs over raw or average-pooled audio."""

    def __init__(self, channels: tuple[int, ...], use_spectral_norm: bool = False) -> None:
        super().__init__()
        norm = spectral_norm if use_spectral_norm else weight_norm
        n = len(channels)
        layers = [
            norm(
                nn.Conv1d(
                    1, channels[0], MSD_FIRST_KERNEL, 1, padding=get_padding(MSD_FIRST_KERNEL)
                )
            )
        ]
        for i in range(1, n):
            cin, cout = channels[i - 1], channels[i]
            if i == n - 1:
                conv = nn.Conv1d(
                    cin, cout, MSD_LAST_KERNEL, 1, padding=get_padding(MSD_LAST_KERNEL)
                )
            else:
                j = i - 1
                stride = MSD_MID_STRIDES[j] if j < len(MSD_MID_STRIDES) else 1
                ref_groups = MSD_MID_GROUPS[j] if j < len(MSD_MID_GROUPS) else MSD_MID_GROUPS[-1]
                conv = nn.Conv1d(
                    cin,
                    cout,
                    MSD_MID_KERNEL,
                    stride,
                    groups=_groups(ref_groups, cin, cout),
                    padding=get_padding(MSD_MID_KERNEL),
                )
            layers.append(norm(conv))
        self.convs = nn.ModuleList(layers)
        self.conv_post = norm(nn.Conv1d(channels[-1], 1, 3, 1, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Feats]:
        feats: Feats = []
        for conv in self.convs:
            if conv.groups > 1:  # the k=41 layers: see cpu_conv.py
                y = apply_grouped(conv, x)
            else:  # channels-last on a CPU, as the grouped layers' outputs
                y = apply_conv(conv, x)
            x = F.leaky_relu(y, LRELU_SLOPE)
            feats.append(x)
        x = apply_conv(self.conv_post, x)
        feats.append(x)
        return torch.flatten(x, 1, -1), feats


class MultiPeriodDiscriminator(nn.Module):
    """One PeriodDiscriminator per period in ``cfg.periods``."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, cfg.mpd_channels) for p in cfg.periods
        )

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[Feats]]:
        logits, feats = [], []
        for d in self.discriminators:
            lg, fm = d(x)
            logits.append(lg)
            feats.append(fm)
        return logits, feats


class MultiScaleDiscriminator(nn.Module):
    """``cfg.msd_scales`` ScaleDiscriminators on raw audio, then 2x, 4x, ... average-pooled audio.

    The first (raw-scale) one uses spectral norm, the others weight norm, as in the paper.
    """

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(cfg.msd_channels, use_spectral_norm=(i == 0))
            for i in range(cfg.msd_scales)
        )
        self.pool = nn.AvgPool1d(4, 2, padding=2)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[Feats]]:
        logits, feats = [], []
        for i, d in enumerate(self.discriminators):
            if i:
                x = self.pool(x)
            lg, fm = d(x)
            logits.append(lg)
            feats.append(fm)
        return logits, feats


class Discriminators(nn.Module):
    """MPD + MSD with one interface; lists run MPD's sub-discriminators first, then MSD's."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.mpd = MultiPeriodDiscriminator(cfg)
        self.msd = MultiScaleDiscriminator(cfg)

    @property
    def num_discriminators(self) -> int:
        return len(self.mpd.discriminators) + len(self.msd.discriminators)

    def score(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[Feats]]:
        """Run every sub-discriminator on one batch: ``(logits, feats)``.

        For the generator step: call on real audio under ``torch.no_grad()`` and on fake audio
        with grad, so no graph is built for the real half.
        """
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(
                f"Discriminators expect audio [B, 1, T] or [B, T], got {tuple(x.shape)}"
            )
        l1, f1 = self.mpd(x)
        l2, f2 = self.msd(x)
        return l1 + l2, f1 + f2

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, batched: bool | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[Feats], list[Feats]]:
        """``(real_logits, fake_logits, real_feats, fake_feats)``, one entry per sub-discriminator.

        On a GPU real and fake are concatenated along the batch and scored in ONE pass (half
        the kernel launches), then split back. On the CPU one pass saves nothing and needs the
        doubled activations at once (V1 discriminators, batch 16 x 8192, forward + backward:
        6.2 s either way, with cpu_conv.py's layouts), so the CPU scores them separately;
        ``batched`` forces either way. Pass ``fake.detach()`` for
        the discriminator step.
        """
        if real.shape != fake.shape:
            raise ValueError(
                f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape"
            )
        if not (real.is_cuda if batched is None else batched):
            (real_logits, real_feats), (fake_logits, fake_feats) = (
                self.score(real),
                self.score(fake),
            )
            return real_logits, fake_logits, real_feats, fake_feats
        b = real.shape[0]
        logits, feats = self.score(torch.cat([real, fake], dim=0))
        real_logits = [lg[:b] for lg in logits]
        fake_logits = [lg[b:] for lg in logits]
        real_feats = [[f[:b] for f in fm] for fm in feats]
        fake_feats = [[f[b:] for f in fm] for fm in feats]
        return real_logits, fake_logits, real_feats, fake_feats
