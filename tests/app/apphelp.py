"""Helpers for the app tier: a dashboard on a run directory built by tests.factory."""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from nal_tui.core.session import RunSession
from nal_tui.ui.app import NalTuiApp
from tests.factory import DEMO_CONFIG, T0


def make_app(run_dir: Path | None, logs: Path, *, frozen: bool = False, **kw) -> NalTuiApp:
    """The dashboard; ``frozen``: a fixed clock and no system sampling (for snapshots)."""
    if frozen:
        os.environ["TZ"] = "UTC"
        time.tzset()
        kw.update(clock=lambda: T0 + 3600.0, sample_system=False)
    kw.setdefault("build_models", False)
    session = RunSession(run_dir, logs_dir=logs, trainer_base=kw.pop("trainer_base", None))
    return NalTuiApp(session, config_path=kw.pop("config_path", DEMO_CONFIG), **kw)


def screen_text(pilot: Pilot) -> str:
    """What the terminal shows now, as text, from the public SVG screenshot export."""
    svg = pilot.app.export_screenshot()
    rows: dict[str, list[str]] = {}
    for y, body in re.findall(r'<text[^>]*\by="([0-9.]+)"[^>]*>(.*?)</text>', svg, re.S):
        rows.setdefault(y, []).append(html.unescape(body))
    lines = ("".join(parts) for _, parts in sorted(rows.items(), key=lambda kv: float(kv[0])))
    return "\n".join(lines).replace("\xa0", " ")


async def until(pilot: Pilot, pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Let the app run until ``pred()`` holds (generous ceiling; the test fails after)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        await pilot.pause(0.05)
    return pred()
