"""The event log schema (``events.jsonl``): the one contract between trainer and dashboard.

Torch-free and numpy-free on purpose: ``nal_tui`` imports this module. Every field name
either side uses is defined here; see ``docs/events.md`` for the prose version.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

try:  # orjson parses ~4x faster; the stdlib fallback keeps the module dependency-free.
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a declared dependency
    _orjson = None
import json as _json

SCHEMA_VERSION = 1
EVENTS_FILE = "events.jsonl"

# Keys present on every record.
K_VERSION = "v"
K_EVENT = "event"
K_TIME = "t"

# The five loss series the dashboard charts, in display order.
LOSS_KEYS = ("g", "d", "stft", "adv", "fm")

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

# alert kinds the trainer writes (the dashboard adds its own derived ones).
ALERT_NONFINITE = "nonfinite"
ALERT_CHECKPOINT_SKIPPED = "checkpoint_skipped"
ALERT_RESUME_FALLBACK = "resume_fallback"
ALERT_COMPILE_FALLBACK = "compile_fallback"
ALERT_CHECKPOINT_KEPT_ASIDE = "checkpoint_kept_aside"  # a manifest-less .pt moved to abandoned/
ALERT_SHORT_CLIPS = "short_clips"  # training clips shorter than a segment (zero-padded)
ALERT_CORPUS = "corpus"  # another corpus warning (e.g. clips resampled on load)
ALERT_OVERTRAINING = "overtraining"  # the best-checkpoint metric has stopped improving
ALERT_METRIC_UNAVAILABLE = "metric_unavailable"  # a validation metric's package is missing

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


EVENT_TYPES: dict[str, type[Event]] = {
    cls.EVENT: cls for cls in (RunStart, Step, Val, Checkpoint, Milestone, Alert, RunEnd)
}


def _required_fields(cls: type[Event]) -> frozenset[str]:
    return frozenset(
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    )


_REQUIRED: dict[str, frozenset[str]] = {
    name: _required_fields(cls) for name, cls in EVENT_TYPES.items()
}


def _finite_or_none(x: Any) -> Any:
    """JSON has no NaN/Infinity; write non-finite floats as strings the reader maps back
    (inside objects and lists too: a validation loss can be NaN)."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: _finite_or_none(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite_or_none(v) for v in x]
    return x


_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as a JSON line (with the trailing newline)."""
    rec = {k: _finite_or_none(v) for k, v in record.items()}
    if _orjson is not None:
        return _orjson.dumps(rec) + b"\n"
    return (_json.dumps(rec, separators=(",", ":"), allow_nan=False) + "\n").encode()


def loads(line: bytes | str) -> dict[str, Any]:
    """Parse one line into a record dict; raises EventError naming what is wrong."""
    try:
        rec = _orjson.loads(line) if _orjson is not None else _json.loads(line)
    except ValueError as e:
        raise EventError(f"not valid JSON: {e}") from None
    if not isinstance(rec, dict):
        raise EventError("not a JSON object")
    name = rec.get(K_EVENT)
    if not isinstance(name, str):
        raise EventError("no 'event' field")
    if not isinstance(rec.get(K_TIME), (int, float)):
        raise EventError(f"{name}: no numeric 't' field")
    return rec


def float_field(rec: Mapping[str, Any], key: str) -> float:
    """A loss-like field as float; the writer's 'nan'/'inf' strings map back to floats."""
    v = rec.get(key)
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    return math.nan


# Observers see every record an EventWriter in this process writes (after it is on disk).
# ``trainer.console`` registers one to draw the foreground progress line.
_OBSERVERS: list[Callable[[dict[str, Any]], None]] = []


def add_observer(fn: Callable[[dict[str, Any]], None]) -> None:
    """Call ``fn(record)`` after each record any EventWriter of this process writes."""
    if fn not in _OBSERVERS:
        _OBSERVERS.append(fn)


def remove_observer(fn: Callable[[dict[str, Any]], None]) -> None:
    if fn in _OBSERVERS:
        _OBSERVERS.remove(fn)


class EventWriteError(OSError):
    """The event log could not take a record (disk full, I/O error); names file and cause."""

    def __str__(self) -> str:
        return str(self.strerror)  # the whole message, without OSError's "[Errno n]" prefix


class EventWriter:
    """Appends records to ``events.jsonl``, one line per ``write``, straight to the file.

    On open, a log whose last byte is not a newline (a writer killed mid-line) gets one,
    so the next record never glues onto the torn one. A write that fails part-way (ENOSPC,
    EIO) is cut back to the last complete line before EventWriteError is raised, so readers
    never see a torn last line; the writer stays usable for a later, smaller record. Beside
    the log it keeps the binary index ``events.idx`` (``trainer.events.index``: a cache for
    readers, never needed; any error of its own disables it, never the run).
    """

    def __init__(self, path: str | os.PathLike[str], *, index: bool = True) -> None:
        self.path = os.fspath(path)
        # Unbuffered: a failed write must not leave bytes queued for a later flush.
        self._fd: int | None = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666
        )
        try:
            self._size = os.fstat(self._fd).st_size
            if self._size > 0:
                if os.pread(self._fd, 1, self._size - 1) != b"\n":
                    self._append(b"\n", "end a torn line in")
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise
        self._index = None
        if index:
            from trainer.events import indexwrite

            self._index = indexwrite.IndexWriter.open(self.path, self._size)

    def _append(self, data: bytes, what: str = "append a record to") -> None:
        assert self._fd is not None, "EventWriter is closed"
        start, done = self._size, 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as e:
            self._cut_back(start)
            raise EventWriteError(
                e.errno, f"cannot {what} {self.path}: {e.strerror or e}", self.path
            ) from None
        self._size = start + done

    def _cut_back(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)  # type: ignore[arg-type]
        except OSError:
            pass  # nothing more to do; the next writer ends the torn line

    def write(self, event: Event, t: float | None = None) -> dict[str, Any]:
        rec = event.to_record(t)
        start = self._size
        self._append(encode(rec))
        if self._index is not None:
            self._index.add(rec, start, self._size)
        for fn in _OBSERVERS:
            fn(rec)
        return rec

    def sync(self) -> None:
        """fsync the log (at run end and after checkpoints; not per line, that costs ms)."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
        except OSError as e:
            raise EventWriteError(
                e.errno, f"cannot sync {self.path}: {e.strerror or e}", self.path
            ) from None
        if self._index is not None:
            self._index.flush()

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None
                if self._index is not None:
                    self._index.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# The parser lives in ``trainer.events.parse`` (it needs the names above, hence the late
# import); its names stay importable from ``trainer.events`` as before.
from trainer.events import parse as _parse  # noqa: E402

MAX_STEP, MAX_WORLD, MAX_TIME, MAX_COUNT = (
    _parse.MAX_STEP, _parse.MAX_WORLD, _parse.MAX_TIME, _parse.MAX_COUNT,
)  # fmt: skip
validate, parse_line, parse_lines, line_error = (
    _parse.validate, _parse.parse_line, _parse.parse_lines, _parse.line_error,
)  # fmt: skip
