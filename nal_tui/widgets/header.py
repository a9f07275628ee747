"""Header: run name, status badge, trainer PID and time since the last event."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from nal_tui.widgets.base import TextPanel

STATUS_STYLES = {
    "not started": "bold black on grey70",
    "running": "bold black on green",
    "stopping": "bold black on yellow",
    "stopped": "bold white on blue",
    "completed": "bold black on cyan",
    "crashed": "bold white on red",
    "failed": "bold white on red",
    "stale": "bold black on dark_orange",
}


def fmt_duration(s: float | None) -> str:
    """Seconds as a compact duration: 42s, 5m07s, 3h12m, 2d04h."""
    if s is None or s != s or s < 0:
        return "--"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def age_style(age: float | None, status: str) -> str:
    """Green while events are fresh, yellow when slow, red when the run looks stuck."""
    if age is None or status != "running":
        return "dim"
    return "green" if age < 10 else "yellow" if age < 60 else "bold red"


class HeaderBar(TextPanel):
    FIXED = True

    """One line; redrawn on state changes and once a second for the event age."""

    def show(self, state: Any, now: float, extra: str = "") -> None:
        self.set_text(header_text(state, now, extra))


def header_text(state: Any, now: float, extra: str = "") -> Text:
    """The header line for ``state`` at time ``now``."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(" nAudioLab ", style="bold white on #5f00af")
    t.append(f" {state.run_name or '(no run)'} ", style="bold")
    status = state.status
    t.append(f" {status.upper()} ", style=STATUS_STYLES.get(status, "reverse"))
    pid = state.pid
    t.append(f"  pid {pid}" if pid else "  pid -", style="dim" if not pid else "")
    age = state.since_last_event(now)
    t.append("  last event ")
    t.append(
        f"{fmt_duration(age)} ago" if age is not None else "never", style=age_style(age, status)
    )
    t.append(f"  step {state.step:,}" if state.step is not None else "  step -", style="bold")
    if state.target_step:
        t.append(f"/{state.target_step:,}")
    if state.device:
        ws = state.world_size or 1
        t.append(f"  {state.device}" + (f" × {ws} ranks" if ws > 1 else ""), style="dim")
    if extra:
        t.append(f"  {extra}", style="dim")
    return t
