"""Layouts at 80x24, 100x30, 120x40 and 160x45, and dialogs at 80x24, as SVG snapshots
(pytest-textual-snapshot; ``pytest --snapshot-update`` accepts a deliberate change).

The screen is made reproducible, not waited on by the clock: a fixed clock and fixed
system figures go in, and each snapshot waits until the app reports itself settled
(history loaded, checkpoints verified, charts drawn, nothing pending).
"""

from __future__ import annotations

import difflib
import os
import re
import time
from pathlib import Path

import pytest
from textual.widgets import Input

from nal_tui.ui.checkpoints.table import CheckpointTable
from nal_tui.ui.help import HelpScreen
from nal_tui.ui.keys import BINDINGS, EXTRA_KEYS, key_help
from nal_tui.ui.launch.confirm import ResumeScreen, StartScreen
from nal_tui.ui.launch.holds import RunHoldsRunScreen
from nal_tui.ui.launch.stop import KillScreen
from tests.app.apphelp import make_app, svg_text, until
from tests.factory import (
    T0,
    checkpoint_record,
    run_start,
    step_event,
    val_record,
    write_checkpoint,
    write_events,
    write_run,
)
from trainer.events.codec import encode
from trainer.rundir.history import run_history
from trainer.rundir.layout import ABANDONED_DIR, CHECKPOINTS_DIR, EVENTS, checkpoint_paths

SIZES = [(80, 24), (100, 30), (120, 40), (160, 45)]
IDS = [f"{w}x{h}" for w, h in SIZES]


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    """Times print in UTC here, whatever the machine's zone (restored afterwards)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _run(tmp_path):
    rd = tmp_path / "logs" / "demo"
    write_run(rd, 450, checkpoints=(100, 200, 300, 400), nan_at=(250,), t0=T0, dt=1.0)
    for p in (rd / "checkpoints").glob("*.json"):  # fixed "saved" times
        p.write_text(p.read_text().replace('"created": ', '"created": 1700000000.0, "x": '))
    return rd


async def _settled(pilot, rows: int = 4) -> None:
    app = pilot.app
    assert await until(pilot, lambda: app.settled and len(app.rows) == rows, 120)
    await pilot.wait_for_scheduled_animations()
    assert await until(pilot, lambda: app.settled, 30)
    await _still(pilot)


async def _still(pilot) -> None:
    """Until the whole picture (colours too) is the same in two screenshots a few refreshes
    apart: a repaint still queued (a footer recomposing, a column narrowed after the first
    pass) lands before the snapshot is taken, not between this and the plugin's shot."""
    last = None

    async def same() -> bool:
        nonlocal last
        shot = pilot.app.export_screenshot(simplify=True)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.1)
        was, last = last, shot
        return pilot.app.settled and was == shot

    for _ in range(600):  # at least 60 s: a generous ceiling on a loaded machine
        if await same():
            return
    raise AssertionError("the screen kept changing")


def _stored_snapshot() -> Path:
    """The stored SVG of the test running now (the plugin's layout of its files)."""
    node = os.environ["PYTEST_CURRENT_TEST"].split("::")[-1].rsplit(" ", 1)[0]
    return Path(__file__).parent / "__snapshots__" / Path(__file__).stem / f"{node}.svg"


def _snapshot(snap_compare, app, size, before=_settled) -> tuple[str, list[str]]:
    """Compare with the stored snapshot; the screen's text and the checkpoint table's
    column headers, for further checks."""
    shots: list[tuple[str, list[str]]] = []

    async def run_before(pilot):
        await before(pilot)
        shots.append((pilot.app.export_screenshot(), app.query_one(CheckpointTable).headers))

    if not snap_compare(app, terminal_size=size, run_before=run_before):
        # What differed, as text, for a failure seen only on another machine (the plugin's
        # HTML report stays there): the stored picture, then this run's before its shot.
        stored = _stored_snapshot()
        was = svg_text(stored.read_text()) if stored.is_file() else f"(none at {stored})"
        now = svg_text(shots[-1][0]) if shots else "(no screenshot)"
        diff = "\n".join(difflib.unified_diff(was.splitlines(), now.splitlines(), lineterm=""))
        pytest.fail(
            f"snapshot differs; stored vs this run's settled screen:\n{diff or '(same text)'}"
        )
    return svg_text(shots[-1][0]), shots[-1][1]


CUT_WORD = re.compile(r"[\w@%)]…")  # an ellipsis right after a word: something was cut


@pytest.mark.parametrize("size", SIZES, ids=IDS)
def test_dashboard_layout(snap_compare, tmp_path, size):
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)
    text, headers = _snapshot(snap_compare, app, size)
    assert not CUT_WORD.search(text), text
    # The checkpoint table shows all four columns, each header whole, at every size.
    assert headers == ["step", "verified", "size", "saved"]
    head = re.compile(r"\bstep +verified +size +saved\b")
    assert any(head.search(line) for line in text.splitlines()), text
    # Key facts of every layout: step and target, ETA, latest checkpoint, the NaN alert.
    for fact in ("step 450/1,000", "ETA 9m10s", "nonfinite"):
        assert fact in text, fact
    assert re.search(r"400 +✔ (sha256 )?ok", text), text


@pytest.mark.parametrize(
    "screen",
    [
        lambda app: HelpScreen(key_help(BINDINGS) + EXTRA_KEYS),
        lambda app: StartScreen(Path("config/demo.yaml"), None, check=None),  # not ROOT: the
        # snapshot must not depend on where the checkout lies
        lambda app: KillScreen(
            4242, 120.0, "trainer pid 4242 is still running 120 s after SIGTERM"
        ),
        lambda app: RunHoldsRunScreen(  # relative paths: see "start"
            Path("logs/demo"), run_history(app.run_dir), Path("logs/demo-2")
        ),
        lambda app: ResumeScreen(
            Path("logs/demo"),
            f"checkpoints/abandoned/{ASIDE}/ckpt_00000500.pt",
            500,
            "✔ sha256 ok · abandoned",
            check=None,
            abandoned=True,
        ),  # fmt: skip
    ],
    ids=["help", "start", "kill", "holds", "resume-abandoned"],
)
def test_dialogs_fit_a_small_terminal(snap_compare, tmp_path, screen):
    app = make_app(_run(tmp_path), tmp_path / "logs", frozen=True)

    async def before(pilot):
        await _settled(pilot)
        app.push_screen(screen(app))
        await pilot.wait_for_scheduled_animations()
        for field in app.screen.query(Input):  # a blinking cursor is drawn or not by the
            field.cursor_blink = False  # clock; held visible, the picture is the same
        await pilot.pause()

    text, _ = _snapshot(snap_compare, app, (80, 24), before)
    assert not CUT_WORD.search(text), text


ASIDE = "20231114-230000_steps-400-500"


def _branched_run(tmp_path):
    """A run rolled back from 500 to 300 (checkpoint 500 moved aside), with validation
    metrics of two sets and a best-checkpoint ledger."""
    rd = _run(tmp_path)
    write_checkpoint(rd, 500, aside=ASIDE, created=1700000000.0)
    aside = rd / CHECKPOINTS_DIR / ABANDONED_DIR / ASIDE
    for p in checkpoint_paths(rd, 400):  # moved aside by the resume from 300
        p.rename(aside / p.name)
    log = rd / EVENTS
    write_events(log, [step_event(s) for s in range(451, 501)], T0 + 460, 1.0)
    rs = run_start(300, 1000, moved_aside=f"checkpoints/abandoned/{ASIDE}", parent_step=300)
    write_events(log, [rs, *[step_event(s) for s in range(301, 320)]], T0 + 600, 1.0)
    mets = {"mel_l1": 0.412, "mstft": 1.23, "pesq": 3.1, "stoi": 0.93, "composite": 1.9}
    recs = [
        val_record(300, set="unseen", metrics={**mets, "mel_l1": 0.5, "pesq": "nan"}),
        val_record(300, set="val", metrics=mets),
        checkpoint_record(300, best=True, best_steps=[300, 200]),
    ]
    with open(log, "ab") as f:
        for r in recs:
            f.write(encode({**r, "t": T0 + 620}))
    return rd


def test_dashboard_after_a_rollback_with_metrics(snap_compare, tmp_path):
    app = make_app(_branched_run(tmp_path), tmp_path / "logs", frozen=True)

    async def before(pilot):
        await _settled(pilot, rows=5)

    text, _ = _snapshot(snap_compare, app, (160, 45), before)
    assert not CUT_WORD.search(text), text
    assert "step 319/1,000" in text and "branch" in text and "abandoned" in text
    assert re.search(r"mel L1 distance ↓ +0\.412 +0\.5", text), text
