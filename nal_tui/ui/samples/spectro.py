"""A spectrogram drawn with half blocks: two pixels per cell (the upper one the
foreground of ``▀``, the lower one its background), in 24-bit colour; Rich turns the colours
into the nearest of 256 on a terminal without truecolour."""

from __future__ import annotations

from collections.abc import Callable

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from nal_tui.core.samples.colormap import RGB, TABLES, lookup
from nal_tui.core.samples.raster import Grid, levels

# What a panel draws: a grid at a size (columns, pixel rows), or a one-line reason.
Source = Callable[[int, int], "Grid | str"]
UPPER = "▀"


_STYLES: dict[tuple[str, int, int], Style] = {}  # (colormap, upper, lower level): its style


def _style(cmap: str, table: tuple[RGB, ...], i: int, j: int) -> Style:
    st = _STYLES.get((cmap, i, j))
    if st is None:
        st = _STYLES[(cmap, i, j)] = Style(color=_hex(table[i]), bgcolor=_hex(table[j]))
    return st


def _hex(c: RGB) -> str:
    return f"#{c[0]:02x}{c[1]:02x}{c[2]:02x}"


def scale_bar(cmap: str, lo: float, hi: float, width: int, unit: str = "dB") -> Text:
    """``lo ████ hi dB``: the colour scale of a panel, ``width`` cells in all."""
    left, right = f"{lo:+.0f} " if lo < 0 < hi else f"{lo:.0f} ", f" {hi:+.0f} {unit}"
    n = max(4, width - len(left) - len(right))
    t = Text(left, style="dim")
    for i in range(n):
        t.append(" ", style=Style(bgcolor=_hex(lookup(cmap, i / max(1, n - 1)))))
    t.append(right, style="dim")
    return t


class Spectrogram(Widget):
    """Draws its source at its own size, line by line (Textual's line API: no Rich layout
    pass over thousands of cells); shows the source's reason when it has no grid."""

    DEFAULT_CSS = """
    Spectrogram { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source: Source | None = None
        self.cmap = "magma"
        self.lo: float | None = None  # a shared scale (generated and truth alike)
        self.hi: float | None = None
        self.grid: Grid | None = None
        """The grid drawn last (tests and the difference view read it)."""
        self.reason = ""
        self._strips: list[Strip] = []
        self._key: tuple | None = None

    def show(self, source: Source, cmap: str, lo: float | None = None,
             hi: float | None = None) -> None:  # fmt: skip
        self.source, self.cmap, self.lo, self.hi = source, cmap, lo, hi
        self._key = None
        self.refresh()

    def _build(self, w: int, h: int) -> None:
        key = (w, h)
        if self._key == key:
            return
        self._key = key
        self._strips = []
        if self.source is None or w <= 0 or h <= 0:
            return
        got = self.source(w, 2 * h)
        if isinstance(got, str):
            self.grid, self.reason = None, got
            self._strips = [Strip([Segment(got[:w], Style(dim=True, italic=True))])]
            return
        self.grid, self.reason = got, ""
        lv = levels(got, self.lo, self.hi)
        table = TABLES[self.cmap]
        for r in range(0, len(lv) - 1, 2):
            top, bottom = lv[r], lv[r + 1]
            segs = [
                Segment(UPPER, _style(self.cmap, table, i, j))
                for i, j in zip(top, bottom, strict=True)
            ]
            self._strips.append(Strip(Segment.simplify(segs), w))

    def render_line(self, y: int) -> Strip:
        self._build(self.content_size.width, self.content_size.height)
        return self._strips[y] if 0 <= y < len(self._strips) else Strip.blank(self.size.width)
