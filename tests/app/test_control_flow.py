"""Start, stop (with the SIGKILL offer), quit and reopen from the dashboard, against the
fake trainer (a real process with the real PID file, lock and events). Ported from main's
test_control_flow; every wait is on what the screen or the run directory shows."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from nal_tui.core.control.session import RunSession
from nal_tui.ui.launch.confirm import ResumeScreen, StartScreen
from nal_tui.ui.launch.stop import KillScreen, StopScreen
from tests.app.apphelp import make_app, screen_text, until
from tests.factory import FAKE_TRAINER, ROOT, fake_base, kill_started, wait_for

SIZE = (160, 50)


def run(coro) -> None:
    asyncio.run(coro)


async def until_text(pilot, text: str, timeout: float = 60.0) -> bool:
    return await until(pilot, lambda: text in screen_text(pilot), timeout)


async def open_start_dialog(pilot, welcome: str = "No training run yet") -> None:
    """From the screen saying ``welcome`` (no run shown yet): ``s``, then the start
    dialog's checks done."""
    app = pilot.app
    assert await until_text(pilot, welcome)
    await pilot.press("s")
    assert await until(pilot, lambda: isinstance(app.screen, StartScreen))
    assert await until(pilot, lambda: not app.screen.checking, 120)


def toasts(app) -> str:
    """Every toast's text, joined."""
    return " ".join(str(n.message) for n in app._notifications)


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


@pytest.fixture
def fake_trainer():
    """Start the fake trainer detached (as ``nal-tui start`` does); killed at the end."""
    procs: list[subprocess.Popen] = []

    def start(run_dir: Path, mode: str = "normal") -> subprocess.Popen:
        env = dict(os.environ, FAKE_TRAINER_MODE=mode, PYTHONUNBUFFERED="1")
        run_dir.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen(
            [sys.executable, str(FAKE_TRAINER), "train", "--run-dir", str(run_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env=env,
        )  # fmt: skip
        procs.append(p)
        assert wait_for(lambda: RunSession(run_dir).trainer().live, 60)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def test_quitting_leaves_the_trainer_running_and_reopening_reattaches(tmp_path, fake_trainer):
    rd = tmp_path / "logs" / "run"
    proc = fake_trainer(rd)

    async def go():
        app = make_app(rd, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING")
            assert await until_text(pilot, f"pid {proc.pid}")
            await pilot.press("q")
            assert await until(pilot, lambda: not app.is_running, 30)

    run(go())
    assert proc.poll() is None  # still training after the dashboard is gone
    run(go())  # a second dashboard finds the same trainer through its PID file
    assert proc.poll() is None


def test_stop_sends_sigterm_and_the_run_ends_stopped(tmp_path, fake_trainer):
    rd = tmp_path / "logs" / "run"
    proc = fake_trainer(rd)

    async def go():
        app = make_app(rd, tmp_path / "logs", stop_grace_s=60)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING")
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            assert await until_text(pilot, "STOPPED")
            assert not isinstance(app.screen, KillScreen)
            assert await until_text(pilot, "pid -")  # no live PID after the run ended
            assert "next ckpt" not in screen_text(pilot)

    run(go())
    assert proc.wait(timeout=30) == 0


def test_sigkill_is_offered_only_after_the_grace_period(tmp_path, fake_trainer):
    rd = tmp_path / "logs" / "run"
    proc = fake_trainer(rd, mode="ignore_term")
    grace = 3.0

    async def go():
        app = make_app(rd, tmp_path / "logs", stop_grace_s=grace)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING")
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            assert await until_text(pilot, "STOPPING")
            assert await until(pilot, lambda: isinstance(app.screen, KillScreen), 60)
            assert app.screen.waited_s >= grace  # offered after the grace period, not before
            assert proc.poll() is None  # SIGTERM was ignored; nothing killed it yet
            assert await until_text(pilot, "SIGKILL")
            await pilot.press("k")
            assert await until(pilot, lambda: proc.poll() is not None, 60)

    run(go())
    assert proc.returncode == -9


def test_resume_right_after_a_stop_waits_for_the_trainer_to_exit(tmp_path, fake_trainer):
    # The header says STOPPED as soon as run_end is written; the process may still be
    # exiting. `r` then opens the resume dialog once it has gone, not a "still running" toast.
    rd = tmp_path / "logs" / "run"
    proc = fake_trainer(rd, mode="linger_exit")

    async def go():
        app = make_app(rd, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING")
            proc.send_signal(signal.SIGTERM)
            assert await until_text(pilot, "STOPPED", 60)
            assert RunSession(rd).trainer().live  # run_end written, still exiting
            await pilot.press("r")
            (rd / "release").touch()
            assert await until(pilot, lambda: isinstance(app.screen, ResumeScreen), 60)

    run(go())
    assert proc.wait(timeout=60) == 0


def test_start_from_the_dashboard_launches_and_follows_the_trainer(tmp_path, monkeypatch):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    config = tmp_path / "dash.yaml"
    config.write_text(
        (ROOT / "config" / "demo.yaml").read_text().replace("name: demo", "name: dash")
    )
    logs = tmp_path / "logs"

    async def go():
        app = make_app(None, logs, config_path=config)
        async with app.run_test(size=SIZE) as pilot:
            await open_start_dialog(pilot)
            shown = screen_text(pilot)
            assert "checks passed" in shown, shown
            app.screen.query_one("#target").value = "400"
            await pilot.press("enter")
            launched = await until(pilot, lambda: app.run_dir == logs / "dash", 120)
            assert launched, screen_text(pilot)
            assert await until_text(pilot, "RUNNING")
            assert await until(pilot, lambda: (app.state.step or 0) > 20, 60)
            assert app.state.target_step == 400
            live = RunSession(logs / "dash").trainer()
            assert live.live
            assert await until_text(pilot, f"pid {live.pid} CPU")  # the system panel
            assert psutil.Process(live.pid).is_running()
            # Stop it again through the dashboard, so the test leaves nothing behind.
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            assert await until_text(pilot, "STOPPED")

    run(go())


def test_x_during_the_launch_opens_the_stop_dialog_once_the_trainer_runs(tmp_path, monkeypatch):
    """Stop right after start: ``x`` while the start is still launching is not "no trainer is
    running" (and the trainer then left running): the stop dialog opens once it runs."""
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    pressed = threading.Event()
    real_start = RunSession.start

    def start_after_x(self, *a, **kw):  # the launch is held until x has been pressed
        assert pressed.wait(120)
        return real_start(self, *a, **kw)

    monkeypatch.setattr(RunSession, "start", start_after_x)
    logs = tmp_path / "logs"

    async def go():
        app = make_app(None, logs)
        async with app.run_test(size=SIZE) as pilot:
            await open_start_dialog(pilot)
            await pilot.press("enter")
            assert await until(pilot, lambda: app.control.launching, 60)
            await pilot.press("x")
            assert "the stop dialog opens once it runs" in toasts(app), toasts(app)
            assert "no trainer is running" not in toasts(app)
            pressed.set()
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen), 120), toasts(app)
            live = RunSession(logs / "demo").trainer()
            assert live.live
            await pilot.press("y")
            assert await until_text(pilot, "STOPPED")
            assert not app.control.launching and not app.control.stop_wanted

    run(go())


def test_a_start_that_raises_is_said_not_swallowed(tmp_path, monkeypatch):
    def boom(self, *a, **kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(RunSession, "start", boom)

    async def go():
        app = make_app(None, tmp_path / "logs")
        async with app.run_test(size=SIZE) as pilot:
            await open_start_dialog(pilot)
            await pilot.press("enter")
            assert await until(pilot, lambda: "disk on fire" in toasts(app), 60), toasts(
                app
            ) + screen_text(pilot)
            assert app.is_running  # the dashboard outlives it
            assert await until(pilot, lambda: not app.control.launching, 60)  # x works again

    run(go())


def test_read_only_dashboard_refuses_stop_start_and_resume(tmp_path, fake_trainer):
    # nal-tui serve's dashboards run with --read-only: x, s and r only say they are refused.
    rd = tmp_path / "logs" / "run"
    proc = fake_trainer(rd)

    async def go():
        app = make_app(rd, tmp_path / "logs", read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING")
            for key, what in (("x", "stop"), ("s", "start"), ("r", "resume")):
                await pilot.press(key)
                said = f"{what}: refused, this dashboard is read-only"
                assert await until(
                    pilot, lambda s=said: any(s in n.message for n in app._notifications)
                )
                assert len(app.screen_stack) == 1  # no dialog opened
            assert RunSession(rd).trainer().live  # nothing was signalled

    run(go())
    proc.terminate()
    assert proc.wait(timeout=30) == 0


def test_r_on_a_mistyped_run_dir_says_did_you_mean(tmp_path):
    """The CLI says "did you mean logs/demo?" for a mistyped --run-dir; so does r."""
    from tests.factory import write_run

    logs = tmp_path / "logs"
    write_run(logs / "demo", 5)

    async def go():
        app = make_app(logs / "dmeo", logs)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("r")
            assert await until(pilot, lambda: "no run to resume" in toasts(app), 60), toasts(app)
            assert f"did you mean {logs / 'demo'}?" in toasts(app)
            assert not isinstance(app.screen, ResumeScreen)

    run(go())


def test_an_empty_run_dir_given_on_the_command_line_is_where_a_start_goes(tmp_path):
    """``--run-dir logs/mine`` made empty beforehand (mkdir) is where ``s`` puts the run,
    not ``logs/<config name>``; a directory holding other files is not taken."""
    logs = tmp_path / "logs"
    (logs / "mine").mkdir(parents=True)
    (logs / "stuff").mkdir()
    (logs / "stuff" / "notes.txt").write_text("mine\n")

    async def go(rd, want):
        app = make_app(rd, logs)
        async with app.run_test(size=SIZE) as pilot:
            await open_start_dialog(pilot, "NOT STARTED")
            assert app.screen.run_dir == want
            shown = screen_text(pilot)
            assert str(want) in shown, shown

    run(go(logs / "mine", logs / "mine"))
    run(go(logs / "stuff", logs / "demo"))
