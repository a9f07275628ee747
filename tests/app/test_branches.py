"""Branches from the dashboard (issue 8 §1): `s` on a run dir that already holds a run asks
instead of mixing two runs, Enter on an older or an abandoned checkpoint says what the
resume moves aside, and no key deletes or changes anything before a confirmation."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from nal_tui.ui.checkpoints.table import CheckpointTable
from nal_tui.ui.launch.confirm import ResumeScreen, StartScreen
from nal_tui.ui.launch.holds import RunHoldsRunScreen
from nal_tui.ui.launch.stop import StopScreen
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import fake_base, kill_started, write_checkpoint, write_run
from trainer.rundir.layout import CONFIG_FILE, TRAIN_LOG

SIZE = (160, 50)
ASIDE = "20260101-000000_steps-30-40"


def run(coro) -> None:
    asyncio.run(coro)


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


def _files(rd: Path) -> dict[str, str]:
    """Every file under the run dir and a hash of its bytes."""
    return {
        str(p.relative_to(rd)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(rd.rglob("*"))
        if p.is_file()
    }


def said(pilot, part: str = "#holds-what, #launch-what") -> str:
    """What the dialog on top says, as one line (on screen it wraps long paths anywhere)."""
    try:
        w = pilot.app.screen.query_one(part)
    except Exception:  # noqa: BLE001 - not shown (yet)
        return ""
    return " ".join(str(w.render()).split())


async def _screen(pilot, kind, timeout: float = 120.0) -> bool:
    return await until(pilot, lambda: isinstance(pilot.app.screen, kind), timeout)


def test_s_on_a_finished_run_offers_the_choices_and_loses_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 30, target=30, checkpoints=(10, 20, 30), end="completed")
    before = _files(rd)

    async def go():
        app = make_app(rd, logs, config_path=rd / CONFIG_FILE)
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: any(r.latest for r in app.rows), 60)
            # Esc, and every choice's own Esc: nothing happens to the run.
            for key in ("escape", "r", "enter", "b"):
                await pilot.press("s")
                assert await _screen(pilot, RunHoldsRunScreen)
                assert await until(pilot, lambda: "last step 30" in said(pilot))
                text = said(pilot)
                assert "already holds a run" in text
                assert str(logs / "demo-2") in text and "not deleted" in text
                await pilot.press(key)
                if key == "escape":
                    assert await until(pilot, lambda: app.screen is app.screen_stack[0])
                    continue
                want = ResumeScreen if key == "r" else StartScreen
                assert await _screen(pilot, want)
                if key == "r":
                    assert Path(app.screen.checkpoint).name == "ckpt_00000030.pt"
                elif key == "enter":
                    assert app.screen.run_dir == logs / "demo-2"
                    assert app.screen.branch_of is None
                else:
                    assert app.screen.run_dir == rd and app.screen.branch_of is not None
                    assert await until(pilot, lambda: "A new branch from step 0" in said(pilot))
                    assert "moved aside" in said(pilot)
                await pilot.press("escape")
                assert await until(pilot, lambda: app.screen is app.screen_stack[0])
            assert _files(rd) == before and not (logs / "demo-2").exists()
            # s, Enter, Enter: a new run in the fresh directory; the old one untouched.
            await pilot.press("s")
            assert await _screen(pilot, RunHoldsRunScreen)
            await pilot.press("enter")
            assert await _screen(pilot, StartScreen)
            app.screen.query_one("#target").value = "100000"
            await pilot.press("enter")
            assert await until(pilot, lambda: app.run_dir == logs / "demo-2", 120)
            assert await until(pilot, lambda: "RUNNING" in screen_text(pilot), 60)
            await pilot.press("x")
            assert await _screen(pilot, StopScreen)
            await pilot.press("y")
            assert await until(pilot, lambda: "STOPPED" in screen_text(pilot), 60)

    run(go())
    assert _files(rd) == before


def test_a_run_killed_before_its_first_checkpoint_offers_no_resume(tmp_path, monkeypatch):
    """Killed while writing its first checkpoint: s offers a new run or a new branch only;
    r is not offered and does nothing."""
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 50, target=2000)

    async def go():
        app = make_app(rd, logs, config_path=rd / CONFIG_FILE)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            assert await _screen(pilot, RunHoldsRunScreen)
            assert await until(pilot, lambda: "last step 50" in said(pilot))
            assert "nothing to resume from" in said(pilot)
            assert "resume it from its latest" not in said(pilot)
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, RunHoldsRunScreen)  # still the choice
            await pilot.press("b")
            assert await _screen(pilot, StartScreen)
            assert app.screen.run_dir == rd and app.screen.branch_of is not None

    run(go())


def test_new_branch_from_the_dashboard_passes_the_flag(tmp_path, monkeypatch):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 30, target=30, checkpoints=(10, 20, 30), end="completed")

    async def go():
        app = make_app(rd, logs, config_path=rd / CONFIG_FILE)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            assert await _screen(pilot, RunHoldsRunScreen)
            await pilot.press("b")
            assert await _screen(pilot, StartScreen)
            assert await until(pilot, lambda: not app.screen.checking, 120)
            assert "a new branch from step 0" in said(pilot, "#preflight")  # preflight agrees
            app.screen.query_one("#target").value = "100000"
            await pilot.press("enter")
            assert await until(pilot, lambda: "RUNNING" in screen_text(pilot), 120)
            await pilot.press("x")
            assert await _screen(pilot, StopScreen)
            await pilot.press("y")
            assert await until(pilot, lambda: "STOPPED" in screen_text(pilot), 60)

    run(go())
    launched = [ln for ln in (rd / TRAIN_LOG).read_text().splitlines() if "===" in ln]
    assert launched and " --new-branch " in launched[-1]


def test_enter_on_an_older_or_an_abandoned_checkpoint_says_what_moves_aside(tmp_path):
    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 25, checkpoints=(10, 20), end="stopped")
    for s in (30, 40):
        write_checkpoint(rd, s, aside=ASIDE)

    async def go():
        app = make_app(rd, logs)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(CheckpointTable)
            assert await until(pilot, lambda: len(app.rows) == 4 and app.settled, 60)
            # The live branch first, then the abandoned one (dimmed, tagged).
            assert [(r.step, r.abandoned) for r in app.rows] == [
                (20, False), (10, False), (40, True), (30, True)
            ]  # fmt: skip
            assert [r.step for r in app.rows if r.latest] == [20]
            text = screen_text(pilot)
            assert "latest" in text and "abandoned" in text
            table.focus()
            table.move_cursor(row=1)  # step 10: older than the live branch's 20
            await pilot.press("enter")
            assert await _screen(pilot, ResumeScreen)
            assert app.screen.later == ("checkpoints/ckpt_00000020.pt",)
            assert not app.screen.abandoned
            assert await until(pilot, lambda: "new branch" in said(pilot))
            text = said(pilot)
            assert "new branch" in text and "ckpt_00000020.pt" in text and "not deleted" in text
            await pilot.press("escape")
            assert await until(pilot, lambda: app.screen is app.screen_stack[0])
            table.move_cursor(row=2)  # step 40, on the abandoned branch
            await pilot.press("enter")
            assert await _screen(pilot, ResumeScreen)
            assert app.screen.abandoned
            assert app.screen.checkpoint.endswith(f"abandoned/{ASIDE}/ckpt_00000040.pt")
            assert await until(pilot, lambda: "on an abandoned branch" in said(pilot))
            text = said(pilot)
            assert "on an abandoned branch" in text and "back onto the live" in text
            # These manifests carry no branch: by the trainer's plan the live 10 and 20 are
            # 40's ancestors, and nothing moves (the next test has branches).
            assert app.screen.later == () and "no live checkpoint is moved aside" in text

    run(go())


def test_the_start_dialog_reuses_the_welcome_preflight(tmp_path, monkeypatch):
    from nal_tui import preflight

    calls = []
    real = preflight.run_checks
    monkeypatch.setattr(preflight, "run_checks", lambda *a, **k: calls.append(1) or real(*a, **k))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(Path(make_app(None, tmp_path).control.config_path).read_text())

    async def go():
        app = make_app(None, tmp_path / "logs", config_path=cfg)
        async with app.run_test(size=SIZE) as pilot:
            assert await until(pilot, lambda: "checks passed" in screen_text(pilot), 120)
            assert await until(pilot, lambda: app.control.welcome_result is not None)
            assert len(calls) == 1
            await pilot.press("s")
            assert await _screen(pilot, StartScreen)
            assert app.screen.report is app.control.welcome_result[1] and not app.screen.checking
            assert len(calls) == 1  # not run again
            await pilot.press("escape")
            assert await until(pilot, lambda: app.screen is app.screen_stack[0])
            cfg.write_text(cfg.read_text() + "\n# changed\n")
            await pilot.press("s")
            assert await _screen(pilot, StartScreen)
            assert await until(pilot, lambda: len(calls) == 2)  # a changed config: again

    run(go())


def test_bringing_an_abandoned_checkpoint_back_names_every_checkpoint_that_moves(tmp_path):
    """The issue's case: the live branch B1 forked from B0 at step 100 and saved 200; B0's
    220 lies aside. Resuming 220 moves the live 200 aside too, though it is older than 220:
    the dialog names it (it said "after step 220", which named nothing)."""
    from tests.lineage_factory import ckpt
    from trainer.rundir.manifest import ParentRef

    logs = tmp_path / "logs"
    rd = write_run(logs / "demo", 230, checkpoints=(), end="stopped")
    aside = rd / "checkpoints" / "abandoned" / "20260101-000000_steps-150-220"
    ckpt(rd, 100, branch="B0")
    ckpt(rd, 150, branch="B0", where=aside)
    ckpt(rd, 220, branch="B0", where=aside)
    ckpt(rd, 200, branch="B1", parent=ParentRef(100, None, "B0"))

    async def go():
        app = make_app(rd, logs)
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(CheckpointTable)
            assert await until(pilot, lambda: len(app.rows) == 4 and app.settled, 60)
            steps = [(r.step, r.abandoned) for r in app.rows]
            table.focus()
            table.move_cursor(row=steps.index((220, True)))
            await pilot.press("enter")
            assert await _screen(pilot, ResumeScreen)
            assert app.screen.abandoned
            assert app.screen.later == ("checkpoints/ckpt_00000200.pt",)
            assert await until(pilot, lambda: "abandoned branch" in said(pilot))
            text = said(pilot)
            assert "ckpt_00000200.pt" in text and "moved aside" in text
            assert "after step 220" not in text

    run(go())
