"""The dashboard app: one run's panels, kept current, and keys that call its ``RunSession``.

Background work runs in Textual workers (``@work(exclusive=True)``: opening another run
cancels the load in flight) and in the core's services; threads only post messages. The
reducer is fed and read on the UI thread; a change schedules one redraw after the
current message, and the whole-run charts follow at most twice a second. The control
keys live in ``control.ControlMixin``, the panels in ``dashboard.Dashboard``, what keeps
the state current (the log, the checkpoints, system figures) in ``feeds.FeedsMixin``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.widgets import Footer, Static
from textual.worker import get_current_worker

from nal_tui import preflight
from nal_tui.core.defaults import DEFAULT_GRACE_S
from nal_tui.core.follow import LogFollower
from nal_tui.core.proc import PidState
from nal_tui.core.reducer.present import header_view
from nal_tui.core.reducer.state import RunState
from nal_tui.core.services import CachedVerifier, CheckpointService, SystemSampler
from nal_tui.core.session import RunSession
from nal_tui.core.views import CheckpointRow, SystemView
from nal_tui.core.vocab import LOSS_KEYS
from nal_tui.ui.control import ControlMixin
from nal_tui.ui.dashboard import SIZE_CLASSES, Dashboard, size_class
from nal_tui.ui.feeds import FeedsMixin
from nal_tui.ui.keys import BINDINGS, EXTRA_KEYS, key_help
from nal_tui.ui.messages import LogFeed
from nal_tui.ui.notices import NoticesMixin
from nal_tui.ui.screens.help import HelpScreen
from nal_tui.ui.screens.launch import preflight_text
from nal_tui.ui.texts import welcome_text
from nal_tui.ui.widgets.chart import BigChart
from nal_tui.ui.widgets.checkpoints import CheckpointTable
from nal_tui.ui.widgets.header import HeaderBar

CHART_EVERY_S = 0.5
Measure = Callable[[], tuple[SystemView, PidState]]


class NalTuiApp(FeedsMixin, ControlMixin, NoticesMixin, App[None]):
    """nal-tui: watch, start, stop and resume one training run.

    ``clock`` and ``sample_system`` (False, or a function returning fixed figures) make
    the screen reproducible for snapshot tests.
    """

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
        sample_system: bool | Measure = True,
        clock: Callable[[], float] = time.time,
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
        self.pid: PidState | None = None
        self.draw_count = 0
        self._draw_pending = False
        self._last_ckpt_event: object = None
        self._welcome_report: tuple[object, object] | None = None  # (key, PreflightReport)
        self.init_notices()

    @property
    def run_dir(self) -> Path | None:
        return self.session.run_dir

    @property
    def dashboard(self) -> Dashboard:
        return self.query_one(Dashboard)

    # ---- layout and lifecycle

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        yield Static(id="welcome")
        yield Dashboard()
        yield Footer()

    def on_mount(self) -> None:
        measure = self.sample_system if callable(self.sample_system) else None
        self.sampler = SystemSampler(self.run_dir, self._disk_path(), self._sampled,
                                     measure=measure)  # fmt: skip
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

    @property
    def settled(self) -> bool:
        """Nothing left to load, verify, sample or draw (what snapshot tests wait for)."""
        return (
            not self.loading
            and not self._draw_pending
            and self.dashboard.charts_version == self.state.version
            and all(r.verified is not None for r in self.rows)
            and (self.system is not None or not self.sample_system)
        )

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
        self.query_one(HeaderBar).show(header_view(st, now), extra)
        self.dashboard.draw(st, self.rows, self.system, self.selected, now)
        if self.ckpt_service is not None and st.checkpoints.events:
            if st.checkpoints.events[-1] is not self._last_ckpt_event:
                self._last_ckpt_event = st.checkpoints.events[-1]
                self.ckpt_service.poke()  # a new checkpoint: list and verify it now
        self.status_changed(st.status)
        if not self.loading:
            self.announce_alerts(st.alerts)
        self.draw_count += 1

    def _draw_charts(self, force: bool = False) -> None:
        try:
            self.dashboard.draw_charts(self.state, self.selected, force)
        except NoMatches:
            if self.is_running and not self._exit:
                raise

    # ---- welcome (no run yet)

    @work(thread=True, exclusive=True, group="welcome", exit_on_error=False)
    def _welcome(self, problem: str) -> None:
        """Worker: the preflight of a start from here (where it would put the run)."""
        cfg, rd = self.config_path, self._new_run_dir()
        show = lambda checks: self.call_from_thread(  # noqa: E731
            self._welcome_show, welcome_text(problem, cfg, checks, rd)
        )
        show("running preflight checks…")
        try:
            key = self._preflight_key(rd)
            report = preflight.run_checks(
                cfg, rd, build_models=self.build_models, logs_dir=self.session.logs_dir
            )
            if key is not None and key == self._preflight_key(rd):
                self._welcome_report = (key, report)
            text = preflight_text(report)
            text.append(report.summary(), style="bold green" if report.ok else "bold red")
        except Exception as e:  # noqa: BLE001 - shown in place of the report
            text = f"preflight could not run: {e}"
        if not get_current_worker().is_cancelled:
            show(text)

    def _preflight_key(self, rd: Path | None) -> tuple | None:
        """What a preflight result depends on that can change under it: the config's
        bytes, the run dir, whether the models are built."""
        try:
            data = self.config_path.read_bytes()
        except OSError:
            return None
        return (str(self.config_path), hashlib.sha256(data).digest(), str(rd), self.build_models)

    def welcome_report(self, rd: Path | None):
        """The welcome screen's preflight report when it still holds for a start in ``rd``
        (same config bytes, same run dir), else None: the start dialog reuses it."""
        got = self._welcome_report
        if got is None or got[0] != self._preflight_key(rd):
            return None
        return got[1]

    def _welcome_show(self, text) -> None:
        self.query_one("#welcome", Static).update(text)

    # ---- view actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab / shift+tab are priority bindings; inside a dialog they must move the focus.
        return not (action == "cycle_loss" and len(self.screen_stack) > 1)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(key_help(self.BINDINGS) + EXTRA_KEYS))

    def action_select_loss(self, i: int) -> None:
        self.selected = i % len(LOSS_KEYS)
        self._changed()
        self._draw_charts(force=True)

    def action_cycle_loss(self, delta: int) -> None:
        self.action_select_loss(self.selected + delta)

    def action_toggle_smooth(self) -> None:
        big = self.query_one(BigChart)
        big.set_view(smooth=not big.smooth)
        self.dashboard.big_title(self.state, self.selected)

    def action_toggle_log(self) -> None:
        big = self.query_one(BigChart)
        big.set_view(log=not big.log_scale)
        self.dashboard.big_title(self.state, self.selected)

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.toast(f"terminal bell on alerts: {'on' if self.bell_on else 'off'}")
        self._changed()
