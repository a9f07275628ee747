"""RunSession and ``nal-tui start|stop|resume|status`` with real processes (the fake
trainer: the real PID file, lock and events, without torch)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nal_tui import cli
from nal_tui.core import vocab as V
from nal_tui.core.control.session import RunSession
from tests.factory import (
    FAKE_TRAINER,
    ROOT,
    fake_base,
    fake_session,
    kill_started,
    read_events,
    wait_for,
    write_checkpoint,
    write_run,
)
from trainer.rundir.layout import PID_FILE, checkpoint_paths


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(
        Path(ROOT / "config" / "demo.yaml").read_text().replace("name: demo", "name: fake")
    )
    return p


def test_start_status_stop(tmp_path, config):
    s = fake_session(None, tmp_path / "logs")
    res = s.start(config, target_step=100_000)
    assert res.ok, res.message
    rd = tmp_path / "logs" / "fake"  # the one default: <logs>/<config name>
    assert Path(res.run_dir) == rd and res.trainer_pid == res.pid
    assert os.getsid(res.pid) == res.pid  # detached: outlives whoever started it
    assert wait_for(lambda: any(e["event"] == "step" for e in read_events(rd)))
    assert s.status().status == V.STATUS_RUNNING
    again = RunSession(rd)  # a restarted dashboard finds it through the PID file
    assert again.trainer().live and again.trainer().pid == res.pid
    stop = s.stop(grace_s=30)
    assert stop.ok and stop.status == V.STOP_STOPPED, stop.message
    assert stop.run_end["status"] == "stopped" and s.status().status == V.STATUS_STOPPED


def test_stop_signals_the_trainer_not_its_process_group(tmp_path):
    """A trainer started from a wrapper script shares the script's process group with
    other work; stop must leave that work alone (it used to killpg the group)."""
    rd = tmp_path / "run"
    script = (
        f"{sys.executable} {FAKE_TRAINER} train --run-dir {rd} & "
        "sleep 300 & echo $! > " + str(tmp_path / "sibling.pid") + "; wait"
    )
    wrapper = subprocess.Popen(["sh", "-c", script], start_new_session=True)
    try:
        assert wait_for(lambda: RunSession(rd).trainer().live, 60)
        sibling = int((tmp_path / "sibling.pid").read_text())
        assert os.getpgid(sibling) == os.getpgid(RunSession(rd).trainer().pid)
        res = RunSession(rd).stop(grace_s=30)
        assert res.ok and res.status == V.STOP_STOPPED, res.message
        assert psutil.pid_exists(sibling) and psutil.Process(sibling).status() != "zombie"
    finally:
        os.killpg(wrapper.pid, signal.SIGKILL)
        wrapper.wait()


def test_kill_only_after_grace_when_asked(tmp_path, config):
    s = fake_session(tmp_path / "run", tmp_path, mode="ignore_term")
    assert s.start(config).ok
    res = s.stop(grace_s=0.5)
    assert not res.ok and res.status == V.STOP_TIMEOUT and s.trainer().live
    res = s.stop(kill_after_s=0.5)
    assert res.ok and res.status == V.STOP_KILLED and not s.trainer().live


def test_failed_start_reports_exit_code_and_log(tmp_path, config):
    res = fake_session(tmp_path / "run", tmp_path, mode="fail").start(config)
    assert not res.ok and res.exit_code == 2 and "failing on purpose" in res.message


def test_latest_is_the_same_for_status_and_resume(tmp_path):
    rd = write_run(tmp_path / "run", 30, checkpoints=(10, 20), end="stopped")
    pt = checkpoint_paths(rd, 30)[0]
    write_checkpoint(rd, 30)
    pt.write_bytes(b"corrupt" + pt.read_bytes()[7:])  # same size, wrong hash
    s = RunSession(rd)
    assert s.status().latest_step == s.latest().step == 20
    assert s.latest().skipped and "sha256" in s.latest().skipped[0][1]


@pytest.mark.parametrize("cmd", ["stop", "resume", "status"])
def test_missing_run_dir_is_an_error(tmp_path, cmd, capsys):
    code = cli.main([cmd, "--run-dir", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAIL and "does not exist" in err and "did you mean" not in err


def test_status_json(tmp_path, capsys):
    rd = write_run(tmp_path / "run", 20, checkpoints=(10,), end="completed")
    assert cli.main(["status", "--run-dir", str(rd), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["status"] == "completed" and d["step"] == 20 and d["latest_step"] == 10


def test_cli_start_and_stop_use_the_shared_defaults(tmp_path, config, monkeypatch):
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)
    logs = tmp_path / "logs"
    args = ["--logs-dir", str(logs), "start", "--config", str(config), "--no-preflight", "--json"]
    assert cli.main(args) == 0
    assert (logs / "fake" / PID_FILE).exists()
    assert cli.main(["--logs-dir", str(logs), "stop", "--json"]) == 0  # the latest run
    assert not RunSession(logs / "fake").trainer().live


def test_app_crash_exits_nonzero(tmp_path):
    """If the dashboard dies of an exception, the process exits non-zero (it exited 0)."""
    rd = write_run(tmp_path / "run", 10)
    code = (
        "import sys; from textual.app import App; import nal_tui.ui.app as a\n"
        "real = App.run\n"
        "a.NalTuiApp.run = lambda self, **k: real(self, headless=True)\n"
        "def boom(self): raise RuntimeError('boom')\n"
        "a.NalTuiApp._draw = boom\n"
        "from nal_tui.cli import main\n"
        f"sys.exit(main(['--run-dir', {str(rd)!r}]))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)  # fmt: skip
    assert p.returncode == 1, p.stdout[-2000:] + p.stderr[-2000:]


def test_a_mistyped_run_dir_names_the_run_it_probably_meant(tmp_path, capsys):
    logs = tmp_path / "logs"
    write_run(logs / "demo", 10)
    code = cli.main(["--logs-dir", str(logs), "status", "--run-dir", str(logs / "dmeo")])
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAIL and "does not exist" in err
    assert f"did you mean {logs / 'demo'}?" in err


def test_resume_latest_names_the_newer_checkpoints_it_skipped(tmp_path, capsys):
    # A corrupt newest checkpoint: `nal-tui resume` starts from the one before and says why
    # (the trainer is handed that path, so its own resume_fallback alert never fires).
    rd = write_run(tmp_path / "run", 30, checkpoints=(10, 20), end="stopped")
    write_checkpoint(rd, 30)
    pt = checkpoint_paths(rd, 30)[0]
    pt.write_bytes(b"corrupt" + pt.read_bytes()[7:])  # same size, wrong hash
    s = fake_session(rd, tmp_path)
    res = s.resume("latest", target_step=100_000)
    assert res.ok, res.message
    assert "resuming from step 20" in res.message
    assert "skipped newer checkpoint(s)" in res.message and "step 30" in res.message
    assert "sha256" in res.message
    assert s.stop(grace_s=30).ok
