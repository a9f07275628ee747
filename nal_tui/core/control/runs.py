"""Finding runs under ``logs/`` and a run's quick status (log tail + PID file).

Cheap: reads at most the last ``TAIL_BYTES`` of each ``events.jsonl`` (and, when the tail
holds no run_start, searches backwards for the target step).
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nal_tui.core.control.proc import PidState, trainer_state
from nal_tui.core.control.status import (
    DEFAULT_STALE_AFTER_S,
    StatusInputs,
    derive_status,
    refused_start,
)
from nal_tui.core.text import clean
from nal_tui.core.vocab import PID_GARBLED, PID_STALE
from trainer.events import schema as ev
from trainer.events.parse import parse_lines
from trainer.rundir.layout import CONFIG_FILE, EVENTS, TRAIN_LOG

TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class RunStatus:
    """Quick status of one run directory."""

    status: str  # vocab.STATUS_*
    reason: str
    step: int | None
    target_step: int | None
    pid: PidState
    last_event: str | None
    last_event_t: float | None
    run_end: dict[str, Any] | None


@dataclass(frozen=True)
class RunInfo:
    """One run found under the logs directory."""

    name: str
    path: Path
    status: str
    step: int | None
    target_step: int | None
    mtime: float


def _tail_records(path: Path, nbytes: int = TAIL_BYTES) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            start = max(0, size - nbytes)
            f.seek(start)
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")[:-1]  # only complete lines
    if start > 0 and lines:
        lines = lines[1:]  # cut mid-line
    return parse_lines(lines)[0]


def _target_backwards(path: Path, chunk: int = 1 << 20, limit: int = 64 << 20) -> int | None:
    """The latest run_start's target when the tail holds none: search backwards."""
    needle = b'"run_start"'
    try:
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END)
            floor = max(0, end - limit)
            carry = b""
            while end > floor:
                start = max(floor, end - chunk)
                f.seek(start)
                buf = f.read(end - start) + carry
                i = buf.rfind(needle)
                while i >= 0:
                    a = buf.rfind(b"\n", 0, i) + 1
                    b = buf.find(b"\n", i)
                    if a > 0 or start == 0:
                        recs = parse_lines([buf[a:] if b < 0 else buf[a:b]])[0]
                        if recs and recs[0][ev.K_EVENT] == "run_start":
                            return recs[0]["target_step"]
                    i = buf.rfind(needle, 0, i)
                nl = buf.find(b"\n")
                carry = buf[:nl] if nl >= 0 else buf
                end = start
    except OSError:
        return None
    return None


REFUSED_NOTE = "a later start was refused"  # read_status's reason names a refused start so


def read_status(
    run_dir: str | os.PathLike[str],
    *,
    now: float | None = None,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> RunStatus:
    """Status from the last lifecycle event in the log tail and the PID file, by
    ``status.derive_status``: the rule the dashboard applies."""
    run_dir = Path(run_dir)
    recs = _tail_records(run_dir / EVENTS)
    pid = trainer_state(run_dir)
    step = target = None
    lifecycles: list[dict[str, Any]] = []  # run_start/run_end records of the tail, newest first
    for rec in reversed(recs):
        name = rec[ev.K_EVENT]
        if step is None and isinstance(rec.get("step"), int):
            step = rec["step"]
        if target is None and name == "run_start":
            target = rec["target_step"]
        if name in ("run_start", "run_end"):
            lifecycles.append(rec)
    refused = None  # the newest start refused after the run's end: the run_end before says more
    while len(lifecycles) > 1 and refused_start(
        lifecycles[1][ev.K_EVENT], lifecycles[0].get("status", "")
    ):
        refused = refused or lifecycles[0]
        lifecycles.pop(0)
    lifecycle = lifecycles[0] if lifecycles else None
    if target is None and recs:
        target = _target_backwards(run_dir / EVENTS)
    last = recs[-1] if recs else None
    run_end = lifecycle if lifecycle is not None and lifecycle[ev.K_EVENT] == "run_end" else None
    last_t = float(last[ev.K_TIME]) if last else None
    now = time.time() if now is None else now
    status, reason = derive_status(
        StatusInputs(
            has_events=bool(recs),
            end_status=None if run_end is None else run_end["status"],
            end_t=None if run_end is None else float(run_end[ev.K_TIME]),
            pid_state=pid.state,
            pid_started=pid.info.started if pid.info is not None else None,
            since_last_event=None if last_t is None else max(0.0, now - last_t),
            stale_after_s=stale_after_s,
        )
    )
    if pid.state in (PID_STALE, PID_GARBLED):
        reason = f"{reason}; {pid.message}"
    if refused is not None:
        reason = (
            f"{reason}; {REFUSED_NOTE} ({clean(refused['reason'], 200)}, "
            f"exit code {refused['exit_code']}): the run is unchanged"
        )
    if run_end is not None:
        run_end = {k: clean(v) if isinstance(v, str) else v for k, v in run_end.items()}
    return RunStatus(
        status=status,
        reason=reason,
        step=step,
        target_step=target,
        pid=pid,
        last_event=last[ev.K_EVENT] if last else None,
        last_event_t=last_t,
        run_end=run_end,
    )


def is_run_dir(path: Path) -> bool:
    """A run is a directory holding an event log, a resolved config, or the trainer's
    output (a start that stopped before the trainer wrote anything else: "not started")."""
    return any((path / f).is_file() for f in (EVENTS, CONFIG_FILE, TRAIN_LOG))


def _mtime(path: Path) -> float:
    for p in (path / EVENTS, path / CONFIG_FILE, path):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def _info(p: Path) -> RunInfo:
    st = read_status(p)
    return RunInfo(clean(p.name, 80), p, st.status, st.step, st.target_step, _mtime(p))


def find_runs(logs_dir: str | os.PathLike[str]) -> list[RunInfo]:
    """Every run directly under ``logs_dir``, newest first."""
    try:
        entries = sorted(p for p in Path(logs_dir).iterdir() if p.is_dir())
    except OSError:
        return []
    runs = [_info(p) for p in entries if is_run_dir(p)]
    runs.sort(key=lambda r: r.mtime, reverse=True)
    return runs


def latest_run(logs_dir: str | os.PathLike[str]) -> RunInfo | None:
    """The most recently modified run under ``logs_dir``, or None."""
    try:
        dirs = [p for p in Path(logs_dir).iterdir() if p.is_dir() and is_run_dir(p)]
    except OSError:
        return None
    return _info(max(dirs, key=_mtime)) if dirs else None


def similar_runs(run_dir: Path, logs_dir: str | os.PathLike[str]) -> list[Path]:
    """Runs whose directory name looks like ``run_dir``'s (a typo), at most three."""
    found = {p for d in (Path(logs_dir), run_dir.parent) for p in _run_dirs(d)}
    names = sorted({p.name for p in found})
    close = set(difflib.get_close_matches(run_dir.name, names, n=3, cutoff=0.6))
    return sorted(p for p in found if p.name in close)[:3]


def _run_dirs(d: Path) -> list[Path]:
    try:
        return [p for p in d.iterdir() if p.is_dir() and is_run_dir(p)]
    except OSError:
        return []
