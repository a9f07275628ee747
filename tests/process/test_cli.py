"""``nal-tui`` on the command line (ported from main's test_cli): preflight output and exit
codes, usage errors, headless start/status/stop/resume with their JSON shapes, and which
run the dashboard opens without arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nal_tui import cli
from nal_tui.core.defaults import DEFAULT_CONFIG
from tests.factory import ROOT, corrupt, fake_base, kill_started, write_checkpoint, write_run
from trainer.rundir.history import fresh_start_refusal, run_history
from trainer.rundir.layout import CONFIG_FILE, EVENTS, PID_FILE, TRAIN_LOG


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


@pytest.fixture
def fake(monkeypatch):
    """``nal-tui start|resume`` launch the fake trainer (a real, light process)."""
    monkeypatch.setattr("nal_tui.core.control.command.trainer_base_command", fake_base)


def nal_tui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nal_tui", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)  # fmt: skip


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_preflight_json_on_demo_config(tmp_path):
    p = nal_tui("--preflight", "--skip-models", "--json", "--config", "config/demo.yaml",
                "--run-dir", str(tmp_path / "run"))  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout)
    assert d["ok"] is True and d["failed"] == 0 and d["passed"] == d["total"]
    assert d["run_dir"] == str(tmp_path / "run") and len(d["checks"]) >= 7
    assert {c["status"] for c in d["checks"]} <= {"pass", "warn", "skip"}
    assert {"name", "status", "message"} <= set(d["checks"][0])


def test_preflight_human_output_and_failure_exit_code(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\noptim: {lr_g: 5}\n")
    p = nal_tui("--preflight", "--config", str(bad))
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert any(x.startswith("✗ Configuration:") and "optim.lr_g" in x for x in lines), p.stdout
    assert "fix:" in p.stdout and "skipped" in p.stdout
    assert "checks passed" in lines[-1]


@pytest.mark.parametrize(
    "argv",
    [
        ["stop", "--grace"],
        ["--preflight", "status"],
        ["start", "--target-step", "0"],
        ["resume", "--nproc", "x"],
        ["frobnicate"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == cli.EXIT_USAGE
    assert "usage:" in capsys.readouterr().err


def test_headless_start_status_stop_with_json(fake, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    rd = str(tmp_path / "run")
    code, d = run_json(capsys, "start", "--config", "config/demo.yaml", "--run-dir", rd,
                       "--target-step", "100000", "--no-preflight", "--json")  # fmt: skip
    assert code == 0 and d["ok"] and d["launcher"] == "fake", d
    assert d["pid"] == d["trainer_pid"] and d["run_dir"] == rd and d["target_step"] == 100000
    assert {"command", "log_path", "config_path", "exit_code", "message"} <= set(d)
    code, d = run_json(capsys, "status", "--run-dir", rd, "--json")
    assert code == 0 and d["status"] == "running" and d["pid_file"] == "live" and d["pid"]
    assert {"step", "target_step", "last_event", "latest_checkpoint", "run_end"} <= set(d)
    code, d = run_json(capsys, "stop", "--run-dir", rd, "--grace", "30", "--json")
    assert code == 0 and d["status"] == "stopped" and d["run_end"]["status"] == "stopped"
    assert d["signals"] and d["signals"][0].startswith("SIGTERM")
    assert cli.main(["status", "--run-dir", rd]) == 0
    assert f"{rd}: stopped, step" in capsys.readouterr().out
    # Stopping again: nothing runs, which is not an error.
    assert cli.main(["stop", "--run-dir", rd]) == 0
    assert "no trainer is running" in capsys.readouterr().out


def test_resume_from_the_cli(fake, tmp_path, capsys):
    rd = write_run(tmp_path / "run", 20, checkpoints=(10, 20), end="stopped")
    code, d = run_json(capsys, "resume", "--run-dir", str(rd), "--target-step", "30", "--json")
    assert code == 0 and d["ok"] and d["resume"].endswith("ckpt_00000020.pt"), d
    assert "resuming from step 20" in d["message"]


def test_start_in_a_run_dir_that_holds_a_run_is_refused_like_the_trainer(fake, tmp_path, capsys):
    """issue 8 §1: exit 2 with the trainer's own refusal and the choices; nothing starts,
    nothing is appended to the run; --new-branch goes through to the trainer."""
    rd = write_run(tmp_path / "run", 30, checkpoints=(10, 20, 30), end="completed")
    before = (rd / EVENTS).read_bytes()
    for extra in ([], ["--no-preflight"]):
        code = cli.main(["start", "--config", str(rd / CONFIG_FILE),
                         "--run-dir", str(rd), *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2, err
        assert fresh_start_refusal(rd, run_history(rd), choices=False) in err
        assert "--resume latest" not in err  # nal-tui commands, not nal-train flags
        assert "last step 30" in err and f"nal-tui resume --run-dir {rd}" in err
        assert f"--run-dir {tmp_path / 'run-2'}" in err and "--new-branch" in err
    assert (rd / EVENTS).read_bytes() == before and not (rd / TRAIN_LOG).exists()
    code, d = run_json(capsys, "start", "--config", str(rd / CONFIG_FILE), "--run-dir",
                       str(rd), "--new-branch", "--no-preflight", "--json")  # fmt: skip
    assert code == 0 and d["ok"] and d["new_branch"], d
    assert "--new-branch" in d["command"]
    assert cli.main(["stop", "--run-dir", str(rd)]) == 0


def test_a_run_without_a_complete_checkpoint_is_not_offered_a_resume(fake, tmp_path, capsys):
    """Killed during its first save: the refusal offers a new run or a new branch, not a
    resume that would itself be refused for want of a checkpoint."""
    rd = write_run(tmp_path / "run", 5, checkpoints=(), end=None)
    code = cli.main(["start", "--config", str(rd / CONFIG_FILE), "--run-dir", str(rd)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "nal-tui resume" not in err and "--new-branch" in err


def test_start_refused_by_preflight(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntrain: {batch_sise: 4}\n")
    assert cli.main(["start", "--config", str(bad), "--run-dir", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "not starting: preflight failed" in err and "batch_sise" in err
    assert not (tmp_path / "r").exists()


def test_stop_with_a_garbled_pid_file_exits_1(tmp_path, capsys):
    rd = write_run(tmp_path / "run", 5)
    (rd / PID_FILE).write_text("garbage")
    assert cli.main(["stop", "--run-dir", str(rd)]) == 1
    assert "not signalling anything" in capsys.readouterr().err


def test_resume_without_checkpoint_exits_1(tmp_path, capsys):
    rd = write_run(tmp_path / "run", 5)
    assert cli.main(["resume", "--run-dir", str(rd), "--target-step", "10"]) == 1
    assert "nothing to resume from" in capsys.readouterr().err


def test_status_with_a_corrupt_newest_checkpoint_names_the_verified_one(tmp_path, capsys):
    rd = write_run(tmp_path / "run", 30, checkpoints=(10, 20), end="stopped")
    pt = write_checkpoint(rd, 30)
    corrupt(pt)  # same size, another hash
    assert cli.main(["status", "--run-dir", str(rd)]) == 0
    out = capsys.readouterr().out
    assert "stopped" in out and "latest checkpoint: ckpt_00000020.pt (step 20)" in out


class Recorder:
    calls: list[dict] = []

    def __init__(self, session, **kw) -> None:
        Recorder.calls.append(dict(run_dir=session.run_dir, logs_dir=session.logs_dir, **kw))
        self.return_code = 0

    def run(self) -> None:
        pass


def test_no_argument_opens_latest_run_or_demo(tmp_path, monkeypatch):
    import nal_tui.ui.app

    monkeypatch.setattr(nal_tui.ui.app, "NalTuiApp", Recorder)
    logs = tmp_path / "logs"
    logs.mkdir()
    Recorder.calls.clear()
    assert cli.main(["--logs-dir", str(logs)]) == 0  # fresh clone: no run yet
    assert Recorder.calls[-1] == {
        "run_dir": None, "logs_dir": logs, "config_path": DEFAULT_CONFIG,
        "polling": False, "bell": False, "read_only": False,
    }  # fmt: skip
    old, new = logs / "old", logs / "new"
    for d, t in ((old, 1000), (new, 2000)):
        d.mkdir()
        (d / CONFIG_FILE).write_text("name: x\n")
        os.utime(d / CONFIG_FILE, (t, t))
    assert cli.main(["--logs-dir", str(logs), "--polling", "--bell", "--read-only"]) == 0
    assert Recorder.calls[-1] == {
        "run_dir": new, "logs_dir": logs, "config_path": new / CONFIG_FILE,
        "polling": True, "bell": True, "read_only": True,
    }  # fmt: skip


def test_a_run_directory_as_the_first_word_opens_it(tmp_path, monkeypatch, capsys):
    """``nal-tui logs/demo`` is ``nal-tui --run-dir logs/demo``; a mistyped path still
    opens (the dashboard says what is wrong with it); a word that is neither a command nor
    a directory is a usage error naming the commands and the run it may mean."""
    import nal_tui.ui.app

    monkeypatch.setattr(nal_tui.ui.app, "NalTuiApp", Recorder)
    logs = tmp_path / "logs"
    run = logs / "demo"
    run.mkdir(parents=True)
    (run / CONFIG_FILE).write_text("name: demo\n")
    monkeypatch.chdir(tmp_path)
    for argv, want in (
        (["logs/demo"], Path("logs/demo")),
        (["--logs-dir", str(logs), "logs/demo", "--bell"], Path("logs/demo")),
        (["logs/dmeo"], Path("logs/dmeo")),  # mistyped: the dashboard names the neighbours
    ):
        Recorder.calls.clear()
        assert cli.main(argv) == 0
        assert Recorder.calls[-1]["run_dir"] == want, argv
    with pytest.raises(SystemExit) as e:
        cli.main(["logs/demo", "--run-dir", "logs/demo"])
    assert e.value.code == cli.EXIT_USAGE and "twice" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["demo"])  # not a directory here, not a command: logs/demo is
    err = capsys.readouterr().err
    assert e.value.code == cli.EXIT_USAGE and "neither a command" in err
    assert "did you mean logs/demo?" in err and "compare" in err


def test_status_into_a_closed_pipe_prints_no_traceback(tmp_path):
    # `nal-tui status | head -1`: the reader leaves early; no BrokenPipeError traceback.
    import subprocess
    import sys

    from tests.factory import ROOT, write_run

    rd = write_run(tmp_path / "run", 20, checkpoints=(10,), end="stopped")
    cmd = [sys.executable, "-m", "nal_tui", "status", "--run-dir", str(rd)]
    p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # the reader is gone before anything is written
    err = p.stderr.read().decode()
    p.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err
