"""The dashboard app: one run's panels, kept current, and keys that call its ``RunSession``.

The app composes the screen, routes keys and messages, and draws; its parts are plain
objects it holds: ``feeds`` (the run's state, kept current by workers, the follower and
the services), ``control`` (start, resume, stop, open; the welcome preflight) and
``notices`` (toasts). Threads only post messages. The reducer is fed and read on the UI
thread; a change schedules one redraw after the current message, and the whole-run
charts follow at most twice a second. Dialogs and the screens behind keys are imported when
first opened, so the first paint does not wait for them.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.css.query import NoMatches
from textual.widgets import DataTable, Footer, Static
from textual.worker import Worker, WorkerState

from nal_tui.core.chartprefs import ChartPrefs, load_prefs, save_prefs
from nal_tui.core.control.proc import PidState
from nal_tui.core.control.session import RunSession
from nal_tui.core.defaults import DEFAULT_GRACE_S
from nal_tui.core.reducer.chartview import ChartView, step_weight
from nal_tui.core.reducer.present import header_view
from nal_tui.core.reducer.state import RunState
from nal_tui.core.reducer.views import CheckpointRow, SystemView
from nal_tui.core.text import clean
from nal_tui.core.vocab import SERIES_KEYS
from nal_tui.ui.checkpoints.table import CheckpointTable
from nal_tui.ui.keys import BINDINGS, EXTRA_KEYS, key_help
from nal_tui.ui.launch.control import RunControl
from nal_tui.ui.messages import (
    CheckpointsListed,
    HistoryLoaded,
    HistoryPreview,
    LogChanged,
    SystemSampled,
)
from nal_tui.ui.notices import Notices
from nal_tui.ui.run.dashboard import SIZE_CLASSES, Dashboard, size_class
from nal_tui.ui.run.feeds import RunFeeds
from nal_tui.ui.run.header import HeaderBar
from nal_tui.ui.run.lazyseries import SeriesBuilder, unbuilt

CHART_EVERY_S = 0.5
# Imported after the first paint, not before it (see the module docstring); once the run's
# history has loaded, a thread imports them so the first key that opens one does not wait.
LATER = (
    "nal_tui.ui.samples.screen",
    "nal_tui.ui.quality.screen",
    "nal_tui.ui.help",
    "nal_tui.ui.charts.range",
    "nal_tui.ui.launch.confirm",
    "nal_tui.ui.launch.stop",
    "nal_tui.ui.launch.holds",
    "nal_tui.ui.runs.picker",
    "nal_tui.preflight",
)


def import_later() -> None:
    """Import ``LATER`` (a thread's work; a module that fails is left to its key to say)."""
    for name in LATER:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the key's own import raises it where it is seen
            continue


Measure = Callable[[], tuple[SystemView, PidState]]


class NalTuiApp(App[None]):
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
        read_only: bool = False,
    ) -> None:
        super().__init__()
        self.sample_system, self.clock = sample_system, clock
        self.session = session
        self.bell_on = bell
        self.selected = 0
        """The series in the big chart (an index into SERIES_KEYS: losses, lr, grad norms)."""
        self.series_builder = SeriesBuilder(self, lambda: self.state, self._select)
        """Builds the optimiser's series off the UI thread when first selected."""
        self.view = ChartView()
        """What the charts show: zoom, pan/follow, smoothing, log scale (the last two are
        remembered per run dir: core.chartprefs)."""
        self.draw_count = 0
        self._draw_pending = False
        self._later_imported = False  # import_later started
        self.notices = Notices(self)
        self.feeds = RunFeeds(self, session, self._changed, polling=polling)
        self.control = RunControl(
            self, session, self.feeds, config_path=config_path, build_models=build_models,
            stop_grace_s=stop_grace_s, toast=self.notices.toast, open_run=self.open_run,
            changed=self._changed, table=lambda: self.query_one(CheckpointTable),
            show_welcome=self._welcome_show, read_only=read_only,
        )  # fmt: skip

    @property
    def run_dir(self) -> Path | None:
        return self.session.run_dir

    @property
    def state(self) -> RunState:
        return self.feeds.state

    @property
    def rows(self) -> list[CheckpointRow]:
        return self.feeds.rows

    @property
    def dashboard(self) -> Dashboard:
        return self.query_one(Dashboard)

    # ---- layout and lifecycle

    def compose(self) -> ComposeResult:
        self._size_class(self.size.width, self.size.height)  # before the widgets are styled
        yield HeaderBar(id="header")
        yield Static(id="welcome")
        yield Dashboard()
        yield Footer()

    def on_mount(self) -> None:
        measure = self.sample_system if callable(self.sample_system) else None
        self.feeds.start_sampler(bool(self.sample_system), measure)
        self.set_interval(1.0, self._tick)
        self.set_interval(CHART_EVERY_S, self._draw_charts)
        self.on_resize()
        self.open_run(self.run_dir)
        self.query_one(CheckpointTable).focus()

    def on_resize(self, event: events.Resize | None = None) -> None:
        size = event.size if event is not None else self.size
        if not self._size_class(size.width, size.height):
            return
        self.update_node_styles()
        # Textual restyles only the screen on top for an app class: the dashboard under the
        # samples view (or any screen) would come back in the old size's layout.
        for screen in self.screen_stack[:-1]:
            screen.update_node_styles(animate=False)

    def _size_class(self, width: int, height: int) -> bool:
        """Put the layout class for this size on the app, unstyled; whether it changed (a
        restyle of every widget: on a resize only when the layout changes)."""
        new = size_class(width, height)
        others = [c for c in SIZE_CLASSES if c != new]
        if self.has_class(new) and not any(self.has_class(c) for c in others):
            return False
        self.remove_class(*others, update=False)
        self.add_class(new, update=False)
        return True

    def on_unmount(self) -> None:
        self.feeds.stop()

    def open_run(self, run_dir: Path | None) -> None:
        """Follow ``run_dir`` (or show the welcome screen when there is no usable run)."""
        self.feeds.close(run_dir)
        self.notices.alerts_seen(self.state.alerts)
        self.clear_notifications()
        self._load_view(run_dir)
        problem = self.session.problem()
        welcome = problem is not None and (run_dir is None or not run_dir.exists())
        self.query_one("#welcome").display = welcome
        self.dashboard.display = not welcome
        if welcome:
            self.feeds.loading = False
            self.control.welcome(problem or "")
        else:
            self.feeds.load(run_dir)
        self._changed()

    @property
    def settled(self) -> bool:
        """Nothing left to load, verify, sample or draw (what snapshot tests wait for)."""
        f = self.feeds
        return (
            not f.loading
            and not self._draw_pending
            and self.series_builder.wanted is None
            and self.dashboard.charts_version == self.state.version
            and all(r.verified is not None for r in f.rows)
            and (f.system is not None or not self.sample_system)
        )

    def _tick(self) -> None:
        self.state.refresh(self.clock())
        self._changed()

    # ---- messages from the feeds' threads and workers

    def on_history_preview(self, msg: HistoryPreview) -> None:
        if self.feeds.history_preview(msg):
            self.notices.alerts_seen(self.state.alerts)
            self.feeds.pid_to_state()
            self._tick()

    def on_history_loaded(self, msg: HistoryLoaded) -> None:
        if self.feeds.history_loaded(msg):
            if unbuilt(self.state, self.selected):  # not on the UI thread: the losses meanwhile
                wanted, self.selected = self.selected, 0
                self.series_builder.request(wanted)
            self.notices.alerts_seen(self.state.alerts)  # toasts are for new alerts only
            self.feeds.pid_to_state()
            self._tick()  # time-based status ("stale") now, not at the next tick
            self._draw_charts()  # the whole-run charts at once, not at the next chart tick
            if not self._later_imported:
                self._later_imported = True
                threading.Thread(target=import_later, name="nal-imports", daemon=True).start()

    def on_log_changed(self, msg: LogChanged) -> None:
        self.feeds.log_changed(msg)

    def on_system_sampled(self, msg: SystemSampled) -> None:
        self.feeds.system_sampled(msg)

    def on_checkpoints_listed(self, msg: CheckpointsListed) -> None:
        self.feeds.checkpoints_listed(msg)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """A background action that raised is said, not swallowed (its workers run with
        ``exit_on_error=False`` so the dashboard outlives it)."""
        if event.state == WorkerState.ERROR:
            what = event.worker.group or event.worker.name or "a background task"
            self.notices.toast(f"{what} failed: {clean(str(event.worker.error), 300)}",
                               "error", "error", timeout=20)  # fmt: skip

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if isinstance(event.data_table, CheckpointTable):
            event.stop()
            self.control.resume(str(event.row_key.value))

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
        st, now, f = self.state, self.clock(), self.feeds
        extra = " · ".join(
            p for p in ("loading history…" * f.loading, "bell on" * self.bell_on) if p
        )
        self.query_one(HeaderBar).show(header_view(st, now), extra)
        self.dashboard.draw(st, f.rows, f.system, self.selected, now)
        f.new_checkpoint_seen()
        self.notices.status_changed(st.status)
        if not f.loading:
            self.notices.announce_alerts(st.alerts, self.bell_on)
        self.draw_count += 1

    def _draw_charts(self, force: bool = False) -> None:
        try:
            self.dashboard.draw_charts(self.state, self.selected, self.view, force)
        except NoMatches:
            if self.is_running and not self._exit:
                raise

    def _welcome_show(self, text: str | Text) -> None:
        self.query_one("#welcome", Static).update(text)

    # ---- keys

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Tab / shift+tab are priority bindings; inside a dialog they must move the focus.
        return not (action == "cycle_loss" and len(self.screen_stack) > 1)

    def action_help(self) -> None:
        from nal_tui.ui.help import HelpScreen  # lazy: after first paint

        # The keys this layout answers to: the compact one has no big chart.
        keys = key_help(self.BINDINGS, big_chart=not self.has_class("compact"))
        self.push_screen(HelpScreen(keys + EXTRA_KEYS))

    def action_start(self) -> None:
        self.control.start()

    def action_resume(self) -> None:
        self.control.resume()

    def action_stop(self) -> None:
        self.control.stop()

    def action_pick_run(self) -> None:
        self.control.pick_run()

    def action_select_loss(self, i: int) -> None:
        i %= len(SERIES_KEYS)
        if not self.series_builder.request(i):  # else selected once its series are built
            self._select(i)

    def _select(self, i: int) -> None:
        self.selected = i
        self._changed()
        self._draw_charts(force=True)

    def action_cycle_loss(self, delta: int) -> None:
        wanted = self.series_builder.wanted  # a selection still being built counts
        self.action_select_loss((self.selected if wanted is None else wanted) + delta)

    # ---- steering the charts (ChartView); smoothing and log scale are remembered per run

    def _span(self) -> tuple[int | None, int | None]:
        """The first and last step of the series in the big chart."""
        tr = self.state.track(SERIES_KEYS[self.selected])
        return (None, None) if tr is None else (tr.series.first_step, tr.series.last_step)

    def _steered(self, remember: bool = False) -> None:
        self._draw_charts(force=True)
        if remember:
            msg = save_prefs(self.run_dir, ChartPrefs(self.view.log, self.view.weight))
            if msg:
                self.notices.toast(msg, "warning", "warning")

    def _load_view(self, run_dir: Path | None) -> None:
        prefs, msg = load_prefs(run_dir)
        self.view = ChartView(weight=prefs.weight, log=prefs.log)
        if msg:
            self.notices.toast(msg, "warning", "warning", timeout=20)

    def action_zoom(self) -> None:
        self.view.cycle_zoom(self._span()[1])
        self._steered()

    def action_zoom_range(self) -> None:
        """Ask for a range of steps; the charts show it (held there, as after a pan)."""
        from nal_tui.ui.charts.range import RangeScreen  # lazy: after first paint

        if len(self.screen_stack) > 1:
            return

        def done(got: tuple[int, int] | None) -> None:
            if got is not None:
                self.view.show_range(*got)
                self._steered()

        self.push_screen(RangeScreen(), done)

    def action_pan(self, direction: int) -> None:
        self.view.pan(direction, *self._span())
        self._steered()

    def action_follow(self) -> None:
        self.view.follow_tail()
        self._steered()

    def action_smooth(self, delta: int) -> None:
        self.view.weight = step_weight(self.view.weight, delta)
        self._steered(remember=True)

    def action_toggle_log(self) -> None:
        self.view.log = not self.view.log
        self._steered(remember=True)

    def action_samples(self, step: int | None = None) -> None:
        """The samples view of this run (at validation ``step``, default the latest)."""
        from nal_tui.core.samples.catalog import list_validations  # lazy: after first paint
        from nal_tui.ui.quality.screen import QualityScreen  # lazy: after first paint
        from nal_tui.ui.samples.screen import SamplesScreen, Source  # lazy: after first paint

        if self.run_dir is None or not (
            len(self.screen_stack) == 1 or isinstance(self.screen, QualityScreen)
        ):
            return
        st = self.state
        sets = tuple(list_validations(self.run_dir, upto=st.step))
        label = clean(self.run_dir.name, 60)
        src = Source(self.run_dir, label, sets, tuple(st.validation.views))
        self.push_screen(SamplesScreen([src], step))

    def action_quality(self) -> None:
        """The validation chart; Enter there opens the samples of the validation chosen."""
        from nal_tui.ui.quality.screen import QualityScreen  # lazy: after first paint

        if self.run_dir is not None and len(self.screen_stack) == 1:
            self.push_screen(QualityScreen(self.state, self.action_samples))

    def action_toggle_bell(self) -> None:
        self.bell_on = not self.bell_on
        self.notices.toast(f"terminal bell on alerts: {'on' if self.bell_on else 'off'}")
        self._changed()
