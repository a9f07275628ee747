"""Line charts of a few point series in braille (2 x 4 dots per cell), with shaded step
spans, marked steps and a cursor column. Pure: series in, styled rows out."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

_DOT = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
_BRAILLE = 0x2800
SPAN_STYLE = "on #3a2020"  # over-training: the metric stopped improving here
CURSOR_STYLE = "on #303050"


@dataclass(frozen=True)
class Line:
    steps: Sequence[float]  # the x axis: steps, or seconds since the start
    values: Sequence[float]
    style: str


def y_range(lines: Sequence[Line]) -> tuple[float, float] | None:
    vals = [v for ln in lines for v in ln.values if math.isfinite(v)]
    if not vals:
        return None
    lo, hi = min(vals), max(vals)
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    return lo, hi


def dot_of(step: float, x0: float, x1: float, dots_w: int) -> int:
    """The braille dot column of ``step`` (two per cell); a single step sits at the left."""
    return 0 if x1 <= x0 else round((step - x0) / (x1 - x0) * (dots_w - 1))


def column_of(step: float, x0: float, x1: float, width: int) -> int:
    """The cell of ``step``: the one its dot is drawn in (stars and the cursor line up)."""
    return max(0, min(width - 1, dot_of(step, x0, x1, 2 * width) // 2))


def plot_rows(
    lines: Sequence[Line],
    width: int,
    height: int,
    x0: float,
    x1: float,
    *,
    spans: Sequence[tuple[int, int]] = (),
    cursor: int | None = None,
) -> list[Text]:
    """``height`` rows of ``width`` cells; ``cursor``: a step whose column is highlighted."""
    width, height = max(1, width), max(1, height)
    rng = y_range(lines)
    dots_w, dots_h = 2 * width, 4 * height
    cells = [[0] * width for _ in range(height)]
    owner: list[list[str]] = [[""] * width for _ in range(height)]

    def put(dx: int, dy: int, style: str) -> None:
        if 0 <= dx < dots_w and 0 <= dy < dots_h:
            r, c = dy // 4, dx // 2
            cells[r][c] |= _DOT[dx % 2][dy % 4]
            owner[r][c] = style

    if rng is not None:
        lo, hi = rng
        for ln in lines:
            prev = None
            for s, v in zip(ln.steps, ln.values, strict=False):
                if not math.isfinite(v):
                    prev = None
                    continue
                dx = dot_of(s, x0, x1, dots_w)
                dy = round((hi - v) / (hi - lo) * (dots_h - 1))
                if prev is not None:  # a straight line of dots from the previous point
                    px, py = prev
                    n = max(abs(dx - px), abs(dy - py))
                    for i in range(1, n):
                        put(px + (dx - px) * i // n, py + (dy - py) * i // n, ln.style)
                put(dx, dy, ln.style)
                prev = (dx, dy)
    shaded = set()
    for a, b in spans:
        shaded.update(range(column_of(a, x0, x1, width), column_of(b, x0, x1, width) + 1))
    cur = column_of(cursor, x0, x1, width) if cursor is not None else None
    rows = []
    for r in range(height):
        t = Text()
        for c in range(width):
            ch = chr(_BRAILLE + cells[r][c]) if cells[r][c] else " "
            bg = CURSOR_STYLE if c == cur else SPAN_STYLE if c in shaded else ""
            t.append(ch, style=f"{owner[r][c]} {bg}".strip())
        rows.append(t)
    return rows


def marker_row(steps: Sequence[int], x0: float, x1: float, width: int, mark: str = "★",
               style: str = "bold magenta") -> Text:  # fmt: skip
    """A row with ``mark`` under each of ``steps`` (e.g. the best-K checkpoints)."""
    cols = {column_of(s, x0, x1, width) for s in steps if x0 <= s <= x1}
    t = Text()
    for c in range(width):
        t.append(mark if c in cols else " ", style=style if c in cols else "")
    return t
