"""Starting the trainer detached: its own session, output appended to ``train.log``.

The trainer outlives whoever started it; ``start`` records the launched process in
``<run>/launch.json`` at once (so a stop can find it before the trainer has written its PID
file), then waits until it holds the run lock (its PID file names it or a process it
started), or reports how it exited.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

from nal_tui.core.control import proc
from nal_tui.core.control.command import trainer_command
from nal_tui.core.control.results import StartResult, exit_name
from nal_tui.core.text import clean_lines
from trainer.rundir.layout import TRAIN_LOG


def start(
    rd: Path,
    config_path: str | os.PathLike[str],
    *,
    resume: str | None = None,
    target_step: int | None = None,
    nproc: int = 1,
    base: tuple[list[str], str] | None = None,
    env: dict[str, str] | None = None,
    wait_s: float,
    new_branch: bool = False,
    init_from: str | os.PathLike[str] | None = None,
    init_generator_only: bool = False,
) -> StartResult:
    """Launch the trainer for run dir ``rd`` (unless one is live there) and wait for it."""
    cmd, launcher = trainer_command(
        config_path, rd, resume=resume, target_step=target_step, nproc=nproc,
        base=base, new_branch=new_branch, init_from=init_from,
        init_generator_only=init_generator_only,
    )  # fmt: skip
    res = StartResult(
        False, "", str(rd), cmd, launcher, nproc, log_path=str(rd / TRAIN_LOG),
        config_path=str(config_path), resume=resume, target_step=target_step,
        new_branch=new_branch and resume is None,
    )  # fmt: skip
    live = proc.trainer_state(rd)
    if live.live:
        res.trainer_pid = live.pid
        res.message = (
            f"a trainer (pid {live.pid}) is already {'starting' if live.launched else 'running'}"
            f" in {rd}; stop it first (nal-tui stop --run-dir {rd})"
        )
        return res
    try:
        rd.mkdir(parents=True, exist_ok=True)
        log = open(rd / TRAIN_LOG, "ab")  # noqa: SIM115 - handed to the child
    except OSError as e:
        res.message = f"{rd}: cannot create the run directory or train.log ({e.strerror})"
        return res
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")  # train.log shows output as it happens
    try:
        with log:
            log.write(f"\n=== nal-tui {time.strftime('%F %T')}: {' '.join(cmd)}\n".encode())
            log.flush()
            child = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True, env=env,
            )  # fmt: skip
    except OSError as e:
        res.message = f"cannot run {cmd[0]}: {e.strerror or e}"
        return res
    proc.CHILDREN.add(child)
    res.pid = child.pid
    launched = proc.write_launch_file(rd, child.pid)
    try:
        return _wait_started(res, child, rd, wait_s)
    finally:
        if launched is not None and child.poll() is not None:
            proc.remove_launch_file(rd, launched)


def _wait_started(
    res: StartResult, child: subprocess.Popen[bytes], rd: Path, wait_s: float
) -> StartResult:
    deadline = time.monotonic() + wait_s
    while True:
        code = child.poll()
        st = proc.pid_state(rd)
        if st.live and st.info is not None and _owned_by(st.info.pid, child.pid):
            res.ok, res.trainer_pid = True, st.info.pid
            res.message = f"trainer started (pid {st.info.pid}) in {rd}; output in {res.log_path}"
            return res
        if code is not None:
            proc.CHILDREN.reap()
            res.exit_code = code
            tail = clean_lines(_log_tail(rd / TRAIN_LOG), 15)
            res.message = (
                f"the trainer exited with code {code} ({exit_name(code)}) before it "
                f"started; last lines of {res.log_path}:\n{tail}"
            )
            return res
        if time.monotonic() >= deadline:
            res.ok = True
            res.message = (
                f"trainer launched (pid {child.pid}) in {rd} but has not taken the run "
                f"lock after {wait_s:.0f} s; see {res.log_path}"
            )
            return res
        time.sleep(0.1)


def _owned_by(trainer_pid: int, launched_pid: int) -> bool:
    if trainer_pid == launched_pid:
        return True
    try:
        return any(p.pid == trainer_pid for p in psutil.Process(launched_pid).children(True))
    except psutil.Error:
        return False


def _log_tail(path: Path, nbytes: int = 8192) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
