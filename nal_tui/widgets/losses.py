"""Losses panel: per loss the current value, 100-step average, trend and a whole-run chart."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Static

from nal_tui.widgets.base import TextPanel
from nal_tui.widgets.chart import SeriesChart, fmt_value

LOSS_LABELS = {
    "g": "G total",
    "d": "D total",
    "stft": "recon",
    "adv": "adversarial",
    "fm": "feat. match",
}
LOSS_STYLES = {"g": "green", "d": "magenta", "stft": "cyan", "adv": "yellow", "fm": "blue"}


def loss_label(key: str, recon_name: str | None = None) -> str:
    """Display name of a loss key; the recon loss shows its configured kind."""
    if key == "stft" and recon_name:
        return f"recon ({recon_name})"
    return LOSS_LABELS.get(key, key)


def trend_text(view: Any) -> Text:
    """Arrow and percent of the trend over the moving-average window."""
    if view.current is None:
        return Text("   --  ", style="dim")
    pct, d = view.trend_pct, view.trend_dir
    if pct is None or d is None:
        return Text("   --  ", style="dim")
    # Falling losses are good news (green); rising ones are worth a look (yellow).
    arrow, style = {1: ("▲", "yellow"), -1: ("▼", "green")}.get(d, ("▶", "dim"))
    return Text(f"{arrow}{abs(pct):5.1f}%", style=style)


def loss_row_text(key: str, view: Any, recon_name: str | None, selected: bool) -> Text:
    """The figures column of one loss row."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append("▶ " if selected else "  ", style="bold")
    t.append(f"{loss_label(key, recon_name):<16.16}", style=f"bold {LOSS_STYLES.get(key, '')}")
    cur = view.current
    t.append(
        f"{fmt_value(cur) if cur is not None else '--':>9}",
        style="bold red" if cur is not None and cur != cur else "bold",
    )
    avg = view.moving_avg if cur is not None else None  # no values yet: no average
    t.append(f" {fmt_value(avg) if avg is not None else '--':>9} ", style="dim")
    t.append_text(trend_text(view))
    return t


class LossFigures(TextPanel):
    FIXED = True


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
    """Five LossRows plus a column header."""

    def __init__(self, keys: tuple[str, ...], id: str | None = None) -> None:
        super().__init__(id=id)
        self.keys = keys

    def compose(self) -> ComposeResult:
        head = Text(no_wrap=True)
        head.append(
            f"  {'loss':<16}{'current':>9} {'avg100':>9}  trend   whole run (min/max)",
            style="bold dim",
        )
        yield Static(head, id="loss-head")
        for k in self.keys:
            yield LossRow(k)

    def show(self, state: Any, selected: str) -> None:
        """The figures column of every row (cheap: redrawn on every change)."""
        for k in self.keys:
            view = state.losses.get(k)
            if view is None:
                continue
            self.query_one(f"#loss-figs-{k}", LossFigures).set_text(
                loss_row_text(k, view, state.recon_name, k == selected)
            )
            self.query_one(f"#loss-{k}", LossRow).set_class(k == selected, "selected")

    def show_charts(self, state: Any, version: int) -> None:
        """The whole-run charts (each asks its series for buckets: throttled by the app)."""
        for k in self.keys:
            view = state.losses.get(k)
            if view is not None:
                self.query_one(f"#loss-chart-{k}", SeriesChart).set_series(
                    view.series, version, markers=state.resume_steps
                )
