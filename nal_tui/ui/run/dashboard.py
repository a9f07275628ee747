"""The dashboard's panels: their arrangement, and drawing them from one run's views.

``Dashboard`` only renders what it is handed (a ``RunState``, the checkpoint rows, a
system sample); the app decides when. Which panels show at which terminal size is the
stylesheet's business (``app.tcss``, by the size classes of ``size_class``).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical

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
from nal_tui.core.vocab import LOSS_KEYS
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


def loss_extremes(st: RunState, key: str) -> str:
    """``now 1.2 · min 0.9 @4,100 · max 80 @12 · `` for the big chart's subtitle (a loss's
    best is its min); ``~`` marks a step known to within the chart's bucket width."""
    track = st.losses.get(key)
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
            yield LossesPanel(LOSS_KEYS, id="losses")
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
        self.query_one(LossesPanel).show(losses_view(st), LOSS_KEYS[selected])
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

    def draw_charts(self, st: RunState, selected: int, force: bool = False) -> None:
        """The whole-run charts, when the state moved on since they were last drawn."""
        v = losses_view(st)
        if v.version == self.charts_version and not force:
            return
        self.query_one(LossesPanel).show_charts(v)
        self.charts_version = v.version
        self.query_one(BigChart).set_series(
            v.rows[selected].series, v.version, markers=v.resume_steps
        )
        self.big_title(st, selected)

    def big_title(self, st: RunState, selected: int) -> None:
        rn = st.recon_name
        flags = " ".join(
            f"[{i + 1}] {loss_label(k, rn)}" if i == selected else str(i + 1)
            for i, k in enumerate(LOSS_KEYS)
        )
        big = self.query_one(BigChart)
        big.border_title = f"{loss_label(LOSS_KEYS[selected], rn)} · whole run · {flags}"
        keys = (
            f"m smooth: {'on' if big.smooth else 'off'} · l log: {'on' if big.log_scale else 'off'}"
        )
        stats = loss_extremes(st, LOSS_KEYS[selected])
        big.set_subtitles(stats + keys, keys)  # the figures when they fit whole
