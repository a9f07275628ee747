"""Perceptual colormaps for spectrograms (magma, viridis) and a diverging one for
differences, as 256-entry RGB tables interpolated from their published anchor colours."""

from __future__ import annotations

RGB = tuple[int, int, int]

# Anchors at 0, 1/8, ..., 1 of matplotlib's maps (sampled from its tables).
_ANCHORS: dict[str, tuple[RGB, ...]] = {
    "magma": (
        (0, 0, 4), (28, 16, 68), (79, 18, 123), (129, 37, 129), (181, 54, 122),
        (229, 80, 100), (251, 135, 97), (254, 194, 135), (252, 253, 191),
    ),
    "viridis": (
        (68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141),
        (39, 173, 129), (92, 200, 99), (170, 220, 50), (253, 231, 37),
    ),
    # Blue (generated quieter than the truth) - white - red (louder): RdBu reversed.
    "diverging": (
        (5, 48, 97), (33, 102, 172), (67, 147, 195), (146, 197, 222), (247, 247, 247),
        (244, 165, 130), (214, 96, 77), (178, 24, 43), (103, 0, 31),
    ),
}  # fmt: skip
NAMES = ("magma", "viridis")  # the spectrogram maps a user cycles through
SIZE = 256


def _table(anchors: tuple[RGB, ...]) -> tuple[RGB, ...]:
    n = len(anchors) - 1
    out = []
    for i in range(SIZE):
        x = i / (SIZE - 1) * n
        k = min(int(x), n - 1)
        f = x - k
        a, b = anchors[k], anchors[k + 1]
        out.append(tuple(round(a[j] + (b[j] - a[j]) * f) for j in range(3)))
    return tuple(out)  # type: ignore[return-value]


TABLES: dict[str, tuple[RGB, ...]] = {name: _table(a) for name, a in _ANCHORS.items()}


def lookup(name: str, frac: float) -> RGB:
    """The colour of ``frac`` (0..1, clipped; NaN as 0) in map ``name``."""
    if frac != frac:
        frac = 0.0
    i = int(frac * (SIZE - 1) + 0.5)
    return TABLES[name][0 if i < 0 else SIZE - 1 if i >= SIZE else i]
