"""Messages that background threads post to the app (thread-safe via ``post_message``).

Each is a small dataclass; a thread batches many log lines into one message so a burst of
steps never floods the app's queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class RecordsArrived(Message):
    """New complete lines from the event log, parsed; ``stats`` is the follower's FollowStats."""

    records: list[dict[str, Any]]
    stats: Any = None
    run_dir: Path | None = None


@dataclass
class HistoryLoaded(Message):
    """The worker finished reading the whole log into ``state`` (a fresh RunState)."""

    state: Any
    run_dir: Path
    follower: Any = None  # the LogFollower to start; it continues from where loading stopped


@dataclass
class SystemSample:
    """Machine and trainer-process figures, sampled about once a second."""

    cpu_pct: float
    mem_used: int
    mem_total: int
    disk_free: int | None
    disk_total: int | None
    proc_alive: bool | None = None
    proc_pid: int | None = None
    proc_state: str | None = None  # what the PID file says: nal_tui.state.PID_*
    proc_cpu_pct: float | None = None
    proc_rss: int | None = None
    proc_children: int = 0
    proc_note: str = ""


@dataclass
class SystemSampled(Message):
    """A new SystemSample for the run in ``run_dir``."""

    sample: SystemSample
    run_dir: Path | None = None


@dataclass
class CheckpointsVerified(Message):
    """Verification results by checkpoint path: (ok, reason)."""

    results: dict[str, tuple[bool, str]] = field(default_factory=dict)
    run_dir: Path | None = None
