"""Finding runs under ``logs/`` and their quick status (tail of the event log + PID file).

Torch-free and cheap: reads at most the last ``TAIL_BYTES`` of each ``events.jsonl``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run statuses and PID-file states: the same strings (and the same rule, derive_status) as
# the dashboard's reducer.
from nal_tui.state import (
    DEFAULT_STALE_AFTER_S,
    PID_GARBLED,
    PID_LIVE,
    PID_NONE,
    PID_STALE,
    STATUS_COMPLETED,
    STATUS_CRASHED,
    STATUS_NOT_STARTED,
    STATUS_RUNNING,
    STATUS_STALE,
    STATUS_STOPPED,
    derive_status,
)
from trainer import events as ev
from trainer import rundir

__all__ = [
    "PID_GARBLED",
    "PID_LIVE",
    "PID_NONE",
    "PID_STALE",
    "STATUS_COMPLETED",
    "STATUS_CRASHED",
    "STATUS_NOT_STARTED",
    "STATUS_RUNNING",
    "STATUS_STALE",
    "STATUS_STOPPED",
    "PidState",
    "RunInfo",
    "RunStatus",
    "find_runs",
    "is_run_dir",
    "latest_run",
    "pid_state",
    "read_run_status",
]

TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class PidState:
    """What the PID file says and whether it names a live trainer."""

    state: str  # one of PID_*
    info: rundir.PidInfo | None
    message: str

    @property
    def live(self) -> bool:
        return self.state == PID_LIVE


@dataclass(frozen=True)
class RunStatus:
    """Quick status of one run directory."""

    status: str  # one of STATUS_*
    step: int | None
    target_step: int | None
    pid: PidState
    last_event: str | None
    last_event_t: float | None
    run_end: dict[str, Any] | None
    reason: str = ""  # why the status is what it is (state.derive_status)


@dataclass(frozen=True)
class RunInfo:
    """One run found under the logs directory."""

    name: str
    path: Path
    status: str
    step: int | None
    target_step: int | None
    mtime: float


def pid_state(run_dir: str | os.PathLike[str]) -> PidState:
    """Read the PID file and verify its process with psutil (pid, create time, cmdline)."""
    path = Path(run_dir) / rundir.PID_FILE
    try:
        info = rundir.read_pid_file(run_dir)
    except rundir.PidFileError as e:
        return PidState(PID_GARBLED, None, f"{e}; remove {path} if no trainer is running")
    if info is None:
        return PidState(PID_NONE, None, "no PID file")
    if rundir.process_matches(info):
        return PidState(PID_LIVE, info, f"trainer pid {info.pid} is running")
    return PidState(
        PID_STALE,
        info,
        f"{path} names pid {info.pid}, which is no longer this run's trainer "
        f"(stale PID file; remove it to clear)",
    )


def _tail_records(path: Path, nbytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    """Parsed records from the last ``nbytes`` of the log (first partial line dropped)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - nbytes)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # cut mid-line
    out = []
    for line in lines:
        if not line.strip():
            continue
        try:
            out.append(ev.loads(line))
        except ev.EventError:
            continue  # torn or garbled lines are the follower's business, not status
    return out


def read_run_status(
    run_dir: str | os.PathLike[str],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> RunStatus:
    """Status from the last lifecycle event in the log tail and the PID file (psutil).

    The rule is ``nal_tui.state.derive_status``: the same one the dashboard applies.
    """
    run_dir = Path(run_dir)
    recs = _tail_records(run_dir / rundir.EVENTS)
    pid = pid_state(run_dir)
    step = target = None
    lifecycle: dict[str, Any] | None = None
    for rec in reversed(recs):
        name = rec.get(ev.K_EVENT)
        if step is None and isinstance(rec.get("step"), int):
            step = rec["step"]
        if target is None and name == "run_start" and isinstance(rec.get("target_step"), int):
            target = rec["target_step"]
        if lifecycle is None and name in ("run_start", "run_end"):
            lifecycle = rec
        if step is not None and lifecycle is not None and target is not None:
            break
    if target is None and recs:
        target = _target_from_head(run_dir / rundir.EVENTS)
    last = recs[-1] if recs else None
    run_end = lifecycle if lifecycle is not None and lifecycle[ev.K_EVENT] == "run_end" else None
    last_t = float(last[ev.K_TIME]) if last else None
    now = time.time() if now is None else now
    status, reason = derive_status(
        has_events=bool(recs),
        end_status=None if run_end is None else str(run_end.get("status", "")),
        pid_state=pid.state,
        since_last_event=None if last_t is None else max(0.0, now - last_t),
        stale_after_s=stale_after_s,
        end_t=None if run_end is None else float(run_end[ev.K_TIME]),
        live_since=pid.info.started if pid.live and pid.info is not None else None,
    )
    if pid.state in (PID_STALE, PID_GARBLED):
        reason = f"{reason}; {pid.message}"
    return RunStatus(
        status=status,
        step=step,
        target_step=target,
        pid=pid,
        last_event=last[ev.K_EVENT] if last else None,
        last_event_t=last_t,
        run_end=run_end,
        reason=reason,
    )


def _target_from_head(path: Path, chunk: int = 1 << 20) -> int | None:
    """The latest run_start's target when the tail holds none: search backwards in chunks."""
    needle = b'"run_start"'
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            carry = b""
            while end > 0:
                start = max(0, end - chunk)
                f.seek(start)
                buf = f.read(end - start) + carry
                i = buf.rfind(needle)
                while i >= 0:
                    a = buf.rfind(b"\n", 0, i) + 1
                    b = buf.find(b"\n", i)
                    if a > 0 or start == 0:  # the whole line is inside this buffer
                        try:
                            rec = ev.loads(buf[a:] if b < 0 else buf[a:b])
                        except ev.EventError:
                            rec = {}
                        if isinstance(rec.get("target_step"), int):
                            return rec["target_step"]
                    i = buf.rfind(needle, 0, i)
                # Keep the partial first line so a record split across chunks is found whole.
                nl = buf.find(b"\n")
                carry = buf[:nl] if nl >= 0 else buf
                end = start
    except OSError:
        return None
    return None


def is_run_dir(path: Path) -> bool:
    """A run is a directory holding an event log or a resolved config."""
    return (path / rundir.EVENTS).is_file() or (path / rundir.CONFIG_FILE).is_file()


def _mtime(path: Path) -> float:
    for p in (path / rundir.EVENTS, path / rundir.CONFIG_FILE, path):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def find_runs(logs_dir: str | os.PathLike[str]) -> list[RunInfo]:
    """Every run directly under ``logs_dir``, newest first."""
    root = Path(logs_dir)
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    runs = []
    for p in entries:
        if not is_run_dir(p):
            continue
        st = read_run_status(p)
        runs.append(
            RunInfo(
                name=p.name,
                path=p,
                status=st.status,
                step=st.step,
                target_step=st.target_step,
                mtime=_mtime(p),
            )
        )
    runs.sort(key=lambda r: r.mtime, reverse=True)
    return runs


def latest_run(logs_dir: str | os.PathLike[str]) -> RunInfo | None:
    """The most recently modified run under ``logs_dir``, or None."""
    root = Path(logs_dir)
    try:
        dirs = [p for p in root.iterdir() if p.is_dir() and is_run_dir(p)]
    except OSError:
        return None
    if not dirs:
        return None
    best = max(dirs, key=_mtime)
    st = read_run_status(best)
    return RunInfo(
        name=best.name,
        path=best,
        status=st.status,
        step=st.step,
        target_step=st.target_step,
        mtime=_mtime(best),
    )
