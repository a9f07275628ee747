"""A mel picture resampled to a grid of pixels for a terminal (two pixels per cell, one
above the other), in dB, highest band at the top; differences of two such grids; colours.

Pure Python: averaging is done on the picture's bytes (``sum`` of a bytes slice runs in C),
so a 128 x 512 picture becomes a 160 x 40 grid in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from nal_tui.core.samples.colormap import RGB, SIZE, lookup
from trainer.rundir.melpic import LEVELS, MelPicture

DIFF_RANGE_DB = 20.0  # the difference view's scale: +-20 dB


@dataclass(frozen=True)
class Grid:
    """``values[r][c]`` in dB; row 0 is the top of the picture (the highest mel band)."""

    values: list[list[float]]
    lo: float  # the scale's bottom and top (dB)
    hi: float

    @property
    def cols(self) -> int:
        return len(self.values[0]) if self.values else 0

    @property
    def rows(self) -> int:
        return len(self.values)


def _edges(n: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` index ranges covering 0..n: averaging when shrinking, repeating when growing."""
    out = []
    for i in range(parts):
        a = i * n // parts
        b = max(a + 1, (i + 1) * n // parts)
        out.append((a, min(b, n)))
    return out


def db_grid(pic: MelPicture, cols: int, rows: int) -> Grid:
    """``pic`` averaged (or repeated) to ``rows`` x ``cols`` pixels, in dB."""
    cols, rows = max(1, cols), max(1, rows)
    f, data = pic.frames, pic.pixels
    col_edges = _edges(f, cols)
    pooled = []  # per mel band: mean byte per column
    for r in range(pic.mels):
        row = data[r * f : (r + 1) * f]
        pooled.append([sum(row[a:b]) / (b - a) for a, b in col_edges] if f != cols else list(row))
    scale = (pic.db_max - pic.db_min) / LEVELS
    out = []
    lo = pic.db_min
    for a, b in reversed(_edges(pic.mels, rows)):  # top row: the highest bands
        if b - a == 1:
            out.append([lo + scale * x for x in pooled[a]])
        else:
            k = scale / (b - a)
            out.append([lo + k * sum(col) for col in zip(*pooled[a:b], strict=True)])
    return Grid(out, pic.db_min, pic.db_max)


def difference(gen: Grid, truth: Grid) -> Grid:
    """Generated minus ground truth, in dB (same grid size), on a +-DIFF_RANGE_DB scale."""
    vals = [
        [g - t for g, t in zip(gr, tr, strict=True)]
        for gr, tr in zip(gen.values, truth.values, strict=True)
    ]
    return Grid(vals, -DIFF_RANGE_DB, DIFF_RANGE_DB)


def levels(grid: Grid, lo: float | None = None, hi: float | None = None) -> list[list[int]]:
    """Each pixel as an index 0..255 into a colormap, on the scale ``lo``..``hi``."""
    lo = grid.lo if lo is None else lo
    hi = grid.hi if hi is None else hi
    k = (SIZE - 1) / ((hi - lo) or 1.0)
    top = SIZE - 1
    out = []
    for row in grid.values:
        line = []
        for v in row:
            i = int((v - lo) * k + 0.5) if v == v else 0
            line.append(0 if i < 0 else top if i > top else i)
        out.append(line)
    return out


def colours(
    grid: Grid, cmap: str, lo: float | None = None, hi: float | None = None
) -> list[list[RGB]]:
    """Each pixel's colour in ``cmap`` on the scale ``lo``..``hi`` (default: the grid's)."""
    lo = grid.lo if lo is None else lo
    hi = grid.hi if hi is None else hi
    span = (hi - lo) or 1.0
    return [[lookup(cmap, (v - lo) / span) for v in row] for row in grid.values]
