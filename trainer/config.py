"""Typed, frozen training configuration loaded from YAML.

Torch-free: ``nal_tui --preflight`` validates configs with this module. Unknown keys and
out-of-range values are rejected with the file and the dotted key in the message.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECON_LOSSES = ("mrstft", "mel", "pwg")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


def _f(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A dataclass field with range metadata checked by ``_check``."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "doc": doc}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AudioConfig:
    sample_rate: int = _f(22050, lo=1000, hi=384000)
    n_fft: int = _f(1024, lo=16, hi=16384)
    win_length: int = _f(1024, lo=16, hi=16384)
    hop_length: int = _f(256, lo=1, hi=16384)
    n_mels: int = _f(80, lo=1, hi=512)
    fmin: float = _f(0.0, lo=0.0)
    fmax: float | None = _f(8000.0, lo=1.0, doc="None means sample_rate / 2")
    segment_size: int = _f(8192, lo=256, doc="training clip length in samples")


@dataclass(frozen=True)
class GeneratorConfig:
    resblock: str = _f("1", choices=("1", "2"))
    upsample_rates: tuple[int, ...] = _f((8, 8, 2, 2), lo=1)
    upsample_kernel_sizes: tuple[int, ...] = _f((16, 16, 4, 4), lo=1)
    upsample_initial_channel: int = _f(512, lo=1)
    resblock_kernel_sizes: tuple[int, ...] = _f((3, 7, 11), lo=1)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = _f(
        ((1, 3, 5), (1, 3, 5), (1, 3, 5)), lo=1
    )


@dataclass(frozen=True)
class DiscriminatorConfig:
    periods: tuple[int, ...] = _f((2, 3, 5, 7, 11), lo=1)
    msd_scales: int = _f(3, lo=1, hi=8)
    # Channel widths, scaled down by the demo preset; the reference's are the defaults.
    mpd_channels: tuple[int, ...] = _f((32, 128, 512, 1024, 1024), lo=1)
    msd_channels: tuple[int, ...] = _f((128, 128, 256, 512, 1024, 1024, 1024), lo=1)


@dataclass(frozen=True)
class LossConfig:
    recon: str = _f("mrstft", choices=RECON_LOSSES)
    # (n_fft, hop, win) per resolution.
    stft_resolutions: tuple[tuple[int, ...], ...] = _f(
        ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)), lo=1
    )
    lambda_recon: float = _f(45.0, lo=0.0)
    lambda_adv: float = _f(1.0, lo=0.0)
    lambda_fm: float = _f(2.0, lo=0.0)


@dataclass(frozen=True)
class OptimConfig:
    lr_g: float = _f(2e-4, lo=0.0, hi=1.0)
    lr_d: float = _f(2e-4, lo=0.0, hi=1.0)
    betas: tuple[float, ...] = _f((0.8, 0.99), lo=0.0, hi=1.0)
    weight_decay: float = _f(0.01, lo=0.0)
    lr_decay: float = _f(0.999, lo=0.0, hi=1.0, doc="ExponentialLR gamma, stepped per epoch")
    grad_clip: float | None = _f(None, lo=0.0, doc="max grad norm; None disables")


@dataclass(frozen=True)
class DataConfig:
    corpus_dir: str = _f("data/LJSpeech-1.1")
    metadata: str = _f("metadata.csv")
    mels_dir: str | None = _f(None, doc="precomputed mels (ID.npy, [n_mels, frames])")
    demo: bool = _f(False, doc="generate the demo corpus at corpus_dir when missing")
    val_size: int = _f(8, lo=1, doc="utterances held out for validation")
    split_seed: int = _f(1234)
    resample: bool = _f(True, doc="resample other rates (else refuse them)")
    num_workers: int = _f(0, lo=0, hi=64)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _f(16, lo=1)
    max_steps: int = _f(500_000, lo=1, doc="target step")
    seed: int = _f(1234)
    device: str = _f("auto", choices=DEVICES)
    precision: str = _f("fp32", choices=PRECISIONS)
    tf32: bool = _f(False)
    compile: bool = _f(False)
    max_nonfinite_steps: int = _f(10, lo=1, doc="consecutive skipped steps before giving up")


@dataclass(frozen=True)
class LogConfig:
    log_every: int = _f(100, lo=1, doc="steps between step events")
    val_every: int = _f(1000, lo=1)
    val_samples: int = _f(3, lo=0, doc="fixed utterances written as WAV at each validation")


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = _f(5000, lo=1)
    keep_last: int = _f(5, lo=1)
    milestone_every: int = _f(10_000, lo=0, doc="kept forever; 0 disables")


@dataclass(frozen=True)
class Config:
    name: str = _f("run", doc="run name; run dir defaults to logs/<name>")
    audio: AudioConfig = field(default_factory=AudioConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)

    @property
    def hop_product(self) -> int:
        p = 1
        for r in self.generator.upsample_rates:
            p *= r
        return p


# ---------------------------------------------------------------------------- loading


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_optional(tp: Any) -> tuple[bool, Any]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return True, args[0]
    return False, tp


def _coerce(value: Any, tp: Any, key: str, src: str) -> Any:
    optional, tp = _is_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{src}: '{key}' must not be empty")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{src}: '{key}' must be a mapping, got {type(value).__name__}")
        return _build(tp, value, key, src)
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{src}: '{key}' must be a list, got {value!r}")
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(v, inner, f"{key}[{i}]", src) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise ConfigError(f"{src}: '{key}' must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{src}: '{key}' must be a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{src}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{src}: '{key}' must be a string, got {value!r}")
        return value
    raise ConfigError(f"{src}: '{key}': unsupported type {tp}")  # pragma: no cover


def _check(value: Any, meta: typing.Mapping[str, Any], key: str, src: str) -> None:
    if value is None:
        return
    if isinstance(value, tuple):
        for i, v in enumerate(value):
            _check(v, meta, f"{key}[{i}]", src)
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(
            f"{src}: '{key}' must be one of {', '.join(map(str, choices))}; got {value!r}"
        )
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            raise ConfigError(f"{src}: '{key}' is NaN")
        if lo is not None and value < lo:
            raise ConfigError(f"{src}: '{key}' = {value} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{src}: '{key}' = {value} is above the maximum {hi}")


def _build(cls: type, data: dict[str, Any], prefix: str, src: str) -> Any:
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"{src}: unknown key '{key}'{hint}")
        val = _coerce(v, hints[k], key, src)
        _check(val, known[k].metadata, key, src)
        kwargs[k] = val
    return cls(**kwargs)


def _cross_check(cfg: Config, src: str) -> None:
    a, g = cfg.audio, cfg.generator
    if cfg.hop_product != a.hop_length:
        raise ConfigError(
            f"{src}: product of 'generator.upsample_rates' ({cfg.hop_product}) "
            f"must equal 'audio.hop_length' ({a.hop_length})"
        )
    if len(g.upsample_rates) != len(g.upsample_kernel_sizes):
        raise ConfigError(
            f"{src}: 'generator.upsample_kernel_sizes' needs one entry per upsample rate"
        )
    for i, (r, k) in enumerate(zip(g.upsample_rates, g.upsample_kernel_sizes, strict=True)):
        if k < r:
            raise ConfigError(
                f"{src}: 'generator.upsample_kernel_sizes[{i}]' ({k}) must be >= its rate ({r})"
            )
    if len(g.resblock_kernel_sizes) != len(g.resblock_dilation_sizes):
        raise ConfigError(
            f"{src}: 'generator.resblock_dilation_sizes' needs one entry per resblock kernel size"
        )
    if g.upsample_initial_channel % (2 ** len(g.upsample_rates)):
        raise ConfigError(
            f"{src}: 'generator.upsample_initial_channel' must be divisible by "
            f"2**{len(g.upsample_rates)} (halved at each upsampling)"
        )
    if a.hop_length > a.n_fft:
        raise ConfigError(
            f"{src}: 'audio.hop_length' ({a.hop_length}) must be <= 'audio.n_fft' ({a.n_fft})"
        )
    if a.win_length > a.n_fft:
        raise ConfigError(
            f"{src}: 'audio.win_length' ({a.win_length}) must be <= 'audio.n_fft' ({a.n_fft})"
        )
    nyq = a.sample_rate / 2
    if a.fmax is not None and a.fmax > nyq:
        raise ConfigError(f"{src}: 'audio.fmax' ({a.fmax}) is above the Nyquist frequency ({nyq})")
    if a.fmax is not None and a.fmin >= a.fmax:
        raise ConfigError(f"{src}: 'audio.fmin' must be below 'audio.fmax'")
    if a.segment_size % a.hop_length:
        raise ConfigError(
            f"{src}: 'audio.segment_size' ({a.segment_size}) must be a multiple of "
            f"'audio.hop_length' ({a.hop_length})"
        )
    for i, res in enumerate(cfg.loss.stft_resolutions):
        if len(res) != 3 or res[2] > res[0]:
            raise ConfigError(
                f"{src}: 'loss.stft_resolutions[{i}]' must be [n_fft, hop, win] with win <= n_fft"
            )
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"{src}: 'optim.betas' must have two values")
    if cfg.discriminator.msd_scales > 1 and len(cfg.discriminator.msd_channels) < 2:
        raise ConfigError(f"{src}: 'discriminator.msd_channels' needs at least two entries")


def from_dict(data: dict[str, Any] | None, src: str = "<config>") -> Config:
    """Build a validated Config from a plain mapping (``src`` names it in errors)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{src}: top level must be a mapping of sections, got {type(data).__name__}"
        )
    cfg = _build(Config, data, "", src)
    _cross_check(cfg, src)
    return cfg


def load(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a YAML config file."""
    p = Path(path)
    src = str(p)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{src}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{src}: cannot read config: {e.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{src}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if overrides:
        data = _merge(data or {}, overrides)
    return from_dict(data, src)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (tuples as lists) for YAML/JSON."""

    def conv(x: Any) -> Any:
        if isinstance(x, tuple):
            return [conv(v) for v in x]
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(dataclasses.asdict(cfg))


def dump(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some section fields changed, e.g. ``replace(cfg, train={"max_steps": 10})``."""
    return from_dict(_merge(to_dict(cfg), sections), "<override>")
