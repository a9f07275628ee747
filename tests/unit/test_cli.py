"""``nal-tui`` command line: preflight output and exit codes, headless control, app opening."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from nal_tui import cli, control
from trainer import rundir

REPO = Path(__file__).resolve().parents[2]
FAKE = Path(__file__).with_name("fake_trainer.py")


def nal_tui(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nal_tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_preflight_json_on_demo_config(tmp_path):
    p = nal_tui(
        "--preflight",
        "--skip-models",
        "--json",
        "--config",
        "config/demo.yaml",
        "--run-dir",
        str(tmp_path / "run"),
    )
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout)
    assert d["ok"] is True and d["failed"] == 0 and d["passed"] == d["total"] == 7
    assert len(d["checks"]) == 8 and d["run_dir"] == str(tmp_path / "run")
    assert {c["status"] for c in d["checks"]} <= {"pass", "warn", "skip"}


def test_preflight_human_output_and_failure_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noptim: {lr_g: 5}\n")
    p = nal_tui("--preflight", "--config", str(bad))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert lines[1].startswith("✗ Configuration:") and "optim.lr_g" in lines[1]
    assert "fix:" in p.stdout and "- Data: skipped" in p.stdout
    assert lines[-1] == "2/3 checks passed (5 skipped)"


@pytest.mark.parametrize(
    "argv",
    [
        ["stop", "--grace"],
        ["--preflight", "status"],
        ["start", "--target-step", "0"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(
        control, "trainer_base_command", lambda: ([sys.executable, str(FAKE)], "fake")
    )
    pids: list[int] = []
    real = subprocess.Popen

    def popen(*a, **kw):
        p = real(*a, **kw)
        pids.append(p.pid)
        return p

    monkeypatch.setattr(control.subprocess, "Popen", popen)
    yield
    for pid in pids:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    control.reap_children()


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_headless_start_status_stop(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    rd = str(tmp_path / "run")
    code, d = run_json(
        capsys,
        "start",
        "--config",
        "config/demo.yaml",
        "--run-dir",
        rd,
        "--target-step",
        "100000",
        "--json",
    )
    assert code == 0 and d["ok"] and d["pid"] == d["trainer_pid"] and d["launcher"] == "fake"
    code, d = run_json(capsys, "status", "--run-dir", rd, "--json")
    assert code == 0 and d["status"] == "running" and d["pid_file"] == "live"
    code, d = run_json(capsys, "stop", "--run-dir", rd, "--grace", "10", "--json")
    assert code == 0 and d["status"] == "stopped" and d["run_end"]["status"] == "stopped"
    assert cli.main(["status", "--run-dir", rd]) == 0
    assert f"{rd}: stopped, step" in capsys.readouterr().out
    # Stopping again: nothing runs, which is not an error.
    assert cli.main(["stop", "--run-dir", rd]) == 0


def test_start_refused_by_preflight(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {batch_sise: 4}\n")
    assert cli.main(["start", "--config", str(bad), "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "not starting: preflight failed" in err and "train.batch_sise" in err
    assert not (tmp_path / "r").exists()


def test_stop_stale_pid_file_exits_1(tmp_path, capsys):
    (tmp_path / rundir.PID_FILE).write_text("garbage")
    assert cli.main(["stop", "--run-dir", str(tmp_path)]) == 1
    assert "not signalling anything" in capsys.readouterr().err


def test_resume_without_checkpoint_exits_1(tmp_path, capsys):
    (tmp_path / rundir.CONFIG_FILE).write_text("name: x\n")
    assert cli.main(["resume", "--run-dir", str(tmp_path), "--target-step", "10"]) == 1
    assert "no complete, verified checkpoint" in capsys.readouterr().err


def test_status_of_missing_run(tmp_path, capsys):
    assert cli.main(["status", "--run-dir", str(tmp_path / "nope")]) == 1
    assert "not found" in capsys.readouterr().err


class Recorder:
    calls: list[dict] = []

    def __init__(self, **kw) -> None:
        Recorder.calls.append(kw)

    def run(self) -> None:
        pass


def test_no_argument_opens_latest_run_or_demo(tmp_path, monkeypatch):
    import nal_tui.app

    monkeypatch.setattr(nal_tui.app, "NalTuiApp", Recorder)
    logs = tmp_path / "logs"
    logs.mkdir()
    Recorder.calls.clear()
    assert cli.main(["--logs-dir", str(logs)]) == 0  # fresh clone: no run yet
    assert Recorder.calls[-1] == {
        "run_dir": None,
        "logs_dir": logs,
        "config_path": cli.DEFAULT_CONFIG,
        "polling": False,
        "bell": False,
    }
    old, new = logs / "old", logs / "new"
    for d, t in ((old, 1000), (new, 2000)):
        d.mkdir()
        (d / rundir.CONFIG_FILE).write_text("name: x\n")
        os.utime(d / rundir.CONFIG_FILE, (t, t))
    assert cli.main(["--logs-dir", str(logs), "--polling", "--bell"]) == 0
    assert Recorder.calls[-1] == {
        "run_dir": new,
        "logs_dir": logs,
        "config_path": new / rundir.CONFIG_FILE,
        "polling": True,
        "bell": True,
    }
