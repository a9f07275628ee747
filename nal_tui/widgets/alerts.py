"""Alerts panel: the newest alerts first, coloured by level."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from rich.text import Text

from nal_tui.widgets.base import TextPanel

LEVEL_STYLES = {"error": "bold red", "critical": "bold red", "warning": "yellow", "info": "cyan"}


def alert_key(a: Any) -> tuple[Any, ...]:
    """Identity of an alert row, so each one is announced only once."""
    return (a.kind, a.level, a.step, a.message, a.t)


def alerts_text(alerts: Sequence[Any], garbled: int = 0, max_rows: int = 6) -> Text:
    """Newest alerts first, then a count of the rest; garbled log lines are an alert too."""
    t = Text()
    if garbled:
        t.append(f"⚠ {garbled} garbled line(s) in the event log skipped\n", style="yellow")
    if not alerts:
        if not garbled:
            t.append("no alerts", style="dim green")
        return t
    for a in list(alerts)[::-1][:max_rows]:
        style = LEVEL_STYLES.get(a.level, "")
        when = time.strftime("%H:%M:%S", time.localtime(a.t)) if a.t else "--:--:--"
        step = f"@{a.step:,}" if a.step is not None else ""
        t.append(f"{when} ", style="dim")
        t.append(f"{a.level.upper():<7} ", style=style)
        t.append(f"{a.kind} {step}: ", style="bold")
        t.append(f"{a.message}\n")
    if len(alerts) > max_rows:
        t.append(f"… {len(alerts) - max_rows} older", style="dim")
    return t


class AlertsPanel(TextPanel):
    def show(self, state: Any) -> None:
        self.set_text(alerts_text(state.alerts, state.garbled))
