"""A validated Config from plain data: types coerced key by key, ranges and choices checked
against the schema's metadata, then the rules that tie keys together (``_cross_check``).

Every failure is a ConfigError naming the source and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import reprlib
import types
import typing
from typing import Any

from trainer.config.schema import Config, ConfigError

MAX_LIST = 64  # entries in any list value
MAX_INT = 2**53  # ints must survive a JSON round trip (events, manifests)
# One batch of input audio: batch_size x segment_size samples. The reference HiFi-GAN uses
# 16 x 8192 = 131k; this is 512 times that, already far beyond any accelerator's memory
# once activations (hundreds of floats per sample) are counted.
MAX_BATCH_SAMPLES = 2**26


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxdict = 4
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlong = 24


def show(value: Any) -> str:
    """A bounded repr for error messages: never the whole of a huge or deeply shared value."""
    return _REPR.repr(value)


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
            raise ConfigError(f"{src}: '{key}' must be a list, got {show(value)}")
        if len(value) > MAX_LIST:
            raise ConfigError(
                f"{src}: '{key}' has {len(value)} entries; at most {MAX_LIST} are accepted"
            )
        inner = typing.get_args(tp)[0]
        return tuple(_coerce(v, inner, f"{key}[{i}]", src) for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{src}: '{key}' must be true or false, got {show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int)
            or (isinstance(value, float) and math.isfinite(value) and value.is_integer())
        ):
            raise ConfigError(f"{src}: '{key}' must be an integer, got {show(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "2e-4" as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{src}: '{key}' must be a number, got {show(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{src}: '{key}' must be a number, got {show(value)}")
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{src}: '{key}' = {show(value)} is too large") from None
    if tp is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{src}: '{key}' must be a string, got {show(value)}")
        if "\0" in value:
            raise ConfigError(f"{src}: '{key}' contains a NUL character")
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
            f"{src}: '{key}' must be one of {', '.join(map(str, choices))}; got {show(value)}"
        )
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:
            raise ConfigError(f"{src}: '{key}' is NaN")
        if isinstance(value, float) and math.isinf(value):
            raise ConfigError(f"{src}: '{key}' is infinite")
        if lo is not None and value < lo:
            raise ConfigError(f"{src}: '{key}' = {show(value)} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{src}: '{key}' = {show(value)} is above the maximum {hi}")
        if hi is None and isinstance(value, int) and abs(value) > MAX_INT:
            raise ConfigError(f"{src}: '{key}' = {show(value)} is too large (at most 2**53)")


def _build(cls: type, data: dict[str, Any], prefix: str, src: str) -> Any:
    hints = _hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}.{show(k) if not isinstance(k, str) else k[:80]}" if prefix else str(k)[:80]
        if k not in known:
            close = difflib.get_close_matches(str(k)[:80], known, n=1)
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
    largest = max([a.n_fft] + [r[0] for r in cfg.loss.stft_resolutions])
    if a.segment_size < largest:
        raise ConfigError(
            f"{src}: 'audio.segment_size' ({a.segment_size}) must be at least the largest STFT "
            f"size ({largest}: 'audio.n_fft' and 'loss.stft_resolutions')"
        )
    batch_samples = cfg.train.batch_size * a.segment_size
    if batch_samples > MAX_BATCH_SAMPLES:
        raise ConfigError(
            f"{src}: 'train.batch_size' x 'audio.segment_size' = {batch_samples:,} samples per "
            f"batch, more than any machine holds for training (at most {MAX_BATCH_SAMPLES:,}; "
            f"the reference HiFi-GAN uses 16 x 8192)"
        )
    name = cfg.name
    if (
        not name
        or len(name) > 200
        or name in (".", "..")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    ):
        raise ConfigError(
            f"{src}: 'name' = {show(name)} must be a plain directory name (the run directory "
            f"defaults to logs/<name>): no '/', no control characters, at most 200 characters"
        )
    if len(cfg.optim.betas) != 2:
        raise ConfigError(f"{src}: 'optim.betas' must have two values")
    if cfg.discriminator.msd_scales > 1 and len(cfg.discriminator.msd_channels) < 2:
        raise ConfigError(f"{src}: 'discriminator.msd_channels' needs at least two entries")
    _check_validation(cfg, src)


def _check_validation(cfg: Config, src: str) -> None:
    metrics = cfg.log.val_metrics
    if len(set(metrics)) != len(metrics):
        raise ConfigError(f"{src}: 'log.val_metrics' lists a metric twice")
    best = cfg.checkpoint.best
    if best is None:
        return
    if best.metric == "composite":
        terms = cfg.log.composite.terms()
        if not terms:
            raise ConfigError(
                f"{src}: 'checkpoint.best.metric' is composite but every 'log.composite' "
                f"weight is 0"
            )
        absent = [t for t in terms if t not in metrics]
        if absent:
            raise ConfigError(
                f"{src}: 'checkpoint.best.metric' is composite, which weighs "
                f"{', '.join(absent)}, but 'log.val_metrics' does not compute "
                f"{'it' if len(absent) == 1 else 'them'} (add to log.val_metrics, or set "
                f"log.composite.<metric>: 0)"
            )
    elif best.metric not in metrics:
        raise ConfigError(
            f"{src}: 'checkpoint.best.metric' is {best.metric}, which 'log.val_metrics' does "
            f"not compute"
        )


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


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = deep_merge(out.get(k) or {}, v) if isinstance(v, dict) else v
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


def replace(cfg: Config, **sections: dict[str, Any]) -> Config:
    """A copy with some section fields changed, e.g. ``replace(cfg, train={"max_steps": 10})``."""
    return from_dict(deep_merge(to_dict(cfg), sections), "<override>")
