"""RunSession with the real ``nal-train`` (one process, and two ranks under torchrun):
start detached, stop with SIGTERM (a verified checkpoint), resume to a new target.
Ported from main's test_control; slow (real training on the demo corpus)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from nal_tui.core import vocab as V
from nal_tui.core.control import proc
from nal_tui.core.control.session import RunSession
from tests.conftest import demo_config_dict, write_config
from tests.factory import kill_started, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _cleanup():
    yield
    kill_started()


def _config(tmp_path: Path, corpus: Path) -> Path:
    sections = {"log": {"val_every": 1000}, "checkpoint": {"every": 1000, "milestone_every": 0}}
    return write_config(tmp_path / "demo.yaml", demo_config_dict(corpus, **sections))


def _step(s: RunSession) -> int:
    return s.status().step or 0


def test_real_trainer_start_stop_resume(demo_corpus: Path, tmp_path: Path) -> None:
    s = RunSession(tmp_path / "demo", logs_dir=tmp_path)
    res = s.start(_config(tmp_path, demo_corpus), target_step=2000, wait_s=240)
    try:
        assert res.ok and res.trainer_pid is not None, res.message
        assert res.launcher in ("nal-train", "python -m trainer")
        assert wait_for(lambda: _step(s) >= 2, 300)
        stop = s.stop(grace_s=240)
        assert stop.ok and stop.status == V.STOP_STOPPED, stop.message
        assert stop.run_end is not None and stop.run_end["status"] == "stopped"
        stopped_at = stop.run_end["step"]
        assert s.latest().step == stopped_at  # the stop saved a verified checkpoint
        res2 = s.resume(target_step=stopped_at + 2, wait_s=240)
        assert res2.ok, res2.message
        assert wait_for(lambda: s.status().status in V.ENDED_STATUSES, 400)
        st = s.status()
        assert st.status == V.STATUS_COMPLETED and st.step == stopped_at + 2, st
    finally:
        s.stop(grace_s=60, kill_after_s=60)


def test_real_trainer_two_ranks_stop_reaches_every_rank(demo_corpus: Path, tmp_path: Path) -> None:
    s = RunSession(tmp_path / "demo2", logs_dir=tmp_path)
    res = s.start(_config(tmp_path, demo_corpus), nproc=2, target_step=2000, wait_s=300)
    try:
        assert res.ok and res.launcher == "torchrun" and res.nproc == 2, res.message
        # The PID file names rank 0, a child of the torchrun agent we launched.
        assert res.trainer_pid is not None and res.trainer_pid != res.pid
        assert wait_for(lambda: _step(s) >= 1, 400)
        agent = psutil.Process(res.pid)
        ranks = agent.children()
        assert len(ranks) == 2 and res.trainer_pid in [r.pid for r in ranks]
        # torchrun puts each rank in its own session; stop signals each rank itself.
        assert {os.getpgid(r.pid) for r in ranks} == {r.pid for r in ranks}
        group = [agent, *ranks]
        stop = s.stop(grace_s=240)
        assert stop.ok and stop.status == V.STOP_STOPPED, stop.message
        assert stop.run_end is not None and stop.run_end["status"] == "stopped"
        proc.CHILDREN.reap()
        assert wait_for(
            lambda: not any(p.is_running() and p.status() != "zombie" for p in group), 60
        )
    finally:
        s.stop(grace_s=60, kill_after_s=60)
