"""The reducer: event records in, run state out (progress, rates, ETA, losses, alerts).

Headless and not thread-safe: call ``feed``/``refresh``/``set_*`` from one thread (the
UI thread) and read the attributes there. ``version`` goes up on every visible change.
Step records are folded into compact per-loss series and small windows, never kept.
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from trainer import events as ev
from trainer.events import K_EVENT, K_TIME, LOSS_KEYS, float_field

from .history import StepBlock, block_from_records
from .series import MinMaxSeries, is_rising

# Run status, as shown by the dashboard (see RunState.status for when each applies).
STATUS_NOT_STARTED = "not started"
STATUS_RUNNING = "running"
STATUS_STOPPING = "stopping"
STATUS_STOPPED = "stopped"
STATUS_COMPLETED = "completed"
STATUS_CRASHED = "crashed"
STATUS_STALE = "stale"
STATUSES = (
    STATUS_NOT_STARTED,
    STATUS_RUNNING,
    STATUS_STOPPING,
    STATUS_STOPPED,
    STATUS_COMPLETED,
    STATUS_CRASHED,
    STATUS_STALE,
)
ACTIVE_STATUSES = frozenset({STATUS_RUNNING, STATUS_STOPPING})

# What the run's PID file says about the trainer (nal_tui.runs.pid_state reads it).
PID_NONE = "none"  # no PID file
PID_LIVE = "live"  # a live process matches pid, create time and command line
PID_STALE = "stale"  # the recorded process is gone, or the pid now belongs to another one
PID_GARBLED = "garbled"  # unreadable or not the expected JSON
PID_STATES = (PID_NONE, PID_LIVE, PID_STALE, PID_GARBLED)
DEFAULT_STALE_AFTER_S = 300.0


def derive_status(
    *,
    has_events: bool,
    end_status: str | None,
    pid_state: str,
    since_last_event: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    stopping: bool = False,
    end_t: float | None = None,
    live_since: float | None = None,
) -> tuple[str, str]:
    """The one rule for a run's status, shared by the dashboard and the run list.

    Returns ``(status, reason)``. ``end_status`` is the status of a run_end that is the
    latest lifecycle event (None when the latest session has not ended); ``pid_state`` is
    one of ``PID_*``; ``since_last_event`` is the age of the newest event in seconds (None:
    unknown, counts as recent). A live trainer started after the run_end (``live_since >
    end_t``) is a new session that has not logged yet: it counts as running.
    """
    if pid_state not in PID_STATES:
        raise ValueError(f"derive_status: pid_state must be one of {PID_STATES}, not {pid_state!r}")
    live = STATUS_STOPPING if stopping else STATUS_RUNNING
    newer_live = (
        pid_state == PID_LIVE
        and live_since is not None
        and end_t is not None
        and live_since > end_t
    )
    if end_status is not None and not newer_live:
        if end_status == ev.STATUS_COMPLETED:
            return STATUS_COMPLETED, "the run reached its target (run_end: completed)"
        if end_status == ev.STATUS_STOPPED:
            return STATUS_STOPPED, "the trainer stopped on request (run_end: stopped)"
        return STATUS_CRASHED, f"the trainer ended with run_end status {end_status!r}"
    if pid_state == PID_LIVE:
        return live, "the trainer process is alive"
    if pid_state == PID_STALE:
        return (
            STATUS_CRASHED,
            "the trainer process is gone without writing run_end (its PID file is stale)",
        )
    if pid_state == PID_GARBLED:
        return STATUS_STALE, "the PID file is unreadable, so the trainer cannot be checked"
    if not has_events:
        return STATUS_NOT_STARTED, "no events yet"
    if since_last_event is not None and since_last_event > stale_after_s:
        return (
            STATUS_STALE,
            f"no trainer PID file and no event for {since_last_event:.0f} s "
            "(written elsewhere, copied, or the trainer was killed with its PID file)",
        )
    return live, "no trainer PID file, but the log is recent"


# Alerts the dashboard derives itself (the trainer's own kinds live in trainer.events).
ALERT_NONFINITE = ev.ALERT_NONFINITE
ALERT_D_COLLAPSE = "d_collapse"
ALERT_IMBALANCE = "gd_imbalance"
ALERT_STALLED = "stalled"
ALERT_CRASHED = "crashed"
ALERT_RUN_FAILED = "run_failed"
ALERT_GARBLED = "garbled"
LEVEL_INFO, LEVEL_WARNING, LEVEL_ERROR = "info", "warning", "error"

MAX_ALERTS = 1000
DEFAULT_MILESTONE_EVERY = 10_000


def _field(cls: type, name: str) -> str:
    """A field name checked against the schema class, so a rename fails at import."""
    if name not in {f.name for f in fields(cls)}:
        raise ImportError(f"trainer.events.{cls.__name__} has no field {name!r}")
    return name


_E_RUN_START, _E_STEP, _E_VAL = ev.RunStart.EVENT, ev.Step.EVENT, ev.Val.EVENT
_E_CKPT, _E_MILESTONE = ev.Checkpoint.EVENT, ev.Milestone.EVENT
_E_ALERT, _E_RUN_END = ev.Alert.EVENT, ev.RunEnd.EVENT
F_STEP = _field(ev.Step, "step")
F_EPOCH = _field(ev.Step, "epoch")
F_RECON = _field(ev.Step, "recon")
F_STEP_TIME = _field(ev.Step, "step_time")
F_SAMPLES_PER_S = _field(ev.Step, "samples_per_s")
F_START_STEP = _field(ev.RunStart, "start_step")
F_TARGET_STEP = _field(ev.RunStart, "target_step")
F_G, F_D, F_ADV = (_field(ev.Step, k) for k in ("g", "d", "adv"))
for _k in LOSS_KEYS:
    _field(ev.Step, _k)
_LOSS_FIELDS = {k: k for k in LOSS_KEYS}
_PAUSES = frozenset({_E_RUN_START, _E_VAL, _E_CKPT, _E_RUN_END})


@dataclass
class AlertRow:
    kind: str
    level: str
    step: int | None
    message: str
    t: float | None
    source: str = "dashboard"  # "trainer" when the trainer wrote it


@dataclass
class CheckpointRow:
    step: int
    t: float
    bytes: int
    path: str
    sha256: str
    milestone: bool = False
    duration: float = 0.0
    verified: bool | None = None  # set by the control layer after checking the file


@dataclass
class MilestoneRow:
    step: int
    t: float | None  # when the run first reached the step; None while not reached
    name: str = ""


@dataclass
class ValView:
    step: int
    t: float
    losses: dict[str, float] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)
    duration: float = 0.0


class LossView:
    """One loss: latest value, moving average and trend over a window, whole-run series."""

    def __init__(self, key: str, window: int = 100, trend_threshold_pct: float = 1.0) -> None:
        self.key = key
        self.series = MinMaxSeries()
        self.window: deque[float] = deque(maxlen=window)
        self.trend_threshold_pct = trend_threshold_pct

    @property
    def current(self) -> float | None:
        return self.window[-1] if self.window else None

    @property
    def moving_avg(self) -> float | None:
        """Mean of the finite values among the last ``window`` logged values."""
        w = self.window
        if not w:
            return None
        s = sum(w)
        if s - s == 0.0:  # all finite (the usual case): no filtering needed
            return s / len(w)
        fin = [v for v in w if math.isfinite(v)]
        return math.fsum(fin) / len(fin) if fin else None

    @property
    def trend_pct(self) -> float | None:
        """Percent change of the newer half of the window's mean over the older half's."""
        vals = list(self.window)
        half = len(vals) // 2
        old = [v for v in vals[: len(vals) - half] if math.isfinite(v)]
        new = [v for v in vals[len(vals) - half :] if math.isfinite(v)]
        if half < 2 or not old or not new:
            return None
        m_old = math.fsum(old) / len(old)
        if m_old == 0:
            return None
        return (math.fsum(new) / len(new) - m_old) / abs(m_old) * 100.0

    @property
    def trend_dir(self) -> int:
        """+1 rising, -1 falling, 0 flat (within ``trend_threshold_pct``) or unknown."""
        p = self.trend_pct
        if p is None or abs(p) < self.trend_threshold_pct:
            return 0
        return 1 if p > 0 else -1


def _median(xs: Iterable[float]) -> float | None:
    fin = [x for x in xs if x is not None and math.isfinite(x)]
    return statistics.median(fin) if fin else None


def _num(rec: Mapping[str, Any], key: str, default: Any = None) -> Any:
    v = rec.get(key, default)
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def _all_finite(xs: Sequence[float]) -> bool:
    s = sum(xs)
    return s - s == 0.0


def _alert_time(a: AlertRow) -> float:
    return math.inf if a.t is None else a.t


_PROCESS_ATTRS = ("process_alive", "pid_state", "_proc_pid", "_stopping", "_now")


class RunState:
    """Everything the dashboard shows about one run, rebuilt from its event records.

    Parameters are the dashboard's thresholds: ``avg_window`` logged values for moving
    averages and trends, ``rate_window`` step intervals for rates and ETA,
    ``milestone_every`` steps (None: the run's ``milestone_every``, else 10,000), stall after
    ``stall_factor`` x the usual event interval (at least ``stall_min_s``), stale after
    ``stale_after_s`` without events when the process is unknown, D collapse when the last
    ``collapse_window`` D losses are all below ``collapse_threshold``, G/D imbalance when
    the adv/D ratio of moving averages drifts by ``imbalance_factor`` from its first value.
    """

    def __init__(
        self,
        *,
        milestone_every: int | None = None,
        avg_window: int = 100,
        rate_window: int = 100,
        stall_factor: float = 20.0,
        stall_min_s: float = 60.0,
        stale_after_s: float = DEFAULT_STALE_AFTER_S,
        collapse_threshold: float = 0.01,
        collapse_window: int = 50,
        imbalance_factor: float = 4.0,
        check_every: int = 100,
    ) -> None:
        if avg_window < 4 or rate_window < 1 or collapse_window < 1 or check_every < 1:
            raise ValueError("RunState: avg_window >= 4 and rate/collapse/check windows >= 1")
        if milestone_every is not None and milestone_every < 0:
            raise ValueError(f"RunState: milestone_every must be >= 0 (got {milestone_every})")
        self._opts = dict(
            milestone_every=milestone_every,
            avg_window=avg_window,
            rate_window=rate_window,
            stall_factor=stall_factor,
            stall_min_s=stall_min_s,
            stale_after_s=stale_after_s,
            collapse_threshold=collapse_threshold,
            collapse_window=collapse_window,
            imbalance_factor=imbalance_factor,
            check_every=check_every,
        )
        self.reset()
        self.version = 0

    # ---- lifecycle -------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the log (it was truncated or replaced); what the control layer said about
        the process is kept. ``version`` still rises."""
        keep = {k: getattr(self, k) for k in _PROCESS_ATTRS if hasattr(self, k)}
        self._reset_log()
        self.__dict__.update(keep)
        self._update_status()

    def _reset_log(self) -> None:
        o = self._opts
        self._milestone_opt: int | None = o["milestone_every"]
        self.avg_window: int = o["avg_window"]
        self.stall_factor: float = o["stall_factor"]
        self.stall_min_s: float = o["stall_min_s"]
        self.stale_after_s: float = o["stale_after_s"]
        self.collapse_threshold: float = o["collapse_threshold"]
        self.collapse_window: int = o["collapse_window"]
        self.imbalance_factor: float = o["imbalance_factor"]
        self.check_every: int = o["check_every"]
        # Run identity (latest run_start).
        self.run_name = ""
        self.run_id = ""
        self.pid: int | None = None
        self.device = ""
        self.world_size = 0
        self.batch_size = 0
        self.recon_name = ""
        self.config_path = ""
        self.run_start: dict[str, Any] | None = None
        self.first_t: float | None = None
        self.last_event_t: float | None = None
        self.records = 0
        # Progress.
        self.step: int | None = None
        self.max_step: int | None = None
        self.target_step: int | None = None
        self.epoch: int | None = None
        self.checkpoint_every = 0
        self.val_every = 0
        self._ms_every_run = 0
        self._step_dt: deque[float] = deque(maxlen=self._opts["rate_window"])
        self._event_dt: deque[float] = deque(maxlen=self._opts["rate_window"])
        self._samples_s: deque[float] = deque(maxlen=20)
        self._step_time: deque[float] = deque(maxlen=20)
        self._ref: tuple[int, float] | None = None  # last step event, None after a pause
        self._last_pause_s = 0.0
        # Losses and derived checks.
        self.losses: dict[str, LossView] = {k: LossView(k, self.avg_window) for k in LOSS_KEYS}
        self._nonfinite_open = False
        self._collapse_open = False
        self._collapse_run = 0  # consecutive D values below the threshold
        self._imbalance_open = False
        self._imbalance_ref: float | None = None
        self._since_check = 0
        # Tables.
        self.val: ValView | None = None
        self.vals: list[ValView] = []
        self.checkpoints: list[CheckpointRow] = []
        self._ms_reached: dict[int, float] = {}
        self._ms_names: dict[int, str] = {}
        self.alerts: list[AlertRow] = []
        self.alerts_dropped = 0
        self.resume_steps: list[int] = []
        self.garbled = 0
        self.garbled_sample: str | None = None
        # Lifecycle.
        self.ended = False
        self.end_status: str | None = None
        self.end_reason = ""
        self.exit_code: int | None = None
        self.process_alive: bool | None = None
        self.pid_state = PID_NONE
        self.status_reason = "no events yet"
        self._proc_pid: int | None = None
        self._stopping = False
        self._stalled_open = False
        self._crash_alerted = False
        self._now: float | None = None
        self.status = STATUS_NOT_STARTED
        self.version = getattr(self, "version", 0) + 1

    # ---- inputs ------------------------------------------------------------------------

    def feed(self, records: list[dict[str, Any]]) -> None:
        """Apply records (parsed by ``trainer.events.loads``) in log order."""
        if records:
            self.feed_block(block_from_records(records))

    def feed_block(self, block: StepBlock) -> None:
        """Apply a block of records in column form (``nal_tui.history``), in log order.

        The same result as feeding its records one by one; a history load hands whole
        chunks of the log over this way, without a dict per step.
        """
        if not block.records:
            return
        n_alerts = len(self.alerts)
        runs: list[tuple[Sequence[int], Sequence[float], tuple[int, float] | None]] = []
        prev = 0
        for i, rec in block.others:
            if i > prev:
                runs.append(self._fold_run(block, prev, i))
            self._feed_other(rec)
            prev = i
        if prev < len(block.steps):
            runs.append(self._fold_run(block, prev, len(block.steps)))
        for why in block.rejected:  # step records the reducer cannot use: counted, not fatal
            self.garbled += 1
            self.garbled_sample = why
        if runs:
            self._rates(runs)
            self._from_tail(block.tail)
        t = block.last_t
        if isinstance(t, (int, float)):
            self.last_event_t = float(t)
            if self.first_t is None:
                self.first_t = _num({K_TIME: block.first_t}, K_TIME)
        self.records += block.records
        self._stalled_open = False
        if len(self.alerts) > n_alerts:  # keep the new alerts in time order across kinds
            self.alerts[n_alerts:] = sorted(self.alerts[n_alerts:], key=_alert_time)
        self._update_status()
        self.version += 1

    def note_garbled(self, count: int, sample: str | None) -> None:
        """Count ``count`` more unreadable lines (reported, never fatal)."""
        if count <= 0:
            return
        if self.garbled == 0:
            self._alert(
                ALERT_GARBLED,
                LEVEL_WARNING,
                self.step,
                f"unreadable line(s) in the event log: {sample or '?'}",
                self.last_event_t,
            )
        self.garbled += count
        if sample:
            self.garbled_sample = sample
        self.version += 1

    def set_process(self, alive: bool | None, pid: int | None = None) -> None:
        """The control layer's word on the trainer process (see ``set_pid_state``).

        True: the PID file's process is alive and verified (``PID_LIVE``). False: the PID
        file names a process that is gone (``PID_STALE``: "crashed" without run_end).
        None: no PID file (``PID_NONE``: the status follows the log's age).
        """
        self.set_pid_state({True: PID_LIVE, False: PID_STALE, None: PID_NONE}[alive], pid)

    def set_pid_state(self, pid_state: str, pid: int | None = None) -> None:
        """What the run's PID file says (one of ``PID_*``, from ``nal_tui.runs.pid_state``).

        A garbled PID file makes a run without run_end "stale"; see ``derive_status``.
        """
        if pid_state not in PID_STATES:
            raise ValueError(f"set_pid_state: {pid_state!r} is not one of {PID_STATES}")
        if pid is not None:
            self.pid = self._proc_pid = pid
        if pid_state != self.pid_state:
            self.pid_state = pid_state
            self.process_alive = {PID_LIVE: True, PID_STALE: False}.get(pid_state)
            self._update_status()
            self.version += 1

    def set_stopping(self) -> None:
        """A stop was requested: "stopping" until run_end arrives or the process is gone."""
        if not self._stopping:
            self._stopping = True
            self._update_status()
            self.version += 1

    def set_checkpoint_verified(self, path: str, ok: bool | None) -> None:
        """Record the control layer's verification of a checkpoint file."""
        for row in self.checkpoints:
            if row.path == path and row.verified != ok:
                row.verified = ok
                self.version += 1

    def refresh(self, now: float) -> None:
        """Time-based state: "stale" status and the "stalled" alert. Call about once a second."""
        self._now = now
        before = (self.status, len(self.alerts))
        self._update_status()
        if self.status == STATUS_RUNNING and self.process_alive is not False:
            since = self.since_last_event(now)
            limit = self.stall_limit_s
            if since is not None and limit is not None and since > limit and not self._stalled_open:
                self._stalled_open = True
                self._alert(
                    ALERT_STALLED,
                    LEVEL_WARNING,
                    self.step,
                    f"no event for {since:.0f} s (usual interval "
                    f"{(self._usual_interval() or 0):.2f} s)",
                    now,
                )
        if (self.status, len(self.alerts)) != before:
            self.version += 1

    # ---- derived values ----------------------------------------------------------------

    def since_last_event(self, now: float) -> float | None:
        return None if self.last_event_t is None else max(0.0, now - self.last_event_t)

    @property
    def stalled(self) -> bool:
        return self._stalled_open

    @property
    def stall_limit_s(self) -> float | None:
        """Seconds without an event after which a running trainer counts as stalled."""
        usual = self._usual_interval()
        if usual is None:
            return None
        return max(self.stall_factor * usual, self.stall_min_s, 3.0 * self._last_pause_s)

    def _usual_interval(self) -> float | None:
        return _median(self._event_dt)

    @property
    def seconds_per_step(self) -> float | None:
        """Median of recent per-step intervals (validation/checkpoint pauses excluded)."""
        m = _median(self._step_dt)
        if m is None or m <= 0:
            m = _median(self._step_time)
        return m if m is not None and m > 0 else None

    @property
    def steps_per_s(self) -> float | None:
        sps = self.seconds_per_step
        return 1.0 / sps if sps else None

    @property
    def samples_per_s(self) -> float | None:
        return _median(self._samples_s)

    @property
    def progress(self) -> float:
        if not self.target_step or self.step is None:
            return 0.0
        return min(1.0, max(0.0, self.step / self.target_step))

    @property
    def eta_s(self) -> float | None:
        """Seconds to the target at the recent rate; None when unknown or not running."""
        if (
            self.step is None
            or not self.target_step
            or self.status not in ACTIVE_STATUSES | {STATUS_STALE}
        ):
            return None
        if self.step >= self.target_step:
            return 0.0
        sps = self.seconds_per_step
        return None if sps is None else (self.target_step - self.step) * sps

    @property
    def next_checkpoint_step(self) -> int | None:
        if self.step is None or self.checkpoint_every <= 0:
            return None
        nxt = (self.step // self.checkpoint_every + 1) * self.checkpoint_every
        if self.target_step:
            if self.step >= self.target_step:
                return None
            nxt = min(nxt, self.target_step)
        return nxt

    @property
    def next_checkpoint_eta_s(self) -> float | None:
        nxt, sps = self.next_checkpoint_step, self.seconds_per_step
        if nxt is None or sps is None or self.step is None:
            return None
        return (nxt - self.step) * sps

    @property
    def milestone_every(self) -> int:
        if self._milestone_opt is not None:
            return self._milestone_opt
        return self._ms_every_run or DEFAULT_MILESTONE_EVERY

    @property
    def milestones(self) -> list[MilestoneRow]:
        """Every ``milestone_every`` steps up to the target (and the target itself)."""
        every = self.milestone_every
        top = self.target_step or self.max_step or 0
        steps = set(range(every, top + 1, every)) if every > 0 else set()
        if self.target_step:
            steps.add(self.target_step)
        steps.update(self._ms_names)
        return [
            MilestoneRow(s, self._ms_reached.get(s), self._ms_names.get(s, ""))
            for s in sorted(steps)
        ]

    # ---- record handlers ---------------------------------------------------------------

    def _feed_other(self, rec: dict[str, Any]) -> None:
        kind = rec.get(K_EVENT)
        t = _num(rec, K_TIME, 0.0)
        step = _num(rec, F_STEP)
        if kind in _PAUSES:
            self._ref = None
        if kind == _E_RUN_START:
            self._on_run_start(rec, t)
        elif kind == _E_VAL:
            losses = rec.get("losses") if isinstance(rec.get("losses"), dict) else {}
            samples = rec.get("samples") if isinstance(rec.get("samples"), list) else []
            v = ValView(
                int(step or 0),
                t,
                {k: float_field(losses, k) for k in losses},
                [str(s) for s in samples],
                float(_num(rec, "duration", 0.0)),
            )
            self.val = v
            self.vals.append(v)
            self._last_pause_s = max(self._last_pause_s * 0.5, v.duration)
        elif kind == _E_CKPT:
            row = CheckpointRow(
                int(step or 0),
                t,
                int(_num(rec, "bytes", 0)),
                str(rec.get("path", "")),
                str(rec.get("sha256", "")),
                bool(rec.get("milestone", False)),
                float(_num(rec, "duration", 0.0)),
            )
            self.checkpoints.append(row)
            self._last_pause_s = max(self._last_pause_s * 0.5, row.duration)
        elif kind == _E_MILESTONE:
            if step is not None:
                self._ms_reached.setdefault(int(step), t)
                self._ms_names[int(step)] = str(rec.get("name", ""))
        elif kind == _E_ALERT:
            akind = str(rec.get("kind", ""))
            recent = self.alerts[-5:]
            if not any(a.kind == akind and a.step == step for a in recent):
                self._alert(
                    akind,
                    str(rec.get("level", LEVEL_WARNING)),
                    step,
                    str(rec.get("message", "")),
                    t,
                    source="trainer",
                )
        elif kind == _E_RUN_END:
            self.ended = True
            self.end_status = str(rec.get("status", ""))
            self.end_reason = str(rec.get("reason", ""))
            self.exit_code = _num(rec, "exit_code")
            self._stopping = False
            if step is not None:
                self.step = int(step)
            if self.end_status == ev.STATUS_FAILED:
                self._alert(
                    ALERT_RUN_FAILED,
                    LEVEL_ERROR,
                    step,
                    f"run failed: {self.end_reason} (exit code {self.exit_code})",
                    t,
                )

    def _on_run_start(self, rec: dict[str, Any], t: float) -> None:
        self.run_start = rec
        self.run_name = str(rec.get("run_name") or self.run_name)
        self.run_id = str(rec.get("run_id", ""))
        self.pid = _num(rec, "pid", None)
        self.device = str(rec.get("device", ""))
        self.world_size = int(_num(rec, "world_size", 1))
        self.batch_size = int(_num(rec, "batch_size", 0))
        self.config_path = str(rec.get("config_path", ""))
        self.recon_name = str(rec.get("recon_loss") or self.recon_name)
        self.checkpoint_every = int(_num(rec, "checkpoint_every", 0))
        self.val_every = int(_num(rec, "val_every", 0))
        self._ms_every_run = int(_num(rec, "milestone_every", 0))
        target = _num(rec, F_TARGET_STEP)
        if target:
            self.target_step = int(target)
        start = int(_num(rec, F_START_STEP, 0))
        if start > 0 or (self.step is not None and start <= self.step):
            self._mark_resume(start)
        self.step = start
        self.ended = False
        self.end_status = None
        self._stopping = False
        self._crash_alerted = False
        if self.pid != self._proc_pid:  # a new process: what we knew was about the old one
            self.process_alive = None
            self.pid_state = PID_NONE

    def _mark_resume(self, step: int) -> None:
        if not self.resume_steps or self.resume_steps[-1] != step:
            self.resume_steps.append(step)

    def _fold_run(
        self, b: StepBlock, lo: int, hi: int
    ) -> tuple[Sequence[int], Sequence[float], tuple[int, float] | None]:
        """Fold consecutive step rows ``lo:hi`` of a block: resumes, milestones, series,
        non-finite and collapse scans, windows. Returns the run for the rate estimate."""
        whole = lo == 0 and hi == len(b.steps)
        steps = b.steps if whole else b.steps[lo:hi]
        ts = b.ts if whole else b.ts[lo:hi]
        cols = {k: (c if whole else c[lo:hi]) for k, c in zip(LOSS_KEYS, b.losses, strict=True)}
        finite = b.finite or all(_all_finite(c) for c in cols.values())
        rising = is_rising(steps)
        # Resumes: a step at or below the previous one (a run_start already moved self.step).
        if self.step is not None and steps[0] <= self.step:
            self._mark_resume(steps[0])
        if not rising:
            for i in range(1, len(steps)):
                if steps[i] <= steps[i - 1]:
                    self._mark_resume(steps[i])
        ref = self._ref
        self._ref = (steps[-1], ts[-1])
        self.step = steps[-1]
        self._reach_milestones(steps, ts, rising)
        top = steps[-1] if rising else max(steps)
        self.max_step = top if self.max_step is None else max(self.max_step, top)
        for k, col in cols.items():
            self.losses[k].series.extend(steps, col, rising=rising)
        if not finite or self._nonfinite_open:
            self._scan_nonfinite(steps, ts, cols)
        self._scan_collapse(steps, ts, cols[F_D], finite)
        self._windows_in_batch(steps, ts, cols)
        return steps, ts, ref

    def _rates(self, runs: list[tuple[Sequence[int], Sequence[float], Any]]) -> None:
        """Per-step intervals between neighbouring step events, pauses excluded; only the
        newest runs matter (the windows hold ``rate_window`` intervals)."""
        need = self._step_dt.maxlen or 0
        first = len(runs)
        while first > 0 and need > 0:
            first -= 1
            need -= len(runs[first][0])
        for steps, ts, ref in runs[first:]:
            n = len(steps)
            lo = max(0, n - (self._step_dt.maxlen or 0))
            if lo == 0 and ref is not None:
                self._interval(ref[0], ref[1], steps[0], ts[0])
            for i in range(max(lo, 1), n):
                self._interval(steps[i - 1], ts[i - 1], steps[i], ts[i])

    def _from_tail(self, tail: list[dict[str, Any]]) -> None:
        """What only the newest step records say: throughput, step time, epoch, recon."""
        self._samples_s.extend(float_field(r, F_SAMPLES_PER_S) for r in tail)
        self._step_time.extend(float_field(r, F_STEP_TIME) for r in tail)
        last = tail[-1]
        self.epoch = _num(last, F_EPOCH, self.epoch)
        if not self.recon_name and isinstance(last.get(F_RECON), str):
            self.recon_name = last[F_RECON]

    def _interval(self, s0: int, t0: float, s1: int, t1: float) -> None:
        ds, dt = s1 - s0, t1 - t0
        if ds > 0 and dt >= 0:
            self._step_dt.append(dt / ds)
            self._event_dt.append(dt)

    def _reach_milestones(
        self, steps: Sequence[int], ts: Sequence[float], rising: bool = False
    ) -> None:
        every = self.milestone_every
        wanted: list[int] = []
        prev = self.max_step or 0
        top = steps[-1] if rising else max(steps)
        if every > 0 and top >= every:
            wanted = list(range((prev // every + 1) * every, top + 1, every))
        if self.target_step and prev < self.target_step <= top:
            wanted.append(self.target_step)
        j = 0  # the first step reaching m never comes before the one reaching a smaller m
        for m in sorted(set(wanted)):
            if m in self._ms_reached:
                continue
            if rising:
                j = bisect_left(steps, m, j)
                if j < len(steps):
                    self._ms_reached[m] = float(ts[j])
                continue
            while j < len(steps) and steps[j] < m:
                j += 1
            if j < len(steps):
                self._ms_reached[m] = float(ts[j])

    def _scan_nonfinite(self, steps: list[int], ts: list[float], cols: dict[str, list]) -> None:
        isfinite = math.isfinite
        for i in range(len(steps)):
            bad = [k for k in LOSS_KEYS if not isfinite(cols[k][i])]
            if bad and not self._nonfinite_open:
                vals = ", ".join(f"{k}={cols[k][i]}" for k in bad)
                self._alert(
                    ALERT_NONFINITE,
                    LEVEL_ERROR,
                    steps[i],
                    f"non-finite loss at step {steps[i]}: {vals}",
                    ts[i],
                )
            self._nonfinite_open = bool(bad)

    def _windows_in_batch(self, steps: list[int], ts: list[float], cols: dict[str, list]) -> None:
        """Slide the loss windows over a batch, running the checks every ``check_every`` values."""
        n, w, every = len(steps), self.avg_window, self.check_every
        done = 0
        p = every - self._since_check  # values of this batch consumed at the next check
        while p <= n:
            a = max(done, p - w)
            for k, col in cols.items():
                self.losses[k].window.extend(col[a:p])
            done = p
            self._check_windows(steps[p - 1], ts[p - 1])
            p += every
        a = max(done, n - w)
        for k, col in cols.items():
            self.losses[k].window.extend(col[a:n])
        self._since_check = (self._since_check + n) % every

    def _scan_collapse(
        self, steps: list[int], ts: list[float], d: list[float], finite: bool
    ) -> None:
        """D collapse: ``collapse_window`` consecutive D values below the threshold."""
        thr = self.collapse_threshold
        if finite and min(d) >= thr:  # the usual case, at C speed
            self._collapse_run = 0
            self._collapse_open = False
            return
        for i, v in enumerate(d):
            if v < thr:  # NaN compares False: it breaks a collapse run
                self._collapse_run += 1
                if self._collapse_run == self.collapse_window and not self._collapse_open:
                    self._collapse_open = True
                    self._alert(
                        ALERT_D_COLLAPSE,
                        LEVEL_WARNING,
                        steps[i],
                        f"D loss below {thr:g} for the last {self.collapse_window} "
                        "logged values (discriminator collapse?)",
                        ts[i],
                    )
            else:
                self._collapse_run = 0
                self._collapse_open = False

    def _check_windows(self, step: int | None, t: float | None) -> None:
        """G/D imbalance: the adv/D ratio of moving averages against its first value."""
        adv, dl = self.losses[F_ADV], self.losses[F_D]
        if len(adv.window) < self.avg_window or len(dl.window) < self.avg_window:
            return
        a, b = adv.moving_avg, dl.moving_avg
        if a is None or b is None or a <= 0 or b <= 0:
            return
        ratio = a / b
        if self._imbalance_ref is None:
            self._imbalance_ref = ratio
            return
        drift = ratio / self._imbalance_ref
        far = drift > self.imbalance_factor or drift < 1.0 / self.imbalance_factor
        near = 1.0 / math.sqrt(self.imbalance_factor) < drift < math.sqrt(self.imbalance_factor)
        if far and not self._imbalance_open:
            self._imbalance_open = True
            self._alert(
                ALERT_IMBALANCE,
                LEVEL_WARNING,
                step,
                f"G/D imbalance: adv/D ratio {ratio:.3g} drifted x{drift:.2f} "
                f"from {self._imbalance_ref:.3g}",
                t,
            )
        elif near:
            self._imbalance_open = False

    def _alert(
        self,
        kind: str,
        level: str,
        step: int | None,
        message: str,
        t: float | None,
        source: str = "dashboard",
    ) -> None:
        self.alerts.append(AlertRow(kind, level, step, message, t, source))
        if len(self.alerts) > MAX_ALERTS:
            del self.alerts[0]
            self.alerts_dropped += 1

    def _update_status(self) -> None:
        self.status = self._compute_status()
        if self.status == STATUS_CRASHED and not self.ended and not self._crash_alerted:
            self._crash_alerted = True
            self._alert(ALERT_CRASHED, LEVEL_ERROR, self.step, self.status_reason, self._now)

    def _compute_status(self) -> str:
        """Status from the log and the PID file, by ``derive_status``; ``status_reason`` says why.

        The log's age is taken as of the last ``refresh`` (unknown before: counts as recent).
        """
        since = None if self._now is None else self.since_last_event(self._now)
        status, self.status_reason = derive_status(
            has_events=self.records > 0,
            end_status=(self.end_status or "") if self.ended else None,
            pid_state=self.pid_state,
            since_last_event=since,
            stale_after_s=self.stale_after_s,
            stopping=self._stopping,
        )
        return status
