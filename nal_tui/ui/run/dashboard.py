"""The dashboard's panels: their arrangement, and drawing them from one run's views.

``Dashboard`` only renders what it is handed (a ``RunState``, the checkpoint rows, a
system sample); the app decides when. Which panels show at which terminal size is the
stylesheet's business (``app.tcss``, by the size classes of ``size_class``).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

from nal_tui.core.reducer.chartview import ChartView
from nal_tui.core.reducer.present import (
    alerts_view,
    loss_label,
    losses_view,
    milestones_view,
    progress_view,
    table_rows,
)
from nal_tui.core.reducer.state import RunState
from nal_tui.core.reducer.views import CheckpointRow, SystemView
from nal_tui.core.vocab import LOSS_KEYS, OPT_KEYS, SERIES_KEYS
from nal_tui.ui.charts.chart import BigChart
from nal_tui.ui.checkpoints.table import CheckpointTable, MilestonesPanel
from nal_tui.ui.run.alerts import AlertsPanel
from nal_tui.ui.run.facts import facts_lines
from nal_tui.ui.run.gpu import GpuPanel
from nal_tui.ui.run.losses import LossesPanel
from nal_tui.ui.run.progress import ProgressPanel
from nal_tui.ui.run.system import SystemPanel
from nal_tui.ui.run.validation import ValidationPanel
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_value

COMPACT_W, COMPACT_H = 100, 30  # below either: one column, details in the facts panel
MEDIUM_W, MEDIUM_H = 140, 40  # below either: two columns, fewer right-hand panels
SIZE_CLASSES = ("compact", "medium", "wide")

PANELS = {
    "progress": "Progress",
    "losses": "Losses",
    "checkpoints": "Checkpoints",
    "milestones": "Milestones",
    "validation": "Validation",
    "system": "System",
    "gpu": "GPU",
    "alerts": "Alerts",
    "facts": "Run",
}


def size_class(width: int, height: int) -> str:
    """The layout for a terminal of ``width`` x ``height`` cells (a CSS class on the app)."""
    if width < COMPACT_W or height < COMPACT_H:
        return "compact"
    if width < MEDIUM_W or height < MEDIUM_H:
        return "medium"
    return "wide"


def group_keys(key: str) -> tuple[str, ...]:
    """The series shown beside ``key`` in the losses panel: the losses or the optimiser's."""
    return LOSS_KEYS if key in LOSS_KEYS else OPT_KEYS


def loss_extremes(st: RunState, key: str) -> str:
    """``now 1.2 · min 0.9 @4,100 · max 80 @12 · `` for the big chart's subtitle (a loss's
    best is its min); ``~`` marks a step known to within the chart's bucket width."""
    track = st.track(key)
    ext = track.series.extremes() if track is not None else None
    if ext is None:
        return ""
    lo, lo_s, hi, hi_s = ext
    approx = "~" if track.series.width > 1 else ""
    now = track.current
    head = f"now {fmt_value(now)} · " if now is not None else ""
    return f"{head}min {fmt_value(lo)} @{approx}{lo_s:,} · max {fmt_value(hi)} @{approx}{hi_s:,} · "


class Dashboard(Horizontal):
    """Progress, losses and the big chart on the left; the run's tables on the right."""

    def __init__(self) -> None:
        super().__init__(id="body")
        self.charts_version = -1  # the state version the charts were last drawn for

    def compose(self) -> ComposeResult:
        with Vertical(id="left"):
            yield ProgressPanel(id="progress", classes="panel")
            yield LossesPanel(SERIES_KEYS, id="losses")
            yield BigChart(id="big", classes="panel")
            yield TextPanel(id="facts", classes="panel")
        with Vertical(id="right"):
            yield CheckpointTable(id="checkpoints")
            yield MilestonesPanel(id="milestones", classes="panel")
            yield ValidationPanel(id="validation", classes="panel")
            yield SystemPanel(id="system", classes="panel")
            yield GpuPanel(id="gpu", classes="panel")
            yield AlertsPanel(id="alerts", classes="panel")

    def on_mount(self) -> None:
        for wid, title in PANELS.items():
            self.query_one(f"#{wid}").border_title = title

    def draw(
        self,
        st: RunState,
        rows: list[CheckpointRow],
        system: SystemView | None,
        selected: int,
        now: float,
    ) -> None:
        """Every panel but the charts (cheap: called on every change)."""
        rows = table_rows(st, rows)
        self.query_one(ProgressPanel).show(progress_view(st))
        key = SERIES_KEYS[selected]
        self.query_one(LossesPanel).show(losses_view(st, group_keys(key)), key)
        title = PANELS["losses"] if key in LOSS_KEYS else "Optimiser: lr, grad norms"
        losses = self.query_one("#losses")
        if losses.border_title != title:
            losses.border_title = title
        self.query_one(ValidationPanel).show(st.val)
        self.query_one(CheckpointTable).show(rows, now)
        milestones = milestones_view(st)
        self.query_one(MilestonesPanel).show(milestones)
        self.query_one(SystemPanel).show(system)
        self.query_one(GpuPanel).show(system.gpu if system is not None else None)
        alerts = alerts_view(st)
        self.query_one(AlertsPanel).show(alerts)
        self.query_one("#facts", TextPanel).set_text(
            facts_lines(st.val, rows, milestones, system, alerts)
        )

    def draw_charts(
        self, st: RunState, selected: int, view: ChartView, force: bool = False
    ) -> None:
        """The charts over the steps ``view`` shows, when the state moved on since they were
        last drawn (or ``force``: the view or the selection changed)."""
        key = SERIES_KEYS[selected]
        v = losses_view(st, group_keys(key))
        if v.version == self.charts_version and not force:
            return
        self.query_one(LossesPanel).show_charts(v, view)
        self.charts_version = v.version
        series = st.track(key).series  # type: ignore[union-attr]
        big = self.query_one(BigChart)
        big.set_view(
            log=view.log,
            weight=view.weight,
            window=view.window(series.first_step, series.last_step),
        )
        big.set_series(series, v.version, markers=v.resume_steps)
        self.big_title(st, selected, view)

    def big_title(self, st: RunState, selected: int, view: ChartView) -> None:
        rn, key = st.recon_name, SERIES_KEYS[selected]
        series = st.track(key).series  # type: ignore[union-attr]
        flags = " ".join(
            f"[{i + 1}]" if i == selected else str(i + 1) for i, _ in enumerate(SERIES_KEYS)
        )
        big = self.query_one(BigChart)
        where = view.label(series.first_step, series.last_step)
        big.border_title = f"{loss_label(key, rn)} · {where} · {flags}"
        smooth = f"{view.weight:g}" if view.weight else "off"
        follow = "" if view.follow else "f follow · "
        keys = (
            f"{follow}m/M smooth {smooth} · l log {'on' if view.log else 'off'} · z zoom · [ ] pan"
        )
        short = f"{follow}smooth {smooth} · log {'on' if view.log else 'off'}"
        stats = loss_extremes(st, key)
        big.set_subtitles(stats + keys, stats + short, keys, short)  # the figures if they fit
