"""``nal-tui start`` then at once ``nal-tui stop``, with the real trainer (one process, and
torchrun with two ranks): the stop finds the launched process through launch.json, before
the trainer has written its PID file, and stops it; nothing keeps training, and ``nal-tui
status`` says stopped or not started. The stop is timed by launch.json appearing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control import proc
from tests.conftest import ROOT, demo_config_dict, wait_for, write_config

pytestmark = pytest.mark.slow


def _nal_tui(*args: str) -> list[str]:
    return [sys.executable, "-m", "nal_tui", *args]


def _ours(run: Path) -> list[psutil.Process]:
    """Live processes whose command line names this run directory."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            if str(run) in (p.info["cmdline"] or []) and p.info["status"] != "zombie":
                out.append(p)
        except psutil.Error:
            continue
    return out


def _loading_torch(run: Path) -> bool:
    try:
        return "start-up: loading torch" in (run / "train.log").read_text(errors="replace")
    except FileNotFoundError:
        return False


@pytest.mark.parametrize(
    "nproc,moment",
    [(1, "launched"), (2, "launched"), (1, "loading-torch"), (2, "loading-torch")],
    ids=["one-at-launch", "torchrun-at-launch", "one-loading-torch", "torchrun-ranks-loading"],
)
def test_stop_right_after_start_stops_the_run(demo_corpus, tmp_path, nproc, moment):
    """``launched``: as soon as launch.json exists (the trainer's first milliseconds);
    ``loading-torch``: once (rank 0 of) the trainer logs that it is importing torch, before
    its PID file (under torchrun the agent has started both ranks and passes SIGTERM on)."""
    cfg = write_config(tmp_path / "c.yaml", demo_config_dict(demo_corpus))
    run = tmp_path / "run"
    start = subprocess.Popen(
        _nal_tui("start", "--no-preflight", "--config", str(cfg), "--run-dir", str(run),
                 "--nproc", str(nproc), "--target-step", "100000", "--wait", "300"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: (run / proc.LAUNCH_FILE).exists(), 120, 0.01)
        if moment == "loading-torch":
            assert wait_for(lambda: _loading_torch(run), 240, 0.01)
            assert not (run / "trainer.pid").exists()  # torch takes seconds to import
        stop = subprocess.run(
            _nal_tui("stop", "--run-dir", str(run), "--grace", "240"),
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        out = start.communicate(timeout=300)[0]
    finally:
        if start.poll() is None:
            start.kill()
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert "no trainer is running" not in stop.stdout
    assert "stopped during start-up" in stop.stdout, stop.stdout
    assert start.returncode == 1 and "exited" in out  # the start reports the trainer's exit
    assert wait_for(lambda: not _ours(run), 60), [p.info for p in _ours(run)]
    st = subprocess.run(_nal_tui("status", "--run-dir", str(run), "--json"), cwd=ROOT,
                        capture_output=True, text=True, timeout=120)  # fmt: skip
    status = json.loads(st.stdout)["status"]
    assert status in (V.STATUS_STOPPED, V.STATUS_NOT_STARTED), st.stdout
    assert not (run / "trainer.pid").exists() and not (run / proc.LAUNCH_FILE).exists()
