"""Header: run name, status badge, live trainer PID, time since the last event, step."""

from __future__ import annotations

from rich.text import Text

from nal_tui.core.views import HeaderView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_duration

STATUS_STYLES = {
    "not started": "bold black on grey70",
    "running": "bold black on green",
    "stopping": "bold black on yellow",
    "stopped": "bold white on blue",
    "completed": "bold black on cyan",
    "crashed": "bold white on red",
    "stale": "bold black on dark_orange",
}


def age_style(age: float | None, status: str) -> str:
    """Green while events are fresh, yellow when slow, red when the run looks stuck."""
    if age is None or status != "running":
        return "dim"
    return "green" if age < 10 else "yellow" if age < 60 else "bold red"


def header_text(v: HeaderView, extra: str = "") -> Text:
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" nAudioLab ", style="bold white on #5f00af")
    t.append(f" {v.run_name or '(no run)'} ", style="bold")
    t.append(f" {v.status.upper()} ", style=STATUS_STYLES.get(v.status, "reverse"))
    t.append(f" step {v.step:,}" if v.step is not None else " step -", style="bold")
    if v.target_step:
        t.append(f"/{v.target_step:,}")
    t.append(f"  pid {v.pid}" if v.pid else "  pid -", style="" if v.pid else "dim")
    age = v.since_last_event
    t.append("  last event ")
    t.append(
        f"{fmt_duration(age)} ago" if age is not None else "never", style=age_style(age, v.status)
    )
    if v.device:
        ws = v.world_size or 1
        t.append(f"  {v.device}" + (f" × {ws} ranks" if ws > 1 else ""), style="dim")
    if extra:
        t.append(f"  {extra}", style="dim")
    return t


class HeaderBar(TextPanel):
    """One line; redrawn on state changes and once a second for the event age."""

    FIXED = True

    def show(self, view: HeaderView, extra: str = "") -> None:
        self.set_text(header_text(view, extra))
