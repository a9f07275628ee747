"""The run lock, the PID file's process identity and the torch-free import, against real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from tests.factory import spawn_sleeper
from trainer.rundir.layout import PID_FILE, atomic_write_text
from trainer.rundir.lock import (
    PidInfo,
    RunLock,
    RunLocked,
    process_matches,
    read_pid_file,
)

_HOLDER = textwrap.dedent("""
    import sys
    from trainer.rundir.lock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
""")


def _write_pid(run_dir: Path, info: PidInfo) -> None:
    atomic_write_text(run_dir / PID_FILE, json.dumps(info.__dict__))


def test_rundir_imports_neither_torch_nor_numpy() -> None:
    code = "import sys, trainer.rundir; print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture
def sleeper():
    proc = spawn_sleeper(60)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_process_matches_checks_pid_create_time_and_cmdline(tmp_path: Path, sleeper) -> None:
    p = psutil.Process(sleeper.pid)
    real = PidInfo(
        pid=sleeper.pid,
        create_time=p.create_time(),
        cmdline=p.cmdline(),
        started=time.time(),
        run_dir=str(tmp_path),
    )
    _write_pid(tmp_path, real)
    assert read_pid_file(tmp_path) == real
    assert process_matches(read_pid_file(tmp_path))
    # An unrelated live process with a recycled pid: the cmdline gives it away.
    wrong_cmd = PidInfo(**{**real.__dict__, "cmdline": [sys.executable, "-m", "trainer"]})
    assert not process_matches(wrong_cmd)
    wrong_time = PidInfo(**{**real.__dict__, "create_time": real.create_time - 5.0})
    assert not process_matches(wrong_time)
    sleeper.kill()
    sleeper.wait()
    assert not process_matches(real)


def test_lock_refuses_second_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        owner = read_pid_file(tmp_path)
        assert owner is not None and owner.pid == holder.pid
        assert process_matches(owner)
        with pytest.raises(RunLocked, match=rf"pid {holder.pid}\b"):
            RunLock(tmp_path).acquire()
        # The refused attempt must not have touched the owner's PID file.
        assert read_pid_file(tmp_path) == owner
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        assert holder.wait(timeout=30) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    with RunLock(tmp_path) as lock:
        assert lock.held


def test_lock_of_killed_holder_is_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    stale = read_pid_file(tmp_path)
    assert stale is not None and not process_matches(stale)  # left behind, but not alive
    with RunLock(tmp_path):
        assert read_pid_file(tmp_path).pid == os.getpid()
