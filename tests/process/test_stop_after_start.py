"""``nal-tui stop`` right after a start, before the trainer has written its PID file
(issue 8 §2): the launched process is found through ``<run>/launch.json`` and stopped.

Real processes (the fake trainer in its start-up modes, ``nal-tui stop|status`` as
subprocesses); each stop is timed by ``launch.json`` appearing, never by a sleep.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import psutil
import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control import proc
from nal_tui.core.control.session import RunSession
from tests.factory import ROOT, fake_session, kill_started, spawn_sleeper, wait_for, write_run
from trainer.rundir.layout import PID_FILE


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


def nal_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nal_tui", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip


def _in_background(start, results: list) -> threading.Thread:
    th = threading.Thread(target=lambda: results.append(start()))
    th.start()
    return th


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((ROOT / "config" / "demo.yaml").read_text().replace("name: demo", "name: fake"))
    return p


@pytest.mark.parametrize(
    "mode,how",
    [("slow_start", "exit code 0"), ("no_handler", "killed by SIGTERM")],
    ids=["during-start-up", "before-its-handlers-exist"],
)
def test_stop_right_after_start_stops_the_launched_trainer(tmp_path, config, mode, how):
    rd = tmp_path / "run"
    results: list = []
    s = fake_session(rd, tmp_path, mode)
    th = _in_background(lambda: s.start(config, wait_s=120), results)
    try:
        assert wait_for(lambda: (rd / proc.LAUNCH_FILE).exists(), 60)
        info = proc.read_pid_file(rd, proc.LAUNCH_FILE)
        assert info is not None and proc.matches(info)
        assert not (rd / PID_FILE).exists()
        # Another process's view: the run is starting, and a second start is refused.
        st = json.loads(nal_tui("status", "--run-dir", str(rd), "--json").stdout)
        assert st["status"] == V.STATUS_RUNNING and st["pid"] == info.pid
        again = fake_session(rd, tmp_path).start(config)
        assert not again.ok and "already starting" in again.message
        res = RunSession(rd).stop(grace_s=60)  # in this process: it is the launcher's parent
    except BaseException:
        kill_started()  # the start thread waits for its trainer
        raise
    finally:
        th.join(120)
    assert res.ok and res.status == V.STOP_STOPPED, res.message
    assert "stopped during start-up" in res.message and "nothing was trained" in res.message
    assert how in res.message
    assert not psutil.pid_exists(info.pid) or psutil.Process(info.pid).status() == "zombie"
    assert not (rd / proc.LAUNCH_FILE).exists()
    assert results and not results[0].ok and results[0].exit_code is not None
    st = nal_tui("status", "--run-dir", str(rd), "--json")
    assert json.loads(st.stdout)["status"] == V.STATUS_NOT_STARTED, st.stdout


def test_nal_tui_stop_from_another_process(tmp_path):
    """A resume of a stopped run, stopped at once from another process: the run's status
    stays that of its earlier session."""
    rd = write_run(tmp_path / "run", 20, checkpoints=(20,), end="stopped")
    results: list = []
    s = fake_session(rd, tmp_path, "slow_start")
    th = _in_background(lambda: s.resume(wait_s=120), results)
    try:
        assert wait_for(lambda: (rd / proc.LAUNCH_FILE).exists(), 60)
        p = nal_tui("stop", "--run-dir", str(rd), "--grace", "60")
    except BaseException:
        kill_started()
        raise
    finally:
        th.join(120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "stopped during start-up" in p.stdout and "no trainer is running" not in p.stdout
    st = json.loads(nal_tui("status", "--run-dir", str(rd), "--json").stdout)
    assert st["status"] == V.STATUS_STOPPED and st["pid"] is None


def test_a_stale_launch_file_is_ignored_never_acted_on(tmp_path):
    """launch.json naming a process that is gone, or whose pid now belongs to another
    program, is never signalled and never makes the run look crashed or running."""
    rd = write_run(tmp_path / "run", 10, end="completed")
    sleeper = spawn_sleeper(300)
    try:
        p = psutil.Process(sleeper.pid)
        for fields in (
            {"pid": sleeper.pid, "create_time": p.create_time(), "cmdline": p.cmdline()},
            {"pid": sleeper.pid, "create_time": p.create_time() - 50,
             "cmdline": [sys.executable, "-m", "trainer", "train"]},
        ):  # fmt: skip
            d = {**fields, "started": time.time(), "run_dir": str(rd)}
            (rd / proc.LAUNCH_FILE).write_text(json.dumps(d))
            s = RunSession(rd)
            assert s.trainer().state == V.PID_NONE
            res = s.stop(grace_s=1, kill_after_s=0.5)
            assert res.status == V.STOP_NOT_RUNNING and res.signals == []
            assert s.status().status == V.STATUS_COMPLETED
        assert sleeper.poll() is None and p.status() != psutil.STATUS_ZOMBIE
        (rd / proc.LAUNCH_FILE).write_text("{garbled")
        assert RunSession(rd).status().status == V.STATUS_COMPLETED
    finally:
        sleeper.kill()
        sleeper.wait()
