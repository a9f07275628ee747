"""The event log's schema: its version, field names, statuses, exit codes, alert kinds,
validation sets and metrics, and one dataclass per event type.

Torch-free and numpy-free on purpose: ``nal_tui`` imports it. Every field name either side
uses is defined here; ``docs/events.md`` is the prose version. Encoding is
:mod:`trainer.events.codec`, appending :mod:`trainer.events.writer`, reading
:mod:`trainer.events.parse`, the block index :mod:`trainer.events.index`.
"""

from __future__ import annotations

import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"

# Keys present on every record.
K_VERSION = "v"
K_EVENT = "event"
K_TIME = "t"

# The five loss series the dashboard charts, in display order.
LOSS_KEYS = ("g", "d", "stft", "adv", "fm")
# The optimiser's figures of a step row the dashboard charts too (learning rates, gradient
# norms; a norm may be absent, then it is no point of its series), in display order.
OPT_KEYS = ("lr_g", "lr_d", "grad_norm_g", "grad_norm_d")
SERIES_KEYS = LOSS_KEYS + OPT_KEYS

# run_end statuses and the trainer's exit codes (also used by nal_tui's control).
STATUS_COMPLETED = "completed"
STATUS_STOPPED = "stopped"
STATUS_FAILED = "failed"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_LOCKED = 3
EXIT_NONFINITE = 4
EXIT_NO_CHECKPOINT = 5
EXIT_STORAGE = 6  # a run-directory write failed (disk full, I/O error): see run_end.reason

# Alert kinds: the one list. The trainer writes these in ``alert`` events ...
ALERT_NONFINITE = "nonfinite"
ALERT_CHECKPOINT_SKIPPED = "checkpoint_skipped"
ALERT_RESUME_FALLBACK = "resume_fallback"
ALERT_COMPILE_FALLBACK = "compile_fallback"
ALERT_CHECKPOINT_KEPT_ASIDE = "checkpoint_kept_aside"  # a manifest-less .pt moved to abandoned/
ALERT_SHORT_CLIPS = "short_clips"  # training clips shorter than a segment (zero-padded)
ALERT_CORPUS = "corpus"  # another corpus warning (e.g. clips resampled on load)
ALERT_OVERTRAINING = "overtraining"  # the best-checkpoint metric has stopped improving
ALERT_METRIC_UNAVAILABLE = "metric_unavailable"  # a validation metric's package is missing
ALERT_RECOVERY = "recovery"  # train.recover rolled the run back in-process (a recovery event)
ALERT_MIRROR = "mirror_failed"  # the TensorBoard mirror failed and was turned off
TRAINER_ALERT_KINDS = (
    ALERT_NONFINITE,
    ALERT_CHECKPOINT_SKIPPED,
    ALERT_RESUME_FALLBACK,
    ALERT_COMPILE_FALLBACK,
    ALERT_CHECKPOINT_KEPT_ASIDE,
    ALERT_SHORT_CLIPS,
    ALERT_CORPUS,
    ALERT_OVERTRAINING,
    ALERT_METRIC_UNAVAILABLE,
    ALERT_RECOVERY,
    ALERT_MIRROR,
)
# ... and readers of the log (the dashboard, the watcher) derive these from it; a reader shows
# a kind it does not know generically.
ALERT_D_COLLAPSE = "d_collapse"
ALERT_IMBALANCE = "gd_imbalance"
ALERT_STALLED = "stalled"
ALERT_CRASHED = "crashed"
ALERT_RUN_FAILED = "run_failed"
ALERT_START_REFUSED = "start_refused"  # a failed run_end right after a run_end: nothing ran
ALERT_GARBLED = "garbled"
ALERT_BACKWARDS = "steps_backwards"
ALERT_BRANCH = "branch"  # a run_start below the last step: the later steps were abandoned
ALERT_GRAD_SPIKE = "grad_spike"  # a gradient norm far over its recent median
DERIVED_ALERT_KINDS = (
    ALERT_D_COLLAPSE,
    ALERT_IMBALANCE,
    ALERT_STALLED,
    ALERT_CRASHED,
    ALERT_RUN_FAILED,
    ALERT_START_REFUSED,
    ALERT_GARBLED,
    ALERT_BACKWARDS,
    ALERT_BRANCH,
    ALERT_GRAD_SPIKE,
)
ALERT_KINDS = TRAINER_ALERT_KINDS + DERIVED_ALERT_KINDS
ALERT_LEVELS = ("info", "warning", "error")

# Validation sets (the ``val`` event's ``set``) and metric names (keys of its ``metrics``).
VAL_SET = "val"  # the fixed utterances held out of the training corpus
UNSEEN_SET = "unseen"  # a held-out set of unseen speakers/utterances (data.unseen_metadata)
METRIC_MEL_L1 = "mel_l1"
METRIC_MSTFT = "mstft"
METRIC_PESQ = "pesq"
METRIC_STOI = "stoi"
METRIC_COMPOSITE = "composite"
# Which way is better, for the best-checkpoint ledger and the over-training alert.
METRIC_HIGHER_IS_BETTER = {
    METRIC_MEL_L1: False,
    METRIC_MSTFT: False,
    METRIC_PESQ: True,
    METRIC_STOI: True,
    METRIC_COMPOSITE: False,
}


class EventError(ValueError):
    """A line or record that does not follow the schema."""


@dataclass(frozen=True)
class Event:
    """Base of every record; subclasses set ``EVENT`` and add their fields."""

    EVENT: ClassVar[str] = ""

    def to_record(self, t: float | None = None) -> dict[str, Any]:
        rec: dict[str, Any] = {
            K_VERSION: SCHEMA_VERSION,
            K_EVENT: self.EVENT,
            K_TIME: round(time.time() if t is None else t, 6),
        }
        rec.update(asdict(self))
        return rec


@dataclass(frozen=True)
class RunStart(Event):
    EVENT: ClassVar[str] = "run_start"
    run_id: str
    pid: int
    config_path: str
    start_step: int
    target_step: int
    world_size: int
    device: str
    versions: dict[str, str]
    resumed_from: str | None = None
    run_name: str = ""
    backend: str | None = None
    rank_devices: list[str] = field(default_factory=list)
    batch_size: int = 0
    segment_size: int = 0
    sample_rate: int = 0
    recon_loss: str = ""
    log_every: int = 1
    val_every: int = 0
    checkpoint_every: int = 0
    milestone_every: int = 0
    precision: str = "fp32"
    # Lineage (docs/events.md, "Branches"): the branch this process writes, the step of the
    # checkpoint it started from (None: from step 0), and the run-dir-relative directory the
    # live checkpoints after that point were moved to at this start (None: nothing moved).
    branch: str = ""
    parent_step: int | None = None
    moved_aside: str | None = None
    # Fine-tuning (nal-train train --init-from): the source checkpoint's path, sha256 and
    # step, and whether only its generator was taken. None/False for every other start.
    init_from: str | None = None
    init_from_sha256: str | None = None
    init_from_step: int | None = None
    init_generator_only: bool = False
    # The learning rates in force at this start (after a resume: the checkpoint's, which
    # carry any recovery's scaling); None in logs written before they were recorded.
    lr_g: float | None = None
    lr_d: float | None = None


@dataclass(frozen=True)
class Step(Event):
    EVENT: ClassVar[str] = "step"
    step: int
    epoch: int
    g: float
    d: float
    stft: float
    adv: float
    fm: float
    recon: str
    lr_g: float
    lr_d: float
    step_time: float
    samples_per_s: float
    grad_norm_g: float | None = None
    grad_norm_d: float | None = None


@dataclass(frozen=True)
class Val(Event):
    EVENT: ClassVar[str] = "val"
    step: int
    losses: dict[str, float]
    samples: list[str]
    duration: float = 0.0
    # Every quality metric (METRIC_*; a metric whose package is missing is absent, never
    # estimated), the set it was measured on (VAL_SET or UNSEEN_SET) and its size.
    metrics: dict[str, float] = field(default_factory=dict)
    set: str = VAL_SET
    utterances: int = 0
    # The samples' mel pictures (trainer.rundir.melpic), run-dir relative, in the order of
    # ``samples``; empty in logs written before pictures existed.
    pictures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Checkpoint(Event):
    EVENT: ClassVar[str] = "checkpoint"
    step: int
    path: str
    bytes: int
    sha256: str
    milestone: bool = False
    duration: float = 0.0
    # Best-checkpoint ledger (checkpoint.best): whether this checkpoint is among the best K
    # of the live branch, the metric and its score here (None: not validated at this step
    # or no ledger), and the ledger's steps after this save, best first.
    best: bool = False
    metric: str | None = None
    score: float | None = None
    best_steps: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Milestone(Event):
    EVENT: ClassVar[str] = "milestone"
    step: int
    name: str
    message: str = ""


@dataclass(frozen=True)
class Alert(Event):
    EVENT: ClassVar[str] = "alert"
    kind: str
    step: int
    message: str
    level: str = "warning"


@dataclass(frozen=True)
class RunEnd(Event):
    EVENT: ClassVar[str] = "run_end"
    step: int
    status: str
    reason: str
    exit_code: int


@dataclass(frozen=True)
class Recovery(Event):
    """train.recover went back in-process: training continues from ``step`` (the healthy
    checkpoint's) on a new branch, with both learning rates scaled (docs/events.md)."""

    EVENT: ClassVar[str] = "recovery"
    step: int  # the step training went back to
    from_step: int  # the step at which the trigger fired
    trigger: str  # what fired (trainer.config.schema.RECOVER_TRIGGERS)
    checkpoint: str  # the checkpoint gone back to, run-dir relative
    lr_g: float  # the learning rates in force from here on
    lr_d: float
    recoveries: int  # this process's recoveries so far, this one included
    max_recoveries: int
    branch: str = ""  # the branch written from here on (as run_start's)
    moved_aside: str | None = None  # where the abandoned checkpoints went (as run_start's)


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT: cls for cls in (RunStart, Step, Val, Checkpoint, Milestone, Alert, RunEnd, Recovery)
}


def _required_fields(cls: type[Event]) -> frozenset[str]:
    return frozenset(
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    )


REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    name: _required_fields(cls) for name, cls in EVENT_TYPES.items()
}
