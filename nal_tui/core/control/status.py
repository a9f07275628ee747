"""The one rule for a run's status, fed by one set of inputs (``StatusInputs``).

The dashboard's reducer, the run picker and ``nal-tui status`` all build a StatusInputs
from what they know and call ``derive_status``; nothing else decides a status.
"""

from __future__ import annotations

from dataclasses import dataclass

from nal_tui.core.vocab import (
    PID_GARBLED,
    PID_LIVE,
    PID_STALE,
    PID_STATES,
    STATUS_COMPLETED,
    STATUS_CRASHED,
    STATUS_NOT_STARTED,
    STATUS_RUNNING,
    STATUS_STALE,
    STATUS_STOPPED,
    STATUS_STOPPING,
)
from trainer.events import schema as ev

DEFAULT_STALE_AFTER_S = 300.0


@dataclass(frozen=True)
class StatusInputs:
    """Everything the status depends on.

    ``end_status``/``end_t``: the run_end that is the log's latest lifecycle event (None
    while the latest session has not ended). ``pid_state``: one of PID_*; ``pid_started``:
    when the live trainer's PID file was written. ``since_last_event``: age of the newest
    event in seconds (None: unknown, counts as recent). ``stopping``: a stop was requested.
    """

    has_events: bool
    end_status: str | None
    end_t: float | None
    pid_state: str
    pid_started: float | None = None
    since_last_event: float | None = None
    stopping: bool = False
    stale_after_s: float = DEFAULT_STALE_AFTER_S


def refused_start(previous_lifecycle: str | None, end_status: str) -> bool:
    """Whether a ``run_end`` is a start that was refused before it trained anything.

    A ``failed`` run_end right after another run_end (no run_start between: a mistyped
    ``--resume``, a corpus error at start-up) changed nothing in the run, so the run keeps
    the status of the earlier run_end and readers show the refusal as an alert. A failed
    first start (no earlier run_end) is the run's end.
    """
    return previous_lifecycle == "run_end" and end_status == ev.STATUS_FAILED


def derive_status(i: StatusInputs) -> tuple[str, str]:
    """``(status, reason)`` for a run.

    A live trainer whose PID file is newer than the last run_end is a new session that
    has not logged its run_start yet: running, not the old session's end.
    """
    if i.pid_state not in PID_STATES:
        raise ValueError(f"derive_status: pid_state must be one of {PID_STATES}")
    live = STATUS_STOPPING if i.stopping else STATUS_RUNNING
    newer_live = (
        i.pid_state == PID_LIVE
        and i.end_t is not None
        and (i.pid_started is None or i.pid_started > i.end_t)
    )
    if i.end_status is not None and not newer_live:
        if i.end_status == ev.STATUS_COMPLETED:
            return STATUS_COMPLETED, "the run reached its target (run_end: completed)"
        if i.end_status == ev.STATUS_STOPPED:
            return STATUS_STOPPED, "the trainer stopped on request (run_end: stopped)"
        return STATUS_CRASHED, "the trainer ended with a failure (run_end: failed)"
    if i.pid_state == PID_LIVE:
        return live, "the trainer process is alive"
    if i.pid_state == PID_STALE:
        return (
            STATUS_CRASHED,
            "the trainer process is gone without writing run_end (its PID file is stale)",
        )
    if i.pid_state == PID_GARBLED:
        return STATUS_STALE, "the PID file is unreadable, so the trainer cannot be checked"
    if not i.has_events:
        return STATUS_NOT_STARTED, "no events yet"
    if i.since_last_event is not None and i.since_last_event > i.stale_after_s:
        return (
            STATUS_STALE,
            f"no trainer PID file and no event for {i.since_last_event:.0f} s "
            "(written elsewhere, copied, or the trainer was killed with its PID file)",
        )
    return live, "no trainer PID file, but the log is recent"
