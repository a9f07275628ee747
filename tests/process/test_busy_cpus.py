"""The busy-machine warning measures real processes: a CPU hog that is not ours (not our
descendant) is named; our own children and the run's trainer are never counted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from nal_tui.core.services import BUSY_EVERY_S, SystemSampler
from trainer.config.threads import BusyMeter, busy_processes

MARK = "nal-busy-test-hog"
HOG = f"import time; e = time.time() + 120  # {MARK}\nwhile time.time() < e: pass"


@pytest.fixture
def hog():
    """A busy loop re-parented away from us (the shell that started it exits)."""
    out = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "$0" >/dev/null 2>&1 & echo $!', HOG],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    pid = int(out.stdout.strip())
    yield pid
    try:
        p = psutil.Process(pid)
        if any(MARK in a for a in p.cmdline()):  # still our hog, not a reused pid
            os.kill(pid, signal.SIGKILL)
    except psutil.Error:
        pass


def test_a_busy_process_that_is_not_ours_is_named(hog):
    got = busy_processes(sample_s=1.0, min_pct=5.0)
    mine = [b for b in got if b.pid == hog]
    assert mine and "python" in mine[0].name and mine[0].cpu_pct >= 5.0
    assert all(b.pid != os.getpid() for b in got)


def test_excluded_processes_and_our_children_are_not_counted(hog):
    child = subprocess.Popen([sys.executable, "-c", HOG])
    try:
        got = busy_processes(exclude=[hog], sample_s=1.0, min_pct=5.0)
        assert {hog, child.pid}.isdisjoint(b.pid for b in got)
        assert BusyMeter(min_pct=0.0).sample() == []  # one look measures nothing yet
    finally:
        child.kill()
        child.wait()


def test_the_dashboard_sampler_names_the_hog_and_looks_every_few_seconds(hog, tmp_path):
    """The system panel's figures: the hog appears in ``SystemView.busy``; between two
    looks (each reads every process) the samples keep the last look's list."""
    sampler = SystemSampler(None, tmp_path, lambda *a: None)
    deadline = time.monotonic() + 60
    seen: list = []
    while time.monotonic() < deadline:
        seen = [b for b in sampler.sample()[0].busy if b.pid == hog]
        if seen:
            break
        time.sleep(0.5)
    assert seen and seen[0].cpu_pct >= 5.0
    looked = sampler._busy_seen[0]
    sampler.sample()
    if time.monotonic() - looked < BUSY_EVERY_S:  # the next look is not due yet
        assert sampler._busy_seen[0] == looked
