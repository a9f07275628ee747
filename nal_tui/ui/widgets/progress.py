"""Progress panel: step / target, percent, a bar, rates, ETA and the next checkpoint."""

from __future__ import annotations

from rich.text import Text

from nal_tui.core.views import ProgressView
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fmt import fmt_duration, fmt_rate

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


def progress_text(v: ProgressView, width: int = 60) -> Text:
    t = Text()
    t.append("step -" if v.step is None else f"step {v.step:,}", style="bold")
    if v.target_step:
        t.append(f" / {v.target_step:,}")
        t.append(f"  {100 * v.progress:5.1f}%", style="bold cyan")
    if v.epoch is not None:
        t.append(f"  epoch {v.epoch}", style="dim")
    t.append("\n")
    t.append_text(bar(v.progress if v.target_step else 0.0, width))
    t.append("\n")
    t.append(fmt_rate(v.steps_per_s, "steps/s"))
    t.append("  ")
    t.append(fmt_rate(v.samples_per_s, "samples/s"))
    t.append("\nETA ", style="bold")
    t.append(
        fmt_duration(v.eta_s) if v.eta_s is not None else ("ended" if v.ended else "--"),
        style="bold cyan" if v.eta_s is not None else "dim",
    )
    if not v.ended:
        t.append("  next ckpt ", style="bold")
        if v.next_checkpoint_step is None:
            t.append("--", style="dim")
        else:
            t.append(f"@{v.next_checkpoint_step:,}")
            if v.next_checkpoint_eta_s is not None:
                t.append(f" in {fmt_duration(v.next_checkpoint_eta_s)}")
    return t


class ProgressPanel(TextPanel):
    FIXED = True
    _view: ProgressView | None = None

    def show(self, v: ProgressView) -> None:
        self._view = v
        self.set_text(progress_text(v, max(10, self.content_size.width - 1)))

    def on_resize(self) -> None:
        if self._view is not None:
            self.show(self._view)
