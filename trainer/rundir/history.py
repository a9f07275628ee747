"""What a run directory already holds: the live branch's last step (from the event log
read backwards, and the checkpoints), the fresh-start refusal and a free sibling to suggest."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.events.codec import loads
from trainer.events.schema import EventError
from trainer.rundir.checkpoints import CheckpointInfo, list_abandoned, list_checkpoints
from trainer.rundir.layout import ABANDONED_DIR, CHECKPOINTS_DIR, EVENTS, PID_FILE


@dataclass(frozen=True)
class RunHistory:
    """What a run directory already holds (see :func:`run_history`)."""

    last_step: int  # the live branch's last step (event log, or the newest live checkpoint)
    latest: CheckpointInfo | None  # newest complete live checkpoint (not hashed)
    n_checkpoints: int  # complete live checkpoints
    n_abandoned: int  # checkpoints moved aside
    branch: str | None  # branch of the newest complete live checkpoint
    last_status: str | None  # the final run_end's status; None when running or crashed


def _reverse_records(path: Path, block: int = 1 << 16) -> Iterable[dict[str, Any]]:
    """Parsed event records from the end of the log backwards; garbled lines are skipped."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; this is a generator
    except (FileNotFoundError, NotADirectoryError):
        return
    with f:
        pos = f.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            n = min(block, pos)
            pos -= n
            f.seek(pos)
            lines = (f.read(n) + rest).split(b"\n")
            rest = lines[0]  # may continue in the previous block
            for line in reversed(lines[1:]):
                if line.strip():
                    try:
                        yield loads(line)
                    except EventError:
                        continue
        if rest.strip():
            try:
                yield loads(rest)
            except EventError:
                pass


def _int_field(rec: dict[str, Any], key: str) -> int | None:
    v = rec.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def log_last_step(events_path: str | os.PathLike[str]) -> tuple[int, str | None, bool]:
    """(last step of the live branch, final run_end status or None, any record at all).

    Reader rule (docs/events.md): a ``run_start`` begins at its ``start_step``; steps logged
    before it beyond that point belong to an abandoned branch. So only the records after the
    last ``run_start`` (or after the last step/checkpoint record) are read, from the end.
    """
    last = 0
    status: str | None = None
    first = True
    seen = False
    for rec in _reverse_records(Path(events_path)):
        seen = True
        kind = rec.get("event")
        if first:
            first = False
            if kind == "run_end" and isinstance(rec.get("status"), str):
                status = rec["status"]
        if kind == "run_start":
            last = max(last, _int_field(rec, "start_step") or 0)
            break
        s = _int_field(rec, "step")
        if s is not None:
            last = max(last, s)
        if kind in ("step", "checkpoint"):
            break  # progress records: nothing earlier in this run is later
    return last, status, seen


def run_history(run_dir: str | os.PathLike[str]) -> RunHistory | None:
    """What ``run_dir`` holds, or None when it holds no run (no step logged, no checkpoint).

    Used to refuse a fresh start in a directory that already holds a run (the trainer,
    ``nal-tui start``), and for the real last step of a run whose resume failed.
    """
    rd = Path(run_dir)
    log_step, status, _ = log_last_step(rd / EVENTS)
    live = list_checkpoints(rd)
    if log_step <= 0 and not live:
        return None
    complete = [c for c in live if c.complete]
    latest = complete[-1] if complete else None
    return RunHistory(
        last_step=max([log_step] + [c.step for c in live]),
        latest=latest,
        n_checkpoints=len(complete),
        n_abandoned=len(list_abandoned(rd)),
        branch=latest.branch if latest else None,
        last_status=status,
    )


def _is_free(path: Path) -> bool:
    if not path.exists():
        return True
    if not path.is_dir() or (path / PID_FILE).exists():
        return False
    return run_history(path) is None and not list_abandoned(path)


def suggest_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """A free sibling for a new run: ``logs/demo`` -> the first free of demo-2, demo-3, ..."""
    p = Path(run_dir)
    m = re.fullmatch(r"(.+?)-(\d+)", p.name)
    base = m.group(1) if m else p.name
    for i in range(2, 100_000):
        cand = p.with_name(f"{base}-{i}")
        if _is_free(cand):
            return cand
    return p.with_name(f"{base}-{secrets.token_hex(3)}")


def fresh_start_refusal(
    run_dir: str | os.PathLike[str], hist: RunHistory, choices: bool = True
) -> str:
    """Why ``nal-train train`` without --resume refuses ``run_dir``, and (``choices``) its
    choices as nal-train flags; without them, only what the run dir holds, for a caller
    that names its own commands (``nal-tui start``)."""
    newest = (
        f", newest checkpoint at step {hist.latest.step}"
        if hist.latest is not None
        else ", no complete checkpoint"
    )
    why = (
        f"{run_dir} already holds a run (last step {hist.last_step}{newest}); starting "
        f"from step 0 there would mix two runs"
    )
    if not choices:
        return why + "."
    return (
        f"{why}. Choose: --resume latest to continue it; "
        f"--run-dir {suggest_run_dir(run_dir)} to start a new run elsewhere; or --new-branch "
        f"to start over from step 0 in {run_dir} (its checkpoints are moved aside to "
        f"{CHECKPOINTS_DIR}/{ABANDONED_DIR}/, nothing is deleted)"
    )
