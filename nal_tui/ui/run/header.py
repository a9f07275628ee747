"""Header: run name, status badge, live trainer PID, time since the last event, step."""

from __future__ import annotations

from nal_tui.core.reducer.views import HeaderView
from nal_tui.core.text import fmt_duration
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import FitLines, Part

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


def header_parts(v: HeaderView, extra: str = "") -> list[Part]:
    """The header's parts; a narrow terminal drops the least important whole parts."""
    age = v.since_last_event
    ws = v.world_size or 1
    parts = [
        Part(" nAudioLab ", "bold white on #5f00af", drop=4),
        Part(f" {v.run_name or '(no run)'} ", "bold"),
        Part(f" {v.status.upper()} ", STATUS_STYLES.get(v.status, "reverse")),
        Part(f" step {v.step:,}" if v.step is not None else " step -", "bold"),
    ]
    if v.target_step:
        parts.append(Part(f"/{v.target_step:,}", drop=1))
    parts += [
        Part(f"  pid {v.pid}" if v.pid else "  pid -", "" if v.pid else "dim", drop=2),
        Part("  last event ", drop=1),
        Part(f"{fmt_duration(age)} ago" if age is not None else "never",
             age_style(age, v.status), drop=1),
    ]  # fmt: skip
    if v.device:
        parts.append(Part(f"  {v.device}" + (f" × {ws} ranks" if ws > 1 else ""), "dim", 3))
    if extra:
        parts.append(Part(f"  {extra}", "dim", drop=3))
    return parts


class HeaderBar(TextPanel):
    """One line; redrawn on state changes and once a second for the event age."""

    def show(self, view: HeaderView, extra: str = "") -> None:
        self.set_text(FitLines.of([header_parts(view, extra)]))
