"""Typed views of a run: what each dashboard panel draws (``RunState`` builds them).

Frozen dataclasses of plain values, every string already cleaned (``text.clean``), so a
widget renders them without knowing the reducer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nal_tui.core.reducer.series import MinMaxSeries
from trainer.config.threads import BusyProcess


@dataclass(frozen=True)
class HeaderView:
    run_name: str
    status: str
    status_reason: str
    pid: int | None  # the live trainer's pid; None once the run ended or none is known
    since_last_event: float | None
    step: int | None
    target_step: int | None
    device: str
    world_size: int


@dataclass(frozen=True)
class ProgressView:
    step: int | None
    target_step: int | None
    progress: float
    epoch: int | None
    steps_per_s: float | None
    samples_per_s: float | None
    eta_s: float | None
    next_checkpoint_step: int | None  # None once the run ended
    next_checkpoint_eta_s: float | None
    ended: bool
    # (soonest, latest) ETA when the recent rate is noisy; None when it is steady.
    eta_range_s: tuple[float, float] | None = None


@dataclass(frozen=True)
class LossRowView:
    key: str
    label: str
    current: float | None
    avg: float | None
    trend_pct: float | None
    trend_dir: int
    series: MinMaxSeries


@dataclass(frozen=True)
class LossesView:
    rows: tuple[LossRowView, ...]
    recon_name: str
    resume_steps: tuple[int, ...]
    version: int


@dataclass(frozen=True)
class ValidationView:
    """One validation (or, from ``RunState.val``, the newest of each set side by side)."""

    step: int
    duration: float
    losses: tuple[tuple[str, float], ...]
    # (set label, ((metric, value), ...)) per set: "val", "unseen", ...; a set measured at
    # an older step than ``step`` is labelled "<set> @<step>".
    metrics: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]
    samples: tuple[str, ...]
    set: str = "val"


@dataclass(frozen=True)
class CheckpointRow:
    step: int
    path: str  # as the table keys it: run-dir relative when inside the run
    t: float | None
    bytes: int
    milestone: bool = False
    verified: bool | None = None  # None: not checked yet
    reason: str = ""
    abandoned: bool = False  # in checkpoints/abandoned/<dir>/: off the live branch
    latest: bool = False  # trainer.rundir.latest_checkpoint: what `r` and --resume latest use
    best: bool = False  # among the best checkpoints of the live branch (checkpoint events)


@dataclass(frozen=True)
class MilestoneRow:
    step: int
    t: float | None  # when the run first reached it; None while ahead
    name: str = ""


@dataclass(frozen=True)
class MilestonesView:
    rows: tuple[MilestoneRow, ...]  # the last reached ones and the next one
    pending: int  # more to the target after the next one
    next_eta_s: float | None


@dataclass(frozen=True)
class AlertRow:
    kind: str
    level: str
    step: int | None
    message: str
    t: float | None
    source: str = "dashboard"  # "trainer" when the trainer wrote it


@dataclass(frozen=True)
class AlertsView:
    rows: tuple[AlertRow, ...]  # oldest first
    dropped: int
    garbled: int
    garbled_sample: str | None


@dataclass(frozen=True)
class GpuRow:
    """One NVIDIA GPU's figures (core.gpu.GpuSampler); None where NVML does not say."""

    index: int
    name: str
    mem_used: int
    mem_total: int
    util_pct: int | None = None
    temp_c: int | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    ranks: tuple[int, ...] = ()  # our trainer's ranks with a context on this GPU
    other_procs: int = 0  # processes on it that are not our trainer's


@dataclass(frozen=True)
class GpuView:
    """Every GPU's figures, or, with none, why (``note``: one line, "no NVIDIA GPU ...")."""

    rows: tuple[GpuRow, ...]
    note: str = ""


@dataclass(frozen=True)
class SystemView:
    """Machine and trainer-process figures (services.SystemSampler)."""

    cpu_pct: float
    mem_used: int
    mem_total: int
    disk_free: int | None
    disk_total: int | None
    proc_state: str = "none"  # vocab.PID_*
    proc_pid: int | None = None
    proc_cpu_pct: float | None = None
    proc_rss: int | None = None
    proc_children: int = 0
    proc_note: str = ""
    cores: int = 1
    extra: dict[str, str] = field(default_factory=dict)
    threads: int | None = None  # the run's trainer threads per process (train.threads)
    threads_auto: bool = True  # train.threads 0: one per physical core
    busy: tuple[BusyProcess, ...] = ()  # other processes keeping CPUs busy, busiest first
    gpu: GpuView | None = None  # None: not sampled (tests with fixed figures)
