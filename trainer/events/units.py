"""How readers of the event log write its figures for people: durations.

One definition for the trainer's progress line and every nal-tui panel.
"""

from __future__ import annotations


def fmt_duration(s: float | None) -> str:
    """Seconds as a compact duration: 42s, 5m07s, 3h12m, 2d04h ("--" when unknown)."""
    if s is None or s != s or s < 0 or s > 1e12:
        return "--"
    s = int(s)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
