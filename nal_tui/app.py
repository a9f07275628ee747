"""The dashboard: wires the follower, reducer, control layer and widgets together.

Threads (follower, system sampler, checkpoint verifier, control actions) only post
messages or ``call_from_thread``; the reducer is fed and read on the UI thread. Redraws
happen only when ``RunState.version`` moved, at most ~20 per second, and never more than
~50 ms after a change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Static

from nal_tui import control, preflight, runs
from nal_tui.follow import LogFollower
from nal_tui.messages import (
    CheckpointsVerified,
    HistoryLoaded,
    RecordsArrived,
    SystemSample,
    SystemSampled,
)
from nal_tui.screens.help import HelpScreen
from nal_tui.screens.launch import LaunchRequest, ResumeScreen, StartScreen, preflight_text
from nal_tui.screens.runs import RunPickerScreen
from nal_tui.screens.stop import KillScreen, StopScreen
from nal_tui.state import RunState
from nal_tui.widgets.alerts import AlertsPanel
from nal_tui.widgets.chart import BigChart
from nal_tui.widgets.checkpoints import (
    CheckpointTable,
    CheckpointVerifier,
    MilestonesPanel,
    resolve_checkpoint,
    verified_cell,
)
from nal_tui.widgets.header import HeaderBar
from nal_tui.widgets.losses import LossesPanel, loss_label
from nal_tui.widgets.progress import ProgressPanel
from nal_tui.widgets.system import SystemPanel, SystemSampler
from nal_tui.widgets.validation import ValidationPanel
from trainer import rundir
from trainer.events import LOSS_KEYS

W = TypeVar("W")

MIN_REDRAW_S = 0.05  # at most ~20 redraws/s; a change waits at most this long
# Whole-run charts change by a column at most per step; redrawing them (a bucket query per
# chart) on every step would cost more than the figures, so they follow at most 2x/s.
CHART_MIN_S = 0.5
REVERIFY_EVERY_S = 5.0  # re-stat checkpoints (cached hashes) to notice deletions/changes
ALERT_TOASTS_PER_BATCH = 3
_SEVERITY = {"error": "error", "critical": "error", "warning": "warning"}

# Keys shown by `?` beyond the app's own bindings (they belong to focused widgets).
EXTRA_KEYS = [
    ("↑ / ↓", "move in the checkpoint table"),
    ("Enter", "resume from the checkpoint selected in the table"),
]


class NalTuiApp(App[None]):
    """nal-tui: watch, start, stop and resume one training run."""

    CSS_PATH = "app.tcss"
    TITLE = "nal-tui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "Quit", tooltip="quit; the trainer keeps running"),
        Binding(
            "ctrl+c",
            "quit",
            "Quit",
            show=False,
            priority=True,
            tooltip="quit cleanly; the trainer keeps running",
        ),
        Binding("question_mark", "help", "Keys", key_display="?", tooltip="show every key"),
        Binding("s", "start", "Start", tooltip="start training from the config (confirm)"),
        Binding("x", "stop", "Stop", tooltip="stop the trainer: SIGTERM, it saves a checkpoint"),
        Binding(
            "r",
            "resume",
            "Resume",
            tooltip="resume from the latest verified checkpoint (confirm, new target)",
        ),
        Binding("o", "pick_run", "Runs", tooltip="open another run under the logs directory"),
        *[
            Binding(
                str(i + 1),
                f"select_loss({i})",
                loss_label(k),
                show=False,
                tooltip=f"show the {loss_label(k)} loss in the big chart",
            )
            for i, k in enumerate(LOSS_KEYS)
        ],
        Binding(
            "tab",
            "cycle_loss(1)",
            "Next loss",
            show=False,
            priority=True,
            tooltip="big chart: next loss",
        ),
        Binding(
            "shift+tab",
            "cycle_loss(-1)",
            "Prev loss",
            show=False,
            priority=True,
            tooltip="big chart: previous loss",
        ),
        Binding("m", "toggle_smooth", "Smooth", tooltip="big chart: smoothing on/off"),
        Binding("l", "toggle_log", "Log", tooltip="big chart: log scale on/off"),
        Binding("b", "toggle_bell", "Bell", tooltip="ring the terminal bell on alerts on/off"),
    ]

    def __init__(
        self,
        run_dir: Path | None,
        logs_dir: Path,
        config_path: Path,
        polling: bool = False,
        *,
        bell: bool = False,
        stop_grace_s: float = control.DEFAULT_GRACE_S,
        build_models: bool = True,
    ) -> None:
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.logs_dir = Path(logs_dir)
        self.config_path = Path(config_path)
        self.polling = polling
        self.bell_on = bell
        self.stop_grace_s = stop_grace_s
        self.build_models = build_models  # preflight builds the models (slow, thorough)
        self.state = RunState()
        self.selected = 0
        self.smooth = False
        self.log_scale = False
        self.loading = False
        self.verified: dict[str, tuple[bool, str]] = {}
        self.sample: SystemSample | None = None
        self.follower: LogFollower | None = None
        self._loading_follower: LogFollower | None = None
        self.drawn_version = -1
        self.draw_count = 0
        self._gen = 0
        self._last_draw = 0.0
        self._redraw_timer: Timer | None = None
        self._chart_timer: Timer | None = None
        self._last_chart = 0.0
        self._alerts_seen = 0
        self._last_reverify = 0.0
        self._sampler: SystemSampler | None = None
        self._closed = False
        self._widgets: dict[tuple[type, str | None], Any] = {}
        self._verifier: CheckpointVerifier | None = None

    # ---- layout ----------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static(id="welcome")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield ProgressPanel(id="progress", classes="panel")
                yield LossesPanel(LOSS_KEYS, id="losses")
                yield BigChart(id="big", classes="panel")
            with Vertical(id="right"):
                yield CheckpointTable(id="checkpoints")
                yield MilestonesPanel(id="milestones", classes="panel")
                yield ValidationPanel(id="validation", classes="panel")
                yield SystemPanel(id="system", classes="panel")
                yield AlertsPanel(id="alerts", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        titles = {
            "progress": "Progress",
            "losses": "Losses",
            "checkpoints": "Checkpoints",
            "milestones": "Milestones",
            "validation": "Validation",
            "system": "System",
            "alerts": "Alerts",
        }
        for wid, title in titles.items():
            self.screen_stack[0].query_one(f"#{wid}").border_title = title
        self._verifier = CheckpointVerifier(self._verified_from_thread)
        self._sampler = SystemSampler(self._disk_path(), self._find_proc, self._sample_from_thread)
        self._sampler.start()
        self.set_interval(1.0, partial(self._while_mounted, self._tick))
        if self.run_dir is None:
            latest = runs.latest_run(self.logs_dir)
            self.run_dir = latest.path if latest is not None else None
        if self.run_dir is None:
            self._show_welcome()
        else:
            self.open_run(self.run_dir)
        self._update_big_title()
        self._w(CheckpointTable).focus()

    def on_unmount(self) -> None:
        self._closed = True
        self._gen += 1
        self._stop_followers()
        if self._sampler is not None:
            self._sampler.stop()
        if self._verifier is not None:
            self._verifier.stop()

    def _w(self, cls: type[W], selector: str | None = None) -> W:
        """A dashboard widget, found on the main screen even while a dialog is open."""
        key = (cls, selector)
        w = self._widgets.get(key)
        if w is None:
            w = self._widgets[key] = self.screen_stack[0].query_one(selector or cls, cls)
        return w  # type: ignore[return-value]

    # ---- opening a run ---------------------------------------------------------------

    def open_run(self, run_dir: Path) -> None:
        """Follow ``run_dir``: tail preview at once, history in a worker, then live lines."""
        self._gen += 1
        gen = self._gen
        self._stop_followers()
        self.run_dir = Path(run_dir)
        self.verified = {}
        self.state = RunState()
        self.loading = True
        self._alerts_seen = 0
        self._w(Static, "#welcome").display = False
        self._w(Horizontal, "#body").display = True
        if self._sampler is not None:
            self._sampler.disk_path = self._disk_path()
        self._redraw(force=True)
        self.run_worker(
            partial(self._load_history, gen, self.run_dir),
            thread=True,
            group="history",
            exit_on_error=False,
        )

    def _stop_followers(self) -> None:
        for f in (self.follower, self._loading_follower):
            if f is not None:
                f.stop()
        self.follower = self._loading_follower = None

    def _load_history(self, gen: int, run_dir: Path) -> None:
        """Worker thread: preview from the tail, then the whole log into a private state.

        The follower delivers in this thread until the backlog is read; then it switches
        to posting RecordsArrived from its own thread, so no line is skipped or repeated.
        """
        router = _Router(self, gen, run_dir)
        follower = LogFollower(run_dir / rundir.EVENTS, router, polling=self.polling)
        self._loading_follower = follower
        try:
            preview = RunState()
            preview.feed(follower.read_tail())
            if gen != self._gen:
                return
            self.post_message(HistoryLoaded(preview, run_dir, None))
            follower.load_into(router.state)  # the whole backlog, columnar, on both cores
        except Exception as e:  # noqa: BLE001 - an unreadable log is shown, not fatal
            router.state.note_garbled(1, f"cannot read {run_dir / rundir.EVENTS}: {e}")
        router.live = True
        if gen != self._gen:
            follower.stop()
            return
        self.post_message(HistoryLoaded(router.state, run_dir, follower))
        follower.start()  # later lines arrive as RecordsArrived, after HistoryLoaded

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.state = msg.state
        if msg.follower is None:  # the tail preview: current figures, history to come
            self._redraw(force=True)
            return
        self.loading = False
        self.follower, self._loading_follower = msg.follower, None
        # Alerts already in the log are in the panel; toasts are for new ones.
        self._alerts_seen = len(self.state.alerts) + self.state.alerts_dropped
        if self.sample is not None:
            self._apply_process(self.sample)
        self._redraw(force=True)

    def on_records_arrived(self, msg: RecordsArrived) -> None:
        if msg.run_dir is not None and msg.run_dir != self.run_dir:
            return
        _apply(self.state, msg.records, msg.stats)
        self._changed()

    # ---- background samples ----------------------------------------------------------

    def _disk_path(self) -> Path:
        return self.run_dir if self.run_dir is not None else self.logs_dir

    def _find_proc(self) -> tuple[bool | None, int | None, str]:
        """Sampler thread: is this run's trainer alive (PID-file identity verified)?"""
        control.reap_children()
        rd = self.run_dir
        if rd is None:
            return None, None, "no run"
        st = runs.pid_state(rd)
        self._last_pid_state = st.state
        pid = st.info.pid if st.info is not None else None
        if st.state == runs.PID_LIVE:
            return True, pid, st.message
        if st.state == runs.PID_STALE:
            return False, None, st.message
        return None, None, "no trainer process" if st.state == runs.PID_NONE else st.message

    def _sample_from_thread(self, sample: SystemSample) -> None:
        sample.proc_state = getattr(self, "_last_pid_state", None)
        self.post_message(SystemSampled(sample, self.run_dir))

    def on_system_sampled(self, msg: SystemSampled) -> None:
        if msg.run_dir != self.run_dir or self._closed:
            return
        self.sample = msg.sample
        self._w(SystemPanel).show(msg.sample)
        if not self.loading and self.run_dir is not None:
            self._apply_process(msg.sample)
            self._changed()

    def _apply_process(self, sample: SystemSample) -> None:
        # The PID file's verdict (live / stale / garbled / none) decides running vs crashed
        # vs stale, by the one rule in state.derive_status.
        if sample.proc_state is not None:
            self.state.set_pid_state(sample.proc_state, sample.proc_pid)
        else:
            self.state.set_process(sample.proc_alive, sample.proc_pid)

    def _verified_from_thread(self, row_path: str, ok: bool, why: str) -> None:
        self.post_message(CheckpointsVerified({row_path: (ok, why)}, self.run_dir))

    def on_checkpoints_verified(self, msg: CheckpointsVerified) -> None:
        if msg.run_dir != self.run_dir:
            return
        for path, (ok, why) in msg.results.items():
            if self.verified.get(path) != (ok, why):
                self.verified[path] = (ok, why)
                self.state.set_checkpoint_verified(path, ok)
        self._changed()

    def _verify_checkpoints(self, all_rows: bool = False) -> None:
        if self._verifier is None or self.run_dir is None:
            return
        for row in self.state.checkpoints:
            if all_rows or row.path not in self.verified:
                self._verifier.submit(row.path, resolve_checkpoint(row.path, self.run_dir))

    def _tick(self) -> None:
        """Once a second: time-based state (stale, stalled) and the header's event age."""
        now = time.time()
        before = self.state.version
        self.state.refresh(now)
        if self.state.version != before:
            self._changed()
        self._w(HeaderBar).show(self.state, now, self._header_extra())
        if time.monotonic() - self._last_reverify > REVERIFY_EVERY_S and not self.loading:
            self._last_reverify = time.monotonic()
            self._verify_checkpoints(all_rows=True)

    # ---- drawing ---------------------------------------------------------------------

    def _changed(self) -> None:
        """Schedule a redraw: now if the last one is old enough, else when it is."""
        if self._redraw_timer is not None or self._closed or self._exit:
            return
        wait = self._last_draw + MIN_REDRAW_S - time.monotonic()
        if wait <= 0:
            self._redraw()
        else:
            self._redraw_timer = self.set_timer(wait, self._timer_redraw)

    def _timer_redraw(self) -> None:
        self._redraw_timer = None
        self._redraw()

    def _while_mounted(self, draw: Callable[[], None]) -> None:
        """Run a timer's drawing unless the app is shutting down.

        A timer can fire after ``q`` while the panels are already being removed; the
        drawing then has nothing to draw into, which is not an error.
        """
        if self._tearing_down():
            return
        try:
            draw()
        except NoMatches:
            if not self._tearing_down():
                raise

    def _tearing_down(self) -> bool:
        """True once the app or its panels are being closed (exit, q, test teardown)."""
        if self._closed or self._exit:
            return True
        panel = self._widgets.get((LossesPanel, None))
        return panel is not None and bool(panel._closing or panel._closed)

    def _header_extra(self) -> str:
        parts = []
        if self.loading:
            parts.append("loading history…")
        if self.bell_on:
            parts.append("bell on")
        return " · ".join(parts)

    def _redraw(self, force: bool = False) -> None:
        self._while_mounted(partial(self._draw, force))

    def _draw(self, force: bool = False) -> None:
        st = self.state
        if not force and st.version == self.drawn_version:
            return
        self._last_draw = time.monotonic()
        now = time.time()
        self._w(HeaderBar).show(st, now, self._header_extra())
        self._w(ProgressPanel).show(st)
        self._w(LossesPanel).show(st, LOSS_KEYS[self.selected])
        self._draw_charts(force)
        self._w(ValidationPanel).show(st)
        self._w(CheckpointTable).show(st.checkpoints, self.verified)
        self._w(MilestonesPanel).show(st, now)
        self._w(AlertsPanel).show(st)
        if not self.loading:
            self._verify_checkpoints()
            self._announce_alerts()
        self.drawn_version = st.version
        self.draw_count += 1

    def _draw_charts(self, force: bool = False) -> None:
        """Charts over the whole run: at most every CHART_MIN_S, the last change always."""
        since = time.monotonic() - self._last_chart
        if not force and since < CHART_MIN_S:
            if self._chart_timer is None:
                self._chart_timer = self.set_timer(CHART_MIN_S - since, self._chart_timer_fired)
            return
        self._last_chart = time.monotonic()
        st = self.state
        key = LOSS_KEYS[self.selected]
        self._w(LossesPanel).show_charts(st, st.version)
        self._w(BigChart).set_series(st.losses[key].series, st.version, markers=st.resume_steps)

    def _chart_timer_fired(self) -> None:
        self._chart_timer = None
        self._while_mounted(partial(self._draw_charts, force=True))

    def _announce_alerts(self) -> None:
        st = self.state
        total = len(st.alerts) + st.alerts_dropped
        new = total - self._alerts_seen
        if new <= 0:
            return
        self._alerts_seen = total
        fresh = st.alerts[-min(new, len(st.alerts)) :] if st.alerts else []
        for a in fresh[-ALERT_TOASTS_PER_BATCH:]:
            step = f" at step {a.step:,}" if a.step is not None else ""
            self.notify(
                a.message,
                title=f"{a.kind}{step}",
                markup=False,
                severity=_SEVERITY.get(a.level, "information"),  # type: ignore[arg-type]
                timeout=10 if a.level == "error" else 6,
            )
        if self.bell_on and fresh:
            self.bell()

    def _update_big_title(self) -> None:
        key = LOSS_KEYS[self.selected]
        flags = [
            f"[{i + 1}] {loss_label(k, self.state.recon_name)}"
            if i == self.selected
            else str(i + 1)
            for i, k in enumerate(LOSS_KEYS)
        ]
        big = self._w(BigChart)
        big.border_title = (
            f"{loss_label(key, self.state.recon_name)} · whole run, min/max "
            f"per column · {' '.join(flags)}"
        )
        big.border_subtitle = (
            f"m smooth: {'on' if self.smooth else 'off'} · "
            f"l log: {'on' if self.log_scale else 'off'}"
        )

    # ---- welcome (no run yet) --------------------------------------------------------

    def _show_welcome(self) -> None:
        self._w(Horizontal, "#body").display = False
        w = self._w(Static, "#welcome")
        w.display = True
        w.update(self._welcome_text("running preflight checks…"))
        self.run_worker(self._welcome_preflight, thread=True, group="welcome", exit_on_error=False)

    def _welcome_text(self, checks: Any) -> Any:
        from rich.text import Text

        t = Text()
        t.append("No training run yet", style="bold")
        t.append(f" under {self.logs_dir}/.\n\n")
        t.append("Config  ", style="bold")
        t.append(f"{self.config_path}\n\n")
        t.append("Preflight\n", style="bold")
        t.append_text(checks if isinstance(checks, Text) else Text(str(checks), style="dim"))
        t.append("\n\nPress ")
        t.append(" s ", style="bold reverse")
        t.append(" to start training with this config (you confirm first); ")
        t.append(" o ", style="bold reverse")
        t.append(" to open another run; ")
        t.append(" ? ", style="bold reverse")
        t.append(" for every key.")
        return t

    def _welcome_preflight(self) -> None:
        try:
            report = preflight.run_checks(
                self.config_path, build_models=self.build_models, logs_dir=self.logs_dir
            )
            text = preflight_text(report)
            text.append(report.summary(), style="bold green" if report.ok else "bold red")
        except Exception as e:  # noqa: BLE001 - shown in place of the report
            from rich.text import Text

            text = Text(f"preflight could not run: {e}", style="bold red")
        self.call_from_thread(self._welcome_update, text)

    def _welcome_update(self, text: Any) -> None:
        w = self._w(Static, "#welcome")
        if w.display:
            w.update(self._welcome_text(text))

    # ---- view actions ----------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab / shift+tab are priority bindings so the table cannot swallow them; inside a
        # dialog they must move the focus instead.
        if action == "cycle_loss" and len(self.screen_stack) > 1:
            return False
        return True

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help()))

    def key_help(self) -> list[tuple[str, str]]:
        """(key, what it does) for every binding, for the help screen."""
        out = []
        for b in self.BINDINGS:
            if not isinstance(b, Binding):
                continue
            key = b.key_display or {
                "question_mark": "?",
                "ctrl+c": "Ctrl+C",
                "shift+tab": "Shift+Tab",
                "tab": "Tab",
            }.get(b.key, b.key)
            out.append((key, b.tooltip or b.description))
        return out + EXTRA_KEYS

    def action_select_loss(self, i: int) -> None:
        self.selected = i % len(LOSS_KEYS)
        self._update_big_title()
        self._redraw(force=True)

    def action_cycle_loss(self, delta: int) -> None:
        self.action_select_loss(self.selected + delta)

    def action_toggle_smooth(self) -> None:
        self.smooth = not self.smooth
        self._w(BigChart).set_view(smooth=self.smooth)
        self._update_big_title()

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self._w(BigChart).set_view(log=self.log_scale)
        self._update_big_title()

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notify(f"terminal bell on alerts: {'on' if self.bell_on else 'off'}")
        self._w(HeaderBar).show(self.state, time.time(), self._header_extra())

    # ---- control actions -------------------------------------------------------------

    def _trainer(self) -> control.TrainerProc | None:
        """The run's live trainer, checked now (a PID-file read and a psutil lookup)."""
        return control.trainer_process(self.run_dir) if self.run_dir is not None else None

    def action_start(self) -> None:
        if self._trainer() is not None:
            self.notify(
                "a trainer is already running in this run; stop it first (x)", severity="warning"
            )
            return
        cfg = self.config_path
        screen = StartScreen(
            cfg,
            None,
            check=partial(
                preflight.run_checks, cfg, build_models=self.build_models, logs_dir=self.logs_dir
            ),
        )
        self.push_screen(screen, self._start_confirmed)

    def _start_confirmed(self, req: LaunchRequest | None) -> None:
        if req is None:
            return
        self.notify(f"starting the trainer with {req.nproc} process(es)…")
        self.run_worker(
            partial(
                self._launch,
                partial(
                    control.start_run,
                    self.config_path,
                    None,
                    nproc=req.nproc,
                    target_step=req.target_step,
                    logs_dir=self.logs_dir,
                ),
            ),
            thread=True,
            group="control",
            exit_on_error=False,
        )

    def action_resume(self, checkpoint: str | None = None) -> None:
        rd = self.run_dir
        if rd is None:
            self.notify("no run to resume; start one with s", severity="warning")
            return
        if self._trainer() is not None:
            self.notify("the trainer is running; stop it (x) before resuming", severity="warning")
            return
        step: int | None = None
        verified = "not verified yet"
        if checkpoint is None:
            ok_rows = [r for r in self.state.checkpoints if self.verified.get(r.path, (0,))[0]]
            if ok_rows:
                checkpoint = ok_rows[-1].path
        if checkpoint is not None:
            for r in self.state.checkpoints:
                if r.path == checkpoint:
                    step = r.step
            ok, why = self.verified.get(checkpoint, (None, ""))
            verified = verified_cell(ok, why).plain
            checkpoint = str(resolve_checkpoint(checkpoint, rd))
        else:
            checkpoint = "latest"
        check = partial(
            preflight.run_checks,
            rd / rundir.CONFIG_FILE,
            run_dir=rd,
            resume=checkpoint,
            build_models=False,
            logs_dir=self.logs_dir,
        )
        screen = ResumeScreen(
            rd, checkpoint, step, verified, check=check, target_step=self.state.target_step
        )
        self.push_screen(screen, partial(self._resume_confirmed, rd))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CheckpointTable):
            event.stop()
            self.action_resume(str(event.row_key.value))

    def _resume_confirmed(self, rd: Path, req: LaunchRequest | None) -> None:
        if req is None:
            return
        self.notify(f"resuming from {Path(req.checkpoint or 'latest').name}…")
        self.run_worker(
            partial(
                self._launch,
                partial(
                    control.resume_run,
                    rd,
                    req.checkpoint or "latest",
                    target_step=req.target_step,
                    nproc=req.nproc,
                ),
            ),
            thread=True,
            group="control",
            exit_on_error=False,
        )

    def _launch(self, fn: Any) -> None:
        """Worker thread: start/resume (waits until the trainer holds the run lock)."""
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.call_from_thread(
                self.notify, f"could not launch: {e}", severity="error", timeout=15, markup=False
            )
            return
        self.call_from_thread(self._launched, res)

    def _launched(self, res: control.StartResult) -> None:
        if not res.ok:
            self.notify(
                res.message,
                title="trainer did not start",
                severity="error",
                timeout=20,
                markup=False,
            )
            return
        self.notify(res.message, title="trainer started", timeout=8, markup=False)
        rd = Path(res.run_dir)
        if self.run_dir is None or rd.resolve() != self.run_dir.resolve():
            self.open_run(rd)

    def action_stop(self) -> None:
        rd = self.run_dir
        proc = self._trainer()
        if rd is None or proc is None:
            self.notify("no trainer is running in this run", severity="warning")
            return
        self.push_screen(
            StopScreen(rd, proc.pid, self.stop_grace_s), partial(self._stop_confirmed, rd)
        )

    def _stop_confirmed(self, rd: Path, yes: bool | None) -> None:
        if not yes:
            return
        self.state.set_stopping()
        self._changed()
        self.run_worker(
            partial(self._stop_worker, rd, None), thread=True, group="control", exit_on_error=False
        )

    def _stop_worker(self, rd: Path, kill_after_s: float | None) -> None:
        try:
            res = control.stop_run(rd, grace_s=self.stop_grace_s, kill_after_s=kill_after_s)
        except Exception as e:  # noqa: BLE001 - shown to the user
            self.call_from_thread(self.notify, f"stop failed: {e}", severity="error", markup=False)
            return
        self.call_from_thread(self._stopped, rd, res)

    def _stopped(self, rd: Path, res: control.StopResult) -> None:
        if res.status == control.STOP_TIMEOUT:
            self.push_screen(
                KillScreen(res.pid, res.waited_s, res.message), partial(self._kill_answer, rd)
            )
            return
        sev = "information" if res.ok else "error"
        self.notify(
            res.message,
            title=f"stop: {res.status}",
            severity=sev,
            timeout=10,  # type: ignore[arg-type]
            markup=False,
        )

    def _kill_answer(self, rd: Path, kill: bool | None) -> None:
        # "Keep waiting" re-sends SIGTERM, which the trainer treats like the first one.
        self.run_worker(
            partial(self._stop_worker, rd, 0.0 if kill else None),
            thread=True,
            group="control",
            exit_on_error=False,
        )

    def action_pick_run(self) -> None:
        self.run_worker(self._find_runs_worker, thread=True, group="runs", exit_on_error=False)

    def _find_runs_worker(self) -> None:
        found = runs.find_runs(self.logs_dir)
        self.call_from_thread(self._show_runs, found)

    def _show_runs(self, found: list[runs.RunInfo]) -> None:
        self.push_screen(RunPickerScreen(found, self.logs_dir, self.run_dir), self._run_picked)

    def _run_picked(self, path: Path | None) -> None:
        if path is not None and path != self.run_dir:
            self.open_run(path)


def _apply(state: RunState, records: list[dict[str, Any]], stats: Any) -> None:
    """Feed one follower batch: a reset first when the log was truncated or replaced."""
    if stats is not None and getattr(stats, "reset", False):
        state.reset()
    if records:
        state.feed(records)
    if stats is not None and getattr(stats, "new_garbled", 0):
        state.note_garbled(stats.new_garbled, stats.last_garbled)


class _Router:
    """The follower's callback: feeds a private state while loading, then posts messages."""

    def __init__(self, app: NalTuiApp, gen: int, run_dir: Path) -> None:
        self.app, self.gen, self.run_dir = app, gen, run_dir
        self.state = RunState()
        self.live = False

    def __call__(self, records: list[dict[str, Any]], stats: Any) -> None:
        if not self.live:
            _apply(self.state, records, stats)
        elif self.gen == self.app._gen and (
            records or getattr(stats, "reset", False) or getattr(stats, "new_garbled", 0)
        ):
            self.app.post_message(RecordsArrived(records, stats, self.run_dir))
