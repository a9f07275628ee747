"""Typed, frozen training configuration loaded from YAML.

Torch-free: ``nal_tui --preflight`` validates configs with this module. Unknown keys and
out-of-range values are rejected with the file and the dotted key in the message.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import reprlib
import stat
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

RECON_LOSSES = ("mrstft", "mel", "pwg")
# Validation quality metrics (trainer/metrics.py; names as in the val event) and the ones
# the best-checkpoint ledger may rank by.
VAL_METRICS = ("mel_l1", "mstft", "pesq", "stoi")
BEST_METRICS = ("mel_l1", "mstft", "pesq", "composite")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")

# Bounds that keep a hostile or mistyped config from costing unbounded time or memory.
MAX_CONFIG_BYTES = 256 << 10  # real configs are ~2 KiB; PyYAML parses this much in ~0.5 s
MAX_YAML_NODES = 10_000  # after alias expansion; a full config has ~150
MAX_YAML_DEPTH = 16  # a full config nests 5 deep
MAX_SCALAR_CHARS = 4096  # PATH_MAX; also keeps int() far from CPython's 4300-digit limit
MAX_LIST = 64  # entries in any list value
MAX_INT = 2**53  # ints must survive a JSON round trip (events, manifests)
# One batch of input audio: batch_size x segment_size samples. The reference HiFi-GAN uses
# 16 x 8192 = 131k; this is 512 times that, already far beyond any accelerator's memory
# once activations (hundreds of floats per sample) are counted.
MAX_BATCH_SAMPLES = 2**26


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
    segment_size: int = _f(8192, lo=256, hi=2**20, doc="training clip length in samples")


@dataclass(frozen=True)
class GeneratorConfig:
    resblock: str = _f("1", choices=("1", "2"))
    upsample_rates: tuple[int, ...] = _f((8, 8, 2, 2), lo=1, hi=1024)
    upsample_kernel_sizes: tuple[int, ...] = _f((16, 16, 4, 4), lo=1, hi=4096)
    upsample_initial_channel: int = _f(512, lo=1, hi=8192)
    resblock_kernel_sizes: tuple[int, ...] = _f((3, 7, 11), lo=1, hi=1024)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = _f(
        ((1, 3, 5), (1, 3, 5), (1, 3, 5)), lo=1, hi=1024
    )


@dataclass(frozen=True)
class DiscriminatorConfig:
    periods: tuple[int, ...] = _f((2, 3, 5, 7, 11), lo=1, hi=1024)
    msd_scales: int = _f(3, lo=1, hi=8)
    # Channel widths, scaled down by the demo preset; the reference's are the defaults.
    mpd_channels: tuple[int, ...] = _f((32, 128, 512, 1024, 1024), lo=1, hi=8192)
    msd_channels: tuple[int, ...] = _f((128, 128, 256, 512, 1024, 1024, 1024), lo=1, hi=8192)


@dataclass(frozen=True)
class LossConfig:
    recon: str = _f("mrstft", choices=RECON_LOSSES)
    # (n_fft, hop, win) per resolution.
    stft_resolutions: tuple[tuple[int, ...], ...] = _f(
        ((512, 128, 512), (1024, 256, 1024), (2048, 512, 2048)), lo=1, hi=65536
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
    mels_dir: str | None = _f(
        None,
        doc="precomputed mels (ID.npy, [n_mels, frames]; frames x hop within one hop of the "
        "audio length), e.g. an acoustic model's, to fine-tune on",
    )
    unseen_metadata: str | None = _f(
        None,
        doc="a held-out set validated beside the validation set (seen vs unseen, as BigVGAN "
        "reports): an LJSpeech-format metadata file (relative to corpus_dir unless absolute) "
        "whose WAVs are <its directory>/wavs/<id>.wav; none of its ids may be a training "
        "utterance of the same directory. Always copy synthesis (mels from its audio)",
    )
    demo: bool = _f(False, doc="generate the demo corpus at corpus_dir when missing")
    val_size: int = _f(8, lo=1, doc="utterances held out for validation")
    split_seed: int = _f(1234, lo=-(2**63), hi=2**64 - 1)
    resample: bool = _f(True, doc="resample other rates (else refuse them)")
    num_workers: int = _f(0, lo=0, hi=64)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _f(16, lo=1, hi=4096, doc="per process")
    max_steps: int = _f(500_000, lo=1, doc="target step")
    seed: int = _f(1234, lo=-(2**63), hi=2**64 - 1)
    device: str = _f("auto", choices=DEVICES)
    precision: str = _f("fp32", choices=PRECISIONS)
    tf32: bool = _f(False)
    compile: bool = _f(False)
    max_nonfinite_steps: int = _f(10, lo=1, doc="consecutive skipped steps before giving up")


@dataclass(frozen=True)
class CompositeConfig:
    """Weights of the lower-is-better composite validation score (Vocos-like)."""

    mel_l1: float = _f(1.0, lo=0.0, hi=1e6)
    mstft: float = _f(1.0, lo=0.0, hi=1e6)
    pesq: float = _f(1.0, lo=0.0, hi=1e6, doc="weight of (4.644 - PESQ)")
    stoi: float = _f(0.0, lo=0.0, hi=1e6, doc="weight of (1 - STOI)")

    def terms(self) -> tuple[str, ...]:
        return tuple(k for k in VAL_METRICS if getattr(self, k))


@dataclass(frozen=True)
class LogConfig:
    log_every: int = _f(100, lo=1, doc="steps between step events")
    val_every: int = _f(1000, lo=1)
    val_samples: int = _f(
        3,
        lo=0,
        doc="fixed utterances per set written as WAV at each validation (their ground truth "
        "once per run, in samples/gt/)",
    )
    val_metrics: tuple[str, ...] = _f(
        VAL_METRICS,
        choices=VAL_METRICS,
        doc="quality metrics at each validation; pesq and stoi need the [quality] extra "
        "(skipped with a note when it is missing)",
    )
    composite: CompositeConfig = field(default_factory=CompositeConfig)


@dataclass(frozen=True)
class BestConfig:
    """The best-checkpoint ledger: the ``keep`` best validated checkpoints are kept."""

    metric: str = _f(
        "mel_l1",
        choices=BEST_METRICS,
        doc="ranked on the validation set; composite is log.composite's weighted sum",
    )
    keep: int = _f(3, lo=1, hi=1000, doc="best checkpoints kept beyond keep_last")
    patience: int = _f(
        10,
        lo=0,
        hi=1_000_000,
        doc="an overtraining alert after this many validations in a row worse than the "
        "best; 0 disables",
    )


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = _f(5000, lo=1)
    keep_last: int = _f(5, lo=1)
    milestone_every: int = _f(10_000, lo=0, doc="kept forever; 0 disables")
    best: BestConfig | None = _f(
        None,
        doc="best-checkpoint ledger, e.g. {metric: composite, keep: 3, patience: 10}; a "
        "validation whose score enters the best keep is checkpointed at once; null disables",
    )


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


def load(path: str | os.PathLike[str], overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a YAML config file, in bounded time and memory.

    Every failure is a ConfigError naming the file (and the key when there is one): a
    missing, unreadable, empty, oversized or non-UTF-8 file, YAML errors, alias bombs.
    """
    p = Path(path)
    src = str(p)
    raw = _read_bounded(p, src)
    text = _decode(raw, src)
    data = _parse_yaml(text, src)
    if data is None:
        raise ConfigError(f"{src}: the config file is empty (no sections)")
    if overrides:
        data = _merge(data if isinstance(data, dict) else {}, overrides)
    return from_dict(data, src)


def _read_bounded(p: Path, src: str) -> bytes:
    try:
        with open(p, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ConfigError(f"{src}: not a regular file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{src}: config file not found") from None
    except OSError as e:
        raise ConfigError(f"{src}: cannot read config: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{src}: config file is larger than {MAX_CONFIG_BYTES // 1024} KiB; "
            f"a config is a few KiB of YAML"
        )
    return raw


def _decode(raw: bytes, src: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        # Name the key whose text holds the bad byte: parse with the byte replaced.
        index = len(raw[: e.start].decode("utf-8-sig"))
        key = _key_at(raw.decode("utf-8-sig", errors="replace"), index)
        where = f" in '{key}'" if key else ""
        raise ConfigError(
            f"{src}: not valid UTF-8 at line {line}, column {col}{where} "
            f"(byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        ) from None


def _key_at(text: str, index: int) -> str | None:
    """Dotted key of the deepest mapping entry whose text spans ``index``, if any."""
    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return None
    best: str | None = None
    stack: list[tuple[yaml.Node, str]] = [(root, "")] if root is not None else []
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                kp = f"{path}.{k.value}" if path else str(k.value)
                if isinstance(k, yaml.ScalarNode) and (
                    k.start_mark.index <= index < max(v.end_mark.index, k.end_mark.index)
                ):
                    best = kp[:120]
                    stack.append((v, kp))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                if v.start_mark.index <= index < v.end_mark.index:
                    stack.append((v, f"{path}[{i}]"))
    return best


def _parse_yaml(text: str, src: str) -> Any:
    """yaml.safe_load, but the node graph is checked before any Python object is built."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(
                f"{src}: YAML nested too deeply (from line {_deep_line(text)}; "
                f"a config nests {MAX_YAML_DEPTH} levels at most)"
            ) from None
        if node is None:
            return None
        _check_nodes(node, src)
        return loader.construct_document(node)
    except ConfigError:
        raise
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{src}: not valid YAML{where}: {show(problem)}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as e:
        raise ConfigError(f"{src}: YAML value cannot be read: {show(str(e))}") from None
    finally:
        loader.dispose()


def _deep_line(text: str) -> int:
    """The line where flow brackets first nest deeper than MAX_YAML_DEPTH (a rough scan)."""
    depth = 0
    for line_no, line in enumerate(text.splitlines(), start=1):
        for ch in line:
            depth += (ch in "[{") - (ch in "]}")
            if depth > MAX_YAML_DEPTH:
                return line_no
    return 1


def _check_nodes(root: yaml.Node, src: str) -> None:
    """Refuse alias bombs, recursive aliases, deep nesting, huge scalars and duplicate keys.

    Counts the nodes the document expands to (each alias counted as often as it is used)
    with one memoised pass over the node graph, so a billion-laughs document is refused
    after visiting its few distinct nodes, naming the key that holds the expansion.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: yaml.Node, path: str, depth: int) -> int:
        nid = id(node)
        if nid in sizes:
            return sizes[nid]
        if nid in active:
            raise ConfigError(f"{src}: '{path or '<top>'}' refers to itself (recursive YAML alias)")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{src}: '{path}' is nested more than {MAX_YAML_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            if len(node.value) > MAX_SCALAR_CHARS:
                raise ConfigError(
                    f"{src}: value of '{path or '<top>'}' is {len(node.value):,} characters "
                    f"long; at most {MAX_SCALAR_CHARS} are accepted"
                )
            sizes[nid] = 1
            return 1
        active.add(nid)
        total = 1
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for k, v in node.value:
                kname = k.value if isinstance(k, yaml.ScalarNode) else "<complex key>"
                kname = kname[:80]
                kp = f"{path}.{kname}" if path else kname
                if isinstance(k, yaml.ScalarNode) and k.value != "<<":
                    if k.value in keys:
                        raise ConfigError(f"{src}: key '{kp}' appears twice")
                    keys.add(k.value)
                total += size(k, kp, depth + 1) + size(v, kp, depth + 1)
                if total > MAX_YAML_NODES:
                    _too_big(src, kp)
        else:
            for i, v in enumerate(node.value):
                total += size(v, f"{path}[{i}]" if path else f"[{i}]", depth + 1)
                if total > MAX_YAML_NODES:
                    _too_big(src, path or "<top>")
        active.discard(nid)
        sizes[nid] = total
        return total

    size(root, "", 0)


def _too_big(src: str, path: str) -> typing.NoReturn:
    raise ConfigError(
        f"{src}: '{path}' expands to more than {MAX_YAML_NODES:,} YAML nodes (aliases "
        f"repeating anchors: an expansion bomb?); a config needs a few hundred"
    )


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
