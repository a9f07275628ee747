"""Terminal size classes: the stylesheet stacks or collapses panels by them."""

from __future__ import annotations

COMPACT_W, COMPACT_H = 100, 30  # below either: one column, details in the facts panel
MEDIUM_W, MEDIUM_H = 140, 40  # below either: two columns, fewer right-hand panels
SIZE_CLASSES = ("compact", "medium", "wide")


def size_class(width: int, height: int) -> str:
    if width < COMPACT_W or height < COMPACT_H:
        return "compact"
    if width < MEDIUM_W or height < MEDIUM_H:
        return "medium"
    return "wide"
