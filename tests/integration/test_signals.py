"""Signals at any moment, on a real ``nal-train`` process: during start-up (SIGTERM/SIGINT),
SIGHUP from a closed terminal, and a console pipe that closes under a running trainer.

Every signal is sent at a moment chosen by watching the run directory (a train.log line,
events.jsonl records), never after a sleep.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    demo_config_dict,
    nal_train_cmd,
    read_events,
    start_trainer,
    wait_for,
    write_config,
)
from trainer.events import schema as ev
from trainer.rundir.checkpoints import list_checkpoints, verify_checkpoint
from trainer.rundir.lock import read_pid_file
from trainer.train.startup import HOLD_ENV

POLL = 0.02


def _config(tmp_path: Path, corpus: Path, **sections) -> Path:
    base = {
        "log": {"log_every": 1, "val_every": 1000},
        "checkpoint": {"every": 1000, "milestone_every": 0},
    }
    for k, v in sections.items():
        base.setdefault(k, {}).update(v)
    return write_config(tmp_path / "c.yaml", demo_config_dict(corpus, **base))


def _log_has(path: Path, text: str) -> bool:
    try:
        return text in path.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _steps(run: Path) -> list[int]:
    return [r["step"] for r in read_events(run) if r["event"] == "step"]


def _status(run: Path) -> str:
    from nal_tui.core.control.session import RunSession

    return RunSession(run).status().status


def _train_args(cfg: Path, run: Path, target: int = 100000) -> list[str]:
    return ["train", "--config", str(cfg), "--run-dir", str(run), "--target-step", str(target)]


def test_sigterm_while_torch_loads_exits_0_and_leaves_nothing_stale(
    demo_corpus: Path, tmp_path: Path
) -> None:
    # train.log's first line is written just before `import torch` (a second or more).
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p = start_trainer(_train_args(cfg, run), tmp_path / "out.log")
    try:
        assert wait_for(
            lambda: _log_has(run / "train.log", "start-up: loading torch"), 120, POLL
        ), (tmp_path / "out.log").read_text()
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=120) == ev.EXIT_OK, (tmp_path / "out.log").read_text()
    finally:
        p.kill()
    out = (tmp_path / "out.log").read_text()
    assert "stopped by SIGTERM during start-up" in out, out
    assert "Traceback" not in out
    assert read_pid_file(run) is None and not _steps(run)
    assert all(r["event"] != "run_start" for r in read_events(run))
    ends = [r for r in read_events(run) if r["event"] == "run_end"]
    assert all(e["status"] == ev.STATUS_STOPPED for e in ends)


def _hold_and_signal(corpus: Path, tmp_path: Path, phase: str, sig: int) -> tuple[int, Path, str]:
    cfg, run = _config(tmp_path, corpus), tmp_path / "run"
    env_backup = os.environ.get(HOLD_ENV)
    os.environ[HOLD_ENV] = phase
    try:
        p = start_trainer(_train_args(cfg, run), tmp_path / "out.log")
    finally:
        if env_backup is None:
            os.environ.pop(HOLD_ENV, None)
        else:
            os.environ[HOLD_ENV] = env_backup
    try:
        assert wait_for(lambda: _log_has(run / "train.log", f"holding at '{phase}'"), 180, POLL), (
            tmp_path / "out.log"
        ).read_text()
        p.send_signal(sig)
        code = p.wait(timeout=120)
    finally:
        p.kill()
    return code, run, (tmp_path / "out.log").read_text()


@pytest.mark.parametrize(
    "phase, log_open",
    [
        ("opening the run directory", False),
        ("checking the corpus", True),
        ("building the models", True),
        ("starting to train", True),
    ],
)
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
@pytest.mark.slow
def test_stop_at_each_startup_phase(
    demo_corpus: Path, tmp_path: Path, phase: str, log_open: bool, sig: int
) -> None:
    code, run, out = _hold_and_signal(demo_corpus, tmp_path, phase, sig)
    name = signal.Signals(sig).name
    assert code == ev.EXIT_OK, out
    assert "Traceback" not in out and f"stopped by {name} during start-up" in out
    assert read_pid_file(run) is None  # the lock was released with its PID file
    recs = read_events(run)
    assert not _steps(run) and all(r["event"] != "run_start" for r in recs)
    if log_open:
        end = recs[-1]
        assert end["event"] == "run_end" and end["status"] == ev.STATUS_STOPPED
        assert end["exit_code"] == 0 and f"stopped by {name} during start-up" in end["reason"]
        assert _status(run) == "stopped"
    else:
        assert not (run / "events.jsonl").exists()


def test_sigint_while_checking_the_corpus(demo_corpus: Path, tmp_path: Path) -> None:
    """The default-suite representative of the phase matrix above."""
    code, run, out = _hold_and_signal(demo_corpus, tmp_path, "checking the corpus", signal.SIGINT)
    assert code == ev.EXIT_OK, out
    end = read_events(run)[-1]
    assert end["event"] == "run_end" and end["status"] == ev.STATUS_STOPPED
    assert read_pid_file(run) is None and _status(run) == "stopped"


def _pty_trainer(args: list[str], log: Path) -> tuple[subprocess.Popen, threading.Event]:
    """nal-train as the foreground process of a terminal it controls (like an SSH login).

    Set the returned event to hang the terminal up (its master side is closed).
    """
    master, slave = pty.openpty()

    def controlling_tty() -> None:  # runs in the child after setsid
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(
        nal_train_cmd() + args,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        start_new_session=True,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    hangup = threading.Event()

    def drain() -> None:
        # A terminal nobody reads fills up and blocks the writer, so read it; and close the
        # master here, not from another thread: a close racing a blocked read does not
        # release the terminal until that read returns.
        with open(log, "wb") as sink:
            try:
                while not hangup.is_set():
                    ready, _, _ = select.select([master], [], [], 0.05)
                    if ready:
                        try:
                            data = os.read(master, 4096)
                        except OSError:
                            return
                        if not data:
                            return
                        sink.write(data)
                        sink.flush()
            finally:
                os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    return p, hangup


def test_sighup_from_a_closed_terminal_stops_like_sigterm(demo_corpus: Path, tmp_path: Path):
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p, hangup = _pty_trainer(_train_args(cfg, run), tmp_path / "tty.log")
    try:
        assert wait_for(lambda: len(_steps(run)) >= 2, 180, POLL), (tmp_path / "tty.log").read_text(
            errors="replace"
        )
        # The SSH session ends: the terminal hangs up. The kernel sends SIGHUP to the
        # session leader (our trainer); every later write to the terminal fails with EIO.
        hangup.set()
        assert p.wait(timeout=180) == ev.EXIT_OK
    finally:
        p.kill()
    end = read_events(run)[-1]
    assert end["event"] == "run_end" and end["status"] == ev.STATUS_STOPPED
    assert end["reason"] == "stopped by SIGHUP"
    ckpts = list_checkpoints(run)
    assert [c.step for c in ckpts] == [end["step"]] == [_steps(run)[-1]]
    assert verify_checkpoint(ckpts[0]) == (True, "ok")
    assert read_pid_file(run) is None
    log = (run / "train.log").read_text()
    assert "run end at step" in log and "Logging error" not in log and "Traceback" not in log


@pytest.mark.slow
def test_closed_console_pipe_does_not_break_the_stop(demo_corpus: Path, tmp_path: Path):
    """stderr is a pipe whose reader went away (ssh without a terminal): the trainer keeps
    training, and a stop still saves, writes run_end and exits 0 (not 120, not SIGPIPE).
    A guard for the console handling (main already survives this case)."""
    cfg, run = _config(tmp_path, demo_corpus), tmp_path / "run"
    p = subprocess.Popen(
        nal_train_cmd() + _train_args(cfg, run),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert wait_for(lambda: len(_steps(run)) >= 1, 180, POLL)
        assert p.stdout is not None
        p.stdout.close()  # the reader is gone: every write now fails with EPIPE
        n = len(_steps(run))
        assert wait_for(lambda: len(_steps(run)) >= n + 2, 180, POLL)  # still training
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=180) == ev.EXIT_OK
    finally:
        p.kill()
    end = read_events(run)[-1]
    assert end["event"] == "run_end" and end["status"] == ev.STATUS_STOPPED
    assert verify_checkpoint(list_checkpoints(run)[-1]) == (True, "ok")
    assert read_pid_file(run) is None
    log = (run / "train.log").read_text()
    assert "run end at step" in log and "Logging error" not in log


@pytest.mark.slow
def test_torchrun_ranks_stopped_during_startup_leave_together(
    demo_corpus: Path, tmp_path: Path
) -> None:
    import psutil

    cfg = _config(tmp_path, demo_corpus, train={"batch_size": 2})
    run = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "trainer",
        *_train_args(cfg, run),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env[HOLD_ENV] = "building the models"
    with open(tmp_path / "out.log", "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        assert wait_for(
            lambda: _log_has(run / "train.log", "holding at 'building the models'"), 240, POLL
        ), (tmp_path / "out.log").read_text()[-3000:]
        ranks = [
            c
            for c in psutil.Process(p.pid).children(recursive=True)
            if "trainer" in " ".join(c.cmdline())
        ]
        assert len(ranks) == 2
        for r in ranks:  # what `nal-tui stop` does: the trainer's ranks, not a process group
            r.send_signal(signal.SIGTERM)
        assert p.wait(timeout=240) == 0, (tmp_path / "out.log").read_text()[-3000:]
    finally:
        if p.poll() is None:
            p.kill()
    recs = read_events(run)
    assert [r["event"] for r in recs] == ["run_end"]
    assert recs[0]["status"] == ev.STATUS_STOPPED and recs[0]["exit_code"] == 0
    assert read_pid_file(run) is None
