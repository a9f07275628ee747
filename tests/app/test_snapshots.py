"""Layouts at 80x24, 100x30, 120x40 and 160x45, and dialogs at 80x24, as SVG snapshots
(pytest-textual-snapshot; ``pytest --snapshot-update`` accepts a deliberate change)."""

from __future__ import annotations

import pytest

from nal_tui.ui.screens.help import HelpScreen
from nal_tui.ui.screens.launch import StartScreen
from nal_tui.ui.screens.stop import KillScreen
from nal_tui.ui.widgets.checkpoints import CheckpointTable
from tests.app.apphelp import make_app, until
from tests.factory import DEMO_CONFIG, T0, write_run

SIZES = [(80, 24), (100, 30), (120, 40), (160, 45)]
# 100x30 differs now and then between runs (under investigation); not strict until then.
_FLAKY = {(100, 30)}


def _run(tmp_path):
    rd = tmp_path / "logs" / "demo"
    write_run(rd, 450, checkpoints=(100, 200, 300, 400), nan_at=(250,), t0=T0, dt=1.0)
    for p in (rd / "checkpoints").glob("*.json"):  # fixed "saved" times
        p.write_text(p.read_text().replace('"created": ', '"created": 1700000000.0, "x": '))
    return rd


async def _settled(pilot) -> None:
    app = pilot.app
    table = app.query_one(CheckpointTable)
    assert await until(pilot, lambda: not app.loading and table.row_count == 4, 120)
    assert await until(pilot, lambda: app.rows and all(r.verified for r in app.rows), 120)
    app.ckpt_service.stop()  # nothing changes on disk any more
    app._changed()
    await pilot.pause(0.5)
    app._charts_version = -1
    app._draw_charts()
    await pilot.wait_for_scheduled_animations()
    await pilot.pause(0.5)


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(s, marks=pytest.mark.xfail(strict=False, reason="flaky render"))
        if s in _FLAKY
        else s
        for s in SIZES
    ],
    ids=[f"{w}x{h}" for w, h in SIZES],
)
def test_dashboard_layout(snap_compare, tmp_path, size):
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)
    assert snap_compare(app, terminal_size=size, run_before=_settled)


@pytest.mark.parametrize(
    "screen",
    [
        lambda app: HelpScreen([("s", "start")] * 20),
        lambda app: StartScreen(DEMO_CONFIG, None, check=None),
        lambda app: KillScreen(
            4242, 120.0, "trainer pid 4242 is still running 120 s after SIGTERM"
        ),
    ],
    ids=["help", "start", "kill"],
)
def test_dialogs_fit_a_small_terminal(snap_compare, tmp_path, screen):
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)

    async def before(pilot):
        await _settled(pilot)
        app.push_screen(screen(app))
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=before)
