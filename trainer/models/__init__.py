"""HiFi-GAN generator and discriminators, built from the typed config."""

from __future__ import annotations

from torch import nn

from trainer.config import Config

from .discriminators import (
    Discriminators,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
)
from .generator import Generator, ResBlock1, ResBlock2, remove_weight_norm_

__all__ = [
    "Discriminators",
    "Generator",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "PeriodDiscriminator",
    "ResBlock1",
    "ResBlock2",
    "ScaleDiscriminator",
    "build_models",
    "count_parameters",
    "param_counts",
    "remove_weight_norm_",
]


def build_models(cfg: Config) -> tuple[Generator, Discriminators]:
    """The generator and the combined discriminators for ``cfg`` (on CPU, in train mode)."""
    return Generator(cfg.generator, cfg.audio.n_mels), Discriminators(cfg.discriminator)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameter count; weight norm's g and v both count, as in the reference."""
    return sum(p.numel() for p in module.parameters())


def param_counts(cfg: Config) -> dict[str, int]:
    """Parameter counts: generator, mpd, msd and discriminators (mpd + msd)."""
    g, d = build_models(cfg)
    mpd, msd = count_parameters(d.mpd), count_parameters(d.msd)
    return {"generator": count_parameters(g), "mpd": mpd, "msd": msd, "discriminators": mpd + msd}
