"""Start, stop (with the SIGKILL offer) and quit, against a real stand-in trainer process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from apptools import DEMO_CONFIG, FAKE_TRAINER, run, screen_text, until, until_text

from nal_tui import control
from nal_tui.app import NalTuiApp
from nal_tui.screens.launch import StartScreen
from nal_tui.screens.stop import KillScreen, StopScreen

SIZE = (160, 50)


def start_fake(run_dir: Path, mode: str = "normal", target: int = 1_000_000) -> subprocess.Popen:
    """The stand-in trainer, detached like control.start_run does it."""
    env = dict(os.environ, FAKE_TRAINER_MODE=mode, PYTHONUNBUFFERED="1")
    run_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            str(FAKE_TRAINER),
            "train",
            "--run-dir",
            str(run_dir),
            "--target-step",
            str(target),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


@pytest.fixture
def trainer_procs():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


def test_quitting_leaves_the_trainer_running(tmp_path, trainer_procs):
    rd = tmp_path / "logs" / "run"
    proc = start_fake(rd)
    trainer_procs.append(proc)

    async def go():
        app = NalTuiApp(rd, tmp_path / "logs", DEMO_CONFIG, build_models=False)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING", timeout=15)
            assert await until_text(pilot, f"pid {proc.pid}")
            await pilot.press("q")
            await pilot.pause(0.3)

    run(go())
    assert proc.poll() is None  # still training after the dashboard is gone


def test_stop_sends_sigterm_and_the_run_ends_stopped(tmp_path, trainer_procs):
    rd = tmp_path / "logs" / "run"
    proc = start_fake(rd)
    trainer_procs.append(proc)

    async def go():
        app = NalTuiApp(rd, tmp_path / "logs", DEMO_CONFIG, build_models=False, stop_grace_s=20)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING", timeout=15)
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            assert await until_text(pilot, "STOPPED", timeout=20)
            assert not isinstance(app.screen, KillScreen)

    run(go())
    assert proc.wait(timeout=10) == 0


def test_sigkill_is_offered_only_after_the_grace_period(tmp_path, trainer_procs):
    rd = tmp_path / "logs" / "run"
    proc = start_fake(rd, mode="ignore_term")
    trainer_procs.append(proc)

    async def go():
        app = NalTuiApp(rd, tmp_path / "logs", DEMO_CONFIG, build_models=False, stop_grace_s=4)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "RUNNING", timeout=15)
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            await pilot.pause(0.5)
            assert not isinstance(app.screen, KillScreen)  # nothing offered before the grace
            assert app.state.status == "stopping"
            assert await until(pilot, lambda: isinstance(app.screen, KillScreen), timeout=15)
            assert proc.poll() is None  # SIGTERM was ignored; nothing killed it yet
            assert await until_text(pilot, "SIGKILL")
            await pilot.press("k")
            assert await until(pilot, lambda: proc.poll() is not None, timeout=20)

    run(go())
    assert proc.returncode == -9


def test_start_from_the_dashboard_launches_and_follows_the_trainer(
    tmp_path, monkeypatch, demo_corpus
):
    monkeypatch.setattr(
        control, "trainer_base_command", lambda: ([sys.executable, str(FAKE_TRAINER)], "fake")
    )
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["data"]["corpus_dir"] = str(demo_corpus)
    cfg["name"] = "dash"
    config = tmp_path / "dash.yaml"
    config.write_text(yaml.safe_dump(cfg))
    logs = tmp_path / "logs"
    started: list[int] = []

    async def go():
        app = NalTuiApp(None, logs, config, build_models=False)
        async with app.run_test(size=SIZE) as pilot:
            assert await until_text(pilot, "No training run yet")
            await pilot.press("s")
            assert await until(pilot, lambda: isinstance(app.screen, StartScreen))
            assert await until(pilot, lambda: not app.screen.checking, timeout=30)
            assert "checks passed" in screen_text(pilot)
            app.screen.query_one("#target").value = "400"
            await pilot.press("enter")
            assert await until(pilot, lambda: app.run_dir == logs / "dash", timeout=30)
            assert await until_text(pilot, "RUNNING", timeout=15)
            assert await until(pilot, lambda: (app.state.step or 0) > 20, timeout=15)
            assert app.state.target_step == 400
            live = control.trainer_process(logs / "dash")
            assert live is not None
            started.append(live.pid)
            assert await until_text(pilot, f"pid {live.pid}  CPU", timeout=5)  # system panel
            # Stop it again through the dashboard, so the test leaves nothing behind.
            await pilot.press("x")
            assert await until(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("y")
            assert await until_text(pilot, "STOPPED", timeout=20)

    run(go())
    assert started and started[0]
