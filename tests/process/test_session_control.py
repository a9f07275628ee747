"""RunSession's start / stop / resume refusals and PID-file identity with real processes
(ported from main's test_control): what is refused is never signalled or launched."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import psutil
import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control.command import trainer_command
from nal_tui.core.control.session import RunSession
from tests.factory import (
    ROOT,
    corrupt,
    fake_session,
    kill_started,
    read_events,
    spawn_sleeper,
    wait_for,
    write_checkpoint,
)
from trainer.rundir.layout import CONFIG_FILE, PID_FILE, TRAIN_LOG


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text((ROOT / "config" / "demo.yaml").read_text().replace("name: demo", "name: fake"))
    return p


def test_start_refuses_when_a_trainer_is_already_running(tmp_path, config):
    s = fake_session(tmp_path / "run", tmp_path)
    first = s.start(config)
    assert first.ok, first.message
    second = fake_session(tmp_path / "run", tmp_path).start(config)
    assert not second.ok and second.pid is None
    assert f"pid {first.trainer_pid}" in second.message and "already running" in second.message
    assert "nal-tui stop --run-dir" in second.message
    assert s.stop(grace_s=30).status == V.STOP_STOPPED


def test_start_with_a_bad_config_and_no_run_dir_names_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train: {batch_sise: 4}\n")
    res = RunSession(None, logs_dir=tmp_path / "logs").start(cfg)
    assert not res.ok and "batch_sise" in res.message and str(cfg) in res.message
    assert not (tmp_path / "logs").exists()  # nothing was created or launched


@pytest.fixture
def sleeper():
    """An unrelated live process: it must never be signalled."""
    p = spawn_sleeper(300)
    yield p
    p.kill()
    p.wait()


def _write_pid_file(rd: Path, **fields) -> None:
    rd.mkdir(parents=True, exist_ok=True)
    d = {"pid": 1, "create_time": 0.0, "cmdline": ["nal-train", "train"],
         "started": time.time(), "run_dir": str(rd)}  # fmt: skip
    d.update(fields)
    (rd / PID_FILE).write_text(json.dumps(d))
    (rd / CONFIG_FILE).write_text("name: x\n")


@pytest.mark.parametrize("variant", ["other_cmdline", "other_create_time"])
def test_pid_reuse_is_refused_and_the_process_survives(tmp_path, sleeper, variant):
    rd = tmp_path / "run"
    p = psutil.Process(sleeper.pid)
    if variant == "other_cmdline":  # the pid now belongs to an unrelated program
        _write_pid_file(rd, pid=sleeper.pid, create_time=p.create_time(),
                        cmdline=[sys.executable, "-m", "trainer", "train"])  # fmt: skip
    else:  # the same command line, but another process (started later than recorded)
        _write_pid_file(rd, pid=sleeper.pid, create_time=p.create_time() - 100,
                        cmdline=p.cmdline())  # fmt: skip
    s = RunSession(rd)
    assert s.trainer().state == V.PID_STALE and not s.trainer().live
    res = s.stop(grace_s=0.2, kill_after_s=0.1)
    assert not res.ok and res.status == V.STOP_STALE and res.signals == []
    assert "not signalling anything" in res.message
    assert s.kill().signals == []
    assert s.status().status == V.STATUS_CRASHED
    # Still running, and was never stopped or killed: its state is not a zombie or stopped.
    assert sleeper.poll() is None and p.status() not in (psutil.STATUS_ZOMBIE, "stopped")


def test_garbled_pid_file_is_reported_never_acted_on(tmp_path):
    rd = tmp_path / "run"
    _write_pid_file(rd)
    (rd / PID_FILE).write_text('{"pid": 12')
    s = RunSession(rd)
    res = s.stop()
    assert not res.ok and res.status == V.STOP_STALE and "not valid JSON" in res.message
    st = s.status()
    assert st.pid_file == V.PID_GARBLED and st.status == V.STATUS_STALE


def test_stop_with_no_trainer(tmp_path):
    rd = tmp_path / "run"
    _write_pid_file(rd)
    (rd / PID_FILE).unlink()
    res = RunSession(rd).stop()
    assert res.ok and res.status == V.STOP_NOT_RUNNING and "no trainer is running" in res.message


def test_resume_from_the_latest_verified_with_a_new_target(tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / CONFIG_FILE).write_text("name: fake\n")
    write_checkpoint(rd, 100)
    good = write_checkpoint(rd, 200)
    bad = write_checkpoint(rd, 300)
    corrupt(bad)  # same size, another hash
    res = fake_session(rd, tmp_path).resume(target_step=250)
    assert res.ok, res.message
    assert res.resume == str(good) and "step 200" in res.message
    assert res.command[res.command.index("--resume") + 1] == str(good)
    assert res.command[res.command.index("--target-step") + 1] == "250"
    assert wait_for(lambda: (read_events(rd) or [{}])[-1].get("event") == "run_end", 60)
    evs = read_events(rd)
    start = next(e for e in evs if e["event"] == "run_start")
    assert start["start_step"] == 200 and start["resumed_from"] == str(good)
    assert evs[-1]["step"] == 250 and evs[-1]["status"] == "completed"


def test_resume_refuses_bad_targets_and_launches_nothing(tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / CONFIG_FILE).write_text("name: fake\n")
    s = fake_session(rd, tmp_path)
    res = s.resume()
    assert not res.ok and "nothing to resume from" in res.message
    pt = write_checkpoint(rd, 200)
    res = s.resume(target_step=150)
    assert not res.ok and "not beyond the checkpoint's step 200" in res.message
    pt.write_bytes(b"short")  # truncated
    res = s.resume(str(pt))
    assert not res.ok and "cannot resume" in res.message and "truncated" in res.message
    res = s.resume(str(tmp_path / "nope.pt"))
    assert not res.ok and "not a checkpoint name" in res.message
    assert not (rd / TRAIN_LOG).exists()  # nothing was launched


def test_multi_process_start_uses_torchrun():
    cmd, launcher = trainer_command("c.yaml", "logs/x", nproc=2, target_step=10)
    assert launcher == "torchrun"
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    i = cmd.index("--nproc-per-node")
    assert cmd[i + 1] == "2" and cmd[i + 2 : i + 5] == ["-m", "trainer", "train"]
    assert cmd[-2:] == ["--target-step", "10"]
    assert "--standalone" in cmd  # a local rendezvous: two runs never collide
