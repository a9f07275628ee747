"""Losses panel: per loss the current value, 100-step average, trend and a whole-run chart.

The same rows show the optimiser's series (learning rates, gradient norms) when one of
them is selected: the panel shows the group of the series in the big chart."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nal_tui.core.reducer.chartview import ChartView
from nal_tui.core.reducer.views import LossesView, LossRowView
from nal_tui.core.vocab import LOSS_KEYS as _LOSSES
from nal_tui.ui.charts.chart import SeriesChart
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Part, shorten
from nal_tui.ui.widgets.fmt import fmt_value

LOSS_STYLES = {
    "g": "green", "d": "magenta", "stft": "cyan", "adv": "yellow", "fm": "blue",
    "lr_g": "green", "lr_d": "magenta", "grad_norm_g": "bright_green", "grad_norm_d": "bright_magenta",
}  # fmt: skip


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


def head_line(what: str, col: str = "loss") -> FitLines:
    """The column header; ``what`` names the steps the charts show."""
    return FitLines.of(
        [[Part(f"  {col:<16}{'current':>9} {'avg100':>9}  trend", "bold dim"),
          Part(f"  {what}", "bold dim", drop=1)]]
    )  # fmt: skip


class LossesPanel(Vertical):
    """A LossRow per series under a column header; one group's rows show at a time."""

    def __init__(self, keys: tuple[str, ...], id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = keys

    def compose(self) -> ComposeResult:
        yield Static(head_line("whole run"), id="loss-head")
        for k in self.keys:
            yield LossRow(k)

    def show(self, v: LossesView, selected: str) -> None:
        """The figures column of the rows of ``v`` (cheap: redrawn on every change); the
        other rows are hidden."""
        shown = {row.key for row in v.rows}
        for k in self.keys:
            row_w = self.query_one(f"#loss-{k}", LossRow)
            if row_w.display != (k in shown):  # only a change of group lays out again
                row_w.display = k in shown
        for row in v.rows:
            self.query_one(f"#loss-figs-{row.key}", LossFigures).set_text(
                loss_row_text(row, row.key == selected)
            )
            self.query_one(f"#loss-{row.key}", LossRow).set_class(row.key == selected, "selected")

    def show_charts(self, v: LossesView, view: ChartView) -> None:
        """The charts over the steps ``view`` shows (each asks its series for buckets:
        throttled by the app)."""
        label, col = "whole run", "loss"
        for row in v.rows:
            chart = self.query_one(f"#loss-chart-{row.key}", SeriesChart)
            first, last = row.series.first_step, row.series.last_step
            chart.set_view(window=view.window(first, last))
            chart.set_series(row.series, v.version, markers=v.resume_steps)
            if row.key == v.rows[0].key:
                label = view.label(first, last)
                col = "loss" if row.key in _LOSSES else "optimiser"
        self.query_one("#loss-head", Static).update(head_line(label, col))
