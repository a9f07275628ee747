"""Alerts panel: the newest alerts first, coloured by level."""

from __future__ import annotations

import time

from rich.text import Text

from nal_tui.core.reducer.views import AlertsView
from nal_tui.ui.widgets.base import TextPanel

LEVEL_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def alerts_text(v: AlertsView, max_rows: int = 6) -> Text:
    t = Text()
    if v.garbled:
        t.append(f"⚠ {v.garbled} garbled line(s) in the event log skipped\n", style="yellow")
    if not v.rows:
        if not v.garbled:
            t.append("no alerts", style="dim green")
        return t
    for a in list(v.rows)[::-1][:max_rows]:
        when = time.strftime("%H:%M:%S", time.localtime(a.t)) if a.t and a.t < 1e11 else "--:--:--"
        step = f"@{a.step:,}" if a.step is not None else ""
        t.append(f"{when} ", style="dim")
        t.append(f"{a.level.upper():<7} ", style=LEVEL_STYLES.get(a.level, ""))
        t.append(f"{a.kind} {step}: ", style="bold")
        t.append(f"{a.message}\n")
    more = len(v.rows) + v.dropped - max_rows
    if more > 0:
        t.append(f"… {more} older", style="dim")
    return t


class AlertsPanel(TextPanel):
    def show(self, v: AlertsView) -> None:
        self.set_text(alerts_text(v))
