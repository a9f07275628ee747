"""Losses panel: per loss the current value, 100-step average, trend and a whole-run chart."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nal_tui.core.reducer.views import LossesView, LossRowView
from nal_tui.ui.charts.chart import SeriesChart
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Part, shorten
from nal_tui.ui.widgets.fmt import fmt_value

LOSS_STYLES = {"g": "green", "d": "magenta", "stft": "cyan", "adv": "yellow", "fm": "blue"}


def trend_text(v: LossRowView) -> Text:
    """Arrow and percent of the trend over the moving-average window."""
    if v.current is None or v.trend_pct is None:
        return Text("   --  ", style="dim")
    # Falling losses are good news (green); rising ones are worth a look (yellow).
    arrow, style = {1: ("▲", "yellow"), -1: ("▼", "green")}.get(v.trend_dir, ("▶", "dim"))
    pct = min(abs(v.trend_pct), 999.9)
    return Text(f"{arrow}{pct:5.1f}%", style=style)


def loss_row_text(v: LossRowView, selected: bool) -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("▶ " if selected else "  ", style="bold")
    t.append(f"{shorten(v.label, 15):<16}", style=f"bold {LOSS_STYLES.get(v.key, '')}")
    cur = v.current
    t.append(
        f"{fmt_value(cur) if cur is not None else '--':>9}",
        style="bold red" if cur is not None and cur != cur else "bold",
    )
    t.append(f" {fmt_value(v.avg) if v.avg is not None else '--':>9} ", style="dim")
    t.append_text(trend_text(v))
    return t


class LossFigures(TextPanel):
    """One loss's figures: label, current, average, trend."""


class LossRow(Horizontal):
    """One loss: figures on the left, its whole-run chart on the right."""

    def __init__(self, key: str) -> None:
        super().__init__(id=f"loss-{key}", classes="loss-row")
        self.key = key

    def compose(self) -> ComposeResult:
        yield LossFigures(id=f"loss-figs-{self.key}", classes="loss-figs")
        yield SeriesChart(
            style=LOSS_STYLES.get(self.key, "green"),
            id=f"loss-chart-{self.key}",
            classes="loss-chart",
        )


class LossesPanel(Vertical):
    """Five LossRows under a column header."""

    def __init__(self, keys: tuple[str, ...], id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = keys

    def compose(self) -> ComposeResult:
        head = FitLines.of(
            [[Part(f"  {'loss':<16}{'current':>9} {'avg100':>9}  trend", "bold dim"),
              Part("  whole run", "bold dim", drop=1)]]
        )  # fmt: skip
        yield Static(head, id="loss-head")
        for k in self.keys:
            yield LossRow(k)

    def show(self, v: LossesView, selected: str) -> None:
        """The figures column of every row (cheap: redrawn on every change)."""
        for row in v.rows:
            self.query_one(f"#loss-figs-{row.key}", LossFigures).set_text(
                loss_row_text(row, row.key == selected)
            )
            self.query_one(f"#loss-{row.key}", LossRow).set_class(row.key == selected, "selected")

    def show_charts(self, v: LossesView) -> None:
        """The whole-run charts (each asks its series for buckets: throttled by the app)."""
        for row in v.rows:
            self.query_one(f"#loss-chart-{row.key}", SeriesChart).set_series(
                row.series, v.version, markers=v.resume_steps
            )
