"""``RunState``: the reducer's parts, held as members, fed with records in log order.

Headless and single-threaded: feed and read it from one thread (the UI thread in the
dashboard). ``version`` goes up on every visible change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nal_tui.core.control.status import (
    DEFAULT_STALE_AFTER_S,
    StatusInputs,
    derive_status,
    refused_start,
)
from nal_tui.core.feed.blocks import StepBlock, as_float, block_from_records
from nal_tui.core.reducer.branches import Abandon, Branches
from nal_tui.core.reducer.checkpoints import CheckpointLog
from nal_tui.core.reducer.clock import StepClock
from nal_tui.core.reducer.detectors import (
    AlertLog,
    BackwardsDetector,
    CollapseDetector,
    GradSpikeDetector,
    ImbalanceDetector,
    NonfiniteDetector,
    StallDetector,
)
from nal_tui.core.reducer.losses import LossTrack
from nal_tui.core.reducer.progress import (
    PAUSE_CKPT,
    PAUSE_VAL,
    START_CLOCK_SLACK_S,
    STARTUP_STALL_S,
    Progress,
)
from nal_tui.core.reducer.series import is_rising
from nal_tui.core.reducer.summary import apply_summary
from nal_tui.core.reducer.summary import summary_ok as _summary_ok
from nal_tui.core.reducer.validation import ValidationLog
from nal_tui.core.reducer.views import (
    AlertRow,
    ValidationView,
)
from nal_tui.core.text import clean
from nal_tui.core.vocab import (
    ACTIVE_STATUSES,
    LEVEL_ERROR,
    LEVEL_INFO,
    LEVEL_WARNING,
    LEVELS,
    PID_LIVE,
    PID_NONE,
    PID_STATES,
    STATUS_CRASHED,
    STATUS_NOT_STARTED,
    STATUS_RUNNING,
)
from trainer.events import schema as ev
from trainer.events.index import BlockInfo
from trainer.events.schema import (
    ALERT_BRANCH,
    ALERT_CRASHED,
    ALERT_GARBLED,
    ALERT_RUN_FAILED,
    ALERT_START_REFUSED,
    LOSS_KEYS,
    OPT_KEYS,
)

_E_RUN_START, _E_STEP, _E_VAL = ev.RunStart.EVENT, ev.Step.EVENT, ev.Val.EVENT
_E_CKPT, _E_MILESTONE = ev.Checkpoint.EVENT, ev.Milestone.EVENT
_E_ALERT, _E_RUN_END = ev.Alert.EVENT, ev.RunEnd.EVENT
_E_RECOVERY = ev.Recovery.EVENT


@dataclass(frozen=True)
class Thresholds:
    """What the parts are built with (see ``RunState``)."""

    milestone_every: int | None
    avg_window: int
    rate_window: int
    stall_factor: float
    stall_min_s: float
    collapse_threshold: float
    collapse_window: int
    imbalance_factor: float
    spike_factor: float = 10.0

    def __post_init__(self) -> None:
        if self.avg_window < 4 or self.rate_window < 1 or self.collapse_window < 1:
            raise ValueError("RunState: avg_window >= 4 and rate/collapse windows >= 1")
        if self.milestone_every is not None and self.milestone_every < 0:
            raise ValueError(f"RunState: milestone_every must be >= 0 (got {self.milestone_every})")


class RunState:
    """Everything the dashboard shows about one run, rebuilt from its event records.

    Thresholds: ``avg_window`` logged values for averages and trends, ``rate_window``
    intervals for rates and ETA, ``milestone_every`` (None: the run's, else 10,000), stall
    after ``stall_factor`` x the usual interval (at least ``stall_min_s``), stale after
    ``stale_after_s`` without events and PID file, D collapse after ``collapse_window`` D
    values below ``collapse_threshold``, G/D imbalance at a drift of ``imbalance_factor``.
    The views the panels draw are functions of it (``present``).
    """

    # The parts, built anew by ``reset`` (the log's; what is known of the process stays).
    progress: Progress
    losses: dict[str, LossTrack]  # by LOSS_KEYS, in that order
    opt: dict[str, LossTrack]  # by OPT_KEYS: learning rates and gradient norms
    alerts: AlertLog
    nonfinite: NonfiniteDetector
    collapse: CollapseDetector
    imbalance: ImbalanceDetector
    spike: GradSpikeDetector
    backwards: BackwardsDetector
    stall: StallDetector
    branches: Branches
    checkpoints: CheckpointLog
    validation: ValidationLog
    clock: StepClock
    # The run, from its run_start.
    run_start: dict[str, Any] | None
    run_name: str
    run_id: str
    pid: int | None  # as run_start says (the PID file's is ``proc_pid``)
    device: str
    world_size: int
    batch_size: int
    recon_name: str
    config_path: str
    # The log as read.
    first_t: float | None
    last_event_t: float | None
    records: int
    garbled: int
    garbled_sample: str | None
    # Its end, from run_end.
    ended: bool
    end_status: str | None
    end_reason: str
    end_t: float | None
    exit_code: int | None
    # Derived.
    status: str
    status_reason: str

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
        spike_factor: float = 10.0,
    ) -> None:
        self.opts = Thresholds(
            milestone_every, avg_window, rate_window, stall_factor, stall_min_s,
            collapse_threshold, collapse_window, imbalance_factor, spike_factor,
        )  # fmt: skip
        self.stale_after_s = stale_after_s
        self.version = 0  # goes up on every visible change
        self.pid_state = PID_NONE  # what the PID file says: one of PID_*
        self.pid_started: float | None = None
        self.proc_pid: int | None = None
        self._stopping = False
        self._now: float | None = None
        self.reset()

    # ---- lifecycle

    def reset(self) -> None:
        """Forget the log (truncated or replaced); what is known of the process stays."""
        o = self.opts
        self.progress = Progress(o.rate_window, o.milestone_every, (o.stall_factor, o.stall_min_s))
        self.losses = {k: LossTrack(k, o.avg_window) for k in LOSS_KEYS}
        self.opt = {k: LossTrack(k, o.avg_window, lazy=True) for k in OPT_KEYS}  # built when shown
        self.alerts = AlertLog()
        self.nonfinite = NonfiniteDetector(self.alerts)
        self.collapse = CollapseDetector(self.alerts, o.collapse_threshold, o.collapse_window)
        self.imbalance = ImbalanceDetector(self.alerts, o.imbalance_factor)
        self.spike = GradSpikeDetector(self.alerts, o.spike_factor)
        self.backwards = BackwardsDetector(self.alerts)
        self.stall = StallDetector(self.alerts, o.stall_factor, o.stall_min_s)
        self.branches = Branches()
        self.checkpoints = CheckpointLog()
        self.validation = ValidationLog()
        self.clock = StepClock()  # when each live step was logged (charts against time)
        self.run_start = None
        self.recovery: dict[str, Any] | None = None  # the latest recovery event
        self.run_name = self.run_id = ""
        self.pid = None
        self.device = ""
        self.world_size = self.batch_size = 0
        self.recon_name = self.config_path = ""
        self.first_t = self.last_event_t = None
        self.records = self.garbled = 0
        self.garbled_sample = None
        self.ended = False
        self.end_status = None
        self.end_reason = ""
        self.end_t = None
        self.exit_code = None
        self._after_start = False  # the next step row follows a run_start
        self._crash_alerted = False
        self.status = STATUS_NOT_STARTED
        self.status_reason = "no events yet"
        self._update_status()
        self.version += 1

    # ---- inputs

    def feed(self, records: Sequence[dict[str, Any]]) -> None:
        """Apply validated records (``trainer.events.parse_line``) in log order."""
        if records:
            self.feed_block(block_from_records(records))

    def feed_block(self, block: StepBlock) -> None:
        """Apply a block of records in column form, in log order."""
        if not block.records:
            return
        prev = 0
        for i, rec in block.others:
            if i > prev:
                self._rows(block, prev, i)
            self._other(rec)
            prev = i
        if prev < len(block.steps):
            self._rows(block, prev, len(block.steps))
        if block.tail:
            self._tail(block.tail)
        self._seen(block.records, block.first_t, block.last_t)

    def note_garbled(self, count: int, sample: str | None) -> None:
        """Count ``count`` more unreadable lines (reported, never fatal)."""
        if count <= 0:
            return
        sample = clean(sample) if sample else None
        if self.garbled == 0:
            self._alert(
                ALERT_GARBLED,
                LEVEL_WARNING,
                self.progress.step,
                f"unreadable line(s) in the event log: {sample or '?'}",
                self.last_event_t,
            )
        self.garbled += count
        if sample:
            self.garbled_sample = sample
        self.version += 1

    def set_pid_state(
        self, pid_state: str, pid: int | None = None, started: float | None = None
    ) -> None:
        """What the PID file says (``proc.pid_state``): one of PID_*, the pid and when the
        PID file was written."""
        if pid_state not in PID_STATES:
            raise ValueError(f"set_pid_state: {pid_state!r} is not one of {PID_STATES}")
        changed = (pid_state, pid, started) != (self.pid_state, self.proc_pid, self.pid_started)
        self.pid_state, self.proc_pid, self.pid_started = pid_state, pid, started
        if changed:
            self._update_status()
            self.version += 1

    def set_stopping(self, on: bool = True) -> None:
        """A stop was requested: "stopping" until run_end arrives or the process is gone."""
        if self._stopping != on:
            self._stopping = on
            self._update_status()
            self.version += 1

    def refresh(self, now: float) -> None:
        """Time-based state: "stale" status and the "stalled" alert (about once a second)."""
        self._now = now
        before = (self.status, self.alerts.total)
        self._update_status()
        if self.status == STATUS_RUNNING and self.pid_state in (PID_LIVE, PID_NONE):
            p = self.progress
            since = self.since_last_event(now)
            if since is not None and self.pid_state == PID_LIVE and self.pid_started is not None:
                since = min(since, max(0.0, now - self.pid_started))  # no trainer, no clock
            starting = self.starting_up
            limit = (
                STARTUP_STALL_S if starting else self.stall.limit(p.usual_interval, p.last_pause_s)
            )
            self.stall.check(since, limit, p.step, now, p.usual_interval, starting)
        if (self.status, self.alerts.total) != before:
            self.version += 1

    def summary_ok(self, b: BlockInfo) -> bool:
        """Whether a block of the binary index can be applied from its summary alone."""
        return _summary_ok(b, self.progress, self.nonfinite, self.collapse, self.spike)

    def feed_summary(self, b: BlockInfo, before: Sequence[dict], after: Sequence[dict]) -> None:
        """Apply a block from its summary (the backlog loader, ``summary_ok`` must hold):
        ``before``/``after`` are its other records before its first / after its last row."""
        for rec in before:
            self._other(rec)
        if b.n_steps:
            self._after_start = False
            apply_summary(b, self, self.progress, self.nonfinite, self.collapse, self.imbalance)
            self.clock.add((b.first_step, b.last_step), (b.t_first, b.t_last))
        for rec in after:
            self._other(rec)
        n = b.n_steps + len(before) + len(after)
        first = before[0][ev.K_TIME] if before else (b.t_first if b.n_steps else None)
        last = after[-1][ev.K_TIME] if after else (b.t_last if b.n_steps else first)
        self._seen(n, first, last)

    # ---- queries

    @property
    def step(self) -> int | None:
        return self.progress.step

    def track(self, key: str) -> LossTrack | None:
        """The series of ``key``: a loss (LOSS_KEYS) or an optimiser figure (OPT_KEYS)."""
        return self.losses.get(key) or self.opt.get(key)

    @property
    def starting_up(self) -> bool:
        """A live trainer whose PID file is newer than the log's last run_start: it is still
        starting (it writes run_start once its run directory is open)."""
        if self.pid_state != PID_LIVE or self.pid_started is None:
            return False
        t = None if self.run_start is None else self.run_start.get(ev.K_TIME)
        return not isinstance(t, (int, float)) or t < self.pid_started - START_CLOCK_SLACK_S

    @property
    def target_step(self) -> int | None:
        return self.progress.target_step

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def val(self) -> ValidationView | None:
        """The newest validation of each set (val, unseen, ...) side by side."""
        return self.validation.latest()

    def since_last_event(self, now: float) -> float | None:
        return None if self.last_event_t is None else max(0.0, now - self.last_event_t)

    # ---- record handlers

    def _seen(self, n: int, first_t: Any, last_t: Any) -> None:
        if isinstance(last_t, (int, float)):
            self.last_event_t = float(last_t)
            if self.first_t is None and isinstance(first_t, (int, float)):
                self.first_t = float(first_t)
        self.records += n
        self.stall.open = False
        self._update_status()
        self.version += 1

    def _rows(self, b: StepBlock, lo: int, hi: int) -> None:
        whole = lo == 0 and hi == len(b.steps)
        steps = b.steps if whole else b.steps[lo:hi]
        ts = b.ts if whole else b.ts[lo:hi]
        cols = {k: (c if whole else c[lo:hi]) for k, c in zip(LOSS_KEYS, b.losses, strict=True)}
        finite = b.finite or all((s := sum(c)) - s == 0.0 for c in cols.values())
        rising = is_rising(steps)
        p = self.progress
        if p.step is not None and steps[0] <= p.step:
            if self._after_start:
                self.branches.mark_resume(steps[0])
            else:
                self.backwards.report(p.step, steps[0], ts[0])
            self.imbalance.reset_window()
            self.spike.reset_window()
        if not rising:
            for i in range(1, len(steps)):
                if steps[i] <= steps[i - 1]:
                    self.backwards.report(steps[i - 1], steps[i], ts[i])
        self._after_start = False
        p.rows(steps, ts, rising)
        self.clock.add(steps, ts, rising)
        for k, col in cols.items():
            tr = self.losses[k]
            tr.extend(steps, col, rising)
            tr.add_window(steps, col)
        opt = {k: (c if whole else c[lo:hi]) for k, c in zip(OPT_KEYS, b.opt, strict=True)}
        for k, col in opt.items():
            xs, ys = steps, col
            if (t := sum(col)) - t != 0.0:  # an absent gradient norm is no point
                keep = [i for i, v in enumerate(col) if v - v == 0.0]
                xs, ys = [steps[i] for i in keep], [col[i] for i in keep]
            if len(xs):
                tr = self.opt[k]
                tr.extend(xs, ys, rising)
                tr.add_window(xs, ys)
        self.spike.rows(steps, ts, opt["grad_norm_g"], opt["grad_norm_d"])
        self.nonfinite.rows(steps, ts, cols, finite)
        self.collapse.rows(steps, ts, cols["d"], finite)
        self.imbalance.rows(steps, ts, cols["adv"], cols["d"])

    def _tail(self, tail: list[dict[str, Any]]) -> None:
        p = self.progress
        p.samples_s.extend(as_float(r.get("samples_per_s")) for r in tail)
        p.step_time.extend(as_float(r.get("step_time")) for r in tail)
        p.epoch = tail[-1].get("epoch", p.epoch)
        if not self.recon_name:
            self.recon_name = clean(tail[-1].get("recon", ""), 40)

    def _other(self, rec: dict[str, Any]) -> None:
        kind = rec[ev.K_EVENT]
        t = float(rec[ev.K_TIME])
        step = rec.get("step")
        p = self.progress
        if kind == _E_RUN_START:
            p.pause()
            self._on_run_start(rec)
        elif kind == _E_VAL:
            p.pause(float(rec.get("duration", 0.0)), PAUSE_VAL)
            self.validation.add(rec)
        elif kind == _E_CKPT:
            p.pause(float(rec.get("duration", 0.0)), PAUSE_CKPT)
            self.checkpoints.add(rec)
        elif kind == _E_MILESTONE:
            p.reached.setdefault(step, t)
            p.names[step] = clean(rec.get("name", ""), 60)
        elif kind == _E_ALERT:
            level = rec.get("level", LEVEL_WARNING)
            akind = clean(rec["kind"], 40)
            recent = self.alerts.recent(5)
            if not any(a.kind == akind and a.step == step for a in recent):
                self._alert(
                    akind,
                    level if level in LEVELS else LEVEL_WARNING,
                    step,
                    clean(rec["message"]),
                    t,
                    source="trainer",
                )
        elif kind == _E_RECOVERY:
            p.pause()
            self._on_recovery(rec)
        elif kind == _E_RUN_END:
            p.pause()
            if refused_start("run_end" if self.ended else None, rec["status"]):
                self._alert(
                    ALERT_START_REFUSED,
                    LEVEL_WARNING,
                    step,
                    f"a start was refused, the run is unchanged: {clean(rec['reason'])} "
                    f"(exit code {rec['exit_code']})",
                    t,
                )
                return
            self.ended = True
            self.end_status = clean(rec["status"], 40)
            self.end_reason = clean(rec["reason"])
            self.end_t = t
            self.exit_code = rec["exit_code"]
            self._stopping = False
            if step or p.step is None:
                p.step = step
            if self.end_status == ev.STATUS_FAILED:
                self._alert(
                    ALERT_RUN_FAILED,
                    LEVEL_ERROR,
                    step,
                    f"run failed: {self.end_reason} (exit code {self.exit_code})",
                    t,
                )

    def _on_run_start(self, rec: dict[str, Any]) -> None:
        self.run_start = rec
        self.run_name = clean(rec.get("run_name") or self.run_name, 80)
        self.run_id = clean(rec["run_id"], 80)
        self.pid = rec["pid"] or None
        self.device = clean(rec["device"], 40)
        self.world_size = rec["world_size"]
        self.batch_size = rec.get("batch_size", 0)
        self.config_path = clean(rec["config_path"])
        self.recon_name = clean(rec.get("recon_loss") or self.recon_name, 40)
        p = self.progress
        p.checkpoint_every = rec.get("checkpoint_every", 0)
        p.val_every = rec.get("val_every", 0)
        p.milestone_run = rec.get("milestone_every", 0)
        if rec["target_step"]:
            p.target_step = rec["target_step"]
        self._start_at(rec, rec["start_step"])
        self.ended = False
        self.end_status = None
        self.end_t = None
        self._stopping = False
        self._crash_alerted = False

    def _on_recovery(self, rec: dict[str, Any]) -> None:
        """The trainer went back in-process (train.recover): the branch rule of a run_start
        at the step it went back to (a marker on the charts, the abandoned steps dropped)."""
        self.recovery = rec
        self._start_at(rec, rec["step"])
        self.nonfinite.open = False

    def _start_at(self, rec: dict[str, Any], start: int) -> None:
        """Training (re)starts at ``start``: the branch rule (steps past it abandoned, a
        marker on the charts), and the rate windows begin afresh."""
        p = self.progress
        drop = self.branches.at_run_start(rec, start, p.step, p.max_step)
        if drop is not None:
            self._abandon(drop, float(rec[ev.K_TIME]))
        p.step = start
        self._after_start = True
        self.imbalance.reset_window()
        self.spike.reset_window()

    def _abandon(self, drop: Abandon, t: float) -> None:
        """The steps after ``drop.keep`` belong to an abandoned branch (or were lost in a
        crash) and leave the live view; ``keep`` 0 starts over."""
        keep = drop.keep
        self.progress.truncate(keep)
        for tr in (*self.losses.values(), *self.opt.values()):
            tr.truncate(keep)
        self.validation.truncate(keep)
        self.checkpoints.truncate(keep)
        self.clock.truncate(keep)
        self.nonfinite.open = False
        self.collapse.summary()
        self.imbalance.reset_window()
        self.spike.reset_window(forget=keep == 0)
        if keep == 0:
            self.imbalance.ref = None
        self._alert(ALERT_BRANCH, LEVEL_INFO, keep, drop.message(), t)

    def _alert(self, kind, level, step, message, t, source: str = "dashboard") -> None:
        self.alerts.add(AlertRow(kind, level, step, message, t, source))

    def _update_status(self) -> None:
        since = None if self._now is None else self.since_last_event(self._now)
        self.status, self.status_reason = derive_status(
            StatusInputs(
                has_events=self.records > 0,
                end_status=(self.end_status or "") if self.ended else None,
                end_t=self.end_t,
                pid_state=self.pid_state,
                pid_started=self.pid_started,
                since_last_event=since,
                stopping=self._stopping,
                stale_after_s=self.stale_after_s,
            )
        )
        if self.status == STATUS_CRASHED and not self.ended and not self._crash_alerted:
            self._crash_alerted = True
            self._alert(
                ALERT_CRASHED, LEVEL_ERROR, self.progress.step, self.status_reason, self._now
            )
