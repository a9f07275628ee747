"""Helpers for the app tier: a dashboard on a run directory built by tests.factory."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from nal_tui.core.control.proc import PidState
from nal_tui.core.control.session import RunSession
from nal_tui.core.reducer.views import SystemView
from nal_tui.core.vocab import PID_NONE
from nal_tui.ui.app import NalTuiApp
from tests.factory import DEMO_CONFIG, T0

# What the system panel shows in snapshots (the real sampler's figures change every second).
FIXED_SYSTEM = SystemView(
    cpu_pct=12.0, mem_used=3 << 30, mem_total=8 << 30, disk_free=40 << 30,
    disk_total=100 << 30, proc_state=PID_NONE, proc_note="no trainer process", cores=2,
)  # fmt: skip


def fixed_system() -> tuple[SystemView, PidState]:
    return FIXED_SYSTEM, PidState(PID_NONE, None, "no trainer process")


def make_app(run_dir: Path | None, logs: Path, *, frozen: bool = False, **kw) -> NalTuiApp:
    """The dashboard; ``frozen``: a fixed clock and fixed system figures (for snapshots;
    pair it with the ``utc`` fixture so times print the same everywhere)."""
    if frozen:
        kw.update(clock=lambda: T0 + 3600.0, sample_system=fixed_system)
    kw.setdefault("build_models", False)
    session = RunSession(run_dir, logs_dir=logs, trainer_base=kw.pop("trainer_base", None))
    return NalTuiApp(session, config_path=kw.pop("config_path", DEMO_CONFIG), **kw)


CELL_W = 12.2  # the width of one terminal cell in Rich's SVG export


def svg_text(svg: str) -> str:
    """The terminal's text from an SVG screenshot, each piece placed at its column."""
    rows: dict[int, dict[int, str]] = {}
    pat = r'<text[^>]*\bx="([0-9.]+)"[^>]*clip-path="url\(#[\w-]*line-(\d+)\)"[^>]*>(.*?)</text>'
    for x, row, body in re.findall(pat, svg, re.S):
        col = round(float(x) / CELL_W)
        for i, ch in enumerate(html.unescape(body)):
            rows.setdefault(int(row), {})[col + i] = ch
    lines = []
    for r in range(max(rows, default=-1) + 1):
        cells = rows.get(r, {})
        lines.append("".join(cells.get(c, " ") for c in range(max(cells, default=-1) + 1)))
    return "\n".join(line.replace("\xa0", " ").rstrip() for line in lines)


def screen_text(pilot: Pilot) -> str:
    """What the terminal shows now, as text, from the public SVG screenshot export."""
    return svg_text(pilot.app.export_screenshot())


# Ceilings are what a quiet machine needs, times this: a real trainer started from the
# dashboard took over a minute to print its first step at load 13 on 2 cores. A ceiling
# only bounds a failing test; a passing one returns as soon as its condition holds.
CEILING_FACTOR = 4


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Let the app run until ``pred()`` holds (generous ceiling; the test fails after)."""
    deadline = time.monotonic() + timeout * CEILING_FACTOR
    while time.monotonic() < deadline:
        if pred():
            return True
        await pilot.pause(0.05)
    return pred()
