"""The configuration's schema: one frozen dataclass per section, every key with its default,
its range or choices, and a note (``_f``); the loader checks values against this metadata.

Torch-free. This is where every key is documented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

RECON_LOSSES = ("mrstft", "mel", "pwg")
# Validation quality metrics (trainer/train/metrics.py; names as in the val event) and the ones
# the best-checkpoint ledger may rank by.
VAL_METRICS = ("mel_l1", "mstft", "pesq", "stoi")
BEST_METRICS = ("mel_l1", "mstft", "pesq", "composite")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")
RECOVER_TRIGGERS = ("nonfinite",)  # what train.recover.on may name


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
class RecoverConfig:
    """Opt-in self-healing: on a trigger, go back in-process to the newest healthy checkpoint
    of the live branch (a new branch; nothing deleted), scale both learning rates, move the
    data order on and continue; after max_recoveries, stop as without it."""

    on: tuple[str, ...] = _f(
        ("nonfinite",),
        choices=RECOVER_TRIGGERS,
        doc="triggers: nonfinite (train.max_nonfinite_steps in a row, which otherwise ends "
        "the run with exit 4)",
    )
    max_recoveries: int = _f(3, lo=1, hi=1000, doc="recoveries per process, then stop")
    lr_scale: float = _f(0.5, lo=1e-6, hi=1.0, doc="both learning rates times this")


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = _f(16, lo=1, hi=4096, doc="per process")
    max_steps: int = _f(500_000, lo=1, doc="target step")
    seed: int = _f(1234, lo=-(2**63), hi=2**64 - 1)
    device: str = _f("auto", choices=DEVICES)
    precision: str = _f("fp32", choices=PRECISIONS)
    tf32: bool = _f(False)
    compile: bool = _f(False)
    threads: int = _f(
        0,
        lo=0,
        hi=4096,
        doc="intra-op CPU threads per process; 0: one per physical core, shared among the "
        "ranks on one machine (--threads overrides; trainer/config/threads.py)",
    )
    max_nonfinite_steps: int = _f(10, lo=1, doc="consecutive skipped steps before giving up")
    recover: RecoverConfig | None = _f(
        None,
        doc="self-healing, e.g. {on: [nonfinite], max_recoveries: 3, lr_scale: 0.5}; one "
        "process only (ignored with a note under torchrun); null disables",
    )


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
    tensorboard: bool = _f(
        False,
        doc="mirror the event log (losses, learning rates, gradient norms, validation metrics "
        "by set, validation audio and spectrograms) into <run>/tensorboard/ for TensorBoard; "
        "needs the [tensorboard] extra. The JSONL stays the source of truth",
    )


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
