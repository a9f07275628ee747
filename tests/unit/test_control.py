"""nal_tui.control with real processes: a fake trainer (same PID file and events) and, in
the slow tests, the real ``nal-train`` on the demo config."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from nal_tui import control
from nal_tui.runs import read_run_status
from trainer import rundir

FAKE = Path(__file__).with_name("fake_trainer.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake(monkeypatch):
    """Make control launch the fake trainer; kill whatever it started at the end."""
    monkeypatch.setattr(
        control, "trainer_base_command", lambda: ([sys.executable, str(FAKE)], "fake")
    )
    started: list[int] = []
    real_popen = subprocess.Popen

    def popen(*a, **kw):
        p = real_popen(*a, **kw)
        started.append(p.pid)
        return p

    monkeypatch.setattr(control.subprocess, "Popen", popen)
    yield started
    for pid in started:
        try:
            os.killpg(pid, signal.SIGKILL)  # start_new_session: pgid == pid
        except ProcessLookupError:
            pass
    control.reap_children()


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: fake\n")
    return p


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / rundir.EVENTS).read_text().splitlines()]


def wait_for(pred, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def make_checkpoint(run_dir: Path, step: int, payload: bytes = b"weights") -> Path:
    """A complete checkpoint in the trainer's on-disk format (.pt + manifest written last)."""
    pt, man = rundir.checkpoint_paths(run_dir, step)
    pt.parent.mkdir(parents=True, exist_ok=True)
    pt.write_bytes(payload)
    m = rundir.Manifest(
        step=step,
        epoch=0,
        created=time.time(),
        milestone=False,
        files=(rundir.ManifestFile(pt.name, len(payload), hashlib.sha256(payload).hexdigest()),),
    )
    man.write_text(m.to_json())
    return pt


def test_start_detached_then_stop_gracefully(fake, config, tmp_path):
    rd = tmp_path / "run"
    res = control.start_run(config, rd, target_step=100000)
    assert res.ok, res.message
    assert res.launcher == "fake" and res.trainer_pid == res.pid
    # Detached: its own session and process group, so it outlives the dashboard.
    assert os.getsid(res.pid) == res.pid and os.getpgid(res.pid) == res.pid
    assert "--target-step" in res.command and "100000" in res.command
    assert wait_for(lambda: any(e["event"] == "step" for e in events(rd)))
    assert "fake trainer: mode normal" in (rd / rundir.TRAIN_LOG).read_text()
    assert read_run_status(rd).status == "running"

    stop = control.stop_run(rd, grace_s=10)
    assert stop.ok and stop.status == control.STOP_STOPPED, stop.message
    assert stop.run_end is not None and stop.run_end["status"] == "stopped"
    assert not psutil.pid_exists(res.pid) or psutil.Process(res.pid).status() == "zombie"
    assert events(rd)[-1]["event"] == "run_end"
    assert read_run_status(rd).status == "stopped"
    assert control.trainer_process(rd) is None


def test_restarted_dashboard_reattaches(fake, config, tmp_path):
    rd = tmp_path / "run"
    res = control.start_run(config, rd)
    assert res.ok, res.message
    # A separate process (a restarted dashboard) finds the trainer through the PID file.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from nal_tui.control import trainer_process; "
            "p = trainer_process(sys.argv[1]); print(p.pid if p else None)",
            str(rd),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert out.stdout.strip() == str(res.pid)
    assert control.stop_run(rd, grace_s=10).status == control.STOP_STOPPED


def test_start_refuses_when_trainer_already_running(fake, config, tmp_path):
    rd = tmp_path / "run"
    first = control.start_run(config, rd)
    assert first.ok
    second = control.start_run(config, rd)
    assert not second.ok and second.pid is None
    assert f"pid {first.pid}" in second.message and "already running" in second.message
    control.stop_run(rd, grace_s=10)


def test_start_reports_trainer_exit_with_log_tail(fake, config, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "fail")
    res = control.start_run(config, tmp_path / "run")
    assert not res.ok and res.exit_code == 2
    assert "usage error" in res.message and "failing on purpose" in res.message


def test_start_with_bad_config_and_no_run_dir_names_the_key(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("train: {batch_sise: 4}\n")
    res = control.start_run(cfg, None, logs_dir=tmp_path / "logs")
    assert not res.ok and "train.batch_sise" in res.message and str(cfg) in res.message


def test_stop_without_sigkill_times_out_then_kill_after(fake, config, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_TRAINER_MODE", "ignore_term")
    rd = tmp_path / "run"
    res = control.start_run(config, rd)
    assert res.ok, res.message
    t = control.stop_run(rd, grace_s=0.5)
    assert not t.ok and t.status == control.STOP_TIMEOUT and "--kill-after" in t.message
    assert psutil.Process(res.pid).is_running()  # no SIGKILL unless asked
    k = control.stop_run(rd, kill_after_s=0.3)
    assert k.ok and k.status == control.STOP_KILLED
    assert any("SIGKILL" in s for s in k.signals)
    control.reap_children()
    assert not psutil.pid_exists(res.pid)
    assert read_run_status(rd).status in ("crashed", "stale")  # no run_end after SIGKILL


@pytest.fixture
def sleeper():
    p = subprocess.Popen(["sleep", "60"])
    yield p
    p.kill()
    p.wait()


def _write_pid_file(rd: Path, **fields) -> None:
    rd.mkdir(parents=True, exist_ok=True)
    d = {
        "pid": 1,
        "create_time": 0.0,
        "cmdline": ["nal-train", "train"],
        "started": time.time(),
        "run_dir": str(rd),
    }
    d.update(fields)
    (rd / rundir.PID_FILE).write_text(json.dumps(d))


@pytest.mark.parametrize("variant", ["other_cmdline", "other_create_time"])
def test_pid_reuse_is_refused_and_process_survives(tmp_path, sleeper, variant):
    rd = tmp_path / "run"
    proc = psutil.Process(sleeper.pid)
    if variant == "other_cmdline":  # the pid was reused by an unrelated program
        _write_pid_file(
            rd,
            pid=sleeper.pid,
            create_time=proc.create_time(),
            cmdline=[sys.executable, "-m", "trainer", "train"],
        )
    else:  # same command line, but a different process started it (older create time)
        _write_pid_file(
            rd, pid=sleeper.pid, create_time=proc.create_time() - 100, cmdline=proc.cmdline()
        )
    assert control.trainer_process(rd) is None
    res = control.stop_run(rd, grace_s=0.2, kill_after_s=0.1)
    assert not res.ok and res.status == control.STOP_STALE and res.signals == []
    assert "stale" in res.message
    with pytest.raises(control.ControlError):
        control.send_kill(rd)
    time.sleep(0.1)
    assert sleeper.poll() is None and proc.status() != psutil.STATUS_ZOMBIE


def test_garbled_pid_file_is_reported_never_acted_on(tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / rundir.PID_FILE).write_text('{"pid": 12')
    res = control.stop_run(rd)
    assert not res.ok and res.status == control.STOP_STALE and "not valid JSON" in res.message
    assert read_run_status(rd).pid.state == "garbled"


def test_stop_with_no_trainer(tmp_path):
    res = control.stop_run(tmp_path)
    assert res.ok and res.status == control.STOP_NOT_RUNNING


def test_resume_latest_verified_with_new_target(fake, tmp_path):
    rd = tmp_path / "run"
    (rd).mkdir()
    (rd / rundir.CONFIG_FILE).write_text("name: fake\n")
    make_checkpoint(rd, 100)
    good = make_checkpoint(rd, 200)
    bad = make_checkpoint(rd, 300)
    bad.write_bytes(b"weightX")  # same size, different hash: corrupt
    res = control.resume_run(rd, target_step=250)
    assert res.ok, res.message
    assert res.resume == str(good) and "skipped ckpt_00000300.pt" in res.message
    assert res.command[res.command.index("--resume") + 1] == str(good)
    assert res.command[res.command.index("--target-step") + 1] == "250"
    assert wait_for(lambda: events(rd)[-1]["event"] == "run_end")
    start = next(e for e in events(rd) if e["event"] == "run_start")
    assert start["start_step"] == 200 and start["resumed_from"] == str(good)
    assert events(rd)[-1]["step"] == 250 and events(rd)[-1]["status"] == "completed"


def test_resume_refuses_bad_targets(fake, tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / rundir.CONFIG_FILE).write_text("name: fake\n")
    res = control.resume_run(rd)
    assert not res.ok and "no complete, verified checkpoint" in res.message
    pt = make_checkpoint(rd, 200)
    res = control.resume_run(rd, target_step=150)
    assert not res.ok and "not beyond the checkpoint's step 200" in res.message
    pt.write_bytes(b"short")  # truncated
    res = control.resume_run(rd, checkpoint=str(pt))
    assert not res.ok and "truncated" in res.message
    res = control.resume_run(rd, checkpoint=str(tmp_path / "nope.pt"))
    assert not res.ok and "not a checkpoint name" in res.message
    assert not (rd / rundir.TRAIN_LOG).exists()  # nothing was launched


def test_multi_process_start_uses_torchrun():
    cmd, launcher = control.trainer_command("c.yaml", "logs/x", nproc=2, target_step=10)
    assert launcher == "torchrun"
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    i = cmd.index("--nproc-per-node")
    assert cmd[i + 1] == "2" and cmd[i + 2 : i + 5] == ["-m", "trainer", "train"]
    assert cmd[-2:] == ["--target-step", "10"]


# --------------------------------------------------------------- the real trainer


def _wait_status(rd: Path, statuses: tuple[str, ...], timeout: float) -> str:
    st = ""

    def done() -> bool:
        nonlocal st
        st = read_run_status(rd).status
        return st in statuses

    wait_for(done, timeout)
    return st


@pytest.mark.slow
def test_real_trainer_start_stop_resume(tmp_path):
    rd = tmp_path / "demo"
    cfg = REPO / "config" / "demo.yaml"
    res = control.start_run(cfg, rd, target_step=2000, wait_s=120)
    try:
        assert res.ok and res.trainer_pid is not None, res.message
        assert res.launcher in ("nal-train", "python -m trainer")
        assert wait_for(lambda: (read_run_status(rd).step or 0) >= 2, 180)
        stop = control.stop_run(rd, grace_s=120)
        assert stop.ok and stop.status == control.STOP_STOPPED, stop.message
        assert stop.run_end is not None and stop.run_end["status"] == "stopped"
        stopped_at = stop.run_end["step"]
        info, _ = control.find_checkpoint(rd)  # the stop saved a verified checkpoint
        assert info.step == stopped_at
        res2 = control.resume_run(rd, target_step=stopped_at + 2, wait_s=120)
        assert res2.ok, res2.message
        assert _wait_status(rd, ("completed", "failed", "crashed"), 240) == "completed"
        assert read_run_status(rd).step == stopped_at + 2
    finally:
        control.stop_run(rd, grace_s=60, kill_after_s=60)


@pytest.mark.slow
def test_real_trainer_two_ranks_stop_reaches_every_rank(tmp_path):
    rd = tmp_path / "demo2"
    res = control.start_run(
        REPO / "config" / "demo.yaml", rd, nproc=2, target_step=2000, wait_s=180
    )
    try:
        assert res.ok and res.launcher == "torchrun" and res.nproc == 2, res.message
        # The PID file names rank 0, a child of the torchrun agent we launched.
        assert res.trainer_pid is not None and res.trainer_pid != res.pid
        assert wait_for(lambda: (read_run_status(rd).step or 0) >= 1, 240)
        agent = psutil.Process(res.pid)
        ranks = agent.children()
        assert len(ranks) == 2 and res.trainer_pid in [r.pid for r in ranks]
        # torchrun puts each rank in its own session: stop must reach each rank's group.
        assert {os.getpgid(r.pid) for r in ranks} == {r.pid for r in ranks}
        group = [agent, *ranks]
        stop = control.stop_run(rd, grace_s=120)
        assert stop.ok and stop.status == control.STOP_STOPPED, stop.message
        assert stop.run_end is not None and stop.run_end["status"] == "stopped"
        control.reap_children()
        assert wait_for(
            lambda: not any(p.is_running() and p.status() != "zombie" for p in group), 30
        )
    finally:
        control.stop_run(rd, grace_s=60, kill_after_s=60)
