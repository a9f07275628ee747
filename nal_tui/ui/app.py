"""The dashboard: panels that draw one run's views, keys that call its ``RunSession``.

Background work runs in Textual workers (``@work(exclusive=True)``: opening another run
cancels the load in flight) and in the core's services; threads only post messages. The
reducer is fed and read on the UI thread; a change schedules one redraw after the
current message, and the whole-run charts follow at most twice a second.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Static
from textual.worker import get_current_worker

from nal_tui import preflight
from nal_tui.core.defaults import DEFAULT_GRACE_S
from nal_tui.core.follow import LogFollower
from nal_tui.core.reducer import RunState
from nal_tui.core.reducer.state import loss_label
from nal_tui.core.runs import find_runs
from nal_tui.core.services import CachedVerifier, CheckpointService, SystemSampler
from nal_tui.core.session import RunSession, StartResult, StopResult
from nal_tui.core.text import clean
from nal_tui.core.views import CheckpointRow, SystemView
from nal_tui.core.vocab import STOP_TIMEOUT
from nal_tui.ui.keys import BINDINGS, EXTRA_KEYS, key_help
from nal_tui.ui.layout import SIZE_CLASSES, size_class
from nal_tui.ui.messages import CheckpointsListed, HistoryLoaded, LogChanged, LogFeed, SystemSampled
from nal_tui.ui.screens.help import HelpScreen
from nal_tui.ui.screens.launch import LaunchRequest, ResumeScreen, StartScreen, preflight_text
from nal_tui.ui.screens.runs import RunPickerScreen
from nal_tui.ui.screens.stop import KillScreen, StopScreen
from nal_tui.ui.texts import facts_text, welcome_text
from nal_tui.ui.widgets.alerts import AlertsPanel
from nal_tui.ui.widgets.chart import BigChart
from nal_tui.ui.widgets.checkpoints import CheckpointTable, MilestonesPanel, verified_cell
from nal_tui.ui.widgets.header import HeaderBar
from nal_tui.ui.widgets.losses import LossesPanel
from nal_tui.ui.widgets.progress import ProgressPanel
from nal_tui.ui.widgets.system import SystemPanel
from nal_tui.ui.widgets.validation import ValidationPanel
from trainer import rundir
from trainer.events import LOSS_KEYS

CHART_EVERY_S = 0.5
ALERT_TOASTS_PER_BATCH = 3
TOAST_FRESH_S = 1.5  # a status change dismisses toasts older than this
_SEVERITY = {"error": "error", "warning": "warning"}
PANELS = {
    "progress": "Progress",
    "losses": "Losses",
    "checkpoints": "Checkpoints",
    "milestones": "Milestones",
    "validation": "Validation",
    "system": "System",
    "alerts": "Alerts",
    "facts": "Run",
}


class NalTuiApp(App[None]):
    """nal-tui: watch, start, stop and resume one training run."""

    CSS_PATH = "app.tcss"
    TITLE = "nal-tui"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = BINDINGS

    def __init__(
        self,
        session: RunSession,
        *,
        config_path: Path,
        polling: bool = False,
        bell: bool = False,
        stop_grace_s: float = DEFAULT_GRACE_S,
        build_models: bool = True,
        sample_system: bool = True,
        clock=time.time,
    ) -> None:
        super().__init__()
        self.sample_system, self.clock = sample_system, clock
        self.session = session
        self.config_path = Path(config_path)
        self.polling, self.bell_on = polling, bell
        self.stop_grace_s, self.build_models = stop_grace_s, build_models
        self.state = RunState()
        self.selected = 0
        self.loading = False
        self.feed = LogFeed()
        self.follower: LogFollower | None = None
        self.verifier = CachedVerifier()
        self.ckpt_service: CheckpointService | None = None
        self.sampler: SystemSampler | None = None
        self.rows: list[CheckpointRow] = []
        self.system: SystemView | None = None
        self.draw_count = 0
        self._draw_pending = False
        self._charts_version = -1
        self._alerts_seen = 0
        self._status = ""
        self._last_toast = 0.0

    @property
    def run_dir(self) -> Path | None:
        return self.session.run_dir

    # ---- layout and lifecycle

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static(id="welcome")
        with Horizontal(id="body"):
            with Vertical(id="left"):
                yield ProgressPanel(id="progress", classes="panel")
                yield LossesPanel(LOSS_KEYS, id="losses")
                yield BigChart(id="big", classes="panel")
                yield Static(id="facts", classes="panel")
            with Vertical(id="right"):
                yield CheckpointTable(id="checkpoints")
                yield MilestonesPanel(id="milestones", classes="panel")
                yield ValidationPanel(id="validation", classes="panel")
                yield SystemPanel(id="system", classes="panel")
                yield AlertsPanel(id="alerts", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        for wid, title in PANELS.items():
            self.query_one(f"#{wid}").border_title = title
        self.sampler = SystemSampler(self.run_dir, self._disk_path(), self._sampled)
        if self.sample_system:
            self.sampler.start()
        self.set_interval(1.0, self._tick)
        self.set_interval(CHART_EVERY_S, self._draw_charts)
        self.on_resize()
        self.open_run(self.run_dir)
        self.query_one(CheckpointTable).focus()

    def on_resize(self, event: events.Resize | None = None) -> None:
        size = event.size if event is not None else self.size
        self.remove_class(*SIZE_CLASSES)
        self.add_class(size_class(size.width, size.height))

    def on_unmount(self) -> None:
        for svc in (self.follower, self.sampler, self.ckpt_service):
            if svc is not None:
                svc.stop()

    def _disk_path(self) -> Path:
        return self.run_dir if self.run_dir is not None else self.session.logs_dir

    # ---- opening a run

    def open_run(self, run_dir: Path | None) -> None:
        """Follow ``run_dir`` (or show the welcome screen when there is no usable run)."""
        for svc in (self.follower, self.ckpt_service):
            if svc is not None:
                svc.stop()
        self.follower = self.ckpt_service = None
        self.feed.drain()
        self.session.run_dir = run_dir
        self.state, self.rows = RunState(), []
        self._alerts_seen = 0
        if self.sampler is not None:
            self.sampler.run_dir, self.sampler.disk_path = run_dir, self._disk_path()
        self.clear_notifications()
        problem = self.session.problem()
        welcome = problem is not None and (run_dir is None or not run_dir.exists())
        self.query_one("#welcome").display = welcome
        self.query_one("#body").display = not welcome
        if welcome:
            self.loading = False
            self._welcome(problem or "")
        else:
            self.loading = True
            self.ckpt_service = CheckpointService(run_dir, self._listed, self.verifier)
            self.ckpt_service.start()
            self.load_run(run_dir)
        self._changed()

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def load_run(self, run_dir: Path) -> None:
        """Worker: the whole log into a fresh state; the follower goes on from there."""
        worker = get_current_worker()
        state = RunState()
        follower = LogFollower(
            run_dir / rundir.EVENTS, self._follower_batch(run_dir), polling=self.polling
        )
        try:
            follower.load_into(state, stopped=lambda: worker.is_cancelled)
        except OSError as e:  # an unreadable log is shown, not fatal
            state.note_garbled(1, f"cannot read {run_dir / rundir.EVENTS}: {e.strerror or e}")
        if not worker.is_cancelled:
            self.post_message(HistoryLoaded(run_dir, state, follower))

    def _follower_batch(self, run_dir: Path):
        def on_batch(records, stats) -> None:  # the follower's thread
            if self.feed.put(records, stats):
                self.post_message(LogChanged(run_dir))

        return on_batch

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.state, self.follower, self.loading = msg.state, msg.follower, False
        msg.follower.start()
        self._alerts_seen = self.state.alerts.total  # toasts are for new alerts only
        if self.system is not None and self._pid is not None:
            self.state.set_pid_state(self._pid.state, self._pid.pid, self._pid_started())
        self._changed()
        self._draw_charts()  # the whole-run charts at once, not at the next chart tick

    def on_log_changed(self, msg: LogChanged) -> None:
        if msg.run_dir != self.run_dir or self.loading:
            return
        for records, stats in self.feed.drain():
            if stats.reset:
                self.state.reset()
            if records:
                self.state.feed(records)
            if stats.new_garbled:
                self.state.note_garbled(stats.new_garbled, stats.last_garbled)
        self._changed()

    # ---- services

    _pid = None

    def _pid_started(self) -> float | None:
        return self._pid.info.started if self._pid is not None and self._pid.info else None

    def _sampled(self, view: SystemView, pid) -> None:  # the sampler's thread
        self.post_message(SystemSampled(view, pid, self.sampler.run_dir if self.sampler else None))

    def on_system_sampled(self, msg: SystemSampled) -> None:
        if msg.run_dir != self.run_dir:
            return
        self.system, self._pid = msg.view, msg.pid
        if not self.loading:
            self.state.set_pid_state(msg.pid.state, msg.pid.pid, self._pid_started())
        self._changed()

    def _listed(self, rows: list[CheckpointRow]) -> None:  # the checkpoint service's thread
        if self.ckpt_service is not None:
            self.post_message(CheckpointsListed(rows, self.ckpt_service.run_dir))

    def on_checkpoints_listed(self, msg: CheckpointsListed) -> None:
        if msg.run_dir == self.run_dir:
            self.rows = msg.rows
            self._changed()

    def _tick(self) -> None:
        self.state.refresh(self.clock())
        self._changed()

    # ---- drawing

    def _changed(self) -> None:
        if not self._draw_pending:
            self._draw_pending = True
            self.call_later(self._draw)

    def _draw(self) -> None:
        self._draw_pending = False
        try:
            self._draw_panels()
        except NoMatches:  # the panels are being built or torn down: nothing to draw into
            if self.is_running and not self._exit:
                raise

    def _draw_panels(self) -> None:
        st, now = self.state, self.clock()
        extra = " · ".join(
            p for p in ("loading history…" * self.loading, "bell on" * self.bell_on) if p
        )
        self.query_one(HeaderBar).show(st.header(now), extra)
        self.query_one(ProgressPanel).show(st.progress_view())
        self.query_one(LossesPanel).show(st.losses_view(), LOSS_KEYS[self.selected])
        self.query_one(ValidationPanel).show(st.val)
        self.query_one(CheckpointTable).show(self.rows)
        self.query_one(MilestonesPanel).show(st.milestones_view())
        self.query_one(SystemPanel).show(self.system)
        alerts = st.alerts_view()
        self.query_one(AlertsPanel).show(alerts)
        self.query_one("#facts", Static).update(
            facts_text(st.val, self.rows, st.milestones_view(), self.system, alerts)
        )
        if self.ckpt_service is not None and st.checkpoint_events:
            if st.checkpoint_events[-1] is not getattr(self, "_last_ckpt_event", None):
                self._last_ckpt_event = st.checkpoint_events[-1]
                self.ckpt_service.poke()  # a new checkpoint: list and verify it now
        if st.status != self._status:
            if self._status and time.monotonic() - self._last_toast > TOAST_FRESH_S:
                self.clear_notifications()  # what they said no longer applies
            self._status = st.status
        if not self.loading:
            self._announce_alerts()
        self.draw_count += 1

    def _draw_charts(self) -> None:
        v = self.state.losses_view()
        if v.version == self._charts_version:
            return
        try:
            self.query_one(LossesPanel).show_charts(v)
        except NoMatches:
            if self.is_running and not self._exit:
                raise
            return
        self._charts_version = v.version
        row = v.rows[self.selected]
        self.query_one(BigChart).set_series(row.series, v.version, markers=v.resume_steps)
        self._big_title()

    def _announce_alerts(self) -> None:
        total = self.state.alerts.total
        new, self._alerts_seen = total - self._alerts_seen, total
        if new <= 0:
            return
        fresh = self.state.alerts.recent(min(new, ALERT_TOASTS_PER_BATCH))
        for a in fresh:
            step = f" at step {a.step:,}" if a.step is not None else ""
            self.toast(a.message, f"{a.kind}{step}", _SEVERITY.get(a.level, "information"))
        if self.bell_on and fresh:
            self.bell()

    def toast(self, message: str, title: str = "", severity: str = "information", timeout=8.0):
        self._last_toast = time.monotonic()
        self.notify(clean(message, 600, multiline=True), title=clean(title, 80),
                    severity=severity, timeout=timeout, markup=False)  # type: ignore[arg-type]  # fmt: skip

    def _big_title(self) -> None:
        rn = self.state.recon_name
        flags = " ".join(
            f"[{i + 1}] {loss_label(k, rn)}" if i == self.selected else str(i + 1)
            for i, k in enumerate(LOSS_KEYS)
        )
        big = self.query_one(BigChart)
        big.border_title = f"{loss_label(LOSS_KEYS[self.selected], rn)} · whole run · {flags}"
        big.border_subtitle = (
            f"m smooth: {'on' if big.smooth else 'off'} · l log: {'on' if big.log_scale else 'off'}"
        )

    # ---- welcome (no run yet)

    @work(thread=True, exclusive=True, group="welcome", exit_on_error=False)
    def _welcome(self, problem: str) -> None:
        cfg = self.config_path
        self.call_from_thread(self._welcome_show, problem, "running preflight checks…")
        try:
            report = preflight.run_checks(
                cfg, build_models=self.build_models, logs_dir=self.session.logs_dir
            )
            text = preflight_text(report)
            text.append(report.summary(), style="bold green" if report.ok else "bold red")
        except Exception as e:  # noqa: BLE001 - shown in place of the report
            text = f"preflight could not run: {e}"
        if not get_current_worker().is_cancelled:
            self.call_from_thread(self._welcome_show, problem, text)

    def _welcome_show(self, problem: str, checks) -> None:
        self.query_one("#welcome", Static).update(welcome_text(problem, self.config_path, checks))

    # ---- view actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab / shift+tab are priority bindings; inside a dialog they must move the focus.
        return not (action == "cycle_loss" and len(self.screen_stack) > 1)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_help(self.BINDINGS) + EXTRA_KEYS))

    def action_select_loss(self, i: int) -> None:
        self.selected = i % len(LOSS_KEYS)
        self._charts_version = -1
        self._changed()
        self._draw_charts()

    def action_cycle_loss(self, delta: int) -> None:
        self.action_select_loss(self.selected + delta)

    def action_toggle_smooth(self) -> None:
        big = self.query_one(BigChart)
        big.set_view(smooth=not big.smooth)
        self._big_title()

    def action_toggle_log(self) -> None:
        big = self.query_one(BigChart)
        big.set_view(log=not big.log_scale)
        self._big_title()

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.toast(f"terminal bell on alerts: {'on' if self.bell_on else 'off'}")
        self._changed()

    # ---- control actions (the session does the work, in workers)

    def action_start(self) -> None:
        if self.session.trainer().live:
            self.toast(
                "a trainer is already running in this run; stop it first (x)", severity="warning"
            )
            return
        check = lambda: preflight.run_checks(  # noqa: E731
            self.config_path, build_models=self.build_models, logs_dir=self.session.logs_dir
        )
        self.push_screen(StartScreen(self.config_path, None, check=check), self._start_confirmed)

    def _start_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            self.toast(f"starting the trainer with {req.nproc} process(es)…")
            self._launch(None, req)

    def action_resume(self, checkpoint: str | None = None) -> None:
        rd = self.run_dir
        if rd is None or self.session.problem() is not None:
            self.toast("no run to resume; start one with s", severity="warning")
            return
        if self.session.trainer().live:
            self.toast("the trainer is running; stop it (x) before resuming", severity="warning")
            return
        table = self.query_one(CheckpointTable)
        if checkpoint is None:
            ok = [r for r in self.rows if r.verified and not r.abandoned]
            checkpoint = ok[0].path if ok else None
        row = table.row_for(checkpoint) if checkpoint is not None else None
        verified = verified_cell(row).plain if row is not None else "verified when it starts"
        target = str(rd / checkpoint) if checkpoint is not None else "latest"
        check = lambda: preflight.run_checks(  # noqa: E731
            rd / rundir.CONFIG_FILE, run_dir=rd, resume=target, build_models=False,
            logs_dir=self.session.logs_dir,
        )  # fmt: skip
        screen = ResumeScreen(
            rd, target, row.step if row else None, verified, check=check,
            target_step=self.state.target_step,
        )  # fmt: skip
        self.push_screen(screen, self._resume_confirmed)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CheckpointTable):
            event.stop()
            self.action_resume(str(event.row_key.value))

    def _resume_confirmed(self, req: LaunchRequest | None) -> None:
        if req is not None:
            self.toast(f"resuming from {Path(req.checkpoint or 'latest').name}…")
            self._launch(req.checkpoint or "latest", req)

    @work(thread=True, exclusive=True, group="control", exit_on_error=False)
    def _launch(self, checkpoint: str | None, req: LaunchRequest) -> None:
        s = self.session
        if checkpoint is None:
            new = s.run_dir if s.run_dir is not None and not s.run_dir.exists() else None
            fresh = RunSession(new, logs_dir=s.logs_dir, trainer_base=s.trainer_base, env=s.env)
            res = fresh.start(self.config_path, target_step=req.target_step, nproc=req.nproc)
        else:
            res = s.resume(checkpoint, target_step=req.target_step, nproc=req.nproc,
                           verify=self.verifier)  # fmt: skip
        self.call_from_thread(self._launched, res)

    def _launched(self, res: StartResult) -> None:
        if not res.ok:
            self.toast(res.message, "trainer did not start", "error", timeout=20)
            return
        self.toast(res.message, "trainer started")
        rd = Path(res.run_dir)
        if (
            self.run_dir is None
            or not self.run_dir.exists()
            or rd.resolve() != self.run_dir.resolve()
        ):
            self.open_run(rd)

    def action_stop(self) -> None:
        st = self.session.trainer()
        if self.run_dir is None or not st.live:
            self.toast("no trainer is running in this run", severity="warning")
            return
        self.push_screen(StopScreen(self.run_dir, st.pid, self.stop_grace_s), self._stop_confirmed)

    def _stop_confirmed(self, yes: bool | None) -> None:
        if yes:
            self.state.set_stopping()
            self._changed()
            self._stop(None)

    @work(thread=True, exclusive=True, group="control", exit_on_error=False)
    def _stop(self, kill_after_s: float | None) -> None:
        res = self.session.stop(grace_s=self.stop_grace_s, kill_after_s=kill_after_s)
        self.call_from_thread(self._stopped, res)

    def _stopped(self, res: StopResult) -> None:
        if res.status == STOP_TIMEOUT:
            self.push_screen(KillScreen(res.pid, res.waited_s, res.message), self._kill_answer)
            return
        self.state.set_stopping(False)
        self.toast(res.message, f"stop: {res.status}", "information" if res.ok else "error")

    def _kill_answer(self, kill: bool | None) -> None:
        # "Keep waiting" re-sends SIGTERM, which the trainer treats like the first one.
        self._stop(0.0 if kill else None)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def action_pick_run(self) -> None:
        found = find_runs(self.session.logs_dir)
        self.call_from_thread(
            self.push_screen,
            RunPickerScreen(found, self.session.logs_dir, self.run_dir),
            self._run_picked,
        )

    def _run_picked(self, path: Path | None) -> None:
        if path is not None and path != self.run_dir:
            self.open_run(path)
