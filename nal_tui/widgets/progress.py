"""Progress panel: step / target, percent, a bar, rates, ETA and the next checkpoint."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from nal_tui.widgets.base import TextPanel
from nal_tui.widgets.header import fmt_duration

_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int) -> Text:
    """A progress bar with eighth-cell resolution."""
    width = max(1, width)
    f = min(1.0, max(0.0, fraction))
    full, rem = divmod(int(round(f * width * 8)), 8)
    s = "█" * full + (_EIGHTHS[rem] if full < width and rem else "")
    t = Text(s, style="green")
    t.append("·" * (width - len(s)), style="grey35")
    return t


def fmt_rate(v: float | None, unit: str) -> str:
    if v is None or v != v:
        return f"-- {unit}"
    return f"{v:,.2f} {unit}" if v < 100 else f"{v:,.0f} {unit}"


class ProgressPanel(TextPanel):
    FIXED = True

    """Renders the progress figures of a RunState."""

    def show(self, state: Any) -> None:
        self.set_text(progress_text(state, max(10, self.size.width - 2)))


def progress_text(state: Any, width: int = 60) -> Text:
    """The panel's text for ``state`` at a given inner width."""
    t = Text()
    target = state.target_step
    step = state.step
    t.append("step -" if step is None else f"step {step:,}", style="bold")
    if target:
        t.append(f" / {target:,}")
        t.append(f"  {100 * state.progress:5.1f}%", style="bold cyan")
    if state.epoch is not None:
        t.append(f"  epoch {state.epoch}", style="dim")
    t.append("\n")
    t.append_text(bar(state.progress if target else 0.0, width))
    t.append("\n")
    t.append(fmt_rate(state.steps_per_s, "steps/s"))
    t.append("   ")
    t.append(fmt_rate(state.samples_per_s, "samples/s"))
    t.append("\nETA ", style="bold")
    t.append(
        fmt_duration(state.eta_s) if state.eta_s is not None else "--",
        style="bold cyan" if state.eta_s is not None else "dim",
    )
    nxt = state.next_checkpoint_step
    t.append("   next ckpt ", style="bold")
    if nxt is None:
        t.append("--", style="dim")
    else:
        t.append(f"@{nxt:,}")
        if state.next_checkpoint_eta_s is not None:
            t.append(f" in {fmt_duration(state.next_checkpoint_eta_s)}")
    return t
