"""HiFi-GAN generator and discriminators, built from the typed config."""

from __future__ import annotations

from torch import nn

from trainer.config.schema import Config

from .discriminators import Discriminators
from .generator import Generator

__all__ = ["build_models", "count_parameters", "param_counts"]


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
