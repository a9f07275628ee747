"""Stopping the trainer: SIGTERM to the verified trainer and its ranks (never a process
group that may hold other processes), a wait, and SIGKILL only when asked.

Right after a start (launch.json, no PID file yet) the launched process gets the SIGTERM:
the trainer stops during its start-up (or, in its first few milliseconds, before its
handlers exist, simply exits); a torchrun agent also gets it and passes it on to the ranks
it has started (and starts no more)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import psutil

from nal_tui.core.control import proc
from nal_tui.core.control.results import StopResult, exit_name
from nal_tui.core.defaults import KILL_WAIT_S
from nal_tui.core.text import clean
from nal_tui.core.vocab import STOP_KILLED, STOP_NOT_RUNNING, STOP_STOPPED, STOP_TIMEOUT
from trainer.events import schema as ev
from trainer.events.parse import parse_lines
from trainer.rundir.layout import EVENTS, PID_FILE, TRAIN_LOG


def stop(
    rd: Path,
    st: proc.PidState,
    grace_s: float,
    kill_after_s: float | None = None,
    poll_s: float = 0.1,
) -> StopResult:
    """Stop the live trainer that ``st`` (``proc.trainer_state(rd)``) names; see
    RunSession.stop."""
    assert st.info is not None
    info = st.info
    res = StopResult(False, STOP_TIMEOUT, "", str(rd), pid=info.pid)
    offset = _size(rd / EVENTS)
    t0 = time.monotonic()
    try:
        agent, ranks = proc.family(info)
    except psutil.Error:
        return StopResult(True, STOP_NOT_RUNNING, f"pid {info.pid} already exited", str(rd))
    child = proc.CHILDREN.get(info.pid)  # this process launched it: its exit code is ours
    first = list(ranks)
    if agent is not None and agent.pid == info.pid:
        first.append(agent)  # launched torchrun: it passes SIGTERM on to its ranks
    res.signals.append(f"SIGTERM to {proc.signal_procs(first, signal.SIGTERM)}")
    everyone = ranks + ([agent] if agent is not None else [])
    limit = kill_after_s if kill_after_s is not None else grace_s
    killed = False
    while proc.any_alive(everyone + _late_ranks(agent, everyone)):
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
            res.signals.append(f"SIGKILL to {_kill(agent, ranks + _late_ranks(agent, ranks))}")
            killed = True
        time.sleep(poll_s)
    code = child.poll() if child is not None else None
    proc.CHILDREN.reap()
    if st.launched:
        proc.remove_launch_file(rd, info)
    res.waited_s = time.monotonic() - t0
    res.run_end = _run_end_after(rd / EVENTS, offset)
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
        if end is not None and str(end.get("reason", "")).endswith("during start-up"):
            res.message = (
                f"trainer pid {info.pid} stopped during start-up, before training began: "
                f"nothing was trained (run_end: {end['status']}, after {res.waited_s:.1f} s)"
            )
        elif end is not None:
            res.message = (
                f"trainer pid {info.pid} stopped at step {end['step']} (run_end: "
                f"{end['status']}) after {res.waited_s:.1f} s"
            )
        elif st.launched and _wrote_nothing(rd, offset):
            how = ""
            if code is not None:
                how = f" ({exit_name(code) if code < 0 else f'exit code {code}'})"
            res.message = (
                f"trainer pid {info.pid} stopped during start-up, before training began"
                f"{how}: nothing was trained (after {res.waited_s:.1f} s)"
            )
        else:
            res.message = (
                f"trainer pid {info.pid} exited after {res.waited_s:.1f} s without "
                f"writing run_end; see {rd / TRAIN_LOG}"
            )
    return res


def _late_ranks(agent: psutil.Process | None, known: list[psutil.Process]) -> list:
    """Ranks a torchrun agent started after the SIGTERM went out (it signals them itself)."""
    if agent is None:
        return []
    pids = {p.pid for p in known}
    return [p for p in proc.family_ranks(agent) if p.pid not in pids]


def _wrote_nothing(rd: Path, offset: int) -> bool:
    """No event written since ``offset`` and no PID file: the start-up never got that far."""
    return _size(rd / EVENTS) <= offset and not (rd / PID_FILE).exists()


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
    recs = [r for r in parse_lines(lines)[0] if r[ev.K_EVENT] == "run_end"]
    if not recs:
        return None
    return {k: clean(v) if isinstance(v, str) else v for k, v in recs[-1].items()}
