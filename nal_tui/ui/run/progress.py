"""Progress panel: step / target, percent, a bar, rates, ETA and the next checkpoint."""

from __future__ import annotations

from rich.text import Text

from nal_tui.core.reducer.views import ProgressView
from nal_tui.core.text import fmt_duration
from nal_tui.ui.widgets.base import TextPanel
from nal_tui.ui.widgets.fit import Bar, FitLines, Part
from nal_tui.ui.widgets.fmt import fmt_rate

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


def _bar_line(fraction: float, width: int) -> Text:
    return bar(fraction, width - 1)


def progress_lines(v: ProgressView) -> FitLines:
    step = "step -" if v.step is None else f"step {v.step:,}"
    first = [Part(step, "bold")]
    if v.target_step:
        first += [Part(f" / {v.target_step:,}"), Part(f"  {100 * v.progress:5.1f}%", "bold cyan")]
    if v.epoch is not None:
        first.append(Part(f"  epoch {v.epoch}", "dim", drop=1))
    fraction = v.progress if v.target_step else 0.0
    rates = [
        Part(fmt_rate(v.steps_per_s, "steps/s")),
        Part("  " + fmt_rate(v.samples_per_s, "samples/s"), drop=1),
    ]
    eta = [
        Part("ETA ", "bold"),
        Part(
            fmt_duration(v.eta_s) if v.eta_s is not None else ("ended" if v.ended else "--"),
            "bold cyan" if v.eta_s is not None else "dim",
        ),
    ]
    if v.eta_range_s is not None:  # the rate is noisy: say how far the ETA may be off
        lo, hi = v.eta_range_s
        eta.append(Part(f" ({fmt_duration(lo)}–{fmt_duration(hi)})", "cyan", drop=1))
    if not v.ended:
        eta.append(Part("  next ckpt ", "bold", drop=1))
        if v.next_checkpoint_step is None:
            eta.append(Part("--", "dim", drop=1))
        else:
            eta.append(Part(f"@{v.next_checkpoint_step:,}", drop=1))
            if v.next_checkpoint_eta_s is not None:
                eta.append(Part(f" in {fmt_duration(v.next_checkpoint_eta_s)}", drop=2))
    bar_line = Bar(_bar_line, round(fraction, 6))
    return FitLines.of([first, bar_line, rates, eta])


class ProgressPanel(TextPanel):
    def show(self, v: ProgressView) -> None:
        self.set_text(progress_lines(v))
