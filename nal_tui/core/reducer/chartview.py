"""How the user steers a chart: zoom, pan, follow the tail, smoothing, log scale.

Plain data and pure functions (no drawing): the dashboard keeps one ``ChartView`` and asks
it which steps to show (``window``) and what to call them (``label``). Smoothing is
TensorBoard's debiased EMA (``ema``), with the same weights a user knows from there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

# The zoom levels ``z`` cycles through: the whole run, then the last N steps.
ZOOMS: tuple[int | None, ...] = (None, 1_000, 10_000, 100_000)
# The smoothing weights ``m`` / ``M`` step through (0: the raw series only).
SMOOTH_WEIGHTS = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)
DEFAULT_WEIGHT = 0.6  # TensorBoard's default: the weight smoothing turned on starts at
PAN_FRACTION = 0.5  # one pan key moves the window by half its width


def ema(values: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's smoothing: an EMA started at 0 and debiased by ``1 - weight**n``.

    Non-finite values pass through unchanged and do not feed the average; a constant
    series is returned as it is (as TensorBoard does, so a flat line stays exact).
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"ema: weight must be in [0, 1) (got {weight})")
    vals = list(values)
    fin = [v for v in vals if math.isfinite(v)]
    if not fin or all(v == fin[0] for v in fin):
        return vals
    last, n, out = 0.0, 0, []
    for v in vals:
        if not math.isfinite(v):
            out.append(v)
            continue
        last = last * weight + (1.0 - weight) * v
        n += 1
        out.append(last / (1.0 - weight**n))
    return out


def step_weight(weight: float, delta: int) -> float:
    """The next (``delta`` +1) or previous (-1) weight of SMOOTH_WEIGHTS from ``weight``,
    held at the ends."""
    i = min(range(len(SMOOTH_WEIGHTS)), key=lambda k: abs(SMOOTH_WEIGHTS[k] - weight))
    return SMOOTH_WEIGHTS[max(0, min(len(SMOOTH_WEIGHTS) - 1, i + delta))]


def fmt_steps(n: int) -> str:
    """``950``, ``12k``, ``1.5k``, ``2.5M``: a step count short enough for a border."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.1f}".rstrip("0").rstrip(".") + unit
    return str(n)


_STEP = r"\s*([0-9][0-9,_]*(?:\.[0-9]+)?)\s*([kKmM]?)\s*"
_RANGE = re.compile(_STEP + r"(?:-|–|\.\.|to)" + _STEP)


def parse_range(text: str) -> tuple[int, int] | None:
    """``120000-130000``, ``120k–130k``, ``1.5M..2M``: (first, last) step; None when it is
    not a range of two steps, the first below the last."""
    m = _RANGE.fullmatch(text.strip())
    if m is None:
        return None
    ends = []
    for num, unit in (m.group(1, 2), m.group(3, 4)):
        try:
            v = float(num.replace(",", "").replace("_", ""))
        except ValueError:
            return None
        ends.append(int(round(v * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()])))
    a, b = ends
    return (a, b) if 0 <= a < b else None


@dataclass
class ChartView:
    """What a chart shows: ``span`` steps (None: the whole run) ending at the run's last
    step while ``follow``, else at ``end``; smoothed with ``weight``; on a log axis."""

    span: int | None = None
    follow: bool = True
    end: int | None = None
    weight: float = 0.0
    log: bool = False

    def window(self, first: int | None, last: int | None) -> tuple[int, int] | None:
        """(start, end) steps to draw of a series over ``first..last``; None: the whole."""
        if first is None or last is None:
            return None
        if self.follow:
            if self.span is None:
                return None
            return max(first, last - self.span + 1), last
        span = self.span if self.span is not None else last - first + 1
        end = min(last, self.end if self.end is not None else last)
        start = max(first, end - span + 1)
        end = max(end, min(last, start + span - 1))  # panned to the start: keep the width
        return start, end

    def cycle_zoom(self, last: int | None) -> None:
        """The next zoom level; a panned view keeps its end step."""
        i = ZOOMS.index(self.span) if self.span in ZOOMS else 0
        self.span = ZOOMS[(i + 1) % len(ZOOMS)]
        if not self.follow and self.end is None:
            self.end = last

    def pan(self, direction: int, first: int | None, last: int | None) -> None:
        """Move the window by half its width, back (-1) or on (+1); panning leaves follow
        mode; reaching the last step on the way forward follows the tail again."""
        if first is None or last is None:
            return
        win = self.window(first, last) or (first, last)
        width = max(1, win[1] - win[0] + 1)
        if self.span is None:  # the whole run does not pan: halve it first
            self.span = max(1, width // 2)
            width = self.span
            win = (last - width + 1, last)
        end = win[1] + direction * max(1, int(width * PAN_FRACTION))
        end = max(first + width - 1, min(last, end))
        if direction > 0 and end >= last:
            self.follow_tail()
            return
        self.follow, self.end = False, end

    def show_range(self, first: int, last: int) -> None:
        """Steps ``first..last``, held there (panning moves it; ``z`` goes back to the
        zoom levels)."""
        self.span, self.follow, self.end = last - first + 1, False, last

    def follow_tail(self) -> None:
        self.follow, self.end = True, None

    def label(self, first: int | None, last: int | None) -> str:
        """What the border says: ``whole run``, ``last 10k · following``, ``steps 120k–130k``."""
        win = self.window(first, last)
        if self.follow:
            return "whole run" if self.span is None else f"last {fmt_steps(self.span)} · following"
        if win is None:
            return "whole run"
        return f"steps {fmt_steps(win[0])}–{fmt_steps(win[1])}"
