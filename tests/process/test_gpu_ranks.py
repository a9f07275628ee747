"""Which of our trainer's ranks run on which GPU: a real process tree shaped like torchrun's
(an agent whose command line runs the trainer, two rank processes with RANK in their
environment, started in reverse order), named by launch.json as ``nal-tui start`` names it;
the system sampler matches a fake NVML's process pids against them."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from nal_tui.core.control import proc
from nal_tui.core.gpu import GpuSampler
from nal_tui.core.services import SystemSampler
from tests.fakenvml import FakeGpu, make_nvml

AGENT = """\
import os, subprocess, sys, time
here = os.path.dirname(os.path.abspath(__file__))
kids = [subprocess.Popen([sys.executable, os.path.join(here, "nal-train"), "train"],
                         env={**os.environ, "RANK": str(r)}) for r in (1, 0)]
time.sleep(300)
"""
RANK = "import time\ntime.sleep(300)\n"


@pytest.fixture
def tree(tmp_path: Path):
    """(agent, {pid: rank}) of a torchrun-shaped tree of our trainer; killed afterwards."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "torchrun").write_text(AGENT)
    (bin_dir / "nal-train").write_text(RANK)
    agent = psutil.Popen([sys.executable, str(bin_dir / "torchrun"), "-m", "trainer", "train"])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            kids = agent.children()
            try:
                if len(kids) == 2 and all(proc.is_trainer_cmdline(k.cmdline()) for k in kids):
                    break
            except psutil.Error:
                pass
            time.sleep(0.02)
        kids = agent.children()
        assert len(kids) == 2
        ranks = {k.pid: int(k.environ()["RANK"]) for k in kids}
        yield agent, ranks
    finally:
        for k in agent.children():
            k.kill()
        agent.kill()
        agent.wait(60)


def test_rank_pids_from_the_agent_and_from_a_rank(tree) -> None:
    agent, ranks = tree
    me = proc.PidInfo(agent.pid, agent.create_time(), agent.cmdline(), time.time(), "/tmp")
    assert proc.rank_pids(me) == ranks
    r0 = next(pid for pid, r in ranks.items() if r == 0)
    rp = psutil.Process(r0)
    as_rank = proc.PidInfo(r0, rp.create_time(), rp.cmdline(), time.time(), "/tmp")
    assert proc.rank_pids(as_rank) == ranks  # a PID file written by rank 0 finds both


def test_the_sampler_puts_each_rank_on_its_gpu(tree, tmp_path: Path) -> None:
    agent, ranks = tree
    run_dir = tmp_path / "logs" / "run"
    run_dir.mkdir(parents=True)
    assert proc.write_launch_file(run_dir, agent.pid) is not None
    by_rank = {r: pid for pid, r in ranks.items()}
    nvml = make_nvml([FakeGpu(pids=[by_rank[0], 1]), FakeGpu(pids=[by_rank[1]])])
    sampler = SystemSampler(run_dir, tmp_path, lambda v, s: None, gpu=GpuSampler(lambda: nvml))
    view, st = sampler.sample()
    assert st.live and view.proc_pid == agent.pid
    assert [g.ranks for g in view.gpu.rows] == [(0,), (1,)]
    assert [g.other_procs for g in view.gpu.rows] == [1, 0]
