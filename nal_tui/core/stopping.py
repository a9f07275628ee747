"""Stopping the trainer: SIGTERM to the verified trainer and its ranks (never a process
group that may hold other processes), a wait, and SIGKILL only when asked."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psutil

from trainer import events as ev
from trainer import rundir

from . import proc
from .defaults import KILL_WAIT_S
from .results import StopResult
from .text import clean
from .vocab import STOP_KILLED, STOP_NOT_RUNNING, STOP_STOPPED, STOP_TIMEOUT


def stop(
    rd: Path,
    st: proc.PidState,
    grace_s: float,
    kill_after_s: float | None = None,
    poll_s: float = 0.1,
) -> StopResult:
    """Stop the live trainer that ``st`` (``proc.pid_state(rd)``) names; see RunSession.stop."""
    assert st.info is not None
    info = st.info
    res = StopResult(False, STOP_TIMEOUT, "", str(rd), pid=info.pid)
    offset = _size(rd / rundir.EVENTS)
    t0 = time.monotonic()
    try:
        agent, ranks = proc.family(info)
    except psutil.Error:
        return StopResult(True, STOP_NOT_RUNNING, f"pid {info.pid} already exited", str(rd))
    res.signals.append(f"SIGTERM to {proc.signal_procs(ranks, signal.SIGTERM)}")
    everyone = ranks + ([agent] if agent is not None else [])
    limit = kill_after_s if kill_after_s is not None else grace_s
    killed = False
    while proc.any_alive(everyone):
        proc.CHILDREN.reap()
        elapsed = time.monotonic() - t0
        if killed and elapsed > limit + KILL_WAIT_S:
            res.waited_s = elapsed
            res.message = f"pid {info.pid} survived SIGKILL for {KILL_WAIT_S:.0f} s"
            return res
        if not killed and elapsed >= limit:
            if kill_after_s is None:
                res.waited_s = elapsed
                res.message = (
                    f"trainer pid {info.pid} is still running {elapsed:.0f} s after "
                    "SIGTERM (it may be finishing a step or a checkpoint); wait, or "
                    f"force it with: nal-tui stop --run-dir {rd} --kill-after 0"
                )
                return res
            res.signals.append(f"SIGKILL to {_kill(agent, ranks)}")
            killed = True
        time.sleep(poll_s)
    proc.CHILDREN.reap()
    res.waited_s = time.monotonic() - t0
    res.run_end = _run_end_after(rd / rundir.EVENTS, offset)
    res.ok = True
    if killed:
        res.status = STOP_KILLED
        res.message = (
            f"trainer pid {info.pid} killed (SIGKILL) after {limit:.0f} s; no final "
            "checkpoint was written; resume uses the latest verified one"
        )
    else:
        res.status = STOP_STOPPED
        end = res.run_end
        res.message = (
            f"trainer pid {info.pid} stopped at step {end['step']} (run_end: "
            f"{end['status']}) after {res.waited_s:.1f} s"
            if end is not None
            else f"trainer pid {info.pid} exited after {res.waited_s:.1f} s without "
            f"writing run_end; see {rd / rundir.TRAIN_LOG}"
        )
    return res


def _kill(agent: psutil.Process | None, ranks: list[psutil.Process]) -> list[int]:
    targets = ranks + proc.descendants(ranks) + ([agent] if agent is not None else [])
    return proc.signal_procs(targets, signal.SIGKILL)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run_end_after(path: Path, offset: int) -> dict[str, Any] | None:
    """The last run_end written after byte ``offset`` of the event log."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(64 << 20)
    except OSError:
        return None
    lines = [line for line in data.split(b"\n") if b"run_end" in line]
    recs = [r for r in ev.parse_lines(lines)[0] if r[ev.K_EVENT] == "run_end"]
    if not recs:
        return None
    return {k: clean(v) if isinstance(v, str) else v for k, v in recs[-1].items()}
