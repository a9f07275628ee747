"""Min/max band charts in braille: every spike and NaN bucket stays visible at any width.

The drawing functions are pure (buckets in, styled rows out) so they are testable without
a terminal; ``BandChart`` is the widget that draws the buckets it is handed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.widget import Widget

from nal_tui.core.reducer.chartview import DEFAULT_WEIGHT, ema
from nal_tui.ui.widgets.fmt import fmt_value

# Braille dot bits by (column 0/1, row 0..3 from the top).
_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BRAILLE = 0x2800
LOG_FLOOR = 1e-8  # values <= 0 are clipped here on a log axis (losses can touch 0)

NAN_STYLE = "bold red"
RESUME_STYLE = "on #5f5f00"
SMOOTH_STYLE = "bold white"


@dataclass
class Buckets:
    """What a chart draws: per bucket the first step, min, max and whether it holds a NaN."""

    steps: Sequence[float] = field(default_factory=list)
    mins: Sequence[float] = field(default_factory=list)
    maxs: Sequence[float] = field(default_factory=list)
    nan: Sequence[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.steps)


def _tf(v: float, log: bool) -> float:
    if not log:
        return v
    return math.log10(v if v > LOG_FLOOR else LOG_FLOOR)


def value_range(b: Buckets, log: bool = False) -> tuple[float, float] | None:
    """(lo, hi) over the finite bucket bounds, transformed for a log axis; None if none."""
    lo, hi = math.inf, -math.inf
    for a, z in zip(b.mins, b.maxs, strict=False):
        if math.isfinite(a):
            lo = min(lo, a)
        if math.isfinite(z):
            hi = max(hi, z)
    if lo > hi:
        return None
    lo, hi = _tf(lo, log), _tf(hi, log)
    if hi - lo < 1e-12:  # a flat series still gets a visible band in the middle
        pad = abs(hi) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def smooth_midpoints(b: Buckets, weight: float = DEFAULT_WEIGHT) -> list[float]:
    """TensorBoard's debiased EMA (``chartview.ema``) over the drawn buckets' midpoints;
    a NaN bucket shows the line's last value (the NaN itself is drawn red)."""
    mids = [
        (a + z) / 2 if math.isfinite(a) and math.isfinite(z) else math.nan
        for a, z in zip(b.mins, b.maxs, strict=False)
    ]
    out, last = [], math.nan
    for v in ema(mids, weight):
        last = v if math.isfinite(v) else last
        out.append(last)
    return out


def band_rows(
    b: Buckets,
    width: int,
    height: int,
    *,
    log: bool = False,
    base_style: str = "green",
    markers: Sequence[float] = (),
    smooth: bool | float = False,
    dim_style: str = "dim",
) -> list[Text]:
    """Draw ``b`` as ``height`` rows of ``width`` braille cells (two buckets per cell).

    ``smooth``: a smoothing weight (True: the default one) draws the smoothed line bright
    over the raw band drawn faint; 0 or False draws the raw band only."""
    if smooth is True:
        smooth = DEFAULT_WEIGHT
    smooth = float(smooth or 0.0)
    width, height = max(1, width), max(1, height)
    rows = [Text() for _ in range(height)]
    n = len(b)
    if n == 0:
        rows[height // 2] = Text("no data yet".center(width)[:width], style="dim")
        return rows
    rng = value_range(b, log)
    dots_x, dots_y = 2 * width, 4 * height
    # Fewer buckets than dot columns (a short run) stretch over the whole width.
    idx = [min(n - 1, x * n // dots_x) for x in range(dots_x)]
    line = smooth_midpoints(b, smooth) if smooth else None

    def yrow(v: float) -> int:
        lo, hi = rng  # type: ignore[misc]
        r = int(round((_tf(v, log) - lo) / (hi - lo) * (dots_y - 1)))
        return dots_y - 1 - min(dots_y - 1, max(0, r))

    cells = [[0] * width for _ in range(height)]
    styles: list[list[str | None]] = [[None] * width for _ in range(height)]
    marker_cells = _marker_cells(b, idx, markers)
    prev_line: int | None = None
    prev_band: tuple[int, int] | None = None
    for x, i in enumerate(idx):
        cx, sub = divmod(x, 2)
        a, z = b.mins[i], b.maxs[i]
        if b.nan[i]:
            for y in range(dots_y):
                cells[y // 4][cx] |= _DOT[sub][y % 4]
            for cy in range(height):
                styles[cy][cx] = NAN_STYLE
        if rng is not None and math.isfinite(a) and math.isfinite(z):
            top, bot = yrow(z), yrow(a)
            own = (top, bot)
            if prev_band is not None:  # join to the previous column: a line, not dust
                top, bot = min(top, prev_band[1]), max(bot, prev_band[0])
            prev_band = own
            for y in range(top, bot + 1):
                cells[y // 4][cx] |= _DOT[sub][y % 4]
        if line is not None and rng is not None and math.isfinite(line[i]):
            y = yrow(line[i])
            lo_y, hi_y = (y, y) if prev_line is None else (min(y, prev_line), max(y, prev_line))
            for yy in range(lo_y, hi_y + 1):
                cells[yy // 4][cx] |= _DOT[sub][yy % 4]
                if styles[yy // 4][cx] != NAN_STYLE:
                    styles[yy // 4][cx] = SMOOTH_STYLE
            prev_line = y
    fill = dim_style if smooth else base_style
    for cy in range(height):
        row = rows[cy]
        run_style: str | None = ""
        run: list[str] = []
        for cx in range(width):
            style = styles[cy][cx] or fill
            if cx in marker_cells and style != NAN_STYLE:
                style = f"{style} {RESUME_STYLE}"
            ch = chr(_BRAILLE + cells[cy][cx]) if cells[cy][cx] else " "
            if style != run_style and run:
                row.append("".join(run), style=run_style)
                run = []
            run_style = style
            run.append(ch)
        if run:
            row.append("".join(run), style=run_style)
    return rows


def _marker_cells(b: Buckets, idx: list[int], markers: Sequence[float]) -> set[int]:
    """Cell columns whose bucket range holds a marker step (e.g. where a run resumed)."""
    out: set[int] = set()
    if not markers or not idx:
        return out
    for m in markers:
        best = None
        for x, i in enumerate(idx):
            if b.steps[i] <= m:
                best = x
            else:
                break
        if best is not None:
            out.add(best // 2)
    return out


def to_buckets(raw: Any) -> Buckets:
    """Wrap a series' ``(steps, mins, maxs, nan_mask)`` tuple."""
    steps, mins, maxs, nan = raw
    return Buckets(steps, mins, maxs, nan)


class SeriesChart(Widget):
    """Draws a min/max series at its own width; redraws only when version or size changes.

    The series (``nal_tui.series.MinMaxSeries`` or anything with ``buckets(n)``) is asked
    for two buckets per cell at render time, so a resize never loses detail.
    """

    DEFAULT_CSS = """
    SeriesChart { height: 1; width: 1fr; }
    """

    def __init__(
        self, *, style: str = "green", id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.series: Any = None
        self.version = -1
        self.markers: Sequence[float] = ()
        self.log_scale = False
        self.weight = 0.0  # smoothing weight (0: the raw series only)
        self.window: tuple[int, int] | None = None  # the steps shown (None: the whole run)
        self.chart_style = style
        self._cache_key: tuple[Any, ...] | None = None
        self._cache: Text = Text()
        self.last_buckets = Buckets()

    def set_series(self, series: Any, version: int, markers: Sequence[float] = ()) -> None:
        """Point at ``series``; refresh only if ``version`` moved on."""
        if series is self.series and version == self.version:
            return
        self.series, self.version, self.markers = series, version, tuple(markers)
        self.refresh()

    @property
    def smooth(self) -> bool:
        return self.weight > 0

    def set_view(
        self,
        *,
        log: bool | None = None,
        smooth: bool | None = None,
        weight: float | None = None,
        window: tuple[int, int] | None | bool = False,
    ) -> None:
        """Log axis, smoothing (on/off, or its ``weight``) and the steps shown (``window``;
        None: the whole run; left out: unchanged)."""
        if log is not None:
            self.log_scale = log
        if smooth is not None:
            self.weight = (self.weight or DEFAULT_WEIGHT) if smooth else 0.0
        if weight is not None:
            self.weight = weight
        if window is not False:
            self.window = window  # type: ignore[assignment]
        self.refresh()

    def buckets_for(self, width: int) -> Buckets:
        if self.series is None or width <= 0:
            return Buckets()
        if self.window is None:
            return to_buckets(self.series.buckets(2 * width))
        return to_buckets(self.series.buckets(2 * width, *self.window))

    def chart_rows(self, width: int, height: int) -> list[Text]:
        key = (
            id(self.series),
            self.version,
            width,
            height,
            self.log_scale,
            self.weight,
            self.window,
            self.markers,
        )
        if key != self._cache_key:
            self.last_buckets = b = self.buckets_for(width)
            self._rows = band_rows(
                b,
                width,
                height,
                log=self.log_scale,
                base_style=self.chart_style,
                markers=self.markers,
                smooth=self.weight,
            )
            self._cache_key = key
        return self._rows

    def render(self) -> Text:
        return Text("\n").join(self.chart_rows(self.size.width, self.size.height))


class BigChart(SeriesChart):
    """The selected loss, large: a value axis on the left and a step axis below."""

    DEFAULT_CSS = """
    BigChart { height: 1fr; width: 1fr; }
    """
    AXIS_W = 10  # a value label is at most 9 cells (fmt_value), plus the tick
    _subtitles: tuple[str, ...] = ()

    def set_subtitles(self, *choices: str) -> None:
        """The border's subtitle: the first of ``choices`` that fits whole at this width
        (chosen again on resize: a border cuts what is too long mid-word)."""
        self._subtitles = choices
        self._fit_subtitle()

    def _fit_subtitle(self) -> None:
        fits = [c for c in self._subtitles if len(c) + 6 <= self.size.width]
        self.border_subtitle = fits[0] if fits else (self._subtitles[-1] if self._subtitles else "")

    def on_resize(self) -> None:
        self._fit_subtitle()

    def render(self) -> Text:
        w, h = self.size.width, self.size.height
        cw, ch = max(1, w - self.AXIS_W), max(1, h - 1)
        rows = self.chart_rows(cw, ch)
        b = self.last_buckets
        rng = value_range(b, self.log_scale)
        labels = [""] * ch
        if rng is not None:
            lo, hi = rng
            for r in {0, ch // 2, ch - 1}:
                v = hi - (hi - lo) * r / max(1, ch - 1)
                labels[r] = fmt_value(10**v if self.log_scale else v)
        out = Text()
        for r, row in enumerate(rows):
            out.append(f"{labels[r]:>{self.AXIS_W - 1}.{self.AXIS_W - 1}}┤", style="dim")
            out.append_text(row)
            out.append("\n")
        axis = Text(" " * self.AXIS_W, style="dim")
        if len(b):
            last_step = self.window[1] if self.window else None
            last_step = last_step or getattr(self.series, "last_step", None) or b.steps[-1]
            first, last = f"{int(b.steps[0]):,}", f"{int(last_step):,}"
            axis.append(first + " " * max(1, cw - len(first) - len(last)) + last, style="dim")
        out.append_text(axis)
        return out
