"""Process identity: PID files read safely, our trainer recognised by its command line."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from nal_tui.core.control import proc
from nal_tui.core.vocab import PID_GARBLED, PID_NONE, PID_STALE
from trainer.rundir.layout import PID_FILE
from trainer.rundir.lock import own_pid_info


def _pid_doc(cmd=("nal-train", "train")) -> dict:
    return {"pid": 1, "create_time": 1.0, "cmdline": list(cmd), "started": 1.0, "run_dir": "x"}


def test_fifo_pid_file_is_refused_without_blocking(tmp_path):
    os.mkfifo(tmp_path / PID_FILE)
    t0 = time.monotonic()
    st = proc.pid_state(tmp_path)  # a plain open() would block here forever
    assert st.state == PID_GARBLED and "not a regular file" in st.message
    assert time.monotonic() - t0 < 5


def test_symlink_huge_and_binary_pid_files_are_refused(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(_pid_doc()))
    (tmp_path / PID_FILE).symlink_to(target)
    assert "symbolic link" in proc.pid_state(tmp_path).message
    (tmp_path / PID_FILE).unlink()
    with open(tmp_path / PID_FILE, "wb") as f:
        f.truncate(1 << 30)  # sparse: a gigabyte that must not be read
    assert "too large" in proc.pid_state(tmp_path).message
    (tmp_path / PID_FILE).write_bytes(b"\xff\xfe\x00\x1b[2J" * 10)
    st = proc.pid_state(tmp_path)
    assert st.state == PID_GARBLED and "\x1b" not in st.message


def test_missing_and_stale(tmp_path):
    assert proc.pid_state(tmp_path).state == PID_NONE
    (tmp_path / PID_FILE).write_text(json.dumps(_pid_doc()))
    assert proc.pid_state(tmp_path).state == PID_STALE


@pytest.mark.parametrize(
    "cmd, ours",
    [
        (["/venv/bin/nal-train", "train"], True),
        (["/usr/bin/python3", "/venv/bin/nal-train", "train"], True),
        (["python", "-m", "trainer", "train"], True),
        (["python", "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "trainer"], True),
        (["torchrun", "--standalone", "/venv/bin/nal-train", "train"], True),
        (["bash", "wrapper.sh"], False),
        (["python", "-m", "pytest"], False),
        (["torchrun", "other.py"], False),
        ([], False),
    ],
)
def test_trainer_command_lines(cmd, ours):
    assert proc.is_trainer_cmdline(cmd) is ours


def test_our_own_process_is_not_a_trainer(tmp_path):
    """The identity gate: pid and start time match, but pytest is not our trainer."""
    info = own_pid_info(tmp_path)
    assert not proc.matches(info)


def test_child_registry_is_safe_across_threads():
    class P:
        def __init__(self, pid):
            self.pid, self.n = pid, 0

        def poll(self):
            self.n += 1
            return 0 if self.n > 2 else None

    reg = proc.Children()
    errors = []

    def add(base):
        try:
            for i in range(500):
                reg.add(P(base + i))
                reg.reap()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=add, args=(k * 1000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for _ in range(5):
        reg.reap()
    assert errors == [] and reg.pids() == []
