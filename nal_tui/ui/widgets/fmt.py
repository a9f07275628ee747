"""Number formats shared by the panels (durations: ``nal_tui.core.text.fmt_duration``)."""

from __future__ import annotations

import math
import time


def fmt_bytes(n: float | None) -> str:
    """Bytes as a short human string (KiB/MiB/GiB/TiB)."""
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def pct_style(p: float) -> str:
    """The colour of a percentage of a resource in use (CPU, memory, disk, GPU)."""
    return "red" if p >= 90 else "yellow" if p >= 75 else "green"


def fmt_value(v: float | None) -> str:
    """A loss value in at most 9 characters."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.2e}"
    return f"{v:.4g}"


def fmt_step(s: int | None) -> str:
    return "-" if s is None else f"{s:,}"


def fmt_clock(t: float | None) -> str:
    if not t or t > 1e11:
        return "--"
    return time.strftime("%m-%d %H:%M:%S", time.localtime(t))


def fmt_rate(v: float | None, unit: str) -> str:
    if v is None or v != v or v > 1e15:
        return f"-- {unit}"
    if v >= 100:
        return f"{v:,.0f} {unit}"
    if v >= 1 or v <= 0:
        return f"{v:,.2f} {unit}"
    # Below 1, three significant digits: "0.08 steps/s" beside "0.33 samples/s" at batch 4
    # did not multiply out; "0.0825 steps/s" does.
    return f"{v:.{min(6, 2 - math.floor(math.log10(v)))}f} {unit}"
