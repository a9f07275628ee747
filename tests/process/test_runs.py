"""Finding runs and their status from real run directories and real processes (ported
from main's test_runs): one rule (``status.derive_status``) fed from the log's tail and
the PID file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control import runs
from tests.factory import wait_for
from trainer.events import schema as ev
from trainer.events.codec import encode
from trainer.rundir.layout import CONFIG_FILE, EVENTS, PID_FILE
from trainer.rundir.lock import PidInfo, own_pid_info

T = 1000.0


def rec(event: ev.Event, t: float = T) -> bytes:
    return encode(event.to_record(t))


def run_start(target: int = 100, step: int = 0) -> bytes:
    return rec(ev.RunStart(run_id="r", pid=1, config_path="c.yaml", start_step=step,
                           target_step=target, world_size=1, device="cpu", versions={}))  # fmt: skip


def step(n: int) -> bytes:
    return rec(ev.Step(step=n, epoch=0, g=1.0, d=1.0, stft=1.0, adv=1.0, fm=1.0, recon="mrstft",
                       lr_g=1e-4, lr_d=1e-4, step_time=0.1, samples_per_s=10.0))  # fmt: skip


def run_end(n: int, status: str) -> bytes:
    return rec(ev.RunEnd(step=n, status=status, reason="x", exit_code=0))


def make_run(root: Path, name: str, *lines: bytes, mtime: float | None = None) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / EVENTS).write_bytes(b"".join(lines))
    if mtime is not None:
        os.utime(d / EVENTS, (mtime, mtime))
    return d


def write_pid(d: Path, info: PidInfo) -> None:
    (d / PID_FILE).write_text(json.dumps(info.__dict__))


def dead_pid_info(d: Path) -> PidInfo:
    p = subprocess.Popen(["true"])
    info = PidInfo(pid=p.pid, create_time=0.0, cmdline=["nal-train", "train"],
                          started=0.0, run_dir=str(d))  # fmt: skip
    p.wait()
    return info


@pytest.fixture
def trainer_like(tmp_path):
    """A live process whose command line is our trainer's (``python .../nal-train``)."""
    script = tmp_path / "bin" / "nal-train"
    script.parent.mkdir()
    script.write_text("import time\ntime.sleep(300)\n")
    p = subprocess.Popen([sys.executable, str(script), "train"])
    proc = psutil.Process(p.pid)
    assert wait_for(lambda: proc.cmdline()[:2] == [sys.executable, str(script)], 30)

    def info(d: Path) -> PidInfo:
        return PidInfo(pid=p.pid, create_time=proc.create_time(),
                              cmdline=proc.cmdline(), started=proc.create_time(),
                              run_dir=str(d))  # fmt: skip

    yield info
    p.kill()
    p.wait()


def test_completed_run(tmp_path):
    d = make_run(tmp_path, "a", run_start(50), step(1), step(50), run_end(50, "completed"))
    st = runs.read_status(d)
    assert (st.status, st.step, st.target_step) == ("completed", 50, 50)
    assert st.run_end["status"] == "completed" and st.pid.state == V.PID_NONE


def test_failed_run_shows_as_crashed_with_run_end_kept(tmp_path):
    d = make_run(tmp_path, "a", run_start(), step(3), run_end(3, "failed"))
    st = runs.read_status(d)
    assert st.status == "crashed" and st.run_end["status"] == "failed"


def test_no_pid_file_and_old_log_is_stale(tmp_path):
    # No PID file, no run_end, last event long ago: e.g. a run copied from another machine.
    d = make_run(tmp_path, "a", run_start(), step(1), step(2), b'{"v":1,"event":"st')  # torn
    st = runs.read_status(d)
    assert st.status == "stale" and st.step == 2 and st.last_event == "step"


def test_no_pid_file_and_recent_log_is_running(tmp_path):
    d = make_run(tmp_path, "a", run_start(), step(1), step(2))
    assert runs.read_status(d, now=T + 10).status == "running"
    assert runs.read_status(d, now=T + 301).status == "stale"
    assert runs.read_status(d, now=T + 50, stale_after_s=30).status == "stale"


def test_dead_pid_file_is_crashed_and_says_the_pid_file_is_stale(tmp_path):
    d = make_run(tmp_path, "a", run_start(), step(1))
    write_pid(d, dead_pid_info(d))
    st = runs.read_status(d, now=T + 1)  # however fresh the log
    assert st.status == "crashed" and st.pid.state == V.PID_STALE
    assert "without writing run_end" in st.reason and "stale" in st.reason


def test_dead_pid_file_after_run_end_keeps_the_run_end_status(tmp_path):
    d = make_run(tmp_path, "a", run_start(), step(5), run_end(5, "completed"))
    write_pid(d, dead_pid_info(d))
    assert runs.read_status(d).status == "completed"


def test_garbled_pid_file_is_stale(tmp_path):
    d = make_run(tmp_path, "a", run_start(), step(1))
    (d / PID_FILE).write_text("{not json")
    st = runs.read_status(d, now=T + 1)
    assert st.status == "stale" and st.pid.state == V.PID_GARBLED
    assert "unreadable" in st.reason


def test_no_events_is_not_started(tmp_path):
    d = make_run(tmp_path, "a")
    assert runs.read_status(d).status == "not started"


def test_live_verified_process_is_running(tmp_path, trainer_like):
    # A resumed session: the old run_end is followed by a new run_start and steps.
    d = make_run(tmp_path, "a", run_start(10), step(10), run_end(10, "stopped"),
                 run_start(20, 10), step(11))  # fmt: skip
    write_pid(d, trainer_like(d))
    st = runs.read_status(d)
    assert st.status == "running" and st.pid.live and st.target_step == 20 and st.step == 11


def test_live_trainer_started_after_the_last_run_end_is_running(tmp_path, trainer_like):
    # A new session whose trainer has not logged its run_start yet.
    d = make_run(tmp_path, "a", run_start(10), step(10), run_end(10, "stopped"))
    write_pid(d, trainer_like(d))  # started now, long after t=1000
    st = runs.read_status(d)
    assert st.status == "running" and st.pid.live


def test_our_own_test_process_is_not_taken_for_a_trainer(tmp_path):
    d = make_run(tmp_path, "a", run_start(10), step(10))
    write_pid(d, own_pid_info(d))  # alive, but its command line is pytest's
    st = runs.read_status(d)
    assert st.pid.state == V.PID_STALE and st.status == "crashed"


def test_target_found_beyond_the_tail(tmp_path):
    lines = [run_start(7777)] + [step(i) for i in range(1, 2000)]
    d = make_run(tmp_path, "a", *lines)
    assert (d / EVENTS).stat().st_size > runs.TAIL_BYTES
    st = runs.read_status(d)
    assert st.target_step == 7777 and st.step == 1999
    # Small chunks: the run_start line straddles chunk boundaries and is still found whole.
    for chunk in (50, 97, 300):
        assert runs._target_backwards(d / EVENTS, chunk=chunk) == 7777


def test_find_runs_newest_first_and_latest(tmp_path):
    make_run(tmp_path, "old", run_start(), run_end(5, "stopped"), mtime=1000)
    make_run(tmp_path, "new", run_start(), step(1), mtime=3000)
    cfg_only = tmp_path / "fresh"
    cfg_only.mkdir()
    (cfg_only / CONFIG_FILE).write_text("name: fresh\n")
    os.utime(cfg_only / CONFIG_FILE, (2000, 2000))
    (tmp_path / "not_a_run").mkdir()
    (tmp_path / "file.txt").write_text("x")
    found = runs.find_runs(tmp_path)
    assert [r.name for r in found] == ["new", "fresh", "old"]
    assert [r.status for r in found] == ["stale", "not started", "stopped"]  # old events
    assert runs.latest_run(tmp_path).name == "new"


def test_no_runs(tmp_path):
    assert runs.find_runs(tmp_path / "missing") == []
    assert runs.latest_run(tmp_path) is None


def test_a_refused_start_after_the_run_ended_keeps_the_earlier_status(tmp_path):
    refused = rec(ev.RunEnd(step=5, status="failed", reason="cannot resume from x.pt: file does "
                            "not exist", exit_code=5), T + 60)  # fmt: skip
    d = make_run(tmp_path, "a", run_start(), step(5), run_end(5, "stopped"), refused, refused)
    st = runs.read_status(d)
    assert (st.status, st.step) == ("stopped", 5) and st.run_end["status"] == "stopped"
    assert "a later start was refused" in st.reason and "exit code 5" in st.reason
    d = make_run(tmp_path, "b", refused)  # a first start that failed is the run's end
    assert runs.read_status(d).status == "crashed"
