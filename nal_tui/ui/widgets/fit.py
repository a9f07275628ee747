"""Lines that fit the panel's width at render time without cutting a word.

A line is a sequence of parts, each with a priority: when the line is wider than the
panel, whole parts go, the least important (highest ``drop``) and rightmost first. If the
parts that must stay are still too wide, the ones that do not fit are left out; only the
first part, when it alone is too wide, is shortened at a space, with an ellipsis. The
width is known only when Rich renders, so ``FitLines`` is a renderable; it compares equal
by value, so ``TextPanel.set_text`` skips redrawing an unchanged one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.text import Text

KEEP = 0  # a part that stays while anything else can go


@dataclass(frozen=True)
class Part:
    text: str
    style: str = ""
    drop: int = KEEP  # higher goes first when the line is too wide


@dataclass(frozen=True)
class Bar:
    """A line drawn for the exact width (a progress bar): ``draw(key, width) -> Text``."""

    draw: Callable[[Any, int], Text]
    key: Any  # what the bar shows; equal keys draw equal bars


Line = tuple[Part, ...] | Bar


def shorten(s: str, width: int) -> str:
    """``s`` in ``width`` cells: whole words, then " …" (the space shows no word was cut)."""
    if cell_len(s) <= width:
        return s
    if width <= 2:
        return "…"[:width]
    head = s[: width - 1]
    cut = head.rfind(" ")
    return (head[:cut].rstrip() + " " if cut > 0 else "") + "…"


def fit_parts(parts: Sequence[Part], width: int) -> Text:
    """One line of ``parts`` in at most ``width`` cells (see the module docstring)."""
    keep = list(parts)
    while sum(cell_len(p.text) for p in keep) > width:
        droppable = [i for i, p in enumerate(keep) if p.drop > KEEP]
        if not droppable:
            break
        worst = max(droppable, key=lambda i: (keep[i].drop, i))
        del keep[worst]
    t = Text(no_wrap=True, overflow="crop", end="")
    room = width
    for i, p in enumerate(keep):
        s = p.text
        if cell_len(s) > room:
            if i:  # a later part that does not fit is left out whole, not cut
                break
            s = shorten(s, room)
        t.append(s, style=p.style)
        room -= cell_len(s)
    return t


@dataclass(frozen=True)
class FitLines:
    """A renderable: each line fitted to the width it is rendered at."""

    lines: tuple[Line, ...]

    @classmethod
    def of(cls, lines: Iterable[Line | Sequence[Part]]) -> FitLines:
        return cls(tuple(x if isinstance(x, Bar) else tuple(x) for x in lines))

    def text(self, width: int) -> Text:
        """The lines at ``width`` as one Text (what the panel shows)."""
        out = Text(no_wrap=True, overflow="crop", end="")
        for i, line in enumerate(self.lines):
            if i:
                out.append("\n")
            out.append_text(
                line.draw(line.key, width) if isinstance(line, Bar) else fit_parts(line, width)
            )
        return out

    @property
    def plain(self) -> str:
        """Every part, unfitted (for tests and logs)."""
        return "\n".join(
            "".join(p.text for p in line) if not isinstance(line, Bar) else "<bar>"
            for line in self.lines
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.text(options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(1, options.max_width)
