"""End to end: the real ``nal-tui`` in a real terminal (tmux) drives the real trainer.

Start from the welcome screen, watch progress and a verified checkpoint, stop (SIGTERM,
checkpoint saved), resume with a new target step, and see the run complete.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "config" / "demo.yaml"
SESSION = "nal-e2e"
SOCKET = f"nal-e2e-{os.getpid()}"  # our own tmux server: never the user's, never shared

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux"),
]


def tmux(*args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=False
    ).stdout


def screen() -> str:
    return tmux("capture-pane", "-p", "-t", SESSION)


def wait_for(pred, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen()
        if pred(text):
            return text
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; screen:\n{text}")


def wait_text(text: str, timeout: float = 60) -> str:
    return wait_for(lambda s: text in s, timeout, repr(text))


def keys(*k: str) -> None:
    tmux("send-keys", "-t", SESSION, *k)


def nal_tui() -> str:
    exe = Path(sys.executable).with_name("nal-tui")
    return str(exe) if exe.exists() else f"{sys.executable} -m nal_tui"


@pytest.fixture
def e2e_config(tmp_path: Path, demo_corpus: Path) -> Path:
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["name"] = "e2e"
    cfg["data"]["corpus_dir"] = str(demo_corpus)
    cfg["checkpoint"].update({"every": 20, "milestone_every": 40})
    cfg["log"].update({"val_every": 20})
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def session(tmp_path: Path):
    yield
    keys("q")
    tmux("kill-server")
    # Never leave a trainer behind: stop it through the CLI (verified PID, SIGTERM/KILL).
    rd = tmp_path / "logs" / "e2e"
    if rd.exists():
        subprocess.run(
            [sys.executable, "-m", "nal_tui", "stop", "--run-dir", str(rd), "--kill-after", "20"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )


def test_start_progress_stop_resume_in_tmux(tmp_path: Path, e2e_config: Path, session) -> None:
    logs = tmp_path / "logs"
    # A plain shell first: the window gets its final size before the dashboard starts (a
    # program started with the session can read tmux's 80x24 default before the resize).
    tmux("new-session", "-d", "-s", SESSION, "-x", "160", "-y", "50", "bash --norc --noprofile")
    wait_for(lambda s: "$" in s or "#" in s, 60, "the shell prompt")
    keys(f"cd {ROOT} && exec {nal_tui()} --logs-dir {logs} --config {e2e_config}", "Enter")

    # A fresh logs dir: the welcome screen with the config, its preflight and the start key.
    wait_text("No training run yet", 120)
    assert str(e2e_config) in screen()
    wait_for(lambda s: "checks passed" in s, 300, "the preflight report")

    # Start: confirmation with the preflight result, a target step, Enter.
    keys("s")
    wait_text("Start training", 60)
    keys("60", "Enter")  # starts once the screen's own preflight passes
    wait_text("RUNNING", 600)
    wait_text("/60", 600)
    wait_for(lambda s: "sha256 ok" in s, 600, "a verified checkpoint in the table")

    # Stop: SIGTERM, the trainer saves and writes run_end "stopped".
    keys("x")
    wait_text("Stop training?", 60)
    keys("y")
    stopped = wait_text("STOPPED", 600)
    assert "Trainer still running" not in stopped
    rd = logs / "e2e"
    assert list((rd / "checkpoints").glob("ckpt_*.pt"))

    # Resume from the latest verified checkpoint with a new target step.
    keys("r")
    wait_text("Resume training", 60)
    keys("C-u")  # clear the prefilled target (one key: nothing to lose on the way)
    wait_for(lambda s: "from the config" in s, 60, "the target field cleared")
    keys("80", "Enter")
    wait_text("/80", 600)
    wait_text("RUNNING", 600)
    done = wait_for(lambda s: "COMPLETED" in s and "step 80/80" in s, 600, "the run to complete")
    assert "crashed" not in done.lower()

    # The run is finished and its final checkpoint is on disk.
    assert (rd / "checkpoints" / "ckpt_00000080.pt").exists()
